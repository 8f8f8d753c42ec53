//! Sign-in through an upstream OpenID provider on the hub's OAuth pages (SPEC §11): the
//! hub is then an OIDC client of that issuer (authorization code with PKCE S256, a nonce,
//! redirect URI `<issuer>/oauth/upstream/callback`).
//!
//! Nothing of a pending sign-in is stored: the `state` sent to the issuer is the MCP
//! client's authorization request, the provider's name, the PKCE verifier, the nonce, a
//! random id and a binding to the browser, sealed (encrypted and authenticated) with the
//! pages' key under its own purpose, for ten minutes. The binding is an HMAC of a random
//! `SameSite=Lax` cookie set on the way out (the pages' own cookie is `Strict`, which a
//! browser does not send on the issuer's redirect back), so a callback URL taken from one
//! browser does nothing in another. Each state is accepted once per node; the issuer's
//! code is single-use too, so a replay on another node fails at the exchange.
//!
//! The ID token is checked by the same verifier as the provider's access tokens (its
//! keys, algorithms, `iss`, `exp`), with `aud` = the hub's client id and the nonce, and its
//! claims map to a subject, groups, admin and zones exactly as a bearer token's do.
//!
//! The exchange and discovery speak plain HTTP/1.1 through the providers' https client
//! rather than an OIDC client crate: the verifier, its JWKS cache and its algorithm rules
//! already exist and are the ones the hub trusts for bearer tokens; what is left is one
//! discovery GET and one form POST.

use crate::metrics::Metrics;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use nexus_oauth::request::AuthorizationRequest;
use nexus_providers::config::{OidcConfig, OidcLogin};
use nexus_providers::oidc::jwks::{HttpsClient, fetchable, https_client};
use nexus_providers::oidc::{OidcVerifier, Rejection, Verified};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Where the issuer sends the browser back, under the OAuth issuer.
pub(crate) const CALLBACK_PATH: &str = "/oauth/upstream/callback";
/// The binding cookie's name (`__Host-` over https).
pub(crate) fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-nexus_oauth_upstream"
    } else {
        "nexus_oauth_upstream"
    }
}

/// Largest discovery or token answer read.
const MAX_ANSWER: usize = 256 * 1024;
/// Bound of one discovery or token request.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a sign-in through the issuer failed; the text is for the page and holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("the identity provider cannot be reached")]
    Unreachable,
    #[error("the identity provider's answer is not valid")]
    Invalid,
    #[error("the identity provider refused the code")]
    Refused,
    #[error("the identity provider's ID token was refused ({0})")]
    IdToken(&'static str),
}

/// A pending sign-in, sealed into `state`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub(crate) req: AuthorizationRequest,
    pub(crate) provider: String,
    pub(crate) verifier: String,
    pub(crate) nonce: String,
    /// Random: the key of the replay memory.
    pub(crate) id: String,
    /// HMAC of the binding cookie.
    pub(crate) binding: String,
}

#[derive(Debug, Clone)]
struct Endpoints {
    authorization: String,
    token: String,
}

/// One issuer the login page offers.
pub(crate) struct Upstream {
    pub(crate) name: String,
    pub(crate) display: String,
    issuer: String,
    client_id: String,
    secret: Option<SecretString>,
    scope: String,
    verifier: OidcVerifier,
    http: HttpsClient<Full<Bytes>>,
    /// Discovered once; a failed discovery is tried again on the next sign-in.
    endpoints: RwLock<Option<Endpoints>>,
    /// The longest a refresh family of a sign-in here lives (`login.session`).
    pub(crate) session: std::time::Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

fn read_secret(name: &str, login: &OidcLogin) -> anyhow::Result<Option<SecretString>> {
    let raw = match (&login.client_secret_file, &login.client_secret_env) {
        (Some(_), Some(_)) => anyhow::bail!(
            "oidc provider {name}: login has both client_secret_file and client_secret_env; use one"
        ),
        (Some(path), None) => {
            crate::config::check_private_auth_file(path)?;
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!(
                    "oidc provider {name}: cannot read {}: {}",
                    path.display(),
                    e.kind()
                )
            })?;
            Some(text.trim().to_owned())
        }
        (None, Some(var)) => Some(
            std::env::var(var)
                .map_err(|_| anyhow::anyhow!("oidc provider {name}: {var} is not set"))?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    match raw {
        Some(s) if s.is_empty() => {
            anyhow::bail!("oidc provider {name}: the login client secret is empty")
        }
        other => Ok(other.map(SecretString::from)),
    }
}

/// Default of `login.session`: a day, as a working day's single sign-on session.
const DEFAULT_SESSION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// `login.session`: at least a second, at most the 30 days of any refresh family.
fn login_session(name: &str, text: Option<&str>) -> anyhow::Result<std::time::Duration> {
    let Some(text) = text else {
        return Ok(DEFAULT_SESSION);
    };
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        anyhow::anyhow!(
            "oidc provider {name}: login.session {text:?} is not a duration (12h, 7d): {e}"
        )
    })?;
    let most = std::time::Duration::from_secs(nexus_oauth::REFRESH_FAMILY_SECS as u64);
    if d < std::time::Duration::from_secs(1) || d > most {
        anyhow::bail!("oidc provider {name}: login.session must be between 1s and 30d");
    }
    Ok(d)
}

impl Upstream {
    /// The sign-in of provider `name`, when its configuration has `login`.
    pub(crate) fn from_config(
        name: &str,
        cfg: &OidcConfig,
        metrics: &Metrics,
    ) -> anyhow::Result<Option<Self>> {
        let Some(login) = &cfg.login else {
            return Ok(None);
        };
        if login.client_id.trim().is_empty() {
            anyhow::bail!("oidc provider {name}: login.client_id is empty");
        }
        let secret = read_secret(name, login)?;
        let m = metrics.clone();
        let verifier = OidcVerifier::new(
            cfg,
            Arc::new(move |outcome| m.oidc_jwks_fetches.with_label_values(&[outcome]).inc()),
        )
        .map_err(anyhow::Error::msg)?;
        let display = login
            .display_name
            .clone()
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| name.to_owned());
        let session = login_session(name, login.session.as_deref())?;
        Ok(Some(Self {
            name: name.to_owned(),
            session,
            display,
            issuer: cfg.issuer.clone(),
            client_id: login.client_id.clone(),
            secret,
            scope: login.scope_string(),
            verifier,
            http: https_client().map_err(anyhow::Error::msg)?,
            endpoints: RwLock::new(None),
        }))
    }

    async fn send(&self, req: http::Request<Full<Bytes>>) -> Result<(u16, Vec<u8>), UpstreamError> {
        let exchange = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|_| UpstreamError::Unreachable)?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|_| UpstreamError::Invalid)?;
            Ok((status, body.to_bytes().to_vec()))
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .unwrap_or(Err(UpstreamError::Unreachable))
    }

    async fn endpoints(&self) -> Result<Endpoints, UpstreamError> {
        if let Some(e) = self
            .endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(e);
        }
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            authorization_endpoint: String,
            token_endpoint: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let req = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|_| UpstreamError::Invalid)?;
        let (status, body) = self.send(req).await?;
        if status != 200 {
            return Err(UpstreamError::Unreachable);
        }
        let d: Discovery = serde_json::from_slice(&body).map_err(|_| UpstreamError::Invalid)?;
        // The same rules as for the keys: the issuer's own document, endpoints over https
        // (plain http on loopback only).
        if d.issuer.trim_end_matches('/') != self.issuer.trim_end_matches('/')
            || !fetchable(&d.authorization_endpoint)
            || !fetchable(&d.token_endpoint)
        {
            return Err(UpstreamError::Invalid);
        }
        let e = Endpoints {
            authorization: d.authorization_endpoint,
            token: d.token_endpoint,
        };
        *self.endpoints.write().unwrap_or_else(|e| e.into_inner()) = Some(e.clone());
        Ok(e)
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The origin of the issuer's authorization endpoint (discovered if need be), which
    /// the login page's CSP must let its forms be redirected to.
    pub(crate) async fn form_origin(&self) -> Option<String> {
        let e = self.endpoints().await.ok()?;
        let u = url::Url::parse(&e.authorization).ok()?;
        Some(u.origin().ascii_serialization()).filter(|o| o != "null")
    }

    /// The issuer's authorization URL for one sign-in.
    pub(crate) async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        verifier: &str,
    ) -> Result<String, UpstreamError> {
        let e = self.endpoints().await?;
        let mut url = url::Url::parse(&e.authorization).map_err(|_| UpstreamError::Invalid)?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.scope)
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &nexus_oauth::pkce::challenge_of(verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Redeems `code` and verifies the ID token that comes back.
    pub(crate) async fn exchange(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<Verified, UpstreamError> {
        let e = self.endpoints().await?;
        // Built and finished before any await: the serializer is not Send.
        let (body, basic) = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("code_verifier", verifier);
            let basic = match &self.secret {
                // client_secret_basic (RFC 6749 §2.3.1: each part form-encoded first).
                Some(s) => {
                    use base64::Engine as _;
                    let enc =
                        |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
                    let pair = format!("{}:{}", enc(&self.client_id), enc(s.expose_secret()));
                    Some(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair)
                    ))
                }
                None => {
                    form.append_pair("client_id", &self.client_id);
                    None
                }
            };
            (form.finish(), basic)
        };
        let mut req = http::Request::post(&e.token)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        if let Some(b) = basic {
            req = req.header(http::header::AUTHORIZATION, b);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| UpstreamError::Invalid)?;
        let (status, body) = self.send(req).await?;
        if status != 200 {
            return Err(UpstreamError::Refused);
        }
        #[derive(Deserialize)]
        struct TokenAnswer {
            id_token: Option<String>,
        }
        let t: TokenAnswer = serde_json::from_slice(&body).map_err(|_| UpstreamError::Invalid)?;
        let id_token = t.id_token.ok_or(UpstreamError::Invalid)?;
        self.verifier
            .verify_id_token(&id_token, &self.client_id, nonce)
            .await
            .map_err(|r: Rejection| UpstreamError::IdToken(r.label()))
    }
}

/// States already accepted on this node, until they expire.
#[derive(Debug, Default)]
pub(crate) struct Replays(Mutex<HashMap<String, i64>>);

impl Replays {
    /// True the first time `id` is seen (kept until `exp`).
    pub(crate) fn first_use(&self, id: &str, exp: i64, now: i64) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, e| *e > now);
        m.insert(id.to_owned(), exp).is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_session_is_a_bounded_duration() {
        let h = |n: u64| std::time::Duration::from_secs(n * 3600);
        assert_eq!(login_session("p", None).expect("default"), h(24));
        assert_eq!(login_session("p", Some("12h")).expect("12h"), h(12));
        assert_eq!(login_session("p", Some(" 30days ")).expect("30d"), h(720));
        for bad in ["0s", "31d", "soon", "-1h", ""] {
            let e = login_session("corp", Some(bad)).expect_err(bad).to_string();
            assert!(
                e.contains("oidc provider corp: login.session"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_state_is_accepted_once_until_it_expires() {
        let r = Replays::default();
        assert!(r.first_use("a", 100, 10));
        assert!(!r.first_use("a", 100, 20), "replayed");
        assert!(r.first_use("b", 100, 20));
        // Past its expiry the entry is forgotten; the sealed state itself is dead by then.
        assert!(r.first_use("a", 200, 150));
    }
}
