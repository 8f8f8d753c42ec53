//! Audit on the cluster bus at the hub's highest call rate: three frontend processes
//! (`nexus-mcp` when it is built, else `nexus mcp serve`) in front of one `nexusd` on
//! Postgres, the same authenticated 1 KiB `nexus_read_file` driven through each by 64
//! callers calling back to back (in-process load generator, every answer checked), with
//! - audit off: no stdout line, no Redis, no bus (the baseline of the same run);
//! - audit to Redis: `NEXUS_REDIS_URL` (one pipeline per batch: the audit channel, the
//!   capped stream `nexus:audit:mcp:stream`, the traffic counters);
//! - audit to NATS: `NEXUS_BUS_URL=nats://…`, the durable JetStream stream `NEXUS_AUDIT`.
//!
//! Stdout audit is off in all three, so the differences are the bus's alone. The targets
//! run in interleaved rounds (order rotated per round, ratios taken within a round, the
//! median printed) because this machine's speed drifts. After each round the benchmark
//! waits for every audit line of the requests it sent to be in the stream (Redis: XLEN;
//! NATS: the stream's message count from the server's monitoring port), so one target's
//! backlog never runs during another's round, and prints how long that took. No drops:
//! lines arrived must equal requests sent, and the frontends' `nexus_audit_dropped_total`
//! and `nexus_bus_dropped_total` must stay 0; the benchmark fails otherwise.
//!
//! Usage: bus_audit [--quick]   (needs NEXUS_TEST_DATABASE_URL, `redis-server` and
//! `nats-server` on PATH; run it with bench/run)

use nexus_bench::loadgen::{self, Conn, Replay};
use nexus_bench::procs::{Proc, binary, cpu_time, free_port, optional_binary};
use nexus_bench::{median, spread, us};
use nexus_bus::testing::{NatsServer, RedisServer};
use nexus_wire::methods::TokenCreateParams;
use nexus_wire::stats::AUDIT_STREAM;
use rpc_server::auth::{InvalidationBus, TokenHasher};
use rpc_server::control::Control;
use rpc_server::db::Backend;
use rpc_server::testing::{TEST_SECRET, TestDb, test_secret};
use serde_json::{Map, json};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CALLERS: usize = 64;
/// Longest wait for a round's audit lines to reach their stream after the load stops.
const DRAIN_WITHIN: Duration = Duration::from_secs(60);

/// Where a frontend's audit lines go.
#[derive(Clone, Copy, PartialEq)]
enum Sink {
    Off,
    Redis,
    Nats,
}

struct Target {
    name: &'static str,
    sink: Sink,
    fe: Proc,
    replay: Replay,
    /// Every `/mcp` request sent to this frontend (each is one audit line).
    sent: u64,
    /// Requests sent since the Redis stream was last emptied (Redis only).
    pending_redis: u64,
    rate: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    cpu: Vec<f64>,
    drain: Vec<Duration>,
}

/// The frontend-only binary when it is built, else `nexus mcp serve`.
fn frontend_binary() -> (PathBuf, &'static [&'static str]) {
    match optional_binary("nexus-mcp") {
        Some(p) => (p, &[]),
        None => (binary("nexus"), &["mcp", "serve"]),
    }
}

fn frontend(name: &str, rpc: &Proc, env: &[(&str, String)]) -> Proc {
    let (bin, args) = frontend_binary();
    let port = free_port();
    let mut fe = Command::new(bin);
    fe.args(args)
        .env_clear()
        .env("NEXUS_URL", format!("http://127.0.0.1:{}", rpc.addr.port()))
        .env("NEXUS_MCP_PORT", port.to_string())
        .env("NEXUS_AUDIT_STDOUT", "false")
        // A node name is 1-64 of A-Z a-z 0-9 _ -.
        .env("NEXUS_NODE_NAME", name.replace(' ', "-"))
        .env("NEXUS_LOG_LEVEL", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)));
    Proc::start(&format!("frontend ({name})"), fe, port)
}

/// The sum of every series of metric `name` in a Prometheus text page.
fn metric_sum(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        // From +0.0: `sum` of no series starts at -0.0 and would print "-0".
        .fold(0.0, |a, b| a + b)
}

async fn metrics(client: &reqwest::Client, fe: &Proc) -> anyhow::Result<String> {
    Ok(client
        .get(format!("http://{}/metrics", fe.addr))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

/// Messages in the NATS stream `NEXUS_AUDIT`, from the server's monitoring endpoint.
async fn nats_audit_len(client: &reqwest::Client, monitor: u16) -> anyhow::Result<u64> {
    let v: serde_json::Value = client
        .get(format!(
            "http://127.0.0.1:{monitor}/jsz?streams=true&accounts=true"
        ))
        .send()
        .await?
        .json()
        .await?;
    let streams = v["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten());
    Ok(streams
        .filter(|s| s["name"] == nexus_bus::subjects::AUDIT_STREAM)
        .filter_map(|s| s["state"]["messages"].as_u64())
        .sum())
}

async fn redis_audit_len(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<u64> {
    Ok(redis::cmd("XLEN")
        .arg(AUDIT_STREAM)
        .query_async(redis)
        .await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, secs) = if quick { (3, 3) } else { (5, 5) };
    let content = "x".repeat(1023) + "\n";

    let db = TestDb::new(Backend::Postgres).await;
    let control = Control::new(
        db.store.clone(),
        Arc::new(TokenHasher::new(&test_secret())?),
        InvalidationBus::new(),
        None,
    );
    control.create_zone("eng").await?;
    let token = control
        .create_token(TokenCreateParams {
            name: "bench".into(),
            zones: Some("eng:r".into()),
            ..Default::default()
        })
        .await?
        .token;
    let data = tempfile::tempdir()?;
    let root = data.path().join("zones/eng");
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("kb.txt"), &content)?;

    // The benchmark's own servers: nothing else writes to their streams.
    let monitor = free_port();
    let nats = NatsServer::start(free_port(), monitor, "").await;
    let redis_server = RedisServer::start(free_port()).await;
    let redis_client = redis::Client::open(redis_server.url())?;
    let mut redis = redis_client.get_multiplexed_async_connection().await?;

    // One nexusd for all three, on the NATS bus as a cluster's would be (an rpc node
    // creates the invalidation stream the frontends read).
    let port = free_port();
    let mut rpc = Command::new(binary("nexusd"));
    rpc.env_clear()
        .env("NEXUS_DATABASE_URL", &db.url)
        .env("NEXUS_API_KEY_SECRET", TEST_SECRET)
        .env("NEXUS_DATA_DIR", data.path())
        .env("NEXUS_HOST", "127.0.0.1")
        .env("NEXUS_PORT", port.to_string())
        .env("NEXUS_AUTH_CACHE_TTL", "60")
        .env("NEXUS_RATE_LIMIT_TOKEN", "1000000/s")
        .env("NEXUS_BUS_URL", nats.url())
        .env("NEXUS_NODE_NAME", "bench-rpc")
        .env("NEXUS_LOG_LEVEL", "warn");
    let rpc = Proc::start("nexusd", rpc, port);

    let mut args = Map::new();
    args.insert("path".into(), json!("/kb.txt"));
    let read = nexus_bench::limit::record_call("nexus_read_file", args).await?;
    let client = reqwest::Client::builder().no_proxy().build()?;

    let mut targets = Vec::new();
    for (name, sink, env) in [
        ("audit off", Sink::Off, vec![]),
        (
            "audit to Redis",
            Sink::Redis,
            vec![("NEXUS_REDIS_URL", redis_server.url())],
        ),
        (
            "audit to NATS JetStream",
            Sink::Nats,
            vec![("NEXUS_BUS_URL", nats.url())],
        ),
    ] {
        let fe = frontend(name, &rpc, &env);
        let replay = read.to(fe.addr, Some(&token));
        targets.push(Target {
            name,
            sink,
            fe,
            replay,
            sent: 0,
            pending_redis: 0,
            rate: Vec::new(),
            p50: Vec::new(),
            p99: Vec::new(),
            cpu: Vec::new(),
            drain: Vec::new(),
        });
    }
    // Every frontend reaches nexusd, and the NATS one is on the bus, before the first
    // request (bounded).
    let deadline = Instant::now() + Duration::from_secs(20);
    for t in &targets {
        loop {
            let h: serde_json::Value = client
                .get(format!("http://{}/health", t.fe.addr))
                .send()
                .await?
                .json()
                .await?;
            // Redis audit connects on its first line; the NATS bus says when it is up.
            let ready = h["rpc_server"] == "ok" && (t.sink != Sink::Nats || h["bus"] == "ok");
            if ready {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{}: not ready for audit: {h}",
                t.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Each answers correctly before timing starts.
    for t in &mut targets {
        let mut c = Conn::open(t.replay.addr).await?;
        let (status, body) = c.send(&t.replay).await?;
        t.sent += 1;
        t.pending_redis += 1;
        loadgen::check(status, &body).map_err(|e| anyhow::anyhow!("{}: {e}", t.name))?;
    }

    let (fe_bin, _) = frontend_binary();
    println!(
        "frontend: {}; one nexusd on Postgres; {CALLERS} callers, {rounds} interleaved rounds of {secs} s per target (plus 1 s unmeasured warm-up each)",
        fe_bin.file_name().and_then(|n| n.to_str()).unwrap_or("?")
    );
    let rpc_pid = rpc.pid();
    for round in 0..=rounds {
        let n = targets.len();
        for k in 0..n {
            let t = &mut targets[(round + k) % n];
            // Round 0 is the warm-up: connections, caches, the allocator, the streams.
            let dur = Duration::from_secs(if round == 0 { 1 } else { secs });
            let pids = [t.fe.pid(), rpc_pid];
            let cpu0: Duration = pids.iter().map(|p| cpu_time(*p)).sum();
            let load = loadgen::throughput(t.name, &t.replay, CALLERS, dur).await;
            let cpu: Duration = pids.iter().map(|p| cpu_time(*p)).sum();
            // Each caller's untimed first call is a request (and an audit line) too.
            let sent = load.calls + CALLERS as u64;
            t.sent += sent;
            t.pending_redis += sent;
            let stopped = Instant::now();
            match t.sink {
                Sink::Off => {}
                Sink::Redis => {
                    while redis_audit_len(&mut redis).await? < t.pending_redis {
                        anyhow::ensure!(
                            stopped.elapsed() < DRAIN_WITHIN,
                            "{}: the Redis stream holds {} of {} lines {DRAIN_WITHIN:?} after the load",
                            t.name,
                            redis_audit_len(&mut redis).await?,
                            t.pending_redis
                        );
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                Sink::Nats => {
                    while nats_audit_len(&client, monitor).await? < t.sent {
                        anyhow::ensure!(
                            stopped.elapsed() < DRAIN_WITHIN,
                            "{}: NEXUS_AUDIT holds {} of {} lines {DRAIN_WITHIN:?} after the load",
                            t.name,
                            nats_audit_len(&client, monitor).await?,
                            t.sent
                        );
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            let drain = stopped.elapsed();
            if t.sink == Sink::Redis {
                // The stream is capped near 100,000 entries: it is counted and emptied each
                // round (every line sent so far is in it, none in flight), so the cap never
                // hides a drop.
                let len = redis_audit_len(&mut redis).await?;
                anyhow::ensure!(
                    len == t.pending_redis,
                    "{}: the Redis stream holds {len} lines for {} requests",
                    t.name,
                    t.pending_redis
                );
                redis::cmd("DEL")
                    .arg(AUDIT_STREAM)
                    .query_async::<()>(&mut redis)
                    .await?;
                t.pending_redis = 0;
            }
            if round > 0 {
                t.rate.push(load.rate);
                t.p50.push(us(load.p50));
                t.p99.push(us(load.p99));
                t.cpu
                    .push(us(cpu.saturating_sub(cpu0)) / load.calls.max(1) as f64);
                t.drain.push(drain);
            }
        }
    }

    // After every round: the stream lengths matched what was sent. Now the whole run's
    // totals, and the frontends' own drop counters.
    let nats_len = nats_audit_len(&client, monitor).await?;
    println!(
        "\n{:<26} {:>22} {:>10} {:>14} {:>14} {:>16} {:>20} {:>22}",
        "target",
        "calls/s @64",
        "× off",
        "p50 µs",
        "p99 µs",
        "CPU µs/call",
        "lines / requests",
        "drain after load ms"
    );
    let off_rate = targets[0].rate.clone();
    let mut failures = Vec::new();
    for t in &targets {
        let page = metrics(&client, &t.fe).await?;
        let audit_dropped = metric_sum(&page, "nexus_audit_dropped_total");
        let bus_dropped = metric_sum(&page, "nexus_bus_dropped_total");
        let ratio = median(t.rate.iter().zip(&off_rate).map(|(a, b)| a / b).collect());
        let lines = match t.sink {
            Sink::Off => "— (off)".to_owned(),
            // Counted each round before the stream was emptied: all of them, or it failed.
            Sink::Redis => format!("{} / {}", t.sent, t.sent),
            Sink::Nats => format!("{nats_len} / {}", t.sent),
        };
        let drain_ms: Vec<f64> = t.drain.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        println!(
            "{:<26} {:>22} {:>10.3} {:>14} {:>14} {:>16} {:>20} {:>22}",
            t.name,
            spread(&t.rate, 0),
            ratio,
            spread(&t.p50, 0),
            spread(&t.p99, 0),
            spread(&t.cpu, 1),
            lines,
            if t.sink == Sink::Off {
                "—".to_owned()
            } else {
                spread(&drain_ms, 0)
            },
        );
        println!(
            "{:<26} nexus_audit_dropped_total {audit_dropped}, nexus_bus_dropped_total {bus_dropped}",
            ""
        );
        if audit_dropped != 0.0 || bus_dropped != 0.0 {
            failures.push(format!(
                "{}: dropped (audit {audit_dropped}, bus {bus_dropped})",
                t.name
            ));
        }
        if t.sink == Sink::Nats && nats_len != t.sent {
            failures.push(format!(
                "{}: {nats_len} lines in NEXUS_AUDIT for {} requests",
                t.name, t.sent
            ));
        }
    }
    println!(
        "(CPU per call: the frontend and nexusd together; the bus servers' own CPU is not in it)"
    );
    anyhow::ensure!(
        failures.is_empty(),
        "audit lost lines: {}",
        failures.join("; ")
    );
    drop((targets, rpc, nats, redis_server));
    Ok(())
}
