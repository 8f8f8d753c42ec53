//! The invalidation bus: how a change to a token or zone reaches every identity cache.
//!
//! A change made in this process is applied to the local subscribers at once, then handed
//! to the optional [`Broadcaster`] (Redis pub/sub) so other processes apply it too. The
//! database announces every change as well ([`super::db_notify`]), so other processes learn
//! of it without Redis. Receivers call [`InvalidationBus::apply_local`]; the cache TTL is
//! only the backstop for when neither path works.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};
use uuid::Uuid;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Invalidation {
    /// A token was revoked or its grants changed.
    Token { key_id: Uuid },
    /// A zone was deleted or restored: every identity holding it, and zone lists, are stale.
    Zone { zone_id: String },
    /// A relationship tuple changed: every compiled grant set is stale.
    Rebac,
    /// A subject was created, changed, disabled or deleted: identities bound to it are stale.
    Subject { subject_id: String },
    /// Anything may have changed (e.g. missed broadcasts): drop everything.
    All,
}

/// Something that holds derived state and must drop it on invalidation.
pub trait Subscriber: Send + Sync {
    fn invalidate(&self, what: &Invalidation);
}

/// Sends invalidations to other processes. Must not block or fail the caller.
pub trait Broadcaster: Send + Sync {
    fn broadcast(&self, what: &Invalidation);
}

#[derive(Default)]
pub struct InvalidationBus {
    subscribers: RwLock<Vec<Arc<dyn Subscriber>>>,
    broadcaster: RwLock<Option<Arc<dyn Broadcaster>>>,
}

impl std::fmt::Debug for InvalidationBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvalidationBus").finish_non_exhaustive()
    }
}

impl InvalidationBus {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn subscribe(&self, s: Arc<dyn Subscriber>) {
        self.subscribers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(s);
    }

    pub fn set_broadcaster(&self, b: Arc<dyn Broadcaster>) {
        *self.broadcaster.write().unwrap_or_else(|e| e.into_inner()) = Some(b);
    }

    /// Applies a change made by this process here, then tells the other processes.
    pub fn publish(&self, what: Invalidation) {
        self.apply_local(&what);
        let b = self
            .broadcaster
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(b) = b {
            b.broadcast(&what);
        }
    }

    /// Applies a change to this process's subscribers only.
    pub fn apply_local(&self, what: &Invalidation) {
        let subs = self
            .subscribers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for s in subs {
            s.invalidate(what);
        }
    }
}

/// Remembers every invalidation applied, for a process that must report afterwards what it
/// changed (the CLI confirms each one reached the running servers).
#[derive(Debug, Default)]
pub struct Recorder(std::sync::Mutex<Vec<Invalidation>>);

impl Recorder {
    /// What was applied so far, without repeats, oldest first.
    pub fn take(&self) -> Vec<Invalidation> {
        let mut seen = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        let mut out: Vec<Invalidation> = Vec::with_capacity(seen.len());
        for w in seen.drain(..) {
            if !out.contains(&w) {
                out.push(w);
            }
        }
        out
    }
}

impl Subscriber for Recorder {
    fn invalidate(&self, what: &Invalidation) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(what.clone());
    }
}
