//! `last_used_at` without a database write per request: uses are noted in memory and
//! written in one batch every flush interval (and at shutdown).

use crate::db::Store;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

#[derive(Debug, Default)]
pub struct LastUsed {
    pending: Mutex<HashMap<Uuid, DateTime<Utc>>>,
}

impl LastUsed {
    pub fn record(&self, key_id: Uuid, at: DateTime<Utc>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let slot = p.entry(key_id).or_insert(at);
        if *slot < at {
            *slot = at;
        }
    }

    /// Writes pending times. On failure, or if the flush is dropped mid-write (shutdown
    /// aborts the periodic flusher), they are kept for the next flush.
    pub async fn flush(&self, store: &Store) -> Result<usize, crate::db::StoreError> {
        let batch: Vec<(Uuid, DateTime<Utc>)> = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.drain().collect()
        };
        let mut unwritten = Unwritten {
            owner: self,
            batch: Some(batch),
        };
        let batch = unwritten.batch.as_deref().unwrap_or_default();
        store.touch_last_used(batch).await?;
        Ok(unwritten.batch.take().map_or(0, |b| b.len()))
    }
}

/// Puts a batch back into `pending` unless it was written. Rewriting one is harmless:
/// the update never moves a time backwards.
struct Unwritten<'a> {
    owner: &'a LastUsed,
    batch: Option<Vec<(Uuid, DateTime<Utc>)>>,
}

impl Drop for Unwritten<'_> {
    fn drop(&mut self) {
        for (k, t) in self.batch.take().unwrap_or_default() {
            self.owner.record(k, t);
        }
    }
}
