//! The MCP frontend under hostile use: junk tokens that trickle bodies, one token opening
//! sessions and streams without end, sessions that must answer like stateless calls,
//! an unreachable rpc-server, audit fields a caller could spoil, Host reflection, the
//! path of malformed credentials and malformed JSON. A real rpc-server (Postgres) and a
//! real frontend on 127.0.0.1; no timing is asserted except against configured deadlines.

use crate::common;

use common::mcp::{LEGACY, MODERN, bearer, message, send, session_call_body};
use common::procs::free_port;
use common::redis::{frontend_config, get_text, metric_sum, rpc_server};
use common::{FrontendHandle, STEP, http, spawn_frontend_from};
use reqwest::RequestBuilder;
use rpc_server::limits::LimitConfig;
use rpc_server::testing::TestApp;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The client name in the bodies these tests send.
const CLIENT: &str = "mcp-hardening-test";
/// Slack allowed past a configured deadline on a busy 2-core machine.
const MARGIN: Duration = Duration::from_secs(4);

fn limits(token: &str) -> LimitConfig {
    LimitConfig {
        token: token.parse().expect("rate"),
        admin: token.parse().expect("rate"),
        auth_failures: "1000000/s".parse().expect("rate"),
    }
}

/// An rpc-server with zone `eng` and `token_rate` per token, and a frontend from `tune`.
async fn hub(
    token_rate: &str,
    tune: impl FnOnce(&mut mcp_frontend::FrontendConfig),
) -> (TestApp, FrontendHandle) {
    let app = rpc_server(None, limits(token_rate)).await;
    let mut cfg = frontend_config(&app.base, None, false);
    cfg.auth_failures_per_min = 1_000_000;
    tune(&mut cfg);
    let fe = spawn_frontend_from(cfg).await;
    (app, fe)
}

fn initialize_body() -> Value {
    common::mcp::initialize_body(CLIENT)
}

fn stateless_call_body(tool: &str, args: Value) -> Value {
    common::mcp::stateless_call_body(CLIENT, tool, args)
}

fn mcp(fe: &FrontendHandle, method: reqwest::Method, token: Option<&str>) -> RequestBuilder {
    common::mcp::request(&fe.mcp_url, method, token.map(bearer).as_deref())
}

/// A POST of `body` with the headers its era needs.
fn post(fe: &FrontendHandle, token: Option<&str>, body: &Value) -> RequestBuilder {
    common::mcp::post(&fe.mcp_url, token.map(bearer).as_deref(), body)
}

/// `initialize` + `notifications/initialized`; returns the session id.
async fn open_session(fe: &FrontendHandle, token: &str) -> String {
    common::mcp::open_session(&fe.mcp_url, &bearer(token), CLIENT)
        .await
        .0
}

fn addr(fe: &FrontendHandle) -> String {
    fe.base.trim_start_matches("http://").to_owned()
}

/// Reads one HTTP/1.1 answer's status line from `s`, bounded by `within`: `None` when
/// nothing came in time, `Some("")` when the connection closed without an answer.
async fn status_line(s: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let read = async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.windows(2).any(|w| w == b"\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    Some(text.lines().next().unwrap_or_default().to_owned())
}

/// Item: 50 connections with a junk token, Content-Length 60000 and a trickled body held a
/// frontend's slots for minutes. Now the unknown token is judged before a byte of the body
/// is read: every junk connection gets 401 with 59,999 bytes unsent (well before the
/// 30 s body deadline), and a real user's calls succeed throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn junk_tokens_with_trickled_bodies_hold_no_slots() {
    const ATTACKERS: usize = 16;
    let (app, fe) = hub("1000000/s", |c| {
        c.connections.max_connections = ATTACKERS + 4;
    })
    .await;
    let good = app.mint("user", Some("eng:rw"), false).await.token;
    let call = || {
        post(
            &fe,
            Some(&good),
            &stateless_call_body("nexus_whoami", json!({})),
        )
    };
    assert_eq!(send(call()).await.status().as_u16(), 200, "before");

    let target = addr(&fe);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for i in 0..ATTACKERS {
        let target = target.clone();
        let stop = stop.clone();
        attackers.push(tokio::spawn(async move {
            let junk = format!("sk-{}", "J".repeat(43));
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(mut s) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let head = format!(
                    "POST /mcp HTTP/1.1\r\nHost: {target}\r\nAuthorization: Bearer {junk}\r\n\
                     Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
                     Content-Length: 60000\r\n\r\n{{"
                );
                if s.write_all(head.as_bytes()).await.is_err() {
                    continue;
                }
                // The trickle: one more byte, then wait for the answer.
                let _ = s.write_all(b" ").await;
                let line = status_line(&mut s, Duration::from_secs(5)).await;
                answers.push(line.unwrap_or_else(|| format!("attacker {i}: no answer in 5 s")));
            }
            answers
        }));
    }
    for n in 0..20 {
        let r = send(call()).await;
        assert_eq!(r.status().as_u16(), 200, "real call {n} during the attack");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut refused = 0;
    for a in attackers {
        for line in a.await.expect("attacker task") {
            // An empty line: the connection cap closed it at once, which holds nothing.
            if line.is_empty() {
                continue;
            }
            refused += 1;
            assert!(
                line.starts_with("HTTP/1.1 401"),
                "a junk token with an unsent body: {line}"
            );
        }
    }
    assert!(
        refused >= ATTACKERS,
        "every attacker got its 401: {refused}"
    );
}

/// Item: nothing timed a body out. A verified token that trickles its body gets 408 at the
/// configured deadline (1 s here; asserted with a margin, never as a speed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_gets_408_at_the_deadline() {
    let deadline = Duration::from_secs(1);
    let (app, fe) = hub("1000000/s", |c| {
        c.limits.body_read_timeout = deadline;
        c.connections.body_read_timeout = deadline;
    })
    .await;
    let good = app.mint("slow", Some("eng:rw"), false).await.token;
    // Known to the frontend, so its body is read before the call verifies it.
    assert_eq!(
        send(post(&fe, Some(&good), &initialize_body()))
            .await
            .status(),
        200
    );
    let target = addr(&fe);
    let mut s = tokio::net::TcpStream::connect(&target)
        .await
        .expect("connect");
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {target}\r\nAuthorization: Bearer {good}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: 100\r\n\r\n{{"
    );
    let started = Instant::now();
    s.write_all(head.as_bytes()).await.expect("head");
    let line = status_line(&mut s, deadline + MARGIN)
        .await
        .expect("an answer within the body deadline and a margin");
    assert!(line.starts_with("HTTP/1.1 408"), "{line}");
    assert!(started.elapsed() + Duration::from_millis(50) >= deadline);
}

/// Item: `initialize` cost a free `whoami`, so a 5/min token opened 10,000 sessions.
/// Every MCP request now counts: the sixth initialize of a 5/min token is 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_per_minute_token_cannot_initialize_six_times() {
    let (app, fe) = hub("5/m", |_| {}).await;
    let tok = app.mint("agent", Some("eng:rw"), false).await.token;
    for i in 0..5 {
        let r = send(post(&fe, Some(&tok), &initialize_body())).await;
        assert_eq!(r.status().as_u16(), 200, "initialize {}", i + 1);
    }
    let r = send(post(&fe, Some(&tok), &initialize_body())).await;
    assert_eq!(
        r.status().as_u16(),
        429,
        "the sixth initialize of a 5/min token"
    );
    assert!(r.headers().get("retry-after").is_some());
    assert!(r.headers().get("mcp-session-id").is_none());
    // tools/list and GET count as well.
    let list = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {
    "_meta": {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    }}});
    assert_eq!(
        send(post(&fe, Some(&tok), &list)).await.status().as_u16(),
        429
    );
}

/// Item: sessions had no cap. Past the per-key cap `initialize` is 429, past the total 503
/// (and neither opens a session); closing one makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_capped_per_key_and_in_all() {
    let (app, fe) = hub("1000000/s", |c| {
        c.limits.sessions_per_key = 2;
        c.limits.sessions = 3;
    })
    .await;
    let a = app.mint("a", Some("eng:rw"), false).await.token;
    let b = app.mint("b", Some("eng:rw"), false).await.token;
    let a1 = open_session(&fe, &a).await;
    open_session(&fe, &a).await;
    let r = send(post(&fe, Some(&a), &initialize_body())).await;
    assert_eq!(
        r.status().as_u16(),
        429,
        "a third session for a key capped at 2"
    );
    assert!(r.headers().get("mcp-session-id").is_none());
    let err = r.json::<Value>().await.expect("JSON");
    assert_eq!(err["error"]["code"], "too_many_sessions", "{err}");

    open_session(&fe, &b).await;
    let r = send(post(&fe, Some(&b), &initialize_body())).await;
    assert_eq!(r.status().as_u16(), 503, "a fourth session with 3 in all");
    assert!(r.headers().get("retry-after").is_some());

    let r = send(mcp(&fe, reqwest::Method::DELETE, Some(&a)).header("mcp-session-id", &a1)).await;
    assert!(r.status().is_success(), "DELETE: {}", r.status());
    open_session(&fe, &a).await;
}

/// Idle sessions are closed at the configured idle time and stop counting against the cap
/// (1 s here; the wait is that plus a margin, polled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_closed_and_frees_its_place() {
    let idle = Duration::from_secs(1);
    let (app, fe) = hub("1000000/s", |c| {
        c.limits.sessions_per_key = 1;
        c.limits.session_idle_timeout = idle;
    })
    .await;
    let a = app.mint("a", Some("eng:rw"), false).await.token;
    let first = open_session(&fe, &a).await;
    let r = send(post(&fe, Some(&a), &initialize_body())).await;
    assert_eq!(
        r.status().as_u16(),
        429,
        "a second session while the first is open"
    );
    let started = Instant::now();
    loop {
        let r = send(post(&fe, Some(&a), &initialize_body())).await;
        if r.status().as_u16() == 200 {
            break;
        }
        assert!(
            started.elapsed() < idle + MARGIN,
            "the idle session still holds its place after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its id stays valid until it expires (any replica may rebuild it), but rebuilding it
    // here needs a place again, and the new session holds the only one.
    let list = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"});
    let r = send(post(&fe, Some(&a), &list).header("mcp-session-id", &first)).await;
    assert_eq!(
        r.status().as_u16(),
        429,
        "the idle session is gone from memory"
    );
}

/// Item: one token's SSE streams held every slot. Streams are capped per key (429) and in
/// all (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_are_capped_per_key_and_in_all() {
    let (app, fe) = hub("1000000/s", |c| {
        c.limits.streams_per_key = 1;
        c.limits.streams = 2;
    })
    .await;
    let a = app.mint("a", Some("eng:rw"), false).await.token;
    let b = app.mint("b", Some("eng:rw"), false).await.token;
    let c = app.mint("c", Some("eng:rw"), false).await.token;
    let get = |tok: &str, sid: &str| {
        mcp(&fe, reqwest::Method::GET, Some(tok))
            .header("mcp-session-id", sid)
            .header("mcp-protocol-version", LEGACY)
    };
    let (sa1, sa2) = (open_session(&fe, &a).await, open_session(&fe, &a).await);
    let held_a = send(get(&a, &sa1)).await;
    assert_eq!(held_a.status().as_u16(), 200, "first stream");
    let r = send(get(&a, &sa2)).await;
    assert_eq!(
        r.status().as_u16(),
        429,
        "a second stream for a key capped at 1"
    );
    assert_eq!(
        r.json::<Value>().await.expect("JSON")["error"]["code"],
        "too_many_streams"
    );
    let sb = open_session(&fe, &b).await;
    let held_b = send(get(&b, &sb)).await;
    assert_eq!(held_b.status().as_u16(), 200, "another key's stream");
    let sc = open_session(&fe, &c).await;
    let r = send(get(&c, &sc)).await;
    assert_eq!(r.status().as_u16(), 503, "a third stream with 2 in all");
    drop((held_a, held_b));
}

/// Item: SSE streams never timed out. A stream with no event ends at the configured idle
/// time (1 s; asserted as 1 s plus a margin, and not before 1 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_ends_after_the_idle_time() {
    let idle = Duration::from_secs(1);
    let (app, fe) = hub("1000000/s", |c| c.limits.stream_idle_timeout = idle).await;
    let a = app.mint("a", Some("eng:rw"), false).await.token;
    let sid = open_session(&fe, &a).await;
    let started = Instant::now();
    let resp = send(
        mcp(&fe, reqwest::Method::GET, Some(&a))
            .header("mcp-session-id", &sid)
            .header("mcp-protocol-version", LEGACY),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    tokio::time::timeout(idle + MARGIN, resp.bytes())
        .await
        .expect("the idle stream ended within its idle time and a margin")
        .ok();
    assert!(started.elapsed() + Duration::from_millis(50) >= idle);
}

/// Item: in a session a rate-limited call was a 200 with "retry in Some(11) s". It is the
/// stateless answer now: 429 with Retry-After and the X-RateLimit-* headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_call_in_a_session_is_429_with_headers() {
    let (app, fe) = hub("5/m", |_| {}).await;
    let tok = app.mint("agent", Some("eng:rw"), false).await.token;
    // initialize and notifications/initialized: two units of five.
    let sid = open_session(&fe, &tok).await;
    let call = || {
        post(
            &fe,
            Some(&tok),
            &session_call_body("nexus_file_info", json!({"path": "/"})),
        )
        .header("mcp-session-id", &sid)
    };
    for i in 0..3 {
        let r = send(call()).await;
        assert_eq!(r.status().as_u16(), 200, "call {}", i + 1);
        assert_eq!(r.headers()["x-ratelimit-limit"], "5");
        let m = message(r).await;
        assert!(m["result"]["isError"] != true, "{m}");
    }
    let r = send(call()).await;
    assert_eq!(r.status().as_u16(), 429, "over the budget in a session");
    let h = r.headers().clone();
    for name in [
        "retry-after",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(h.get(name).is_some(), "session 429 lacks {name}: {h:?}");
    }
    let body = r.text().await.expect("body");
    assert!(!body.contains("Some("), "{body}");
}

/// Item: with the rpc-server unreachable, a junk token's stateless tools/call got 200 with a
/// tool error (and a refused token would get 401): it is 503 like tools/list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_rpc_server_is_503_for_any_token() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut cfg = mcp_frontend::FrontendConfig::local(&dead, 0);
    cfg.audit_stdout = false;
    let fe = spawn_frontend_from(cfg).await;
    let junk = format!("sk-{}", "J".repeat(43));
    for body in [
        stateless_call_body("nexus_whoami", json!({})),
        stateless_call_body("nexus_no_such_tool", json!({})),
    ] {
        let r = send(post(&fe, Some(&junk), &body)).await;
        assert_eq!(r.status().as_u16(), 503, "{body}");
        assert!(r.headers().get("retry-after").is_some());
    }
}

/// The same with a token the frontend has just seen verified: once the rpc-server is gone,
/// a tool call (stateless or in a session) is 503 with Retry-After, never a 200 tool error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_token_gets_503_once_the_rpc_server_is_gone() {
    let (app, fe) = hub("1000000/s", |_| {}).await;
    let tok = app.mint("agent", Some("eng:rw"), false).await.token;
    let sid = open_session(&fe, &tok).await;
    let stateless = || {
        post(
            &fe,
            Some(&tok),
            &stateless_call_body("nexus_whoami", json!({})),
        )
    };
    assert_eq!(send(stateless()).await.status().as_u16(), 200);
    let _kept = app.stop().await;
    let r = send(stateless()).await;
    assert_eq!(r.status().as_u16(), 503, "stateless");
    assert!(r.headers().get("retry-after").is_some());
    let r = send(
        post(
            &fe,
            Some(&tok),
            &session_call_body("nexus_whoami", json!({})),
        )
        .header("mcp-session-id", &sid),
    )
    .await;
    assert_eq!(r.status().as_u16(), 503, "in a session");
    assert!(r.headers().get("retry-after").is_some());
}

/// Item: the audit line had `subject_id: null` for a non-ASCII user id, and `request_id`
/// was whatever the caller sent. Now the subject is there, the request id is ours (the
/// response's X-Request-Id) and the caller's, cleaned, is `client_request_id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_has_a_non_ascii_subject_and_our_request_id() {
    use futures_util::StreamExt;
    let url = rpc_server::testing::redis_url();
    let app = rpc_server(None, limits("1000000/s")).await;
    let fe = spawn_frontend_from(frontend_config(&app.base, Some(&url), false)).await;
    let tok = app
        .control
        .create_token(nexus_wire::methods::TokenCreateParams {
            name: "jorg".into(),
            zones: Some("eng:rw".into()),
            user_id: Some("jörg@例え.jp".into()),
            ..Default::default()
        })
        .await
        .expect("mint")
        .token;
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let mut ps = client.get_async_pubsub().await.expect("connect to Redis");
    ps.subscribe(nexus_wire::stats::AUDIT_CHANNEL)
        .await
        .expect("SUBSCRIBE");
    let mut messages = ps.into_on_message();
    let agent = format!("audit-test-{}", uuid::Uuid::new_v4().simple());
    let r = send(
        post(
            &fe,
            Some(&tok),
            &stateless_call_body("nexus_whoami", json!({})),
        )
        .header("user-agent", &agent)
        .header("x-request-id", "forged id<script>"),
    )
    .await;
    assert_eq!(r.status().as_u16(), 200);
    let ours = r.headers()["x-request-id"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert_ne!(ours, "forged id<script>");
    let deadline = tokio::time::Instant::now() + STEP;
    let ev = loop {
        let msg = tokio::time::timeout_at(deadline, messages.next())
            .await
            .expect("no audit event")
            .expect("subscription ended");
        let raw: String = msg.get_payload().expect("payload");
        let v: Value = serde_json::from_str(&raw).expect("JSON");
        if v["user_agent"] == agent.as_str() {
            break v;
        }
    };
    assert_eq!(ev["subject_id"], "jörg@例え.jp", "{ev}");
    assert_eq!(ev["request_id"], ours.as_str(), "{ev}");
    assert_eq!(ev["client_request_id"], "forgedidscript", "{ev}");
}

/// Item: the RFC 9728 metadata reflected any Host into `resource`. A foreign Host is
/// refused as on /mcp; an allowed one gets its own URL, in the metadata and in the 401's
/// challenge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_metadata_is_behind_the_host_guard() {
    let (_app, fe) = hub("1000000/s", |_| {}).await;
    let port = fe.base.rsplit(':').next().expect("port").to_owned();
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let r = send(
            http()
                .get(format!("{}{path}", fe.base))
                .header("host", "evil.example"),
        )
        .await;
        assert_eq!(r.status().as_u16(), 403, "{path} for a foreign Host");
        let body = r.text().await.expect("body");
        assert!(!body.contains("evil.example"), "{body}");

        let r = send(http().get(format!("{}{path}", fe.base))).await;
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().await.expect("JSON");
        assert_eq!(v["resource"], format!("http://127.0.0.1:{port}/mcp"), "{v}");
    }
    let r = send(post(&fe, None, &initialize_body())).await;
    assert_eq!(r.status().as_u16(), 401);
    let www = r.headers()["www-authenticate"].to_str().expect("ASCII");
    assert_eq!(
        www,
        format!(
            "Bearer resource_metadata=\"http://127.0.0.1:{port}/.well-known/oauth-protected-resource\", scope=\"files:read files:write\""
        )
    );
}

/// The `whoami` calls the rpc-server has answered.
async fn whoami_calls(app: &TestApp) -> f64 {
    let text = get_text(&format!("{}/metrics", app.base)).await;
    text.lines()
        .filter(|l| l.starts_with("nexus_rpc_requests_total") && l.contains("\"whoami\""))
        .map(|l| metric_sum(l, "nexus_rpc_requests_total"))
        .sum()
}

/// Item: a malformed token was refused by the frontend alone (~1 ms), an unknown one after
/// an rpc round trip (~4 ms): a timing tell. Both now go through the rpc-server's
/// verification, one call each, and get the same 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unknown_tokens_take_the_same_path() {
    let (app, fe) = hub("1000000/s", |_| {}).await;
    let unknown = format!("sk-{}", "J".repeat(43));
    let mut answers = Vec::new();
    for auth in [
        format!("Bearer {unknown}"),
        "Bearer sk-has a space".to_owned(),
        "Basic dXNlcjpwYXNz".to_owned(),
    ] {
        let before = whoami_calls(&app).await;
        let r = send(
            http()
                .post(&fe.mcp_url)
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(initialize_body().to_string()),
        )
        .await;
        let status = r.status().as_u16();
        let www = r.headers().get("www-authenticate").cloned();
        let body = r.bytes().await.expect("body");
        let after = whoami_calls(&app).await;
        assert_eq!(status, 401, "{auth}");
        assert_eq!(
            after - before,
            1.0,
            "{auth}: one verification at the rpc-server"
        );
        answers.push((status, www, body));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
}

/// Item: malformed JSON on /mcp got 415 text/plain. A body that is not JSON under a JSON
/// content type is a JSON-RPC parse error (HTTP 400, -32700); a wrong content type stays
/// 415 but in the JSON envelope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_a_jsonrpc_parse_error() {
    let (app, fe) = hub("1000000/s", |_| {}).await;
    let tok = app.mint("agent", Some("eng:rw"), false).await.token;
    let r = send(
        mcp(&fe, reqwest::Method::POST, Some(&tok))
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(r.status().as_u16(), 400);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ASCII")
            .starts_with("application/json")
    );
    let v: Value = r.json().await.expect("JSON");
    assert_eq!(v["error"]["code"], -32700, "{v}");
    assert_eq!(v["jsonrpc"], "2.0", "{v}");

    let r = send(
        mcp(&fe, reqwest::Method::POST, Some(&tok))
            .header("content-type", "text/plain")
            .body(initialize_body().to_string()),
    )
    .await;
    assert_eq!(r.status().as_u16(), 415);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ASCII")
            .starts_with("application/json")
    );
    let v: Value = r.json().await.expect("JSON");
    assert_eq!(v["error"]["code"], "unsupported_media_type", "{v}");
}
