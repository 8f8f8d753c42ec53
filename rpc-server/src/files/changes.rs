//! Where committed file changes are announced, for MCP resource subscriptions (SPEC §14):
//! on the cluster bus as `file_changed` (every frontend of the cluster hears it), and to
//! the listeners of this process (the embedded hub's frontend, which has no bus). Only
//! the zone and the path below its root travel, never content; a frontend decides who
//! hears of it. Announcing never waits and never fails a write.

use crate::auth::invalidation::{Invalidation as Local, Subscriber};
use nexus_bus::{Bus, Invalidation};
use std::sync::{Arc, OnceLock};
use tokio::sync::broadcast;

/// How many announcements an in-process listener may fall behind before it is told it
/// missed some (and suspends its subscriptions).
const LOCAL_BACKLOG: usize = 4096;

/// The announcer, shared by the file service and the application that joins the bus.
#[derive(Clone)]
pub struct FileChanges(Arc<Inner>);

struct Inner {
    bus: OnceLock<Bus>,
    local: broadcast::Sender<Invalidation>,
}

impl std::fmt::Debug for FileChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileChanges")
            .field("bus", &self.0.bus.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Default for FileChanges {
    fn default() -> Self {
        Self(Arc::new(Inner {
            bus: OnceLock::new(),
            local: broadcast::channel(LOCAL_BACKLOG).0,
        }))
    }
}

impl FileChanges {
    /// From now on, changes also go to the cluster bus.
    pub(crate) fn join(&self, bus: Bus) {
        let _ = self.0.bus.set(bus);
    }

    /// Every change made through this process from now on (and, in-process, every
    /// invalidation the embedding program adds with [`FileChanges::send`]).
    pub fn subscribe(&self) -> broadcast::Receiver<Invalidation> {
        self.0.local.subscribe()
    }

    /// Hands an invalidation to this process's listeners (the embedded hub forwards its
    /// revocations this way, so subscriptions of a revoked token end there too).
    pub fn send(&self, what: Invalidation) {
        // No listener is the common case: nothing to do.
        let _ = self.0.local.send(what);
    }

    /// `path` (below the zone root) of `zone` changed: written, edited, deleted, or a
    /// directory holding it was removed or moved.
    pub(super) fn changed(&self, zone: &str, path: &str) {
        let what = Invalidation::FileChanged {
            zone_id: zone.to_owned(),
            path: path.to_owned(),
        };
        if let Some(bus) = self.0.bus.get() {
            bus.publish_hint(what.clone());
        }
        self.send(what);
    }
}

/// The invalidations of this process reach its listeners in their bus form.
impl Subscriber for FileChanges {
    fn invalidate(&self, what: &Local) {
        self.send(crate::auth::cluster_bus::to_wire(what));
    }
}
