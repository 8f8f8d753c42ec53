//! MCP over raw HTTP, for the tests that look at statuses and headers rmcp's client would
//! hide: the request bodies of both eras, the headers each era sends with them, and the
//! JSON-RPC message inside a JSON or SSE answer.

use super::{STEP, http};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

/// What a client accepts: a JSON answer or an SSE stream.
pub const ACCEPT: &str = "application/json, text/event-stream";
/// The legacy (session) protocol version.
pub const LEGACY: &str = "2025-11-25";
/// The stateless protocol version.
pub const MODERN: &str = "2026-07-28";

/// The `_meta` a stateless request carries in place of a session, for client `client`.
pub fn meta(client: &str) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": client, "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

/// A legacy `initialize` (id 1) from client `client`.
pub fn initialize_body(client: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": LEGACY,
        "capabilities": {},
        "clientInfo": {"name": client, "version": "0"}
    }})
}

/// A self-contained stateless `tools/call` (id 2) from client `client`.
pub fn stateless_call_body(client: &str, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": tool,
        "arguments": args,
        "_meta": meta(client)
    }})
}

/// A `tools/call` (id 3) inside a legacy session.
pub fn session_call_body(tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
           "params": {"name": tool, "arguments": args}})
}

/// `Bearer <token>`, the Authorization value of a token.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The headers a client sends with `body` beside the credential and `Accept`: the content
/// type and those of the body's era (a stateless body carries `_meta` with [`MODERN`]: protocol
/// version, `Mcp-Method` and `Mcp-Name` mirroring the body; a legacy one the protocol
/// version, except on `initialize`, which negotiates it).
pub fn headers(body: &Value) -> Vec<(&'static str, String)> {
    let mut h = vec![("content-type", "application/json".to_owned())];
    if body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == MODERN {
        h.push(("mcp-protocol-version", MODERN.to_owned()));
        if let Some(m) = body["method"].as_str() {
            h.push(("mcp-method", m.to_owned()));
        }
        if let Some(n) = body["params"]["name"].as_str() {
            h.push(("mcp-name", n.to_owned()));
        }
    } else if body["method"] != "initialize" {
        h.push(("mcp-protocol-version", LEGACY.to_owned()));
    }
    h
}

/// A request to `url` accepting JSON or SSE; `auth` is the raw Authorization value, if any.
pub fn request(url: &str, method: Method, auth: Option<&str>) -> RequestBuilder {
    let mut r = http().request(method, url).header("accept", ACCEPT);
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    r
}

/// A POST of `body` to `url` with the [`headers`] its era needs.
pub fn post(url: &str, auth: Option<&str>, body: &Value) -> RequestBuilder {
    let mut r = request(url, Method::POST, auth).body(body.to_string());
    for (name, value) in headers(body) {
        r = r.header(name, value);
    }
    r
}

/// Sends `r`, bounded by [`STEP`].
pub async fn send(r: RequestBuilder) -> Response {
    tokio::time::timeout(STEP, r.send())
        .await
        .expect("request hung")
        .expect("request")
}

/// The JSON-RPC message of a response, plain JSON or the last `data:` of an SSE body.
pub async fn message(resp: Response) -> Value {
    let text = tokio::time::timeout(STEP, resp.text())
        .await
        .expect("body hung")
        .expect("body");
    if let Ok(v) = serde_json::from_str(&text) {
        return v;
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .next_back()
        .unwrap_or_else(|| panic!("no JSON-RPC message in {text:?}"))
}

/// `initialize` + `notifications/initialized` as client `client`, with `auth` the raw
/// Authorization value; returns the session id and the `initialize` answer.
pub async fn open_session(url: &str, auth: &str, client: &str) -> (String, Value) {
    let resp = send(post(url, Some(auth), &initialize_body(client))).await;
    assert_eq!(resp.status().as_u16(), 200, "initialize");
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .expect("a legacy initialize opens a session")
        .to_str()
        .expect("ASCII session id")
        .to_owned();
    let init = message(resp).await;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let resp = send(post(url, Some(auth), &note).header("mcp-session-id", &sid)).await;
    assert!(resp.status().is_success(), "initialized: {}", resp.status());
    (sid, init)
}
