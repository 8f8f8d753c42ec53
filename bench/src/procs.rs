//! The processes a benchmark runs: the release binaries built next to this one, started
//! on 127.0.0.1 ports, killed when dropped, with their resident memory read from /proc.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A release binary of this workspace if it was built (a binary some checkouts lack).
pub fn optional_binary(name: &str) -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    Some(me.with_file_name(name)).filter(|p| p.exists())
}

/// A release binary of this workspace (`nexusd`, `nexus`, `limit_server`), built by
/// bench/run next to the running benchmark.
pub fn binary(name: &str) -> PathBuf {
    let me = std::env::current_exe().expect("current exe");
    let path = me.with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: run the benchmarks with bench/run, which builds it",
        path.display()
    );
    path
}

/// A free loopback port (bound and released; the benchmark owns the machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A running child process, killed on drop.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Starts `cmd` (its stdout/stderr discarded unless `NEXUS_BENCH_VERBOSE` is set) and
    /// waits until `port` accepts connections.
    pub fn start(name: &str, cmd: Command, port: u16) -> Proc {
        Proc::try_start(name, cmd, port).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Proc::start`], with a process that exits or never listens as an error.
    pub fn try_start(name: &str, cmd: Command, port: u16) -> Result<Proc, String> {
        Proc::try_start_within(name, cmd, port, Duration::from_secs(30))
    }

    /// Like [`Proc::try_start`], waiting at most `wait` for it to listen (a first start
    /// that imports a large data directory).
    pub fn try_start_within(
        name: &str,
        mut cmd: Command,
        port: u16,
        wait: Duration,
    ) -> Result<Proc, String> {
        let quiet = std::env::var_os("NEXUS_BENCH_VERBOSE").is_none();
        if quiet {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let child = cmd.spawn().map_err(|e| format!("start {name}: {e}"))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut p = Proc {
            name: name.into(),
            child,
            addr,
        };
        let deadline = Instant::now() + wait;
        while std::net::TcpStream::connect(addr).is_err() {
            if let Ok(Some(st)) = p.child.try_wait() {
                return Err(format!(
                    "{name} exited with {st} before listening (NEXUS_BENCH_VERBOSE=1 shows why)"
                ));
            }
            if Instant::now() > deadline {
                return Err(format!("{name} did not listen on {addr}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(p)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now and at its peak, in bytes.
    pub fn rss(&self) -> Rss {
        rss(self.pid())
    }
}

/// Resident set size of a process: now and peak (`VmRSS`, `VmHWM`), and of now, the
/// anonymous part (heap, stacks) and the file-backed part (mostly the binary's code pages).
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    pub now: u64,
    pub peak: u64,
    pub anon: u64,
    pub file: u64,
}

pub fn rss(pid: u32) -> Rss {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    };
    Rss {
        now: field("VmRSS:"),
        peak: field("VmHWM:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
    }
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// CPU time a process has used so far (user + system), from /proc/<pid>/stat.
pub fn cpu_time(pid: u32) -> std::time::Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    let ticks: u64 = f.iter().sum();
    // Linux reports in USER_HZ, which is 100 on every architecture Linux supports today.
    std::time::Duration::from_millis(ticks * 10)
}

/// `nexus hub up` on `dir` with fresh rpc and mcp ports, none of the environment's
/// database, secret or Redis settings, and stdin closed. Returns the command and the mcp port.
pub fn hub_up_cmd(dir: &Path) -> (Command, u16) {
    let (rpc, mcp) = (free_port(), free_port());
    let mut cmd = Command::new(binary("nexus"));
    cmd.args(["hub", "up", "--data-dir"])
        .arg(dir)
        .args([
            "--rpc-port",
            &rpc.to_string(),
            "--mcp-port",
            &mcp.to_string(),
        ])
        .env_remove("NEXUS_DATABASE_URL")
        .env_remove("NEXUS_API_KEY_SECRET")
        .env_remove("NEXUS_REDIS_URL")
        .stdin(Stdio::null());
    (cmd, mcp)
}

/// The admin token `nexus hub up` saved in `dir`'s `admin.env`, once it has.
pub fn saved_token(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("admin.env")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("export NEXUS_API_KEY="))
        .map(|v| v.trim_matches('\'').to_owned())
}
