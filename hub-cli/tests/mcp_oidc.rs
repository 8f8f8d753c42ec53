//! An agent with an OIDC access token works through MCP (SPEC §10): a real OpenID provider
//! (npm `oidc-provider`, [`rpc_server::testing::idp`]) issuing client-credentials `at+jwt`
//! tokens for the frontend's real `/mcp` URL, a real nexusd (`--auth-type database,oidc
//! --auth-config FILE`) and a real frontend. `eng-bot`'s token (groups `[eng]`, a
//! `group:eng#member writer zone:eng` tuple) drives the rmcp client and the official
//! Python SDK: tools, write and read back in the rebac zone; `hub-test`'s (no group) is a
//! valid caller that may not read there; a token for another audience is a 401 with the
//! RFC 9728 challenge, and the frontend's metadata names the IdP.
//!
//! Needs `node` and `tests/oidc/node_modules` (`npm ci --prefix tests/oidc`): without them
//! the test says so and passes, except in CI (`CI` set), where that is a failure.

use crate::common;

use chrono::Utc;
use common::auth::{
    Stack, challenge, frontend_port, mcp_status, private_file, python_sdk, rmcp_round_trip,
};
use common::{ERAS, connect, expect_any_error, try_call};
use nexus_authz::model::{ObjectRef, Relation, SubjectRef, Tuple};
use rpc_server::testing::idp::{Idp, idp_available};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_with_an_oidc_token_works_through_the_frontend() {
    if !idp_available() {
        return;
    }
    let keys = tempfile::tempdir().expect("tempdir");
    let port = frontend_port();
    let fe = format!("http://127.0.0.1:{port}");
    let idp = Idp::fresh_for(&keys, "idp", &format!("{fe}/mcp"), &[]).await;
    let file = private_file(
        keys.path(),
        "auth.yaml",
        &format!(
            "oidc:\n  issuer: {}\n  audience: {fe}/mcp\n  groups_claim: groups\n  zones_claim: nexus_zones\n",
            idp.url
        ),
    );
    let rpc_env = [
        ("NEXUS_AUTH_TYPE", "database,oidc".to_owned()),
        ("NEXUS_AUTH_CONFIG", file.display().to_string()),
    ];
    let hub = Stack::start(port, &rpc_env, &[]).await;
    assert_eq!(hub.fe, fe);
    common::control(&hub.db.store)
        .create_zone_with_access("eng", "rebac")
        .await
        .expect("zone");
    let tuple = Tuple::new(
        SubjectRef::parse("group:eng#member").expect("subject"),
        "writer".parse::<Relation>().expect("relation"),
        ObjectRef::parse("zone:eng").expect("object"),
    );
    hub.db
        .store
        .create_tuple(&tuple, None, Utc::now())
        .await
        .expect("tuple");

    // The frontend's metadata names exactly the configured IdP.
    let doc: Value = common::http()
        .get(format!("{fe}/.well-known/oauth-protected-resource"))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("JSON");
    assert_eq!(doc["resource"], format!("{fe}/mcp"));
    assert_eq!(doc["authorization_servers"], json!([idp.url]), "{doc}");

    // eng-bot writes and reads in the rebac zone its group may write, with both clients.
    let eng = idp.token("eng-bot").await;
    let written = rmcp_round_trip(&hub.mcp, &eng, "/zone/eng", "eng-bot").await;
    python_sdk(&hub.mcp, &eng, "/zone/eng").await;
    let stored = hub.stored_in("eng").await;
    for w in &written {
        assert!(stored.contains(w), "{w} not in {stored:?}");
    }
    assert!(
        stored.iter().any(|p| p.starts_with("python-sdk/discover-")),
        "{stored:?}"
    );

    // hub-test is a valid caller without the group: it connects, and may not read there.
    let plain = idp.token("hub-test").await;
    for era in ERAS {
        let c = connect(&hub.mcp, &plain, era).await;
        let path = format!("/zone/eng/{}", written[0]);
        let e = expect_any_error(
            "no group, no read",
            try_call(&c, "nexus_read_file", json!({ "path": path })).await,
        );
        assert!(!e.contains("written by"), "{e}");
        let _ = c.cancel().await;
    }

    // A token of this IdP for another audience: 401 with the challenge, and no client starts.
    let elsewhere = idp
        .sign(json!({"aud": "http://elsewhere.example/mcp"}), json!({}))
        .await;
    assert_eq!(
        mcp_status(&hub.mcp, &elsewhere).await,
        (401, challenge(&fe))
    );
    assert!(common::auth::try_list(&hub.mcp, &elsewhere).await.is_err());
    // The good token still works after the refusals.
    assert_eq!(mcp_status(&hub.mcp, &eng).await.0, 200);
}
