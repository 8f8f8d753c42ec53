//! An authenticated MCP `tools/call` through the hub against the limit, all measured in the
//! same run, every server its own release process on 127.0.0.1:
//! - limit: rmcp serving `nexus_read_file` of a 1 KiB file from disk, no auth, no hop;
//! - one-hop limit: the same plus one loopback HTTP hop to a file server, a cached token
//!   check on each side (the shape of frontend → rpc-server);
//! - hub: `nexus mcp serve` → `nexusd` (Postgres), warm identity cache;
//! - hub, cache off: every call verified in Postgres (`NEXUS_AUTH_CACHE_TTL=0`);
//! - hub: `nexus_write_file` of 1 KiB (durable: fsync, rename, directory fsync), next to
//!   the same durable write done directly on disk.
//!
//! The load generator replays the exact request rmcp's client sends (stateless 2026-07-28
//! call) over kept-alive connections. Concurrency 1 gives latency; 64 gives throughput;
//! resident memory of each process is sampled under the 64-caller load.
//!
//! Usage: mcp_call [--quick] [--hub-only]   (needs NEXUS_TEST_DATABASE_URL; run it with bench/run)

use nexus_bench::loadgen::{self, Load, Replay};
use nexus_bench::procs::{Proc, Rss, binary, cpu_time, free_port, mib};
use nexus_bench::{Sample, summarize};
use nexus_wire::methods::TokenCreateParams;
use rpc_server::auth::{InvalidationBus, TokenHasher};
use rpc_server::control::Control;
use rpc_server::db::Backend;
use rpc_server::testing::{TEST_SECRET, TestDb, test_secret};
use serde_json::{Map, json};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const CALLERS: usize = 64;

/// `nexusd` on `db_url` and `data`, limits far above the load, then `nexus mcp serve` in
/// front of it.
fn hub(label: &str, db_url: &str, data: &Path, cache_ttl: &str) -> (Proc, Proc) {
    let rpc_port = free_port();
    let mut rpc = Command::new(binary("nexusd"));
    rpc.env("NEXUS_DATABASE_URL", db_url)
        .env("NEXUS_API_KEY_SECRET", TEST_SECRET)
        .env("NEXUS_DATA_DIR", data)
        .env("NEXUS_PORT", rpc_port.to_string())
        .env("NEXUS_AUTH_CACHE_TTL", cache_ttl)
        .env("NEXUS_RATE_LIMIT_TOKEN", "1000000/s")
        .env("NEXUS_RATE_LIMIT_ADMIN", "1000000/s")
        .env_remove("NEXUS_REDIS_URL");
    let rpc = Proc::start(&format!("{label} rpc-server"), rpc, rpc_port);
    let mcp_port = free_port();
    let mut fe = Command::new(binary("nexus"));
    fe.args(["mcp", "serve"])
        .env("NEXUS_URL", format!("http://127.0.0.1:{rpc_port}"))
        .env("NEXUS_MCP_PORT", mcp_port.to_string())
        .env_remove("NEXUS_REDIS_URL");
    let fe = Proc::start(&format!("{label} frontend"), fe, mcp_port);
    (fe, rpc)
}

fn limit(args: &[&str]) -> Proc {
    let port = free_port();
    let mut cmd = Command::new(binary("limit_server"));
    cmd.arg(args[0]).arg(port.to_string()).args(&args[1..]);
    Proc::start(&format!("limit {}", args[0]), cmd, port)
}

/// The same durable write the rpc-server does (temp file, fsync, rename, directory fsync),
/// done directly: the floor under `nexus_write_file`.
fn disk_write(dir: &Path, content: &[u8], warmup: usize, iters: usize) -> Sample {
    let once = |i: usize| {
        let tmp = dir.join(format!(".w{i}.tmp"));
        let mut f = std::fs::File::create(&tmp).expect("create");
        f.write_all(content).expect("write");
        f.sync_all().expect("fsync");
        std::fs::rename(&tmp, dir.join("w.txt")).expect("rename");
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .expect("dir fsync");
    };
    for i in 0..warmup {
        once(i);
    }
    let mut times = Vec::with_capacity(iters);
    let start = Instant::now();
    for i in 0..iters {
        let t = Instant::now();
        once(i);
        times.push(t.elapsed());
    }
    summarize(
        "disk: the same durable write, no server",
        times,
        start.elapsed(),
    )
}

/// What a process used while a load ran: its largest resident memory sample and its CPU
/// time per call.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    rss: Rss,
    cpu_per_call: Duration,
}

/// Runs `load` while sampling the resident memory of `procs` every 50 ms and reading their
/// CPU time before and after.
async fn with_usage<F: std::future::Future<Output = Load>>(
    procs: &[&Proc],
    load: F,
) -> (Load, Vec<Usage>) {
    let pids: Vec<u32> = procs.iter().map(|p| p.pid()).collect();
    let cpu0: Vec<Duration> = pids.iter().map(|p| cpu_time(*p)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, pids) = (stop.clone(), pids.clone());
        tokio::task::spawn_blocking(move || {
            let mut max = vec![Rss::default(); pids.len()];
            while !stop.load(Ordering::Relaxed) {
                for (m, pid) in max.iter_mut().zip(&pids) {
                    let r = nexus_bench::procs::rss(*pid);
                    if r.now > m.now {
                        *m = Rss {
                            peak: m.peak.max(r.peak),
                            ..r
                        };
                    } else {
                        m.peak = m.peak.max(r.peak);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            max
        })
    };
    let l = load.await;
    stop.store(true, Ordering::Relaxed);
    let rss = sampler.await.expect("sampler");
    // The load's first call per connection is not counted in `calls`; with thousands of
    // calls per run that is noise.
    let usage = pids
        .iter()
        .zip(cpu0)
        .zip(rss)
        .map(|((pid, c0), rss)| Usage {
            rss,
            cpu_per_call: cpu_time(*pid).saturating_sub(c0) / l.calls.max(1) as u32,
        })
        .collect();
    (l, usage)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (iters, dur) = if quick {
        (1000, Duration::from_secs(3))
    } else {
        (5000, Duration::from_secs(10))
    };
    let content = "x".repeat(1023) + "\n";

    // One database, zone and token for both hubs; the file written straight to disk.
    let db = TestDb::new(Backend::Postgres).await;
    let hasher = Arc::new(TokenHasher::new(&test_secret())?);
    let control = Control::new(db.store.clone(), hasher, InvalidationBus::new(), None);
    control.create_zone("eng").await?;
    let token = control
        .create_token(TokenCreateParams {
            name: "bench".into(),
            zones: Some("eng:rw".into()),
            ..Default::default()
        })
        .await?
        .token;
    let data = tempfile::tempdir()?;
    let root = data.path().join("zones/eng");
    std::fs::create_dir_all(root.join("w"))?;
    std::fs::write(root.join("kb.txt"), &content)?;
    let root_s = root.to_str().expect("utf-8 temp path");

    let (fe, rpc) = hub("hub", &db.url, data.path(), "60");
    let (fe_cold, _rpc_cold) = hub("hub (cache off)", &db.url, data.path(), "0");
    let direct = limit(&["direct", root_s]);
    let files = limit(&["files", root_s, &token]);
    let files_url = format!("http://{}/read", files.addr);
    let hop = limit(&["hop", &files_url, &token]);

    let mut args = Map::new();
    args.insert("path".into(), json!("/kb.txt"));
    let read = nexus_bench::limit::record_call("nexus_read_file", args).await?;
    let write_to = |i: usize| -> Replay {
        read.to(fe.addr, Some(&token)).calling(
            "nexus_write_file",
            json!({"path": format!("/w/{i}.txt"), "content": content}),
        )
    };
    let targets: [(&str, Replay); 5] = [
        (
            "limit: rmcp from disk, no auth, no hop",
            read.to(direct.addr, None),
        ),
        (
            "limit + one hop, cached auth each side",
            read.to(hop.addr, Some(&token)),
        ),
        (
            "hub: frontend → rpc-server, cache hit",
            read.to(fe.addr, Some(&token)),
        ),
        (
            "hub: cache off (Postgres every call)",
            read.to(fe_cold.addr, Some(&token)),
        ),
        ("hub: nexus_write_file 1 KiB, durable", write_to(0)),
    ];
    if std::env::args().any(|a| a == "--hub-only") {
        // For profiling: only the cache-hit hub under the 64-caller load, pids printed so
        // that `perf record -p` can attach during the run.
        println!("frontend pid {}  rpc-server pid {}", fe.pid(), rpc.pid());
        std::thread::sleep(Duration::from_secs(2));
        let l = loadgen::throughput(targets[2].0, &targets[2].1, CALLERS, dur * 3).await;
        println!("{}: {:.0} calls/s, p99 {:.1} µs", l.name, l.rate, us(l.p99));
        return Ok(());
    }
    println!(
        "request: {} bytes of JSON-RPC as rmcp's client sends it; {} measured calls, {} s per load",
        read.body.len(),
        iters,
        dur.as_secs()
    );

    println!("\n== concurrency 1: latency");
    println!(
        "{:<44} {:>10} {:>10} {:>14}",
        "figure", "p50 µs", "p99 µs", "p50 × one-hop"
    );
    let mut lat = Vec::new();
    for (name, r) in &targets {
        lat.push(loadgen::latency(name, r, iters / 5, iters).await);
    }
    let disk = disk_write(&root.join("w"), content.as_bytes(), iters / 10, iters / 2);
    let base = us(lat[1].p50);
    for s in lat.iter().chain(std::iter::once(&disk)) {
        println!(
            "{:<44} {:>10.1} {:>10.1} {:>14.2}",
            s.name,
            us(s.p50),
            us(s.p99),
            us(s.p50) / base
        );
    }
    let p50_ratio = us(lat[2].p50) / base;
    println!(
        "hub cache-hit p50 ÷ one-hop limit p50 = {p50_ratio:.2}  (target ≤ 1.15: {})",
        verdict(p50_ratio <= 1.15)
    );
    println!(
        "hub write p50 ÷ direct durable write p50 = {:.2}",
        us(lat[4].p50) / us(disk.p50)
    );

    println!("\n== concurrency {CALLERS}: throughput");
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "figure", "calls/s", "p50 µs", "p99 µs", "× one-hop", "× no-hop"
    );
    let mut loads = Vec::new();
    let mut hub_use = Vec::new();
    let mut limit_use = Vec::new();
    for (i, (name, r)) in targets.iter().enumerate() {
        let l = match i {
            1 => {
                let (l, m) =
                    with_usage(&[&hop, &files], loadgen::throughput(name, r, CALLERS, dur)).await;
                limit_use = m;
                l
            }
            2 => {
                let (l, m) =
                    with_usage(&[&fe, &rpc], loadgen::throughput(name, r, CALLERS, dur)).await;
                hub_use = m;
                l
            }
            4 => loadgen::throughput_each(name, CALLERS, dur, write_to).await,
            _ => loadgen::throughput(name, r, CALLERS, dur).await,
        };
        loads.push(l);
    }
    for l in &loads {
        println!(
            "{:<44} {:>10.0} {:>10.1} {:>10.1} {:>10.2} {:>10.2}",
            l.name,
            l.rate,
            us(l.p50),
            us(l.p99),
            l.rate / loads[1].rate,
            l.rate / loads[0].rate
        );
    }
    let r1 = loads[2].rate / loads[1].rate;
    let r0 = loads[2].rate / loads[0].rate;
    println!(
        "hub cache-hit ÷ one-hop limit = {r1:.2}  (target ≥ 0.9: {});  ÷ no-hop limit = {r0:.2}  (stretch ≥ 0.5: {})",
        verdict(r1 >= 0.9),
        verdict(r0 >= 0.5)
    );

    println!(
        "\n== per process under the {CALLERS}-caller load: resident memory (largest sample, peak) and CPU per call"
    );
    let procs = [
        ("hub frontend", hub_use[0]),
        ("hub rpc-server", hub_use[1]),
        ("limit + hop: rmcp server", limit_use[0]),
        ("limit + hop: file server", limit_use[1]),
    ];
    for (name, u) in procs {
        println!(
            "{name:<44} {:>6.1} MiB (anon {:>5.1} + file {:>5.1}) {:>6.1} MiB peak {:>7.1} µs CPU/call",
            mib(u.rss.now),
            mib(u.rss.anon),
            mib(u.rss.file),
            mib(u.rss.peak),
            us(u.cpu_per_call)
        );
    }
    let both = hub_use.iter().map(|u| u.rss.now).sum::<u64>();
    let limit_both = limit_use.iter().map(|u| u.rss.now).sum::<u64>();
    println!(
        "hub frontend + rpc-server = {:.1} MiB  (target ≤ 30 MiB: {});  × the one-hop limit's two processes = {:.2}",
        mib(both),
        verdict(mib(both) <= 30.0),
        both as f64 / limit_both.max(1) as f64
    );
    let cpu = |u: &[Usage]| us(u.iter().map(|u| u.cpu_per_call).sum());
    println!(
        "CPU per call, both processes: hub {:.1} µs, one-hop limit {:.1} µs ({:.2}×)",
        cpu(&hub_use),
        cpu(&limit_use),
        cpu(&hub_use) / cpu(&limit_use).max(f64::EPSILON)
    );
    drop((fe, rpc, fe_cold, direct, hop, files));
    Ok(())
}
