//! The audit trail and traffic figures (SPEC §6), end to end: an MCP request through the
//! frontend is published on Redis channel `nexus:audit:mcp` and kept in the stream
//! `nexus:audit:mcp:stream` as one JSON event naming the verified caller by key id and
//! never carrying the token or file content; a refused request is audited with no key
//! id; `hub_admin_status` reads the traffic figures the frontend keeps in Redis, and they
//! are exactly the traffic it carried; a Redis that stops answering slows no request.
//!
//! The shared test Redis serves tests running in parallel: there, events are picked out by
//! key id or user agent. Traffic figures are global keys, so the test that checks them, and
//! the one that stalls Redis, each run a Redis of their own.

use crate::common;
use crate::own_redis;

use common::redis::{WAIT, frontend_config, get_text, metric_sum, rpc_server, unthrottled};
use common::{Era, connect, expect_ok, http, spawn_frontend_from, try_call};
use futures_util::StreamExt;
use nexus_wire::methods::TokenCreateParams;
use nexus_wire::stats::{self, AUDIT_CHANNEL, AUDIT_STREAM};
use own_redis::OwnRedis;
use rpc_server::testing::redis_url;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every field SPEC §6 names, plus `client_request_id` (the caller's `X-Request-Id`, kept
/// apart from ours), and no other.
const FIELDS: [&str; 13] = [
    "ts",
    "event",
    "request_id",
    "client_request_id",
    "key_id",
    "subject_id",
    "zone_id",
    "rpc_method",
    "tool_name",
    "status_code",
    "outcome",
    "latency_ms",
    "user_agent",
];

/// Audit events received on the channel, raw.
struct Channel {
    messages: redis::aio::PubSubStream,
    /// Every payload seen so far (ours and other tests').
    seen: Vec<String>,
}

impl Channel {
    async fn subscribe(url: &str) -> Self {
        let client = redis::Client::open(url).expect("redis url");
        let mut ps = tokio::time::timeout(WAIT, client.get_async_pubsub())
            .await
            .expect("connect to Redis hung")
            .expect("connect to Redis");
        ps.subscribe(AUDIT_CHANNEL).await.expect("SUBSCRIBE");
        Self {
            messages: ps.into_on_message(),
            seen: Vec::new(),
        }
    }

    /// The first event (raw and parsed) for which `want` holds, waiting at most [`WAIT`].
    async fn find(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> (String, Value) {
        for raw in &self.seen {
            if let Ok(v) = serde_json::from_str::<Value>(raw)
                && want(&v)
            {
                return (raw.clone(), v);
            }
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = tokio::time::timeout(left, self.messages.next())
                .await
                .unwrap_or_else(|_| panic!("no audit event {what} on {AUDIT_CHANNEL} in {WAIT:?}"))
                .expect("the audit subscription ended");
            let raw: String = msg.get_payload().expect("text payload");
            self.seen.push(raw.clone());
            let v: Value = serde_json::from_str(&raw)
                .unwrap_or_else(|e| panic!("audit event is not JSON ({e}): {raw}"));
            if want(&v) {
                return (raw, v);
            }
        }
    }
}

impl Channel {
    /// Waits (at most [`WAIT`]) until `n` events seen satisfy `want`.
    async fn wait_count(&mut self, what: &str, n: usize, want: impl Fn(&Value) -> bool) {
        let matches = |seen: &[String]| {
            seen.iter()
                .filter(|raw| serde_json::from_str::<Value>(raw).is_ok_and(|v| want(&v)))
                .count()
        };
        let deadline = Instant::now() + WAIT;
        while matches(&self.seen) < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = tokio::time::timeout(left, self.messages.next())
                .await
                .unwrap_or_else(|_| panic!("fewer than {n} audit events {what} in {WAIT:?}"))
                .expect("the audit subscription ended");
            self.seen.push(msg.get_payload().expect("text payload"));
        }
    }
}

/// The stream entry whose event has `request_id`, from the newest entries.
async fn from_stream(url: &str, request_id: &str) -> Option<String> {
    let client = redis::Client::open(url).expect("redis url");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XREVRANGE")
        .arg(AUDIT_STREAM)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(20_000)
        .query_async(&mut c)
        .await
        .expect("XREVRANGE");
    entries.into_iter().find_map(|(_, fields)| {
        let line = fields.get("event")?;
        let v: Value = serde_json::from_str(line).ok()?;
        (v["request_id"] == request_id).then(|| line.clone())
    })
}

fn assert_no_secrets(raw: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !raw.contains(s),
            "audit event carries a secret {s:?}: {raw}"
        );
    }
}

fn assert_fields(ev: &Value) {
    let obj = ev.as_object().expect("event is an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = FIELDS.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want, "audit event fields: {ev}");
    assert_eq!(ev["event"], "mcp.request");
    assert!(ev["ts"].as_str().is_some_and(|t| t.len() >= 20), "ts: {ev}");
    assert!(
        ev["request_id"].as_str().is_some_and(|r| !r.is_empty()),
        "request_id: {ev}"
    );
    assert!(
        ev["latency_ms"].as_f64().is_some_and(|l| l >= 0.0),
        "latency_ms: {ev}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_is_audited_on_the_channel_and_the_stream_without_secrets() {
    let url = redis_url();
    let app = rpc_server(Some(&url), unthrottled()).await;
    let fe = spawn_frontend_from(frontend_config(&app.base, Some(&url), false)).await;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let user = format!("alice-{unique}");
    let created = app
        .control
        .create_token(TokenCreateParams {
            name: "auditor".into(),
            zones: Some("eng:rw".into()),
            user_id: Some(user.clone()),
            ..Default::default()
        })
        .await
        .expect("mint");
    let (token, key_id) = (created.token, created.key_id);
    let marker = format!("audit-content-marker-{unique}");

    let mut channel = Channel::subscribe(&url).await;
    let c = connect(&fe.mcp_url, &token, Era::Stateless).await;
    expect_ok(
        "write",
        try_call(
            &c,
            "nexus_write_file",
            json!({"path": "/audit/note.txt", "content": marker}),
        )
        .await,
    );
    let read = expect_ok(
        "read",
        try_call(&c, "nexus_read_file", json!({"path": "/audit/note.txt"})).await,
    );
    assert_eq!(read, marker, "the file round-trips");

    let mine = |tool: &'static str| {
        let key_id = key_id.clone();
        move |v: &Value| v["key_id"] == key_id.as_str() && v["tool_name"] == tool
    };
    let (raw, ev) = channel
        .find("for the nexus_write_file call", mine("nexus_write_file"))
        .await;
    assert_fields(&ev);
    assert_eq!(ev["rpc_method"], "tools/call", "{ev}");
    assert_eq!(ev["tool_name"], "nexus_write_file", "{ev}");
    assert_eq!(ev["key_id"], key_id.as_str(), "{ev}");
    assert_eq!(ev["subject_id"], user.as_str(), "{ev}");
    assert_eq!(ev["zone_id"], "eng", "{ev}");
    assert_eq!(ev["status_code"], 200, "{ev}");
    assert_eq!(ev["outcome"], "ok", "{ev}");
    assert_no_secrets(&raw, &[&token, &marker]);

    // The same event, byte for byte, is kept in the stream.
    let request_id = ev["request_id"].as_str().expect("request_id").to_owned();
    let stored = from_stream(&url, &request_id)
        .await
        .unwrap_or_else(|| panic!("no event with request_id {request_id} in {AUDIT_STREAM}"));
    assert_eq!(
        serde_json::from_str::<Value>(&stored).expect("stream entry is JSON"),
        ev,
        "stream entry differs from the published event"
    );
    assert_no_secrets(&stored, &[&token, &marker]);

    // The read, whose answer is the content, is audited without it too.
    let (raw, ev) = channel
        .find("for the nexus_read_file call", mine("nexus_read_file"))
        .await;
    assert_fields(&ev);
    assert_eq!(ev["zone_id"], "eng");
    assert_no_secrets(&raw, &[&token, &marker]);
    // No event seen at all, ours or not, carries them.
    for raw in &channel.seen {
        assert_no_secrets(raw, &[&token, &marker]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_is_audited_with_no_key_id() {
    let url = redis_url();
    let app = rpc_server(Some(&url), unthrottled()).await;
    let fe = spawn_frontend_from(frontend_config(&app.base, Some(&url), false)).await;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let bogus = format!("sk-bogus{secret}{secret}");
    let agent = format!("audit-test-refused-{unique}");

    let mut channel = Channel::subscribe(&url).await;
    let resp = http()
        .post(&fe.mcp_url)
        .header("authorization", format!("Bearer {bogus}"))
        .header("user-agent", &agent)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-11-25")
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "nexus_read_file", "arguments": {"path": "/x"}}})
            .to_string(),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);

    let (raw, ev) = channel
        .find("for the refused request", |v| {
            v["user_agent"] == agent.as_str()
        })
        .await;
    assert_fields(&ev);
    assert_eq!(ev["status_code"], 401, "{ev}");
    assert_eq!(ev["outcome"], "unauthorized", "{ev}");
    assert!(ev["key_id"].is_null(), "key_id of a refused request: {ev}");
    assert!(
        ev["subject_id"].is_null(),
        "subject_id of a refused request: {ev}"
    );
    assert_no_secrets(&raw, &[&bogus, &secret]);
}

/// The events seen so far that name a verified caller (the ones traffic figures count).
fn verified(seen: &[String]) -> Vec<Value> {
    seen.iter()
        .filter_map(|raw| serde_json::from_str::<Value>(raw).ok())
        .filter(|v| v["key_id"].is_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_status_reports_the_traffic_the_frontend_counted() {
    // Our own Redis: every counter in it is this test's traffic, so figures are exact.
    let redis = OwnRedis::start().await;
    let url = redis.url();
    let app = rpc_server(Some(&url), unthrottled()).await;
    let fe = spawn_frontend_from(frontend_config(&app.base, Some(&url), false)).await;
    let created = app
        .control
        .create_token(TokenCreateParams {
            name: "traffic".into(),
            zones: Some("eng:rw".into()),
            ..Default::default()
        })
        .await
        .expect("mint");
    let admin = app.mint("admin", None, true).await.token;

    let mut channel = Channel::subscribe(&url).await;
    let c = connect(&fe.mcp_url, &created.token, Era::Stateless).await;
    for i in 0..3 {
        expect_ok(
            "write",
            try_call(
                &c,
                "nexus_write_file",
                json!({"path": format!("/traffic/{i}.txt"), "content": "x"}),
            )
            .await,
        );
    }
    let _ = c.cancel().await;
    let key_id = created.key_id.clone();
    channel
        .wait_count("for the traffic calls", 3, |v| {
            v["key_id"] == key_id.as_str() && v["tool_name"] == "nexus_write_file"
        })
        .await;
    // Every verified request this frontend carried (discovery and listing included) was
    // ours; each is one event, and one count.
    let ours = verified(&channel.seen);
    assert!(
        ours.iter().all(|v| v["key_id"] == key_id.as_str()),
        "a verified event from another caller in our own Redis: {ours:?}"
    );
    let requests = ours.len();
    let window_secs = (stats::WINDOW_MINUTES * 60) as f64;
    let want_qps = requests as f64 / window_secs;
    // The figure may be rounded to 4 decimals on its way out.
    let is_ours = |q: &Value| q.as_f64().is_some_and(|q| (q - want_qps).abs() < 1e-4);

    // Counters are written in the same pipeline as the event, just after it: poll briefly.
    let start = Instant::now();
    let status = loop {
        let s = app
            .rpc(&admin, "hub_admin_status", json!({"detail": true}))
            .await
            .expect("hub_admin_status");
        if is_ours(&s["qps_5m"]) || start.elapsed() > WAIT {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["redis"], "ok", "{status}");
    assert_eq!(status["connections"], 1, "one verified client: {status}");
    assert!(
        is_ours(&status["qps_5m"]),
        "{requests} verified requests over {window_secs} s: {status}"
    );
    let zones = status["detail"]["zones"].as_array().expect("detail.zones");
    assert_eq!(zones.len(), 1, "only zone eng saw traffic: {status}");
    assert_eq!(zones[0]["zone"], "eng", "{status}");
    assert_eq!(zones[0]["clients"], 1, "{status}");
    assert!(is_ours(&zones[0]["qps_5m"]), "{status}");
    let tokens = status["detail"]["tokens"]
        .as_array()
        .expect("detail.tokens");
    assert_eq!(tokens.len(), 1, "only our token was seen: {status}");
    assert_eq!(tokens[0]["key_id"], created.key_id.as_str(), "{status}");
    assert_eq!(
        tokens[0]["name"], "traffic",
        "token name from this hub's database"
    );
    assert!(
        !status.to_string().contains(&created.token),
        "status carries a token"
    );
}

/// A TCP relay in front of a Redis that can be shut: while shut it reads what the client
/// sends and forwards none of it, so a client waiting for Redis's answer waits (until its
/// own timeout). Stops relaying when dropped.
struct Gate {
    port: u16,
    shut: Arc<AtomicBool>,
    /// Bytes read from clients while shut.
    swallowed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Gate {
    async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the gate");
        let port = listener.local_addr().expect("addr").port();
        let shut = Arc::new(AtomicBool::new(false));
        let swallowed = Arc::new(AtomicU64::new(0));
        let (sh, sw) = (shut.clone(), swallowed.clone());
        let task = tokio::spawn(async move {
            // Dropped with this task: aborts every relay.
            let mut relays = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw_) = server.into_split();
                let (sh, sw) = (sh.clone(), sw.clone());
                relays.spawn(async move {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if sh.load(Ordering::SeqCst) {
                            sw.fetch_add(n as u64, Ordering::SeqCst);
                        } else if sw_.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
                relays.spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                });
            }
        });
        Self {
            port,
            shut,
            swallowed,
            task,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `nexus_audit_dropped_total{reason="publish_failed"}`: events whose Redis write the
/// writer gave up on.
async fn publish_failures(fe_base: &str) -> f64 {
    let m = get_text(&format!("{fe_base}/metrics")).await;
    metric_sum(
        &m.lines()
            .filter(|l| l.contains("reason=\"publish_failed\""))
            .collect::<Vec<_>>()
            .join("\n"),
        "nexus_audit_dropped_total",
    )
}

/// "Audit never waits", by events rather than by timing: with Redis holding the audit
/// writer's pipeline unanswered, tool calls complete while the writer is still waiting
/// (it has not yet given the write up as failed); afterwards the writer does give up, which
/// proves it really was stuck. Were audit on the request path, each call would finish only
/// after that give-up. Margin: the writer waits its 1 s Redis response timeout, a call
/// takes milliseconds, and three calls must fit in that second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_never_wait_for_a_stalled_audit_redis() {
    let redis = OwnRedis::start().await;
    let gate = Gate::start(redis.port).await;
    let app = rpc_server(None, unthrottled()).await;
    let fe = spawn_frontend_from(frontend_config(&app.base, Some(&gate.url()), false)).await;
    let created = app
        .control
        .create_token(TokenCreateParams {
            name: "stalled".into(),
            zones: Some("eng:rw".into()),
            ..Default::default()
        })
        .await
        .expect("mint");
    let write =
        |i: usize| json!({"path": format!("/stalled/{i}.txt"), "content": format!("call {i}")});

    // Through the open gate, the writer connects and events arrive.
    let mut channel = Channel::subscribe(&redis.url()).await;
    let c = connect(&fe.mcp_url, &created.token, Era::Stateless).await;
    expect_ok(
        "write through the open gate",
        try_call(&c, "nexus_write_file", write(0)).await,
    );
    let key_id = created.key_id.clone();
    channel
        .find("through the open gate", |v| v["key_id"] == key_id.as_str())
        .await;
    assert_eq!(publish_failures(&fe.base).await, 0.0, "nothing failed yet");

    // Shut: the next event's pipeline is swallowed and the writer waits for an answer.
    gate.shut.store(true, Ordering::SeqCst);
    expect_ok(
        "write with the gate shut",
        try_call(&c, "nexus_write_file", write(1)).await,
    );
    let deadline = Instant::now() + WAIT;
    while gate.swallowed.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the audit writer sent nothing in {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The writer is stuck on that write now; calls go on regardless.
    for i in 2..5 {
        expect_ok(
            "write while the audit writer waits on Redis",
            try_call(&c, "nexus_write_file", write(i)).await,
        );
    }
    assert_eq!(
        publish_failures(&fe.base).await,
        0.0,
        "the calls finished only after the audit writer gave up on Redis: they waited for it"
    );
    // And it was stuck: it gives the write up, counting what it dropped.
    let deadline = Instant::now() + WAIT;
    while publish_failures(&fe.base).await == 0.0 {
        assert!(
            Instant::now() < deadline,
            "the audit writer never gave up on the stalled Redis in {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 1..5 {
        assert!(
            app.stored("eng", &format!("stalled/{i}.txt"))
                .await
                .is_some(),
            "call {i} wrote its file"
        );
    }
    let _ = c.cancel().await;
}
