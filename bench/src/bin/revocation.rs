//! Revocation propagation across processes: the release `nexus hub token revoke` (its own
//! process, with the environment an operator gives it) against two running `nexusd`
//! processes on one database, in each deployment shape: Postgres + Redis, Postgres alone
//! (the database's NOTIFY), SQLite (the change log nexusd polls, as in the embedded hub).
//! Then the cluster bus alone (SPEC §13): Postgres with its NOTIFY triggers dropped, so a
//! revoke can only travel over the bus, on
//! - Redis pub/sub: the release before the bus (`nexusd`/`nexus` from
//!   `NEXUS_BASELINE_BIN_DIR`, else target/baseline/release, as the storage benchmark
//!   finds them), which published revocations with PUBLISH/SUBSCRIBE;
//! - the Redis Stream bus of this build (`NEXUS_BUS_URL=redis://…`);
//! - the NATS JetStream bus of this build (a `nats-server` the benchmark starts).
//!
//! A sample runs from the CLI process exiting to the slower server's first 401 seen by a
//! client polling both. Baseline in the same run: one poll's round trip.
//!
//! Usage: revocation [--quick] [--bus-only]   (needs NEXUS_TEST_DATABASE_URL and
//! NEXUS_TEST_REDIS_URL, and `nats-server` on PATH; 100 samples per shape, 20 with --quick)

use nexus_bench::procs::{Proc, binary, free_port};
use nexus_bus::testing::NatsServer;
use nexus_wire::methods::TokenCreateParams;
use rpc_server::auth::{InvalidationBus, TokenHasher};
use rpc_server::control::Control;
use rpc_server::db::{Backend, Store};
use rpc_server::testing::{TEST_SECRET, TestDb, empty_postgres_database, redis_url, test_secret};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// No sample may take longer: the revoke did not propagate (the cache TTL is 60 s).
const GIVE_UP: Duration = Duration::from_secs(5);

/// How a shape's tokens are minted: by this build's control plane, or (a database the
/// baseline release migrated, whose schema this build's queries may not match) by that
/// release's own CLI.
enum Mint {
    Control(Control),
    Cli(PathBuf),
}

struct Shape {
    name: &'static str,
    db_url: String,
    /// The directory `nexusd` and `nexus` come from.
    bins: PathBuf,
    /// Environment of both servers and of the CLI: Redis, the bus.
    env: Vec<(&'static str, String)>,
    /// Wait until both servers are on the bus (or subscribed) before the first revoke.
    bus: bool,
    mint: Mint,
}

/// Where the baseline release's binaries are (the storage benchmark's rule).
fn baseline_dir() -> PathBuf {
    std::env::var_os("NEXUS_BASELINE_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            binary("nexusd")
                .parent()
                .map(|p| p.join("../baseline/release"))
                .unwrap_or_default()
        })
}

fn nexusd(shape: &Shape, data: &Path) -> (Proc, String) {
    let port = free_port();
    let mut cmd = Command::new(shape.bins.join("nexusd"));
    cmd.env_clear()
        .env("NEXUS_DATABASE_URL", &shape.db_url)
        .env("NEXUS_API_KEY_SECRET", TEST_SECRET)
        .env("NEXUS_DATA_DIR", data)
        .env("NEXUS_HOST", "127.0.0.1")
        .env("NEXUS_PORT", port.to_string())
        .env("NEXUS_AUTH_CACHE_TTL", "60")
        // Polling a revoked token counts as failed authentication: lift that limit here.
        .env("NEXUS_AUTH_FAILURE_LIMIT", "1000000/m")
        .env("NEXUS_LOG_LEVEL", "warn")
        .envs(shape.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    (
        Proc::start("nexusd", cmd, port),
        format!("http://127.0.0.1:{port}"),
    )
}

/// `nexus hub …` of `bins` on `db_url`, to completion; its stdout.
async fn hub_cli(bins: &Path, db_url: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(bins.join("nexus"))
        .env_clear()
        .arg("hub")
        .args(args)
        .env("NEXUS_DATABASE_URL", db_url)
        .env("NEXUS_API_KEY_SECRET", TEST_SECRET)
        .stdin(Stdio::null())
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "nexus hub {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A token for zone `eng`, read-only: (token, key id).
async fn mint(shape: &Shape, name: &str) -> anyhow::Result<(String, String)> {
    match &shape.mint {
        Mint::Control(c) => {
            let t = c
                .create_token(TokenCreateParams {
                    name: name.into(),
                    zones: Some("eng:r".into()),
                    ..Default::default()
                })
                .await?;
            Ok((t.token, t.key_id))
        }
        Mint::Cli(bins) => {
            let out = hub_cli(
                bins,
                &shape.db_url,
                &[
                    "token", "create", "--name", name, "--zone", "eng:r", "--json",
                ],
            )
            .await?;
            let v: serde_json::Value = serde_json::from_str(&out)?;
            match (v["token"].as_str(), v["key_id"].as_str()) {
                (Some(t), Some(k)) => Ok((t.to_owned(), k.to_owned())),
                _ => anyhow::bail!("token create printed no token and key id"),
            }
        }
    }
}

/// Both servers ready to hear a revoke: this build says its bus is connected (which it
/// says once its reader is running), the baseline that its Redis subscriber is.
async fn wait_on_bus(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h: serde_json::Value = client
            .get(format!("{base}/health"))
            .send()
            .await?
            .json()
            .await?;
        let ready = match h.get("bus") {
            Some(b) if !b.is_null() => b["connected"] == true,
            _ => h["redis"] == "ok",
        };
        if ready {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{base} never got on the bus: {h}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
async fn whoami(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<u16> {
    Ok(client
        .post(format!("{base}/api/nfs/whoami"))
        .bearer_auth(token)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "whoami", "params": {}}))
        .send()
        .await?
        .status()
        .as_u16())
}

/// Polls until `base` refuses `token`: (time since `since`, polls accepted meanwhile).
async fn first_refusal(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    since: Instant,
) -> anyhow::Result<(Duration, u32)> {
    let mut accepted = 0;
    loop {
        match whoami(client, base, token).await? {
            401 => return Ok((since.elapsed(), accepted)),
            200 => accepted += 1,
            s => anyhow::bail!("{base}: whoami answered {s}"),
        }
        if since.elapsed() > GIVE_UP {
            anyhow::bail!("{base}: revoked token still accepted after {GIVE_UP:?}");
        }
    }
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn run_shape(shape: &Shape, n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (_a, a) = nexusd(shape, &dir.path().join("a"));
    let (_b, b) = nexusd(shape, &dir.path().join("b"));
    let client = reqwest::Client::builder().no_proxy().build()?;
    if shape.bus {
        // Let both servers subscribe before the first revoke.
        for base in [&a, &b] {
            wait_on_bus(&client, base).await?;
        }
    }

    let (mut lags, mut cli_times, mut rtt) = (Vec::new(), Vec::new(), Vec::new());
    let mut accepted_in_flight = 0u32;
    for i in 0..n {
        let (token, key_id) = mint(shape, &format!("rev{i}")).await?;
        for base in [&a, &b] {
            for _ in 0..2 {
                let s = Instant::now();
                anyhow::ensure!(whoami(&client, base, &token).await? == 200, "warm-up");
                rtt.push(s.elapsed());
            }
        }
        let mut cli = tokio::process::Command::new(shape.bins.join("nexus"));
        cli.env_clear()
            .args(["hub", "token", "revoke", &key_id])
            .env("NEXUS_DATABASE_URL", &shape.db_url)
            .env("NEXUS_API_KEY_SECRET", TEST_SECRET)
            .envs(shape.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        let started = Instant::now();
        let out = cli.output().await?;
        let exited = Instant::now();
        cli_times.push(exited - started);
        anyhow::ensure!(
            out.status.success(),
            "nexus hub token revoke: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (ra, rb) = tokio::join!(
            first_refusal(&client, &a, &token, exited),
            first_refusal(&client, &b, &token, exited)
        );
        let ((la, na), (lb, nb)) = (ra?, rb?);
        lags.push(la.max(lb));
        accepted_in_flight += na + nb;
        // Nothing may be accepted once refused.
        for base in [&a, &b] {
            for _ in 0..5 {
                anyhow::ensure!(
                    whoami(&client, base, &token).await? == 401,
                    "{base}: accepted again after its first refusal"
                );
            }
        }
    }
    lags.sort();
    cli_times.sort();
    rtt.sort();
    let base = pct(&rtt, 0.5);
    println!("{}: {n} revocations, two nexusd processes", shape.name);
    println!("  baseline: one poll round trip, median {:.3} ms", ms(base));
    println!(
        "  CLI exit → first 401 on both: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({:.1}× a poll at p50)",
        ms(pct(&lags, 0.5)),
        ms(pct(&lags, 0.9)),
        ms(pct(&lags, 0.99)),
        ms(pct(&lags, 1.0)),
        ms(pct(&lags, 0.5)) / ms(base)
    );
    println!(
        "  CLI process (start → exit, revoke and confirmation included): p50 {:.1} ms, max {:.1} ms",
        ms(pct(&cli_times, 0.5)),
        ms(pct(&cli_times, 1.0))
    );
    println!(
        "  polls accepted after the CLI exited, before the first 401: {accepted_in_flight}; after it: 0 (asserted, 5 per server per revocation)"
    );
    Ok(())
}

/// A Postgres database of this build's schema, zone `eng` in it, and a control plane on it;
/// without the NOTIFY triggers when `bus_only`.
async fn current_db(bus_only: bool) -> anyhow::Result<(TestDb, Mint)> {
    let db = TestDb::new(Backend::Postgres).await;
    if bus_only {
        db.without_notify_triggers().await;
    }
    let control = Control::new(
        db.store.clone(),
        Arc::new(TokenHasher::new(&test_secret())?),
        InvalidationBus::new(),
        None,
    );
    control.create_zone("eng").await?;
    Ok((db, Mint::Control(control)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = if std::env::args().any(|a| a == "--quick") {
        20
    } else {
        100
    };
    let bus_only = std::env::args().any(|a| a == "--bus-only");
    let current = binary("nexusd")
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let redis = redis_url();
    if !bus_only {
        let (with_redis, with_redis_mint) = current_db(false).await?;
        let (pg_only, pg_only_mint) = current_db(false).await?;
        let lite_dir = tempfile::tempdir()?;
        let lite = format!("sqlite://{}/nexus.db", lite_dir.path().display());
        let store = Store::connect(&lite).await?;
        store.migrate().await?;
        let lite_control = Control::new(
            store,
            Arc::new(TokenHasher::new(&test_secret())?),
            InvalidationBus::new(),
            None,
        );
        lite_control.create_zone("eng").await?;
        for shape in [
            Shape {
                name: "postgres + redis",
                db_url: with_redis.url.clone(),
                bins: current.clone(),
                env: vec![("NEXUS_REDIS_URL", redis.clone())],
                bus: true,
                mint: with_redis_mint,
            },
            Shape {
                name: "postgres, no redis (NOTIFY)",
                db_url: pg_only.url.clone(),
                bins: current.clone(),
                env: vec![],
                bus: false,
                mint: pg_only_mint,
            },
            Shape {
                name: "sqlite, as the embedded hub (change log polled every 25 ms)",
                db_url: lite,
                bins: current.clone(),
                env: vec![],
                bus: false,
                mint: Mint::Control(lite_control),
            },
        ] {
            run_shape(&shape, n).await?;
        }
    }

    // The bus alone: no NOTIFY trigger, so a revoke reaches the other processes over the
    // bus or not at all (until the 60 s cache TTL, which GIVE_UP is far below).
    println!("\n-- the cluster bus alone (Postgres without its NOTIFY triggers)");
    let baseline = baseline_dir();
    anyhow::ensure!(
        baseline.join("nexusd").exists() && baseline.join("nexus").exists(),
        "{} has no nexusd and nexus: run bench/run (it builds the baseline release) or set NEXUS_BASELINE_BIN_DIR",
        baseline.display()
    );
    // The baseline's schema is its own: it migrates the database itself and mints with its
    // own CLI.
    let url = empty_postgres_database("nexus_bench").await;
    let old_db = TestDb {
        store: Store::connect(&url).await?,
        url,
        dir: tempfile::tempdir()?,
    };
    hub_cli(&baseline, &old_db.url, &["migrate"]).await?;
    hub_cli(&baseline, &old_db.url, &["zone", "create", "eng"]).await?;
    old_db.without_notify_triggers().await;
    let (stream_db, stream_mint) = current_db(true).await?;
    let (nats_db, nats_mint) = current_db(true).await?;
    let nats = NatsServer::start(free_port(), free_port(), "").await;
    for shape in [
        Shape {
            name: "bus only: Redis pub/sub (the release before the bus)",
            db_url: old_db.url.clone(),
            bins: baseline.clone(),
            env: vec![("NEXUS_REDIS_URL", redis.clone())],
            bus: true,
            mint: Mint::Cli(baseline.clone()),
        },
        Shape {
            name: "bus only: Redis Stream (NEXUS_BUS_URL=redis://…)",
            db_url: stream_db.url.clone(),
            bins: current.clone(),
            env: vec![
                ("NEXUS_REDIS_URL", redis.clone()),
                ("NEXUS_BUS_URL", redis.clone()),
            ],
            bus: true,
            mint: stream_mint,
        },
        Shape {
            name: "bus only: NATS JetStream (one nats-server, NEXUS_BUS_URL=nats://…)",
            db_url: nats_db.url.clone(),
            bins: current.clone(),
            env: vec![
                ("NEXUS_REDIS_URL", redis.clone()),
                ("NEXUS_BUS_URL", nats.url()),
            ],
            bus: true,
            mint: nats_mint,
        },
    ] {
        run_shape(&shape, n).await?;
    }
    Ok(())
}
