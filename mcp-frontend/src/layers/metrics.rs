//! Counts, times and audits every `/mcp` request. Inner layers fill a [`Record`] with
//! the MCP method, the tool and the verified caller; labels stay in closed sets and the
//! audit event carries key ids, never tokens.

use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::forward::Verified;
use crate::metrics::{method_label, status_label};
use crate::tools::catalogue::tool_label;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Default, Debug)]
struct Fields {
    method: String,
    tool: Option<String>,
    verified: Option<Verified>,
}

/// What the request turned out to be, filled in by inner layers.
#[derive(Clone, Default, Debug)]
pub struct Record(Arc<Mutex<Fields>>);

impl Record {
    fn lock(&self) -> std::sync::MutexGuard<'_, Fields> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, method: &str, tool: Option<&str>) {
        let mut f = self.lock();
        f.method = method.to_owned();
        f.tool = tool.map(str::to_owned);
    }

    pub fn verified(&self, v: &Verified) {
        self.lock().verified = Some(v.clone());
    }
}

/// The `X-Request-Id` a caller sent, cleaned; ours replaces it on the request.
#[derive(Clone, Debug)]
pub struct ClientRequestId(pub String);

/// Longest caller request id kept.
const CLIENT_REQUEST_ID_MAX: usize = 128;

/// Moves the caller's `X-Request-Id` out of the way so the frontend's own id is always
/// the request id; what the caller sent is kept (only `[A-Za-z0-9._:-]`, at most
/// 128 characters) for the audit line's `client_request_id`.
pub async fn stash_client_request_id(mut req: Request) -> Request {
    // `remove` takes every value of the header and returns the first.
    let clean = req
        .headers_mut()
        .remove("x-request-id")
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

pub async fn track(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let record = Record::default();
    record.set(req.method().as_str(), None);
    req.extensions_mut().insert(record.clone());
    let (request_id, user_agent) = {
        let h = req.headers();
        let text = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(256).collect::<String>())
        };
        (text("x-request-id"), text(header::USER_AGENT.as_str()))
    };
    let client_request_id = req
        .extensions()
        .get::<ClientRequestId>()
        .map(|c| c.0.clone());
    let resp = next.run(req).await;
    let elapsed = started.elapsed();
    let f = std::mem::take(&mut *record.lock());
    let method = method_label(&f.method);
    let tool = f.tool.as_deref().map(tool_label);
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
    let v = f.verified;
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
