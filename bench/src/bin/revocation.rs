//! Revocation propagation across processes: the release `nexus hub token revoke` (its own
//! process, with the environment an operator gives it) against two running `nexusd`
//! processes on one database, in each deployment shape: Postgres + Redis, Postgres alone
//! (the database's NOTIFY), SQLite (the change log nexusd polls, as in the embedded hub).
//! A sample runs from the CLI process exiting to the slower server's first 401 seen by a
//! client polling both. Baseline in the same run: one poll's round trip.
//!
//! Usage: revocation [--quick]   (needs NEXUS_TEST_DATABASE_URL and NEXUS_TEST_REDIS_URL;
//! 100 samples per shape, 20 with --quick)

use nexus_bench::procs::{Proc, binary, free_port};
use nexus_wire::methods::TokenCreateParams;
use rpc_server::auth::{InvalidationBus, TokenHasher};
use rpc_server::control::Control;
use rpc_server::db::{Backend, Store};
use rpc_server::testing::{TEST_SECRET, TestDb, redis_url, test_secret};
use serde_json::json;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// No sample may take longer: the revoke did not propagate (the cache TTL is 60 s).
const GIVE_UP: Duration = Duration::from_secs(5);

struct Shape {
    name: &'static str,
    db_url: String,
    redis: Option<String>,
}

fn nexusd(db_url: &str, redis: Option<&str>, data: &std::path::Path) -> (Proc, String) {
    let port = free_port();
    let mut cmd = Command::new(binary("nexusd"));
    cmd.env_clear()
        .env("NEXUS_DATABASE_URL", db_url)
        .env("NEXUS_API_KEY_SECRET", TEST_SECRET)
        .env("NEXUS_DATA_DIR", data)
        .env("NEXUS_HOST", "127.0.0.1")
        .env("NEXUS_PORT", port.to_string())
        .env("NEXUS_AUTH_CACHE_TTL", "60")
        // Polling a revoked token counts as failed authentication: lift that limit here.
        .env("NEXUS_AUTH_FAILURE_LIMIT", "1000000/m")
        .env("NEXUS_LOG_LEVEL", "warn")
        .stdin(Stdio::null());
    if let Some(r) = redis {
        cmd.env("NEXUS_REDIS_URL", r);
    }
    (
        Proc::start("nexusd", cmd, port),
        format!("http://127.0.0.1:{port}"),
    )
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
    let store = Store::connect(&shape.db_url).await?;
    store.migrate().await?;
    let control = Control::new(
        store,
        Arc::new(TokenHasher::new(&test_secret())?),
        InvalidationBus::new(),
        None,
    );
    control.create_zone("eng").await?;
    let (_a, a) = nexusd(&shape.db_url, shape.redis.as_deref(), &dir.path().join("a"));
    let (_b, b) = nexusd(&shape.db_url, shape.redis.as_deref(), &dir.path().join("b"));
    let client = reqwest::Client::builder().no_proxy().build()?;
    if shape.redis.is_some() {
        // Let both servers subscribe before the first revoke.
        for base in [&a, &b] {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let h: serde_json::Value = client
                    .get(format!("{base}/health"))
                    .send()
                    .await?
                    .json()
                    .await?;
                if h["redis"] == "ok" {
                    break;
                }
                anyhow::ensure!(Instant::now() < deadline, "{base} never subscribed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    let (mut lags, mut cli_times, mut rtt) = (Vec::new(), Vec::new(), Vec::new());
    let mut accepted_in_flight = 0u32;
    for i in 0..n {
        let t = control
            .create_token(TokenCreateParams {
                name: format!("rev{i}"),
                zones: Some("eng:r".into()),
                ..Default::default()
            })
            .await?;
        for base in [&a, &b] {
            for _ in 0..2 {
                let s = Instant::now();
                anyhow::ensure!(whoami(&client, base, &t.token).await? == 200, "warm-up");
                rtt.push(s.elapsed());
            }
        }
        let mut cli = tokio::process::Command::new(binary("nexus"));
        cli.env_clear()
            .args(["hub", "token", "revoke", &t.key_id])
            .env("NEXUS_DATABASE_URL", &shape.db_url)
            .env("NEXUS_API_KEY_SECRET", TEST_SECRET)
            .stdin(Stdio::null());
        if let Some(r) = &shape.redis {
            cli.env("NEXUS_REDIS_URL", r);
        }
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
            first_refusal(&client, &a, &t.token, exited),
            first_refusal(&client, &b, &t.token, exited)
        );
        let ((la, na), (lb, nb)) = (ra?, rb?);
        lags.push(la.max(lb));
        accepted_in_flight += na + nb;
        // Nothing may be accepted once refused.
        for base in [&a, &b] {
            for _ in 0..5 {
                anyhow::ensure!(
                    whoami(&client, base, &t.token).await? == 401,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = if std::env::args().any(|a| a == "--quick") {
        20
    } else {
        100
    };
    let with_redis = TestDb::new(Backend::Postgres).await;
    let pg_only = TestDb::new(Backend::Postgres).await;
    let lite_dir = tempfile::tempdir()?;
    let lite = format!("sqlite://{}/nexus.db", lite_dir.path().display());
    for shape in [
        Shape {
            name: "postgres + redis",
            db_url: with_redis.url.clone(),
            redis: Some(redis_url()),
        },
        Shape {
            name: "postgres, no redis (NOTIFY)",
            db_url: pg_only.url.clone(),
            redis: None,
        },
        Shape {
            name: "sqlite, as the embedded hub (change log polled every 25 ms)",
            db_url: lite,
            redis: None,
        },
    ] {
        run_shape(&shape, n).await?;
    }
    Ok(())
}
