//! Nexus Hub as the OAuth 2.1 authorization server of MCP clients (SPEC §11), the parts
//! that need no database: PKCE S256 ([`pkce`]), the opaque secrets it hands out and how they
//! are told apart ([`secret`]), client metadata and redirect-URI rules ([`client`]), the
//! rules of Client ID Metadata Documents and their fetch's SSRF guard ([`cimd`]), the
//! authorization request ([`request`]), state sealed into the pages' forms ([`seal`]),
//! CSRF tokens ([`csrf`]), the server-rendered pages and their headers ([`html`]), and the
//! RFC 8414 metadata document ([`metadata`]). nexusd holds the rest: clients, codes and
//! refresh families in its database, and the access tokens, which are its own.

pub mod cimd;
pub mod client;
pub mod csrf;
pub mod html;
pub mod metadata;
pub mod pkce;
pub mod request;
pub mod scope;
pub mod seal;
pub mod secret;

/// Every refusal of the authorization server, as RFC 6749 §5.2 / RFC 7591 §3.2.2 name
/// them; the description is for a person and never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }

    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", d)
    }

    pub fn invalid_client_metadata(d: impl Into<String>) -> Self {
        Self::new("invalid_client_metadata", d)
    }

    pub fn invalid_redirect_uri(d: impl Into<String>) -> Self {
        Self::new("invalid_redirect_uri", d)
    }

    /// The JSON body of a token or registration error.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.code, "error_description": self.description })
    }
}

/// Lifetime of an authorization code: long enough for a client to redeem it at once.
pub const CODE_TTL_SECS: i64 = 60;
/// Lifetime of an access token; the refresh token gets a new one.
pub const ACCESS_TTL_SECS: i64 = 3600;
/// A refresh family lives this long from the consent, however often it rotates.
pub const REFRESH_FAMILY_SECS: i64 = 30 * 24 * 3600;
/// How long the login and consent pages stay usable.
pub const PAGE_TTL_SECS: i64 = 600;
