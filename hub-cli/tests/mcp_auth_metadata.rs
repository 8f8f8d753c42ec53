//! MCP authorization metadata (SPEC §10, changes §5) from outside, with a real nexusd and
//! a real frontend: nexusd says which issuers its chain accepts on `GET /auth/providers`
//! (no token); the frontend's RFC 9728 document lists at least one authorization server
//! (those issuers, or the hub itself when the chain has none) and `scopes_supported`; a
//! 401's challenge carries `scope=` beside `resource_metadata=`. With issuers configured
//! (the local one and two OIDC IdPs, multi-oidc) the document lists exactly those. The
//! frontend's refresh and its last-good fallback are in `mcp-frontend/src/forward/tests.rs`.

use crate::common;

use common::mcp::{initialize_body, post, send};
use common::{http, spawn_frontend};
use nexus_providers::config::{AuthFile, AuthType, MultiOidcConfig};
use rpc_server::Application;
use rpc_server::auth::InvalidationBus;
use rpc_server::config::AuthChain;
use rpc_server::db::Backend;
use rpc_server::testing::idp::{Idp, idp_available};
use rpc_server::testing::{TestApp, TestDb, TestOptions, config};
use serde_json::{Value, json};
use std::collections::BTreeSet;

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

/// The issuers a document or `/auth/providers` answer lists, as a set.
fn set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

/// A nexusd whose chain is `types` (local issuer `http://hub.test`) with `file`; its base.
async fn nexusd(db: &TestDb, types: Vec<AuthType>, file: AuthFile) -> String {
    let opts = TestOptions {
        auth_chain: AuthChain {
            types,
            file,
            ..Default::default()
        },
        ..TestOptions::unthrottled()
    };
    let mut cfg = config(&db.url, db.dir.path(), &opts);
    cfg.public_url = Some("http://hub.test".into());
    let app = Application::build_with_bus(cfg, InvalidationBus::new())
        .await
        .expect("server");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    base
}

/// With issuers configured the frontend lists exactly them: the local issuer and two OIDC
/// IdPs (multi-oidc) together, then one OIDC IdP alone; never the hub itself beside them.
#[tokio::test]
async fn the_frontend_lists_exactly_the_configured_issuers() {
    if !idp_available() {
        return;
    }
    let keys = tempfile::tempdir().expect("tempdir");
    let a = Idp::fresh(&keys, "a", &[]).await;
    let b = Idp::fresh(&keys, "b", &["--key-type", "rsa"]).await;
    let multi = AuthFile {
        multi_oidc: Some(MultiOidcConfig {
            providers: [
                ("corp".to_owned(), a.config()),
                ("partner".to_owned(), b.config()),
            ]
            .into_iter()
            .collect(),
        }),
        ..Default::default()
    };
    let single = AuthFile {
        oidc: Some(a.config()),
        ..Default::default()
    };
    let cases = [
        (
            vec![AuthType::Database, AuthType::Local, AuthType::MultiOidc],
            multi,
            vec!["http://hub.test", a.url.as_str(), b.url.as_str()],
        ),
        (
            vec![AuthType::Database, AuthType::Oidc],
            single,
            vec![a.url.as_str()],
        ),
    ];
    for (types, file, want) in cases {
        let want: BTreeSet<String> = want.into_iter().map(str::to_owned).collect();
        let db = TestDb::new(Backend::Sqlite).await;
        let base = nexusd(&db, types.clone(), file).await;
        let v: Value = send(http().get(format!("{base}/auth/providers")))
            .await
            .json()
            .await
            .expect("JSON");
        assert_eq!(set(&v["issuers"]), want, "{types:?}: nexusd {v}");
        let fe = spawn_frontend(&base).await;
        for path in [
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp",
        ] {
            let doc: Value = send(http().get(format!("{}{path}", fe.base)))
                .await
                .json()
                .await
                .expect("JSON");
            let listed = &doc["authorization_servers"];
            assert_eq!(set(listed), want, "{types:?} {path}: {doc}");
            assert_eq!(
                listed.as_array().map(Vec::len),
                Some(want.len()),
                "no duplicates: {doc}"
            );
        }
    }
}
