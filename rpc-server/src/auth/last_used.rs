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

    /// Writes pending times. On failure they are kept for the next flush.
    pub async fn flush(&self, store: &Store) -> Result<usize, crate::db::StoreError> {
        let batch: Vec<(Uuid, DateTime<Utc>)> = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.drain().collect()
        };
        if let Err(e) = store.touch_last_used(&batch).await {
            for (k, t) in batch {
                self.record(k, t);
            }
            return Err(e);
        }
        Ok(batch.len())
    }
}
