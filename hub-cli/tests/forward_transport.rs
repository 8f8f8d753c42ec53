//! The frontend's rpc client over both transports against one real rpc-server: loopback
//! HTTP to its port, and its router called in this process. Same answers, same verified
//! caller, same refusals.

use mcp_frontend::forward::{
    CallerToken, Charge, ForwardError, HttpTransport, RpcClient, ServiceTransport, Transport,
    Verified,
};
use rpc_server::Application;
use rpc_server::auth::{InvalidationBus, TokenHasher};
use rpc_server::control::Control;
use rpc_server::db::Backend;
use rpc_server::testing::{TestDb, TestOptions, config, test_secret};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A running rpc-server, and a client for each way of reaching it.
struct Server {
    http: RpcClient,
    service: RpcClient,
    control: Control,
    _stop: tokio::sync::oneshot::Sender<()>,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

async fn start(o: TestOptions) -> Server {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = InvalidationBus::new();
    let app = Application::build_with_bus(config(&db.url, dir.path(), &o), bus.clone())
        .await
        .expect("build the rpc-server");
    // The same state as the server on the port: one cache, one limiter, one data dir.
    let in_process: Arc<dyn Transport> = Arc::new(ServiceTransport::new(app.router()));
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let hasher = Arc::new(TokenHasher::new(&test_secret()).expect("secret"));
    let control = Control::new(db.store.clone(), hasher, bus, None);
    Server {
        http: RpcClient::with_transport(&base, Arc::new(HttpTransport::new()), TIMEOUT),
        service: RpcClient::with_transport(&base, in_process, TIMEOUT),
        control,
        _stop: stop,
        _db: db,
        _dir: dir,
    }
}

impl Server {
    async fn token(&self, name: &str, zones: Option<&str>, admin: bool) -> CallerToken {
        let created = self
            .control
            .create_token(nexus_wire::methods::TokenCreateParams {
                name: name.into(),
                zones: zones.map(Into::into),
                admin,
                ..Default::default()
            })
            .await
            .expect("mint a token");
        CallerToken {
            secret: SecretString::from(created.token),
            client: Some("127.0.0.1".parse().expect("ip")),
        }
    }

    fn both(&self) -> [(&'static str, &RpcClient); 2] {
        [("http", &self.http), ("in-process", &self.service)]
    }
}

/// Verified without the rate-limit budget, which each counted call spends.
fn who(v: &Verified) -> Verified {
    Verified {
        rate: None,
        ..v.clone()
    }
}

fn raw(v: Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(&v).expect("raw params")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_transports_give_the_same_answers() {
    let s = start(TestOptions::default()).await;
    s.control.create_zone("eng").await.expect("create zone");
    let admin = s.token("root", None, true).await;
    let member = s.token("member", Some("eng"), false).await;

    // whoami: the same result and the same verified caller, free or counted.
    for tok in [&admin, &member] {
        let (a, va) = s.http.call(tok, "whoami", json!({})).await.expect("http");
        let (b, vb) = s
            .service
            .call(tok, "whoami", json!({}))
            .await
            .expect("in-process");
        assert_eq!(a, b);
        assert_eq!(va, vb);
        assert!(!va.key_id.is_empty(), "{va:?}");
        let counted = [
            s.http.whoami(tok, Charge::Counted).await.expect("http"),
            s.service
                .whoami(tok, Charge::Counted)
                .await
                .expect("in-process"),
        ];
        assert_eq!(who(&counted[0]), who(&counted[1]));
        assert_eq!(who(&counted[0]), who(&va));
        let limits = counted.map(|v| v.rate.expect("a counted call carries its budget"));
        assert_eq!(limits[0].limit, limits[1].limit);
        assert!(
            limits[1].remaining < limits[0].remaining,
            "both spend one budget: {limits:?}"
        );
    }
    let admin_who = s.http.whoami(&admin, Charge::Free).await.expect("whoami");
    assert!(admin_who.is_admin);
    let member_who = s.http.whoami(&member, Charge::Free).await.expect("whoami");
    assert!(!member_who.is_admin);
    assert_eq!(member_who.zone, "eng");

    // write then read, each through one transport, each file read back through both.
    let mut written = Vec::new();
    for (name, rpc) in s.both() {
        let path = format!("/zone/eng/{name}.txt");
        let (w, vw) = rpc
            .call_raw(
                &admin,
                "write",
                &raw(json!({"path": path, "content": "same bytes"})),
            )
            .await
            .unwrap_or_else(|e| panic!("{name} write: {e}"));
        let mut w: Value = serde_json::from_slice(&w).expect("write result");
        assert_eq!(w["path"], path.as_str(), "{name}: {w}");
        assert_eq!(w["created"], true, "{name}: {w}");
        w["path"] = Value::Null;
        written.push((w, who(&vw)));
    }
    assert_eq!(written[0], written[1]);
    for name in ["http", "in-process"] {
        let params = raw(json!({"path": format!("/zone/eng/{name}.txt")}));
        let (a, va) = s
            .http
            .call_raw(&admin, "read", &params)
            .await
            .expect("http");
        let (b, vb) = s
            .service
            .call_raw(&admin, "read", &params)
            .await
            .expect("in-process");
        assert_eq!(a, b, "the same bytes of JSON");
        assert_eq!(who(&va), who(&vb));
        let r: Value = serde_json::from_slice(&a).expect("read result");
        assert_eq!(r["content"], "same bytes", "{r}");
        let (v, _) = s
            .service
            .call(
                &admin,
                "read",
                json!({"path": format!("/zone/eng/{name}.txt")}),
            )
            .await
            .expect("read as a Value");
        assert_eq!(v, r);
    }

    // Refusals and method errors map the same way.
    for (name, rpc) in s.both() {
        let e = rpc
            .call(&admin, "read", json!({"path": "/zone/eng/missing.txt"}))
            .await
            .expect_err("missing");
        match e {
            ForwardError::Rpc(e) => assert_eq!(
                e.kind(),
                Some(nexus_wire::ErrorCode::FileNotFound),
                "{name}: {e}"
            ),
            e => panic!("{name}: {e:?}"),
        }
        let e = rpc
            .call(&admin, "no_such_method", json!({}))
            .await
            .expect_err("unknown method");
        match e {
            ForwardError::Rpc(e) => assert_eq!(
                e.kind(),
                Some(nexus_wire::ErrorCode::MethodNotFound),
                "{name}: {e}"
            ),
            e => panic!("{name}: {e:?}"),
        }
        let stranger = CallerToken {
            secret: SecretString::from("sk-not-a-token-of-this-hub".to_owned()),
            client: None,
        };
        let e = rpc
            .whoami(&stranger, Charge::Free)
            .await
            .expect_err("unknown token");
        assert!(matches!(e, ForwardError::Unauthorized), "{name}: {e:?}");
        assert!(rpc.ready().await, "{name}: ready");
    }
}

/// The router called in-process sees the loopback peer a TCP connection from this host
/// has: failed authentications from either transport spend the one address's budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_calls_come_from_the_loopback_address() {
    let mut o = TestOptions::default();
    o.limits.auth_failures = nexus_wire::spec::RateLimit {
        count: 3,
        period_secs: 3600,
    };
    let s = start(o).await;
    let stranger = CallerToken {
        secret: SecretString::from("sk-not-a-token-of-this-hub".to_owned()),
        client: None,
    };
    for rpc in [&s.http, &s.service, &s.service] {
        let e = rpc
            .whoami(&stranger, Charge::Free)
            .await
            .expect_err("unknown");
        assert!(matches!(e, ForwardError::Unauthorized), "{e:?}");
    }
    for (name, rpc) in [("in-process", &s.service), ("http", &s.http)] {
        let e = rpc
            .whoami(&stranger, Charge::Free)
            .await
            .expect_err("unknown");
        assert!(
            matches!(e, ForwardError::RateLimited { .. }),
            "{name}: the address is over its budget: {e:?}"
        );
    }
}
