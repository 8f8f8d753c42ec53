//! Slow and hostile clients against both HTTP servers, run as real processes (`nexus serve`,
//! the rpc-server, and `nexus mcp serve`, the frontend, on a fresh Postgres database), with
//! short connection timeouts so the drills are quick:
//!
//! - headers trickled a byte at a time (slowloris) get no answer: each server closes the
//!   connection at its header-read timeout, long before the head could be complete; a
//!   kept-alive connection left idle after a request is closed at the idle timeout;
//! - a 1 GiB body announced by `Content-Length` on `/mcp` and `/api/nfs/{method}` gets 413
//!   before a single body byte is sent, and the connection is closed; a chunked body that
//!   streams past the 1 MiB limit gets 413 and its connection is cut, long before the
//!   client is done sending;
//! - 5,000 idle TCP connections opened at once to each server (10,000 in all) cost each
//!   process a bounded amount of memory (VmRSS from /proc, printed), all are closed by the
//!   header-read timeout (the servers' descriptors come back down), and meanwhile an rmcp
//!   client with a valid token has its tool calls served.

mod common;

use common::procs::{Proc, free_port, nexus_cmd, wait_healthy};
use common::{Era, STEP, connect, expect_ok, try_call};
use nexus_wire::methods::TokenCreateParams;
use rpc_server::auth::{InvalidationBus, TokenHasher};
use rpc_server::control::Control;
use rpc_server::testing::{TEST_SECRET, TestDb, test_secret};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Both servers' request-body limit in these drills.
const BODY_LIMIT: usize = 1024 * 1024;
/// Idle connections held open against each server at once.
const IDLE_CONNS: usize = 5_000;
/// Largest growth of either server's resident memory while they are open. Measured at
/// about 16 MiB (3.4 KiB per connection) for each server on a 2-core debug build; the
/// bound leaves room for allocator variance and still fails on anything like a buffer per
/// idle connection (8 KiB × 5,000 = 39 MiB).
const MAX_GROWTH_KIB: u64 = 32 * 1024;

/// Both servers on a fresh database, with one zone and one read-write token for it.
struct Stack {
    rpc: Proc,
    fe: Proc,
    rpc_port: u16,
    mcp_port: u16,
    token: String,
    _db: TestDb,
    _tmp: tempfile::TempDir,
}

impl Stack {
    /// Starts both servers with these connection timeouts (`1s`, `500ms`, …).
    async fn start(header_read: &str, idle: &str) -> Self {
        let db = TestDb::new(rpc_server::db::Backend::Postgres).await;
        let hasher = Arc::new(TokenHasher::new(&test_secret()).expect("secret"));
        let control = Control::new(db.store.clone(), hasher, InvalidationBus::new(), None);
        control.create_zone("eng").await.expect("zone");
        let token = control
            .create_token(TokenCreateParams {
                name: "agent".into(),
                zones: Some("eng:rw".into()),
                ..Default::default()
            })
            .await
            .expect("token")
            .token;
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        let (rpc_port, mcp_port) = (free_port(), free_port());
        let limit = BODY_LIMIT.to_string();

        let mut cmd = nexus_cmd();
        cmd.arg("serve")
            .env("NEXUS_DATABASE_URL", &db.url)
            .env("NEXUS_API_KEY_SECRET", TEST_SECRET)
            .env("NEXUS_DATA_DIR", &data)
            .env("NEXUS_HOST", "127.0.0.1")
            .env("NEXUS_PORT", rpc_port.to_string())
            .env("NEXUS_MAX_BODY_BYTES", &limit)
            .env("NEXUS_HEADER_READ_TIMEOUT", header_read)
            .env("NEXUS_IDLE_TIMEOUT", idle)
            .env("NEXUS_LOG_LEVEL", "warn");
        let mut rpc = Proc::spawn("rpc-server", cmd, tmp.path());
        wait_healthy(
            &format!("http://127.0.0.1:{rpc_port}/healthz/ready"),
            &mut rpc,
        )
        .await;

        let mut cmd = nexus_cmd();
        cmd.args(["mcp", "serve"])
            .env("NEXUS_URL", format!("http://127.0.0.1:{rpc_port}"))
            .env("NEXUS_MCP_HOST", "127.0.0.1")
            .env("NEXUS_MCP_PORT", mcp_port.to_string())
            .env("NEXUS_MCP_MAX_BODY_BYTES", &limit)
            .env("NEXUS_MCP_HEADER_READ_TIMEOUT", header_read)
            .env("NEXUS_MCP_IDLE_TIMEOUT", idle)
            .env("NEXUS_AUDIT_STDOUT", "false")
            .env("NEXUS_LOG_LEVEL", "warn");
        let mut fe = Proc::spawn("mcp-frontend", cmd, tmp.path());
        wait_healthy(&format!("http://127.0.0.1:{mcp_port}/health"), &mut fe).await;

        Self {
            rpc,
            fe,
            rpc_port,
            mcp_port,
            token,
            _db: db,
            _tmp: tmp,
        }
    }

    fn mcp_url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.mcp_port)
    }

    /// (name, port, a POST path that needs a token) of each server.
    fn targets(&self) -> [(&'static str, u16, &'static str); 2] {
        [
            ("mcp-frontend", self.mcp_port, "/mcp"),
            ("rpc-server", self.rpc_port, "/api/nfs/write"),
        ]
    }

    /// The head of an authenticated POST to `path`, ending in `framing` (a Content-Length or
    /// Transfer-Encoding line), as an MCP client or the frontend would send it.
    fn post_head(&self, port: u16, path: &str, framing: &str) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             {framing}\r\n\r\n",
            self.token
        )
    }

    /// Both servers still answer a plain request.
    async fn assert_serving(&self) {
        for url in [
            format!("http://127.0.0.1:{}/healthz/live", self.rpc_port),
            format!("http://127.0.0.1:{}/health", self.mcp_port),
        ] {
            let r = common::http().get(&url).send().await;
            assert!(
                r.as_ref().is_ok_and(|r| r.status().is_success()),
                "{url}: {r:?}"
            );
        }
    }
}

/// The soft descriptor limit raised to what `need` sockets take (up to the hard limit),
/// before the servers are spawned: they inherit it.
fn raise_fd_limit(need: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current.is_none_or(|soft| soft >= need) {
        return;
    }
    assert!(
        lim.maximum.is_none_or(|hard| hard >= need),
        "this drill holds {need} descriptors; the hard RLIMIT_NOFILE is {:?}",
        lim.maximum
    );
    lim.current = Some(need);
    setrlimit(Resource::Nofile, lim).expect("raise RLIMIT_NOFILE");
}

async fn connect_tcp(port: u16) -> TcpStream {
    tokio::time::timeout(STEP, TcpStream::connect(("127.0.0.1", port)))
        .await
        .expect("connect hung")
        .expect("connect")
}

/// Reads a response head; returns its status and text.
async fn read_head(s: &mut (impl AsyncRead + Unpin)) -> (u16, String) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(STEP, async {
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.expect("read a response");
            assert!(
                n > 0,
                "closed without a response: {:?}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("no response");
    let text = String::from_utf8_lossy(&seen).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    (status, text)
}

/// Reads until the peer closes (EOF or reset) or `within` passes; returns whether it
/// closed, and whatever arrived before.
async fn closes(s: &mut (impl AsyncRead + Unpin), within: Duration) -> (bool, Vec<u8>) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (closed, seen)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_heads_are_cut_and_idle_connections_closed() {
    let hub = Stack::start("1s", "2s").await;
    // Far slower than the 1 s header-read timeout allows: the head would take ~20 s.
    const PER_BYTE: Duration = Duration::from_millis(100);
    const LORIS: usize = 20;
    let mut drills = Vec::new();
    for (name, port, path) in hub.targets() {
        for i in 0..LORIS {
            let head = hub.post_head(port, path, "Content-Length: 2");
            drills.push(tokio::spawn(async move {
                let (mut rd, mut wr) = connect_tcp(port).await.into_split();
                let head_len = head.len();
                let sent = Arc::new(AtomicUsize::new(0));
                let count = sent.clone();
                let writer = tokio::spawn(async move {
                    for b in head.bytes() {
                        if wr.write_all(&[b]).await.is_err() {
                            break;
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(PER_BYTE).await;
                    }
                });
                let started = Instant::now();
                let (closed, got) = closes(&mut rd, Duration::from_secs(15)).await;
                let took = started.elapsed();
                writer.abort();
                let sent = sent.load(Ordering::Relaxed);
                assert!(closed, "{name} #{i}: a trickled head was not cut");
                assert!(
                    got.is_empty(),
                    "{name} #{i}: answered a trickled head: {:?}",
                    String::from_utf8_lossy(&got)
                );
                (name, took, sent, head_len)
            }));
        }
    }
    // Per server: the longest any trickled head lasted, and the most of it that went in.
    let mut worst = [(Duration::ZERO, 0, 0); 2];
    for d in drills {
        let (name, took, sent, head_len) = d.await.expect("slowloris drill");
        assert!(
            sent < head_len,
            "{name}: the whole {head_len}-byte head went in"
        );
        let w = &mut worst[usize::from(name == "rpc-server")];
        *w = (w.0.max(took), w.1.max(sent), head_len);
    }
    for (name, (took, sent, len)) in ["mcp-frontend", "rpc-server"].into_iter().zip(worst) {
        println!(
            "{name}: {LORIS} trickled heads cut within {took:?}, at most {sent} of {len} bytes sent"
        );
    }

    // A kept-alive connection after one answered request: closed once idle for 2 s.
    for (name, port, _) in hub.targets() {
        let health = if name == "rpc-server" {
            "/healthz/live"
        } else {
            "/health"
        };
        let mut s = connect_tcp(port).await;
        s.write_all(format!("GET {health} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let (status, _) = read_head(&mut s).await;
        assert_eq!(status, 200, "{name} {health}");
        let started = Instant::now();
        let (closed, _) = closes(&mut s, Duration::from_secs(15)).await;
        assert!(closed, "{name}: an idle kept-alive connection stayed open");
        println!(
            "{name}: idle kept-alive connection closed after {:?}",
            started.elapsed()
        );
    }
    hub.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_endless_bodies_get_413_and_a_closed_connection() {
    let hub = Stack::start("5s", "5s").await;
    for (name, port, path) in hub.targets() {
        // 1 GiB announced, nothing sent: the answer cannot depend on reading the body.
        let mut s = connect_tcp(port).await;
        s.write_all(
            hub.post_head(port, path, "Content-Length: 1073741824")
                .as_bytes(),
        )
        .await
        .expect("write head");
        let (status, head) = read_head(&mut s).await;
        assert_eq!(status, 413, "{name} {path}, 1 GiB declared: {head}");
        let (closed, _) = closes(&mut s, STEP).await;
        assert!(closed, "{name}: connection left open after refusing 1 GiB");

        // A chunked body that never ends: cut at the limit, with 413.
        const CHUNK: usize = 64 * 1024;
        const CAP: usize = 64 * BODY_LIMIT;
        let (mut rd, mut wr) = connect_tcp(port).await.into_split();
        let head = hub.post_head(port, path, "Transfer-Encoding: chunked");
        let writer = tokio::spawn(async move {
            wr.write_all(head.as_bytes()).await.expect("write head");
            let mut chunk = format!("{CHUNK:x}\r\n").into_bytes();
            chunk.extend(std::iter::repeat_n(b'x', CHUNK));
            chunk.extend_from_slice(b"\r\n");
            let mut sent = 0;
            while sent < CAP {
                if wr.write_all(&chunk).await.is_err() {
                    return (sent, true);
                }
                sent += CHUNK;
            }
            (sent, false)
        });
        let (status, head) = read_head(&mut rd).await;
        assert_eq!(status, 413, "{name} {path}, endless chunked body: {head}");
        let (closed, _) = closes(&mut rd, STEP).await;
        assert!(closed, "{name}: connection left open after 413");
        let (sent, cut) = tokio::time::timeout(STEP, writer)
            .await
            .expect("the writer was never cut off")
            .expect("writer");
        assert!(
            cut && sent < CAP,
            "{name}: {sent} body bytes went in without the connection being cut"
        );
        println!(
            "{name}: chunked body cut with 413 after {:.1} MiB sent (limit {:.1} MiB)",
            sent as f64 / 1048576.0,
            BODY_LIMIT as f64 / 1048576.0
        );
    }
    hub.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_cost_bounded_memory_and_are_closed() {
    // Ours (2 × 5,000) and, inherited, each server's 5,000, with room for the rest.
    raise_fd_limit(2 * IDLE_CONNS as u64 + 1024);
    // Long enough for all 5,000 to be open at once before the first is closed, even on a
    // machine busy with other tests. The idle timeout is longer: it must not close the MCP
    // client's own kept-alive connection while the drill runs.
    let mut hub = Stack::start("15s", "60s").await;
    let mcp_url = hub.mcp_url();

    // Warm up both processes on the path the client will take, then take the baseline.
    let client = connect(&mcp_url, &hub.token, Era::Stateless).await;
    expect_ok(
        "write before",
        try_call(
            &client,
            "nexus_write_file",
            json!({"path": "/before.txt", "content": "before"}),
        )
        .await,
    );
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base_rss = [hub.rpc.rss_kib(), hub.fe.rss_kib()].map(|r| r.expect("running"));
    let base_fds = [hub.rpc.open_fds(), hub.fe.open_fds()].map(|r| r.expect("running"));

    // Open them all, as fast as loopback takes them.
    let opened_at = Instant::now();
    let mut sockets: Vec<Vec<TcpStream>> = Vec::new();
    for port in [hub.rpc_port, hub.mcp_port] {
        let mut set = tokio::task::JoinSet::new();
        let gate = Arc::new(tokio::sync::Semaphore::new(128));
        for _ in 0..IDLE_CONNS {
            let gate = gate.clone();
            set.spawn(async move {
                let _p = gate.acquire_owned().await.expect("gate");
                connect_tcp(port).await
            });
        }
        let mut v = Vec::with_capacity(IDLE_CONNS);
        while let Some(s) = set.join_next().await {
            v.push(s.expect("connect task"));
        }
        sockets.push(v);
    }
    let open_took = opened_at.elapsed();

    // Until each server holds them all (accepted, not just queued by the kernel).
    let deadline = Instant::now() + Duration::from_secs(12);
    loop {
        let fds = [hub.rpc.open_fds(), hub.fe.open_fds()].map(|r| r.expect("running"));
        if (0..2).all(|i| fds[i] >= base_fds[i] + IDLE_CONNS) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the servers accepted only {fds:?} descriptors (baseline {base_fds:?}) of {IDLE_CONNS} connections each"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // While they are all open: a real client is served, and memory is sampled.
    let mut peak = base_rss;
    let mut sample = |hub: &mut Stack| {
        for (i, r) in [hub.rpc.rss_kib(), hub.fe.rss_kib()]
            .into_iter()
            .enumerate()
        {
            peak[i] = peak[i].max(r.expect("running"));
        }
    };
    sample(&mut hub);
    let t = Instant::now();
    let client = connect(&mcp_url, &hub.token, Era::Stateless).await;
    expect_ok(
        "write while flooded",
        try_call(
            &client,
            "nexus_write_file",
            json!({"path": "/during.txt", "content": "during"}),
        )
        .await,
    );
    let read = expect_ok(
        "read while flooded",
        try_call(&client, "nexus_read_file", json!({"path": "/before.txt"})).await,
    );
    assert_eq!(read, "before");
    let served_in = t.elapsed();
    for _ in 0..5 {
        sample(&mut hub);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Reported, not asserted: on a slow machine the first may already be timing out.
    let open_fds = [hub.rpc.open_fds(), hub.fe.open_fds()].map(|r| r.expect("running"));

    // Every idle connection is closed by the servers (header-read timeout, 15 s from accept).
    let closing = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for s in sockets.into_iter().flatten() {
        set.spawn(async move {
            let mut s = s;
            closes(&mut s, Duration::from_secs(30)).await.0
        });
    }
    let mut still_open = 0;
    while let Some(closed) = set.join_next().await {
        if !closed.expect("close watch") {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "idle connections the servers never closed");
    let closed_in = closing.elapsed();
    let deadline = Instant::now() + Duration::from_secs(5);
    let after_fds = loop {
        let fds = [hub.rpc.open_fds(), hub.fe.open_fds()].map(|r| r.expect("running"));
        if (0..2).all(|i| fds[i] <= base_fds[i] + 16) || Instant::now() >= deadline {
            break fds;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let after_rss = [hub.rpc.rss_kib(), hub.fe.rss_kib()].map(|r| r.expect("running"));

    // And the client still works once they are gone.
    expect_ok(
        "whoami after",
        try_call(&client, "nexus_whoami", json!({})).await,
    );

    println!(
        "{IDLE_CONNS} idle connections to each server opened in {open_took:?}; \
         an MCP write and read served in {served_in:?} meanwhile; \
         all closed {closed_in:?} after measuring"
    );
    for (i, name) in ["rpc-server", "mcp-frontend"].into_iter().enumerate() {
        let growth = peak[i].saturating_sub(base_rss[i]);
        println!(
            "{name}: RSS {:.1} MiB before, {:.1} MiB peak with {IDLE_CONNS} open (+{:.1} MiB, \
             {:.0} bytes per connection), {:.1} MiB after; descriptors {} → {} → {}",
            mib(base_rss[i]),
            mib(peak[i]),
            mib(growth),
            growth as f64 * 1024.0 / IDLE_CONNS as f64,
            mib(after_rss[i]),
            base_fds[i],
            open_fds[i],
            after_fds[i],
        );
        assert!(
            growth < MAX_GROWTH_KIB,
            "{name}: RSS grew by {:.1} MiB for {IDLE_CONNS} idle connections (bound {:.0} MiB)",
            mib(growth),
            mib(MAX_GROWTH_KIB)
        );
        assert!(
            after_fds[i] <= base_fds[i] + 16,
            "{name}: {} descriptors still open after the flood (baseline {})",
            after_fds[i],
            base_fds[i]
        );
    }
}
