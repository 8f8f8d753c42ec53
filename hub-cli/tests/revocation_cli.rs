//! `nexus hub token revoke` as an operator runs it: the real binary, with the environment
//! it needs, against two real nexusd processes (`nexus serve`, identity cache TTL 60 s) on
//! one database. Each server refuses the revoked token well before the TTL, in every
//! deployment shape: Postgres without Redis (the database's NOTIFY), Redis alone (a
//! database without the notification triggers), the embedded SQLite hub after
//! `source admin.env` (the change log nexusd polls). When propagation cannot be confirmed
//! the CLI says so and exits 3, and the revoke stands.
//!
//! Timing: a sample runs from the CLI process exiting to the first 401 seen by a client
//! polling the server. The documented bound is [`BOUND`]; see [`assert_bound`] for how it
//! is checked without flaking on a shared machine.

use crate::common;
use crate::own_redis;

use common::procs::{HubUp, Proc, free_port, parse_admin_env, run_nexus, serve_cmd, start_nexusd};
use common::whoami_status;
use own_redis::OwnRedis;
use rpc_server::control::Control;
use rpc_server::db::Backend;
use rpc_server::testing::{TEST_SECRET, TestDb, wait_health_redis};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// What docs/OPERATIONS.md promises: a revoke reaches every running server within this.
const BOUND: Duration = Duration::from_millis(100);
/// No sample may take this long: 10× [`BOUND`], still 60× below the cache TTL, so only a
/// path that does not work (the TTL backstop) can reach it.
const HARD: Duration = Duration::from_secs(1);
/// Samples per deployment shape.
const SAMPLES: usize = 20;
/// The identity cache TTL of every server here: the backstop the revoke must beat.
const TTL_SECS: &str = "60";

/// The bound is the behaviour; the margin is statistical, not a longer bound. Every
/// sample must beat [`HARD`], and the median must beat [`BOUND`]: expected lags are a
/// poll round trip (Postgres, Redis) or one 25 ms SQLite poll, at least 3× under the
/// bound, so up to half the samples are left to a busy two-core runner that descheduled
/// the poller (seen: one sample in ten over 100 ms at a load average of 6.5).
fn assert_bound(shape: &str, lags: &mut [Duration]) {
    lags.sort();
    let p = |q: f64| lags[((lags.len() as f64 * q).ceil() as usize).clamp(1, lags.len()) - 1];
    eprintln!(
        "{shape}: {} samples, CLI exit → first 401: p50 {:?}, p90 {:?}, max {:?}",
        lags.len(),
        p(0.5),
        p(0.9),
        p(1.0)
    );
    assert!(p(1.0) < HARD, "{shape}: a revoke took {:?}", p(1.0));
    assert!(
        p(0.5) < BOUND,
        "{shape}: the median {:?} is over the {BOUND:?} bound: {lags:?}",
        p(0.5)
    );
}

/// A `nexus serve` process.
struct Server {
    base: String,
    _proc: Proc,
}

/// Starts `nexus serve` on `db_url` with its own data dir, Redis at `redis` if any
/// (not waited for: see [`wait_redis_ok`]).
async fn serve(name: &'static str, db_url: &str, redis: Option<&str>, dir: &Path) -> Server {
    let port = free_port();
    let data = dir.join(format!("data-{name}"));
    let mut cmd = serve_cmd(db_url, &data, port);
    cmd.env("NEXUS_AUTH_CACHE_TTL", TTL_SECS);
    if let Some(r) = redis {
        cmd.env("NEXUS_REDIS_URL", r);
    }
    let (p, base) = start_nexusd(name, cmd, dir, port).await;
    Server { base, _proc: p }
}

/// Waits until the server at `base` is subscribed to Redis.
async fn wait_redis_ok(base: &str) {
    wait_health_redis(base, "ok", Duration::from_secs(30)).await;
}

/// Uses the token twice on every server, so that each has it cached.
async fn warm(servers: &[Server], token: &str) {
    for s in servers {
        for _ in 0..2 {
            assert_eq!(
                whoami_status(&s.base, token).await,
                200,
                "{}: warm-up",
                s.base
            );
        }
    }
}

/// Polls `base` until it refuses `token`; how long after `since` that was.
async fn refused(base: &str, token: &str, since: Instant) -> Duration {
    loop {
        match whoami_status(base, token).await {
            401 => return since.elapsed(),
            200 => {}
            s => panic!("{base}: whoami answered {s}"),
        }
        assert!(
            since.elapsed() < HARD,
            "{base} still accepts a revoked token {HARD:?} after the CLI returned (cache TTL {TTL_SECS} s)"
        );
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Revokes `name` with the binary, then times every server's first refusal; returns the
/// slowest server's lag and the CLI's stderr.
async fn revoke_and_time(
    servers: &[Server],
    name: &str,
    token: &str,
    cli_env: &[(String, String)],
    want_code: i32,
) -> (Duration, String) {
    let (code, out, err) = run_nexus(&["hub", "token", "revoke", name], cli_env).await;
    let exited = Instant::now();
    assert_eq!(code, want_code, "revoke {name}: stdout {out}\nstderr {err}");
    assert!(out.contains("revoked"), "revoke {name}: stdout {out}");
    let lags =
        futures_util::future::join_all(servers.iter().map(|s| refused(&s.base, token, exited)))
            .await;
    (lags.into_iter().max().unwrap_or_default(), err)
}

/// A fresh Postgres database with zone `eng`, and a control plane to mint on it.
async fn postgres() -> (TestDb, Control) {
    let db = TestDb::new(Backend::Postgres).await;
    let control = common::control(&db.store);
    control.create_zone("eng").await.expect("zone");
    (db, control)
}

async fn mint(control: &Control, name: &str) -> String {
    common::mint(control, name, "eng:r").await
}

/// Samples [`SAMPLES`] revokes against `servers`; every CLI run must exit `want_code`.
async fn sample_revokes(
    shape: &str,
    servers: &[Server],
    control: &Control,
    cli_env: &[(String, String)],
) -> Vec<String> {
    let mut lags = Vec::new();
    let mut stderrs = Vec::new();
    for i in 0..SAMPLES {
        let name = format!("agent-{i}");
        let token = mint(control, &name).await;
        warm(servers, &token).await;
        let (lag, err) = revoke_and_time(servers, &name, &token, cli_env, 0).await;
        lags.push(lag);
        stderrs.push(err);
    }
    assert_bound(shape, &mut lags);
    stderrs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_without_redis_every_server_refuses_a_cli_revoke() {
    let (db, control) = postgres().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let servers = [
        serve("nexusd-a", &db.url, None, dir.path()).await,
        serve("nexusd-b", &db.url, None, dir.path()).await,
    ];
    let cli = env(&[
        ("NEXUS_DATABASE_URL", &db.url),
        ("NEXUS_API_KEY_SECRET", TEST_SECRET),
    ]);
    for err in sample_revokes("postgres, no redis", &servers, &control, &cli).await {
        assert!(err.trim().is_empty(), "a confirmed revoke warns: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_alone_carries_a_cli_revoke_to_every_server() {
    let (db, control) = postgres().await;
    db.without_notify_triggers().await;
    let redis = OwnRedis::start().await;
    let url = redis.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let servers = [
        serve("nexusd-a", &db.url, Some(&url), dir.path()).await,
        serve("nexusd-b", &db.url, Some(&url), dir.path()).await,
    ];
    for s in &servers {
        wait_redis_ok(&s.base).await;
    }
    let cli = env(&[
        ("NEXUS_DATABASE_URL", &db.url),
        ("NEXUS_API_KEY_SECRET", TEST_SECRET),
        ("NEXUS_REDIS_URL", &url),
    ]);
    for err in sample_revokes("redis, no database notifications", &servers, &control, &cli).await {
        assert!(
            err.contains("no change notification triggers")
                && err.contains("through the cluster bus"),
            "the CLI names the path that worked and the one that did not: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_the_cli_says_so_and_the_database_still_tells_every_server() {
    let (db, control) = postgres().await;
    let dead = format!("redis://127.0.0.1:{}/", own_redis::free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let servers = [
        serve("nexusd-a", &db.url, Some(&dead), dir.path()).await,
        serve("nexusd-b", &db.url, Some(&dead), dir.path()).await,
    ];
    let token = mint(&control, "roaming").await;
    warm(&servers, &token).await;
    let cli = env(&[
        ("NEXUS_DATABASE_URL", &db.url),
        ("NEXUS_API_KEY_SECRET", TEST_SECRET),
        ("NEXUS_REDIS_URL", &dead),
    ]);
    let (lag, err) = revoke_and_time(&servers, "roaming", &token, &cli, 0).await;
    eprintln!("redis down: refused {lag:?} after the CLI returned");
    assert!(
        err.contains("the cluster bus: messages were still waiting for the bus")
            && err.contains("through the database"),
        "the CLI says plainly that Redis failed and what carried the revoke: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_nothing_confirms_propagation_the_cli_exits_3_and_the_revoke_stands() {
    let (db, control) = postgres().await;
    db.without_notify_triggers().await;
    let dead = format!("redis://127.0.0.1:{}/", own_redis::free_port());
    let token = mint(&control, "stranded").await;
    let cli = env(&[
        ("NEXUS_DATABASE_URL", &db.url),
        ("NEXUS_API_KEY_SECRET", TEST_SECRET),
        ("NEXUS_REDIS_URL", &dead),
    ]);
    let (code, out, err) = run_nexus(&["hub", "token", "revoke", "stranded"], &cli).await;
    assert_eq!(code, 3, "stdout {out}\nstderr {err}");
    assert!(out.contains("revoked"), "the result is printed: {out}");
    assert!(
        err.contains("the change is saved")
            && err.contains("could not be confirmed")
            && err.contains("NEXUS_AUTH_CACHE_TTL"),
        "stderr says what happened and what it means: {err}"
    );
    // The revoke itself stands: a server that never cached the token refuses it.
    let dir = tempfile::tempdir().expect("tempdir");
    let fresh = serve("nexusd-fresh", &db.url, None, dir.path()).await;
    assert_eq!(whoami_status(&fresh.base, &token).await, 401);
    let (code, out, _) =
        run_nexus(&["hub", "token", "list", "--show-revoked", "--json"], &cli).await;
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&out).expect("token list JSON");
    let status = list
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "stranded"))
        .map(|t| t["status"].clone());
    assert_eq!(status, Some(json!("revoked")), "{out}");
}

/// `export K='v'` lines of admin.env, as `source` would set them.
fn admin_env(path: &Path) -> Vec<(String, String)> {
    parse_admin_env(&std::fs::read_to_string(path).expect("admin.env"))
}

fn var<'a>(env: &'a [(String, String)], k: &str) -> &'a str {
    env.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{k} in admin.env"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_hub_refuses_a_revoke_made_after_source_admin_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("nexus-data");
    // The embedded hub's identity cache TTL is 60 s, as [`TTL_SECS`].
    let hub = HubUp::start(&data, dir.path()).await;
    let cli = admin_env(&data.join("admin.env"));
    // A second nexusd on the same SQLite file, as a second process on the hub host.
    let db_url = var(&cli, "NEXUS_DATABASE_URL").to_owned();
    let port = free_port();
    let mut cmd = serve_cmd(&db_url, &dir.path().join("data-b"), port);
    // The hub's own secret, not the test one.
    cmd.env("NEXUS_API_KEY_SECRET", var(&cli, "NEXUS_API_KEY_SECRET"))
        .env("NEXUS_AUTH_CACHE_TTL", TTL_SECS);
    let (second, second_base) = start_nexusd("nexusd-b", cmd, dir.path(), port).await;
    let servers = [
        Server {
            base: hub.rpc_base,
            _proc: hub.proc,
        },
        Server {
            base: second_base,
            _proc: second,
        },
    ];

    let mut lags = Vec::new();
    for i in 0..SAMPLES {
        let name = format!("agent-{i}");
        let (code, out, err) = run_nexus(
            &[
                "hub", "token", "create", "--name", &name, "--zone", "default", "--json",
            ],
            &cli,
        )
        .await;
        assert_eq!(code, 0, "token create: {out}\n{err}");
        let created: Value = serde_json::from_str(&out).expect("token JSON");
        let token = created["token"].as_str().expect("token").to_owned();
        warm(&servers, &token).await;
        let (lag, err) = revoke_and_time(&servers, &name, &token, &cli, 0).await;
        assert!(err.trim().is_empty(), "a confirmed revoke warns: {err}");
        lags.push(lag);
    }
    assert_bound("embedded sqlite", &mut lags);
}
