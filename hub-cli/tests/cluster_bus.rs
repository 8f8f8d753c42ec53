//! The cluster bus end to end (SPEC §13, seed 004), with real processes only: nats-servers
//! in operator mode, Redis, `nexus serve` (nexusd) and `nexus mcp serve` (the frontend),
//! each node with its own NATS credentials minted by `nexus hub cluster`.
//!
//! Every nexusd here runs on a Postgres database WITHOUT the change notification triggers
//! and with an identity cache TTL of [`TTL_SECS`]: the database tells nobody, so a refusal
//! of a revoked token within seconds can only have come over the bus (checked first: a
//! revoke no node is told of is still accepted).
//!
//! - [`nats_cluster_carries_revocations_through_a_server_crash`]: a 3-server NATS cluster
//!   in operator mode; `rpc-1`, `rpc-2` and `fe-1` each connect with their own creds, each
//!   with a different server first in its URL list (the NATS client shuffles the list, so
//!   where each one lands is read from the servers' `/connz` and printed). A token revoked
//!   on `rpc-1` is refused by `rpc-2`
//!   ([`SAMPLES`] times, timed from the revoke's answer to `rpc-2`'s first 401); `nexus hub
//!   status` lists the three nodes and the bus; the server `rpc-2` is connected to is
//!   SIGKILLed while clients hammer nexusd and the frontend, and no request fails, `rpc-2`
//!   fails over and still receives revocations; finally `rpc-2`'s credential is revoked
//!   (`nexus hub cluster revoke-node --server`) and only its bus goes down.
//! - [`a_partitioned_node_replays_what_it_missed`]: Redis and NATS, `rpc-2` behind a
//!   [`TcpProxy`] that is cut while tokens are revoked on `rpc-1`; after the reconnect
//!   `rpc-2` refuses them on its first request and its `nexus_bus_replayed_total` grew.
//!
//! The issue asks for revocations to reach another node in under 100 ms; tests never assert
//! wall-clock times on a shared machine, so the figures are printed (run with
//! `--nocapture`) and only "refused long before the TTL" ([`REFUSED_WITHIN`]) is asserted.
//!
//! Ports (fixed, all in 14500–14599): NATS cluster clients 14501–14503, routes
//! 14511–14513, monitoring 14521–14523; rpc-1, rpc-2 and fe-1 of the cluster test
//! 14550–14552; the replay test's Redis 14531 (its proxy 14532), nats-server 14541
//! (monitoring 14542, its proxy 14543) and nexusd 14560–14563. The two tests run one after
//! the other ([`SERIAL`]): both are heavy for a 2-core machine.

use crate::common;

use common::mcp::{ACCEPT, headers, stateless_call_body};
use common::nats::{ClusterPorts, NatsCluster, assert_free};
use common::procs::{Proc, mcp_serve_cmd, run_nexus, serve_cmd, start_frontend, start_nexusd};
use common::redis::metric_sum;
use nexus_bus::testing::{NatsServer, RedisServer, TcpProxy};
use nexus_wire::methods::TokenCreateParams;
use rpc_server::control::Control;
use rpc_server::db::Backend;
use rpc_server::testing::{TEST_SECRET, TestDb};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The identity cache TTL of every nexusd: the backstop a revocation must beat.
const TTL_SECS: &str = "300";
/// Revoke-to-refusal samples of the cluster test.
const SAMPLES: usize = 20;
/// What the issue asks of the slowest sample: printed beside the figures, not asserted.
const ISSUE_BOUND: Duration = Duration::from_millis(100);
/// A refusal later than this did not come from a working bus (the TTL is 60× longer).
const REFUSED_WITHIN: Duration = Duration::from_secs(5);
/// The same after a nats-server crash, while JetStream elects new leaders and notices the
/// dead peer (a publish or a consumer creation may wait out its 5 s timeout first).
const FAILOVER_REFUSED_WITHIN: Duration = Duration::from_secs(30);
/// Bound of a wait for a bus to connect, fail over or be seen disconnected.
const BUS_WAIT: Duration = Duration::from_secs(30);
/// Load before and after the SIGKILL of a nats-server.
const LOAD_BEFORE_KILL: Duration = Duration::from_secs(3);
const LOAD_AFTER_KILL: Duration = Duration::from_secs(7);
/// Clients hammering each target (the frontend, rpc-1, rpc-2) at once.
const CLIENTS_PER_TARGET: usize = 2;
/// Tokens revoked while `rpc-2` is cut off in the replay test.
const MISSED: usize = 5;
/// How long the revocations may take to leave `rpc-1` (a bus publish is acknowledged).
const PUBLISH_WAIT: Duration = Duration::from_secs(10);

const PORTS: ClusterPorts = ClusterPorts {
    client: [14501, 14502, 14503],
    route: [14511, 14512, 14513],
    monitor: [14521, 14522, 14523],
};
const RPC1_PORT: u16 = 14550;
const RPC2_PORT: u16 = 14551;
const FE_PORT: u16 = 14552;

/// One test at a time: each runs a cluster of processes, and a 2-core machine running
/// both at once would time the machine, not the bus.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A plain HTTP client (no environment proxy) whose every exchange is bounded.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// A `nexus serve` on the bus.
struct Rpc {
    name: &'static str,
    base: String,
    proc: Proc,
}

/// Starts `nexus serve` named `name` on `db_url` and 127.0.0.1:`port`, with `bus` (the
/// `NEXUS_BUS_URL`… variables) added; waits until it is ready.
async fn start_rpc(
    name: &'static str,
    db_url: &str,
    port: u16,
    bus: &[(String, String)],
    dir: &Path,
) -> Rpc {
    assert_free(&[port]);
    let mut cmd = serve_cmd(db_url, &dir.join(format!("data-{name}")), port);
    cmd.env("NEXUS_AUTH_CACHE_TTL", TTL_SECS)
        // The load phase and the polling are far above the default tiers.
        .env("NEXUS_RATE_LIMIT_TOKEN", "1000000/s")
        .env("NEXUS_RATE_LIMIT_ADMIN", "1000000/s")
        .env("NEXUS_AUTH_FAILURE_LIMIT", "1000000/s")
        // The bus's errors (a consumer that timed out, a refused credential) are debug
        // lines: in the log a failure message shows.
        .env("NEXUS_LOG_LEVEL", "warn,nexus_bus=debug")
        .envs(bus.iter().map(|(k, v)| (k, v)));
    let (proc, base) = start_nexusd(name, cmd, dir, port).await;
    Rpc { name, base, proc }
}

/// `<base>/health` as JSON.
async fn health(http: &reqwest::Client, base: &str) -> Value {
    let resp = http
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {base}/health: {e}"));
    assert_eq!(resp.status().as_u16(), 200, "{base}/health");
    resp.json().await.expect("health JSON")
}

/// Whether nexusd at `base` says its bus is connected (`/health` `bus.connected`).
async fn rpc_bus_connected(http: &reqwest::Client, base: &str) -> bool {
    let h = health(http, base).await;
    assert!(h["bus"].is_object(), "{base}/health has no bus: {h}");
    h["bus"]["connected"] == true
}

/// Waits (at most [`BUS_WAIT`]) until nexusd `rpc` says its bus is `up`; how long it took.
async fn wait_rpc_bus(http: &reqwest::Client, rpc: &Rpc, up: bool) -> Duration {
    let t = Instant::now();
    loop {
        if rpc_bus_connected(http, &rpc.base).await == up {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < BUS_WAIT,
            "{}: /health never said bus connected={up} within {BUS_WAIT:?}: {}\n{}",
            rpc.name,
            health(http, &rpc.base).await,
            rpc.proc.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sum of every sample of metric `name` (any labels) on `<base>/metrics`.
async fn metric(http: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {base}/metrics: {e}"))
        .text()
        .await
        .expect("metrics text");
    metric_sum(&text, name)
}

/// Waits (at most `within`) until metric `name` of `base` satisfies `ok`; its value then.
async fn wait_metric(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    within: Duration,
    ok: impl Fn(f64) -> bool,
) -> f64 {
    let t = Instant::now();
    loop {
        let v = metric(http, base, name).await;
        if ok(v) {
            return v;
        }
        assert!(
            t.elapsed() < within,
            "{base}: {name} is {v} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A control plane on the test database: mints tokens (and, as [`revoke_untold`], revokes
/// one without telling any node).
fn control(db: &TestDb) -> Control {
    common::control(&db.store)
}

/// Mints token `name` (zone `eng`, read-only; `admin` for the admin API); the raw token.
async fn mint(control: &Control, name: &str, admin: bool) -> String {
    control
        .create_token(TokenCreateParams {
            name: name.to_owned(),
            zones: Some("eng:r".to_owned()),
            admin,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("mint {name}: {e}"))
        .token
}

/// The HTTP status of `whoami` with `token` on nexusd at `base`.
async fn whoami(http: &reqwest::Client, base: &str, token: &str) -> u16 {
    http.post(format!("{base}/api/nfs/whoami"))
        .bearer_auth(token)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "whoami", "params": {}}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("whoami on {base}: {e}"))
        .status()
        .as_u16()
}

/// Uses `token` twice on `rpc`, so that its identity is cached there.
async fn warm(http: &reqwest::Client, rpc: &Rpc, token: &str) {
    for _ in 0..2 {
        assert_eq!(
            whoami(http, &rpc.base, token).await,
            200,
            "{}: warm-up",
            rpc.name
        );
    }
}

/// Revokes token `name` through the admin API of `rpc` (`hub_admin_token_revoke`).
async fn revoke_on(http: &reqwest::Client, rpc: &Rpc, admin: &str, name: &str) {
    let resp = http
        .post(format!("{}/api/nfs/hub_admin_token_revoke", rpc.base))
        .bearer_auth(admin)
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "hub_admin_token_revoke",
                      "params": {"identifier": name}}),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("revoke {name} on {}: {e}", rpc.name));
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(
        status == 200 && body.get("error").is_none(),
        "revoke {name} on {}: {status} {body}",
        rpc.name
    );
}

/// Polls `rpc` with `token` until it answers 401; how long after `since` that was. Fails
/// when it still accepts the token `within` after `since`.
async fn refused(
    http: &reqwest::Client,
    rpc: &Rpc,
    token: &str,
    since: Instant,
    within: Duration,
    what: &str,
) -> Duration {
    loop {
        match whoami(http, &rpc.base, token).await {
            401 => return since.elapsed(),
            200 => {}
            s => panic!("{}: whoami answered {s} ({what})", rpc.name),
        }
        assert!(
            since.elapsed() < within,
            "{what}: {} still accepts the revoked token {within:?} later (identity cache TTL {TTL_SECS} s)\n{}",
            rpc.name,
            rpc.proc.log_text()
        );
    }
}

/// A sample's quantile `q` (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The precondition of every timing here: a revoke that no node is told of (made on the
/// database by a control plane with no bus, the notification triggers gone) is still
/// accepted by `rpc` from its identity cache a while later. Otherwise a refusal would not
/// prove that the bus carried anything.
async fn revoke_untold(http: &reqwest::Client, control: &Control, rpc: &Rpc) {
    let token = mint(control, "untold", false).await;
    warm(http, rpc, &token).await;
    control.revoke_token("untold").await.expect("revoke untold");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        whoami(http, &rpc.base, &token).await,
        200,
        "{} refused a revoke nobody told it of: something besides the bus carries revocations \
         (database notifications?), so these timings would prove nothing",
        rpc.name
    );
}

// ---- the NATS cluster in operator mode ----

/// What one request of the load phase hits.
#[derive(Debug, Clone)]
enum Target {
    /// The frontend's `/mcp`: a stateless `tools/call` of `nexus_whoami`.
    Frontend(String),
    /// nexusd's `whoami` JSON-RPC.
    Nexusd(String),
}

/// Outcomes of one target's requests.
#[derive(Debug, Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    /// The first few failures, described.
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() < 10 {
            f.push(why);
        }
    }
}

/// One request to `target` with `token`: `Err` describes anything but a success.
async fn one_request(http: &reqwest::Client, target: &Target, token: &str) -> Result<(), String> {
    let resp = match target {
        Target::Frontend(url) => {
            let body = stateless_call_body("bus-drill", "nexus_whoami", json!({}));
            let mut req = http
                .post(url)
                .bearer_auth(token)
                .header("accept", ACCEPT)
                .json(&body);
            for (name, value) in headers(&body) {
                req = req.header(name, value);
            }
            req.send().await
        }
        Target::Nexusd(base) => {
            http.post(format!("{base}/api/nfs/whoami"))
                .bearer_auth(token)
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "whoami", "params": {}}))
                .send()
                .await
        }
    }
    .map_err(|e| format!("{e}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| format!("body: {e}"))?;
    if status == 200 && text.contains("\"result\"") && !text.contains("\"isError\":true") {
        Ok(())
    } else {
        Err(format!(
            "{status}: {}",
            text.chars().take(300).collect::<String>()
        ))
    }
}

/// Sends requests to `target` one after the other until `stop`; counts every outcome.
async fn hammer(target: Target, token: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let http = http();
    while !stop.load(Ordering::Acquire) {
        match one_request(&http, &target, &token).await {
            Ok(()) => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tally.fail(format!("{target:?}: {e}")),
        }
    }
}

/// `nexus hub status` (`--json` when `json`) as rpc-1 runs it on the hub host: the
/// database, and rpc-1's bus settings. Must succeed; its stdout.
async fn hub_status(cluster: &NatsCluster, db_url: &str, json: bool) -> String {
    let mut env = vec![
        ("NEXUS_DATABASE_URL".to_owned(), db_url.to_owned()),
        ("NEXUS_API_KEY_SECRET".to_owned(), TEST_SECRET.to_owned()),
    ];
    env.extend(cluster.node_env("rpc-1", 0));
    let mut args = vec!["hub", "status"];
    if json {
        args.push("--json");
    }
    let (code, out, err) = run_nexus(&args, &env).await;
    assert_eq!(code, 0, "nexus hub status:\nstdout: {out}\nstderr: {err}");
    out
}

/// The nodes of a status answer as (name, role, version), sorted.
fn status_nodes(status: &Value) -> Vec<(String, String, String)> {
    let mut nodes: Vec<(String, String, String)> = status["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| {
                    (
                        n["name"].as_str().unwrap_or_default().to_owned(),
                        n["role"].as_str().unwrap_or_default().to_owned(),
                        n["version"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    nodes.sort();
    nodes
}

fn expected_nodes() -> Vec<(String, String, String)> {
    let v = env!("CARGO_PKG_VERSION").to_owned();
    vec![
        ("fe-1".to_owned(), "frontend".to_owned(), v.clone()),
        ("rpc-1".to_owned(), "rpc".to_owned(), v.clone()),
        ("rpc-2".to_owned(), "rpc".to_owned(), v),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_cluster_carries_revocations_through_a_server_crash() {
    let _serial = SERIAL.lock().await;
    let t0 = Instant::now();
    let http = http();
    let mut cluster = NatsCluster::start(
        PORTS,
        &[("rpc-1", "rpc"), ("rpc-2", "rpc"), ("fe-1", "frontend")],
    )
    .await;
    eprintln!(
        "cluster minted with the CLI and 3 nats-servers healthy in {:?}",
        t0.elapsed()
    );

    let db = TestDb::new(Backend::Postgres).await;
    db.without_notify_triggers().await;
    let control = control(&db);
    control.create_zone("eng").await.expect("zone");
    let admin = mint(&control, "ops", true).await;
    let dir = tempfile::tempdir().expect("tempdir");

    // Each node with its own creds, each to a different server first.
    let rpc1 = start_rpc(
        "rpc-1",
        &db.url,
        RPC1_PORT,
        &cluster.node_env("rpc-1", 0),
        dir.path(),
    )
    .await;
    let rpc2 = start_rpc(
        "rpc-2",
        &db.url,
        RPC2_PORT,
        &cluster.node_env("rpc-2", 1),
        dir.path(),
    )
    .await;
    assert_free(&[FE_PORT]);
    let mut cmd = mcp_serve_cmd(&rpc1.base, FE_PORT);
    cmd.env("NEXUS_AUDIT_STDOUT", "false")
        .envs(cluster.node_env("fe-1", 2));
    let (fe, fe_base) = start_frontend("fe-1", cmd, dir.path(), FE_PORT).await;
    for rpc in [&rpc1, &rpc2] {
        wait_rpc_bus(&http, rpc, true).await;
    }
    let t = Instant::now();
    while health(&http, &fe_base).await["bus"] != "ok" {
        assert!(
            t.elapsed() < BUS_WAIT,
            "fe-1: /health never said bus ok: {}\n{}",
            health(&http, &fe_base).await,
            fe.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut placement = Vec::new();
    for node in ["rpc-1", "rpc-2", "fe-1"] {
        placement.push((node, cluster.connected_to(node).await));
    }
    eprintln!(
        "nodes up in {:?}; connected to server index (0 = n1): {placement:?} (URL lists start at n1, n2, n3)",
        t0.elapsed()
    );

    // The premise: nothing but the bus tells rpc-2 of a revoke.
    revoke_untold(&http, &control, &rpc2).await;

    // 1. Revoked on rpc-1 → refused by rpc-2, timed SAMPLES times.
    let mut lags = Vec::new();
    for i in 0..SAMPLES {
        let name = format!("agent-{i}");
        let token = mint(&control, &name, false).await;
        warm(&http, &rpc2, &token).await;
        revoke_on(&http, &rpc1, &admin, &name).await;
        let returned = Instant::now();
        lags.push(
            refused(
                &http,
                &rpc2,
                &token,
                returned,
                REFUSED_WITHIN,
                &format!("sample {i}"),
            )
            .await,
        );
    }
    let mut sorted = lags.clone();
    sorted.sort();
    let (p50, max) = (quantile(&sorted, 0.5), quantile(&sorted, 1.0));
    eprintln!(
        "NATS cluster, revoke on rpc-1 answered → first 401 on rpc-2, {SAMPLES} samples: \
         p50 {p50:?}, p90 {:?}, max {max:?} (the issue asks for a max under {ISSUE_BOUND:?}: {}); all: {lags:?}",
        quantile(&sorted, 0.9),
        if max < ISSUE_BOUND { "met" } else { "NOT met" }
    );
    let lag_hist = metric(&http, &rpc2.base, "nexus_bus_lag_seconds_count").await;
    assert!(
        lag_hist >= SAMPLES as f64,
        "rpc-2 counted {lag_hist} bus deliveries, fewer than the {SAMPLES} revokes"
    );

    // The CLI with rpc-1's bus settings (its creds, its node name) reaches rpc-2 too, and
    // says that the bus, not the database, carried it.
    let token = mint(&control, "via-cli", false).await;
    warm(&http, &rpc2, &token).await;
    let mut env = vec![
        ("NEXUS_DATABASE_URL".to_owned(), db.url.clone()),
        ("NEXUS_API_KEY_SECRET".to_owned(), TEST_SECRET.to_owned()),
    ];
    env.extend(cluster.node_env("rpc-1", 0));
    let (code, out, err) = run_nexus(&["hub", "token", "revoke", "via-cli"], &env).await;
    let exited = Instant::now();
    assert_eq!(
        code, 0,
        "nexus hub token revoke:\nstdout: {out}\nstderr: {err}"
    );
    assert!(
        err.contains("through the cluster bus"),
        "the CLI names the bus as the path that worked: {err}"
    );
    let cli_lag = refused(&http, &rpc2, &token, exited, REFUSED_WITHIN, "CLI revoke").await;
    eprintln!("CLI revoke (rpc-1's creds) exit → first 401 on rpc-2: {cli_lag:?}");

    // 2. `nexus hub status` lists the three nodes with roles and versions, and the bus.
    let t = Instant::now();
    let status: Value = loop {
        let out = hub_status(&cluster, &db.url, true).await;
        let v: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("hub status --json is not JSON ({e}): {out}"));
        if status_nodes(&v) == expected_nodes() || t.elapsed() > BUS_WAIT {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(status_nodes(&status), expected_nodes(), "{status}");
    assert_eq!(status["bus"]["backend"], "nats", "{status}");
    assert_eq!(status["bus"]["connected"], true, "{status}");
    for n in status["nodes"].as_array().expect("nodes") {
        assert!(
            n["last_heartbeat"].as_str().is_some_and(|s| !s.is_empty()),
            "{n}"
        );
    }
    let text = hub_status(&cluster, &db.url, false).await;
    for want in [
        "bus: ok (nats)".to_owned(),
        "nodes: 3".to_owned(),
        format!("fe-1  frontend  {}", env!("CARGO_PKG_VERSION")),
        format!("rpc-1  rpc  {}", env!("CARGO_PKG_VERSION")),
        format!("rpc-2  rpc  {}", env!("CARGO_PKG_VERSION")),
    ] {
        assert!(text.contains(&want), "hub status lacks {want:?}:\n{text}");
    }
    // The same through the status RPC of the other node.
    let resp: Value = http
        .post(format!("{}/api/nfs/hub_admin_status", rpc2.base))
        .bearer_auth(&admin)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "hub_admin_status", "params": {}}))
        .send()
        .await
        .expect("hub_admin_status")
        .json()
        .await
        .expect("status JSON");
    assert_eq!(status_nodes(&resp["result"]), expected_nodes(), "{resp}");
    assert_eq!(resp["result"]["bus"]["connected"], true, "{resp}");
    eprintln!("hub status:\n{text}");

    // 3. SIGKILL the server rpc-2 is connected to while clients hammer the frontend and
    // both nexusd: no request fails, rpc-2 fails over, and revocations still arrive.
    let on = cluster.connected_to("rpc-2").await;
    assert_eq!(on.len(), 1, "rpc-2's connections: {on:?}");
    let victim = on[0];
    let load_token = mint(&control, "load", false).await;
    let after_kill = mint(&control, "after-kill", false).await;
    warm(&http, &rpc2, &after_kill).await;
    let reconnects_before = metric(&http, &rpc2.base, "nexus_bus_reconnects_total").await;
    let stop = Arc::new(AtomicBool::new(false));
    let targets = [
        ("fe-1", Target::Frontend(format!("{fe_base}/mcp"))),
        ("rpc-1", Target::Nexusd(rpc1.base.clone())),
        ("rpc-2", Target::Nexusd(rpc2.base.clone())),
    ];
    let mut tallies = Vec::new();
    let mut workers = Vec::new();
    for (label, target) in &targets {
        let tally = Arc::new(Tally::default());
        tallies.push((*label, tally.clone()));
        for _ in 0..CLIENTS_PER_TARGET {
            workers.push(tokio::spawn(hammer(
                target.clone(),
                load_token.clone(),
                stop.clone(),
                tally.clone(),
            )));
        }
    }
    tokio::time::sleep(LOAD_BEFORE_KILL).await;
    let leaders = cluster.jetstream_leaders().await;
    cluster.kill(victim).await;
    let killed = Instant::now();
    eprintln!(
        "SIGKILLed nats-server n{} (rpc-2's server); JetStream leaders before: {leaders}",
        victim + 1
    );
    let reconnects = wait_metric(
        &http,
        &rpc2.base,
        "nexus_bus_reconnects_total",
        BUS_WAIT,
        |v| v > reconnects_before,
    )
    .await;
    let reconnected = killed.elapsed();
    wait_rpc_bus(&http, &rpc2, true).await;
    let now_on = cluster.connected_to("rpc-2").await;
    assert!(
        now_on.len() == 1 && now_on[0] != victim,
        "rpc-2 is connected to {now_on:?} after n{} died",
        victim + 1
    );
    revoke_on(&http, &rpc1, &admin, "after-kill").await;
    let returned = Instant::now();
    // JetStream may still be electing leaders and noticing the dead peer: allowed longer,
    // still far below the TTL.
    let kill_lag = refused(
        &http,
        &rpc2,
        &after_kill,
        returned,
        FAILOVER_REFUSED_WITHIN,
        "revoke after the kill",
    )
    .await;
    if kill_lag > ISSUE_BOUND {
        // What the bus clients said meanwhile (a timed-out publish or consumer).
        for rpc in [&rpc1, &rpc2] {
            let log = rpc.proc.log_text();
            let lines: Vec<&str> = log.lines().filter(|l| l.contains("nexus_bus")).collect();
            eprintln!("{} bus log:\n{}", rpc.name, lines.join("\n"));
        }
    }
    let left = LOAD_AFTER_KILL.saturating_sub(killed.elapsed());
    tokio::time::sleep(left).await;
    stop.store(true, Ordering::Release);
    for w in workers {
        w.await.expect("load client");
    }
    let mut failed_total = 0;
    let mut summary = Vec::new();
    for (label, tally) in &tallies {
        let (ok, failed) = (
            tally.ok.load(Ordering::Relaxed),
            tally.failed.load(Ordering::Relaxed),
        );
        failed_total += failed;
        summary.push(format!("{label}: {ok} ok, {failed} failed"));
    }
    eprintln!(
        "under the SIGKILL of n{}: {}; rpc-2 reconnected (nexus_bus_reconnects_total {reconnects_before} → {reconnects}) \
         {reconnected:?} after the kill, now on n{}; a revoke on rpc-1 after the kill → refused by rpc-2 in {kill_lag:?}",
        victim + 1,
        summary.join(", "),
        now_on[0] + 1
    );
    let failures: Vec<String> = tallies
        .iter()
        .flat_map(|(_, t)| t.failures.lock().unwrap_or_else(|p| p.into_inner()).clone())
        .collect();
    assert_eq!(
        failed_total,
        0,
        "requests failed while a nats-server died: {}; first failures: {failures:#?}",
        summary.join(", ")
    );
    for (label, tally) in &tallies {
        assert!(
            tally.ok.load(Ordering::Relaxed) > 0,
            "{label} served no request"
        );
    }
    assert_eq!(
        health(&http, &fe_base).await["bus"],
        "ok",
        "fe-1's bus after the kill"
    );
    assert!(rpc_bus_connected(&http, &rpc1.base).await, "rpc-1's bus");

    // 4. Least privilege: rpc-2's credential revoked and pushed to the cluster: rpc-2's
    // bus goes down, the others stay up.
    let via = (0..3)
        .find(|i| cluster.is_running(*i))
        .expect("a running server");
    let (code, out, err) = cluster.revoke_node("rpc-2", via).await;
    assert_eq!(code, 0, "revoke-node rpc-2:\nstdout: {out}\nstderr: {err}");
    for i in (0..3).filter(|i| cluster.is_running(*i)) {
        assert!(
            out.contains(&format!("server n{}: jwt updated", i + 1)),
            "{out}"
        );
    }
    let cut_off = wait_rpc_bus(&http, &rpc2, false).await;
    assert_eq!(
        metric(&http, &rpc2.base, "nexus_bus_connected").await,
        0.0,
        "rpc-2's nexus_bus_connected"
    );
    let why = health(&http, &rpc2.base).await["bus"]["last_error"].clone();
    // Still down a moment later (it keeps retrying and is refused), and the others are up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !rpc_bus_connected(&http, &rpc2.base).await,
        "rpc-2 reconnected with revoked creds"
    );
    assert!(
        rpc_bus_connected(&http, &rpc1.base).await,
        "rpc-1's bus went down with rpc-2's credential"
    );
    assert_eq!(metric(&http, &rpc1.base, "nexus_bus_connected").await, 1.0);
    assert_eq!(
        health(&http, &fe_base).await["bus"],
        "ok",
        "fe-1's bus went down with rpc-2's credential"
    );
    eprintln!(
        "revoke-node rpc-2 → rpc-2's bus down in {cut_off:?} (last error: {why}); rpc-1 and fe-1 still connected; \
         whole test {:?}",
        t0.elapsed()
    );
    drop(fe);
}

// ---- replay after a partition, Redis and NATS ----

/// Which bus the replay runs on.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Redis,
    Nats,
}

/// A bus server with a proxy in front of it for `rpc-2`.
struct PartitionableBus {
    /// `NEXUS_BUS_URL` of rpc-1 (straight to the server) and rpc-2 (through the proxy).
    direct: String,
    proxied: String,
    proxy: TcpProxy,
    _redis: Option<RedisServer>,
    _nats: Option<NatsServer>,
}

impl PartitionableBus {
    async fn start(kind: Kind) -> Self {
        match kind {
            Kind::Redis => {
                assert_free(&[14531, 14532]);
                let redis = RedisServer::start(14531).await;
                let proxy = TcpProxy::start(14532, redis.port()).await;
                Self {
                    direct: redis.url(),
                    proxied: format!("redis://127.0.0.1:{}", proxy.port()),
                    proxy,
                    _redis: Some(redis),
                    _nats: None,
                }
            }
            Kind::Nats => {
                assert_free(&[14541, 14542, 14543]);
                // A single server: no cluster, so it advertises no other address through
                // which rpc-2 could get around the proxy.
                let nats = NatsServer::start(14541, 14542, "").await;
                let proxy = TcpProxy::start(14543, nats.port()).await;
                Self {
                    direct: nats.url(),
                    proxied: format!("nats://127.0.0.1:{}", proxy.port()),
                    proxy,
                    _redis: None,
                    _nats: Some(nats),
                }
            }
        }
    }
}

fn bus_env(url: &str, node: &str) -> Vec<(String, String)> {
    vec![
        ("NEXUS_BUS_URL".to_owned(), url.to_owned()),
        ("NEXUS_NODE_NAME".to_owned(), node.to_owned()),
    ]
}

/// What one backend's replay showed.
#[derive(Debug)]
struct Replay {
    kind: Kind,
    /// rpc-2's answer to a revoked token while cut off (from its cache: it cannot know).
    while_cut: u16,
    /// From restoring the connection to rpc-2's `/health` saying the bus is back.
    reconnect: Duration,
    /// rpc-2's first answer to each revoked token after that.
    first_answers: Vec<u16>,
    /// When some first answer was 200: how long after the bus was back all were refused.
    all_refused_after: Option<Duration>,
    replayed: f64,
    gaps: f64,
}

async fn replay(kind: Kind, rpc_ports: (u16, u16)) -> Replay {
    let http = http();
    let bus = PartitionableBus::start(kind).await;
    let db = TestDb::new(Backend::Postgres).await;
    db.without_notify_triggers().await;
    let control = control(&db);
    control.create_zone("eng").await.expect("zone");
    let admin = mint(&control, "ops", true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rpc1 = start_rpc(
        "rpc-1",
        &db.url,
        rpc_ports.0,
        &bus_env(&bus.direct, "rpc-1"),
        dir.path(),
    )
    .await;
    let rpc2 = start_rpc(
        "rpc-2",
        &db.url,
        rpc_ports.1,
        &bus_env(&bus.proxied, "rpc-2"),
        dir.path(),
    )
    .await;
    for rpc in [&rpc1, &rpc2] {
        wait_rpc_bus(&http, rpc, true).await;
    }
    revoke_untold(&http, &control, &rpc2).await;
    // rpc-2's subscription is live (it holds a position to replay from).
    let token = mint(&control, "live", false).await;
    warm(&http, &rpc2, &token).await;
    revoke_on(&http, &rpc1, &admin, "live").await;
    refused(
        &http,
        &rpc2,
        &token,
        Instant::now(),
        REFUSED_WITHIN,
        &format!("{kind:?}: a revoke before the partition"),
    )
    .await;

    let mut tokens = Vec::new();
    for i in 0..MISSED {
        let t = mint(&control, &format!("missed-{i}"), false).await;
        warm(&http, &rpc2, &t).await;
        tokens.push(t);
    }
    let replayed_before = metric(&http, &rpc2.base, "nexus_bus_replayed_total").await;
    let gaps_before = metric(&http, &rpc2.base, "nexus_bus_gaps_total").await;
    let published_before = metric(
        &http,
        &rpc1.base,
        "nexus_bus_published_total{outcome=\"ok\"}",
    )
    .await;

    bus.proxy.cut();
    wait_rpc_bus(&http, &rpc2, false).await;
    for i in 0..MISSED {
        revoke_on(&http, &rpc1, &admin, &format!("missed-{i}")).await;
    }
    // Every revocation left rpc-1 (the bus acknowledged it) while rpc-2 was away.
    wait_metric(
        &http,
        &rpc1.base,
        "nexus_bus_published_total{outcome=\"ok\"}",
        PUBLISH_WAIT,
        |v| v >= published_before + MISSED as f64,
    )
    .await;
    assert_eq!(
        metric(
            &http,
            &rpc1.base,
            "nexus_bus_published_total{outcome=\"failed\"}"
        )
        .await,
        0.0,
        "{kind:?}: rpc-1 failed to publish"
    );
    let while_cut = whoami(&http, &rpc2.base, &tokens[0]).await;
    assert!(
        !rpc_bus_connected(&http, &rpc2.base).await,
        "{kind:?}: rpc-2 found a way around the cut proxy"
    );

    bus.proxy.restore();
    let reconnect = wait_rpc_bus(&http, &rpc2, true).await;
    let back = Instant::now();
    let mut first_answers = Vec::new();
    for t in &tokens {
        first_answers.push(whoami(&http, &rpc2.base, t).await);
    }
    let all_refused_after = if first_answers.iter().all(|s| *s == 401) {
        None
    } else {
        // How late the replay came, for the report.
        for (i, t) in tokens.iter().enumerate() {
            refused(
                &http,
                &rpc2,
                t,
                back,
                REFUSED_WITHIN * 2,
                &format!("{kind:?}: missed-{i} after the reconnect"),
            )
            .await;
        }
        Some(back.elapsed())
    };
    let replayed = wait_metric(
        &http,
        &rpc2.base,
        "nexus_bus_replayed_total",
        REFUSED_WITHIN,
        |v| v >= replayed_before + MISSED as f64,
    )
    .await
        - replayed_before;
    let gaps = metric(&http, &rpc2.base, "nexus_bus_gaps_total").await - gaps_before;
    Replay {
        kind,
        while_cut,
        reconnect,
        first_answers,
        all_refused_after,
        replayed,
        gaps,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_node_replays_what_it_missed() {
    let _serial = SERIAL.lock().await;
    let t0 = Instant::now();
    let mut reports = Vec::new();
    for (kind, ports) in [(Kind::Redis, (14560, 14561)), (Kind::Nats, (14562, 14563))] {
        let r = replay(kind, ports).await;
        eprintln!(
            "{kind:?}: rpc-2 cut off while {MISSED} tokens were revoked on rpc-1; while cut it answered {} \
             to one of them; bus back on /health {:?} after the restore; first answers then: {:?}{}; \
             nexus_bus_replayed_total +{}, nexus_bus_gaps_total +{}",
            r.while_cut,
            r.reconnect,
            r.first_answers,
            r.all_refused_after
                .map(|d| format!(" (all refused {d:?} after the bus was back)"))
                .unwrap_or_default(),
            r.replayed,
            r.gaps
        );
        reports.push(r);
    }
    eprintln!("whole test {:?}", t0.elapsed());
    for r in &reports {
        assert!(
            r.first_answers.iter().all(|s| *s == 401),
            "{:?}: rpc-2 accepted revoked tokens on its first request after its bus was back \
             (/health said connected before the missed revocations were applied): {r:?}",
            r.kind
        );
        assert!(r.replayed >= MISSED as f64, "{r:?}");
    }
}
