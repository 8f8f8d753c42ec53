//! The rpc-server's HTTP edge driven in-process (`oneshot` on its router, no socket): how
//! it answers requests that never make a well-formed call, and what it logs per request.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use nexus_wire::{ErrorEnvelope, headers};
use rpc_server::db::Backend;
use rpc_server::testing::{TestApp, TestOptions};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const WHOAMI: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"whoami","params":{}}"#;

fn post(method: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Request<Body> {
    let mut r = Request::post(format!("{}{method}", nexus_wire::RPC_PREFIX))
        .header(header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(body.into()).expect("request")
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
}

/// The 401 every credential problem gets: the wire envelope and a Bearer challenge.
fn assert_unauthorized(what: &str, status: StatusCode, h: &HeaderMap, body: &[u8]) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
    assert!(h.contains_key(header::WWW_AUTHENTICATE), "{what}");
    let e: ErrorEnvelope = serde_json::from_slice(body).expect("error envelope");
    assert_eq!(e.error.code, "unauthorized", "{what}");
    for name in headers::IDENTITY {
        assert!(!h.contains_key(name), "{what}: {name} on a refusal");
    }
}

async fn app() -> (TestApp, String) {
    let app = TestApp::spawn_with(Backend::Sqlite, TestOptions::unthrottled()).await;
    app.zone("eng").await;
    let token = app.mint("edge", Some("eng:rw"), false).await.token;
    (app, token)
}

#[tokio::test]
async fn calls_that_are_not_well_formed_get_json_rpc_errors() {
    let (app, token) = app().await;
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];
    let cases: [(&str, &[u8], i64); 5] = [
        (
            "nope",
            br#"{"jsonrpc":"2.0","id":1,"method":"nope","params":{}}"#,
            -32601,
        ),
        ("read", b"{\"jsonrpc\":", -32700),
        ("read", b"not json", -32700),
        (
            "read",
            br#"{"jsonrpc":"2.0","id":1,"method":"write","params":{}}"#,
            -32600,
        ),
        (
            "read",
            br#"{"jsonrpc":"2.0","id":1,"method":"read","params":[]}"#,
            -32602,
        ),
    ];
    for (method, body, code) in cases {
        let (status, _, body) = app.oneshot(post(method, &auth, body.to_vec())).await;
        assert_eq!(status, StatusCode::OK, "{method}");
        assert_eq!(json(&body)["error"]["code"], json!(code), "{method}");
    }
}

#[tokio::test]
async fn every_credential_problem_is_one_401() {
    let (app, token) = app().await;
    let bearer = format!("Bearer {token}");
    let cases: [(&str, Vec<(&str, &str)>); 6] = [
        ("missing", vec![]),
        ("wrong scheme", vec![("authorization", "Basic abc")]),
        (
            "unknown token",
            vec![("authorization", "Bearer sk-unknown-0123456789")],
        ),
        (
            "two authorization headers",
            vec![("authorization", &bearer), ("authorization", &bearer)],
        ),
        (
            "two api keys",
            vec![("x-nexus-api-key", &token), ("x-nexus-api-key", &token)],
        ),
        (
            "two different tokens",
            vec![
                ("authorization", &bearer),
                ("x-nexus-api-key", "sk-other-0123456789"),
            ],
        ),
    ];
    for (what, h) in cases {
        let mut with_forged = h.clone();
        with_forged.push((headers::KEY_ID, "forged"));
        let (status, headers, body) = app.oneshot(post("whoami", &with_forged, WHOAMI)).await;
        assert_unauthorized(what, status, &headers, &body);
    }
    // The same token once in each header is one credential.
    let (status, _, _) = app
        .oneshot(post(
            "whoami",
            &[("authorization", &bearer), ("x-nexus-api-key", &token)],
            WHOAMI,
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn identity_headers_from_the_client_are_ignored() {
    let (app, token) = app().await;
    let admin = app.mint("root", None, true).await;
    let bearer = format!("Bearer {token}");
    let forged = [
        ("authorization", bearer.as_str()),
        (headers::KEY_ID, admin.key_id.as_str()),
        (headers::ADMIN, "true"),
        (headers::USER_ID, "root"),
        (headers::ZONE, "*"),
    ];
    let (status, h, body) = app.oneshot(post("whoami", &forged, WHOAMI)).await;
    assert_eq!(status, StatusCode::OK);
    let me = &json(&body)["result"];
    assert_eq!(me["is_admin"], json!(false));
    assert_ne!(me["key_id"], json!(admin.key_id));
    assert_eq!(h[headers::KEY_ID], me["key_id"].as_str().expect("key id"));
    assert_eq!(h[headers::ADMIN], "false");
    // An admin method stays refused whatever the request claims.
    let status_call = br#"{"jsonrpc":"2.0","id":1,"method":"hub_admin_status","params":{}}"#;
    let (status, _, body) = app
        .oneshot(post("hub_admin_status", &forged, status_call.to_vec()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["error"]["code"], json!(-32003));
}

#[tokio::test]
async fn oversized_bodies_and_unknown_endpoints_get_the_envelope() {
    let (app, token) = app().await;
    let bearer = format!("Bearer {token}");
    let huge = vec![b' '; 8 * 1024 * 1024];
    let (status, _, body) = app
        .oneshot(post("write", &[("authorization", &bearer)], huge))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let e: ErrorEnvelope = serde_json::from_slice(&body).expect("envelope");
    assert_eq!(e.error.code, "payload_too_large");

    let get = Request::get(nexus_wire::rpc_path(nexus_wire::Method::Read))
        .body(Body::empty())
        .expect("request");
    let (status, h, body) = app.oneshot(get).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h[header::ALLOW], "POST");
    let e: ErrorEnvelope = serde_json::from_slice(&body).expect("envelope");
    assert_eq!(e.error.code, "method_not_allowed");

    let nowhere = Request::get("/nowhere")
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = app.oneshot(nowhere).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let e: ErrorEnvelope = serde_json::from_slice(&body).expect("envelope");
    assert_eq!(e.error.code, "not_found");
}

/// Log lines written to memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// docs/LOGGING.md: at `debug`, one span per request with the method, the matched route
/// (not the raw URI) and the request id, closed with the status and latency; never a
/// credential.
#[tokio::test]
async fn request_logging_is_as_documented() {
    let (app, token) = app().await;
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let bearer = format!("Bearer {token}");
    let req = post(
        "whoami?probe=1",
        &[
            ("authorization", &bearer),
            (headers::REQUEST_ID, "req-abc-123"),
        ],
        WHOAMI,
    );
    let (status, h, _) = {
        let _guard = tracing::subscriber::set_default(subscriber);
        app.oneshot(req).await
    };
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[headers::REQUEST_ID], "req-abc-123");
    let text = String::from_utf8(logs.0.lock().expect("log buffer").clone()).expect("utf-8");
    let line = text
        .lines()
        .find(|l| l.contains("finished processing request"))
        .unwrap_or_else(|| panic!("no response event in {text}"));
    for want in [
        "method=POST",
        r#"route="/api/nfs/{method}""#,
        r#"request_id="req-abc-123""#,
        "status=200",
        "latency=",
    ] {
        assert!(line.contains(want), "{want} missing from {line}");
    }
    assert!(!text.contains("probe=1"), "the raw URI was logged: {text}");
    assert!(!text.contains(&token), "a token was logged");
}
