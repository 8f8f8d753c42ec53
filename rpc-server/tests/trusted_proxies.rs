//! The per-address failed-authentication limit behind a proxy: with the proxy trusted, each
//! forwarded client has its own budget, also when the proxy adds its own header line after
//! a forged one; untrusted, a forged X-Forwarded-For changes nothing.

use nexus_wire::spec::RateLimit;
use rpc_server::Application;
use rpc_server::auth::InvalidationBus;
use rpc_server::db::Backend;
use rpc_server::testing::{TestDb, TestOptions, config};

async fn server(trusted: bool) -> (String, TestDb) {
    let db = TestDb::new(Backend::Sqlite).await;
    let opts = TestOptions {
        limits: rpc_server::limits::LimitConfig {
            auth_failures: RateLimit {
                count: 3,
                period_secs: 60,
            },
            ..Default::default()
        },
        ..Default::default()
    };
    let mut cfg = config(&db.url, db.dir.path(), &opts);
    if trusted {
        cfg.trusted_proxies =
            nexus_wire::forwarded::parse_trusted(&["127.0.0.1".into()]).expect("valid");
    }
    let app = Application::build_with_bus(cfg, InvalidationBus::new())
        .await
        .expect("server");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    (base, db)
}

async fn bad_auth(base: &str, forwarded_for: &str) -> u16 {
    bad_auth_lines(base, &[forwarded_for]).await
}

/// A failed authentication with one `X-Forwarded-For` line per item, in order.
async fn bad_auth_lines(base: &str, lines: &[&str]) -> u16 {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/api/nfs/whoami"))
        .bearer_auth("sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    for l in lines {
        req = req.header("x-forwarded-for", *l);
    }
    req.body("{}")
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test]
async fn forwarded_clients_have_their_own_budget_only_behind_a_trusted_proxy() {
    let (base, _db) = server(true).await;
    for _ in 0..3 {
        assert_eq!(bad_auth(&base, "198.51.100.1").await, 401);
    }
    assert_eq!(
        bad_auth(&base, "198.51.100.1").await,
        429,
        "that client is over its budget"
    );
    assert_eq!(
        bad_auth(&base, "198.51.100.2").await,
        401,
        "another client is not"
    );

    let (base, _db) = server(false).await;
    for i in 0..3 {
        assert_eq!(bad_auth(&base, &format!("198.51.100.{i}")).await, 401);
    }
    assert_eq!(
        bad_auth(&base, "203.0.113.77").await,
        429,
        "an untrusted peer cannot pick a new address"
    );
}

/// A trusted proxy that appends the client's address as a line of its own (HAProxy's
/// `option forwardfor`) rather than to the client's line: the client's forged first line
/// must not give it a fresh budget each time.
#[tokio::test]
async fn a_forged_line_before_the_proxys_own_is_not_believed() {
    let (base, _db) = server(true).await;
    for i in 0..3 {
        let forged = format!("203.0.113.{i}");
        assert_eq!(bad_auth_lines(&base, &[&forged, "198.51.100.7"]).await, 401);
    }
    assert_eq!(
        bad_auth_lines(&base, &["203.0.113.99", "198.51.100.7"]).await,
        429,
        "the client is the proxy's line, whatever it wrote first"
    );
    assert_eq!(
        bad_auth_lines(&base, &["198.51.100.7", "198.51.100.8"]).await,
        401,
        "another client behind the same proxy is not"
    );
}
