//! `GET /auth/providers` (no token): the issuers the provider chain accepts and the scopes
//! a hub token can carry. The MCP frontend reads it for its protected-resource metadata
//! (RFC 9728), which must name at least one authorization server.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use nexus_wire::resource::{AuthProviders, SCOPES_SUPPORTED};

pub async fn auth_providers(State(st): State<AppState>) -> Json<AuthProviders> {
    // With the hub's own OAuth server on, the local provider's login-token issuer is not
    // an authorization server a client could discover: the OAuth issuer stands for it.
    let local = st.local.as_ref().map(|l| l.issuer());
    let issuers = st
        .issuers
        .iter()
        .filter(|i| st.oauth.is_none() || Some(i.as_str()) != local)
        .cloned()
        .collect();
    Json(AuthProviders {
        issuers,
        scopes_supported: SCOPES_SUPPORTED.iter().map(|s| (*s).to_owned()).collect(),
        oauth_issuer: st.oauth.as_ref().map(|o| o.issuer().to_owned()),
    })
}
