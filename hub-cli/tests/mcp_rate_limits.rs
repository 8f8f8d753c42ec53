//! Rate limits as an agent meets them through the MCP frontend (SPEC §6): a tool call
//! spends one unit of the caller's budget (verification is free), and past the budget
//! the frontend answers 429 with the headers a client needs to back off.

use crate::common;

use common::mcp::{bearer, post, send, stateless_call_body};
use common::redis::{WAIT, frontend_config, rpc_server};
use common::{FrontendHandle, spawn_frontend_from};
use rpc_server::limits::LimitConfig;
use serde_json::json;

struct Setup {
    _app: rpc_server::testing::TestApp,
    fe: FrontendHandle,
    token: String,
    key_id: String,
    agent: String,
}

async fn setup() -> Setup {
    setup_with(None).await
}

/// `redis`: the frontend publishes audit events there.
async fn setup_with(redis: Option<&str>) -> Setup {
    let limits = LimitConfig {
        token: "5/m".parse().expect("rate"),
        admin: "8/m".parse().expect("rate"),
        auth_failures: "1000/m".parse().expect("rate"),
    };
    let app = rpc_server(None, limits).await;
    let fe = spawn_frontend_from(frontend_config(&app.base, redis, false)).await;
    let created = app.mint("agent", Some("eng:rw"), false).await;
    Setup {
        _app: app,
        fe,
        token: created.token,
        key_id: created.key_id,
        agent: format!("rl-test-{}", uuid::Uuid::new_v4().simple()),
    }
}

/// A self-contained (stateless) `tools/call nexus_file_info`.
async fn file_info(s: &Setup, i: usize) -> reqwest::Response {
    let mut body = stateless_call_body("rl-test", "nexus_file_info", json!({"path": "/"}));
    body["id"] = json!(i);
    send(post(&s.fe.mcp_url, Some(&bearer(&s.token)), &body).header("user-agent", &s.agent)).await
}

#[tokio::test]
async fn each_tool_call_spends_one_unit_and_the_sixth_of_five_is_429() {
    let s = setup().await;
    for i in 0..5 {
        let r = file_info(&s, i).await;
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 200, "call {} of a budget of 5: {body}", i + 1);
        assert!(!body.contains("\"isError\":true"), "call {}: {body}", i + 1);
    }
    let r = file_info(&s, 5).await;
    assert_eq!(r.status().as_u16(), 429, "the 6th call of a budget of 5");
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After on the frontend's 429");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
}

#[tokio::test]
async fn the_frontends_429_carries_the_rate_limit_headers() {
    let s = setup().await;
    for i in 0..5 {
        assert_eq!(file_info(&s, i).await.status().as_u16(), 200);
    }
    let r = file_info(&s, 5).await;
    assert_eq!(r.status().as_u16(), 429);
    let h = r.headers();
    for name in [
        "retry-after",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(h.get(name).is_some(), "frontend 429 lacks {name}: {h:?}");
    }
    assert_eq!(h["x-ratelimit-limit"], "5");
    assert_eq!(h["x-ratelimit-remaining"], "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_call_is_audited_with_the_callers_key_id() {
    use futures_util::StreamExt;
    let url = rpc_server::testing::redis_url();
    let s = setup_with(Some(&url)).await;
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let mut ps = client.get_async_pubsub().await.expect("connect to Redis");
    ps.subscribe(nexus_wire::stats::AUDIT_CHANNEL)
        .await
        .expect("SUBSCRIBE");
    let mut messages = ps.into_on_message();
    for i in 0..6 {
        file_info(&s, i).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let ev = loop {
        let msg = tokio::time::timeout_at(deadline, messages.next())
            .await
            .expect("no audit event for the throttled call")
            .expect("subscription ended");
        let raw: String = msg.get_payload().expect("payload");
        let v: serde_json::Value = serde_json::from_str(&raw).expect("JSON");
        if v["user_agent"] == s.agent.as_str() && v["status_code"] == 429 {
            break v;
        }
    };
    assert_eq!(ev["outcome"], "rate_limited", "{ev}");
    assert_eq!(ev["key_id"], s.key_id.as_str(), "{ev}");
}

/// The first five requests of `kind` are answered (whatever MCP makes of them: a method a
/// stateless server does not know is still an authenticated request), the sixth is 429
/// with the headers.
async fn sixth_is_429(s: &Setup, kind: &str, send_one: impl AsyncFn(usize) -> reqwest::Response) {
    for i in 0..5 {
        let r = send_one(i).await;
        let status = r.status().as_u16();
        // Exactly one unit per request: the remainder the answer reports.
        let remaining = r
            .headers()
            .get("x-ratelimit-remaining")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let body = r.text().await.unwrap_or_default();
        assert_eq!(
            remaining.as_deref(),
            Some((4 - i).to_string().as_str()),
            "{kind}: remaining after request {}: {body}",
            i + 1
        );
        assert!(
            ![401, 429].contains(&status),
            "{kind}: request {} of a budget of 5 got {status}: {body}",
            i + 1
        );
    }
    let r = send_one(5).await;
    assert_eq!(
        r.status().as_u16(),
        429,
        "{kind}: the 6th request of a budget of 5 (token {})",
        s.key_id
    );
    let h = r.headers();
    for name in [
        "retry-after",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(h.get(name).is_some(), "{kind}: 429 lacks {name}: {h:?}");
    }
    assert_eq!(h["x-ratelimit-limit"], "5", "{kind}");
    assert_eq!(h["x-ratelimit-remaining"], "0", "{kind}");
}

fn stateless(method: &str, id: usize) -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method,
           "params": {"_meta": common::mcp::meta("rl-test")}})
}

/// Every authenticated MCP request spends one unit, whatever its kind (SPEC §10): a token
/// limited to 5/m cannot list tools, ping or initialize without limit.
#[tokio::test]
async fn every_kind_of_mcp_request_spends_one_unit() {
    // The direct (stateless) path.
    for method in ["tools/list", "ping", "server/discover"] {
        let s = setup().await;
        sixth_is_429(&s, method, async |i| {
            send(post(
                &s.fe.mcp_url,
                Some(&bearer(&s.token)),
                &stateless(method, i),
            ))
            .await
        })
        .await;
    }
    // A legacy initialize, each opening a session.
    let s = setup().await;
    sixth_is_429(&s, "initialize", async |_| {
        send(post(
            &s.fe.mcp_url,
            Some(&bearer(&s.token)),
            &common::mcp::initialize_body("rl-test"),
        ))
        .await
    })
    .await;
    // A tool call the handler answers without the rpc-server (an unknown tool).
    let s = setup().await;
    sixth_is_429(&s, "tools/call of an unknown tool", async |_| {
        let body = stateless_call_body("rl-test", "no_such_tool", json!({}));
        send(post(&s.fe.mcp_url, Some(&bearer(&s.token)), &body)).await
    })
    .await;
}

/// Inside an rmcp session: initialize and its notification are two units, then three
/// `tools/list`, and the sixth request (another `tools/list`) is refused.
#[tokio::test]
async fn a_session_spends_one_unit_per_request() {
    let s = setup().await;
    let auth = bearer(&s.token);
    let (sid, _) = common::mcp::open_session(&s.fe.mcp_url, &auth, "rl-test").await;
    let list = |id: usize| {
        post(
            &s.fe.mcp_url,
            Some(&auth),
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}),
        )
        .header("mcp-session-id", &sid)
    };
    for i in 0..3 {
        let r = send(list(10 + i)).await;
        assert_eq!(
            r.status().as_u16(),
            200,
            "tools/list {} in the session",
            i + 1
        );
        let _ = r.text().await;
    }
    let r = send(list(20)).await;
    assert_eq!(
        r.status().as_u16(),
        429,
        "the 6th request of the session (initialize, initialized, 3 × tools/list)"
    );
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    assert!(r.headers().get("retry-after").is_some());
}

/// rmcp's own client, in either lifecycle, meets the limit after five requests at most.
#[tokio::test]
async fn an_rmcp_client_cannot_list_tools_without_limit() {
    for era in common::ERAS {
        let s = setup().await;
        let refused = match common::try_connect(&s.fe.mcp_url, &s.token, era).await {
            Err(_) => true,
            Ok(c) => {
                let mut refused = false;
                for _ in 0..6 {
                    let r = tokio::time::timeout(common::STEP, c.list_tools(None))
                        .await
                        .expect("tools/list hung");
                    if r.is_err() {
                        refused = true;
                        break;
                    }
                }
                refused
            }
        };
        assert!(refused, "{}: 6 × tools/list on a budget of 5", era.name());
    }
}
