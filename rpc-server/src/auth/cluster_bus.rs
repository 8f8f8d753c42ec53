//! The cluster bus (SPEC §13, crate `nexus-bus`) as the path by which a change made on one
//! node reaches every other node's caches: a Redis Stream or NATS JetStream, both
//! replayable, so a node that was cut off applies what it missed when it reconnects. When
//! it cannot replay (the stream moved past it, an unreadable message), it drops every
//! cache: fail closed. The database announces the same changes itself
//! ([`super::db_notify`]); the bus is the path that also survives a listener's disconnect,
//! and the only one between nodes that share no database notifications.

use super::invalidation::{Broadcaster, Invalidation, InvalidationBus};
use crate::config::BusSettings;
use crate::metrics::Metrics;
use nexus_bus::{Bus, Delivery, KeyId, Role};
use std::sync::Arc;

/// The bus's form of an invalidation.
pub(crate) fn to_wire(what: &Invalidation) -> nexus_bus::Invalidation {
    use nexus_bus::Invalidation as W;
    match what {
        Invalidation::Token { key_id } => W::Token {
            key_id: KeyId::from_bytes(*key_id.as_bytes()),
        },
        Invalidation::Zone { zone_id } => W::Zone {
            zone_id: zone_id.clone(),
        },
        Invalidation::Rebac => W::Rebac,
        Invalidation::Subject { subject_id } => W::Subject {
            subject_id: subject_id.clone(),
        },
        Invalidation::All => W::All,
    }
}

/// What a bus message asks of this server's caches; `None` for what only frontends use.
pub(crate) fn from_wire(what: nexus_bus::Invalidation) -> Option<Invalidation> {
    use nexus_bus::Invalidation as W;
    Some(match what {
        W::Token { key_id } => Invalidation::Token {
            key_id: uuid::Uuid::from_bytes(*key_id.as_bytes()),
        },
        W::Zone { zone_id } => Invalidation::Zone { zone_id },
        W::Rebac => Invalidation::Rebac,
        W::Subject { subject_id } => Invalidation::Subject { subject_id },
        W::All => Invalidation::All,
        W::SessionSecret | W::FileChanged { .. } => return None,
    })
}

struct BusBroadcaster(Bus);

impl Broadcaster for BusBroadcaster {
    fn broadcast(&self, what: &Invalidation) {
        self.0.publish(to_wire(what));
    }
}

/// Joins the bus as the rpc node listening on `port`: changes made here are published,
/// changes made elsewhere (and replayed ones) are applied to `invalidations`.
pub async fn start(
    settings: &BusSettings,
    port: u16,
    invalidations: Arc<InvalidationBus>,
    metrics: &Metrics,
) -> anyhow::Result<Bus> {
    let bus = Bus::start(
        settings.bus_config(Role::Rpc, port, true),
        Some(&metrics.registry),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cluster bus: {e}"))?;
    publish_changes(&bus, &invalidations);
    tokio::spawn(apply(bus.clone(), invalidations, metrics.clone()));
    Ok(bus)
}

/// A bus for a short-lived process that only publishes (the CLI): no heartbeat, nothing
/// applied from others.
pub async fn publisher(settings: &BusSettings) -> anyhow::Result<Bus> {
    Bus::start(settings.bus_config(Role::Rpc, 0, false), None)
        .await
        .map_err(|e| anyhow::anyhow!("cluster bus: {e}"))
}

/// Hands `invalidations`' changes to `bus`.
pub fn publish_changes(bus: &Bus, invalidations: &InvalidationBus) {
    invalidations.set_broadcaster(Arc::new(BusBroadcaster(bus.clone())));
}

/// The bus's health as `hub status` shows it.
pub fn status(bus: &Bus) -> nexus_wire::methods::BusStatus {
    let h = bus.health();
    nexus_wire::methods::BusStatus {
        backend: h.backend.as_str().to_owned(),
        connected: h.connected,
        last_error: h.last_error,
    }
}

/// Every node whose heartbeat the bus holds, as `hub status` shows them; `None` when the
/// bus cannot say within two seconds.
pub async fn nodes(bus: &Bus) -> Option<Vec<nexus_wire::methods::NodeStatus>> {
    let beats = tokio::time::timeout(std::time::Duration::from_secs(2), bus.nodes())
        .await
        .ok()?
        .ok()?;
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    Some(
        beats
            .into_iter()
            .map(|b| nexus_wire::methods::NodeStatus {
                name: b.name,
                role: b.role.as_str().to_owned(),
                version: b.version,
                last_heartbeat: at(b.at_ms),
                started: at(b.started_at_ms),
            })
            .collect(),
    )
}

async fn apply(bus: Bus, invalidations: Arc<InvalidationBus>, metrics: Metrics) {
    let me = bus.node().name.clone();
    let mut rx = bus.subscribe();
    while let Some(d) = rx.recv().await {
        match d {
            Delivery::Message(m) if m.origin == me => {}
            Delivery::Message(m) => {
                if let Some(what) = from_wire(m.what) {
                    invalidations.apply_local(&what);
                    let lag = (chrono::Utc::now().timestamp_millis() - m.at_ms).max(0);
                    metrics.invalidation_lag.observe(lag as f64 / 1000.0);
                    metrics.invalidations.with_label_values(&["received"]).inc();
                }
            }
            // Whatever was missed may have been a revocation.
            Delivery::Gap(_) => invalidations.apply_local(&Invalidation::All),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalidation_survives_the_bus() {
        for what in [
            Invalidation::Token {
                key_id: uuid::Uuid::new_v4(),
            },
            Invalidation::Zone {
                zone_id: "eng".into(),
            },
            Invalidation::Rebac,
            Invalidation::Subject {
                subject_id: "alice".into(),
            },
            Invalidation::All,
        ] {
            assert_eq!(from_wire(to_wire(&what)), Some(what.clone()));
            // And the bus's JSON is the one this server always published.
            let ours = serde_json::to_value(&what).expect("json");
            let theirs = serde_json::to_value(to_wire(&what)).expect("json");
            assert_eq!(ours, theirs);
        }
    }
}
