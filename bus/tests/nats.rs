//! NATS only: the durable audit stream, and the subject permissions of each role, run
//! against a real nats-server whose users have exactly `permissions(role, node)`.
//!
//! Ports: 14340–14359.

mod common;

use bytes::Bytes;
use common::*;
use nexus_bus::testing::{NatsServer, TcpProxy, wait_for};
use nexus_bus::{Gap, Role, permissions};
use std::collections::BTreeMap;
use std::time::Duration;

/// 10,000 audit lines, some under an id already used: a consumer that starts afterwards
/// reads every id exactly once.
#[tokio::test]
async fn audit_lines_are_stored_once_per_id() {
    let server = NatsServer::start(14340, 14341, "").await;
    let fe = Node::start(&server.url(), "fe-1", Role::Frontend).await;
    let rpc = Node::start(&server.url(), "rpc-1", Role::Rpc).await;
    fe.wait_connected(true).await;

    let mut expected = BTreeMap::new();
    let mut repeats = 0;
    for batch in 0..10 {
        for j in 0..1000 {
            let i = batch * 1000 + j;
            // Every tenth call repeats the id before it (a retried request).
            let id = if i % 10 == 9 {
                repeats += 1;
                format!("req-{}", i - 1)
            } else {
                format!("req-{i}")
            };
            let line = format!(r#"{{"event":"mcp","request_id":"{id}","n":{i}}}"#);
            expected.entry(id.clone()).or_insert_with(|| line.clone());
            assert!(fe.bus.audit(&id, Bytes::from(line)), "audit {i} queued");
        }
        fe.bus
            .flush_audit(WITHIN)
            .await
            .unwrap_or_else(|e| panic!("batch {batch}: {e}"));
    }
    assert_eq!(expected.len(), 9000);
    assert_eq!(
        fe.metric("nexus_bus_audit_total", &[("outcome", "stored")]),
        9000.0
    );
    assert_eq!(
        fe.metric("nexus_bus_audit_total", &[("outcome", "duplicate")]),
        f64::from(repeats)
    );

    // An rpc node reads the stream from the start, in pages.
    let mut seen: BTreeMap<String, Bytes> = BTreeMap::new();
    let mut after = 0;
    for _ in 0..100 {
        let page = rpc.bus.read_audit(after, 1000).await.expect("read audit");
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in page {
            assert!(
                seen.insert(r.id.clone(), r.line).is_none(),
                "{} read twice",
                r.id
            );
        }
    }
    assert_eq!(seen.len(), expected.len(), "every id once");
    for (id, line) in &expected {
        assert_eq!(
            seen.get(id).map(|b| b.as_ref()),
            Some(line.as_bytes()),
            "{id}"
        );
    }
    // Bad ids are refused before they reach a header.
    assert!(!fe.bus.audit("two words", Bytes::from_static(b"{}")));
    assert!(!fe.bus.audit("", Bytes::from_static(b"{}")));
    assert!(
        !fe.bus
            .audit("a\r\nNats-Expected-Stream: x", Bytes::from_static(b"{}"))
    );
    assert_eq!(
        fe.metric("nexus_bus_dropped_total", &[("reason", "bad_id")]),
        3.0
    );
    fe.bus.flush_audit(WITHIN).await.expect("nothing dropped");
}

/// The `authorization` block giving each user exactly `permissions(role, name)`.
fn authorization(users: &[(&str, &str, Role)]) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("json string");
    let list = |v: &[String]| v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
    let mut out = String::from("authorization {\n  users = [\n");
    for (user, password, role) in users {
        let p = permissions(*role, user);
        out.push_str(&format!(
            "    {{ user: {}, password: {}, permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }} }} }}\n",
            q(user),
            q(password),
            list(&p.publish),
            list(&p.subscribe),
        ));
    }
    out.push_str("  ]\n}\n");
    out
}

/// What the server said to a raw client, as text.
async fn raw_client(
    port: u16,
    user: &str,
    password: &str,
) -> (
    async_nats::Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::new()
        .user_and_password(user.into(), password.into())
        .custom_inbox_prefix(nexus_bus::subjects::inbox_prefix(user))
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = e {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(format!("127.0.0.1:{port}"))
        .await
        .expect("raw client");
    (client, rx)
}

async fn expect_violation(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    what: &str,
    subject: &str,
) {
    let got = tokio::time::timeout(WITHIN, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: no server error"))
        .expect("events");
    let lower = got.to_ascii_lowercase();
    assert!(
        lower.contains("permissions violation") && got.contains(subject),
        "{what}: {got}"
    );
}

/// A frontend and an rpc node, each with exactly its role's permissions, do everything
/// this crate does (publish, subscribe with replay across a server restart, audit,
/// heartbeats, nodes) without one permissions violation; a frontend that tries to publish
/// an invalidation, write another node's heartbeat or read another node's inbox is refused.
#[tokio::test]
async fn each_role_needs_exactly_its_permissions() {
    let (port, monitor, proxy_port) = (14350, 14351, 14352);
    let config = format!(
        "{}\n",
        authorization(&[
            ("fe-1", "pw-fe", Role::Frontend),
            ("rpc-1", "pw-rpc", Role::Rpc),
        ])
    );
    let mut server = NatsServer::start(port, monitor, &config).await;
    let proxy = TcpProxy::start(proxy_port, port).await;
    let rpc = Node::start(
        &format!("nats://rpc-1:pw-rpc@127.0.0.1:{port}"),
        "rpc-1",
        Role::Rpc,
    )
    .await;
    let fe = Node::start(
        &format!("nats://fe-1:pw-fe@127.0.0.1:{proxy_port}"),
        "fe-1",
        Role::Frontend,
    )
    .await;

    // The rpc node creates the invalidation stream; the frontend finds it.
    let mut rpc_rx = rpc.bus.subscribe();
    expect_gap(&mut rpc_rx, Gap::Start, "rpc subscribes").await;
    let mut fe_rx = fe.bus.subscribe();
    expect_gap(&mut fe_rx, Gap::Start, "frontend subscribes").await;
    for i in 0..3 {
        rpc.bus.publish(zone(i));
    }
    rpc.bus.flush(WITHIN).await.expect("rpc publishes");
    assert_eq!(
        zone_ids(&messages(&mut fe_rx, 3, "frontend reads").await),
        expected_zones(0..3)
    );
    assert_eq!(
        zone_ids(&messages(&mut rpc_rx, 3, "rpc reads its own").await),
        expected_zones(0..3)
    );

    // The frontend creates the audit stream and writes to it; the rpc node reads it.
    for i in 0..20 {
        assert!(
            fe.bus
                .audit(&format!("a{i}"), Bytes::from(format!("{{\"n\":{i}}}")))
        );
    }
    fe.bus.flush_audit(WITHIN).await.expect("frontend audits");
    let lines = rpc.bus.read_audit(0, 100).await.expect("rpc reads audit");
    assert_eq!(lines.len(), 20);

    // Heartbeats: each writes its own key; the rpc node lists both.
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        let names: Vec<String> = rpc
            .bus
            .nodes()
            .await
            .map(|n| n.into_iter().map(|b| b.name).collect())
            .unwrap_or_default();
        if names == ["fe-1", "rpc-1"] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nodes: {names:?} {:?}",
            fe.bus.health()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Replay after a disconnect and a server restart, through the reconnect paths.
    proxy.cut();
    fe.wait_connected(false).await;
    for i in 3..13 {
        rpc.bus.publish(zone(i));
    }
    rpc.bus.flush(WITHIN).await.expect("rpc publishes");
    server.restart().await;
    proxy.restore();
    assert_eq!(
        zone_ids(&messages(&mut fe_rx, 10, "frontend replays").await),
        expected_zones(3..13)
    );
    assert!(fe.metric("nexus_bus_replayed_total", &[]) >= 10.0);
    assert_eq!(
        zone_ids(&messages(&mut rpc_rx, 10, "rpc reads after the restart").await),
        expected_zones(3..13)
    );
    for i in 20..25 {
        assert!(fe.bus.audit(&format!("a{i}"), Bytes::from_static(b"{}")));
    }
    fe.bus
        .flush_audit(WITHIN)
        .await
        .expect("audit after restart");
    assert_eq!(rpc.bus.read_audit(20, 100).await.expect("audit").len(), 5);
    rpc.bus.publish(zone(13));
    rpc.bus.flush(WITHIN).await.expect("publish after restart");
    messages(&mut fe_rx, 1, "live after the restart").await;
    messages(&mut rpc_rx, 1, "rpc's own, after the restart").await;
    let beats = rpc.bus.nodes().await.expect("nodes after restart");
    assert_eq!(beats.len(), 2, "{beats:?}");
    // Let the readers' consumer cleanup and heartbeats run once more.
    tokio::time::sleep(Duration::from_millis(200)).await;

    for node in [&fe, &rpc] {
        assert_eq!(
            node.metric("nexus_bus_permission_denied_total", &[]),
            0.0,
            "{}: {:?}",
            node.bus.node().name,
            node.bus.health()
        );
    }
    let log = server.log();
    assert!(
        !log.contains("Violation"),
        "the server refused something:\n{log}"
    );

    // What a frontend may not do.
    let (client, mut events) = raw_client(port, "fe-1", "pw-fe").await;
    client
        .publish("nexus.inval.token", Bytes::from_static(b"{}"))
        .await
        .expect("send");
    client.flush().await.expect("flush");
    expect_violation(
        &mut events,
        "frontend publishes an invalidation",
        "nexus.inval.token",
    )
    .await;
    client
        .publish("$KV.nexus_nodes.rpc-1", Bytes::from_static(b"{}"))
        .await
        .expect("send");
    client.flush().await.expect("flush");
    expect_violation(
        &mut events,
        "frontend writes another node's heartbeat",
        "$KV.nexus_nodes.rpc-1",
    )
    .await;
    let _sub = client.subscribe("_INBOX_rpc-1.>").await.expect("send");
    client.flush().await.expect("flush");
    expect_violation(
        &mut events,
        "frontend reads another node's inbox",
        "_INBOX_rpc-1.>",
    )
    .await;
    for subject in [
        "$JS.API.STREAM.PURGE.NEXUS_INVAL",
        "$JS.API.STREAM.DELETE.NEXUS_INVAL",
        "$JS.API.CONSUMER.CREATE.NEXUS_AUDIT.x",
    ] {
        client
            .publish(subject, Bytes::from_static(b"{}"))
            .await
            .expect("send");
        client.flush().await.expect("flush");
        expect_violation(&mut events, subject, subject).await;
    }
    // Through the bus too: the server refuses the frontend's invalidation.
    fe.bus.publish(zone(99));
    wait_for("the frontend's publish refused", WITHIN, || {
        fe.metric("nexus_bus_permission_denied_total", &[]) >= 1.0
    })
    .await;
    assert!(
        fe.bus
            .health()
            .last_error
            .is_some_and(|e| e.contains("nexus.inval.zone")),
        "{:?}",
        fe.bus.health()
    );
    assert!(
        server.log().contains("Violation"),
        "the server logs refusals"
    );
    quiet(&mut rpc_rx, "nothing from the frontend").await;
}
