//! Helpers shared by the bus tests: starting nodes, reading deliveries with deadlines.

#![allow(dead_code)]

use nexus_bus::{Bus, BusConfig, BusMessage, Delivery, Gap, NatsSettings, NodeIdentity, Role};
use std::time::Duration;
use tokio::sync::mpsc;

pub const WITHIN: Duration = Duration::from_secs(20);

pub struct Node {
    pub bus: Bus,
    pub registry: prometheus::Registry,
}

impl Node {
    pub async fn start(url: &str, name: &str, role: Role) -> Self {
        let registry = prometheus::Registry::new();
        let config = BusConfig {
            url: url.to_owned(),
            nats_creds: None,
            node: NodeIdentity {
                name: name.to_owned(),
                role,
                version: "0.1.0-test".to_owned(),
            },
            nats: NatsSettings::default(),
            heartbeat: true,
        };
        let bus = Bus::start(config, Some(&registry))
            .await
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Self { bus, registry }
    }

    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        nexus_bus::testing::metric(&self.registry, name, labels)
    }

    pub async fn wait_connected(&self, up: bool) {
        let deadline = std::time::Instant::now() + WITHIN;
        while self.bus.health().connected != up {
            assert!(
                std::time::Instant::now() < deadline,
                "{} connected={up} not reached: {:?}",
                self.bus.node().name,
                self.bus.health()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The next delivery, or a panic naming `what` after [`WITHIN`].
pub async fn next(rx: &mut mpsc::Receiver<Delivery>, what: &str) -> Delivery {
    match tokio::time::timeout(WITHIN, rx.recv()).await {
        Ok(Some(d)) => d,
        Ok(None) => panic!("{what}: the subscription ended"),
        Err(_) => panic!("{what}: nothing delivered within {WITHIN:?}"),
    }
}

pub async fn expect_gap(rx: &mut mpsc::Receiver<Delivery>, want: Gap, what: &str) {
    match next(rx, what).await {
        Delivery::Gap(g) => assert_eq!(g, want, "{what}"),
        other => panic!("{what}: expected {want:?}, got {other:?}"),
    }
}

/// Exactly `n` messages, no gap in between.
pub async fn messages(rx: &mut mpsc::Receiver<Delivery>, n: usize, what: &str) -> Vec<BusMessage> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match next(rx, &format!("{what} ({} of {n})", out.len())).await {
            Delivery::Message(m) => out.push(m),
            Delivery::Gap(g) => panic!("{what}: unexpected {g:?} after {} messages", out.len()),
        }
    }
    out
}

/// Nothing more is delivered for a short while (no duplicates, no stray gap).
pub async fn quiet(rx: &mut mpsc::Receiver<Delivery>, what: &str) {
    if let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        panic!("{what}: unexpected {d:?}");
    }
}

pub fn zone(i: usize) -> nexus_bus::Invalidation {
    nexus_bus::Invalidation::Zone {
        zone_id: format!("z{i}"),
    }
}

pub fn zone_ids(ms: &[BusMessage]) -> Vec<String> {
    ms.iter()
        .map(|m| match &m.what {
            nexus_bus::Invalidation::Zone { zone_id } => zone_id.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

pub fn expected_zones(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("z{i}")).collect()
}
