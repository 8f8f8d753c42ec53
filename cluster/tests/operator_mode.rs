//! Against real nats-servers: a 3-node cluster in operator mode, started from
//! `nats_config` output, with node creds from `add_node`. Checks that the roles' permissions
//! hold, that a revocation pushed with the `sys` creds cuts a connected node off at once,
//! and that creds of another operator are refused.
//!
//! Ports: 14201–14203 (clients), 14211–14213 (routes), 14221–14223 (monitoring).

mod harness;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::{ConnectErrorKind, Event, ServerError};
use futures_util::StreamExt;
use harness::{NatsServer, assert_free, skip_nats, wait_all_healthy};
use nexus_cluster::{
    ClusterError, NatsConfig, PushOutcome, Role, add_node, init, nats_config, read, revoke_node,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::timeout;

const CLIENT: [u16; 3] = [14201, 14202, 14203];
const ROUTE: [u16; 3] = [14211, 14212, 14213];
const MONITOR: [u16; 3] = [14221, 14222, 14223];
const WAIT: Duration = Duration::from_secs(15);

/// A node's connection and the events its client reported.
struct Node {
    client: async_nats::Client,
    events: mpsc::UnboundedReceiver<Event>,
}

async fn connect(creds: &Path, node: &str, url: &str) -> Result<Node, async_nats::ConnectError> {
    let (tx, events) = mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::with_credentials_file(creds)
        .await
        .expect("read creds")
        .custom_inbox_prefix(format!("_INBOX_{node}"))
        .connection_timeout(Duration::from_secs(5))
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e);
            }
        })
        .connect(url)
        .await?;
    Ok(Node { client, events })
}

/// Waits (bounded) for an event matching `want`; returns every event seen on the way.
async fn expect_event(node: &mut Node, what: &str, want: impl Fn(&Event) -> bool) -> Vec<Event> {
    let mut seen = Vec::new();
    let found = timeout(WAIT, async {
        while let Some(e) = node.events.recv().await {
            let hit = want(&e);
            seen.push(e);
            if hit {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(found, "no {what} within {WAIT:?}; events: {seen:?}");
    seen
}

fn server_error_contains(e: &Event, needle: &str) -> bool {
    matches!(e, Event::ServerError(ServerError::Other(m)) if m.to_lowercase().contains(&needle.to_lowercase()))
}

/// Every seed in the cluster directory: `keys/*.nk` and the seed blocks of `*.creds`.
fn seeds_in(dir: &Path) -> Vec<String> {
    let mut seeds = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.extend(
        std::fs::read_dir(dir.join("keys"))
            .expect("read keys")
            .map(|e| e.expect("entry").path()),
    );
    for f in files.iter().filter(|f| f.is_file()) {
        let text = std::fs::read_to_string(f).expect("read");
        seeds.extend(
            text.split_whitespace()
                .filter(|w| w.len() == 58 && ["SO", "SA", "SU"].iter().any(|p| w.starts_with(p)))
                .map(str::to_owned),
        );
    }
    seeds
}

fn assert_private(dir: &Path) {
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for sub in [dir.to_path_buf(), dir.join("keys")] {
        for e in std::fs::read_dir(&sub).expect("read dir") {
            let p = e.expect("entry").path();
            let want = if p.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode(&p), want, "{}", p.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_cluster_in_operator_mode() {
    if skip_nats() {
        eprintln!("NEXUS_TEST_SKIP_NATS=1: skipping the nats-server test");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("cluster");
    let mut outputs: Vec<String> = Vec::new();

    outputs.push(init(&dir).expect("init").to_string());
    for (name, role) in [
        ("rpc-1", Role::Rpc),
        ("rpc-2", Role::Rpc),
        ("fe-1", Role::Frontend),
        ("rpc-old", Role::Rpc),
        ("fe-old", Role::Frontend),
    ] {
        outputs.push(add_node(&dir, name, role).expect("add node").to_string());
    }
    assert_private(&dir);

    // Three servers from `nats_config`, every route listed in each.
    let routes: Vec<String> = ROUTE
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    assert_free(&[CLIENT, ROUTE, MONITOR].concat());
    let mut servers = Vec::new();
    for i in 0..3 {
        let name = format!("n{}", i + 1);
        let store = tmp.path().join(&name);
        let config = nats_config(
            &dir,
            &NatsConfig {
                node: name.clone(),
                routes: routes.clone(),
                port: CLIENT[i],
                cluster_port: ROUTE[i],
                store_dir: store.to_string_lossy().into_owned(),
                monitor_port: Some(MONITOR[i]),
                host: "127.0.0.1".into(),
            },
        )
        .expect("nats config");
        outputs.push(config.clone());
        servers.push(NatsServer::start(
            &name,
            &config,
            tmp.path(),
            CLIENT[i],
            MONITOR[i],
        ));
    }
    let mut servers = tokio::task::spawn_blocking(move || {
        wait_all_healthy(&mut servers, Duration::from_secs(60));
        servers
    })
    .await
    .expect("wait for the servers");
    let url = |i: usize| format!("nats://127.0.0.1:{}", CLIENT[i]);

    // The rpc role on n1 creates the invalidation stream (R3) and publishes.
    let creds = |n: &str| dir.join(format!("{n}.creds"));
    let rpc1 = connect(&creds("rpc-1"), "rpc-1", &url(0))
        .await
        .expect("rpc-1 connects");
    let js1 = jetstream::new(rpc1.client.clone());
    let stream = timeout(
        WAIT,
        js1.create_stream(stream::Config {
            name: "NEXUS_INVAL".into(),
            subjects: vec!["nexus.inval.>".into()],
            num_replicas: 3,
            storage: stream::StorageType::Memory,
            ..Default::default()
        }),
    )
    .await
    .expect("stream create in time")
    .expect("the rpc role creates NEXUS_INVAL");
    drop(stream);

    // Another rpc node, on n2, reads it through a consumer delivering into its own inbox.
    let rpc2 = connect(&creds("rpc-2"), "rpc-2", &url(1))
        .await
        .expect("rpc-2 connects");
    let js2 = jetstream::new(rpc2.client.clone());
    let inval = js2.get_stream("NEXUS_INVAL").await.expect("stream info");
    let reader: consumer::PullConsumer = inval
        .create_consumer(consumer::pull::Config {
            name: Some("rpc-2-reader".into()),
            ..Default::default()
        })
        .await
        .expect("the rpc role creates a consumer");
    rpc1.client
        .publish("nexus.inval.token", "tok-123".into())
        .await
        .expect("publish");
    rpc1.client.flush().await.expect("flush");
    let mut batch = reader
        .fetch()
        .max_messages(1)
        .expires(WAIT)
        .messages()
        .await
        .expect("fetch");
    let msg = timeout(WAIT, batch.next())
        .await
        .expect("a message in time")
        .expect("a message")
        .expect("a good message");
    assert_eq!(msg.subject.as_str(), "nexus.inval.token");
    assert_eq!(&msg.payload[..], b"tok-123");
    msg.ack().await.expect("ack");

    // A frontend (on n3) may not publish invalidations: the server says so and drops it.
    let mut fe = connect(&creds("fe-1"), "fe-1", &url(2))
        .await
        .expect("fe-1 connects");
    fe.client
        .publish("nexus.inval.token", "forged".into())
        .await
        .expect("publish (refused by the server)");
    fe.client.flush().await.expect("flush");
    expect_event(&mut fe, "publish permissions violation", |e| {
        server_error_contains(
            e,
            r#"Permissions Violation for Publish to "nexus.inval.token""#,
        )
    })
    .await;
    let mut info = js1.get_stream("NEXUS_INVAL").await.expect("stream");
    assert_eq!(
        info.info().await.expect("info").state.messages,
        1,
        "the frontend's message must not reach the stream"
    );
    // … nor subscribe outside its inbox (neither the bus subjects nor another node's inbox).
    for subject in ["nexus.inval.>", "_INBOX_rpc-1.>"] {
        let _sub = fe
            .client
            .subscribe(subject)
            .await
            .expect("subscribe (refused by the server)");
        fe.client.flush().await.expect("flush");
        expect_event(&mut fe, "subscribe permissions violation", |e| {
            server_error_contains(
                e,
                &format!(r#"Permissions Violation for Subscription to "{subject}""#),
            )
        })
        .await;
    }
    // What a frontend may do: the audit stream.
    let jsf = jetstream::new(fe.client.clone());
    jsf.create_stream(stream::Config {
        name: "NEXUS_AUDIT".into(),
        subjects: vec!["nexus.audit.mcp".into()],
        num_replicas: 3,
        storage: stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .expect("the frontend creates NEXUS_AUDIT");
    jsf.publish("nexus.audit.mcp", "call".into())
        .await
        .expect("publish audit")
        .await
        .expect("audit stored");

    // Revocation: a connected rpc node (on n3) is cut off once the account JWT is pushed
    // to any one server (n1); its creds are refused afterwards.
    let victim_creds = tmp.path().join("rpc-old.creds.copy");
    std::fs::copy(creds("rpc-old"), &victim_creds).expect("keep a copy of the creds");
    let mut victim = connect(&victim_creds, "rpc-old", &url(2))
        .await
        .expect("rpc-old connects");
    victim.client.flush().await.expect("round trip");
    let seeds = seeds_in(&dir);
    // The first server named is down: the push goes to the next.
    let nobody = "nats://127.0.0.1:14299".to_owned();
    assert_free(&[14299]);
    let report = revoke_node(&dir, "rpc-old", &[nobody.clone(), url(0)])
        .await
        .expect("revoke");
    outputs.push(report.to_string());
    let PushOutcome::Pushed(answers) = &report.push else {
        panic!("push failed: {report}");
    };
    let mut names: Vec<&str> = answers.iter().map(|a| a.server.as_str()).collect();
    names.sort();
    assert_eq!(names, ["n1", "n2", "n3"], "{report}");
    assert!(
        answers.iter().all(|a| a.ok && a.message == "jwt updated"),
        "{report}"
    );
    assert!(report.confirmed());
    assert!(!creds("rpc-old").exists());
    let seen = expect_event(&mut victim, "the connection closed", |e| {
        matches!(e, Event::Disconnected)
    })
    .await;
    eprintln!("{report}\nthe revoked node's client saw: {seen:?}");
    assert!(
        seen.iter()
            .any(|e| server_error_contains(e, "User Authentication Revoked")),
        "{seen:?}"
    );
    for i in 0..3 {
        let e = connect(&victim_creds, "rpc-old", &url(i))
            .await
            .err()
            .unwrap_or_else(|| panic!("revoked creds accepted by n{}", i + 1));
        assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation, "{e}");
        eprintln!("n{}: a new connect with the revoked creds: {e}", i + 1);
    }
    // Others are untouched.
    rpc1.client.flush().await.expect("rpc-1 still connected");
    fe.client.flush().await.expect("fe-1 still connected");
    drop(victim);

    // Without a reachable server the files still change, and the report says what to do;
    // running servers keep accepting the node until they learn the new account JWT.
    let fe_old_creds = tmp.path().join("fe-old.creds.copy");
    std::fs::copy(creds("fe-old"), &fe_old_creds).expect("keep a copy of the creds");
    let mut fe_old = connect(&fe_old_creds, "fe-old", &url(0))
        .await
        .expect("fe-old connects");
    let report = revoke_node(&dir, "fe-old", std::slice::from_ref(&nobody))
        .await
        .expect("revoke without servers");
    outputs.push(report.to_string());
    eprintln!("{report}");
    assert!(matches!(report.push, PushOutcome::Failed(_)), "{report}");
    assert!(!report.confirmed());
    let text = report.to_string();
    assert!(
        text.contains("--server") && text.contains("nats-config"),
        "{text}"
    );
    fe_old
        .client
        .flush()
        .await
        .expect("not cut off yet: no server knows");
    // A server restarted with a regenerated config (the new preload) refuses the creds.
    drop(servers.remove(1));
    let config = nats_config(
        &dir,
        &NatsConfig {
            node: "n2".into(),
            routes: routes.clone(),
            port: CLIENT[1],
            cluster_port: ROUTE[1],
            store_dir: tmp.path().join("n2").to_string_lossy().into_owned(),
            monitor_port: Some(MONITOR[1]),
            host: "127.0.0.1".into(),
        },
    )
    .expect("nats config");
    let work = tmp.path().to_path_buf();
    let n2 = tokio::task::spawn_blocking(move || {
        let mut n2 = NatsServer::start("n2", &config, &work, CLIENT[1], MONITOR[1]);
        n2.wait_healthy(Duration::from_secs(60));
        n2
    })
    .await
    .expect("restart n2");
    servers.insert(1, n2);
    let e = connect(&fe_old_creds, "fe-old", &url(1))
        .await
        .err()
        .expect("n2 restarted with the new preload refuses the revoked creds");
    assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation, "{e}");
    // Revoking again with a server only pushes; then the connection on n1 is cut off.
    let report = revoke_node(&dir, "fe-old", &[url(0), url(2)])
        .await
        .expect("push again");
    outputs.push(report.to_string());
    eprintln!("{report}");
    assert!(!report.newly_revoked);
    assert!(report.confirmed(), "{report}");
    let seen = expect_event(&mut fe_old, "the connection closed", |e| {
        matches!(e, Event::Disconnected)
    })
    .await;
    assert!(
        seen.iter()
            .any(|e| server_error_contains(e, "User Authentication Revoked")),
        "{seen:?}"
    );
    drop(fe_old);

    // Creds of another operator (another `init`) are refused.
    let other = tmp.path().join("other");
    outputs.push(init(&other).expect("init other").to_string());
    outputs.push(
        add_node(&other, "rpc-1", Role::Rpc)
            .expect("add")
            .to_string(),
    );
    let e = connect(&other.join("rpc-1.creds"), "rpc-1", &url(0))
        .await
        .err()
        .expect("a foreign operator's creds are refused");
    assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation, "{e}");

    // A revoked name stays revoked, and the record says so.
    assert!(matches!(
        add_node(&dir, "rpc-old", Role::Rpc),
        Err(ClusterError::Conflict(_))
    ));
    let info = read(&dir).expect("read");
    assert_eq!(info.revoked.len(), 2);
    assert_eq!(info.nodes.len(), 3);
    assert_private(&dir);

    // No seed in anything a command returned, nor in the servers' logs.
    let mut all_seeds = seeds;
    all_seeds.extend(seeds_in(&other));
    assert!(all_seeds.len() >= 11, "{}", all_seeds.len());
    let logs: Vec<String> = servers.iter().map(NatsServer::log).collect();
    for text in outputs.iter().chain(&logs) {
        for s in &all_seeds {
            assert!(!text.contains(s.as_str()), "a seed was printed:\n{text}");
        }
    }
}
