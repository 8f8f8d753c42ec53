//! Soak: the hub as an operator runs it (`nexus serve` on a fresh Postgres database and
//! `nexus mcp serve`, two real processes; zones and tokens made with `nexus hub zone|token
//! create`) carries a steady mixed MCP workload from 20 rmcp clients — 5 zones, tokens
//! with one or two zones and mixed r/rw grants, both MCP lifecycles, reconnecting now and
//! then — without a single failed call, without a read that disagrees with the writes, and
//! without either process's memory creeping.
//!
//! Procedure: a short closed-loop ramp at full speed measures the throughput this machine
//! gives; the soak then runs at half of it, each client paced by its own interval, for
//! `NEXUS_SOAK_SECS` seconds (default 120, the CI form). Every second the VmRSS of both
//! processes is sampled from /proc; after the warm-up (the first 20 % of the soak) neither
//! may grow by 10 % or more over its warm-up-end value (the highest of the last 5 warm-up
//! samples). All figures (rate, calls, latency percentiles, CPU, RSS) are printed.
//!
//! Consistency is checkable because each writer token writes only its own files, whose
//! content names the writer, the file and a sequence number and is otherwise derived from
//! them: a read must return a whole version (never torn), one at least as new as the last
//! write that had completed before the read began, and no newer than the last one begun.
//!
//! The 10-minute manual form (nextest allows it up to 15 minutes, see .config/nextest.toml):
//!
//! ```text
//! eval "$(scripts/test-services 2>/dev/null)"
//! NEXUS_SOAK_SECS=600 cargo nextest run -p hub-cli -E 'test(/^soak::/)' --no-capture
//! ```

use crate::common;

use common::procs::{
    free_port, hub_cmd, mcp_serve_cmd, run, serve_cmd, start_frontend, start_nexusd,
};
use common::{Client, Era, is_error, text, try_call, try_connect};
use rpc_server::testing::TestDb;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;

const ZONES: usize = 5;
const TOKENS: usize = 20;
/// Files per writer token.
const FILES: usize = 4;
/// The closed-loop measurement before the soak.
const RAMP: Duration = Duration::from_secs(5);
/// Each client opens a fresh connection (a new session, or a new discovery) this often, so
/// the soak also covers connections coming and going.
const RECONNECT_EVERY: u64 = 50;
/// RSS may grow by less than this after the warm-up.
const MAX_GROWTH: f64 = 0.10;
/// The warm-up: this fraction of the soak, at its start.
const WARM_UP: f64 = 0.2;
/// The warm-up-end value is the highest of this many samples (one a second) ending there.
const WARM_END_SAMPLES: usize = 5;
/// The soak must achieve at least this fraction of its target rate. The target is half of
/// what the ramp measured, so a healthy hub reaches it with room to spare; a hub that
/// stalls, or clients that stop calling, would pass "no errors" while falling short here.
const MIN_RATE_FRACTION: f64 = 0.8;
/// High enough that the soak never meets a rate limit (the test is about leaks and errors).
const UNLIMITED: &str = "1000000/s";

fn zone(z: usize) -> String {
    format!("soak{z}")
}

/// One token and what it holds.
struct Tok {
    name: String,
    raw: String,
    /// (zone, read-write)
    grants: Vec<(usize, bool)>,
    era: Era,
}

impl Tok {
    /// The zone this token writes its own files in, if it writes at all.
    fn rw_zone(&self) -> Option<usize> {
        self.grants.iter().find(|(_, rw)| *rw).map(|(z, _)| *z)
    }

    /// How this token names the root of zone `z`: `/zone/<z>` in a multi-zone view, nothing
    /// in a single-zone one (the zone is `/`).
    fn root(&self, z: usize) -> String {
        if self.grants.len() > 1 {
            format!("/zone/{}", zone(z))
        } else {
            String::new()
        }
    }
}

/// 0–4 write their zone; 5–9 too, over legacy sessions; 10–14 only read theirs; 15–19 write
/// one zone and read another (multi-zone view).
fn plan(i: usize) -> (Vec<(usize, bool)>, Era) {
    let z = i % ZONES;
    let era = if i.is_multiple_of(2) {
        Era::Stateless
    } else {
        Era::Session
    };
    match i / ZONES {
        0 => (vec![(z, true)], Era::Stateless),
        1 => (vec![(z, true)], Era::Session),
        2 => (vec![(z, false)], era),
        _ => (vec![(z, true), ((z + 2) % ZONES, false)], era),
    }
}

/// The whole text of version `seq` of a writer's file: the first line names it, the rest
/// follows from it, so a torn or mixed-up file cannot pass for any version.
fn content(writer: &str, k: usize, seq: u64) -> String {
    let mut s = format!("{writer} f{k} {seq}\n");
    let line = format!("pad {seq:016} {writer} ................................\n");
    let lines = 4 + (seq * 7 + k as u64) % 60;
    for _ in 0..lines {
        s.push_str(&line);
    }
    s
}

/// The sequence number a file's text claims, if it is a version of `writer`'s file `k`.
fn claimed_seq(text: &str, writer: &str, k: usize) -> Option<u64> {
    text.lines()
        .next()?
        .strip_prefix(&format!("{writer} f{k} "))?
        .parse()
        .ok()
}

/// What is known about one writer's file while others read it.
#[derive(Default)]
struct FileState {
    /// The newest version whose write has returned.
    committed: AtomicU64,
    /// The newest version whose write has begun.
    started: AtomicU64,
}

struct Ctx {
    mcp_url: String,
    toks: Vec<Tok>,
    /// `files[writer * FILES + k]`; unused for read-only tokens.
    files: Vec<FileState>,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Ctx {
    fn fail(&self, msg: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().expect("errors lock");
        if first.len() < 20 {
            first.push(msg);
        }
    }

    fn file(&self, writer: usize, k: usize) -> &FileState {
        &self.files[writer * FILES + k]
    }

    fn writers(&self, z: usize) -> Vec<usize> {
        (0..self.toks.len())
            .filter(|&w| self.toks[w].rw_zone() == Some(z))
            .collect()
    }

    /// Every (zone, writer) whose files token `i` can read, itself excluded.
    fn visible(&self, i: usize) -> Vec<(usize, usize)> {
        self.toks[i]
            .grants
            .iter()
            .flat_map(|&(z, _)| self.writers(z).into_iter().map(move |w| (z, w)))
            .filter(|&(_, w)| w != i)
            .collect()
    }
}

/// One call; its latency is recorded whatever the outcome. `Err` says what went wrong.
async fn call(
    c: &Client,
    lat: &mut Vec<(&'static str, u32)>,
    tool: &'static str,
    args: Value,
) -> Result<String, String> {
    let t0 = Instant::now();
    let r = try_call(c, tool, args.clone()).await;
    lat.push((
        tool,
        u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX),
    ));
    // Arguments in a message are cut short: a write carries up to 4 KiB of content.
    let shown = || args.to_string().chars().take(160).collect::<String>();
    match r {
        Ok(r) if is_error(&r) => Err(format!("{tool} {}: isError: {}", shown(), text(&r))),
        Ok(r) => Ok(text(&r)),
        Err(e) => Err(format!("{tool} {}: protocol error: {e}", shown())),
    }
}

fn json_of(tool: &str, t: &str) -> Result<Value, String> {
    serde_json::from_str(t).map_err(|e| format!("{tool}: not JSON ({e}): {t}"))
}

/// A version of `writer`'s file `k` seen by a read that began after `lo` had committed and
/// ended before anything past `hi` had begun.
fn check_version(
    ctx: &Ctx,
    text: &str,
    writer: usize,
    k: usize,
    lo: u64,
    hi: u64,
) -> Result<(), String> {
    let w = &ctx.toks[writer].name;
    let seq = claimed_seq(text, w, k)
        .ok_or_else(|| format!("{w} f{k}: not a version of this file: {:.80?}", text))?;
    if !(lo..=hi).contains(&seq) {
        return Err(format!(
            "{w} f{k}: read version {seq}, expected {lo}..={hi} (stale or from the future)"
        ));
    }
    if text != content(w, k, seq) {
        return Err(format!("{w} f{k}: version {seq} is torn or corrupt"));
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Op {
    Write,
    ReadOwn,
    ReadOther,
    List,
    Glob,
    Grep,
}

const WRITER_MIX: [Op; 10] = [
    Op::Write,
    Op::ReadOwn,
    Op::ReadOther,
    Op::Write,
    Op::List,
    Op::ReadOwn,
    Op::Glob,
    Op::ReadOther,
    Op::Grep,
    Op::ReadOther,
];
const READER_MIX: [Op; 10] = [
    Op::ReadOther,
    Op::ReadOther,
    Op::List,
    Op::ReadOther,
    Op::Glob,
    Op::ReadOther,
    Op::Grep,
    Op::ReadOther,
    Op::ReadOther,
    Op::List,
];

/// Step `n` of token `i`'s workload; `others` is [`Ctx::visible`] for `i`.
async fn step(
    ctx: &Ctx,
    i: usize,
    others: &[(usize, usize)],
    n: u64,
    c: &Client,
    lat: &mut Vec<(&'static str, u32)>,
) -> Result<(), String> {
    let me = &ctx.toks[i];
    let own = me.rw_zone();
    let mix = if own.is_some() {
        &WRITER_MIX
    } else {
        &READER_MIX
    };
    let n_us = usize::try_from(n).expect("step fits usize");
    let op = mix[n_us % mix.len()];
    let k = (n_us / mix.len() + i) % FILES;
    // Whose files: our own for own-file operations, otherwise one of the visible writers in
    // turn (listings alternate between own and others' directories).
    let other = others[(n_us / 3 + i) % others.len()];
    let (z, w) = match (op, own) {
        (Op::Write | Op::ReadOwn, Some(z)) => (z, i),
        (Op::List | Op::Grep, Some(z)) if n_us % 20 < 10 => (z, i),
        _ => other,
    };
    let wname = &ctx.toks[w].name;
    let dir = format!("{}/soak/{wname}", me.root(z));
    let path = format!("{dir}/f{k}.txt");
    let st = ctx.file(w, k);
    match op {
        Op::Write => {
            let seq = st.started.load(Ordering::SeqCst) + 1;
            st.started.store(seq, Ordering::SeqCst);
            let body = content(wname, k, seq);
            let t = call(
                c,
                lat,
                "nexus_write_file",
                json!({"path": path, "content": body}),
            )
            .await?;
            let v = json_of("write", &t)?;
            if v["size"] != json!(body.len()) {
                return Err(format!("write {path}: result {v}"));
            }
            st.committed.store(seq, Ordering::SeqCst);
        }
        Op::ReadOwn | Op::ReadOther => {
            let lo = st.committed.load(Ordering::SeqCst);
            let t = call(c, lat, "nexus_read_file", json!({"path": path})).await?;
            let hi = st.started.load(Ordering::SeqCst);
            check_version(ctx, &t, w, k, lo, hi)
                .map_err(|e| format!("{} read {path}: {e}", me.name))?;
        }
        Op::List => {
            let t = call(c, lat, "nexus_list_files", json!({"path": dir})).await?;
            let v = json_of("list", &t)?;
            let names: BTreeSet<&str> = v["items"]
                .as_array()
                .map(|a| a.iter().filter_map(|it| it["name"].as_str()).collect())
                .unwrap_or_default();
            let want: BTreeSet<String> = (0..FILES).map(|k| format!("f{k}.txt")).collect();
            if names != want.iter().map(String::as_str).collect() {
                return Err(format!("{} list {dir}: {v}", me.name));
            }
        }
        Op::Glob => {
            let root = me.root(z);
            let at = if root.is_empty() {
                "/".to_owned()
            } else {
                root.clone()
            };
            let t = call(
                c,
                lat,
                "nexus_glob",
                json!({"pattern": format!("soak/*/f{k}.txt"), "path": at}),
            )
            .await?;
            let v = json_of("glob", &t)?;
            let got: BTreeSet<&str> = v["items"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let want: BTreeSet<String> = ctx
                .writers(z)
                .iter()
                .map(|&w| format!("{root}/soak/{}/f{k}.txt", ctx.toks[w].name))
                .collect();
            if got != want.iter().map(String::as_str).collect() {
                return Err(format!("{} glob in {at}: {v}, expected {want:?}", me.name));
            }
        }
        Op::Grep => {
            let lo = st.committed.load(Ordering::SeqCst);
            let t = call(
                c,
                lat,
                "nexus_grep",
                json!({"pattern": format!("^{wname} f{k} "), "path": dir}),
            )
            .await?;
            let hi = st.started.load(Ordering::SeqCst);
            let v = json_of("grep", &t)?;
            let hits = v["items"].as_array().cloned().unwrap_or_default();
            let ok = hits.len() == 1
                && hits[0]["path"] == json!(path)
                && hits[0]["line"] == 1
                && hits[0]["text"]
                    .as_str()
                    .and_then(|l| claimed_seq(l, wname, k))
                    .is_some_and(|s| (lo..=hi).contains(&s));
            if !ok {
                return Err(format!(
                    "{} grep {dir}: {v}, expected {path} at {lo}..={hi}",
                    me.name
                ));
            }
        }
    }
    Ok(())
}

struct Phase {
    calls: u64,
    lat: Vec<(&'static str, u32)>,
}

/// Drives token `i` until `until`: closed loop when `period` is `None`, else one step per
/// tick. Hands the (possibly reconnected) client back.
async fn drive(
    ctx: Arc<Ctx>,
    i: usize,
    mut c: Client,
    start_n: u64,
    until: Instant,
    period: Option<Duration>,
) -> (Client, u64, Phase) {
    let mut ticks = period.map(|p| {
        let mut t = tokio::time::interval(p);
        // Behind schedule (a slow call, a reconnect): carry on from now, never burst.
        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
        t
    });
    let mut out = Phase {
        calls: 0,
        lat: Vec::new(),
    };
    let mut n = start_n;
    let tok = &ctx.toks[i];
    let others = ctx.visible(i);
    while Instant::now() < until {
        if let Some(t) = ticks.as_mut() {
            t.tick().await;
            if Instant::now() >= until {
                break;
            }
        }
        if n > start_n && n.is_multiple_of(RECONNECT_EVERY) {
            match try_connect(&ctx.mcp_url, &tok.raw, tok.era).await {
                Ok(fresh) => {
                    let old = std::mem::replace(&mut c, fresh);
                    let _ = old.cancel().await;
                }
                Err(e) => ctx.fail(format!("{} reconnect: {e}", tok.name)),
            }
        }
        if let Err(e) = step(&ctx, i, &others, n, &c, &mut out.lat).await {
            ctx.fail(e);
        }
        out.calls += 1;
        n += 1;
    }
    (c, n, out)
}

/// `nexus hub …` against the database, as an operator on the hub host runs it.
fn hub_cli(db_url: &str, args: &[&str]) -> String {
    let (code, out, err) = run(hub_cmd(db_url).args(args));
    assert!(code == 0, "nexus hub {args:?}: {err}");
    out
}

fn soak_secs() -> u64 {
    match std::env::var("NEXUS_SOAK_SECS") {
        Ok(s) => s
            .trim()
            .parse()
            .ok()
            .filter(|&n| (10..=3600).contains(&n))
            .unwrap_or_else(|| panic!("NEXUS_SOAK_SECS={s:?}: seconds, 10 to 3600")),
        Err(_) => 120,
    }
}

/// Milliseconds at percentile `p` of sorted microseconds.
fn percentile(sorted: &[u32], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    f64::from(sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]) / 1000.0
}

/// `p50 … ms, p99 … ms, max … ms`, overall and then per tool.
fn latencies(lat: &[(&'static str, u32)]) -> String {
    let line = |mut v: Vec<u32>| {
        v.sort_unstable();
        format!(
            "{} calls, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            v.len(),
            percentile(&v, 50),
            percentile(&v, 99),
            percentile(&v, 100)
        )
    };
    let mut out = format!("  all: {}", line(lat.iter().map(|l| l.1).collect()));
    let tools: BTreeSet<&str> = lat.iter().map(|l| l.0).collect();
    for t in tools {
        let v = lat.iter().filter(|l| l.0 == t).map(|l| l.1).collect();
        out.push_str(&format!("\n  {t}: {}", line(v)));
    }
    out
}

/// CPU seconds (user + system, all threads) a process has used, from /proc/<pid>/stat.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ: the /proc ABI's fixed clock tick.
    Some(ticks as f64 / 100.0)
}

struct Sample {
    t: f64,
    rss: [u64; 2],
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_soaks_a_mixed_workload_without_errors_or_memory_growth() {
    let soak = Duration::from_secs(soak_secs());
    let db = TestDb::new(rpc_server::db::Backend::Postgres).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).expect("data dir");

    for z in 0..ZONES {
        hub_cli(&db.url, &["zone", "create", &zone(z)]);
    }
    let mut toks = Vec::new();
    for i in 0..TOKENS {
        let (grants, era) = plan(i);
        let name = format!("soak-t{i:02}");
        let spec = grants
            .iter()
            .map(|&(z, rw)| format!("{}:{}", zone(z), if rw { "rw" } else { "r" }))
            .collect::<Vec<_>>()
            .join(",");
        let out = hub_cli(
            &db.url,
            &[
                "token",
                "create",
                "--name",
                &name,
                "--zones",
                &spec,
                "--rate-limit",
                UNLIMITED,
                "--json",
            ],
        );
        let v: Value = serde_json::from_str(&out).expect("token create --json");
        let raw = v["token"].as_str().expect("token").to_owned();
        toks.push(Tok {
            name,
            raw,
            grants,
            era,
        });
    }

    let (rpc_port, mcp_port) = (free_port(), free_port());
    let cmd = serve_cmd(&db.url, &data, rpc_port);
    let (rpc, rpc_base) = start_nexusd("rpc-server", cmd, tmp.path(), rpc_port).await;
    let cmd = mcp_serve_cmd(&rpc_base, mcp_port);
    let (fe, _) = start_frontend("mcp-frontend", cmd, tmp.path(), mcp_port).await;

    let ctx = Arc::new(Ctx {
        mcp_url: format!("http://127.0.0.1:{mcp_port}/mcp"),
        files: (0..TOKENS * FILES).map(|_| FileState::default()).collect(),
        toks,
        errors: AtomicU64::new(0),
        first_errors: Mutex::new(Vec::new()),
    });

    // Connect everyone and write version 0 of every writer's files, so that every read,
    // listing and search has something definite to find.
    let mut clients = Vec::new();
    for t in &ctx.toks {
        let c = try_connect(&ctx.mcp_url, &t.raw, t.era)
            .await
            .unwrap_or_else(|e| panic!("{} connects: {e}", t.name));
        clients.push(c);
    }
    for (i, t) in ctx.toks.iter().enumerate() {
        let Some(z) = t.rw_zone() else { continue };
        for k in 0..FILES {
            let path = format!("{}/soak/{}/f{k}.txt", t.root(z), t.name);
            call(
                &clients[i],
                &mut Vec::new(),
                "nexus_write_file",
                json!({"path": path, "content": content(&t.name, k, 0)}),
            )
            .await
            .unwrap_or_else(|e| panic!("seed: {e}"));
        }
    }

    // Ramp: every client as fast as it can, to learn what this machine sustains.
    let t0 = Instant::now();
    let until = t0 + RAMP;
    let mut tasks = Vec::new();
    for (i, c) in clients.drain(..).enumerate() {
        tasks.push(tokio::spawn(drive(ctx.clone(), i, c, 0, until, None)));
    }
    let mut ramp_calls = 0;
    let mut ramp_lat = Vec::new();
    let mut next_n = Vec::new();
    for t in tasks {
        let (c, n, p) = t.await.expect("ramp client");
        clients.push(c);
        next_n.push(n);
        ramp_calls += p.calls;
        ramp_lat.extend(p.lat);
    }
    let ramp_secs = t0.elapsed().as_secs_f64();
    let max_rate = ramp_calls as f64 / ramp_secs;
    println!(
        "ramp: {ramp_calls} calls in {ramp_secs:.1} s = {max_rate:.0} calls/s\n{}",
        latencies(&ramp_lat)
    );
    assert!(ramp_calls > 0, "no call completed in the ramp");

    // Soak at half the measured rate, spread evenly over the clients.
    let target = max_rate / 2.0;
    let period = Duration::from_secs_f64(TOKENS as f64 / target);
    println!(
        "soak: {} s at a target of {target:.0} calls/s ({} clients, one call each per {:.1} ms)",
        soak.as_secs(),
        TOKENS,
        period.as_secs_f64() * 1000.0
    );
    let (rpc_pid, fe_pid) = (rpc.pid(), fe.pid());
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let ctx = ctx.clone();
        let mut procs = [rpc, fe];
        tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            let mut samples = Vec::new();
            // Bounded by the soak (plus slack), whatever the stop flag does.
            let limit = soak + Duration::from_secs(60);
            while !stop.load(Ordering::SeqCst) && start.elapsed() < limit {
                let rss = [procs[0].rss_kib(), procs[1].rss_kib()];
                if let [Some(a), Some(b)] = rss {
                    samples.push(Sample {
                        t: start.elapsed().as_secs_f64(),
                        rss: [a, b],
                    });
                } else {
                    for (p, r) in procs.iter().zip(rss) {
                        if r.is_none() {
                            ctx.fail(format!("{} is gone:\n{}", p.name, p.log_text()));
                        }
                    }
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            (procs, samples)
        })
    };
    let pids = [rpc_pid, fe_pid, std::process::id()];
    let cpu0 = pids.map(cpu_secs);
    let t0 = Instant::now();
    let until = t0 + soak;
    let mut tasks = Vec::new();
    for (i, c) in clients.drain(..).enumerate() {
        tasks.push(tokio::spawn(drive(
            ctx.clone(),
            i,
            c,
            next_n[i],
            until,
            Some(period),
        )));
    }
    let mut calls = 0;
    let mut lat = Vec::new();
    for t in tasks {
        let (c, _, p) = t.await.expect("soak client");
        clients.push(c);
        calls += p.calls;
        lat.extend(p.lat);
    }
    let soak_secs = t0.elapsed().as_secs_f64();
    let cpu1 = pids.map(cpu_secs);
    stop.store(true, Ordering::SeqCst);
    let (mut procs, samples) = sampler.await.expect("sampler");
    for c in clients {
        let _ = c.cancel().await;
    }

    let achieved = calls as f64 / soak_secs;
    println!(
        "soak: {calls} calls in {soak_secs:.1} s = {achieved:.1} calls/s (target {target:.1})\n{}",
        latencies(&lat)
    );
    for (name, (a, b)) in ["rpc-server", "mcp-frontend", "test clients"]
        .iter()
        .zip(cpu0.iter().zip(&cpu1))
    {
        if let (Some(a), Some(b)) = (a, b) {
            println!(
                "cpu {name:<12}: {:.1} s in the soak ({:.0} % of one core)",
                b - a,
                (b - a) / soak_secs * 100.0
            );
        }
    }

    // What the hub stores agrees with the last write of every file.
    for (i, t) in ctx.toks.iter().enumerate() {
        let Some(z) = t.rw_zone() else { continue };
        for k in 0..FILES {
            let seq = ctx.file(i, k).committed.load(Ordering::SeqCst);
            let rel = format!("soak/{}/f{k}.txt", t.name);
            let got = rpc_server::testing::stored_file(&db.store, &data, &zone(z), &rel)
                .await
                .unwrap_or_default();
            if got != content(&t.name, k, seq).as_bytes() {
                ctx.fail(format!("{}/{rel}: not version {seq} stored", zone(z)));
            }
        }
    }

    assert!(
        achieved >= MIN_RATE_FRACTION * target,
        "the soak reached {achieved:.1} calls/s, under {:.0} % of its target {target:.1}",
        MIN_RATE_FRACTION * 100.0
    );

    let errors = ctx.errors.load(Ordering::SeqCst);
    let first = ctx.first_errors.lock().expect("errors lock").clone();
    assert_eq!(
        errors,
        0,
        "{errors} errors; the first:\n{}",
        first.join("\n")
    );

    // Memory: after the warm-up, no process grows by MAX_GROWTH or more.
    assert!(samples.len() >= 10, "only {} RSS samples", samples.len());
    let warm_at = soak.as_secs_f64() * WARM_UP;
    let warm_idx = samples
        .iter()
        .position(|s| s.t >= warm_at)
        .unwrap_or(samples.len() - 1);
    let mut grown = Vec::new();
    for (j, p) in procs.iter_mut().enumerate() {
        let series: Vec<u64> = samples.iter().map(|s| s.rss[j]).collect();
        // RSS breathes by a few per cent as the allocator returns memory: the warm-up-end
        // value is the highest of its last few samples, so one dip cannot pass for growth.
        let warm = series[warm_idx.saturating_sub(WARM_END_SAMPLES - 1)..=warm_idx]
            .iter()
            .copied()
            .max()
            .unwrap_or(series[warm_idx]);
        let rest_max = series[warm_idx..].iter().copied().max().unwrap_or(warm);
        let growth = (rest_max as f64 - warm as f64) / warm as f64;
        println!(
            "rss {:<12} (pid {}): start {} KiB, warm-up end (t={:.0} s) {} KiB (max of its last {WARM_END_SAMPLES} samples {warm} KiB), end {} KiB, max {} KiB, max after warm-up {rest_max} KiB: {:+.1} %",
            p.name,
            p.pid(),
            series[0],
            samples[warm_idx].t,
            series[warm_idx],
            series[series.len() - 1],
            series.iter().max().copied().unwrap_or(0),
            growth * 100.0
        );
        if growth >= MAX_GROWTH {
            grown.push(format!("{} grew {:+.1} %", p.name, growth * 100.0));
        }
        let log = p.log_text();
        assert!(
            !log.contains("panicked") && !log.contains("ERROR"),
            "{} logged a panic or an error:\n{log}",
            p.name
        );
    }
    assert!(grown.is_empty(), "memory grew after the warm-up: {grown:?}");
}
