//! The audit trail and traffic figures (SPEC §6), end to end: an MCP request through the
//! frontend is published on Redis channel `nexus:audit:mcp` and kept in the stream
//! `nexus:audit:mcp:stream` as one JSON event naming the verified caller by key id and
//! never carrying the token or file content; a refused request is audited with no key
//! id; `hub_admin_status` reads the traffic figures the frontend keeps in Redis.
//!
//! The test Redis is shared by tests running in parallel: events are picked out by key
//! id or user agent, and traffic figures are asserted as lower bounds.

mod common;
mod redis_support;

use common::{Era, connect, expect_ok, try_call};
use futures_util::StreamExt;
use nexus_wire::methods::TokenCreateParams;
use nexus_wire::stats::{AUDIT_CHANNEL, AUDIT_STREAM};
use redis_support::{WAIT, frontend_config, http, rpc_server, spawn_frontend, unthrottled};
use rpc_server::testing::redis_url;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Every field SPEC §6 names, and no other.
const FIELDS: [&str; 12] = [
    "ts",
    "event",
    "request_id",
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
    let fe = spawn_frontend(frontend_config(&app.base, Some(&url), false)).await;
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
    let fe = spawn_frontend(frontend_config(&app.base, Some(&url), false)).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_status_reports_the_traffic_the_frontend_counted() {
    let url = redis_url();
    let app = rpc_server(Some(&url), unthrottled()).await;
    let fe = spawn_frontend(frontend_config(&app.base, Some(&url), false)).await;
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
    // Once the last call's event is out, its counters are written (same pipeline).
    let key_id = created.key_id.clone();
    channel
        .wait_count("for the traffic calls", 3, |v| {
            v["key_id"] == key_id.as_str() && v["tool_name"] == "nexus_write_file"
        })
        .await;

    let start = Instant::now();
    let status = loop {
        let s = app
            .rpc(&admin, "hub_admin_status", json!({"detail": true}))
            .await
            .expect("hub_admin_status");
        let ready = s["connections"].as_u64().is_some_and(|c| c >= 1)
            && s["qps_5m"].as_f64().is_some_and(|q| q > 0.0);
        if ready || start.elapsed() > WAIT {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["redis"], "ok", "{status}");
    assert!(
        status["connections"].as_u64().is_some_and(|c| c >= 1),
        "connections: {status}"
    );
    assert!(
        status["qps_5m"].as_f64().is_some_and(|q| q > 0.0),
        "qps_5m: {status}"
    );
    let zones = status["detail"]["zones"].as_array().expect("detail.zones");
    let eng = zones
        .iter()
        .find(|z| z["zone"] == "eng")
        .unwrap_or_else(|| panic!("zone eng missing from detail.zones: {status}"));
    assert!(eng["clients"].as_u64().is_some_and(|c| c >= 1), "{eng}");
    let tokens = status["detail"]["tokens"]
        .as_array()
        .expect("detail.tokens");
    let me = tokens
        .iter()
        .find(|t| t["key_id"] == created.key_id.as_str())
        .unwrap_or_else(|| panic!("our key id missing from detail.tokens: {status}"));
    assert_eq!(me["name"], "traffic", "token name from this hub's database");
    assert!(
        !status.to_string().contains(&created.token),
        "status carries a token"
    );
}
