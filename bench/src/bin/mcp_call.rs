//! An authenticated MCP `tools/call` — a stateless 2026-07-28 `nexus_read_file` of a 1 KiB
//! file by a cached token — through both shapes users run, against the limits, every server
//! its own release process on 127.0.0.1, loaded from outside by wrk:
//! - one-hop limit: rmcp serving the file through one loopback hop to a file server, a
//!   cached token check on each side (small files read inline);
//! - floor: two bare hyper hops with a cached token check (`nexus_bench::floor`);
//! - hub pair: the frontend process (`nexus-mcp` when it is built, else `nexus mcp serve`)
//!   in front of `nexusd` on Postgres;
//! - hub up: the embedded `nexus hub up` (SQLite), one process;
//! - long form only: rmcp alone from disk (no auth, no hop), and the hub pair with its auth
//!   cache off (Postgres on every call).
//!
//! This machine's speed drifts for tens of seconds at a time, so fixed-order runs cannot
//! rank configurations: the targets run in interleaved rounds (each round: every target at
//! 64 connections, then every target at 1 connection, the order rotated per round), ratios
//! are taken within a round, and the printed figure is the median across rounds. Every
//! target's answer is checked before timing starts.
//!
//! Also, with the in-process load generator (wrk has no disk-only baseline to run against):
//! `nexus_write_file` through the hub pair next to the same durable write done on disk.
//!
//! Usage: mcp_call [--quick] [--hub-only]   (needs NEXUS_TEST_DATABASE_URL; run it with bench/run)

use nexus_bench::loadgen::{self, Conn, Replay};
use nexus_bench::procs::{
    Proc, binary, cpu_time, free_port, hub_up_cmd, mib, optional_binary, rss, saved_token,
};
use nexus_bench::{Sample, elf, summarize, wrk};
use nexus_bench::{median, spread, us};
use nexus_wire::methods::TokenCreateParams;
use rpc_server::auth::{InvalidationBus, TokenHasher};
use rpc_server::control::Control;
use rpc_server::db::Backend;
use rpc_server::testing::{TEST_SECRET, TestDb, test_secret};
use serde_json::{Map, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CALLERS: usize = 64;
/// The file every target reads; its text must come back in each answer.
const CONTENT_MARK: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// `nexusd` on `db_url` and `data`, limits far above the load.
fn nexusd(label: &str, db_url: &str, data: &Path, cache_ttl: &str) -> Proc {
    let port = free_port();
    let mut rpc = Command::new(binary("nexusd"));
    rpc.env("NEXUS_DATABASE_URL", db_url)
        .env("NEXUS_API_KEY_SECRET", TEST_SECRET)
        .env("NEXUS_DATA_DIR", data)
        .env("NEXUS_PORT", port.to_string())
        .env("NEXUS_AUTH_CACHE_TTL", cache_ttl)
        .env("NEXUS_RATE_LIMIT_TOKEN", "1000000/s")
        .env("NEXUS_RATE_LIMIT_ADMIN", "1000000/s")
        .env_remove("NEXUS_REDIS_URL");
    Proc::start(&format!("{label} rpc-server"), rpc, port)
}

/// The frontend-only binary when it is built, else `nexus mcp serve`; configured by
/// environment either way.
fn frontend_binary() -> (PathBuf, &'static str) {
    match optional_binary("nexus-mcp") {
        Some(p) => (p, "nexus-mcp"),
        None => (binary("nexus"), "nexus mcp serve"),
    }
}

/// The production pair: the frontend process in front of `nexusd` on Postgres.
fn pair(label: &str, db_url: &str, data: &Path, cache_ttl: &str) -> (Proc, Proc) {
    let rpc = nexusd(label, db_url, data, cache_ttl);
    let (bin, how) = frontend_binary();
    // `nexus-mcp` may take its settings bare or under a `serve` subcommand.
    let arg_sets: &[&[&str]] = if how == "nexus-mcp" {
        &[&[], &["serve"], &["mcp", "serve"]]
    } else {
        &[&["mcp", "serve"]]
    };
    let mut failures = Vec::new();
    for args in arg_sets {
        let port = free_port();
        let mut fe = Command::new(&bin);
        fe.args(*args)
            .env("NEXUS_URL", format!("http://127.0.0.1:{}", rpc.addr.port()))
            .env("NEXUS_MCP_PORT", port.to_string())
            .env_remove("NEXUS_REDIS_URL");
        match Proc::try_start(&format!("{label} frontend ({how})"), fe, port) {
            Ok(fe) => return (fe, rpc),
            Err(e) => failures.push(e),
        }
    }
    panic!("the frontend did not start: {}", failures.join("; "))
}

/// Runs `cmd` to completion (at most 60 s) and returns its stdout.
fn output(mut cmd: Command) -> anyhow::Result<String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("{cmd:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        anyhow::bail!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `nexus hub up` on a fresh `dir`, the file in its default zone, and a token for that
/// zone minted through the hub itself (its limit far above the load).
fn hub_up(dir: &Path, content: &str) -> anyhow::Result<(Proc, String)> {
    let (cmd, mcp) = hub_up_cmd(dir);
    let p = Proc::start("nexus hub up", cmd, mcp);
    let deadline = Instant::now() + Duration::from_secs(30);
    let admin = loop {
        let saved = saved_token(dir);
        if let Some(t) = saved {
            break t;
        }
        anyhow::ensure!(Instant::now() < deadline, "hub up wrote no admin.env");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut create = Command::new(binary("nexus"));
    create
        .args([
            "hub", "token", "create", "--name", "bench", "--zone", "default",
        ])
        .args(["--rate-limit", "1000000/s", "--json", "--remote"])
        .arg(format!("http://{}/mcp", p.addr))
        .arg("--admin-token")
        .arg(&admin)
        .env_remove("NEXUS_DATABASE_URL");
    let created: serde_json::Value = serde_json::from_str(&output(create)?)?;
    let token = created["token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("token create printed no token: {created}"))?
        .to_owned();
    let zone = dir.join("zones/default");
    std::fs::create_dir_all(&zone)?;
    std::fs::write(zone.join("kb.txt"), content)?;
    Ok((p, token))
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

/// One configuration under load: its request, the processes it runs in, its figures.
struct Target {
    name: &'static str,
    replay: Replay,
    pids: Vec<u32>,
    script: PathBuf,
    /// Per round: calls/s at 64, p50 at 1 (µs), CPU per call at 64 (µs).
    rate: Vec<f64>,
    p50: Vec<f64>,
    cpu: Vec<f64>,
    /// Largest anonymous RSS of its processes together, sampled under the 64-caller load.
    anon: u64,
}

impl Target {
    fn new(name: &'static str, replay: Replay, procs: &[&Proc], dir: &Path) -> Target {
        let script = wrk::script(&replay, dir, &format!("t{}", procs[0].pid()))
            .expect("write the wrk script");
        Target {
            name,
            replay,
            pids: procs.iter().map(|p| p.pid()).collect(),
            script,
            rate: Vec::new(),
            p50: Vec::new(),
            cpu: Vec::new(),
            anon: 0,
        }
    }

    /// Fails loudly unless the request gets a 200 JSON-RPC result, not a tool error, with
    /// the file's text in it.
    async fn check(&self) -> anyhow::Result<()> {
        let mut c = Conn::open(self.replay.addr).await?;
        let (status, body) = c.send(&self.replay).await?;
        loadgen::check(status, &body).map_err(|e| anyhow::anyhow!("{}: {e}", self.name))?;
        anyhow::ensure!(
            body.windows(CONTENT_MARK.len())
                .any(|w| w == CONTENT_MARK.as_bytes()),
            "{}: the answer lacks the file's text: {}",
            self.name,
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }

    /// wrk at `conns` connections for `secs`; with `record`, the figures are kept.
    fn load(&mut self, conns: usize, secs: u64, record: bool) -> anyhow::Result<()> {
        let cpu0: Duration = self.pids.iter().map(|p| cpu_time(*p)).sum();
        let pids = self.pids.clone();
        let mut anon = 0;
        let run = wrk::run(&self.script, &wrk::url(&self.replay), conns, secs, || {
            anon = anon.max(pids.iter().map(|p| rss(*p).anon).sum::<u64>());
        })
        .map_err(|e| anyhow::anyhow!("{} at {conns} connections: {e}", self.name))?;
        let cpu: Duration = self.pids.iter().map(|p| cpu_time(*p)).sum();
        if !record {
            return Ok(());
        }
        if conns == 1 {
            self.p50.push(us(run.p50));
        } else {
            self.rate.push(run.rate);
            self.cpu
                .push(us(cpu.saturating_sub(cpu0)) / run.requests.max(1) as f64);
            self.anon = self.anon.max(anon);
        }
        Ok(())
    }
}

/// The median across rounds of `a`'s figure ÷ `b`'s, each ratio taken within one round.
fn ratio(a: &[f64], b: &[f64]) -> f64 {
    median(a.iter().zip(b).map(|(x, y)| x / y).collect())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "NOT MET" }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let hub_only = std::env::args().any(|a| a == "--hub-only");
    let (rounds, secs, write_iters) = if quick { (3, 2, 500) } else { (7, 5, 2000) };
    wrk::require()?;
    let content = "x".repeat(1023) + "\n";

    // One database, zone and token for the pairs; the file written straight to disk.
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
    let scripts = tempfile::tempdir()?;

    let (fe, rpc) = pair("hub", &db.url, data.path(), "60");
    let up_dir = tempfile::tempdir()?;
    let (up, up_token) = hub_up(up_dir.path(), &content)?;
    let files = limit(&["files", root_s, &token]);
    let hop = limit(&["hop", &format!("http://{}/read", files.addr), &token]);
    let back = limit(&["floor-back", root_s, &token]);
    let front = limit(&["floor-front", &format!("http://{}/", back.addr), &token]);
    let long = (!quick && !hub_only).then(|| {
        (
            limit(&["direct", root_s]),
            pair("hub (cache off)", &db.url, data.path(), "0"),
        )
    });

    let mut args = Map::new();
    args.insert("path".into(), json!("/kb.txt"));
    let read = nexus_bench::limit::record_call("nexus_read_file", args).await?;
    let dir = scripts.path();
    let mut targets = vec![
        Target::new(
            "one-hop limit: rmcp + hop, cached auth each side",
            read.to(hop.addr, Some(&token)),
            &[&hop, &files],
            dir,
        ),
        Target::new(
            "floor: two bare hyper hops, cached token check",
            read.to(front.addr, Some(&token)),
            &[&front, &back],
            dir,
        ),
        Target::new(
            "hub pair: frontend → nexusd (Postgres)",
            read.to(fe.addr, Some(&token)),
            &[&fe, &rpc],
            dir,
        ),
        Target::new(
            "hub up: embedded (SQLite), one process",
            read.to(up.addr, Some(&up_token)),
            &[&up],
            dir,
        ),
    ];
    const LIMIT: usize = 0;
    const FLOOR: usize = 1;
    const PAIR: usize = 2;
    const UP: usize = 3;
    if let Some((direct, (cold_fe, cold_rpc))) = &long {
        targets.push(Target::new(
            "limit: rmcp from disk, no auth, no hop",
            read.to(direct.addr, None),
            &[direct],
            dir,
        ));
        targets.push(Target::new(
            "hub pair, auth cache off (Postgres each call)",
            read.to(cold_fe.addr, Some(&token)),
            &[cold_fe, cold_rpc],
            dir,
        ));
    }
    for t in &targets {
        t.check().await?;
    }
    let header_names: Vec<&str> = read.headers.iter().map(|(k, _)| k.as_str()).collect();
    println!(
        "request: POST /mcp, {} bytes of JSON-RPC as rmcp's client sends it; headers: {}, authorization",
        read.body.len(),
        header_names.join(", ")
    );
    println!("frontend of the pair: {}", frontend_binary().1);

    if hub_only {
        // For profiling: the hub shapes alone under the 64-caller load, pids printed so
        // that `perf record -p` can attach during the run.
        println!(
            "hub pair: frontend pid {} rpc-server pid {};  hub up pid {}",
            fe.pid(),
            rpc.pid(),
            up.pid()
        );
        std::thread::sleep(Duration::from_secs(2));
        for i in [PAIR, UP] {
            targets[i].load(CALLERS, secs * 3, true)?;
            println!(
                "{}: {:.0} calls/s, {:.1} µs CPU/call",
                targets[i].name, targets[i].rate[0], targets[i].cpu[0]
            );
        }
        return Ok(());
    }

    println!(
        "load: wrk, one thread; {rounds} interleaved rounds of {secs} s per target at {CALLERS} connections and {secs} s at 1"
    );
    // Unmeasured warm-up: connections, caches, page cache, allocator pools.
    for t in &mut targets {
        t.load(CALLERS, 1, false)?;
    }
    let n = targets.len();
    for round in 0..rounds {
        for conns in [CALLERS, 1] {
            for k in 0..n {
                targets[(round + k) % n].load(conns, secs, true)?;
            }
        }
    }
    // A last check: the load left every target answering correctly.
    for t in &targets {
        t.check().await?;
    }

    println!("\n== per target: medians across rounds (the rounds' range in brackets)");
    println!(
        "{:<48} {:>22} {:>15} {:>20} {:>9}",
        "target", "calls/s @64", "p50 µs @1", "CPU µs/call @64", "anon MiB"
    );
    for t in &targets {
        println!(
            "{:<48} {:>22} {:>15} {:>20} {:>9.1}",
            t.name,
            spread(&t.rate, 0),
            spread(&t.p50, 0),
            spread(&t.cpu, 1),
            mib(t.anon)
        );
    }

    let fe_bin = frontend_binary();
    let fe_text = elf::text_size(&fe_bin.0)?;
    let nexus_text = elf::text_size(&binary("nexus"))?;
    let (lim, floor) = (&targets[LIMIT], &targets[FLOOR]);
    println!("\n== targets, per shape (ratios taken within each round, median across rounds)");
    for (i, shape) in [
        (PAIR, "hub pair (frontend + nexusd on Postgres)"),
        (UP, "hub up (embedded, SQLite)"),
    ] {
        let h = &targets[i];
        let tput = ratio(&h.rate, &lim.rate);
        let p50 = ratio(&h.p50, &lim.p50);
        let cpu = ratio(&h.cpu, &lim.cpu);
        println!("{shape}:");
        println!(
            "  throughput @64 ÷ one-hop limit  {tput:>6.2}×  target ≥ 1.0×: {};  stretch ≥ 1.2×: {}",
            verdict(tput >= 1.0),
            verdict(tput >= 1.2)
        );
        println!(
            "  p50 @1 ÷ one-hop limit          {p50:>6.2}×  target ≤ 1.0×: {}",
            verdict(p50 <= 1.0)
        );
        println!(
            "  CPU per call ÷ one-hop limit    {cpu:>6.2}×  ({:.1} µs vs {:.1} µs)  target ≤ 1.0×: {}",
            median(h.cpu.clone()),
            median(lim.cpu.clone()),
            verdict(cpu <= 1.0)
        );
        println!(
            "  anonymous RSS under load        {:>6.1} MiB  target ≤ 20 MiB: {}",
            mib(h.anon),
            verdict(mib(h.anon) <= 20.0)
        );
        if i == PAIR {
            let r = fe_text.text as f64 / nexus_text.text.max(1) as f64;
            println!(
                "  frontend binary text ÷ nexus    {r:>6.2}×  ({}: {:.1} MiB, code {:.1} MiB; nexus: {:.1} MiB, code {:.1} MiB)  target ≤ 0.5×: {}",
                fe_bin.1,
                mib(fe_text.text),
                mib(fe_text.code),
                mib(nexus_text.text),
                mib(nexus_text.code),
                verdict(r <= 0.5)
            );
        }
        println!(
            "  vs the two-hop floor: throughput {:.2}×, p50 {:.2}×, CPU per call {:.2}×",
            ratio(&h.rate, &floor.rate),
            ratio(&h.p50, &floor.p50),
            ratio(&h.cpu, &floor.cpu)
        );
    }
    println!(
        "one-hop limit vs the two-hop floor: throughput {:.2}×, p50 {:.2}×, CPU per call {:.2}×",
        ratio(&lim.rate, &floor.rate),
        ratio(&lim.p50, &floor.p50),
        ratio(&lim.cpu, &floor.cpu)
    );

    // A durable write has no wrk baseline: it is measured next to the same write on disk.
    let write = read.to(fe.addr, Some(&token)).calling(
        "nexus_write_file",
        json!({"path": "/w/0.txt", "content": content}),
    );
    let w = loadgen::latency(
        "hub pair: nexus_write_file 1 KiB, durable",
        &write,
        write_iters / 5,
        write_iters,
    )
    .await;
    let disk = disk_write(
        &root.join("w"),
        content.as_bytes(),
        write_iters / 10,
        write_iters / 2,
    );
    println!("\n== durable write at 1 caller (in-process load generator)");
    println!(
        "{} p50 {:.1} µs, p99 {:.1} µs;  {} p50 {:.1} µs;  ratio {:.2}",
        w.name,
        us(w.p50),
        us(w.p99),
        disk.name,
        us(disk.p50),
        us(w.p50) / us(disk.p50).max(f64::EPSILON)
    );
    drop((fe, rpc, up, hop, files, front, back, long));
    Ok(())
}
