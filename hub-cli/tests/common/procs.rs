//! The `nexus` binary as real processes, always with a clean environment: the servers
//! (`nexus serve`, `nexus mcp serve`, `nexus hub up`) logging to a file, killed and reaped
//! when dropped, and observed from /proc (resident memory, open descriptors) as an operator
//! would; and one-shot CLI runs, as exit code, stdout and stderr.

use rpc_server::testing::TEST_SECRET;
use std::ffi::OsStr;
use std::fmt::Debug;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Upper bound of one CLI run: a hang is a failure, not a wait.
pub const CLI_WAIT: Duration = Duration::from_secs(60);

/// `nexus` with every `NEXUS_*` (and `RUST_LOG`) variable of the test environment removed.
pub fn nexus_cmd() -> Command {
    clean_cmd(Path::new(env!("CARGO_BIN_EXE_nexus")))
}

/// `program` with every `NEXUS_*` (and `RUST_LOG`) variable of the test environment removed
/// and an empty stdin.
pub fn clean_cmd(program: &Path) -> Command {
    let mut cmd = Command::new(program);
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

/// `nexus hub` with only `db_url` and the test secret in its environment, as an operator
/// on the hub host runs it.
pub fn hub_cmd(db_url: &str) -> Command {
    let mut cmd = nexus_cmd();
    cmd.env("NEXUS_DATABASE_URL", db_url)
        .env("NEXUS_API_KEY_SECRET", TEST_SECRET)
        .arg("hub");
    cmd
}

/// Exit code (-1 when a signal ended the process), stdout and stderr of a finished run.
fn outcome(out: &Output) -> (i32, String, String) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// Runs `cmd` to the end; see [`outcome`].
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    outcome(&cmd.output().expect("run nexus"))
}

/// Runs `nexus <args>` with `env` added, killed if it outlives [`CLI_WAIT`]; see [`outcome`].
/// The live tokens of kind `oauth` as `nexus hub token list --json` prints them.
pub async fn oauth_tokens(env: &[(String, String)]) -> Vec<serde_json::Value> {
    let (code, listed, err) = run_nexus(&["hub", "token", "list", "--json"], env).await;
    assert_eq!(code, 0, "{err}");
    let tokens: serde_json::Value = serde_json::from_str(&listed).expect("json");
    tokens
        .as_array()
        .expect("array")
        .iter()
        .filter(|t| t["kind"] == "oauth")
        .cloned()
        .collect()
}

pub async fn run_nexus<S: AsRef<OsStr> + Debug>(
    args: &[S],
    env: &[(String, String)],
) -> (i32, String, String) {
    let mut cmd = nexus_cmd();
    cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(CLI_WAIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("nexus {args:?} hung"))
        .expect("run nexus");
    outcome(&out)
}

/// `nexus serve` on `db_url` with the test secret, data in `data`, on 127.0.0.1:`port`,
/// logging warnings only.
pub fn serve_cmd(db_url: &str, data: &Path, port: u16) -> Command {
    let mut cmd = nexus_cmd();
    cmd.arg("serve")
        .env("NEXUS_DATABASE_URL", db_url)
        .env("NEXUS_API_KEY_SECRET", TEST_SECRET)
        .env("NEXUS_DATA_DIR", data)
        .env("NEXUS_HOST", "127.0.0.1")
        .env("NEXUS_PORT", port.to_string())
        .env("NEXUS_LOG_LEVEL", "warn");
    cmd
}

/// `nexus mcp serve` in front of `rpc_base` on 127.0.0.1:`port`, logging warnings only.
pub fn mcp_serve_cmd(rpc_base: &str, port: u16) -> Command {
    let mut cmd = nexus_cmd();
    cmd.args(["mcp", "serve"])
        .env("NEXUS_URL", rpc_base)
        .env("NEXUS_MCP_HOST", "127.0.0.1")
        .env("NEXUS_MCP_PORT", port.to_string())
        .env("NEXUS_LOG_LEVEL", "warn");
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

/// Starts `cmd`, a nexusd on `port` ([`serve_cmd`], `hub up`), and waits until it is
/// ready; returns it and its base URL.
pub async fn start_nexusd(
    name: &'static str,
    cmd: Command,
    logs: &Path,
    port: u16,
) -> (Proc, String) {
    start_on(name, cmd, logs, port, "/healthz/ready").await
}

/// Starts `cmd`, an [`mcp_serve_cmd`] on `port`, and waits until it answers `/health`;
/// returns it and its base URL.
pub async fn start_frontend(
    name: &'static str,
    cmd: Command,
    logs: &Path,
    port: u16,
) -> (Proc, String) {
    start_on(name, cmd, logs, port, "/health").await
}

async fn start_on(
    name: &'static str,
    cmd: Command,
    logs: &Path,
    port: u16,
    health: &str,
) -> (Proc, String) {
    let base = format!("http://127.0.0.1:{port}");
    let mut p = Proc::spawn(name, cmd, logs);
    wait_healthy(&format!("{base}{health}"), &mut p).await;
    (p, base)
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
        let (proc, rpc_base) = start_nexusd("hub-up", cmd, logs, rpc_port).await;
        Self {
            proc,
            rpc_base,
            mcp_port,
        }
    }
}

/// `nexus hub up` in the foreground on ports the system picks, as an operator starts it:
/// stdout (the banner) read line by line, stderr drained so the pipe never fills. Killed
/// and reaped when dropped, whatever happened.
pub struct BannerHub {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
}

impl Drop for BannerHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl BannerHub {
    /// Bound of the wait for the whole banner: only against a hang.
    pub const BANNER_WAIT: Duration = Duration::from_secs(60);

    pub fn start(data_dir: &Path) -> Self {
        let mut child = nexus_cmd()
            .args(["hub", "up", "--data-dir"])
            .arg(data_dir)
            .args(["--rpc-port", "0", "--mcp-port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nexus hub up");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = err.read_to_end(&mut sink);
        });
        Self {
            child,
            lines,
            stdout: Vec::new(),
        }
    }

    /// Reads stdout until the banner's last line (`Operators: …`), at most
    /// [`Self::BANNER_WAIT`]; returns everything printed so far.
    pub fn banner(&mut self) -> Vec<String> {
        let deadline = Instant::now() + Self::BANNER_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let done = l.trim_start().starts_with("Operators:");
                    self.stdout.push(l);
                    if done {
                        return self.stdout.clone();
                    }
                }
                Err(_) => panic!(
                    "nexus hub up printed no complete banner within {:?}; exit: {:?}; stdout so far:\n{}",
                    Self::BANNER_WAIT,
                    self.child.try_wait().ok().flatten(),
                    self.stdout.join("\n")
                ),
            }
        }
    }

    /// SIGTERM, then wait (bounded) for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let st = Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "nexus hub up did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `nexus hub <args>` on the database; the stdout of a run that must succeed.
pub async fn hub(db_url: &str, args: &[&str]) -> String {
    let env = vec![
        ("NEXUS_DATABASE_URL".to_owned(), db_url.to_owned()),
        (
            "NEXUS_API_KEY_SECRET".to_owned(),
            rpc_server::testing::TEST_SECRET.to_owned(),
        ),
    ];
    let mut full = vec!["hub"];
    full.extend_from_slice(args);
    let (code, out, err) = run_nexus(&full, &env).await;
    assert_eq!(code, 0, "nexus {full:?}: {err}");
    out
}

/// HAProxy on a free loopback port, in HTTP mode, in front of `servers` (round robin);
/// `backend_extra` lines go into the backend (e.g. a header it sets). Waits (bounded) until
/// it accepts connections.
pub async fn haproxy(dir: &Path, servers: &[u16], backend_extra: &str) -> (Proc, u16) {
    let port = free_port();
    let cfg = dir.join("haproxy.cfg");
    let mut text = format!(
        "global\n  maxconn 200\n\
         defaults\n  mode http\n  option http-server-close\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         frontend mcp\n  bind 127.0.0.1:{port}\n  default_backend frontends\n\
         backend frontends\n  balance roundrobin\n{backend_extra}"
    );
    for (i, p) in servers.iter().enumerate() {
        text.push_str(&format!("  server s{i} 127.0.0.1:{p}\n"));
    }
    std::fs::write(&cfg, text).expect("write haproxy.cfg");
    let mut cmd = Command::new("/usr/sbin/haproxy");
    cmd.arg("-db").arg("-f").arg(&cfg);
    let proc = Proc::spawn("haproxy", cmd, dir);
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "haproxy did not start: {}",
            proc.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (proc, port)
}

/// The value after `key` (e.g. `"mcp: "`) on a line of `nexus hub up`'s banner.
pub fn field(lines: &[String], key: &str) -> Option<String> {
    lines.iter().find_map(|l| {
        l.trim_start()
            .strip_prefix(key)
            .map(|v| v.trim().to_owned())
    })
}

/// Where a test keeps what it saves for a person to look at (screenshots):
/// `$CARGO_TARGET_DIR/test-artifacts/<name>`.
pub fn artifacts(name: &str) -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("test-artifacts").join(name)
}
