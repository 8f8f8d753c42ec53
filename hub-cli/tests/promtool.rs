//! Both services' `/metrics` pass `promtool check metrics` (Prometheus's own linter) after
//! real traffic, and label values stay bounded: an unknown tool or method name is counted
//! as `other`, never echoed, and no token ever appears.
//!
//! Needs `promtool` (Debian: `apt-get install prometheus`; `.ci/run` installs it).

use crate::common;

use common::{Era, Hub, connect, expect_ok, expect_tool_error, http, try_call};
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `promtool check metrics` on `text` (stdin); panics with its report on a problem.
fn promtool_check(what: &str, text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed: apt-get install prometheus \
             (Debian's prometheus package ships promtool)"
        ),
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed on the {what}'s /metrics ({}):\n{}{}\n--- metrics ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

async fn metrics(base: &str) -> String {
    let resp = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.expect("metrics text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_services_metrics_pass_promtool_with_bounded_labels() {
    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    let token = hub.token("metrics", Some("eng:rw"), false).await;
    let admin = hub.token("admin", None, true).await;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let bogus_tool = format!("bogus_tool_{unique}");
    let bogus_method = format!("bogus_method_{unique}");

    // Ordinary traffic, both lifecycles, successes and tool errors.
    for era in common::ERAS {
        let c = connect(hub.mcp_url(), &token, era).await;
        expect_ok(
            "write",
            try_call(
                &c,
                "nexus_write_file",
                json!({"path": "/m.txt", "content": "metrics"}),
            )
            .await,
        );
        expect_ok(
            "read",
            try_call(&c, "nexus_read_file", json!({"path": "/m.txt"})).await,
        );
        expect_tool_error(
            "missing file",
            try_call(&c, "nexus_read_file", json!({"path": "/missing.txt"})).await,
        );
    }
    let c = connect(hub.mcp_url(), &admin, Era::Stateless).await;
    expect_ok("status", try_call(&c, "nexus_hub_status", json!({})).await);

    // An unknown tool through raw JSON-RPC (a stateless 2026-07-28 request).
    let modern = "2026-07-28";
    let resp = http()
        .post(hub.mcp_url())
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", modern)
        .header("mcp-method", "tools/call")
        .header("mcp-name", &bogus_tool)
        .body(
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
                "name": bogus_tool,
                "arguments": {},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": modern,
                    "io.modelcontextprotocol/clientInfo": {"name": "promtool-test", "version": "0"},
                    "io.modelcontextprotocol/clientCapabilities": {}
                }
            }})
            .to_string(),
        )
        .send()
        .await
        .expect("raw tools/call");
    let status = resp.status().as_u16();
    let body = resp.text().await.expect("body");
    assert!(
        status == 200 || status == 400,
        "unknown tool: HTTP {status}: {body}"
    );
    assert!(body.contains("error"), "unknown tool is an error: {body}");
    // An unknown JSON-RPC method name straight at the rpc-server, and refused requests.
    let (s, body) = hub
        .app
        .rpc_raw(Some(&token), &bogus_method, json!({}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(body["error"]["code"], -32601, "{body}");
    let r = http()
        .post(hub.mcp_url())
        .bearer_auth(format!("sk-wrong{unique}"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string())
        .send()
        .await
        .expect("refused request");
    assert_eq!(r.status().as_u16(), 401);

    let rpc = metrics(&hub.app.base).await;
    let fe = metrics(&hub.fe.base).await;
    promtool_check("rpc-server", &rpc);
    promtool_check("frontend", &fe);

    for (name, text) in [("rpc-server", &rpc), ("frontend", &fe)] {
        assert!(
            !text.contains(&unique),
            "{name} /metrics echo an unknown name:\n{text}"
        );
        for t in [&token, &admin] {
            assert!(!text.contains(t.as_str()), "{name} /metrics carry a token");
        }
        assert!(
            !text.contains("sk-"),
            "{name} /metrics carry something like a token"
        );
    }
    assert!(
        fe.contains("tool_name=\"other\""),
        "the unknown tool is not counted as tool_name=\"other\":\n{fe}"
    );
    for family in [
        "nexus_mcp_requests_total",
        "nexus_mcp_request_latency_seconds",
        "nexus_mcp_active_clients",
        "nexus_mcp_errors_total",
    ] {
        assert!(
            fe.contains(&format!("# TYPE {family} ")),
            "frontend /metrics lack {family}"
        );
    }
    assert!(
        fe.contains("tool_name=\"nexus_write_file\""),
        "known tools keep their name"
    );
}
