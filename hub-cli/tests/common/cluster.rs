//! A hub of many nodes as real processes, for the replica drill: one Postgres database
//! (migrated and provisioned with the `nexus hub` CLI), one Redis, SeaweedFS as the blob
//! store, several `nexus serve` (nexusd) behind HAProxy A, several `nexus mcp serve`
//! sharing one session secret in front of HAProxy A and behind HAProxy B. Any node can be
//! SIGKILLed and restarted on its port; everything is killed and reaped when dropped.

use super::procs::{Proc, free_port, hub, mcp_serve_cmd, serve_cmd, start_frontend};
use nexus_blobs::testing::SeaweedFs;
use rpc_server::testing::{DropDatabase, empty_postgres_database, redis_url};
use std::path::Path;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How many of each node, and how small a file must be to stay inline in the database.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub nexusd: usize,
    pub frontends: usize,
    /// `NEXUS_STORAGE_INLINE_MAX` of each nexusd, by index (missing: the default).
    pub inline_max: Vec<Option<u64>>,
    pub zones: Vec<String>,
}

/// One server process on a fixed port, `None` while it is down.
#[derive(Debug)]
pub struct Node {
    pub port: u16,
    pub base: String,
    proc: Option<Proc>,
    starts: usize,
}

/// The whole hub. Field order is drop order: the load balancers and servers go first, the
/// stores they use last.
pub struct Cluster {
    pub haproxy_b: Proc,
    pub haproxy_a: Proc,
    pub frontends: Vec<Node>,
    pub nexusd: Vec<Node>,
    /// `http://127.0.0.1:<port>`: HAProxy A, round robin over every nexusd.
    pub rpc_lb: String,
    /// `http://127.0.0.1:<port>/mcp`: HAProxy B, round robin over every frontend.
    pub mcp_lb: String,
    pub db_url: String,
    pub redis_url: String,
    pub session_secret: String,
    pub haproxy_a_cfg: String,
    pub haproxy_b_cfg: String,
    pub weed: SeaweedFs,
    storage_url: String,
    spec: ClusterSpec,
    data: Vec<TempDir>,
    pub logs: TempDir,
    _db: DropDatabase,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("rpc_lb", &self.rpc_lb)
            .field("mcp_lb", &self.mcp_lb)
            .finish_non_exhaustive()
    }
}

/// A process name for a log file (`Proc` wants a `&'static str`; tests start a handful).
fn name(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The HAProxy configuration of a round robin over `servers` on `port`, nothing sticky:
/// a server marked down after two failed `/health` checks (every 300 ms, each allowed 2 s
/// on a busy host) and up after one good one; a request whose connection failed is sent to
/// another server; a new server connection per request. `close_clients` closes the client
/// connection after each answer too: HAProxy closes a kept-alive client connection without
/// any answer when a server dies before answering a request that was not the connection's
/// first, and the drill wants that seen as the 502 it is. The client side otherwise stays
/// open longer than the frontend's idle pool (90 s), so HAProxy never closes a connection
/// the frontend is about to reuse.
pub fn haproxy_config(port: u16, backend: &str, servers: &[u16], close_clients: bool) -> String {
    let mode = if close_clients {
        "httpclose"
    } else {
        "http-server-close"
    };
    let mut cfg = format!(
        "global\n  maxconn 4000\n\
         defaults\n  mode http\n  option {mode}\n  timeout connect 2s\n  \
         timeout client 180s\n  timeout http-keep-alive 180s\n  timeout server 60s\n  \
         timeout check 2s\n  retries 3\n  option redispatch\n\
         frontend {backend}_in\n  bind 127.0.0.1:{port}\n  default_backend {backend}\n\
         backend {backend}\n  balance roundrobin\n  option httpchk\n  \
         http-check send meth GET uri /health ver HTTP/1.1 hdr Host 127.0.0.1\n  \
         default-server check inter 300ms fall 2 rise 1\n"
    );
    for (i, p) in servers.iter().enumerate() {
        cfg.push_str(&format!("  server {backend}{i} 127.0.0.1:{p}\n"));
    }
    cfg
}

async fn start_haproxy(label: &str, cfg: &str, port: u16, logs: &Path) -> Proc {
    let file = logs.join(format!("{label}.cfg"));
    std::fs::write(&file, cfg).expect("write haproxy config");
    let mut cmd = std::process::Command::new("/usr/sbin/haproxy");
    cmd.arg("-db").arg("-f").arg(&file);
    let p = Proc::spawn(name(label.to_owned()), cmd, logs);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "{label} did not start: {}",
            p.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p
}

impl Cluster {
    /// Starts everything and waits until every node is ready and both balancers route.
    /// `None` only when the S3 tests are switched off (`NEXUS_TEST_SKIP_S3=1`).
    pub async fn start(spec: ClusterSpec) -> Option<Self> {
        let weed = SeaweedFs::start().await?;
        let db_url = empty_postgres_database("nexus_drill").await;
        let db_name = db_url.rsplit_once('/').expect("db name").1.to_owned();
        let guard = DropDatabase(db_name);
        hub(&db_url, &["migrate"]).await;
        for z in &spec.zones {
            hub(&db_url, &["zone", "create", z]).await;
        }
        let logs = tempfile::tempdir().expect("log dir");
        let mut secret = [0u8; 32];
        getrandom(&mut secret);
        let session_secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();

        let nexusd: Vec<Node> = (0..spec.nexusd)
            .map(|_| {
                let port = free_port();
                Node {
                    port,
                    base: format!("http://127.0.0.1:{port}"),
                    proc: None,
                    starts: 0,
                }
            })
            .collect();
        let frontends: Vec<Node> = (0..spec.frontends)
            .map(|_| {
                let port = free_port();
                Node {
                    port,
                    base: format!("http://127.0.0.1:{port}"),
                    proc: None,
                    starts: 0,
                }
            })
            .collect();
        let (a_port, b_port) = (free_port(), free_port());
        let haproxy_a_cfg = haproxy_config(
            a_port,
            "nexusd",
            &nexusd.iter().map(|n| n.port).collect::<Vec<_>>(),
            false,
        );
        let haproxy_b_cfg = haproxy_config(
            b_port,
            "frontends",
            &frontends.iter().map(|n| n.port).collect::<Vec<_>>(),
            true,
        );
        let haproxy_a = start_haproxy("haproxy-a", &haproxy_a_cfg, a_port, logs.path()).await;
        let haproxy_b = start_haproxy("haproxy-b", &haproxy_b_cfg, b_port, logs.path()).await;
        let data = (0..spec.nexusd)
            .map(|_| tempfile::tempdir().expect("data dir"))
            .collect();
        let mut me = Self {
            haproxy_b,
            haproxy_a,
            frontends,
            nexusd,
            rpc_lb: format!("http://127.0.0.1:{a_port}"),
            mcp_lb: format!("http://127.0.0.1:{b_port}/mcp"),
            db_url,
            redis_url: redis_url(),
            session_secret,
            haproxy_a_cfg,
            haproxy_b_cfg,
            storage_url: weed.storage_url("drill"),
            weed,
            spec,
            data,
            logs,
            _db: guard,
        };
        for i in 0..me.nexusd.len() {
            me.start_nexusd(i).await;
        }
        for i in 0..me.frontends.len() {
            me.start_frontend(i).await;
        }
        Some(me)
    }

    /// Mints a token with `zones` (e.g. `z0:rw`) through `nexus hub token create`, its rate
    /// limit out of the drill's way; returns the raw token.
    pub async fn mint(&self, name: &str, zones: &str) -> String {
        let out = hub(
            &self.db_url,
            &[
                "token",
                "create",
                "--name",
                name,
                "--zones",
                zones,
                "--rate-limit",
                "1000000/s",
                "--json",
            ],
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(&out).expect("token create --json");
        v["token"].as_str().expect("token").to_owned()
    }

    /// Starts (or restarts) nexusd `i` on its port and data dir; waits until it is ready.
    pub async fn start_nexusd(&mut self, i: usize) {
        let node = &mut self.nexusd[i];
        assert!(node.proc.is_none(), "nexusd {i} is running");
        let mut cmd = serve_cmd(&self.db_url, self.data[i].path(), node.port);
        cmd.env("NEXUS_STORAGE_URL", &self.storage_url)
            .env("NEXUS_REDIS_URL", &self.redis_url)
            .env("NEXUS_RATE_LIMIT_TOKEN", "1000000/s")
            .env("NEXUS_GREP_CONCURRENCY", "64")
            .env("NEXUS_GREP_PER_TOKEN", "8");
        for (k, v) in self.weed.aws_env() {
            cmd.env(k, v);
        }
        if let Some(Some(max)) = self.spec.inline_max.get(i) {
            cmd.env("NEXUS_STORAGE_INLINE_MAX", max.to_string());
        }
        node.starts += 1;
        let label = name(format!("nexusd-{i}-start-{}", node.starts));
        let (p, _) = super::procs::start_nexusd(label, cmd, self.logs.path(), node.port).await;
        node.proc = Some(p);
    }

    /// Starts (or restarts) frontend `i`; waits until it answers `/health`.
    pub async fn start_frontend(&mut self, i: usize) {
        let node = &mut self.frontends[i];
        assert!(node.proc.is_none(), "frontend {i} is running");
        let mut cmd = mcp_serve_cmd(&self.rpc_lb, node.port);
        cmd.env("NEXUS_MCP_SESSION_SECRET", &self.session_secret)
            .env("NEXUS_REDIS_URL", &self.redis_url)
            .env("NEXUS_AUDIT_STDOUT", "false");
        node.starts += 1;
        let label = name(format!("frontend-{i}-start-{}", node.starts));
        let (p, _) = start_frontend(label, cmd, self.logs.path(), node.port).await;
        node.proc = Some(p);
    }

    /// SIGKILL (`Child::kill`) nexusd `i` and reap it.
    pub fn kill_nexusd(&mut self, i: usize) {
        drop(self.nexusd[i].proc.take().expect("nexusd running"));
    }

    /// SIGKILL frontend `i` and reap it.
    pub fn kill_frontend(&mut self, i: usize) {
        drop(self.frontends[i].proc.take().expect("frontend running"));
    }

    /// The `/mcp` URL of frontend `i`, bypassing HAProxy B.
    pub fn frontend_mcp(&self, i: usize) -> String {
        format!("{}/mcp", self.frontends[i].base)
    }

    /// Every log of the drill's processes, for a failure message (the last lines of each).
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        let Ok(rd) = std::fs::read_dir(self.logs.path()) else {
            return out;
        };
        let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            if !tail.is_empty() {
                out.push_str(&format!(
                    "--- {}\n{}\n",
                    f.file_name().unwrap_or_default().to_string_lossy(),
                    tail.join("\n")
                ));
            }
        }
        out
    }
}

/// Random bytes from the OS (the session secret).
fn getrandom(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("read /dev/urandom");
}
