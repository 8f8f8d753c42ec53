//! The identity cache: digest → verified identity, with a separate short negative cache.
//!
//! Freshness is judged against tokio's clock (so tests can pause time), while moka bounds
//! memory. A flood of junk tokens lands only in the negative cache, whose bound cannot
//! evict valid identities.
//!
//! Invalidation must be exact, not eventual: moka's predicate invalidation is lazy, so each
//! invalidation also leaves a tombstone (key id, zone, or everything, with its time), and an
//! entry whose database lookup *started* at or before a matching tombstone is never served.
//! Timing entries by the start of their lookup also closes the race where a lookup that
//! began before a revoke would store the stale identity after it.

use super::invalidation::{Invalidation, Subscriber};
use super::{Identity, Refusal, TokenDigest};
use moka::sync::Cache;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
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

/// When a lookup began; see [`IdentityCache::insert_valid`].
#[derive(Debug, Clone, Copy)]
pub struct Epoch(Instant);

#[derive(Debug)]
enum Tomb {
    All,
    Key(uuid::Uuid),
    Zone(String),
    /// Any zone changed: concerns zoneless admins, who see every zone.
    AnyZone,
    /// A subject changed: concerns the tokens whose user id names it (bound or not yet).
    Subject(String),
}

pub struct IdentityCache {
    positive: Cache<TokenDigest, Positive>,
    negative: Cache<TokenDigest, Negative>,
    ttl: Duration,
    negative_ttl: Duration,
    tombstones: RwLock<Tombstones>,
}

/// When each [`Tomb`] was last laid, kept by kind so that a lookup borrows the identity's
/// zone names and user id instead of building a key from them.
#[derive(Debug, Default)]
struct Tombstones {
    all: Option<Instant>,
    any_zone: Option<Instant>,
    keys: HashMap<uuid::Uuid, Instant>,
    zones: HashMap<String, Instant>,
    subjects: HashMap<String, Instant>,
}

impl Tombstones {
    fn is_empty(&self) -> bool {
        self.all.is_none()
            && self.any_zone.is_none()
            && self.keys.is_empty()
            && self.zones.is_empty()
            && self.subjects.is_empty()
    }

    fn lay(&mut self, t: Tomb, now: Instant) {
        match t {
            Tomb::All => self.all = Some(now),
            Tomb::AnyZone => self.any_zone = Some(now),
            Tomb::Key(k) => drop(self.keys.insert(k, now)),
            Tomb::Zone(z) => drop(self.zones.insert(z, now)),
            Tomb::Subject(s) => drop(self.subjects.insert(s, now)),
        }
    }

    /// Keeps only the tombstones `keep` accepts.
    fn retain(&mut self, keep: impl Fn(&Instant) -> bool) {
        self.all = self.all.filter(&keep);
        self.any_zone = self.any_zone.filter(&keep);
        self.keys.retain(|_, at| keep(at));
        self.zones.retain(|_, at| keep(at));
        self.subjects.retain(|_, at| keep(at));
    }
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
            tombstones: RwLock::default(),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn get(&self, digest: &TokenDigest) -> Option<Cached> {
        if let Some(p) = self.positive.get(digest) {
            if p.at.elapsed() < self.ttl && !self.buried(&p) {
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

    /// The cache's answer for `digest`, counted in `nexus_auth_cache_requests_total` (hit,
    /// negative hit, miss): `Some` is final (a cached identity that has expired since is
    /// refused), `None` is a miss the provider must verify.
    pub fn answer(
        &self,
        digest: &TokenDigest,
        metrics: &crate::metrics::Metrics,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<Result<Arc<Identity>, super::AuthError>> {
        let (label, answer) = match self.get(digest) {
            Some(Cached::Valid(id)) if id.is_expired(now) => (
                "hit",
                Some(Err(super::AuthError::Refused(Refusal::Expired))),
            ),
            Some(Cached::Valid(id)) => ("hit", Some(Ok(id))),
            Some(Cached::Refused(r)) => ("negative_hit", Some(Err(super::AuthError::Refused(r)))),
            None => ("miss", None),
        };
        metrics.auth_cache.with_label_values(&[label]).inc();
        answer
    }

    /// True when an invalidation at or after the entry's lookup concerns it.
    fn buried(&self, p: &Positive) -> bool {
        let tombs = self.tombstones.read().unwrap_or_else(|e| e.into_inner());
        if tombs.is_empty() {
            return false;
        }
        let hit = |at: Option<&Instant>| at.is_some_and(|at| p.at <= *at);
        let id = &p.identity;
        hit(tombs.all.as_ref())
            || hit(tombs.keys.get(&id.key_id))
            || (id.zones.is_empty() && hit(tombs.any_zone.as_ref()))
            || id.zones.iter().any(|g| hit(tombs.zones.get(&g.zone_id)))
            || hit(tombs.subjects.get(&id.user_id))
    }

    fn bury(&self, t: Tomb) {
        let now = Instant::now();
        let mut tombs = self.tombstones.write().unwrap_or_else(|e| e.into_inner());
        // Entries older than the TTL are dead anyway; so are tombstones that old.
        let ttl = self.ttl;
        tombs.retain(|at| now.duration_since(*at) <= ttl);
        tombs.lay(t, now);
    }

    /// Call before the database lookup whose result will be inserted.
    pub fn epoch(&self) -> Epoch {
        Epoch(Instant::now())
    }

    /// Caches a verified identity as of when its lookup began (`since`), so that an
    /// invalidation made during the lookup still applies to it.
    pub fn insert_valid(&self, digest: TokenDigest, identity: Arc<Identity>, since: Epoch) {
        if self.ttl.is_zero() {
            return;
        }
        self.positive.insert(
            digest,
            Positive {
                identity,
                at: since.0,
            },
        );
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
        match what {
            Invalidation::Token { key_id } => self.bury(Tomb::Key(*key_id)),
            Invalidation::Zone { zone_id } => {
                self.bury(Tomb::Zone(zone_id.clone()));
                self.bury(Tomb::AnyZone);
            }
            Invalidation::Subject { subject_id } => self.bury(Tomb::Subject(subject_id.clone())),
            // Compiled grants carry the generation they were built at (see `grants`): a
            // tuple change makes them stale without dropping who the callers are.
            Invalidation::Rebac => return,
            Invalidation::All => self.bury(Tomb::All),
        }
        // Free the memory too (lazily; the tombstones make it exact).
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
            Invalidation::Subject { subject_id } => {
                let subject_id = subject_id.clone();
                self.positive
                    .invalidate_entries_if(move |_, p| p.identity.user_id == subject_id)
                    .map(drop)
            }
            Invalidation::Rebac | Invalidation::All => {
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
