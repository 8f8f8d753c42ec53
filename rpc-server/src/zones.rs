//! Where zone lists come from when an identity does not carry its own: the zoneless
//! admin's "every active zone". Cached like identities and dropped on zone changes.

use crate::auth::invalidation::{Invalidation, Subscriber};
use crate::db::Store;
use moka::sync::Cache;
use nexus_wire::RpcError;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub enum ZoneSource {
    /// Single-key mode: a fixed list.
    Fixed(Arc<Vec<String>>),
    Store {
        store: Store,
        cache: Cache<(), Arc<Vec<String>>>,
        /// Bumped on every zone change; a list read before a change is not cached after it.
        generation: Arc<std::sync::atomic::AtomicU64>,
    },
}

impl std::fmt::Debug for ZoneSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(z) => f.debug_tuple("Fixed").field(z).finish(),
            Self::Store { .. } => f.write_str("Store"),
        }
    }
}

impl ZoneSource {
    pub fn store(store: Store, ttl: Duration) -> Self {
        Self::Store {
            store,
            cache: Cache::builder()
                .max_capacity(1)
                .time_to_live(ttl.max(Duration::from_millis(1)))
                .build(),
            generation: Default::default(),
        }
    }

    pub async fn active(&self) -> Result<Arc<Vec<String>>, RpcError> {
        match self {
            Self::Fixed(z) => Ok(z.clone()),
            Self::Store {
                store,
                cache,
                generation,
            } => {
                use std::sync::atomic::Ordering;
                if let Some(z) = cache.get(&()) {
                    return Ok(z);
                }
                let before = generation.load(Ordering::Acquire);
                let zones =
                    Arc::new(store.active_zones().await.map_err(|_| {
                        RpcError::unavailable("database unavailable; retry shortly")
                    })?);
                cache.insert((), zones.clone());
                // A zone change during the read: the list may be stale, do not keep it.
                if generation.load(Ordering::Acquire) != before {
                    cache.invalidate(&());
                }
                Ok(zones)
            }
        }
    }
}

impl Subscriber for ZoneSource {
    fn invalidate(&self, what: &Invalidation) {
        if let Self::Store {
            cache, generation, ..
        } = self
            && matches!(what, Invalidation::Zone { .. } | Invalidation::All)
        {
            generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            cache.invalidate(&());
        }
    }
}
