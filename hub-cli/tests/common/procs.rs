//! The servers as real processes (`nexus serve`, `nexus mcp serve`): spawned with a clean
//! environment, logs to a file, killed and reaped when dropped, and observed from /proc
//! (resident memory, open descriptors) as an operator would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `nexus` with every `NEXUS_*` (and `RUST_LOG`) variable of the test environment removed.
pub fn nexus_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nexus"));
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str()
            && (k.starts_with("NEXUS_") || k == "RUST_LOG")
        {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// A server process, killed and reaped when dropped whatever happened.
#[derive(Debug)]
pub struct Proc {
    pub name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Starts `cmd` with stderr (the log) in `<logs>/<name>.log` and stdout discarded.
    pub fn spawn(name: &'static str, mut cmd: Command, logs: &Path) -> Self {
        let log = logs.join(format!("{name}.log"));
        let f = std::fs::File::create(&log).expect("log file");
        // stdout carries the frontend's audit lines: not needed here, and never a full pipe.
        let child = cmd
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Self { name, child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process's resident set in KiB (VmRSS), or `None` once it is gone.
    pub fn rss_kib(&mut self) -> Option<u64> {
        if !self.alive() {
            return None;
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// How many descriptors the process holds open (sockets included), or `None` once it
    /// is gone.
    pub fn open_fds(&mut self) -> Option<usize> {
        if !self.alive() {
            return None;
        }
        Some(
            std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
                .ok()?
                .count(),
        )
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Waits (at most 30 s) until `url` answers 2xx; fails early, with its log, if `p` exits.
pub async fn wait_healthy(url: &str, p: &mut Proc) {
    let client = super::http();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        assert!(
            p.alive(),
            "{} exited before it was healthy:\n{}",
            p.name,
            p.log_text()
        );
        assert!(Instant::now() < deadline, "{url} not healthy in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `export K='v'` lines of a hub's admin.env, unquoted as the shell would.
pub fn parse_admin_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v)
                .replace("'\\''", "'");
            (k.to_owned(), v)
        })
        .collect()
}

/// An embedded hub (`nexus hub up`) in `data` on free ports, its log under `logs`, once
/// its nexusd is ready (the frontend may still be starting).
pub struct HubUp {
    pub proc: Proc,
    /// nexusd: `http://127.0.0.1:<port>`
    pub rpc_base: String,
    pub mcp_port: u16,
}

impl HubUp {
    pub async fn start(data: &Path, logs: &Path) -> Self {
        let (rpc_port, mcp_port) = (free_port(), free_port());
        let mut cmd = nexus_cmd();
        cmd.args(["hub", "up", "--data-dir"])
            .arg(data)
            .args(["--rpc-port", &rpc_port.to_string()])
            .args(["--mcp-port", &mcp_port.to_string()])
            .env("NEXUS_LOG_LEVEL", "warn");
        let mut proc = Proc::spawn("hub-up", cmd, logs);
        let rpc_base = format!("http://127.0.0.1:{rpc_port}");
        wait_healthy(&format!("{rpc_base}/healthz/ready"), &mut proc).await;
        Self {
            proc,
            rpc_base,
            mcp_port,
        }
    }
}
