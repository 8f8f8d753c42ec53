//! Counts, times and audits every `/mcp` request. What the request turned out to be (the
//! MCP method, the tool, the verified caller) comes back on the response's extensions
//! from the layers that learned it; labels stay in closed sets and the audit event
//! carries key ids, never tokens.

use crate::audit::AuditEvent;
use crate::forward::Verified;
use crate::mcp::catalogue::tool_label;
use crate::metrics::{method_label, status_label};
use crate::request::{ClientRequestId, McpCall};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

/// Longest caller request id kept.
const CLIENT_REQUEST_ID_MAX: usize = 128;

/// Moves the caller's `X-Request-Id` out of the way so the frontend's own id is always
/// the request id; what the caller sent is kept (only `[A-Za-z0-9._:-]`, at most
/// 128 characters) for the audit line's `client_request_id`.
pub(crate) async fn stash_client_request_id(mut req: Request) -> Request {
    // `remove` takes every value of the header and returns the first.
    let clean = req
        .headers_mut()
        .remove(nexus_wire::headers::REQUEST_ID)
        .map(|v| {
            v.as_bytes()
                .iter()
                .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
                .take(CLIENT_REQUEST_ID_MAX)
                .map(|b| char::from(*b))
                .collect::<String>()
        })
        .filter(|s| !s.is_empty());
    if let Some(id) = clean {
        req.extensions_mut().insert(ClientRequestId(id));
    }
    req
}

fn outcome(status: u16) -> &'static str {
    match status {
        200..=299 => "ok",
        401 => "unauthorized",
        403 => "forbidden",
        429 => "rate_limited",
        400..=499 => "client_error",
        _ => "error",
    }
}

pub(crate) async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let http_method = req.method().clone();
    let (request_id, user_agent) = {
        let h = req.headers();
        let text = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(256).collect::<String>())
        };
        (
            text(nexus_wire::headers::REQUEST_ID),
            text(header::USER_AGENT.as_str()),
        )
    };
    let client_request_id = req
        .extensions()
        .get::<ClientRequestId>()
        .map(|c| c.0.clone());
    let resp = next.run(req).await;
    let elapsed = started.elapsed();
    let call = resp.extensions().get::<McpCall>();
    let method = method_label(call.map_or(http_method.as_str(), |c| c.method.as_str()));
    let tool = call.and_then(|c| c.tool.as_deref()).map(tool_label);
    let code = resp.status().as_u16();
    let status = status_label(code);
    st.metrics
        .requests
        .with_label_values(&[method, tool.unwrap_or(""), status])
        .inc();
    st.metrics
        .latency
        .with_label_values(&[method])
        .observe(elapsed.as_secs_f64());
    if !resp.status().is_success() {
        st.metrics
            .errors
            .with_label_values(&[method, tool.unwrap_or(""), status])
            .inc();
    }
    let v = resp.extensions().get::<Verified>();
    st.audit.record(AuditEvent {
        ts: chrono_like_now(),
        event: "mcp.request",
        request_id,
        client_request_id,
        key_id: v
            .as_ref()
            .map(|v| v.key_id.clone())
            .filter(|k| !k.is_empty()),
        subject_id: v
            .as_ref()
            .map(|v| v.user_id.clone())
            .filter(|k| !k.is_empty()),
        zone_id: v.as_ref().map(|v| v.zone.clone()).filter(|k| !k.is_empty()),
        rpc_method: method,
        tool_name: tool,
        status_code: code,
        outcome: outcome(code),
        latency_ms: (elapsed.as_secs_f64() * 1e6).round() / 1e3,
        user_agent,
    });
    resp
}

fn chrono_like_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
