//! The limits layer: what a verified caller may hold open.
//!
//! - Legacy (2025-era) MCP sessions are bound to the key id of the token that opened
//!   them, sealed into the session id (`crate::sessions`): an id that does not open, or
//!   names another key id, is 404 like an unknown one. Sessions this replica holds (opened
//!   here, or rebuilt here from their id) are capped per key id and in all; rmcp closes a
//!   session idle for the configured time and its binding goes with it (its next request
//!   rebuilds it, under the caps again); a session whose id has expired is closed.
//! - SSE streams (GET) are capped per key id and in all, and end once idle.

use crate::error::{CapError, GatewayError};
use crate::forward::Verified;
use crate::request::{Caller, McpBody};
use crate::sessions::now_ms;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Extensions;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use rmcp::transport::streamable_http_server::session::SessionId;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const SESSION_HEADER: &str = nexus_wire::headers::SESSION;

/// The caller's key id: verified on this request, or (on a tool call, which verifies on
/// the call itself) verified lately under the same token. `None` without a token.
pub(crate) fn caller_key_id(ext: &Extensions) -> Option<Arc<str>> {
    match ext.get::<Verified>() {
        Some(v) => Some(Arc::from(v.key_id.as_str())),
        None => ext.get::<Caller>().and_then(|c| c.key_id.clone()),
    }
}

pub(crate) async fn limits(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let key_id = caller_key_id(req.extensions());
    let session = match req.headers().get(SESSION_HEADER).map(|v| v.to_str()) {
        Some(Ok(sid)) => Some(sid.to_owned()),
        Some(Err(_)) => return GatewayError::SessionNotFound.into_response(),
        None => None,
    };
    // A session id must open (our secret, intact, unexpired, not DELETEd here) and name
    // this caller's key id (or none, for a caller without a token); anything else is no
    // session at all, answered as an unknown id.
    let expires_ms = match &session {
        Some(sid) => match st.sealer.open(sid) {
            Some(o) if o.key_id.as_deref() == key_id.as_deref() => Some(o.expires_ms),
            _ => return GatewayError::SessionNotFound.into_response(),
        },
        None => None,
    };
    // Without a token (when none is required) there is nothing to own or cap: the
    // rpc-server refuses every forwarded call.
    let Some(key_id) = key_id else {
        return next.run(req).await;
    };
    let limits = st.cfg.limits;
    let is_delete = req.method() == Method::DELETE;
    let initialize = req.method() == Method::POST
        && session.is_none()
        && req
            .extensions()
            .get::<Arc<McpBody>>()
            .is_some_and(|b| b.method() == Some("initialize"));
    // A new session, or one this replica does not hold (rmcp rebuilds it from its id),
    // takes a place under the caps of this replica.
    let restore = !is_delete && session.as_deref().is_some_and(|s| !st.sessions.holds(s));
    let reservation = if initialize || restore {
        match st.sessions.reserve(&key_id).await {
            Ok(r) => Some(r),
            Err(cap) => return over_cap("session", cap, limits.session_idle_timeout),
        }
    } else {
        None
    };
    let stream = if req.method() == Method::GET {
        match st.streams.try_open(&key_id) {
            Ok(g) => Some(g),
            Err(cap) => return over_cap("stream", cap, limits.stream_idle_timeout),
        }
    } else {
        None
    };
    let resp = next.run(req).await;
    if let Some(r) = reservation
        && resp.status().is_success()
    {
        let opened = match &session {
            Some(sid) => expires_ms.map(|e| (sid.clone(), e)),
            None => resp
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|sid| Some((sid.to_owned(), st.sealer.open(sid)?.expires_ms))),
        };
        if let Some((sid, expires_ms)) = opened {
            st.sessions.bind(r, &sid, expires_ms);
        }
    }
    if is_delete
        && resp.status().is_success()
        && let Some(sid) = &session
    {
        st.sessions.unbind(sid);
    }
    match stream {
        Some(guard) if is_event_stream(resp.headers()) => {
            idle_out(resp, limits.stream_idle_timeout, guard)
        }
        _ => resp,
    }
}

/// Refusal of a session or stream past its cap: 429 for this key, 503 for everyone.
fn over_cap(what: &'static str, cap: CapError, retry: Duration) -> Response {
    GatewayError::OverCap { what, cap, retry }.into_response()
}

pub(crate) fn is_event_stream(h: &HeaderMap) -> bool {
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

#[derive(Debug, Default)]
struct Bindings {
    /// Session id → key id of the token that opened it, and the id's expiry (Unix ms).
    owners: HashMap<String, (String, u64)>,
    /// `initialize` requests in flight per key id: counted against the caps until they
    /// bind a session or fail.
    pending: HashMap<String, usize>,
}

#[derive(Clone)]
pub(crate) struct SessionBindings {
    state: Arc<Mutex<Bindings>>,
    manager: Arc<LocalSessionManager>,
    per_key: usize,
    total: usize,
}

impl std::fmt::Debug for SessionBindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionBindings")
            .field("sessions", &self.lock().owners.len())
            .finish()
    }
}

/// A place for one session being opened; released when dropped unless bound.
#[derive(Debug)]
pub(crate) struct Reservation {
    key_id: String,
    state: Arc<Mutex<Bindings>>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = s.pending.get_mut(&self.key_id) {
            *n -= 1;
            if *n == 0 {
                s.pending.remove(&self.key_id);
            }
        }
    }
}

impl SessionBindings {
    /// Bindings for the sessions of `manager`, at most `per_key` per key id and `total`.
    pub fn new(manager: Arc<LocalSessionManager>, per_key: usize, total: usize) -> Self {
        Self {
            state: Default::default(),
            manager,
            per_key,
            total,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bindings> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a new (or rebuilt) session of `key_id`, unless it or everyone is at the
    /// cap. Bindings of sessions rmcp has closed (idle, ended) are dropped first; sessions
    /// whose ids have expired are closed.
    pub async fn reserve(&self, key_id: &str) -> Result<Reservation, CapError> {
        let expired = self.sweep().await;
        for sid in expired {
            let _ = self.manager.close_session(&SessionId::from(sid)).await;
        }
        let mut s = self.lock();
        let mine = s.owners.values().filter(|(k, _)| k == key_id).count()
            + s.pending.get(key_id).copied().unwrap_or(0);
        if mine >= self.per_key {
            return Err(CapError::PerKey(self.per_key));
        }
        let all = s.owners.len() + s.pending.values().sum::<usize>();
        if all >= self.total {
            return Err(CapError::Total(self.total));
        }
        *s.pending.entry(key_id.to_owned()).or_insert(0) += 1;
        Ok(Reservation {
            key_id: key_id.to_owned(),
            state: self.state.clone(),
        })
    }

    /// Drops the bindings of sessions rmcp no longer holds, and those of expired ids;
    /// returns the expired ones rmcp still holds, to be closed.
    async fn sweep(&self) -> Vec<String> {
        let live = self.manager.sessions.read().await;
        let now = now_ms();
        let mut expired = Vec::new();
        let mut s = self.lock();
        s.owners.retain(|sid, (_, exp)| {
            let held = live.contains_key(sid.as_str());
            if held && *exp <= now {
                expired.push(sid.clone());
            }
            held && *exp > now
        });
        expired
    }

    /// Binds the session opened (or rebuilt) under `r` to its key id until `expires_ms`.
    pub fn bind(&self, r: Reservation, session: &str, expires_ms: u64) {
        self.lock()
            .owners
            .insert(session.to_owned(), (r.key_id.clone(), expires_ms));
        drop(r);
    }

    /// True when this replica has a session bound under `session`.
    pub fn holds(&self, session: &str) -> bool {
        self.lock().owners.contains_key(session)
    }

    pub fn unbind(&self, session: &str) {
        self.lock().owners.remove(session);
    }
}

#[derive(Debug, Default)]
struct StreamCounts {
    total: usize,
    per_key: HashMap<Arc<str>, usize>,
}

/// Open SSE streams per key id and in all.
#[derive(Debug)]
pub(crate) struct Streams {
    per_key: usize,
    total: usize,
    open: Arc<Mutex<StreamCounts>>,
}

/// One open stream; released when dropped (when the response body is).
#[derive(Debug)]
pub(crate) struct StreamGuard {
    key: Arc<str>,
    open: Arc<Mutex<StreamCounts>>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut c = self.open.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.per_key.remove(&self.key);
            }
        }
    }
}

impl Streams {
    pub fn new(per_key: usize, total: usize) -> Self {
        Self {
            per_key,
            total,
            open: Default::default(),
        }
    }

    pub fn try_open(&self, key_id: &str) -> Result<StreamGuard, CapError> {
        let mut c = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let key: Arc<str> = Arc::from(key_id);
        if c.per_key.get(&key).copied().unwrap_or(0) >= self.per_key {
            return Err(CapError::PerKey(self.per_key));
        }
        if c.total >= self.total {
            return Err(CapError::Total(self.total));
        }
        c.total += 1;
        *c.per_key.entry(key.clone()).or_insert(0) += 1;
        Ok(StreamGuard {
            key,
            open: self.open.clone(),
        })
    }

    /// Streams open now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_per_key_and_total() {
        let s = Streams::new(2, 3);
        let a1 = s.try_open("a").expect("a1");
        let _a2 = s.try_open("a").expect("a2");
        assert_eq!(s.try_open("a").err(), Some(CapError::PerKey(2)));
        let _b1 = s.try_open("b").expect("b1");
        assert_eq!(s.try_open("c").err(), Some(CapError::Total(3)));
        drop(a1);
        assert_eq!(s.open(), 2);
        assert!(s.try_open("c").is_ok());
    }
}
