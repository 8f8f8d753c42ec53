//! The hub as the OAuth 2.1 authorization server of MCP clients (SPEC §11): the flow
//! behind `/oauth/*`, on the database, the local users and the token mint. What needs no
//! database (PKCE, formats, client rules, sealing, CSRF, pages) is `nexus_oauth`.
//!
//! The flow: `/oauth/authorize` checks the client and its redirect URI (an unknown client
//! or an unregistered URI is an error page, never a redirect), then the request, and shows
//! the login page with the request sealed into the form; the login form's answer is the
//! consent page with the signed-in user sealed in; the consent form's answer is a redirect
//! with a single-use code (its digest stored with what was consented). `/oauth/token`
//! redeems the code (PKCE S256, the same redirect URI, client and resource) for an access
//! token — an ordinary hub token of kind `oauth`, within the user's rights and the
//! consent — and a refresh token of a new family; a refresh rotates, and a used refresh
//! token presented again revokes its family. Every change is an `oauth.*` audit event.
//!
//! Instead of a local password, the login page may offer "Continue with …" for each
//! configured OpenID provider with login credentials ([`upstream`]): the issuer signs the
//! person in, its ID token's claims give the subject and its rights exactly as for a bearer
//! token of that issuer, and the same consent page follows. Such a subject needs no local
//! user: its codes and refresh families carry the provider's name, its rights are what the
//! claims gave at sign-in (a refresh never widens them), and disabling the subject
//! (`nexus admin disable-user`) ends them.
//!
//! A `client_id` that is an https URL is a Client ID Metadata Document ([`cimd`]).

pub(crate) mod cimd;
mod upstream;

use crate::auth::TokenHasher;
use crate::auth::local::{LocalAuth, LocalError};
use crate::auth::token::PlainToken;
use crate::config::OAuthSettings;
use crate::control::{Caller, Control};
use crate::db::{
    CodeUse, LocalUserRecord, NewCode, NewRefresh, NewToken, OAuthBinding, OAuthRefreshUse, Store,
    StoreError,
};
use chrono::{Duration as ChronoDuration, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use nexus_oauth::client::{ClientMetadata, redirect_matches};
use nexus_oauth::csrf::{self, Csrf};
use nexus_oauth::html::{self, Offer, UpstreamChoice, ZoneChoice};
use nexus_oauth::request::{AuthorizationRequest, RawRequest, redirect_with};
use nexus_oauth::scope::Scopes;
use nexus_oauth::seal::Sealer;
use nexus_oauth::{OAuthError, secret};
use nexus_providers::permissions::{Perm, Perms};
use nexus_wire::spec::{Permission, SubjectType, ZoneGrant, parse_zone_spec};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
pub(crate) use upstream::Upstream;
use upstream::{Pending, Replays};
use uuid::Uuid;

pub(crate) use upstream::CALLBACK_PATH as UPSTREAM_CALLBACK_PATH;

/// What a handler sends back; the routes turn it into HTTP.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A page, with the security headers; `form_target` is the redirect origin the
    /// consent form may lead to.
    Page {
        status: u16,
        body: String,
        form_target: Option<String>,
        set_cookie: Option<String>,
    },
    /// 303 to the client's redirect URI.
    Redirect(String),
    /// 303 to an upstream issuer's authorization endpoint, setting the cookie that binds
    /// the sign-in to this browser.
    Away {
        location: String,
        set_cookie: String,
    },
    /// A JSON answer (token, registration, errors), never cached.
    Json {
        status: u16,
        body: serde_json::Value,
    },
}

impl Outcome {
    fn error_page(status: u16, title: &str, message: &str) -> Self {
        Self::Page {
            status,
            body: html::error_page(title, message),
            form_target: None,
            set_cookie: None,
        }
    }

    fn json_error(e: &OAuthError) -> Self {
        let status = match e.code {
            "invalid_client" => 401,
            "temporarily_unavailable" => 503,
            _ => 400,
        };
        Self::Json {
            status,
            body: e.body(),
        }
    }
}

/// The consent form's sealed state: the request and who signed in.
#[derive(Debug, Serialize, Deserialize)]
struct Consent {
    req: AuthorizationRequest,
    username: String,
    /// Signed in through an upstream OpenID provider: what its claims gave.
    #[serde(default)]
    upstream: Option<UpstreamGrant>,
}

/// An OIDC subject's rights as its ID token's claims gave them at sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UpstreamGrant {
    provider: String,
    admin: bool,
    /// `eng:rw,ops:r`; empty for none (or, with `admin`, every zone).
    zones: String,
    /// The `groups_claim`'s groups: the tokens speak for them as a bearer token would.
    #[serde(default)]
    groups: Vec<String>,
}

/// The OAuth server: settings, keys derived from the server secret, and what it works on.
pub(crate) struct OAuthServer {
    settings: OAuthSettings,
    resource: String,
    control: Control,
    /// Password sign-in; `None` when only upstream providers sign people in.
    local: Option<Arc<LocalAuth>>,
    /// "Continue with …" providers, in configuration order.
    upstreams: Vec<Upstream>,
    /// Upstream sign-in states already accepted here.
    replays: Replays,
    hasher: Arc<TokenHasher>,
    sealer: Sealer,
    csrf: Csrf,
    /// Dynamic registrations per client address.
    registrations: DefaultKeyedRateLimiter<IpAddr>,
    /// Client ID Metadata Documents, fetched and kept.
    cimd: cimd::CimdFetcher,
}

impl std::fmt::Debug for OAuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthServer")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

fn unavailable() -> OAuthError {
    OAuthError::new(
        "temporarily_unavailable",
        "the hub cannot answer now; try again",
    )
}

fn store_err(e: StoreError) -> OAuthError {
    tracing::warn!(error = %e, "oauth store operation failed");
    unavailable()
}

/// The origin (`scheme://host[:port]`) of a validated redirect URI, for the CSP.
fn origin_of(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    Some(u.origin().ascii_serialization()).filter(|o| o != "null")
}

/// A token name from the client's name: `oauth:<client>:<random>`, within the name rules.
fn token_name(client_name: &str) -> String {
    let slug: String = client_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._@+-".contains(c) {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let slug = slug.trim_matches('-');
    let slug = if slug.is_empty() { "client" } else { slug };
    format!(
        "oauth:{slug}:{}",
        &Uuid::new_v4().simple().to_string()[..12]
    )
}

/// What a user may hand a client: the permissions as scopes, the zones they hold (an
/// admin without listed zones: every active zone).
struct Rights {
    scopes: Scopes,
    zones: Vec<ZoneGrant>,
    /// An admin with no zone list: a zoneless admin token sees every zone.
    all_zones: bool,
    /// No zone list and not an admin, but a registered subject (or groups an IdP asserted):
    /// the token lists no zones, and what the subject's roles, groups and path tuples
    /// allow is checked at every request (SPEC §9), as for its login token.
    roles: bool,
}

/// What one access token is minted from: the code's or the refresh token's row.
struct Grant<'a> {
    client_id: &'a str,
    client_name: &'a str,
    username: &'a str,
    scope: &'a str,
    zones: &'a str,
    resource: &'a str,
    family: Uuid,
    family_end: chrono::DateTime<Utc>,
    provider: Option<&'a str>,
    /// The `oauth_groups` column: comma-separated.
    groups: &'a str,
}

impl OAuthServer {
    pub(crate) fn new(
        settings: OAuthSettings,
        control: Control,
        local: Option<Arc<LocalAuth>>,
        hasher: Arc<TokenHasher>,
        upstreams: Vec<Upstream>,
    ) -> Self {
        let sealer = Sealer::new(hasher.subkey("nexus-hub/oauth-seal/v1").expose_secret());
        let csrf = Csrf::new(hasher.subkey("nexus-hub/oauth-csrf/v1").expose_secret());
        let per_min = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            cimd: cimd::CimdFetcher::new(&settings.cimd),
            resource: settings.resource(),
            settings,
            control,
            local,
            upstreams,
            replays: Replays::default(),
            hasher,
            sealer,
            csrf,
            registrations: RateLimiter::keyed(per_min(20)),
        }
    }

    fn store(&self) -> &Store {
        self.control.store()
    }

    fn secure(&self) -> bool {
        self.settings.issuer.starts_with("https://")
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    pub(crate) fn housekeeping(&self) {
        self.registrations.retain_recent();
        self.cimd.housekeeping();
    }

    /// A used code or refresh token came back: the store has revoked what it issued; every
    /// node is told, the event recorded, and the client refused.
    fn replayed(
        &self,
        event: &'static str,
        client_id: &str,
        revoked: &[Uuid],
        message: &'static str,
    ) -> OAuthError {
        self.control.publish_tokens(revoked);
        self.audit(
            event,
            None,
            json!({ "client_id": client_id, "revoked_tokens": revoked.len() }),
        );
        OAuthError::invalid_grant(message)
    }

    fn audit(&self, event: &'static str, username: Option<&str>, detail: serde_json::Value) {
        let caller = Caller {
            key_id: None,
            subject_id: username.map(str::to_owned),
            is_admin: false,
            base: Vec::new(),
            zones: Vec::new(),
        };
        self.control.audit(event, &caller, detail);
    }

    /// RFC 8414 metadata (also the OpenID discovery document).
    pub(crate) fn metadata(&self) -> serde_json::Value {
        nexus_oauth::metadata::authorization_server(
            &self.settings.issuer,
            self.settings.dcr,
            self.settings.cimd.enabled,
        )
    }

    /// A live client's name and redirect URIs; a metadata document's refusal is an
    /// `invalid_client` error that says why.
    async fn client(&self, client_id: &str) -> Result<Option<(String, Vec<String>)>, OAuthError> {
        if client_id.is_empty() || client_id.len() > 2000 {
            return Ok(None);
        }
        if nexus_oauth::cimd::is_url(client_id) {
            return self.metadata_client(client_id).await;
        }
        let found = self
            .store()
            .oauth_client(client_id)
            .await
            .map_err(store_err)?;
        Ok(found
            .filter(|c| c.revoked_at.is_none())
            .map(|c| (c.client_name.clone(), c.redirect_uri_list())))
    }

    // ---- authorize ----

    /// `GET /oauth/authorize`.
    pub(crate) async fn authorize(&self, query: &str, cookie_header: Option<&str>) -> Outcome {
        let raw = match RawRequest::parse(query) {
            Ok(r) => r,
            Err(e) => return Outcome::error_page(400, "Invalid request", &e.description),
        };
        let Some(client_id) = raw.get("client_id") else {
            return Outcome::error_page(400, "Invalid request", "client_id is missing.");
        };
        let (client_name, uris) = match self.client(client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Outcome::error_page(
                    400,
                    "Unknown application",
                    "This application is not registered with the hub, or its access was revoked.",
                );
            }
            Err(e) if e.code == "invalid_client" => {
                return Outcome::error_page(400, "Unknown application", &e.description);
            }
            Err(_) => {
                return Outcome::error_page(503, "Try again", "The hub cannot answer now.");
            }
        };
        let Some(redirect_uri) = raw.get("redirect_uri") else {
            return Outcome::error_page(400, "Invalid request", "redirect_uri is missing.");
        };
        if !redirect_matches(&uris, redirect_uri) {
            return Outcome::error_page(
                400,
                "Invalid redirect",
                "The redirect URI is not one this application registered; nothing is sent to it.",
            );
        }
        let req = match AuthorizationRequest::validate(
            &raw,
            client_id,
            &client_name,
            redirect_uri,
            &self.resource,
        ) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Redirect(redirect_with(
                    redirect_uri,
                    &self.settings.issuer,
                    raw.get("state"),
                    &[("error", e.code), ("error_description", &e.description)],
                ));
            }
        };
        let secure = self.secure();
        let (cookie, set_cookie) = match cookie_header.and_then(|h| csrf::cookie_value(h, secure)) {
            Some(c) => (c.to_owned(), None),
            None => match secret::random_b64(32) {
                Ok(c) => {
                    let set = csrf::set_cookie(secure, &c);
                    (c, Some(set))
                }
                Err(_) => {
                    return Outcome::error_page(503, "Try again", "The hub cannot answer now.");
                }
            },
        };
        self.login_page(&req, &cookie, set_cookie, None, 200).await
    }

    async fn login_page(
        &self,
        req: &AuthorizationRequest,
        cookie: &str,
        set_cookie: Option<String>,
        error: Option<&str>,
        status: u16,
    ) -> Outcome {
        let exp = Utc::now().timestamp() + nexus_oauth::PAGE_TTL_SECS;
        let Some(sealed) = self.sealer.seal("login", req, exp) else {
            return Outcome::error_page(503, "Try again", "The hub cannot answer now.");
        };
        let token = self.csrf.token("login", cookie, &sealed);
        let choices: Vec<UpstreamChoice> = self
            .upstreams
            .iter()
            .map(|u| UpstreamChoice {
                name: u.name.clone(),
                display: u.display.clone(),
            })
            .collect();
        // A "Continue with …" form answers with a redirect to the issuer: the CSP's
        // form-action must allow its origin, or the browser stops there.
        let mut origins = Vec::new();
        for u in &self.upstreams {
            if let Some(o) = u.form_origin().await
                && !origins.contains(&o)
            {
                origins.push(o);
            }
        }
        Outcome::Page {
            status,
            body: html::login_page(
                &req.client_name,
                &sealed,
                &token,
                error,
                self.local.is_some(),
                &choices,
            ),
            form_target: (!origins.is_empty()).then(|| origins.join(" ")),
            set_cookie,
        }
    }

    /// What a page's form carries sealed in its `sealed_field`, after its CSRF token is
    /// checked against the pages' cookie (`purpose` binds token and seal to one form; a
    /// failed check is audited as `form_name`). Also the cookie's value, when there is one.
    /// `Err` is the refusal page.
    fn open_form<'c, T: serde::de::DeserializeOwned>(
        &self,
        form: &[(String, String)],
        cookie_header: Option<&'c str>,
        sealed_field: &str,
        purpose: &str,
        form_name: &str,
    ) -> Result<(T, Option<&'c str>), Outcome> {
        let cookie = cookie_header.and_then(|h| csrf::cookie_value(h, self.secure()));
        let (Some(sealed), Some(token)) = (field_of(form, sealed_field), field_of(form, "csrf"))
        else {
            return Err(Self::forged());
        };
        if !self.csrf.verify(purpose, cookie, sealed, token) {
            self.audit("oauth.csrf_refused", None, json!({ "form": form_name }));
            return Err(Self::forged());
        }
        self.sealer
            .open::<T>(purpose, sealed, Utc::now().timestamp())
            .map(|v| (v, cookie))
            .ok_or_else(Self::forged)
    }

    /// Audits a refused upstream callback: why, and through which provider.
    fn upstream_refused(&self, reason: &str, provider: &str) {
        self.audit(
            "oauth.upstream_refused",
            None,
            json!({ "reason": reason, "provider": provider }),
        );
    }

    fn forged() -> Outcome {
        Outcome::error_page(
            403,
            "Form refused",
            "This form did not come from this hub in this browser, or it expired. Start again from the application.",
        )
    }

    /// `POST /oauth/authorize/login`.
    pub(crate) async fn login(
        &self,
        form: &[(String, String)],
        cookie_header: Option<&str>,
        ip: IpAddr,
    ) -> Outcome {
        let field = |k: &str| field_of(form, k);
        let (req, cookie) = match self.open_form::<AuthorizationRequest>(
            form,
            cookie_header,
            "request",
            "login",
            "login",
        ) {
            Ok((req, Some(cookie))) => (req, cookie),
            Ok((_, None)) => return Self::forged(),
            Err(refused) => return refused,
        };
        let Some(local) = &self.local else {
            return Outcome::error_page(
                404,
                "Password sign-in is off",
                "This hub signs people in through its identity providers only.",
            );
        };
        let username = field("username").unwrap_or_default().trim();
        let password = field("password").unwrap_or_default();
        if username.is_empty() || password.is_empty() {
            return self
                .login_page(
                    &req,
                    cookie,
                    None,
                    Some("Enter your username and password."),
                    400,
                )
                .await;
        }
        if !local.throttle.allow(ip, username) {
            return self
                .login_page(
                    &req,
                    cookie,
                    None,
                    Some("Too many attempts; wait a minute."),
                    429,
                )
                .await;
        }
        let user = match local.check_password(username, password).await {
            Ok(u) => u,
            Err(LocalError::Unavailable) => {
                return Outcome::error_page(503, "Try again", "The hub cannot answer now.");
            }
            Err(_) => {
                self.audit(
                    "oauth.login_refused",
                    None,
                    json!({ "client_id": req.client_id }),
                );
                return self
                    .login_page(&req, cookie, None, Some("Wrong username or password."), 401)
                    .await;
            }
        };
        // A client revoked while its user was signing in gets nothing.
        match self.client(&req.client_id).await {
            Ok(Some(_)) => {}
            _ => {
                return Outcome::error_page(
                    400,
                    "Unknown application",
                    "This application's access was revoked.",
                );
            }
        }
        let rights = match self.rights(&user).await {
            Ok(r) => r,
            Err(_) => return Outcome::error_page(503, "Try again", "The hub cannot answer now."),
        };
        self.audit(
            "oauth.login",
            Some(&user.username),
            json!({ "client_id": req.client_id, "provider": "local" }),
        );
        let consent = Consent {
            req,
            username: user.username.clone(),
            upstream: None,
        };
        self.consent_page(consent, &rights, cookie, None)
    }

    /// The consent page for who signed in, with what they hold; `set_cookie` when the
    /// CSRF cookie is new (after an upstream sign-in).
    fn consent_page(
        &self,
        consent: Consent,
        rights: &Rights,
        cookie: &str,
        set_cookie: Option<String>,
    ) -> Outcome {
        let now = Utc::now();
        let asked = Scopes::parse(Some(&consent.req.scope)).unwrap_or_default();
        let offer = asked.within(rights.scopes);
        let exp = now.timestamp() + nexus_oauth::PAGE_TTL_SECS;
        let Some(sealed) = self.sealer.seal("consent", &consent, exp) else {
            return Outcome::error_page(503, "Try again", "The hub cannot answer now.");
        };
        let token = self.csrf.token("consent", cookie, &sealed);
        let origin = origin_of(&consent.req.redirect_uri).unwrap_or_default();
        let via = consent
            .upstream
            .as_ref()
            .and_then(|g| self.upstream(&g.provider))
            .map(|u| u.display.as_str());
        let zones: Vec<ZoneChoice> = rights
            .zones
            .iter()
            .filter(|g| grantable(g.permission, offer).is_some())
            .map(|g| ZoneChoice {
                zone: g.zone_id.clone(),
                permission: g.permission.as_str().to_owned(),
            })
            .collect();
        Outcome::Page {
            status: 200,
            body: html::consent_page(
                &consent.req.client_name,
                &origin,
                &consent.username,
                via,
                &zones,
                Offer {
                    read: offer.read,
                    write: offer.write,
                    admin: offer.admin,
                    all_zones: rights.all_zones,
                    roles: rights.roles,
                    groups: consent
                        .upstream
                        .as_ref()
                        .map_or(&[], |g| g.groups.as_slice()),
                },
                &sealed,
                &token,
            ),
            form_target: Some(origin),
            set_cookie,
        }
    }

    /// What `user` holds now.
    async fn rights(&self, user: &LocalUserRecord) -> Result<Rights, StoreError> {
        let perms = Perms::parse_stored(&user.permissions).unwrap_or_default();
        let scopes = Scopes {
            read: perms.allows(Perm::Read),
            write: perms.allows(Perm::Write),
            admin: perms.allows(Perm::Admin),
        };
        // A local user is a registered subject: with no zones, its roles decide.
        self.rights_in(scopes, &user.zones, true).await
    }

    /// What an OIDC subject holds: the claims' zones, and with an admin group every zone
    /// when the claims list none (as a zoneless admin token sees them).
    async fn upstream_rights(
        &self,
        subject: &str,
        g: &UpstreamGrant,
    ) -> Result<Rights, StoreError> {
        // An OIDC token's rights are its zones, admin groups and groups, and the roles of
        // its subject if registered (as for a bearer token of the issuer).
        let scopes = Scopes {
            read: true,
            write: true,
            admin: g.admin,
        };
        let roles = !g.groups.is_empty() || self.store().get_subject(subject).await?.is_some();
        self.rights_in(scopes, &g.zones, roles).await
    }

    /// `scopes` over the zones of `spec`; an admin with none listed holds every active zone,
    /// and anyone else with none listed what their roles allow when `roles` says they may
    /// hold any.
    async fn rights_in(
        &self,
        scopes: Scopes,
        spec: &str,
        roles: bool,
    ) -> Result<Rights, StoreError> {
        let listed = if spec.trim().is_empty() {
            Vec::new()
        } else {
            parse_zone_spec(spec).unwrap_or_default()
        };
        let listed_is_empty = listed.is_empty();
        let all_zones = listed_is_empty && scopes.admin;
        let zones = if all_zones {
            self.store()
                .active_zones()
                .await?
                .into_iter()
                .map(|zone_id| ZoneGrant {
                    zone_id,
                    permission: Permission::ReadWrite,
                })
                .collect()
        } else {
            listed
        };
        Ok(Rights {
            scopes,
            roles: roles && listed_is_empty && !all_zones,
            zones,
            all_zones,
        })
    }

    fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// Whether an OIDC subject may still be given tokens: its provider still signs people
    /// in here and the subject, if registered, is not disabled.
    async fn upstream_subject_ok(&self, provider: &str, subject: &str) -> Result<bool, StoreError> {
        if self.upstream(provider).is_none() {
            return Ok(false);
        }
        Ok(self
            .store()
            .get_subject(subject)
            .await?
            .is_none_or(|s| s.disabled_at.is_none()))
    }

    /// `POST /oauth/authorize/upstream`: "Continue with …". The same CSRF check as the
    /// password form, then 303 to the issuer with PKCE, nonce and the sealed state.
    pub(crate) async fn upstream_start(
        &self,
        form: &[(String, String)],
        cookie_header: Option<&str>,
    ) -> Outcome {
        let field = |k: &str| field_of(form, k);
        let req = match self.open_form::<AuthorizationRequest>(
            form,
            cookie_header,
            "request",
            "login",
            "upstream",
        ) {
            Ok((req, _)) => req,
            Err(refused) => return refused,
        };
        let now = Utc::now().timestamp();
        let Some(u) = field("provider").and_then(|p| self.upstream(p)) else {
            return Outcome::error_page(
                400,
                "Unknown identity provider",
                "This hub does not sign people in through that provider.",
            );
        };
        let randoms = (
            secret::random_b64(32),
            secret::random_b64(24),
            secret::random_b64(16),
            secret::random_b64(32),
        );
        let (Ok(verifier), Ok(nonce), Ok(id), Ok(bind)) = randoms else {
            return Outcome::error_page(503, "Try again", "The hub cannot answer now.");
        };
        let pending = Pending {
            req,
            provider: u.name.clone(),
            verifier,
            nonce,
            binding: self.csrf.token("upstream-binding", &bind, &id),
            id,
        };
        let exp = now + nexus_oauth::PAGE_TTL_SECS;
        let Some(state) = self.sealer.seal("upstream", &pending, exp) else {
            return Outcome::error_page(503, "Try again", "The hub cannot answer now.");
        };
        let redirect = format!("{}{}", self.settings.issuer, upstream::CALLBACK_PATH);
        match u
            .authorization_url(&redirect, &state, &pending.nonce, &pending.verifier)
            .await
        {
            Ok(to) => {
                let secure_attr = if self.secure() { "; Secure" } else { "" };
                Outcome::Away {
                    location: to,
                    set_cookie: format!(
                        "{}={bind}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure_attr}",
                        upstream::cookie_name(self.secure()),
                        nexus_oauth::PAGE_TTL_SECS
                    ),
                }
            }
            Err(e) => {
                tracing::warn!(provider = %u.name, error = %e, "upstream sign-in cannot start");
                Outcome::error_page(
                    502,
                    "Identity provider unavailable",
                    &format!("{}: {e}. Try again later.", u.display),
                )
            }
        }
    }

    /// `GET /oauth/upstream/callback`: the issuer's answer. Every failure is a page here,
    /// never a redirect to the MCP client.
    pub(crate) async fn upstream_callback(
        &self,
        query: &str,
        cookie_header: Option<&str>,
    ) -> Outcome {
        let refused = |title: &str, message: &str| Outcome::error_page(400, title, message);
        let Ok(raw) = RawRequest::parse(query) else {
            return refused(
                "Invalid sign-in",
                "The identity provider's answer is malformed.",
            );
        };
        let now = Utc::now().timestamp();
        let Some(p) = raw
            .get("state")
            .and_then(|s| self.sealer.open::<Pending>("upstream", s, now))
        else {
            self.audit("oauth.upstream_refused", None, json!({ "reason": "state" }));
            return refused(
                "Invalid sign-in",
                "This sign-in was not started here, was changed, or expired. Start again from the application.",
            );
        };
        let bind = cookie_header.and_then(|h| {
            h.split(';')
                .filter_map(|c| c.trim().split_once('='))
                .find(|(k, _)| *k == upstream::cookie_name(self.secure()))
                .map(|(_, v)| v)
        });
        if !bind.is_some_and(|b| {
            b.len() <= 128
                && self
                    .csrf
                    .verify("upstream-binding", Some(b), &p.id, &p.binding)
        }) {
            self.upstream_refused("browser", &p.provider);
            return Self::forged();
        }
        if !self
            .replays
            .first_use(&p.id, now + nexus_oauth::PAGE_TTL_SECS, now)
        {
            self.upstream_refused("replay", &p.provider);
            return refused(
                "Sign-in already used",
                "This sign-in was already completed. Start again from the application.",
            );
        }
        let Some(u) = self.upstream(&p.provider) else {
            return refused(
                "Unknown identity provider",
                "This hub no longer signs people in through that provider.",
            );
        };
        if let Some(err) = raw.get("error") {
            // The IdP's words, shown (escaped) and logged, but never at any length.
            let err: String = err.chars().take(64).collect();
            self.audit(
                "oauth.login_refused",
                None,
                json!({ "client_id": p.req.client_id, "provider": p.provider, "error": err }),
            );
            let detail = raw
                .get("error_description")
                .map(|d| format!(" ({})", d.chars().take(200).collect::<String>()))
                .unwrap_or_default();
            return Outcome::error_page(
                403,
                "Sign-in refused",
                &format!("{} answered {err}{detail}.", u.display),
            );
        }
        // RFC 9207: an issuer that names itself must name the right one (mix-up attacks).
        if raw
            .get("iss")
            .is_some_and(|i| i.trim_end_matches('/') != u.issuer().trim_end_matches('/'))
        {
            self.upstream_refused("issuer", &p.provider);
            return refused(
                "Invalid sign-in",
                "The answer came from another identity provider than the one asked.",
            );
        }
        let Some(code) = raw.get("code") else {
            return refused("Invalid sign-in", "The identity provider sent no code.");
        };
        let redirect = format!("{}{}", self.settings.issuer, upstream::CALLBACK_PATH);
        let v = match u.exchange(code, &redirect, &p.verifier, &p.nonce).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(provider = %u.name, error = %e, "upstream sign-in refused");
                self.audit(
                    "oauth.upstream_refused",
                    None,
                    json!({ "reason": "exchange", "provider": p.provider, "detail": e.to_string() }),
                );
                return Outcome::error_page(
                    403,
                    "Sign-in failed",
                    &format!("{}: {e}. Start again from the application.", u.display),
                );
            }
        };
        match self.upstream_subject_ok(&p.provider, &v.subject).await {
            Ok(true) => {}
            Ok(false) => {
                self.audit(
                    "oauth.login_refused",
                    Some(&v.subject),
                    json!({ "client_id": p.req.client_id, "provider": p.provider, "error": "disabled" }),
                );
                return Outcome::error_page(
                    403,
                    "Account disabled",
                    "This account is disabled on the hub.",
                );
            }
            Err(_) => return Outcome::error_page(503, "Try again", "The hub cannot answer now."),
        }
        match self.client(&p.req.client_id).await {
            Ok(Some(_)) => {}
            _ => {
                return Outcome::error_page(
                    400,
                    "Unknown application",
                    "This application's access was revoked.",
                );
            }
        }
        let grant = UpstreamGrant {
            provider: p.provider.clone(),
            admin: v.is_admin,
            zones: zone_spec(&v.zones),
            groups: v.groups.clone(),
        };
        let rights = match self.upstream_rights(&v.subject, &grant).await {
            Ok(r) => r,
            Err(_) => return Outcome::error_page(503, "Try again", "The hub cannot answer now."),
        };
        self.audit(
            "oauth.login",
            Some(&v.subject),
            json!({ "client_id": p.req.client_id, "provider": p.provider, "groups": v.groups }),
        );
        // The pages' own cookie is SameSite=Strict: not sent on the issuer's redirect
        // here, so the consent form is bound to a fresh one.
        let Ok(cookie) = secret::random_b64(32) else {
            return Outcome::error_page(503, "Try again", "The hub cannot answer now.");
        };
        let set = csrf::set_cookie(self.secure(), &cookie);
        let consent = Consent {
            req: p.req,
            username: v.subject,
            upstream: Some(grant),
        };
        self.consent_page(consent, &rights, &cookie, Some(set))
    }

    /// `POST /oauth/authorize/consent`.
    pub(crate) async fn consent(
        &self,
        form: &[(String, String)],
        cookie_header: Option<&str>,
    ) -> Outcome {
        let field = |k: &str| field_of(form, k);
        let c = match self.open_form::<Consent>(form, cookie_header, "grant", "consent", "consent")
        {
            Ok((c, _)) => c,
            Err(refused) => return refused,
        };
        let now = Utc::now();
        let req = &c.req;
        let back = |code: &'static str, description: &str| {
            Outcome::Redirect(redirect_with(
                &req.redirect_uri,
                &self.settings.issuer,
                req.state.as_deref(),
                &[("error", code), ("error_description", description)],
            ))
        };
        if field("decision") != Some("allow") {
            self.audit(
                "oauth.consent_denied",
                Some(&c.username),
                json!({ "client_id": req.client_id }),
            );
            return back("access_denied", "the user denied access");
        }
        match self.client(&req.client_id).await {
            Ok(Some(_)) => {}
            _ => {
                return Outcome::error_page(
                    400,
                    "Unknown application",
                    "This application's access was revoked.",
                );
            }
        }
        let rights = match &c.upstream {
            None => {
                let user = match self.store().find_local_user(&c.username).await {
                    Ok(Some(u)) if u.disabled_at.is_none() => u,
                    Ok(_) => return back("access_denied", "the user cannot sign in"),
                    Err(_) => return back("temporarily_unavailable", "try again"),
                };
                self.rights(&user).await
            }
            Some(g) => match self.upstream_subject_ok(&g.provider, &c.username).await {
                Ok(true) => self.upstream_rights(&c.username, g).await,
                Ok(false) => return back("access_denied", "the user cannot sign in"),
                Err(_) => return back("temporarily_unavailable", "try again"),
            },
        };
        let Ok(rights) = rights else {
            return back("temporarily_unavailable", "try again");
        };
        let asked = Scopes::parse(Some(&req.scope)).unwrap_or_default();
        let ticked = Scopes {
            read: form.iter().any(|(k, v)| k == "perm" && v == "read"),
            write: form.iter().any(|(k, v)| k == "perm" && v == "write"),
            admin: form.iter().any(|(k, v)| k == "perm" && v == "admin"),
        };
        let scopes = asked.within(rights.scopes).within(ticked);
        let chosen: Vec<&str> = form
            .iter()
            .filter(|(k, _)| k == "zone")
            .map(|(_, v)| v.as_str())
            .collect();
        let zones = narrow_zones(&rights, &chosen, scopes);
        if scopes.is_empty()
            || (zones.is_empty() && !(scopes.admin && rights.all_zones || rights.roles))
        {
            return back("access_denied", "nothing was granted");
        }
        let Ok(code) = secret::generate(secret::CODE_PREFIX) else {
            return back("temporarily_unavailable", "try again");
        };
        let new = NewCode {
            digest: self.hasher.digest(&code).0,
            client_id: req.client_id.clone(),
            username: c.username.clone(),
            redirect_uri: req.redirect_uri.clone(),
            code_challenge: req.code_challenge.clone(),
            resource: req.resource.clone(),
            scope: scopes.to_scope_string(),
            zones: zone_spec(&zones),
            family_id: Uuid::new_v4(),
            created_at: now,
            expires_at: now + ChronoDuration::seconds(nexus_oauth::CODE_TTL_SECS),
            provider: c.upstream.as_ref().map(|g| g.provider.clone()),
            oauth_groups: c
                .upstream
                .as_ref()
                .map(|g| crate::db::join_groups(&g.groups))
                .unwrap_or_default(),
        };
        if self.store().oauth_insert_code(&new).await.is_err() {
            return back("temporarily_unavailable", "try again");
        }
        self.audit(
            "oauth.consent",
            Some(&c.username),
            json!({ "client_id": req.client_id, "scope": new.scope, "zones": new.zones }),
        );
        Outcome::Redirect(redirect_with(
            &req.redirect_uri,
            &self.settings.issuer,
            req.state.as_deref(),
            &[("code", &code)],
        ))
    }

    // ---- token ----

    /// `POST /oauth/token`.
    pub(crate) async fn token(&self, form: &[(String, String)]) -> Outcome {
        let mut seen = std::collections::HashSet::new();
        if form.iter().any(|(k, _)| !seen.insert(k.as_str())) {
            return Outcome::json_error(&OAuthError::invalid_request(
                "a parameter is given more than once",
            ));
        }
        let res = match field_of(form, "grant_type") {
            Some("authorization_code") => self.redeem_code(form).await,
            Some("refresh_token") => self.rotate(form).await,
            Some(_) => Err(OAuthError::new(
                "unsupported_grant_type",
                "grant_type is authorization_code or refresh_token",
            )),
            None => Err(OAuthError::invalid_request("grant_type is required")),
        };
        match res {
            Ok(body) => Outcome::Json { status: 200, body },
            Err(e) => Outcome::json_error(&e),
        }
    }

    async fn redeem_code(
        &self,
        form: &[(String, String)],
    ) -> Result<serde_json::Value, OAuthError> {
        let field = |k: &str| field_of(form, k);
        let code = field("code").ok_or_else(|| OAuthError::invalid_request("code is required"))?;
        let client_id = field("client_id")
            .ok_or_else(|| OAuthError::invalid_request("client_id is required"))?;
        let redirect_uri = field("redirect_uri")
            .ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?;
        let resource = field("resource").ok_or_else(|| {
            OAuthError::new(
                "invalid_target",
                format!("resource is required: {}", self.resource),
            )
        })?;
        if !secret::well_formed(code, secret::CODE_PREFIX) {
            return Err(OAuthError::invalid_grant("unknown or expired code"));
        }
        let now = Utc::now();
        let digest = self.hasher.digest(code).0;
        let c = match self
            .store()
            .oauth_use_code(&digest, now)
            .await
            .map_err(store_err)?
        {
            CodeUse::Fresh(c) => c,
            CodeUse::Reused(revoked) => {
                return Err(self.replayed(
                    "oauth.code_reuse",
                    client_id,
                    &revoked,
                    "this code was already used; the tokens issued from it are revoked",
                ));
            }
            CodeUse::Invalid => return Err(OAuthError::invalid_grant("unknown or expired code")),
        };
        if c.client_id != client_id {
            return Err(OAuthError::invalid_grant(
                "the code was issued to another client",
            ));
        }
        if c.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        nexus_oauth::pkce::verify(field("code_verifier"), &c.code_challenge)?;
        if c.resource != resource {
            return Err(OAuthError::new(
                "invalid_target",
                "the resource differs from the authorization request's",
            ));
        }
        let (client_name, _) = self
            .client(client_id)
            .await?
            .ok_or_else(|| OAuthError::new("invalid_client", "the client is revoked"))?;
        // A sign-in through an upstream provider lives as long as its `login.session`: the
        // hub never hears of what the provider takes away later.
        let mut family_end = now + ChronoDuration::seconds(nexus_oauth::REFRESH_FAMILY_SECS);
        if let Some(u) = c.provider.as_deref().and_then(|p| self.upstream(p)) {
            let session = ChronoDuration::from_std(u.session).unwrap_or(ChronoDuration::zero());
            family_end = family_end.min(now + session);
        }
        let out = self
            .mint(Grant {
                client_id,
                client_name: &client_name,
                username: &c.username,
                scope: &c.scope,
                zones: &c.zones,
                resource: &c.resource,
                family: c.family_id,
                family_end,
                provider: c.provider.as_deref(),
                groups: &c.oauth_groups,
            })
            .await?;
        self.audit(
            "oauth.token",
            Some(&c.username),
            json!({ "client_id": client_id, "grant_type": "authorization_code", "scope": c.scope }),
        );
        Ok(out)
    }

    async fn rotate(&self, form: &[(String, String)]) -> Result<serde_json::Value, OAuthError> {
        let field = |k: &str| field_of(form, k);
        let refresh = field("refresh_token")
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
        let client_id = field("client_id")
            .ok_or_else(|| OAuthError::invalid_request("client_id is required"))?;
        if !secret::well_formed(refresh, secret::REFRESH_PREFIX) {
            return Err(OAuthError::invalid_grant(
                "unknown or expired refresh token",
            ));
        }
        let now = Utc::now();
        let digest = self.hasher.digest(refresh).0;
        let r = match self
            .store()
            .oauth_use_refresh(&digest, now)
            .await
            .map_err(store_err)?
        {
            OAuthRefreshUse::Fresh(r) => r,
            OAuthRefreshUse::Reused(revoked) => {
                return Err(self.replayed(
                    "oauth.refresh_reuse",
                    client_id,
                    &revoked,
                    "this refresh token was already used; its whole family is revoked",
                ));
            }
            OAuthRefreshUse::Invalid => {
                return Err(OAuthError::invalid_grant(
                    "unknown or expired refresh token",
                ));
            }
        };
        if r.client_id != client_id {
            // Someone else's refresh token: the family is compromised.
            let revoked = self
                .store()
                .oauth_revoke_family(r.family_id, now)
                .await
                .map_err(store_err)?;
            self.control.publish_tokens(&revoked);
            return Err(OAuthError::invalid_grant(
                "the refresh token belongs to another client",
            ));
        }
        if field("resource").is_some_and(|res| res != r.resource) {
            return Err(OAuthError::new(
                "invalid_target",
                "the resource differs from the one consented to",
            ));
        }
        let (client_name, _) = self
            .client(client_id)
            .await?
            .ok_or_else(|| OAuthError::new("invalid_client", "the client is revoked"))?;
        // A narrower scope may be asked for; never a wider one.
        let scope = match field("scope") {
            Some(s) => Scopes::parse(Some(s))?
                .within(Scopes::parse(Some(&r.scope))?)
                .to_scope_string(),
            None => r.scope.clone(),
        };
        let out = self
            .mint(Grant {
                client_id,
                client_name: &client_name,
                username: &r.username,
                scope: &scope,
                zones: &r.zones,
                resource: &r.resource,
                family: r.family_id,
                family_end: r.expires_at,
                provider: r.provider.as_deref(),
                groups: &r.oauth_groups,
            })
            .await?;
        self.audit(
            "oauth.token",
            Some(&r.username),
            json!({ "client_id": client_id, "grant_type": "refresh_token", "scope": scope }),
        );
        Ok(out)
    }

    /// An access token (a hub token of kind `oauth`) and the next refresh token of the
    /// grant's family, within what the user holds now and what was consented.
    async fn mint(&self, grant: Grant<'_>) -> Result<serde_json::Value, OAuthError> {
        let Grant {
            client_id,
            client_name,
            username,
            scope,
            zones,
            resource,
            family,
            family_end,
            provider,
            groups,
        } = grant;
        let rights = match provider {
            None => {
                let user = match self
                    .store()
                    .find_local_user(username)
                    .await
                    .map_err(store_err)?
                {
                    Some(u) if u.disabled_at.is_none() => u,
                    _ => return Err(OAuthError::invalid_grant("the user cannot sign in")),
                };
                self.rights(&user).await.map_err(store_err)?
            }
            // The issuer is not asked again: what its claims gave at sign-in, as consented,
            // is the most a refresh keeps.
            Some(p) => {
                if !self
                    .upstream_subject_ok(p, username)
                    .await
                    .map_err(store_err)?
                {
                    return Err(OAuthError::invalid_grant("the user cannot sign in"));
                }
                let consented = Scopes::parse(Some(scope))?;
                self.upstream_rights(
                    username,
                    &UpstreamGrant {
                        provider: p.to_owned(),
                        admin: consented.admin,
                        zones: zones.to_owned(),
                        groups: crate::db::split_groups(groups),
                    },
                )
                .await
                .map_err(store_err)?
            }
        };
        let scopes = Scopes::parse(Some(scope))?.within(rights.scopes);
        let consented: Vec<ZoneGrant> = if zones.is_empty() {
            Vec::new()
        } else {
            parse_zone_spec(zones).map_err(|_| unavailable())?
        };
        let chosen: Vec<&str> = consented.iter().map(|g| g.zone_id.as_str()).collect();
        let mut granted = narrow_zones(&rights, &chosen, scopes);
        // Never more than consented per zone either.
        granted.retain_mut(|g| {
            let Some(c) = consented.iter().find(|c| c.zone_id == g.zone_id) else {
                return false;
            };
            match intersect(g.permission, c.permission) {
                Some(p) => {
                    g.permission = p;
                    true
                }
                None => false,
            }
        });
        // Zoneless: an admin's every zone, or what the subject's roles allow.
        let zoneless = consented.is_empty() && (scopes.admin && rights.all_zones || rights.roles);
        if scopes.is_empty() || (granted.is_empty() && !zoneless) {
            return Err(OAuthError::invalid_grant(
                "the user no longer holds anything that was granted",
            ));
        }
        let now = Utc::now();
        let expires = (now + ChronoDuration::seconds(nexus_oauth::ACCESS_TTL_SECS)).min(family_end);
        let mut perms = Vec::new();
        if scopes.read {
            perms.push(Perm::Read);
        }
        if scopes.write {
            perms.push(Perm::Write);
        }
        if scopes.admin {
            perms.push(Perm::Admin);
        }
        let access = PlainToken::generate();
        let token = NewToken {
            key_id: Uuid::new_v4(),
            digest: self.hasher.digest(access.expose()).0,
            name: token_name(client_name),
            user_id: username.to_owned(),
            subject_type: SubjectType::User,
            is_admin: scopes.admin,
            rate_limit: None,
            created_at: now,
            expires_at: Some(expires),
            zones: granted.clone(),
            permissions: Some(Perms::of(&perms).stored()),
            oauth: Some(OAuthBinding {
                client_id: client_id.to_owned(),
                family_id: family,
                groups: groups.to_owned(),
            }),
        };
        let refresh = secret::generate(secret::REFRESH_PREFIX).map_err(|_| unavailable())?;
        let new_refresh = NewRefresh {
            digest: self.hasher.digest(&refresh).0,
            family_id: family,
            client_id: client_id.to_owned(),
            username: username.to_owned(),
            resource: resource.to_owned(),
            scope: scopes.to_scope_string(),
            zones: zone_spec(&granted),
            issued_at: now,
            expires_at: family_end,
            provider: provider.map(str::to_owned),
            oauth_groups: groups.to_owned(),
        };
        match self.store().oauth_insert_grant(&token, &new_refresh).await {
            Ok(()) => {}
            Err(StoreError::ZoneNotActive(_)) => {
                return Err(OAuthError::invalid_grant("a granted zone was deleted"));
            }
            Err(e) => return Err(store_err(e)),
        }
        Ok(json!({
            "access_token": access.expose(),
            "token_type": "Bearer",
            "expires_in": (expires - now).num_seconds(),
            "refresh_token": refresh,
            "scope": scopes.to_scope_string(),
        }))
    }

    // ---- registration, revocation ----

    /// `POST /oauth/register` (RFC 7591).
    pub(crate) async fn register(&self, body: &[u8], ip: IpAddr) -> Outcome {
        if !self.settings.dcr {
            return Outcome::Json {
                status: 404,
                body: json!({ "error": "not_found", "error_description": "dynamic client registration is off on this hub" }),
            };
        }
        if self.registrations.check_key(&ip).is_err() {
            return Outcome::Json {
                status: 429,
                body: json!({ "error": "slow_down", "error_description": "too many registrations from this address" }),
            };
        }
        let meta: ClientMetadata = match serde_json::from_slice(body) {
            Ok(m) => m,
            Err(_) => {
                return Outcome::json_error(&OAuthError::invalid_client_metadata(
                    "the body must be a JSON client metadata object",
                ));
            }
        };
        let client = match meta.validate() {
            Ok(c) => c,
            Err(e) => return Outcome::json_error(&e),
        };
        let client_id = format!("dcr-{}", Uuid::new_v4().simple());
        let now = Utc::now();
        if let Err(e) = self
            .store()
            .oauth_put_client(
                &client_id,
                "dcr",
                &client.client_name,
                &client.redirect_uris,
                now,
            )
            .await
        {
            return Outcome::json_error(&store_err(e));
        }
        self.audit(
            "oauth.client_register",
            None,
            json!({ "client_id": client_id, "client_name": client.client_name, "redirect_uris": client.redirect_uris }),
        );
        Outcome::Json {
            status: 201,
            body: json!({
                "client_id": client_id,
                "client_id_issued_at": now.timestamp(),
                "client_name": client.client_name,
                "redirect_uris": client.redirect_uris,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }),
        }
    }

    /// `POST /oauth/revoke` (RFC 7009): a refresh token revokes its family; an access
    /// token of kind `oauth` revokes itself. Always 200, whatever the token was.
    pub(crate) async fn revoke(&self, form: &[(String, String)]) -> Outcome {
        let token = form
            .iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.as_str());
        let Some(token) = token else {
            return Outcome::json_error(&OAuthError::invalid_request("token is required"));
        };
        let now = Utc::now();
        let digest = self.hasher.digest(token).0;
        let result: Result<(), StoreError> = async {
            if secret::well_formed(token, secret::REFRESH_PREFIX) {
                if let Some((family, client_id)) =
                    self.store().oauth_family_of_refresh(&digest).await?
                {
                    let revoked = self.store().oauth_revoke_family(family, now).await?;
                    self.control.publish_tokens(&revoked);
                    self.audit(
                        "oauth.revoke",
                        None,
                        json!({ "client_id": client_id, "revoked_tokens": revoked.len() }),
                    );
                }
            } else if token.len() <= 256
                && let Some(rec) = self.store().find_token_by_digest(&digest).await?
                && rec.kind == "oauth"
                && rec.revoked_at.is_none()
            {
                self.store().revoke_token(rec.key_id, now).await?;
                self.control.publish_tokens(&[rec.key_id]);
                self.audit(
                    "oauth.revoke",
                    Some(&rec.user_id),
                    json!({ "client_id": rec.oauth_client_id, "key_id": rec.key_id.to_string() }),
                );
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => Outcome::Json {
                status: 200,
                body: json!({}),
            },
            Err(e) => Outcome::json_error(&store_err(e)),
        }
    }
}

fn field_of<'a>(form: &'a [(String, String)], k: &str) -> Option<&'a str> {
    form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// `r`/`w` of a zone permission that `scopes` allow.
fn grantable(p: Permission, scopes: Scopes) -> Option<Permission> {
    let r = p.can_read() && scopes.read;
    let w = p.can_write() && scopes.write;
    match (r, w) {
        (true, true) => Some(Permission::ReadWrite),
        (true, false) => Some(Permission::Read),
        (false, true) => Some(Permission::Write),
        (false, false) => None,
    }
}

fn intersect(a: Permission, b: Permission) -> Option<Permission> {
    grantable(
        a,
        Scopes {
            read: b.can_read(),
            write: b.can_write(),
            admin: false,
        },
    )
}

/// The chosen zones among those the user holds, each at most what the user holds there
/// and what the scopes allow. An admin without listed zones may name any zone, with the
/// scopes' permissions ([`OAuthServer::rights`] lists every active zone for it).
fn narrow_zones(rights: &Rights, chosen: &[&str], scopes: Scopes) -> Vec<ZoneGrant> {
    let mut out: Vec<ZoneGrant> = Vec::new();
    for z in chosen {
        if out.iter().any(|g| g.zone_id == *z) {
            continue;
        }
        let held = rights
            .zones
            .iter()
            .find(|g| g.zone_id == *z)
            .map(|g| g.permission);
        if let Some(p) = held.and_then(|p| grantable(p, scopes))
            && nexus_wire::spec::validate_zone_name(z).is_ok()
        {
            out.push(ZoneGrant {
                zone_id: (*z).to_owned(),
                permission: p,
            });
        }
    }
    out.sort_by(|a, b| a.zone_id.cmp(&b.zone_id));
    out
}

fn zone_spec(zones: &[ZoneGrant]) -> String {
    zones
        .iter()
        .map(|g| format!("{}:{}", g.zone_id, g.permission.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}
