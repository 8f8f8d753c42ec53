//! MCP authorization metadata (SPEC §10, changes §5) from outside, with a real nexusd and
//! a real frontend: nexusd says which issuers its chain accepts on `GET /auth/providers`
//! (no token); the frontend's RFC 9728 document lists at least one authorization server
//! (those issuers, or the hub itself when the chain has none) and `scopes_supported`; a
//! 401's challenge carries `scope=` beside `resource_metadata=`. The frontend's reading of
//! an answer with issuers, its refresh and its last-good fallback are in
//! `mcp-frontend/src/forward/tests.rs` (an rpc-server with an issuer needs a JWT provider
//! in the chain).

mod common;

use common::mcp::{initialize_body, post, send};
use common::{http, spawn_frontend};
use rpc_server::db::Backend;
use rpc_server::testing::TestApp;
use serde_json::{Value, json};

#[tokio::test]
async fn nexusd_names_its_issuers_and_the_frontend_never_lists_no_authorization_server() {
    let app = TestApp::spawn(Backend::Postgres).await;
    // No token needed; a database-keys chain accepts no issuer.
    let r = send(http().get(format!("{}/auth/providers", app.base))).await;
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.expect("JSON");
    assert_eq!(
        v,
        json!({"issuers": [], "scopes_supported": ["files:read", "files:write", "hub:admin"]})
    );

    let fe = spawn_frontend(&app.base).await;
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let r = send(http().get(format!("{}{path}", fe.base))).await;
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let doc: Value = r.json().await.expect("JSON");
        assert_eq!(doc["resource"], format!("{}/mcp", fe.base), "{path}: {doc}");
        // The hub itself is the authorization server while nexusd names none.
        assert_eq!(
            doc["authorization_servers"],
            json!([fe.base]),
            "{path}: {doc}"
        );
        assert_eq!(
            doc["scopes_supported"],
            json!(["files:read", "files:write", "hub:admin"]),
            "{path}: {doc}"
        );
    }

    let r = send(post(&fe.mcp_url, None, &initialize_body("meta-test"))).await;
    assert_eq!(r.status().as_u16(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().expect("ASCII");
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource\", scope=\"files:read files:write\"",
            fe.base
        )
    );
}
