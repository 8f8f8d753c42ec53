//! Startup: `nexus hub up` (embedded SQLite, both servers in one process) from the command
//! to the first successful tool call, on a fresh data dir (database, migrations, secret,
//! zone and admin token created) and on a restart of the same data dir; next to the same
//! measure for the bare rmcp limit server (spawn → first successful `nexus_read_file`).
//!
//! Usage: startup [--quick]   (run it with bench/run, which builds the binaries)

use nexus_bench::loadgen::{Conn, Replay};
use nexus_bench::procs::{Proc, binary, free_port, hub_up_cmd, saved_token};
use nexus_bench::{Sample, report, summarize};
use serde_json::{Map, json};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Upper bound of one start; a start slower than this is a failure, not a figure.
const LIMIT: Duration = Duration::from_secs(60);

/// Polls until `r` (with the token `token()` yields, once it can) succeeds at `addr`.
async fn first_success(
    started: Instant,
    addr: SocketAddr,
    r: &Replay,
    token: impl Fn() -> Option<String>,
) -> Duration {
    loop {
        assert!(
            started.elapsed() < LIMIT,
            "no successful call within {LIMIT:?}"
        );
        if let Some(t) = token() {
            let req = r.to(addr, Some(&t).filter(|t| !t.is_empty()).map(String::as_str));
            if let Ok(mut c) = Conn::open(addr).await
                && c.call(&req).await.is_ok()
            {
                return started.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The admin token `hub up` saved, once admin.env is there.
async fn hub_up(dir: &Path, whoami: &Replay) -> Duration {
    let (mut cmd, mcp) = hub_up_cmd(dir);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let started = Instant::now();
    let child = cmd.spawn().expect("start nexus hub up");
    let addr: SocketAddr = ([127, 0, 0, 1], mcp).into();
    let p = Proc {
        name: "nexus hub up".into(),
        child,
        addr,
    };
    let took = first_success(started, addr, whoami, || saved_token(dir)).await;
    drop(p);
    took
}

async fn limit_up(root: &Path, read: &Replay) -> Duration {
    let port = free_port();
    let mut cmd = Command::new(binary("limit_server"));
    cmd.arg("direct")
        .arg(port.to_string())
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let child = cmd.spawn().expect("start limit_server");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let p = Proc {
        name: "limit_server".into(),
        child,
        addr,
    };
    let took = first_success(started, addr, read, || Some(String::new())).await;
    drop(p);
    took
}

fn sample(name: &str, times: Vec<Duration>) -> Sample {
    let total = times.iter().sum();
    summarize(name, times, total)
}

#[tokio::main]
async fn main() {
    let runs = if std::env::args().any(|a| a == "--quick") {
        5
    } else {
        15
    };
    let mut args = Map::new();
    args.insert("path".into(), json!("/kb.txt"));
    let read = nexus_bench::limit::record_call("nexus_read_file", args)
        .await
        .expect("record a call");
    let whoami = read.calling("nexus_whoami", json!({}));
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(root.path().join("kb.txt"), "x".repeat(1023) + "\n").expect("write");

    let mut limit = Vec::new();
    let mut fresh = Vec::new();
    let mut again = Vec::new();
    for _ in 0..runs {
        limit.push(limit_up(root.path(), &read).await);
        let dir = tempfile::tempdir().expect("tempdir");
        fresh.push(hub_up(dir.path(), &whoami).await);
        again.push(hub_up(dir.path(), &whoami).await);
    }
    println!("{runs} starts each; time from spawn to the first successful tool call");
    report(
        &sample("limit: rmcp server process, no state", limit),
        &[
            &sample("nexus hub up, fresh data dir", fresh),
            &sample("nexus hub up, restart on the same data dir", again),
        ],
    );
}
