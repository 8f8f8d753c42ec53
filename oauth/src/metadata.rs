//! The authorization server metadata (RFC 8414), also served as OpenID discovery (the
//! same document: clients that look there first find the same endpoints; no ID token is
//! issued, so no `jwks_uri`).

use serde_json::{Value, json};

/// The metadata of the issuer `issuer` (the hub's public origin, no trailing slash).
pub fn authorization_server(issuer: &str, registration: bool, cimd: bool) -> Value {
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["files:read", "files:write", "hub:admin"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": cimd,
        "subject_types_supported": ["public"],
    });
    if registration {
        doc["registration_endpoint"] = json!(format!("{issuer}/oauth/register"));
    }
    doc
}
