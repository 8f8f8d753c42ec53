//! OIDC access-token verification (SPEC §10): one [`OidcVerifier`] per configured issuer
//! checks an RFC 9068 access token against that issuer's keys ([`jwks`]) and maps its
//! claims to who the caller is ([`Verified`]). Pure: no database, no cache of identities;
//! the rpc-server binds the result to a registered subject and caches it.
//!
//! A token is accepted only when all of these hold: at most [`MAX_JWT_LEN`] bytes; `typ`
//! absent, `JWT` or `at+jwt`; a key of the issuer (by `kid`; `jku`/`x5u`/`jwk` in the header
//! are never followed) whose type allows the header's `alg`; a valid signature; `exp` present
//! and not passed, `nbf`/`iat` not in the future (60 s leeway); `iss` exactly the issuer;
//! `aud` containing the configured audience; no `nonce` or `at_hash` (an ID token is proof of
//! a login to some client, not a grant to call the hub); a subject id of the §9 form.

pub mod jwks;

use crate::config::OidcConfig;
use crate::shape::{MAX_JWT_LEN, Shape, shape};
use jsonwebtoken::{Algorithm, Validation};
use jwks::{HttpFetcher, JwksCache, KeyError, OnFetch};
use nexus_wire::spec::{ZoneGrant, parse_zone_spec};
use serde_json::{Map, Value};
use std::str::FromStr;

/// Leeway on `exp`, `nbf` and `iat`, for clocks that disagree a little.
pub const LEEWAY_SECS: u64 = 60;
/// Groups taken from a token, and the longest name kept; more is refused, not truncated:
/// a partial group list could grant less than intended, never more, but silently.
pub const MAX_GROUPS: usize = 64;
pub const MAX_GROUP_LEN: usize = 128;

/// Why a token was refused; each has a fixed metrics label. Callers all see one 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not a compact JWS, too long, or an unreadable header or payload.
    Malformed,
    /// `typ` says it is not an access token, or it carries `nonce`/`at_hash`.
    IdToken,
    /// No key of the issuer has the token's `kid`.
    UnknownKey,
    /// The key's type does not allow the header's `alg` (`none`, HS*, a mismatch).
    Algorithm,
    Signature,
    Expired,
    /// `nbf` or `iat` in the future.
    NotYetValid,
    Issuer,
    Audience,
    /// A claim is missing or not of the form the hub accepts (subject, groups, zones).
    Claims,
    /// The issuer's keys cannot be had (never fetched, or last fetched over 24 h ago).
    Unavailable,
    /// An ID token's `nonce` is missing or not the one the hub sent.
    Nonce,
}

impl Rejection {
    pub const fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::IdToken => "id_token",
            Self::UnknownKey => "unknown_kid",
            Self::Algorithm => "algorithm",
            Self::Signature => "signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Issuer => "issuer",
            Self::Audience => "audience",
            Self::Claims => "claims",
            Self::Unavailable => "unavailable",
            Self::Nonce => "nonce",
        }
    }
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The `subject_claim` value, a §9 subject id.
    pub subject: String,
    /// Groups from `groups_claim`, valid group names, sorted, without repeats.
    pub groups: Vec<String>,
    /// A member of an `admin_groups` group.
    pub is_admin: bool,
    /// Zone grants from `zones_claim`, when configured and present.
    pub zones: Vec<ZoneGrant>,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
}

/// One issuer: its settings and its keys.
#[derive(Debug)]
pub struct OidcVerifier {
    issuer: String,
    audience: Vec<String>,
    subject_claim: String,
    groups_claim: Option<String>,
    admin_groups: Vec<String>,
    zones_claim: Option<String>,
    keys: JwksCache,
}

impl OidcVerifier {
    /// Checks the settings and prepares the key cache (nothing is fetched until the first
    /// token). `on_fetch` hears each fetch's outcome.
    pub fn new(cfg: &OidcConfig, on_fetch: OnFetch) -> Result<Self, String> {
        let issuer = cfg.issuer.clone();
        if !jwks::fetchable(&issuer) {
            return Err(format!(
                "oidc issuer {issuer:?} must be an https URL (plain http only on loopback)"
            ));
        }
        if let Some(u) = &cfg.jwks_uri
            && !jwks::fetchable(u)
        {
            return Err(format!(
                "oidc jwks_uri {u:?} must be an https URL (plain http only on loopback)"
            ));
        }
        let audience = cfg.audience.to_vec();
        if audience.is_empty() || audience.iter().any(String::is_empty) {
            return Err(format!("oidc issuer {issuer}: audience must not be empty"));
        }
        let allowed = match &cfg.algorithms {
            None => None,
            Some(names) => Some(
                names
                    .iter()
                    .map(|n| match Algorithm::from_str(n) {
                        Ok(a) if !matches!(
                            a,
                            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
                        ) => Ok(a),
                        _ => Err(format!(
                            "oidc issuer {issuer}: algorithm {n:?} is not accepted (use RS*, PS*, ES256, ES384 or EdDSA)"
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let fetcher = HttpFetcher::new(&issuer, cfg.jwks_uri.as_deref(), allowed)?;
        Ok(Self {
            issuer,
            audience,
            subject_claim: cfg.subject_claim.clone().unwrap_or_else(|| "sub".into()),
            groups_claim: cfg.groups_claim.clone(),
            admin_groups: cfg.admin_groups.clone(),
            zones_claim: cfg.zones_claim.clone(),
            keys: JwksCache::new(fetcher.into_fn(), on_fetch),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verifies `token` in full and maps its claims.
    pub async fn verify(&self, token: &str) -> Result<Verified, Rejection> {
        if token.len() > MAX_JWT_LEN || shape(token) != Shape::Jwt {
            return Err(Rejection::Malformed);
        }
        // An unknown `alg` (`none` included) fails here: the header does not parse.
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Malformed)?;
        if let Some(typ) = &header.typ {
            let t = typ.to_ascii_lowercase();
            if !matches!(t.as_str(), "jwt" | "at+jwt" | "application/at+jwt") {
                return Err(Rejection::IdToken);
            }
        }
        let claims = self.decode(token, &header, &self.audience).await?;
        self.map_claims(&claims)
    }

    /// The claims of `token` once its signature (the issuer's key named by the header, an
    /// algorithm of that key), `exp`/`nbf`, `iss` and an audience among `audience` hold.
    async fn decode<A: ToString>(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
        audience: &[A],
    ) -> Result<Map<String, Value>, Rejection> {
        let key = self
            .keys
            .key(header.kid.as_deref())
            .await
            .map_err(|e| match e {
                KeyError::Unknown => Rejection::UnknownKey,
                KeyError::Unavailable => Rejection::Unavailable,
            })?;
        if !key.algorithms.contains(&header.alg) {
            return Err(Rejection::Algorithm);
        }
        let mut v = Validation::new(header.alg);
        v.leeway = LEEWAY_SECS;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(audience);
        jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &v)
            .map(|d| d.claims)
            .map_err(decode_rejection)
    }

    /// Verifies an ID token the hub received as a client of this issuer (sign-in on the
    /// OAuth pages, SPEC §11): the issuer's keys and algorithms as for access tokens,
    /// `exp`/`iss` required, `aud` containing `client_id` (and `azp`, when present, equal
    /// to it), `nonce` equal to the one the hub sent (compared in constant time); then the
    /// same claim mapping as an access token's.
    pub async fn verify_id_token(
        &self,
        token: &str,
        client_id: &str,
        nonce: &str,
    ) -> Result<Verified, Rejection> {
        if token.len() > MAX_JWT_LEN || shape(token) != Shape::Jwt {
            return Err(Rejection::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Malformed)?;
        let c = self.decode(token, &header, &[client_id]).await?;
        if c.get("azp").is_some_and(|a| a.as_str() != Some(client_id)) {
            return Err(Rejection::Audience);
        }
        let sent = c.get("nonce").and_then(Value::as_str).unwrap_or_default();
        if sent.is_empty() || !constant_time_eq(sent.as_bytes(), nonce.as_bytes()) {
            return Err(Rejection::Nonce);
        }
        self.map_identity(&c)
    }

    /// The checks `jsonwebtoken` does not make, then the claim mapping.
    fn map_claims(&self, c: &Map<String, Value>) -> Result<Verified, Rejection> {
        if c.contains_key("nonce") || c.contains_key("at_hash") {
            return Err(Rejection::IdToken);
        }
        self.map_identity(c)
    }

    /// `iat`, then subject, groups, admin and zones from the configured claims.
    fn map_identity(&self, c: &Map<String, Value>) -> Result<Verified, Rejection> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(iat) = c.get("iat") {
            let iat = iat.as_u64().ok_or(Rejection::Claims)?;
            if iat > now.saturating_add(LEEWAY_SECS) {
                return Err(Rejection::NotYetValid);
            }
        }
        let expires_at = c
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(Rejection::Claims)?;
        let subject = c
            .get(&self.subject_claim)
            .and_then(Value::as_str)
            .filter(|s| is_subject_id(s))
            .ok_or(Rejection::Claims)?
            .to_owned();
        let groups = match self.groups_claim.as_ref().and_then(|g| c.get(g)) {
            None => Vec::new(),
            Some(v) => groups(v)?,
        };
        let is_admin = groups.iter().any(|g| self.admin_groups.contains(g));
        let zones = match self.zones_claim.as_ref().and_then(|z| c.get(z)) {
            None => Vec::new(),
            Some(v) => zones(v)?,
        };
        Ok(Verified {
            subject,
            groups,
            is_admin,
            zones,
            expires_at,
        })
    }
}

fn decode_rejection(e: jsonwebtoken::errors::Error) -> Rejection {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => Rejection::Signature,
        K::ExpiredSignature => Rejection::Expired,
        K::ImmatureSignature => Rejection::NotYetValid,
        K::InvalidIssuer => Rejection::Issuer,
        K::InvalidAudience => Rejection::Audience,
        K::MissingRequiredClaim(_) => Rejection::Claims,
        K::InvalidAlgorithm => Rejection::Algorithm,
        _ => Rejection::Malformed,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// `[a-z0-9][a-z0-9._@-]{0,127}` (SPEC §9): subject ids and group names.
pub fn is_subject_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_GROUP_LEN
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'@' | b'-')
        })
}

/// A list of group names (or one name, as some IdPs send a single group as a string).
/// Names that cannot be a §9 group are skipped: the IdP's other groups mean nothing here.
fn groups(v: &Value) -> Result<Vec<String>, Rejection> {
    let items: Vec<&Value> = match v {
        Value::String(_) => vec![v],
        Value::Array(a) if a.len() <= MAX_GROUPS => a.iter().collect(),
        _ => return Err(Rejection::Claims),
    };
    let mut out: Vec<String> = items
        .into_iter()
        .filter_map(Value::as_str)
        .filter(|g| is_subject_id(g))
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// `eng:rw,ops:r`, or a list of such items.
fn zones(v: &Value) -> Result<Vec<ZoneGrant>, Rejection> {
    let spec = match v {
        Value::String(s) => s.clone(),
        Value::Array(a) if a.len() <= MAX_GROUPS => a
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or(Rejection::Claims))
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        _ => return Err(Rejection::Claims),
    };
    let mut z = parse_zone_spec(&spec).map_err(|_| Rejection::Claims)?;
    z.sort_by(|a, b| a.zone_id.cmp(&b.zone_id));
    Ok(z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verifier(cfg: serde_json::Value) -> OidcVerifier {
        let mut base = json!({"issuer": "http://127.0.0.1:9/", "audience": "http://hub/mcp"});
        base.as_object_mut()
            .expect("obj")
            .extend(cfg.as_object().expect("obj").clone());
        let cfg: OidcConfig = serde_json::from_value(base).expect("config");
        OidcVerifier::new(&cfg, std::sync::Arc::new(|_| {})).expect("verifier")
    }

    fn claims(v: serde_json::Value) -> Map<String, Value> {
        let mut c = json!({"exp": 4_000_000_000u64, "sub": "alice", "iat": 1});
        c.as_object_mut()
            .expect("obj")
            .extend(v.as_object().expect("obj").clone());
        c.as_object().expect("obj").clone()
    }

    #[test]
    fn claims_map_to_subject_groups_admin_and_zones() {
        let v = verifier(json!({
            "groups_claim": "groups", "admin_groups": ["ops"], "zones_claim": "nexus_zones"
        }));
        let got = v
            .map_claims(&claims(json!({
                "groups": ["eng", "ops", "eng", "Not A Group"],
                "nexus_zones": ["ops:r", "eng:rw"]
            })))
            .expect("mapped");
        assert_eq!(got.subject, "alice");
        assert_eq!(got.groups, ["eng", "ops"]);
        assert!(got.is_admin);
        assert_eq!(
            got.zones
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["eng:rw", "ops:r"]
        );
        let text = v
            .map_claims(&claims(json!({"nexus_zones": "eng:r"})))
            .expect("mapped");
        assert_eq!(text.zones[0].to_string(), "eng:r");
        assert!(!text.is_admin);
    }

    #[test]
    fn bad_claims_are_refused() {
        let v = verifier(json!({"groups_claim": "groups", "zones_claim": "z"}));
        for (what, c) in [
            ("nonce", json!({"nonce": "n"})),
            ("at_hash", json!({"at_hash": "h"})),
            ("subject pattern", json!({"sub": "Alice Smith"})),
            ("subject type", json!({"sub": 7})),
            ("groups type", json!({"groups": {"a": 1}})),
            (
                "too many groups",
                json!({"groups": vec!["g"; MAX_GROUPS + 1]}),
            ),
            ("zones", json!({"z": "eng:xyz"})),
            ("iat in the future", json!({"iat": 9_000_000_000u64})),
        ] {
            assert!(v.map_claims(&claims(c)).is_err(), "{what}");
        }
        let no_sub = {
            let mut c = claims(json!({}));
            c.remove("sub");
            c
        };
        assert_eq!(v.map_claims(&no_sub), Err(Rejection::Claims));
    }

    #[test]
    fn settings_are_checked() {
        let bad = |extra: serde_json::Value| {
            let mut base = json!({"issuer": "http://127.0.0.1:9", "audience": "a"});
            base.as_object_mut()
                .expect("obj")
                .extend(extra.as_object().expect("obj").clone());
            let cfg: OidcConfig = serde_json::from_value(base).expect("config");
            OidcVerifier::new(&cfg, std::sync::Arc::new(|_| {})).is_err()
        };
        assert!(bad(json!({"issuer": "idp.example"})));
        assert!(bad(json!({"algorithms": ["HS256"]})));
        assert!(bad(json!({"algorithms": ["none"]})));
        assert!(bad(json!({"jwks_uri": "file:///etc/passwd"})));
        assert!(bad(json!({"audience": ""})));
        assert!(!bad(
            json!({"algorithms": ["ES256"], "audience": ["a", "b"]})
        ));
    }

    #[tokio::test]
    async fn junk_is_refused_before_any_fetch() {
        let v = verifier(json!({}));
        assert_eq!(v.verify("sk-abc").await, Err(Rejection::Malformed));
        let none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.c2ln";
        assert_eq!(v.verify(none).await, Err(Rejection::Malformed), "alg none");
        let long = format!("{}.b.c", "a".repeat(MAX_JWT_LEN));
        assert_eq!(v.verify(&long).await, Err(Rejection::Malformed));
        // typ: "JWT" is fine, "id_token"-ish types are not; checked before any key lookup.
        let b = |s: &str| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
        };
        let idt = format!(
            "{}.{}.c2ln",
            b(r#"{"alg":"ES256","typ":"id+jwt"}"#),
            b("{}")
        );
        assert_eq!(v.verify(&idt).await, Err(Rejection::IdToken));
    }
}
