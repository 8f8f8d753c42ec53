//! What the frontend acts on from the cluster bus. It holds no identities, so of the
//! invalidations only two concern it: a rotated session secret (re-read the secret file, so
//! every replica seals with the new secret within milliseconds of the announcement) and a
//! file changed on some node (for `resources/subscribe`). A gap in what was read (a fresh
//! start, a trimmed stream) may hide a rotation, so it re-reads the file too. The file is
//! also re-read on a timer: a secret store that updates the file without an announcement is
//! caught within `--session-secret-reload`.

use crate::metrics::Metrics;
use crate::sessions::{Reloaded, Sealer};
use nexus_bus::{Bus, Delivery};
use nexus_wire::bus::Invalidation;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Why the secret file was re-read (a metric label).
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Bus,
    Timer,
}

impl Trigger {
    fn label(self) -> &'static str {
        match self {
            Self::Bus => "bus",
            Self::Timer => "timer",
        }
    }
}

/// Re-reads the secret file, counts and logs what came of it. An unreadable file keeps
/// the secrets in use (the error names the file, never a secret).
fn reload(sealer: &Sealer, metrics: &Metrics, trigger: Trigger) {
    let outcome = match sealer.reload() {
        Ok(Reloaded::NoFile) => return,
        Ok(r @ Reloaded::Changed) => {
            tracing::info!(
                trigger = trigger.label(),
                "session secret file re-read: new session ids are sealed with its first secret"
            );
            r.label()
        }
        Ok(r) => r.label(),
        Err(e) => {
            tracing::warn!(error = %e, "session secret file not re-read; the secrets in use stay");
            "error"
        }
    };
    metrics
        .secret_reloads
        .with_label_values(&[trigger.label(), outcome])
        .inc();
}

/// The tasks that keep the frontend's view current; aborted when dropped.
#[derive(Debug, Default)]
pub(crate) struct Listeners(Vec<JoinHandle<()>>);

impl Drop for Listeners {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Starts the secret file's timer and reading the bus, when there is a file (and a bus).
pub(crate) fn start(
    bus: Option<&Bus>,
    sealer: Arc<Sealer>,
    metrics: Metrics,
    reload_every: Duration,
) -> Listeners {
    let mut tasks = Vec::new();
    if sealer.has_file() {
        let (sealer, metrics) = (sealer.clone(), metrics.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(reload_every.max(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                reload(&sealer, &metrics, Trigger::Timer);
            }
        }));
    }
    // Only a frontend with a file to re-read has anything to act on; one without reads
    // nothing (its bus health then does not wait on an invalidation stream that only rpc
    // nodes can create).
    if let Some(bus) = bus.filter(|_| sealer.has_file()) {
        let mut rx = bus.subscribe();
        tasks.push(tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                // A rotation may be among what a gap missed. Identities are the
                // rpc-servers' concern.
                let rotated = match d {
                    Delivery::Message(m) => matches!(m.what, Invalidation::SessionSecret),
                    Delivery::Gap(_) => true,
                };
                if rotated {
                    reload(&sealer, &metrics, Trigger::Bus);
                }
            }
        }));
    }
    Listeners(tasks)
}
