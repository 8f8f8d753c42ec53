//! The frontend's direct path for stateless (2026-07-28) requests against rmcp's general
//! transport: the same requests, valid and malformed, sent to a frontend with the direct
//! path and to one without it (both in front of the same rpc-server), must get the same
//! HTTP status, content type and byte-identical JSON-RPC body. The direct frontend's
//! counter shows which requests it answered itself: exactly the valid ones.

use crate::common;

use common::mcp::{ACCEPT, bearer, headers, meta};
use common::{Hub, http, spawn_frontend_with};
use serde_json::{Value, json};

/// One request: its headers beyond the token, its raw body, and whether the direct path
/// is expected to answer it.
struct Case {
    what: &'static str,
    admin: bool,
    headers: Vec<(&'static str, String)>,
    body: String,
    direct: bool,
}

/// A well-formed stateless request for `method` with `params` (plus `_meta`).
fn modern(what: &'static str, method: &str, mut params: Value) -> Case {
    params["_meta"] = meta("diff");
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let mut all = vec![("accept", ACCEPT.to_owned())];
    all.extend(headers(&body));
    Case {
        what,
        admin: false,
        headers: all,
        body: body.to_string(),
        direct: true,
    }
}

fn call(what: &'static str, tool: &str, args: Value) -> Case {
    modern(what, "tools/call", json!({"name": tool, "arguments": args}))
}

impl Case {
    fn admin(mut self) -> Self {
        self.admin = true;
        self
    }
    /// The direct path leaves this one to rmcp.
    fn general(mut self) -> Self {
        self.direct = false;
        self
    }
    fn body(mut self, f: impl FnOnce(&mut Value)) -> Self {
        let mut v: Value = serde_json::from_str(&self.body).expect("json");
        f(&mut v);
        self.body = v.to_string();
        self
    }
    fn raw_body(mut self, b: &str) -> Self {
        self.body = b.to_owned();
        self
    }
    fn set(mut self, name: &'static str, value: &str) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_owned()));
        self
    }
    fn add(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
    fn without(mut self, name: &'static str) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self
    }
}

fn cases() -> Vec<Case> {
    let read = || call("read", "nexus_read_file", json!({"path": "/notes/a.md"}));
    vec![
        // Answered directly.
        read(),
        call(
            "read, odd text",
            "nexus_read_file",
            json!({"path": "/notes/odd.md"}),
        ),
        read().body(|b| b["id"] = json!("req-ü\"1")),
        read().body(|b| b["id"] = json!(-3)),
        read().body(|b| b["id"] = json!(9_007_199_254_740_993_i64)),
        read().body(|b| b["params"]["_meta"]["progressToken"] = json!(5)),
        read().body(|b| b["extra"] = json!(true)),
        read().set("content-type", "application/json; charset=utf-8"),
        read().set("accept", "text/event-stream,application/json"),
        call(
            "list",
            "nexus_list_files",
            json!({"path": "/", "recursive": true}),
        ),
        call("info", "nexus_file_info", json!({"path": "/notes/a.md"})),
        call("glob", "nexus_glob", json!({"pattern": "**/*.md"})),
        call("grep", "nexus_grep", json!({"pattern": "hello"})),
        call("whoami", "nexus_whoami", json!({})),
        modern(
            "whoami, no arguments",
            "tools/call",
            json!({"name": "nexus_whoami"}),
        ),
        modern(
            "whoami, null arguments",
            "tools/call",
            json!({"name": "nexus_whoami", "arguments": null}),
        ),
        call(
            "missing file",
            "nexus_read_file",
            json!({"path": "/nope.md"}),
        ),
        call("missing argument", "nexus_read_file", json!({})),
        call("wrong argument type", "nexus_read_file", json!({"path": 5})),
        call(
            "outside the zone",
            "nexus_read_file",
            json!({"path": "/../beta/x"}),
        ),
        call("unknown tool", "nexus_nope", json!({})),
        call("admin tool, plain token", "nexus_hub_token_list", json!({})),
        call("admin tool, admin token", "nexus_hub_token_list", json!({})).admin(),
        modern("tools/list", "tools/list", json!({})),
        modern("tools/list, admin", "tools/list", json!({})).admin(),
        modern("tools/list, cursor", "tools/list", json!({"cursor": "abc"})),
        modern("discover", "server/discover", json!({})),
        modern("ping", "ping", json!({})),
        // Left to rmcp: both frontends answer them the same way, through rmcp.
        read().without("mcp-name").general(),
        read().set("mcp-name", "nexus_write_file").general(),
        read()
            .set("mcp-name", "=?base64?bmV4dXNfcmVhZF9maWxl?=")
            .general(),
        read().add("mcp-name", "nexus_read_file").general(),
        read().without("mcp-method").general(),
        read().set("mcp-method", "tools/list").general(),
        read().add("mcp-method", "tools/call").general(),
        read().without("mcp-protocol-version").general(),
        read().set("mcp-protocol-version", "2025-11-25").general(),
        read().set("mcp-protocol-version", "1999-01-01").general(),
        read()
            .body(|b| {
                b["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] =
                    json!("2025-11-25")
            })
            .general(),
        read()
            .body(|b| {
                b["params"]["_meta"]
                    .as_object_mut()
                    .expect("meta")
                    .remove("io.modelcontextprotocol/clientCapabilities");
            })
            .general(),
        read()
            .body(|b| b["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!(5))
            .general(),
        read()
            .body(|b| {
                b["params"].as_object_mut().expect("params").remove("_meta");
            })
            .general(),
        read().body(|b| b["jsonrpc"] = json!("1.0")).general(),
        read()
            .body(|b| {
                b.as_object_mut().expect("body").remove("jsonrpc");
            })
            .general(),
        read()
            .body(|b| {
                b.as_object_mut().expect("body").remove("id");
            })
            .general(),
        read().body(|b| b["id"] = json!(null)).general(),
        read().body(|b| b["id"] = json!(1.5)).general(),
        read().body(|b| b["id"] = json!({"a": 1})).general(),
        read()
            .body(|b| b["params"]["arguments"] = json!(["/notes/a.md"]))
            .general(),
        read().body(|b| b["params"]["name"] = json!(5)).general(),
        read()
            .body(|b| b["params"]["task"] = json!({"ttl": 1000}))
            .general(),
        read().set("accept", "application/json").general(),
        read()
            .set("accept", "application/json;q=1, text/event-stream;q=0.5")
            .general(),
        read()
            .set("accept", "application/json, text/event-stream;q=0")
            .general(),
        read().set("content-type", "text/plain").general(),
        read().raw_body("{\"jsonrpc\":\"2.0\",").general(),
        read().raw_body("[1, 2]").general(),
        read().raw_body("17").general(),
        modern("unknown method", "resources/list", json!({})).general(),
        modern(
            "notification",
            "notifications/cancelled",
            json!({"requestId": 1}),
        )
        .body(|b| {
            b.as_object_mut().expect("body").remove("id");
        })
        .general(),
    ]
}

/// Status, content type and body of `case` sent to `url` with `token`.
async fn send(url: &str, token: &str, case: &Case) -> (u16, String, String) {
    // Built by hand: a case may drop or repeat any header, Accept included.
    let mut r = http()
        .post(url)
        .header("authorization", bearer(token))
        .body(case.body.clone());
    for (n, v) in &case.headers {
        r = r.header(*n, v);
    }
    let resp = common::mcp::send(r).await;
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, ct, resp.text().await.expect("body"))
}

async fn direct_count(base: &str) -> u64 {
    rpc_server::testing::metric_at(base, "nexus_mcp_direct_requests_total")
        .await
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_path_answers_exactly_as_rmcp_does() {
    let hub = Hub::start().await;
    let general = spawn_frontend_with(&hub.app.base, |c| c.direct_path = false).await;
    hub.app.zone("alpha").await;
    hub.app.zone("beta").await;
    let token = hub.token("diff", Some("alpha"), false).await;
    let admin = hub.token("diff-admin", None, true).await;
    hub.app
        .write_files(
            &token,
            &[
                ("/notes/a.md", "hello from the direct path\n"),
                ("/notes/odd.md", "tab\t\"quotes\" \\ back ü 🦀 \u{1}\n"),
            ],
        )
        .await;
    let cases = cases();
    let mut mismatches = Vec::new();
    for case in &cases {
        let t = if case.admin { &admin } else { &token };
        let direct = send(hub.mcp_url(), t, case).await;
        let rmcp = send(&general.mcp_url, t, case).await;
        if direct != rmcp {
            mismatches.push(format!(
                "{} ({}):\n  direct: {direct:?}\n  rmcp:   {rmcp:?}",
                case.what, case.body
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    let expected = cases.iter().filter(|c| c.direct).count() as u64;
    assert_eq!(
        direct_count(&hub.fe.base).await,
        expected,
        "the direct path answers exactly the valid stateless requests"
    );
    assert_eq!(direct_count(&general.base).await, 0);
}
