//! Rotating the HMAC secret without breaking tokens: with the old secret given as
//! `previous`, tokens minted under it still verify and are re-hashed under the new one on
//! first use, so the old secret can then be retired.

use rpc_server::Application;
use rpc_server::auth::{InvalidationBus, TokenHasher};
use rpc_server::config::AuthMode;
use rpc_server::db::Backend;
use rpc_server::testing::{TestApp, TestOptions, config, test_secret};
use secrecy::SecretString;
use serde_json::json;

const NEW_SECRET: &str = "rotated-secret-0123456789abcdef0123456789abcdef";

async fn server(
    db_url: &str,
    dir: &std::path::Path,
    previous: bool,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let mut cfg = config(db_url, dir, &TestOptions::default());
    cfg.auth = AuthMode::Database {
        url: SecretString::from(db_url.to_owned()),
        secret: SecretString::from(NEW_SECRET),
        previous_secret: previous.then(test_secret),
    };
    let app = Application::build_with_bus(cfg, InvalidationBus::new())
        .await
        .expect("server");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    (base, tx)
}

async fn status(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/api/nfs/whoami"))
        .bearer_auth(token)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "whoami"}))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test]
async fn tokens_survive_a_secret_rotation() {
    let app = TestApp::spawn(Backend::Postgres).await;
    app.zone("eng").await;
    let used = app.mint("used", Some("eng:rw"), false).await;
    let idle = app.mint("idle", Some("eng:rw"), false).await;
    let (db, dir) = app.stop().await;

    // Overlap: new secret, old one as previous. The used token verifies and is re-hashed.
    let (base, stop) = server(&db.url, dir.path(), true).await;
    assert_eq!(status(&base, &used.token).await, 200);
    assert_eq!(
        status(&base, "sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await,
        401
    );
    let new = TokenHasher::new(&SecretString::from(NEW_SECRET)).expect("secret");
    let rec = db
        .store
        .find_token_by_digest(&new.digest(&used.token).0)
        .await
        .expect("lookup");
    assert_eq!(
        rec.map(|r| r.name),
        Some("used".into()),
        "re-hashed under the new secret"
    );
    let _ = stop.send(());

    // Old secret retired: the re-hashed token works, the one idle during the overlap does not.
    let (base, stop) = server(&db.url, dir.path(), false).await;
    assert_eq!(status(&base, &used.token).await, 200);
    assert_eq!(status(&base, &idle.token).await, 401);
    let _ = stop.send(());
}
