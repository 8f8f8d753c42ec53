//! Legacy (2025-era) MCP sessions are bound to the key id of the token that opened them:
//! any other token, valid or not, gets no access. Sessions are capped per key id and in
//! all; rmcp closes a session idle for the configured time, and its binding goes with it
//! (a closed session is refused, fail closed, and the client opens a new one).

use crate::admission::CapError;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct State {
    /// Session id → key id of the token that opened it.
    owners: HashMap<String, String>,
    /// `initialize` requests in flight per key id: counted against the caps until they
    /// bind a session or fail.
    pending: HashMap<String, usize>,
}

#[derive(Clone)]
pub struct SessionBindings {
    state: Arc<Mutex<State>>,
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
pub struct Reservation {
    key_id: String,
    state: Arc<Mutex<State>>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a new session of `key_id`, unless it or everyone is at the cap.
    /// Bindings of sessions rmcp has closed (idle, ended) are dropped first.
    pub async fn reserve(&self, key_id: &str) -> Result<Reservation, CapError> {
        let live = self.manager.sessions.read().await;
        let mut s = self.lock();
        s.owners.retain(|sid, _| live.contains_key(sid.as_str()));
        drop(live);
        let mine = s.owners.values().filter(|k| *k == key_id).count()
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

    /// Binds the session opened under `r` to its key id.
    pub fn bind(&self, r: Reservation, session: &str) {
        self.lock()
            .owners
            .insert(session.to_owned(), r.key_id.clone());
        drop(r);
    }

    /// True only when `session` was opened by `key_id`.
    pub fn is_owner(&self, session: &str, key_id: &str) -> bool {
        self.lock().owners.get(session).is_some_and(|k| k == key_id)
    }

    pub fn unbind(&self, session: &str) {
        self.lock().owners.remove(session);
    }
}
