//! The same promises checked on both backends, against real servers on 127.0.0.1: delivery
//! in order to every node, replay of what a disconnected node missed (across a server
//! restart), a gap when the stream was trimmed past a node, and hostile messages refused.
//!
//! Ports: NATS 14300–14349, Redis 16390–16395 (proxies included).

mod common;

use bytes::Bytes;
use common::*;
use nexus_bus::testing::{NatsServer, RedisServer, TcpProxy};
use nexus_bus::{Gap, Role};
use std::time::Duration;

/// A server of either kind, restartable on the same data.
enum Server {
    Nats(NatsServer),
    Redis(RedisServer),
}

impl Server {
    async fn nats(port: u16, monitor: u16) -> Self {
        // Room for the 1 MiB hostile message (the default limit is exactly 1 MiB).
        Self::Nats(NatsServer::start(port, monitor, "max_payload: 2MB").await)
    }

    async fn redis(port: u16) -> Self {
        Self::Redis(RedisServer::start(port).await)
    }

    fn url(&self) -> String {
        match self {
            Self::Nats(s) => s.url(),
            Self::Redis(s) => s.url(),
        }
    }

    fn port(&self) -> u16 {
        match self {
            Self::Nats(s) => s.port(),
            Self::Redis(s) => s.port(),
        }
    }

    fn url_via(&self, proxy: &TcpProxy) -> String {
        match self {
            Self::Nats(_) => format!("nats://127.0.0.1:{}", proxy.port()),
            Self::Redis(_) => format!("redis://127.0.0.1:{}", proxy.port()),
        }
    }

    fn stop(&mut self) {
        match self {
            Self::Nats(s) => s.stop(),
            Self::Redis(s) => s.stop(),
        }
    }

    /// SIGKILL, as a crash.
    fn kill(&mut self) {
        match self {
            Self::Nats(s) => s.kill(),
            Self::Redis(s) => s.kill(),
        }
    }

    async fn start_again(&mut self) {
        match self {
            Self::Nats(s) => s.start_again().await,
            Self::Redis(s) => s.start_again().await,
        }
    }

    /// Removes every stored invalidation behind the nodes' backs.
    async fn trim_all(&self) {
        match self {
            Self::Nats(s) => {
                let client = async_nats::connect(s.url()).await.expect("raw nats");
                let js = async_nats::jetstream::new(client);
                let stream = js
                    .get_stream(nexus_bus::subjects::INVAL_STREAM)
                    .await
                    .expect("stream");
                stream.purge().await.expect("purge");
            }
            Self::Redis(s) => {
                let mut c = raw_redis(s).await;
                let _: i64 = redis::cmd("XTRIM")
                    .arg(nexus_bus::subjects::REDIS_STREAM)
                    .arg("MAXLEN")
                    .arg(0)
                    .query_async(&mut c)
                    .await
                    .expect("XTRIM");
            }
        }
    }

    /// Puts raw bytes on the invalidation stream, as a hostile or broken node would.
    async fn inject(&self, payload: Bytes) {
        match self {
            Self::Nats(s) => {
                let client = async_nats::connect(s.url()).await.expect("raw nats");
                let js = async_nats::jetstream::new(client);
                js.publish("nexus.inval.token", payload)
                    .await
                    .expect("raw publish")
                    .await
                    .expect("raw publish ack");
            }
            Self::Redis(s) => {
                let mut c = raw_redis(s).await;
                let _: String = redis::cmd("XADD")
                    .arg(nexus_bus::subjects::REDIS_STREAM)
                    .arg("*")
                    .arg(nexus_bus::subjects::REDIS_FIELD)
                    .arg(payload.as_ref())
                    .query_async(&mut c)
                    .await
                    .expect("raw XADD");
            }
        }
    }
}

async fn raw_redis(s: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(s.url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw redis")
}

/// Node B, cut off, misses 50 invalidations that A publishes, the server restarts, and B
/// gets all 50 when it is back: in order, replayed, no duplicates, no gap. Then A publishes
/// while the server is down, and everything still arrives.
async fn replay_after_disconnect(mut server: Server, proxy_port: u16) {
    let proxy = TcpProxy::start(proxy_port, server.port()).await;
    let a = Node::start(&server.url(), "node-a", Role::Rpc).await;
    let b = Node::start(&server.url_via(&proxy), "node-b", Role::Rpc).await;
    let mut rx = b.bus.subscribe();
    expect_gap(&mut rx, Gap::Start, "B's first connection").await;

    for i in 0..5 {
        a.bus.publish(zone(i));
    }
    a.bus.flush(WITHIN).await.expect("A's first five published");
    let got = messages(&mut rx, 5, "live messages").await;
    assert_eq!(zone_ids(&got), expected_zones(0..5));
    assert!(got.iter().all(|m| m.origin == "node-a" && m.v == 1));
    assert!(b.metric("nexus_bus_lag_seconds", &[]) >= 5.0);

    // B is cut off; A goes on publishing.
    proxy.cut();
    b.wait_connected(false).await;
    for i in 5..55 {
        a.bus.publish(zone(i));
    }
    a.bus.flush(WITHIN).await.expect("A's 50 published");
    // The server restarts on the same data while B is away.
    server.stop();
    server.start_again().await;
    proxy.restore();

    let got = messages(&mut rx, 50, "replay after reconnect").await;
    assert_eq!(zone_ids(&got), expected_zones(5..55), "all 50, in order");
    assert!(
        b.metric("nexus_bus_replayed_total", &[]) >= 50.0,
        "replayed: {}",
        b.metric("nexus_bus_replayed_total", &[])
    );
    assert!(b.metric("nexus_bus_reconnects_total", &[]) >= 1.0);
    assert_eq!(b.metric("nexus_bus_connected", &[]), 1.0);
    // No duplicates: the next thing B sees is the next thing A publishes.
    a.bus.publish(zone(55));
    let got = messages(&mut rx, 1, "after the replay").await;
    assert_eq!(zone_ids(&got), expected_zones(55..56));
    quiet(&mut rx, "after the replay").await;

    // Published while the server is down (it crashed): queued, retried, delivered once it
    // is back.
    server.kill();
    a.wait_connected(false).await;
    for i in 56..66 {
        a.bus.publish(zone(i));
    }
    server.start_again().await;
    a.bus
        .flush(Duration::from_secs(30))
        .await
        .expect("published once the server was back");
    let got = messages(&mut rx, 10, "published during the outage").await;
    assert_eq!(zone_ids(&got), expected_zones(56..66));
    quiet(&mut rx, "after the outage").await;
    assert_eq!(
        a.metric("nexus_bus_published_total", &[("outcome", "ok")]),
        66.0
    );
    assert_eq!(
        a.metric("nexus_bus_dropped_total", &[("reason", "unavailable")]),
        0.0
    );
    assert_eq!(
        b.metric("nexus_bus_gaps_total", &[("reason", "start")]),
        1.0
    );
    assert_eq!(
        b.metric("nexus_bus_gaps_total", &[("reason", "trimmed")]),
        0.0
    );
    // Each node's own messages come back to it too.
    let mut own = a.bus.subscribe();
    expect_gap(&mut own, Gap::Start, "A's own subscription").await;
    a.bus.publish(zone(66));
    let got = messages(&mut own, 1, "A's own message").await;
    assert_eq!(got[0].origin, "node-a");
}

/// B is away while the stream is trimmed past its position: it gets a gap, then what
/// follows.
async fn gap_when_trimmed(server: Server, proxy_port: u16) {
    let proxy = TcpProxy::start(proxy_port, server.port()).await;
    let a = Node::start(&server.url(), "node-a", Role::Rpc).await;
    let b = Node::start(&server.url_via(&proxy), "node-b", Role::Rpc).await;
    let mut rx = b.bus.subscribe();
    expect_gap(&mut rx, Gap::Start, "B's first connection").await;
    for i in 0..3 {
        a.bus.publish(zone(i));
    }
    a.bus.flush(WITHIN).await.expect("published");
    messages(&mut rx, 3, "before the cut").await;

    proxy.cut();
    b.wait_connected(false).await;
    for i in 3..13 {
        a.bus.publish(zone(i));
    }
    a.bus.flush(WITHIN).await.expect("published");
    server.trim_all().await;
    for i in 13..15 {
        a.bus.publish(zone(i));
    }
    a.bus.flush(WITHIN).await.expect("published");
    proxy.restore();

    expect_gap(&mut rx, Gap::Trimmed, "the stream was trimmed past B").await;
    let got = messages(&mut rx, 2, "after the gap").await;
    assert_eq!(zone_ids(&got), expected_zones(13..15));
    quiet(&mut rx, "after the gap").await;
    assert_eq!(
        b.metric("nexus_bus_gaps_total", &[("reason", "trimmed")]),
        1.0
    );
}

/// Bytes that are not a valid message never reach the consumer as one; each is counted
/// and fails closed (a gap), and a valid message after them still arrives.
async fn hostile_messages(server: Server) {
    let a = Node::start(&server.url(), "node-a", Role::Rpc).await;
    let b = Node::start(&server.url(), "node-b", Role::Rpc).await;
    let mut rx = b.bus.subscribe();
    expect_gap(&mut rx, Gap::Start, "B's first connection").await;
    // The stream exists once A has published.
    a.bus.publish(zone(0));
    a.bus.flush(WITHIN).await.expect("published");
    messages(&mut rx, 1, "a valid message").await;

    let key = "0b9c6a8e-3f1d-4c2b-9a7e-5d4c3b2a1f00";
    let hostile: Vec<(&str, Bytes)> = vec![
        (
            "malformed JSON",
            Bytes::from_static(b"{\"v\":1,\"origin\":"),
        ),
        (
            "wrong schema",
            Bytes::from(format!(
                r#"{{"v":1,"origin":"node-x","at_ms":1,"what":{{"kind":"token","key_id":{key:?},"admin":true}}}}"#
            )),
        ),
        (
            "unknown kind",
            Bytes::from_static(
                br#"{"v":1,"origin":"node-x","at_ms":1,"what":{"kind":"grant_everything"}}"#,
            ),
        ),
        ("1 MiB body", Bytes::from(vec![b'{'; 1 << 20])),
        (
            "a newer version",
            Bytes::from_static(br#"{"v":2,"origin":"node-x","at_ms":1,"what":{"kind":"all"}}"#),
        ),
    ];
    for (_, payload) in &hostile {
        server.inject(payload.clone()).await;
    }
    a.bus.publish(zone(1));
    a.bus.flush(WITHIN).await.expect("published");
    for (what, _) in &hostile {
        expect_gap(&mut rx, Gap::Unreadable, what).await;
    }
    let got = messages(&mut rx, 1, "the valid message after them").await;
    assert_eq!(zone_ids(&got), expected_zones(1..2));
    quiet(&mut rx, "after the hostile messages").await;
    assert_eq!(
        b.metric("nexus_bus_dropped_total", &[("reason", "malformed")]),
        4.0
    );
    assert_eq!(
        b.metric("nexus_bus_dropped_total", &[("reason", "too_large")]),
        1.0
    );
    assert_eq!(
        b.metric("nexus_bus_gaps_total", &[("reason", "unreadable")]),
        5.0
    );
    // The node is still up and reading.
    assert!(b.bus.health().connected);
}

/// Both nodes list each other (heartbeats), and health says which bus.
async fn heartbeats(server: Server, backend: &str) {
    let a = Node::start(&server.url(), "node-a", Role::Rpc).await;
    let b = Node::start(&server.url(), "node-b", Role::Frontend).await;
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        let listed = a.bus.nodes().await;
        let nodes = listed.as_ref().map(Vec::clone).unwrap_or_default();
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        if names == ["node-a", "node-b"] {
            assert_eq!(nodes[1].role, Role::Frontend);
            assert_eq!(nodes[1].version, "0.1.0-test");
            assert!(nodes[1].at_ms >= nodes[1].started_at_ms);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nodes: {:?}, {:?} {:?}",
            listed.map(|n| n.len()),
            a.bus.health(),
            b.bus.health()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let h = b.bus.health();
    assert!(h.connected, "{h:?}");
    assert_eq!(h.backend.as_str(), backend);
}

#[tokio::test]
async fn nats_replay_after_disconnect() {
    replay_after_disconnect(Server::nats(14300, 14301).await, 14302).await;
}

#[tokio::test]
async fn redis_replay_after_disconnect() {
    replay_after_disconnect(Server::redis(16390).await, 16391).await;
}

#[tokio::test]
async fn nats_gap_when_trimmed() {
    gap_when_trimmed(Server::nats(14310, 14311).await, 14312).await;
}

#[tokio::test]
async fn redis_gap_when_trimmed() {
    gap_when_trimmed(Server::redis(16392).await, 16393).await;
}

#[tokio::test]
async fn nats_hostile_messages() {
    hostile_messages(Server::nats(14320, 14321).await).await;
}

#[tokio::test]
async fn redis_hostile_messages() {
    hostile_messages(Server::redis(16394).await).await;
}

#[tokio::test]
async fn nats_heartbeats() {
    heartbeats(Server::nats(14330, 14331).await, "nats").await;
}

#[tokio::test]
async fn redis_heartbeats() {
    heartbeats(Server::redis(16395).await, "redis").await;
}

#[tokio::test]
async fn redis_has_no_audit_stream() {
    let server = Server::redis(16396).await;
    let a = Node::start(&server.url(), "node-a", Role::Frontend).await;
    assert!(!a.bus.audit("id-1", Bytes::from_static(b"{}")));
    a.bus.flush_audit(WITHIN).await.expect("nothing queued");
    assert!(matches!(
        a.bus.read_audit(0, 10).await,
        Err(nexus_bus::BusError::Unsupported(_))
    ));
}
