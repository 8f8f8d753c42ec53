//! The identity cache: digest → verified identity, with a separate short negative cache.
//!
//! Freshness is judged against tokio's clock (so tests can pause time), while moka bounds
//! memory. A flood of junk tokens lands only in the negative cache, whose bound cannot
//! evict valid identities. An epoch counter closes the race where a lookup that started
//! before a revoke would re-insert the stale identity after the revoke invalidated it.

use super::invalidation::{Invalidation, Subscriber};
use super::{Identity, Refusal, TokenDigest};
use moka::sync::Cache;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

const POSITIVE_CAPACITY: u64 = 100_000;
const NEGATIVE_CAPACITY: u64 = 20_000;

#[derive(Clone)]
struct Positive {
    identity: Arc<Identity>,
    at: Instant,
}

#[derive(Clone, Copy)]
struct Negative {
    refusal: Refusal,
    at: Instant,
}

/// What the cache knows about a digest.
#[derive(Debug, Clone)]
pub enum Cached {
    Valid(Arc<Identity>),
    Refused(Refusal),
}

/// Marks the state of the cache when a lookup began; see [`IdentityCache::insert_valid`].
#[derive(Debug, Clone, Copy)]
pub struct Epoch(u64);

pub struct IdentityCache {
    positive: Cache<TokenDigest, Positive>,
    negative: Cache<TokenDigest, Negative>,
    ttl: Duration,
    negative_ttl: Duration,
    epoch: AtomicU64,
}

impl std::fmt::Debug for IdentityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityCache")
            .field("ttl", &self.ttl)
            .field("entries", &self.positive.entry_count())
            .finish()
    }
}

impl IdentityCache {
    /// `ttl` zero disables caching of valid identities (every request is verified).
    pub fn new(ttl: Duration, negative_ttl: Duration) -> Self {
        let backstop = |d: Duration| d.max(Duration::from_secs(1));
        Self {
            positive: Cache::builder()
                .max_capacity(POSITIVE_CAPACITY)
                .time_to_live(backstop(ttl))
                .support_invalidation_closures()
                .build(),
            negative: Cache::builder()
                .max_capacity(NEGATIVE_CAPACITY)
                .time_to_live(backstop(negative_ttl))
                .build(),
            ttl,
            negative_ttl,
            epoch: AtomicU64::new(0),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn get(&self, digest: &TokenDigest) -> Option<Cached> {
        if let Some(p) = self.positive.get(digest) {
            if p.at.elapsed() < self.ttl {
                return Some(Cached::Valid(p.identity));
            }
            self.positive.invalidate(digest);
        }
        if let Some(n) = self.negative.get(digest) {
            if n.at.elapsed() < self.negative_ttl {
                return Some(Cached::Refused(n.refusal));
            }
            self.negative.invalidate(digest);
        }
        None
    }

    /// Call before the database lookup whose result will be inserted.
    pub fn epoch(&self) -> Epoch {
        Epoch(self.epoch.load(Ordering::Acquire))
    }

    /// Caches a verified identity unless an invalidation happened since `since`.
    pub fn insert_valid(&self, digest: TokenDigest, identity: Arc<Identity>, since: Epoch) {
        if self.ttl.is_zero() {
            return;
        }
        self.positive.insert(
            digest,
            Positive {
                identity,
                at: Instant::now(),
            },
        );
        // Re-check after inserting: an invalidation that raced with the insert removes it.
        if self.epoch.load(Ordering::Acquire) != since.0 {
            self.positive.invalidate(&digest);
        }
    }

    pub fn insert_refused(&self, digest: TokenDigest, refusal: Refusal) {
        if !self.negative_ttl.is_zero() {
            self.negative.insert(
                digest,
                Negative {
                    refusal,
                    at: Instant::now(),
                },
            );
        }
    }

    pub fn len(&self) -> u64 {
        self.positive.run_pending_tasks();
        self.positive.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Subscriber for IdentityCache {
    fn invalidate(&self, what: &Invalidation) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let res = match what {
            Invalidation::Token { key_id } => {
                let key_id = *key_id;
                self.positive
                    .invalidate_entries_if(move |_, p| p.identity.key_id == key_id)
                    .map(drop)
            }
            Invalidation::Zone { zone_id } => {
                let zone_id = zone_id.clone();
                // Zoneless admins see every zone, so any zone change concerns them too.
                self.positive
                    .invalidate_entries_if(move |_, p| {
                        p.identity.zones.is_empty() || p.identity.holds_zone(&zone_id)
                    })
                    .map(drop)
            }
            Invalidation::All => {
                self.positive.invalidate_all();
                Ok(())
            }
        };
        if res.is_err() {
            self.positive.invalidate_all();
        }
        // A refusal may have become stale too (e.g. a zone was restored).
        self.negative.invalidate_all();
    }
}
