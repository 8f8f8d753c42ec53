//! Legacy (2025-era) MCP sessions are bound to the key id of the token that opened them:
//! any other token, valid or not, gets no access. Bindings idle out after a day, after
//! which the session is refused (fail closed) and the client opens a new one.

use moka::sync::Cache;
use std::time::Duration;

#[derive(Clone)]
pub struct SessionBindings {
    owners: Cache<String, String>,
}

impl std::fmt::Debug for SessionBindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionBindings")
            .field("sessions", &self.owners.entry_count())
            .finish()
    }
}

impl Default for SessionBindings {
    fn default() -> Self {
        Self {
            owners: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(24 * 3600))
                .build(),
        }
    }
}

impl SessionBindings {
    pub fn bind(&self, session: &str, key_id: &str) {
        self.owners.insert(session.to_owned(), key_id.to_owned());
    }

    /// True only when `session` was opened by `key_id`.
    pub fn is_owner(&self, session: &str, key_id: &str) -> bool {
        self.owners.get(session).is_some_and(|k| k == key_id)
    }

    pub fn unbind(&self, session: &str) {
        self.owners.invalidate(session);
    }
}
