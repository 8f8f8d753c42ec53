//! The active zones and their access modes (`open`, `rebac`): the zoneless admin's "every
//! active zone", and the mode every file decision consults. Cached like identities and
//! dropped on zone changes.

use crate::auth::invalidation::{Invalidation, Subscriber};
use crate::db::Store;
use crate::files::access::ZoneModes;
use moka::sync::Cache;
use nexus_authz::decide::ZoneMode;
use nexus_wire::RpcError;
use std::sync::Arc;
use std::time::Duration;

/// The active zones, sorted by name, and the modes of those not `open`.
#[derive(Debug, Default)]
pub struct ActiveZones {
    pub names: Vec<String>,
    pub modes: Arc<ZoneModes>,
}

#[derive(Clone)]
pub enum ZoneSource {
    /// Single-key mode: a fixed list.
    Fixed(Arc<ActiveZones>),
    Store {
        store: Store,
        cache: Cache<(), Arc<ActiveZones>>,
        /// Bumped on every zone change; a list read before a change is not cached after it.
        generation: Arc<std::sync::atomic::AtomicU64>,
    },
}

impl std::fmt::Debug for ZoneSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(z) => f.debug_tuple("Fixed").field(&z.names).finish(),
            Self::Store { .. } => f.write_str("Store"),
        }
    }
}

impl ZoneSource {
    /// A fixed list of `open` zones.
    pub fn fixed(names: Vec<String>) -> Self {
        Self::Fixed(Arc::new(ActiveZones {
            names,
            modes: Arc::default(),
        }))
    }

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

    pub async fn active(&self) -> Result<Arc<ActiveZones>, RpcError> {
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
                let rows = store
                    .active_zone_modes()
                    .await
                    .map_err(|_| RpcError::unavailable("database unavailable; retry shortly"))?;
                let mut modes = ZoneModes::new();
                let mut names = Vec::with_capacity(rows.len());
                for (zone, mode) in rows {
                    // An unreadable mode is the stricter one: fail closed.
                    let mode = mode.parse().unwrap_or(ZoneMode::Rebac);
                    if mode != ZoneMode::Open {
                        modes.insert(zone.clone(), mode);
                    }
                    names.push(zone);
                }
                let zones = Arc::new(ActiveZones {
                    names,
                    modes: Arc::new(modes),
                });
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
