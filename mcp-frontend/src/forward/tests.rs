//! The client against a real HTTP server on 127.0.0.1 that answers as scripted.

use super::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// One request as the server received it.
#[derive(Debug, Clone)]
struct Seen {
    method: http::Method,
    path: String,
    headers: http::HeaderMap,
    body: Bytes,
}

/// What the server answers.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: body.to_owned(),
        delay: Duration::ZERO,
    }
}

fn ok_with(result: serde_json::Value) -> Reply {
    reply(
        200,
        &json!({"jsonrpc": "2.0", "id": 1, "result": result}).to_string(),
    )
}

type Script = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
}

impl Server {
    async fn start(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        let script: Script = Arc::new(script);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (seen2, conns2) = (seen.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                conns2.fetch_add(1, Ordering::SeqCst);
                let (script, seen) = (script.clone(), seen2.clone());
                let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let (script, seen) = (script.clone(), seen.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await?.to_bytes();
                        let s = Seen {
                            method: parts.method,
                            path: parts.uri.path().to_owned(),
                            headers: parts.headers,
                            body,
                        };
                        let r = script(&s);
                        seen.lock().expect("lock").push(s);
                        tokio::time::sleep(r.delay).await;
                        let mut resp = http::Response::builder().status(r.status);
                        for (k, v) in r.headers {
                            resp = resp.header(k, v);
                        }
                        Ok::<_, hyper::Error>(
                            resp.body(Full::new(Bytes::from(r.body))).expect("response"),
                        )
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            base,
            seen,
            connections,
        }
    }

    fn client(&self) -> RpcClient {
        RpcClient::new(&self.base, Duration::from_secs(5)).expect("client")
    }

    fn last(&self) -> Seen {
        self.seen
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("a request arrived")
    }
}

fn caller() -> CallerToken {
    CallerToken {
        secret: SecretString::from("nx_test_token".to_owned()),
        client: Some("203.0.113.9".parse().expect("ip")),
    }
}

fn header<'a>(s: &'a Seen, name: &str) -> Option<&'a str> {
    s.headers.get(name).and_then(|v| v.to_str().ok())
}

const IDENTITY: [(&str, &str); 7] = [
    ("x-nexus-key-id", "k1"),
    ("x-nexus-admin", "true"),
    ("x-nexus-user-id", "ann%20b"),
    ("x-nexus-zone", "eng"),
    ("x-ratelimit-limit", "100"),
    ("x-ratelimit-remaining", "99"),
    ("x-ratelimit-reset", "60"),
];

fn verified() -> Verified {
    Verified {
        key_id: "k1".into(),
        is_admin: true,
        user_id: "ann b".into(),
        zone: "eng".into(),
        rate: Some(RateHeaders {
            limit: 100,
            remaining: 99,
            reset: 60,
        }),
    }
}

#[tokio::test]
async fn a_call_carries_the_token_and_returns_the_result_and_who_the_caller_is() {
    let srv = Server::start(|_| Reply {
        headers: IDENTITY.to_vec(),
        ..reply(
            200,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content": "hi", "n": [1,2]}}"#,
        )
    })
    .await;
    let rpc = srv.client();
    let (v, who) = rpc
        .call(&caller(), "read", json!({"path": "/a"}))
        .await
        .expect("call");
    assert_eq!(v, json!({"content": "hi", "n": [1, 2]}));
    assert_eq!(who, verified());
    let s = srv.last();
    assert_eq!(
        (s.method.as_str(), s.path.as_str()),
        ("POST", "/api/nfs/read")
    );
    assert_eq!(header(&s, "authorization"), Some("Bearer nx_test_token"));
    assert_eq!(header(&s, "content-type"), Some("application/json"));
    assert_eq!(header(&s, "x-forwarded-for"), Some("203.0.113.9"));
    assert_eq!(header(&s, nexus_wire::identity::COUNT_REQUEST_HEADER), None);
    let body: serde_json::Value = serde_json::from_slice(&s.body).expect("json body");
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["method"], "read");
    assert_eq!(body["params"], json!({"path": "/a"}));
    assert!(body["id"].is_u64());

    // The raw call: params written as given, the result handed back as the server wrote it.
    let params =
        serde_json::value::RawValue::from_string(r#"{"path":"/b"}"#.into()).expect("raw params");
    let (raw, who) = rpc
        .call_raw(&caller(), "read", &params)
        .await
        .expect("raw call");
    assert_eq!(&raw[..], br#"{"content": "hi", "n": [1,2]}"#);
    assert_eq!(who, verified());
    let s = srv.last();
    assert!(
        std::str::from_utf8(&s.body)
            .expect("utf-8")
            .contains(r#""params":{"path":"/b"}"#),
        "{:?}",
        s.body
    );

    // A counted whoami says so; no client address is sent as an empty one.
    let anonymous = CallerToken {
        client: None,
        ..caller()
    };
    assert_eq!(
        rpc.whoami(&anonymous, Charge::Counted)
            .await
            .expect("whoami"),
        verified()
    );
    let s = srv.last();
    assert_eq!(s.path, "/api/nfs/whoami");
    assert_eq!(
        header(&s, nexus_wire::identity::COUNT_REQUEST_HEADER),
        Some("1")
    );
    assert_eq!(header(&s, "x-forwarded-for"), Some(""));
    rpc.whoami(&anonymous, Charge::Free).await.expect("whoami");
    assert_eq!(
        header(&srv.last(), nexus_wire::identity::COUNT_REQUEST_HEADER),
        None
    );

    // Four calls in sequence, one connection: the pool keeps it alive.
    assert_eq!(srv.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn refusals_map_by_status() {
    let srv = Server::start(|s| match s.path.trim_start_matches("/api/nfs/") {
        "unauth" => reply(401, "{}"),
        "limited" => Reply {
            headers: [("retry-after", "7")].into_iter().chain(IDENTITY).collect(),
            ..reply(429, "")
        },
        "limited_bare" => reply(429, ""),
        "large" => reply(413, ""),
        "authdown" => reply(503, ""),
        "broken" => reply(500, "oops"),
        "bad_gateway" => reply(502, ""),
        "failed" => reply(
            200,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32007,"message":"file not found: /a"}}"#,
        ),
        "garbled" => reply(200, "not json"),
        "null" => reply(200, r#"{"jsonrpc":"2.0","id":1,"result":null}"#),
        _ => ok_with(json!(1)),
    })
    .await;
    let rpc = srv.client();
    let call = |m: &'static str| {
        let rpc = &rpc;
        async move { rpc.call(&caller(), m, json!({})).await.expect_err(m) }
    };
    assert!(matches!(call("unauth").await, ForwardError::Unauthorized));
    match call("limited").await {
        ForwardError::RateLimited {
            retry_after,
            verified: who,
        } => {
            assert_eq!(retry_after, Some(7));
            assert_eq!(*who, verified());
        }
        e => panic!("{e:?}"),
    }
    match call("limited_bare").await {
        ForwardError::RateLimited {
            retry_after,
            verified: who,
        } => {
            assert_eq!(retry_after, None);
            assert_eq!(who.rate, None);
        }
        e => panic!("{e:?}"),
    }
    match call("large").await {
        ForwardError::Rpc(e) => {
            assert_eq!(e.kind(), Some(nexus_wire::ErrorCode::TooLarge));
            assert!(e.message.contains("too large for the hub"), "{}", e.message);
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(
        call("authdown").await,
        ForwardError::AuthUnavailable
    ));
    assert!(matches!(call("broken").await, ForwardError::Unavailable(m) if m == "HTTP 500"));
    assert!(matches!(call("bad_gateway").await, ForwardError::Unavailable(m) if m == "HTTP 502"));
    match call("failed").await {
        ForwardError::Rpc(e) => {
            assert_eq!(e.kind(), Some(nexus_wire::ErrorCode::FileNotFound));
            assert_eq!(e.message, "file not found: /a");
        }
        e => panic!("{e:?}"),
    }
    assert!(
        matches!(call("garbled").await, ForwardError::Unavailable(m) if m == "malformed response")
    );
    assert!(matches!(call("null").await, ForwardError::Rpc(e) if e == RpcError::internal()));
    // The refusals did not cost the connection.
    assert_eq!(srv.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let srv = Server::start(|_| Reply {
        delay: Duration::from_secs(30),
        ..ok_with(json!(1))
    })
    .await;
    let rpc = RpcClient::new(&srv.base, Duration::from_millis(200)).expect("client");
    let e = rpc
        .call(&caller(), "read", json!({}))
        .await
        .expect_err("timed out");
    assert!(
        matches!(e, ForwardError::Unavailable(ref m) if m == "timed out"),
        "{e:?}"
    );
    assert!(!rpc.ready().await);
}

#[tokio::test]
async fn a_refused_connection_is_unavailable_at_once() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let rpc = RpcClient::new(&base, Duration::from_secs(30)).expect("client");
    let e = rpc
        .call(&caller(), "read", json!({}))
        .await
        .expect_err("refused");
    assert!(
        matches!(e, ForwardError::Unavailable(ref m) if m == "connection failed"),
        "{e:?}"
    );
    assert!(!rpc.ready().await);
    assert_eq!(rpc.judge_raw(&[], None).await, RawVerdict::Unavailable);
}

/// A server that reads a little of each request and then closes the connection unanswered.
async fn hang_up_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0u8; 16 * 1024];
                let _ = stream.read(&mut buf).await;
                drop(stream);
            });
        }
    });
    base
}

#[tokio::test]
async fn a_large_request_cut_off_mid_upload_is_too_large() {
    let base = hang_up_server().await;
    let rpc = RpcClient::new(&base, Duration::from_secs(10)).expect("client");
    let big = "x".repeat(LARGE_REQUEST + 1);
    let e = rpc
        .call(&caller(), "write", json!({"path": "/big", "content": big}))
        .await
        .expect_err("cut off");
    match e {
        ForwardError::Rpc(e) => assert_eq!(e.kind(), Some(nexus_wire::ErrorCode::TooLarge)),
        e => panic!("{e:?}"),
    }
    // A small one cut off was not refused for its size.
    let e = rpc
        .call(&caller(), "write", json!({"path": "/small"}))
        .await
        .expect_err("cut off");
    assert!(
        matches!(e, ForwardError::Unavailable(ref m) if m == "connection failed"),
        "{e:?}"
    );
}

#[tokio::test]
async fn judge_raw_passes_the_headers_and_never_says_yes() {
    let srv = Server::start(|s| match header(s, "x-api-key") {
        Some("guessing") => reply(429, ""),
        Some("down") => reply(503, ""),
        Some("fine") => ok_with(json!({})),
        _ => reply(401, ""),
    })
    .await;
    let rpc = srv.client();
    let judge = |key: &'static str| {
        let rpc = &rpc;
        async move {
            let creds = [(
                axum::http::HeaderName::from_static("x-api-key"),
                axum::http::HeaderValue::from_static(key),
            )];
            rpc.judge_raw(&creds, Some("198.51.100.4".parse().expect("ip")))
                .await
        }
    };
    assert_eq!(judge("guessing").await, RawVerdict::TooManyFailures);
    assert_eq!(judge("down").await, RawVerdict::Unavailable);
    assert_eq!(judge("fine").await, RawVerdict::Refused);
    assert_eq!(judge("bad").await, RawVerdict::Refused);
    let s = srv.last();
    assert_eq!(s.path, "/api/nfs/whoami");
    assert_eq!(header(&s, "x-api-key"), Some("bad"));
    assert_eq!(header(&s, "authorization"), None);
    assert_eq!(header(&s, "x-forwarded-for"), Some("198.51.100.4"));
}

#[tokio::test]
async fn ready_is_the_readiness_probe() {
    let srv = Server::start(|s| match s.path.as_str() {
        "/healthz/ready" => reply(200, "ok"),
        _ => reply(404, ""),
    })
    .await;
    assert!(srv.client().ready().await);
    assert_eq!(srv.last().method, http::Method::GET);
    let down = Server::start(|_| reply(503, "")).await;
    assert!(!down.client().ready().await);
}

/// A router in this process, reached without a socket, sees a loopback peer.
#[tokio::test]
async fn the_service_transport_calls_a_router_in_process() {
    use axum::extract::ConnectInfo;
    use std::net::SocketAddr;
    let router =
        axum::Router::new().route(
            "/api/nfs/{method}",
            axum::routing::post(
                |ConnectInfo(peer): ConnectInfo<SocketAddr>,
                 headers: http::HeaderMap,
                 body: Bytes| async move {
                    let echo = json!({
                        "peer": peer.to_string(),
                        "host": headers.get("host").and_then(|v| v.to_str().ok()),
                        "auth": headers.get("authorization").and_then(|v| v.to_str().ok()),
                        "sent": serde_json::from_slice::<serde_json::Value>(&body).ok(),
                    });
                    let mut resp = axum::response::IntoResponse::into_response(
                        json!({"jsonrpc": "2.0", "id": 1, "result": echo}).to_string(),
                    );
                    for (k, v) in IDENTITY {
                        resp.headers_mut()
                            .insert(k, http::HeaderValue::from_static(v));
                    }
                    resp
                },
            ),
        );
    let rpc = RpcClient::with_transport(
        "http://nexus:2026/",
        Arc::new(ServiceTransport::new(router)),
        Duration::from_secs(5),
    );
    let (v, who) = rpc
        .call(&caller(), "read", json!({"path": "/a"}))
        .await
        .expect("call");
    assert_eq!(who, verified());
    assert_eq!(v["peer"], "127.0.0.1:0");
    assert_eq!(v["host"], "nexus:2026");
    assert_eq!(v["auth"], "Bearer nx_test_token");
    assert_eq!(v["sent"]["params"], json!({"path": "/a"}));
    // Not routed: the status maps as over HTTP.
    assert!(!rpc.ready().await);
}

/// Reads from `stream` until a request head is in `buf`; returns the body length the head
/// announces and where the body starts. `None` when the peer goes away first.
async fn read_head(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(usize, usize)> {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]);
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            return Some((len, end + 4));
        }
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

/// Reads until `buf` holds `want` bytes; false when the peer goes away first.
async fn read_to(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>, want: usize) -> bool {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 4096];
    while buf.len() < want {
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return false,
        }
    }
    true
}

/// Writes a whole JSON answer with `status` (e.g. `200 OK`) and the caller's key id.
async fn answer(stream: &mut tokio::net::TcpStream, status: &str, body: &str) {
    use tokio::io::AsyncWriteExt;
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-nexus-key-id: k1\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
}

const OK_BODY: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"ok":true}}"#;

/// A server that answers one request per connection (keep-alive promised), then closes the
/// connection once it has been idle for a moment: what a restarted or idle-timing-out
/// rpc-server does to a pooled connection.
async fn one_answer_per_connection_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let Some((len, start)) = read_head(&mut stream, &mut buf).await else {
                    return;
                };
                if !read_to(&mut stream, &mut buf, start + len).await {
                    return;
                }
                answer(&mut stream, "200 OK", OK_BODY).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                drop(stream);
            });
        }
    });
    (base, connections)
}

#[tokio::test]
async fn a_pooled_connection_the_server_closed_is_replaced_without_losing_the_call() {
    let (base, connections) = one_answer_per_connection_server().await;
    let rpc = RpcClient::new(&base, Duration::from_secs(10)).expect("client");
    for i in 0..3 {
        let (v, who) = rpc
            .call(&caller(), "whoami", json!({}))
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert_eq!(v, json!({"ok": true}));
        assert_eq!(who.key_id, "k1");
        // Past the server's idle close: the pooled connection is stale by the next call.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}

/// A server that refuses a large body with 413 as soon as it has the head, reads no more of
/// it and leaves the connection open; small requests it answers normally.
async fn early_refusal_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some((len, start)) = read_head(&mut stream, &mut buf).await else {
                        return;
                    };
                    if len > LARGE_REQUEST {
                        answer(
                            &mut stream,
                            "413 Payload Too Large",
                            r#"{"error":"too large"}"#,
                        )
                        .await;
                        // Hold the connection, unread, well past the next call.
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    if !read_to(&mut stream, &mut buf, start + len).await {
                        return;
                    }
                    answer(&mut stream, "200 OK", OK_BODY).await;
                    buf.drain(..start + len);
                }
            });
        }
    });
    (base, connections)
}

#[tokio::test]
async fn a_connection_refused_mid_upload_is_not_reused() {
    let (base, connections) = early_refusal_server().await;
    let rpc = RpcClient::new(&base, Duration::from_secs(5)).expect("client");
    let big = "x".repeat(LARGE_REQUEST * 4);
    let err = rpc
        .call(&caller(), "write", json!({"content": big}))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("too large"), "{err}");
    let (v, _) = rpc
        .call(&caller(), "whoami", json!({}))
        .await
        .expect("the next call goes on a new connection");
    assert_eq!(v, json!({"ok": true}));
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_relayed_request_arrives_as_it_came_with_the_clients_address() {
    let srv = Server::start(|s| Reply {
        headers: vec![("www-authenticate", "Bearer"), ("x-extra", "1")],
        ..reply(
            if s.method == http::Method::POST {
                401
            } else {
                200
            },
            r#"{"error":"x"}"#,
        )
    })
    .await;
    let mut relayed = http::HeaderMap::new();
    relayed.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let client: std::net::IpAddr = "192.0.2.7".parse().expect("ip");
    let resp = srv
        .client()
        .relay(
            http::Method::POST,
            "/auth/login?next=1",
            &relayed,
            Bytes::from_static(br#"{"username":"u"}"#),
            Some(client),
        )
        .await
        .expect("answer");
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    assert_eq!(resp.body().as_ref(), br#"{"error":"x"}"#);
    let seen = srv.last();
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(seen.path, "/auth/login");
    assert_eq!(seen.body.as_ref(), br#"{"username":"u"}"#);
    assert_eq!(seen.headers["content-type"], "application/json");
    assert_eq!(
        seen.headers[nexus_wire::headers::FORWARDED_FOR],
        "192.0.2.7",
        "the rpc-server's per-address limits see the client"
    );
}

/// The protected-resource metadata names what the rpc-server's `/auth/providers` says:
/// its issuers, or the hub itself when it has none (never an empty list), and it keeps the
/// last good answer while the rpc-server fails or talks nonsense; `keep_fresh` picks up a
/// change.
#[tokio::test]
async fn the_metadata_follows_the_rpc_servers_issuers_and_keeps_the_last_good_answer() {
    let answer: Arc<Mutex<Reply>> = Arc::new(Mutex::new(reply(503, "")));
    let set = |status: u16, body: &str| *answer.lock().expect("lock") = reply(status, body);
    let script = answer.clone();
    let srv = Server::start(move |s| {
        assert_eq!(s.path, nexus_wire::resource::AUTH_PROVIDERS_PATH);
        let r = script.lock().expect("lock");
        reply(r.status, &r.body)
    })
    .await;
    let rpc = RpcClient::new(&srv.base, Duration::from_secs(5)).expect("client");
    let servers = crate::metadata::AuthServers::default();
    let listed = |s: &crate::metadata::AuthServers| {
        s.document("https://hub.example", false)["authorization_servers"].clone()
    };
    // Nothing known yet: the hub itself, and every scope.
    assert!(!servers.refresh(&rpc).await);
    assert_eq!(listed(&servers), json!(["https://hub.example"]));
    let doc = servers.document("https://hub.example", false);
    assert_eq!(doc["resource"], "https://hub.example/mcp");
    assert_eq!(
        doc["scopes_supported"],
        json!(["files:read", "files:write", "hub:admin"])
    );
    let one = r#"{"issuers":["https://idp.example"],"scopes_supported":["files:read"]}"#;
    set(200, one);
    assert!(servers.refresh(&rpc).await);
    assert_eq!(listed(&servers), json!(["https://idp.example"]));
    assert_eq!(
        servers.document("https://hub.example", false)["scopes_supported"],
        json!(["files:read"])
    );
    // Down, or nonsense: the last good answer stays.
    set(503, "");
    assert!(!servers.refresh(&rpc).await);
    set(200, "{not json");
    assert!(!servers.refresh(&rpc).await);
    assert_eq!(listed(&servers), json!(["https://idp.example"]));
    // An answer with no issuer (API keys only): the hub itself again.
    set(200, r#"{"issuers":[],"scopes_supported":[]}"#);
    assert!(servers.refresh(&rpc).await);
    assert_eq!(listed(&servers), json!(["https://hub.example"]));
    // Periodic refresh picks up a second issuer.
    set(
        200,
        r#"{"issuers":["https://a.example","https://b.example"],"scopes_supported":[]}"#,
    );
    let servers = Arc::new(servers);
    let rpc = Arc::new(rpc);
    let (s2, r2) = (servers.clone(), rpc.clone());
    let task = tokio::spawn(async move { s2.keep_fresh(&r2, Duration::from_millis(20)).await });
    let mut seen = json!(null);
    for _ in 0..250 {
        seen = listed(&servers);
        if seen == json!(["https://a.example", "https://b.example"]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    assert_eq!(seen, json!(["https://a.example", "https://b.example"]));
}
