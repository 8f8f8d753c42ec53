//! What nexusd tells a frontend about who may issue tokens for the hub, so the frontend's
//! RFC 9728 protected-resource metadata (SPEC §10, changes §5) names real authorization
//! servers and every 401 challenge names the scopes a client should ask for. Public:
//! issuers and scope names are no secret, and a client needs them before it has a token.

use serde::{Deserialize, Serialize};

/// `GET` on nexusd, no token: [`AuthProviders`].
pub const AUTH_PROVIDERS_PATH: &str = "/auth/providers";

/// The scopes a hub token can carry, as the metadata's `scopes_supported` lists them.
pub const SCOPES_SUPPORTED: [&str; 3] = ["files:read", "files:write", "hub:admin"];

/// The `scope=` of a 401 challenge: what an MCP client needs to work with files.
pub const CHALLENGE_SCOPE: &str = "files:read files:write";

/// The answer of [`AUTH_PROVIDERS_PATH`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthProviders {
    /// Issuers whose JWTs nexusd's provider chain accepts, in configuration order; empty
    /// when it accepts API keys only.
    pub issuers: Vec<String>,
    pub scopes_supported: Vec<String>,
    /// The hub's own OAuth authorization server (SPEC §11), when on: its issuer, the
    /// frontend's public origin. The frontend names it first in `authorization_servers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_issuer: Option<String>,
}
