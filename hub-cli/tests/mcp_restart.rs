//! The rpc-server goes away under a live frontend and comes back on the same port (SPEC §1,
//! §5): while it is down, tool calls fail fast with a message that says to retry (or a clean
//! HTTP error) and the frontend's /health is 503; once it is back, the same frontend and the
//! same clients, in both lifecycles, work again and see the files written before.

use crate::common;

use common::{ERAS, STEP, connect, expect_ok, http, spawn_frontend, try_call};
use rpc_server::Application;
use rpc_server::auth::InvalidationBus;
use rpc_server::db::Backend;
use rpc_server::testing::{TestApp, TestOptions};
use serde_json::json;

async fn health(base: &str) -> u16 {
    tokio::time::timeout(STEP, http().get(format!("{base}/health")).send())
        .await
        .expect("/health hung")
        .expect("/health")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_frontend_rides_out_an_rpc_server_restart() {
    let app = TestApp::spawn(Backend::Postgres).await;
    app.zone("eng").await;
    let tok = app.mint("agent", Some("eng:rw"), false).await.token;
    let port = app.port;
    let fe = spawn_frontend(&app.base).await;
    assert_eq!(health(&fe.base).await, 200);

    let mut clients = Vec::new();
    for era in ERAS {
        let c = connect(&fe.mcp_url, &tok, era).await;
        expect_ok(
            &format!("{}: write before", era.name()),
            try_call(
                &c,
                "nexus_write_file",
                json!({"path": format!("/{}.txt", era.name()), "content": "before"}),
            )
            .await,
        );
        clients.push((era, c));
    }

    // Down: fast, clear failures; /health says so. Fast means the refused connection is
    // reported as such, not after the frontend's call timeout: that timeout is longer than
    // try_call's STEP bound, so a call that waited for it fails there as hung, and the
    // message must not be the timeout's.
    assert!(
        mcp_frontend::FrontendConfig::local(&app.base, 0).rpc_timeout > STEP,
        "the frontend's call timeout must exceed STEP for this test to tell fast from slow"
    );
    let (db, dir) = app.stop().await;
    for (era, c) in &clients {
        let e = era.name();
        for tool in ["nexus_whoami", "nexus_read_file"] {
            let r = try_call(c, tool, json!({"path": format!("/{e}.txt")})).await;
            let msg = match r {
                Ok(r) => {
                    assert_eq!(r.is_error, Some(true), "{e}: {tool} while down: {r:?}");
                    let msg = common::text(&r).to_ascii_lowercase();
                    assert!(
                        msg.contains("unavailable") || msg.contains("retry"),
                        "{e}: {tool} while down: {msg}"
                    );
                    msg
                }
                Err(err) => {
                    let msg = err.to_string();
                    assert!(
                        msg.contains("503") || msg.to_ascii_lowercase().contains("unavailable"),
                        "{e}: {tool} while down, an HTTP error that says why: {msg}"
                    );
                    msg
                }
            };
            assert!(
                !msg.to_ascii_lowercase().contains("timed out"),
                "{e}: {tool} while down waited for a timeout instead of failing at once: {msg}"
            );
        }
    }
    assert_eq!(health(&fe.base).await, 503, "frontend /health while down");

    // Back on the same port, same database and files; the frontend is not touched.
    let mut cfg = rpc_server::testing::config(&db.url, dir.path(), &TestOptions::default());
    cfg.port = port;
    let server = Application::build_with_bus(cfg, InvalidationBus::new())
        .await
        .expect("restart the rpc-server on its old port");
    assert_eq!(server.port(), port);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.run_until_stopped(async move {
        let _ = stop_rx.await;
    }));

    assert_eq!(
        health(&fe.base).await,
        200,
        "frontend /health after restart"
    );
    for (era, c) in &clients {
        let e = era.name();
        let r = expect_ok(
            &format!("{e}: read after restart"),
            try_call(c, "nexus_read_file", json!({"path": format!("/{e}.txt")})).await,
        );
        assert_eq!(r, "before", "{e}");
        expect_ok(
            &format!("{e}: write after restart"),
            try_call(
                c,
                "nexus_write_file",
                json!({"path": format!("/{e}.txt"), "content": "after"}),
            )
            .await,
        );
        assert_eq!(
            rpc_server::testing::stored_file(&db.store, dir.path(), "eng", &format!("{e}.txt"))
                .await
                .as_deref(),
            Some(&b"after"[..])
        );
    }
    // A client that connects now works too.
    let fresh = connect(&fe.mcp_url, &tok, common::Era::Stateless).await;
    expect_ok(
        "fresh whoami",
        try_call(&fresh, "nexus_whoami", json!({})).await,
    );

    for (_, c) in clients {
        let _ = c.cancel().await;
    }
    let _ = fresh.cancel().await;
    let _ = stop_tx.send(());
    let _ = handle.await;
}
