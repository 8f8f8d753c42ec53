//! The bearer layer: nothing reaches rmcp on behalf of a caller whose token the rpc-server
//! has not accepted, and a caller nobody has vouched for can hold almost nothing.
//!
//! The token comes from `Authorization: Bearer` or `X-Nexus-API-Key`; it is verified by the
//! rpc-server (whose identity cache is the only cache of verdicts). The frontend remembers
//! only which token fingerprints were verified lately ([`crate::admission`]): an unknown
//! token is verified before a byte of its body is read, and every body has a deadline.
//! Every MCP request costs the caller one unit of its rate limit:
//! - A `tools/call` verifies on the forwarded call itself (one rpc hop, counted): the
//!   handler reports the rpc-server's verdict through an [`AuthSlot`], and a refusal
//!   turns the response into 401, 429 or 503, in a legacy session as without one. If the
//!   handler never reached the rpc-server (unknown tool, malformed call), the token is
//!   verified, and counted, before the response is released.
//! - Everything else (initialize, tools/list, discover, GET, DELETE, notifications) is
//!   verified with one counted `whoami`; legacy sessions are checked against the key id
//!   that opened them, and sessions and SSE streams are capped per key and in all.

use super::metrics::Record;
use super::{error_response, unauthorized};
use crate::admission::{CapError, StreamGuard};
use crate::app::AppState;
use crate::forward::{
    ADMIN_HEADER, CallerToken, Charge, ForwardError, KEY_ID_HEADER, RawVerdict, Verified,
};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use secrecy::SecretString;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

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

/// Where the RFC 9728 metadata of this resource lives, named by the request's Host; the
/// URL is built only for a refusal that sends it.
#[derive(Debug)]
struct Metadata(Option<HeaderValue>);

impl Metadata {
    fn of(headers: &HeaderMap) -> Self {
        Self(headers.get(header::HOST).cloned())
    }

    fn url(&self, st: &AppState) -> String {
        let host = self.0.as_ref().and_then(|v| v.to_str().ok());
        format!(
            "{}/.well-known/oauth-protected-resource",
            crate::app::public_base(st, host)
        )
    }
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
fn refuse(st: &AppState, peer: Option<IpAddr>, metadata: &Metadata) -> Response {
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
        _ => unauthorized(&metadata.url(st)),
    }
}

fn request_timeout(st: &AppState) -> Response {
    error_response(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        &format!(
            "the request body did not arrive within {} s",
            st.cfg.limits.body_read_timeout.as_secs_f64()
        ),
    )
}

enum BodyError {
    TooLarge,
    Late,
    Broken,
}

/// The whole body, within `deadline` of now plus a second per
/// [`nexus_serve::BODY_GRACE_BYTES`] received (the connection-level rule): an honest large
/// upload is not cut, a trickle gains nothing.
async fn read_body(body: Body, max: usize, deadline: Duration) -> Result<Bytes, BodyError> {
    let started = Instant::now();
    let mut frames = body.into_data_stream();
    let mut buf = Vec::new();
    loop {
        let grace = Duration::from_secs(buf.len() as u64 / nexus_serve::BODY_GRACE_BYTES);
        match tokio::time::timeout_at(started + deadline + grace, frames.next()).await {
            Err(_) => return Err(BodyError::Late),
            Ok(None) => return Ok(Bytes::from(buf)),
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(chunk))) => {
                if buf.len() + chunk.len() > max {
                    return Err(BodyError::TooLarge);
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
}

fn with_retry_after(mut r: Response, secs: u64) -> Response {
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

fn too_many_unverified() -> Response {
    with_retry_after(
        error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_unverified",
            "too many requests from this address are waiting for token verification; retry shortly",
        ),
        1,
    )
}

/// Refusal of a session or stream past its cap: 429 for this key, 503 for everyone.
fn over_cap(what: &str, e: CapError, retry: Duration) -> Response {
    let retry = retry.as_secs().max(1);
    match e {
        CapError::PerKey(n) => with_retry_after(
            error_response(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("too_many_{what}s"),
                &format!(
                    "this token has {n} open {what}s, the most allowed; close one (DELETE /mcp) or wait for an idle one to close"
                ),
            ),
            retry,
        ),
        CapError::Total(n) => with_retry_after(
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{what}s_full"),
                &format!("the hub holds {n} open {what}s, the most allowed; retry later"),
            ),
            retry,
        ),
    }
}

/// A JSON-RPC parse error (-32700) for a body that is not JSON.
fn parse_error() -> Response {
    let body = nexus_wire::jsonrpc::Response::err(
        serde_json::Value::Null,
        nexus_wire::RpcError::parse("parse error: the request body is not valid JSON"),
    );
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
}

/// The answer to a failed verification of `token`.
fn refusal(
    st: &AppState,
    e: ForwardError,
    token: &CallerToken,
    peer: Option<IpAddr>,
    metadata: &Metadata,
    record: &Record,
) -> Response {
    match e {
        ForwardError::Unauthorized => {
            st.known.forget(token);
            refuse(st, peer, metadata)
        }
        ForwardError::RateLimited {
            retry_after,
            verified,
        } => rate_limited(retry_after, &verified, record),
        // Not verified, not refused: the caller must hear "retry", and nothing else.
        ForwardError::AuthUnavailable | ForwardError::Unavailable(_) | ForwardError::Rpc(_) => {
            unavailable()
        }
    }
}

/// A credential the frontend cannot parse is judged by the rpc-server all the same, so
/// it costs what an unknown token costs and meets the same refusal (SPEC §2: no timing
/// tell). Only header values short enough to be a token's are sent on.
async fn refuse_unparsed(
    st: &AppState,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    metadata: &Metadata,
) -> Response {
    let credentials: Vec<(HeaderName, HeaderValue)> = [header::AUTHORIZATION, API_KEY_NAME]
        .into_iter()
        .flat_map(|name| {
            headers
                .get_all(&name)
                .iter()
                .map(move |v| (name.clone(), v.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let sendable = credentials
        .iter()
        .all(|(_, v)| v.len() <= RAW_CREDENTIAL_MAX);
    if sendable {
        match st.rpc.judge_raw(&credentials, peer).await {
            RawVerdict::Refused => {}
            RawVerdict::TooManyFailures => {
                return with_retry_after(
                    error_response(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too_many_failures",
                        "too many failed authentications from this address; retry later",
                    ),
                    60,
                );
            }
            RawVerdict::Unavailable => return unavailable(),
        }
    }
    refuse(st, peer, metadata)
}

/// Longest credential header value passed on for judgement: a token is at most
/// `MAX_TOKEN_LEN` bytes, with a scheme and some whitespace.
const RAW_CREDENTIAL_MAX: usize = nexus_wire::bearer::MAX_TOKEN_LEN + 64;
const API_KEY_NAME: HeaderName = HeaderName::from_static(API_KEY_HEADER);

pub async fn bearer(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let resp = authorize(st, req, next).await;
    enveloped(resp).await
}

async fn authorize(st: AppState, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    // Identity travels in extensions set here, never in headers a client could forge;
    // strip look-alikes anyway so nothing downstream can be confused by them.
    parts.headers.remove(KEY_ID_HEADER);
    parts.headers.remove(ADMIN_HEADER);
    let metadata = Metadata::of(&parts.headers);
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
        Err(nexus_wire::bearer::BearerError::Missing) => return refuse(&st, peer, &metadata),
        Err(nexus_wire::bearer::BearerError::Malformed) => {
            return refuse_unparsed(&st, &parts.headers, peer, &metadata).await;
        }
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
    // A token nobody has vouched for lately is verified before a byte of the body is
    // read, while the caller's address holds one of a few places: junk tokens cannot make
    // this process wait on bodies.
    // A request without a body (GET, DELETE) is never a tool call: this verification is
    // its counted hop, not a step before one.
    let charge = if parts.method == Method::POST {
        Charge::Free
    } else {
        Charge::Counted
    };
    let mut counted = None;
    let mut key_id = token.as_ref().and_then(|t| st.known.key_id(t));
    if let Some(t) = &token
        && key_id.is_none()
    {
        let _place = match peer {
            Some(ip) => match st.unverified.try_acquire(ip) {
                Some(g) => Some(g),
                None => return too_many_unverified(),
            },
            None => None,
        };
        match st.rpc.whoami(t, charge).await {
            Ok(v) => {
                st.known.remember(t, &v.key_id);
                key_id = Some(Arc::from(v.key_id.as_str()));
                if charge == Charge::Counted {
                    counted = Some(v);
                }
            }
            Err(e) => return refusal(&st, e, t, peer, &metadata, &record),
        }
    }
    let bytes = if parts.method == Method::POST {
        match read_body(body, st.cfg.max_body_bytes, st.cfg.limits.body_read_timeout).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => return payload_too_large(),
            Err(BodyError::Late) => return request_timeout(&st),
            Err(BodyError::Broken) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the request body could not be read",
                );
            }
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
    // A method peeked from a single request means `peek` parsed the whole body as JSON
    // already: only a body it could not read (or a batch) is parsed again to tell.
    let is_json = parts.method == Method::POST
        && is_json_content_type(&parts.headers)
        && ((!method.is_empty() && bytes.first() != Some(&b'['))
            || serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok());
    if parts.method == Method::POST && method == "tools/call" && is_json {
        // The tool call itself verifies (and counts) the token; a session's owner is
        // known from an earlier verification of the same token (a token's key id never
        // changes), and the rpc-server still judges the token on the call.
        if let Some(sid) = &session {
            let owner = key_id.as_deref().unwrap_or_default();
            if !st.sessions.is_owner(sid, owner) {
                return session_not_found();
            }
        }
        parts.extensions.insert(token.clone());
        let req = Request::from_parts(parts, Body::from(bytes));
        return one_hop(st, req, token, &metadata, &record, peer, next).await;
    }
    // Everything else is answered without another hop: its verification counts.
    let verified = match counted {
        Some(v) => v,
        None => match st.rpc.whoami(&token, Charge::Counted).await {
            Ok(v) => v,
            Err(e) => return refusal(&st, e, &token, peer, &metadata, &record),
        },
    };
    st.metrics.saw_client(&verified.key_id);
    record.verified(&verified);
    if parts.method == Method::POST && !is_json && is_json_content_type(&parts.headers) {
        return parse_error();
    }
    if let Some(sid) = &session
        && !st.sessions.is_owner(sid, &verified.key_id)
    {
        return session_not_found();
    }
    let limits = st.cfg.limits;
    let reservation = if parts.method == Method::POST && method == "initialize" && session.is_none()
    {
        match st.sessions.reserve(&verified.key_id).await {
            Ok(r) => Some(r),
            Err(e) => return over_cap("session", e, limits.session_idle_timeout),
        }
    } else {
        None
    };
    let stream = if parts.method == Method::GET {
        match st.streams.try_open(&verified.key_id) {
            Ok(g) => Some(g),
            Err(e) => return over_cap("stream", e, limits.stream_idle_timeout),
        }
    } else {
        None
    };
    let is_delete = parts.method == Method::DELETE;
    let rate = verified.rate.clone();
    parts.extensions.insert(token);
    parts.extensions.insert(verified);
    let mut resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if let Some(r) = reservation
        && resp.status().is_success()
        && let Some(sid) = resp
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
    {
        st.sessions.bind(r, sid);
    }
    if is_delete
        && resp.status().is_success()
        && let Some(sid) = &session
    {
        st.sessions.unbind(sid);
    }
    if let Some(rate) = &rate {
        rate.apply(resp.headers_mut());
    }
    match stream {
        Some(guard) if is_event_stream(resp.headers()) => {
            idle_out(resp, limits.stream_idle_timeout, guard)
        }
        _ => resp,
    }
}

fn session_not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "session_not_found",
        "no such session for this token; initialize a new one",
    )
}

fn is_event_stream(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// True when an SSE chunk carries only comments (keep-alive pings), no event.
fn only_comments(chunk: &[u8]) -> bool {
    chunk
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .all(|l| l.is_empty() || l.starts_with(b":"))
}

/// Ends an SSE stream once it has carried no event for `idle`; `guard` holds the stream's
/// place until the body is dropped.
fn idle_out(resp: Response, idle: Duration, guard: StreamGuard) -> Response {
    let (parts, body) = resp.into_parts();
    let start = (body.into_data_stream(), Instant::now() + idle, guard);
    let stream =
        futures_util::stream::unfold(start, move |(mut s, mut deadline, guard)| async move {
            match tokio::time::timeout_at(deadline, s.next()).await {
                Ok(Some(Ok(chunk))) => {
                    if !only_comments(&chunk) {
                        deadline = Instant::now() + idle;
                    }
                    Some((Ok::<_, axum::Error>(chunk), (s, deadline, guard)))
                }
                Ok(Some(Err(e))) => Some((Err(e), (s, deadline, guard))),
                // Ended, or idle for too long: the stream (and its place) goes.
                Ok(None) | Err(_) => None,
            }
        });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// rmcp answers some refusals in text/plain; the frontend's answers are JSON (the
/// [`error_response`] envelope) whatever refused.
async fn enveloped(resp: Response) -> Response {
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if status.is_success()
        || status.is_redirection()
        || content_type.starts_with("application/json")
        || content_type.starts_with("text/event-stream")
    {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        s if s.is_server_error() => "internal",
        _ => "error",
    };
    let message = if status.is_server_error() {
        // rmcp's texts for its own failures name internals; the log has them.
        "internal error; retry shortly".to_owned()
    } else {
        let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let text = nexus_wire::jsonrpc::printable(text.trim());
        if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            text
        }
    };
    let mut r = error_response(status, code, &message);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            r.headers_mut().append(name.clone(), value.clone());
        }
    }
    r
}

/// Waits for an SSE response to end (a session's tool call answers on a stream that
/// closes after the result), so the verdict the handler reported can be read.
async fn settled(resp: Response) -> Result<Response, Response> {
    if !is_event_stream(resp.headers()) {
        return Ok(resp);
    }
    let (parts, body) = resp.into_parts();
    match axum::body::to_bytes(body, SETTLE_MAX).await {
        Ok(b) => Ok(Response::from_parts(parts, Body::from(b))),
        Err(_) => Err(error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the tool result could not be delivered; retry",
        )),
    }
}

/// Largest session tool result held while its verdict is read (a 16 MiB file, as JSON).
const SETTLE_MAX: usize = 128 * 1024 * 1024;

async fn one_hop(
    st: AppState,
    mut req: Request,
    token: CallerToken,
    metadata: &Metadata,
    record: &Record,
    peer: Option<IpAddr>,
    next: Next,
) -> Response {
    let slot = AuthSlot::default();
    req.extensions_mut().insert(slot.clone());
    let resp = match settled(next.run(req).await).await {
        Ok(r) => r,
        Err(r) => return r,
    };
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
        SlotState::Unauthorized => {
            st.known.forget(&token);
            refuse(&st, peer, metadata)
        }
        SlotState::Unavailable => unavailable(),
        SlotState::RateLimited(r, who) => rate_limited(r, &who, record),
        // The handler did not reach the rpc-server: decide on the token (this counts as
        // the request's hop) before answering.
        SlotState::Unchecked => match st.rpc.whoami(&token, Charge::Counted).await {
            Ok(v) => {
                st.metrics.saw_client(&v.key_id);
                record.verified(&v);
                let mut resp = resp;
                if let Some(rate) = &v.rate {
                    rate.apply(resp.headers_mut());
                }
                resp
            }
            Err(e) => refusal(&st, e, &token, peer, metadata, record),
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
