//! The bearer layer: nothing reaches rmcp on behalf of a caller whose token the rpc-server
//! has not accepted.
//!
//! The token comes from `Authorization: Bearer` or `X-Nexus-API-Key`; it is verified by the
//! rpc-server (whose identity cache is the only cache) and kept for this request only.
//! Two paths:
//! - A stateless `tools/call` verifies on the forwarded call itself (one rpc hop): the
//!   handler reports the rpc-server's verdict through an [`AuthSlot`], and a refusal turns
//!   the response into 401. If the handler never reached the rpc-server (unknown tool,
//!   malformed call), the token is verified before the response is released.
//! - Everything else (initialize, tools/list, discover, session traffic, GET, DELETE) is
//!   verified first with one `whoami` call, and legacy sessions are checked against the
//!   key id that opened them.

use super::metrics::Record;
use super::{error_response, unauthorized};
use crate::app::AppState;
use crate::forward::{ADMIN_HEADER, CallerToken, ForwardError, KEY_ID_HEADER, Verified};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use secrecy::SecretString;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

const SESSION_HEADER: &str = "mcp-session-id";
const API_KEY_HEADER: &str = "x-nexus-api-key";

#[derive(Debug, Clone, Default)]
enum SlotState {
    #[default]
    Unchecked,
    Verified(Verified),
    Unauthorized,
    /// The rpc-server could not decide on the token (its database is down).
    Unavailable,
    RateLimited(Option<u64>, Box<Verified>),
}

/// Where the tool handler reports what the rpc-server said about the caller's token.
#[derive(Debug, Clone, Default)]
pub struct AuthSlot(Arc<Mutex<SlotState>>);

impl AuthSlot {
    fn set(&self, s: SlotState) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }
    fn get(&self) -> SlotState {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn verified(&self, v: Verified) {
        self.set(SlotState::Verified(v));
    }
    pub fn unauthorized(&self) {
        self.set(SlotState::Unauthorized);
    }
    pub fn unavailable(&self) {
        self.set(SlotState::Unavailable);
    }
    pub fn rate_limited(&self, retry_after: Option<u64>, who: &Verified) {
        self.set(SlotState::RateLimited(retry_after, Box::new(who.clone())));
    }
}

/// The method (and tool) of a JSON-RPC body, if it is a single request.
fn peek(body: &[u8]) -> (String, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Peek {
        method: Option<String>,
        params: Option<PeekParams>,
    }
    #[derive(serde::Deserialize)]
    struct PeekParams {
        name: Option<serde_json::Value>,
    }
    if body.first().is_some_and(|b| *b == b'[') {
        return ("batch".into(), None);
    }
    match serde_json::from_slice::<Peek>(body) {
        Ok(p) => {
            let tool = p
                .params
                .and_then(|pp| pp.name)
                .and_then(|n| n.as_str().map(str::to_owned));
            (p.method.unwrap_or_default(), tool)
        }
        Err(_) => (String::new(), None),
    }
}

/// Where the RFC 9728 metadata of this resource lives.
pub fn resource_metadata_url(st: &AppState, headers: &HeaderMap) -> String {
    let base = match &st.cfg.public_url {
        Some(u) => u.trim_end_matches("/mcp").to_owned(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    format!("{base}/.well-known/oauth-protected-resource")
}

fn caller_token(headers: &HeaderMap) -> Result<CallerToken, nexus_wire::bearer::BearerError> {
    if headers.get_all(header::AUTHORIZATION).iter().count() > 1
        || headers.get_all(API_KEY_HEADER).iter().count() > 1
    {
        return Err(nexus_wire::bearer::BearerError::Malformed);
    }
    nexus_wire::bearer::extract(
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
        headers.get(API_KEY_HEADER).map(HeaderValue::as_bytes),
    )
    .map(|t| CallerToken {
        secret: SecretString::from(t.to_owned()),
        client: None,
    })
}

/// 429 with `Retry-After` and the rpc-server's `X-RateLimit-*` for this caller.
fn rate_limited(retry_after: Option<u64>, who: &Verified, record: &Record) -> Response {
    let mut r = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests; slow down",
    );
    if !who.key_id.is_empty() {
        record.verified(who);
    }
    if let Some(rate) = &who.rate {
        rate.apply(r.headers_mut());
    }
    if let Some(s) = retry_after
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn payload_too_large() -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "request body too large",
    )
}

fn unavailable() -> Response {
    let mut r = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the hub cannot verify tokens right now; retry shortly",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    r
}

/// 401, or 429 once this client address has failed too often: token guessing is slow.
fn refuse(st: &AppState, peer: Option<IpAddr>, metadata: &str) -> Response {
    match peer {
        Some(ip) if st.auth_failures.check_key(&ip).is_err() => {
            let mut r = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failures",
                "too many failed authentications from this address; retry later",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            r
        }
        _ => unauthorized(metadata),
    }
}

/// Bodies up to this size are read before the token is checked (the check then rides on
/// the forwarded call); larger or undeclared ones wait for a verified token.
const VERIFY_FIRST_ABOVE: u64 = 64 * 1024;

pub async fn bearer(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    // Identity travels in extensions set here, never in headers a client could forge;
    // strip look-alikes anyway so nothing downstream can be confused by them.
    parts.headers.remove(KEY_ID_HEADER);
    parts.headers.remove(ADMIN_HEADER);
    let metadata = resource_metadata_url(&st, &parts.headers);
    // Behind a trusted proxy (TLS terminator), the client is the forwarded address.
    // Every line: a proxy may append its own after the client's.
    let forwarded = nexus_wire::forwarded::join_lines(
        parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().ok()),
    );
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| {
        nexus_wire::forwarded::client_ip(c.0.ip(), forwarded.as_deref(), &st.cfg.trusted_proxies)
    });
    let token = match caller_token(&parts.headers) {
        Ok(t) => Some(CallerToken { client: peer, ..t }),
        Err(nexus_wire::bearer::BearerError::Missing) if !st.cfg.require_bearer => None,
        Err(_) => return refuse(&st, peer, &metadata),
    };
    // A body declared too large is refused before a byte of it is read (hyper then closes
    // the connection instead of draining it); an undeclared one is cut at the limit.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > st.cfg.max_body_bytes as u64) {
        return payload_too_large();
    }
    let record = parts
        .extensions
        .get::<Record>()
        .cloned()
        .unwrap_or_default();
    // Buffering a large body for a caller nobody has vouched for would let any well-formed
    // token make this process hold max_body_bytes per connection: above a small size (or
    // with no declared size), the token is verified before a byte of the body is read.
    let mut pre_verified = None;
    if let Some(t) = &token
        && parts.method == Method::POST
        && declared.is_none_or(|n| n > VERIFY_FIRST_ABOVE)
    {
        match st.rpc.call(t, "whoami", serde_json::json!({})).await {
            Ok((_, v)) => pre_verified = Some(v),
            Err(ForwardError::Unauthorized) => return refuse(&st, peer, &metadata),
            Err(ForwardError::RateLimited {
                retry_after,
                verified,
            }) => return rate_limited(retry_after, &verified, &record),
            Err(_) => return unavailable(),
        }
    }
    let bytes = if parts.method == Method::POST {
        match axum::body::to_bytes(body, st.cfg.max_body_bytes).await {
            Ok(b) => b,
            Err(_) => return payload_too_large(),
        }
    } else {
        Bytes::new()
    };
    let (method, tool) = if parts.method == Method::POST {
        peek(&bytes)
    } else {
        (parts.method.to_string(), None)
    };
    record.set(&method, tool.as_deref());
    let Some(token) = token else {
        // Bearer not required and none given: the rpc-server refuses every forwarded call.
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    };
    let session = parts
        .headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if parts.method == Method::POST && method == "tools/call" && session.is_none() {
        parts.extensions.insert(token.clone());
        let req = Request::from_parts(parts, Body::from(bytes));
        return one_hop(st, req, token, &metadata, &record, peer, next).await;
    }
    let checked = match pre_verified {
        Some(v) => Ok(v),
        None => st
            .rpc
            .call(&token, "whoami", serde_json::json!({}))
            .await
            .map(|(_, v)| v),
    };
    let verified = match checked {
        Ok(v) => v,
        Err(ForwardError::Unauthorized) => return refuse(&st, peer, &metadata),
        Err(ForwardError::RateLimited {
            retry_after,
            verified,
        }) => {
            return rate_limited(retry_after, &verified, &record);
        }
        Err(_) => return unavailable(),
    };
    st.metrics.saw_client(&verified.key_id);
    record.verified(&verified);
    if let Some(sid) = &session
        && !st.sessions.is_owner(sid, &verified.key_id)
    {
        return error_response(
            StatusCode::NOT_FOUND,
            "session_not_found",
            "no such session for this token; initialize a new one",
        );
    }
    let is_delete = parts.method == Method::DELETE;
    let key_id = verified.key_id.clone();
    parts.extensions.insert(token);
    parts.extensions.insert(verified);
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if method == "initialize"
        && resp.status().is_success()
        && let Some(sid) = resp
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
    {
        st.sessions.bind(sid, &key_id);
    }
    if is_delete
        && resp.status().is_success()
        && let Some(sid) = &session
    {
        st.sessions.unbind(sid);
    }
    resp
}

async fn one_hop(
    st: AppState,
    mut req: Request,
    token: CallerToken,
    metadata: &str,
    record: &Record,
    peer: Option<IpAddr>,
    next: Next,
) -> Response {
    let slot = AuthSlot::default();
    req.extensions_mut().insert(slot.clone());
    let resp = next.run(req).await;
    match slot.get() {
        SlotState::Verified(v) => {
            st.metrics.saw_client(&v.key_id);
            record.verified(&v);
            let mut resp = resp;
            if let Some(rate) = &v.rate {
                rate.apply(resp.headers_mut());
            }
            resp
        }
        SlotState::Unauthorized => refuse(&st, peer, metadata),
        // Not verified, not refused: the caller must hear "retry", and nothing else.
        SlotState::Unavailable => unavailable(),
        SlotState::RateLimited(r, who) => rate_limited(r, &who, record),
        // The handler did not reach the rpc-server: decide on the token before answering.
        SlotState::Unchecked => match st.rpc.call(&token, "whoami", serde_json::json!({})).await {
            Ok((_, v)) => {
                st.metrics.saw_client(&v.key_id);
                record.verified(&v);
                resp
            }
            Err(ForwardError::Unauthorized) => refuse(&st, peer, metadata),
            Err(ForwardError::RateLimited {
                retry_after,
                verified,
            }) => rate_limited(retry_after, &verified, record),
            Err(ForwardError::AuthUnavailable) => unavailable(),
            Err(_) => resp,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::peek;

    #[test]
    fn peeks_method_and_tool() {
        assert_eq!(
            peek(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nexus_read_file"}}"#),
            ("tools/call".into(), Some("nexus_read_file".into()))
        );
        assert_eq!(peek(br#"[{"method":"x"}]"#).0, "batch");
        assert_eq!(peek(b"{not json").0, "");
        assert_eq!(
            peek(br#"{"method":"tools/call","params":{"name":5}}"#).1,
            None
        );
    }
}
