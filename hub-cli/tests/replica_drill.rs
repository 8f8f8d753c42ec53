//! The replica drill (SPEC §12, "many nodes"): three nexusd on one Postgres database, one
//! Redis, SeaweedFS as the blob store, behind HAProxy A (round robin, nothing sticky); two
//! frontends sharing one session secret behind HAProxy B. Twenty clients (one token each,
//! minted with `nexus hub token create`, spread over two zones) load it through HAProxy B,
//! stateless and in legacy sessions: writes, edits and renames of their own files (every
//! mutation conditional on the content they last saw), reads, cross-client reads, globs,
//! greps and listings.
//!
//! Proves: every file a reader ever sees validates (a header naming its path, version,
//! length and SHA-256), so no torn or foreign read; N racers writing one file with the same
//! `if_match` through different frontends and nexusd have exactly one winner per round; a
//! session opened on one frontend continues on the other, also after the first was killed;
//! with one nexusd and one frontend SIGKILLed and restarted, and SeaweedFS restarted, under
//! load, clients see only retriable errors (HTTP 502/503, JSON-RPC −32010 "unavailable")
//! and only while something is down; afterwards every acknowledged write reads back
//! byte-identical from every nexusd directly and through both frontends.
//!
//! Short by default (a CI test); `NEXUS_DRILL_LONG=1` runs more clients, zones, rounds and
//! kill cycles. The figures are printed with eprintln (run with `--nocapture`).

use crate::common;

use common::cluster::{Cluster, ClusterSpec};
use common::mcp::{headers, initialize_body, session_call_body, stateless_call_body};
use rpc_server::testing::sha256_hex;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bound of one HTTP exchange: longer than the frontend's own bound of a forwarded call
/// (`NEXUS_MCP_RPC_TIMEOUT`, 30 s), so a call that hangs behind it ends as the frontend's
/// 503, not as a client that gave up.
const CALL_TIMEOUT: Duration = Duration::from_secs(45);
/// Bound of the wait for a file's state to be readable again after an unknown outcome.
const RESOLVE_TRIES: usize = 150;
/// Operations a client does at most (the drill stops it long before).
const MAX_OPS: usize = 1_000_000;
/// How long the window of a disturbance stays open after everything is back: requests
/// that started before it may still end with its errors.
const SETTLE: Duration = Duration::from_millis(1500);

/// The sizes of the drill.
#[derive(Debug, Clone, Copy)]
struct Plan {
    clients: usize,
    zones: usize,
    /// Every `sessions`-th client works in a legacy MCP session, the others stateless.
    sessions: usize,
    racers: usize,
    race_rounds: usize,
    kill_cycles: usize,
    /// Load before the first and after the last disturbance.
    calm: Duration,
    /// How long a killed node stays down.
    down: Duration,
}

impl Plan {
    fn from_env() -> Self {
        if std::env::var("NEXUS_DRILL_LONG").is_ok_and(|v| v == "1") {
            Self {
                clients: 40,
                zones: 3,
                sessions: 4,
                racers: 8,
                race_rounds: 10,
                kill_cycles: 3,
                calm: Duration::from_secs(20),
                down: Duration::from_secs(4),
            }
        } else {
            Self {
                clients: 20,
                zones: 2,
                sessions: 5,
                racers: 8,
                race_rounds: 3,
                kill_cycles: 1,
                calm: Duration::from_secs(3),
                down: Duration::from_millis(1500),
            }
        }
    }
}

// ---- self-validating content ---------------------------------------------------------------

/// xorshift64*: sizes, bodies, choices.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Mostly files small enough to stay inline everywhere, some inline only on the nexusd with
/// the default threshold, a few in the blob store on every node.
fn pick_size(rng: &mut Rng) -> usize {
    (match rng.below(10) {
        0..=4 => 16 + rng.below(200),
        5..=8 => 300 + rng.below(8000),
        _ => 20_000 + rng.below(100_000),
    }) as usize
}

fn header(stem: &str, version: u64, len: usize, sha: &str) -> String {
    format!("NXS1 {stem} v={version} len={len} sha={sha}")
}

/// `NXS1 <stem> v=<version> len=<body bytes> sha=<sha256 of body>\n<body>`, the body
/// lowercase text (no body line looks like a header).
fn content(stem: &str, version: u64, len: usize, rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789 ";
    let mut body = Vec::with_capacity(len);
    let mut word = rng.next();
    for i in 0..len {
        if i % 80 == 79 {
            body.push(b'\n');
            continue;
        }
        if i.is_multiple_of(8) {
            word = rng.next();
        }
        body.push(ALPHABET[((word >> ((i % 8) * 8)) & 0xff) as usize % ALPHABET.len()]);
    }
    let body = String::from_utf8(body).expect("ascii");
    format!(
        "{}\n{body}",
        header(stem, version, len, &sha256_hex(body.as_bytes()))
    )
}

/// (stem, version, len, sha) of a header line.
fn parse_header(line: &str) -> Option<(String, u64, usize, String)> {
    let mut parts = line.split(' ');
    if parts.next()? != "NXS1" {
        return None;
    }
    let stem = parts.next()?.to_owned();
    let version = parts.next()?.strip_prefix("v=")?.parse().ok()?;
    let len = parts.next()?.strip_prefix("len=")?.parse().ok()?;
    let sha = parts.next()?.strip_prefix("sha=")?.to_owned();
    parts.next().is_none().then_some((stem, version, len, sha))
}

/// The name a file's header carries: its path, except that a renamed file (`X.a.txt`,
/// `X.b.txt`) names `X` wherever it is.
fn stem_of(path: &str) -> &str {
    path.strip_suffix(".a.txt")
        .or_else(|| path.strip_suffix(".b.txt"))
        .unwrap_or(path)
}

/// The version `text` read at `path` holds, or why it is torn or foreign.
fn validate(path: &str, text: &str) -> Result<u64, String> {
    let (head, body) = text
        .split_once('\n')
        .ok_or_else(|| format!("{path}: no header line ({} bytes)", text.len()))?;
    let (named, version, len, sha) =
        parse_header(head).ok_or_else(|| format!("{path}: bad header {head:?}"))?;
    if named != stem_of(path) {
        return Err(format!("{path}: header names {named} (a foreign file)"));
    }
    if body.len() != len {
        return Err(format!(
            "{path} v{version}: body is {} bytes, header says {len} (torn)",
            body.len()
        ));
    }
    if sha256_hex(body.as_bytes()) != sha {
        return Err(format!("{path} v{version}: body does not match its sha256"));
    }
    Ok(version)
}

/// `text` with its header's version set to `version` (what an edit does).
fn bump(text: &str, version: u64) -> (String, String, String) {
    let (head, body) = text.split_once('\n').expect("header line");
    let (stem, _, len, sha) = parse_header(head).expect("a valid header");
    let new_head = header(&stem, version, len, &sha);
    let new = format!("{new_head}\n{body}");
    (head.to_owned(), new_head, new)
}

// ---- errors, classified -------------------------------------------------------------------

/// JSON-RPC ids, unique across the drill.
static NEXT_ID: AtomicU64 = AtomicU64::new(10);

/// When something is down: set before a node is killed, cleared a while after all is back.
#[derive(Debug, Default)]
struct Chaos {
    disturbed: AtomicBool,
    generation: AtomicU64,
}

impl Chaos {
    fn begin(&self) {
        self.disturbed.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
    fn end(&self) {
        self.disturbed.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
    fn mark(&self) -> (bool, u64) {
        (
            self.disturbed.load(Ordering::SeqCst),
            self.generation.load(Ordering::SeqCst),
        )
    }
    /// Whether a request that started at `mark` overlapped a disturbance.
    fn overlapped(&self, mark: (bool, u64)) -> bool {
        mark.0
            || self.disturbed.load(Ordering::SeqCst)
            || self.generation.load(Ordering::SeqCst) != mark.1
    }
}

/// What the drill counted; `failures` must end empty.
#[derive(Debug, Default)]
struct Stats {
    requests: AtomicU64,
    ops: Mutex<BTreeMap<&'static str, u64>>,
    /// Retriable errors by class (all seen while something was down).
    retriable: Mutex<BTreeMap<String, u64>>,
    failures: Mutex<Vec<String>>,
    validated: AtomicU64,
    /// Unknown outcomes resolved by reading the file again.
    resolved: AtomicU64,
    /// Conflicts or misses on a client's own file explained by one of its own writes (or
    /// renames) of unknown outcome that landed after all.
    explained: AtomicU64,
    /// Cross-client reads of a renamed file that had moved on between glob and read.
    moved: AtomicU64,
    /// The first two retriable errors of each class in full, to be quoted.
    samples: Mutex<BTreeMap<String, Vec<String>>>,
}

impl Stats {
    fn op(&self, name: &'static str) {
        *self.ops.lock().expect("stats").entry(name).or_default() += 1;
    }
    fn fail(&self, msg: String) {
        let msg = format!("{} {msg}", chrono::Utc::now().format("%H:%M:%S%.3f"));
        eprintln!("DRILL FAILURE: {msg}");
        let mut f = self.failures.lock().expect("stats");
        if f.len() < 200 {
            f.push(msg);
        }
    }
    fn retriable(&self, class: String, detail: String) {
        let mut s = self.samples.lock().expect("stats");
        let kept = s.entry(class.clone()).or_default();
        if kept.len() < 2 {
            kept.push(clip(&detail));
        }
        *self
            .retriable
            .lock()
            .expect("stats")
            .entry(class)
            .or_default() += 1;
    }
}

/// Where a call goes.
#[derive(Debug, Clone)]
enum Route {
    /// Stateless MCP (2026-07-28) to this `/mcp` URL.
    Mcp(String),
    /// A legacy MCP session at this `/mcp` URL.
    Session(String, String),
    /// JSON-RPC straight to a nexusd base URL.
    Rpc(String),
}

impl Route {
    fn label(&self) -> &'static str {
        match self {
            Route::Mcp(_) => "mcp",
            Route::Session(..) => "session",
            Route::Rpc(_) => "rpc",
        }
    }
}

/// How a call ended.
#[derive(Debug)]
enum Answer {
    /// The tool's text (a read: the file itself), or a direct call's result (a read: its
    /// content; anything else: the result as JSON text).
    Ok(String),
    /// The call reached the method and was refused: the message, for the caller to judge
    /// (a conflict, a missing file).
    Refused(String),
    /// A retriable error while something was down (counted).
    Retry,
    /// Anything else (already recorded as a failure).
    Broken,
}

fn is_conflict(msg: &str) -> bool {
    msg.contains("conflict: ")
}
fn is_not_found(msg: &str) -> bool {
    msg.contains("file not found: ")
}
/// A −32010 as the frontend words it in a tool result (the rpc-server's "X is unavailable;
/// retry shortly", a grep over the server's concurrency) or its own unreachable hop.
fn is_unavailable_text(msg: &str) -> bool {
    msg.contains("is unavailable; retry shortly")
        || msg.contains("greps; retry shortly")
        || msg.contains("rpc-server is unavailable")
}

fn rpc_method(tool: &str) -> &'static str {
    match tool {
        "nexus_read_file" => "read",
        "nexus_write_file" => "write",
        "nexus_edit_file" => "edit",
        "nexus_rename_file" => "rename",
        "nexus_glob" => "glob",
        "nexus_grep" => "grep",
        "nexus_list_files" => "list",
        "nexus_file_info" => "stat",
        other => panic!("no rpc method for {other}"),
    }
}

/// The JSON-RPC message of an MCP answer: plain JSON or the last `data:` of an SSE body.
fn mcp_message(text: &str) -> Option<Value> {
    if let Ok(v) = serde_json::from_str(text) {
        return Some(v);
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .next_back()
}

/// One caller: an HTTP client, the shared counters and the disturbance clock.
#[derive(Clone)]
struct Ctx {
    http: reqwest::Client,
    stats: Arc<Stats>,
    chaos: Arc<Chaos>,
}

impl Ctx {
    fn new(stats: Arc<Stats>, chaos: Arc<Chaos>) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(CALL_TIMEOUT)
            .build()
            .expect("http client");
        Self { http, stats, chaos }
    }

    /// A retriable error: counted when something was down, a failure otherwise.
    fn retriable(&self, mark: (bool, u64), class: String, what: &str, detail: String) -> Answer {
        if self.chaos.overlapped(mark) {
            self.stats.retriable(class, format!("{what}: {detail}"));
            Answer::Retry
        } else {
            self.stats
                .fail(format!("{what}: {class} while every node was up: {detail}"));
            Answer::Broken
        }
    }

    fn broken(&self, msg: String) -> Answer {
        self.stats.fail(msg);
        Answer::Broken
    }

    async fn call(&self, route: &Route, token: &str, tool: &str, args: Value) -> Answer {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mark = self.chaos.mark();
        let t0 = Instant::now();
        let what = || {
            format!(
                "{tool} via {} ({} ms)",
                route.label(),
                t0.elapsed().as_millis()
            )
        };
        let (req, mcp) = match route {
            Route::Mcp(url) | Route::Session(url, _) => {
                let mut body = match route {
                    Route::Session(..) => session_call_body(tool, args),
                    _ => stateless_call_body("drill", tool, args),
                };
                // A session answers by request id: an id is never reused, even after a call
                // that was given up on is still running.
                body["id"] = json!(NEXT_ID.fetch_add(1, Ordering::Relaxed));
                let mut r = self
                    .http
                    .post(url)
                    .header("accept", common::mcp::ACCEPT)
                    .bearer_auth(token)
                    .body(body.to_string());
                for (k, v) in headers(&body) {
                    r = r.header(k, v);
                }
                if let Route::Session(_, sid) = route {
                    r = r.header("mcp-session-id", sid);
                }
                (r, true)
            }
            Route::Rpc(base) => {
                let m = rpc_method(tool);
                let r = self
                    .http
                    .post(format!("{base}/api/nfs/{m}"))
                    .bearer_auth(token)
                    .json(&json!({"jsonrpc": "2.0", "id": 1, "method": m, "params": args}));
                (r, false)
            }
        };
        // No answer at all is never a retriable class: behind HAProxy B a node that dies
        // mid-request is a 502 (see `haproxy_config`), and nothing else should cut a call.
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return self.broken(format!(
                    "{}: no answer ({}): {}",
                    what(),
                    kind(&e),
                    chain(&e)
                ));
            }
        };
        let status = resp.status().as_u16();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => {
                return self.broken(format!(
                    "{}: answer cut ({}): {}",
                    what(),
                    kind(&e),
                    chain(&e)
                ));
            }
        };
        match status {
            200 => {}
            502 | 503 => {
                return self.retriable(mark, format!("HTTP {status}"), &what(), clip(&text));
            }
            _ => {
                self.stats
                    .fail(format!("{}: HTTP {status}: {}", what(), clip(&text)));
                return Answer::Broken;
            }
        }
        let Some(msg) = (if mcp {
            mcp_message(&text)
        } else {
            serde_json::from_str(&text).ok()
        }) else {
            self.stats
                .fail(format!("{}: no JSON-RPC message: {}", what(), clip(&text)));
            return Answer::Broken;
        };
        if let Some(e) = msg.get("error") {
            if e["code"] == -32010 {
                return self.retriable(mark, "JSON-RPC -32010".into(), &what(), e.to_string());
            }
            if !mcp && e["code"] != -32603 {
                return Answer::Refused(e["message"].as_str().unwrap_or_default().to_owned());
            }
            self.stats.fail(format!("{}: JSON-RPC error {e}", what()));
            return Answer::Broken;
        }
        let result = &msg["result"];
        if !mcp {
            return Answer::Ok(match result.get("content") {
                Some(Value::String(c)) if tool == "nexus_read_file" => c.clone(),
                _ => result.to_string(),
            });
        }
        let body = result["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if result["isError"] == true {
            if is_unavailable_text(&body) {
                return self.retriable(mark, "tool error -32010".into(), &what(), body);
            }
            return Answer::Refused(body);
        }
        Answer::Ok(body)
    }

    /// A legacy session opened at `url` (`initialize`, `notifications/initialized`).
    async fn open_session(&self, url: &str, token: &str, client: &str) -> Result<String, String> {
        let init = initialize_body(client);
        let mut r = self
            .http
            .post(url)
            .header("accept", common::mcp::ACCEPT)
            .bearer_auth(token)
            .body(init.to_string());
        for (k, v) in headers(&init) {
            r = r.header(k, v);
        }
        let resp = r.send().await.map_err(|e| format!("initialize: {e}"))?;
        if resp.status().as_u16() != 200 {
            return Err(format!("initialize: HTTP {}", resp.status()));
        }
        let sid = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .ok_or("initialize: no session id")?
            .to_owned();
        let _ = resp.text().await;
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let mut r = self
            .http
            .post(url)
            .header("accept", common::mcp::ACCEPT)
            .bearer_auth(token)
            .header("mcp-session-id", &sid)
            .body(note.to_string());
        for (k, v) in headers(&note) {
            r = r.header(k, v);
        }
        let resp = r.send().await.map_err(|e| format!("initialized: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("initialized: HTTP {}", resp.status()));
        }
        Ok(sid)
    }
}

fn kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    }
}

/// An error with its causes, as far as reqwest and hyper chain them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(&format!(": {s}"));
        src = s.source();
    }
    out
}

/// The paths a glob under `dir` answered, absolute.
fn glob_items(dir: &str, text: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(text).unwrap_or_default();
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i.as_str())
                .map(|p| {
                    if p.starts_with('/') {
                        p.to_owned()
                    } else {
                        format!("{dir}/{p}")
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn clip(s: &str) -> String {
    s.chars().take(300).collect()
}

// ---- one client ------------------------------------------------------------------------------

/// One of a client's files and what the client knows of it.
#[derive(Debug, Clone)]
struct Own {
    /// What the header names: the path, or for the renamed file the path without `.a.txt`.
    stem: String,
    renamed: bool,
    at_b: bool,
    /// The content last acknowledged (or seen after an unknown outcome).
    cur: String,
    /// Contents written (conditionally on some earlier content) whose outcome is unknown:
    /// one of them may still land.
    pending: Vec<String>,
    /// A rename of unknown outcome was sent once: the file may move on its own.
    rename_pending: bool,
    version: u64,
}

impl Own {
    fn path(&self) -> String {
        if self.renamed {
            format!("{}.{}.txt", self.stem, if self.at_b { "b" } else { "a" })
        } else {
            self.stem.clone()
        }
    }
    fn other_path(&self) -> String {
        format!("{}.{}.txt", self.stem, if self.at_b { "a" } else { "b" })
    }
}

/// Files per client besides the renamed one.
const FILES: usize = 4;

fn own_files(client: usize) -> Vec<Own> {
    let mut v: Vec<Own> = (0..FILES)
        .map(|k| Own {
            stem: format!("/c{client}/f{k}.txt"),
            renamed: false,
            at_b: false,
            cur: String::new(),
            pending: Vec::new(),
            rename_pending: false,
            version: 0,
        })
        .collect();
    v.push(Own {
        stem: format!("/c{client}/r"),
        renamed: true,
        ..v[0].clone()
    });
    v
}

struct Client {
    id: usize,
    token: String,
    route: Route,
    ctx: Ctx,
    files: Vec<Own>,
    /// Other clients of the same zone (cross reads, greps).
    peers: Vec<usize>,
    rng: Rng,
}

impl Client {
    fn fail(&self, msg: String) {
        self.ctx.stats.fail(format!("client {}: {msg}", self.id));
    }

    async fn call(&self, tool: &str, args: Value) -> Answer {
        self.ctx.call(&self.route, &self.token, tool, args).await
    }

    /// Creates the files (nothing is down yet: any error is a failure).
    async fn setup(&mut self) {
        for k in 0..self.files.len() {
            let f = &self.files[k];
            let size = pick_size(&mut self.rng);
            let text = content(&f.stem, 1, size, &mut self.rng);
            let path = f.path();
            match self
                .call("nexus_write_file", json!({"path": path, "content": text}))
                .await
            {
                Answer::Ok(_) => {
                    self.files[k].cur = text;
                    self.files[k].version = 1;
                }
                other => self.fail(format!("creating {path}: {other:?}")),
            }
        }
    }

    async fn run(mut self, stop: Arc<AtomicBool>) -> Vec<Own> {
        if self.files.iter().any(|f| f.cur.is_empty()) {
            return self.files; // setup failed, and said so
        }
        for _ in 0..MAX_OPS {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let k = self.rng.below(self.files.len() as u64) as usize;
            match self.rng.below(100) {
                0..=24 => self.write(k).await,
                25..=39 => self.edit(k).await,
                40..=49 => self.rename().await,
                50..=69 => self.read_own(k).await,
                70..=84 => self.cross_read().await,
                85..=92 => self.grep().await,
                _ => self.list().await,
            }
        }
        self.files
    }

    /// The outcome of a conditional mutation of file `k` that would make it `new`.
    async fn settle(&mut self, k: usize, new: String, answer: Answer) {
        match answer {
            Answer::Ok(text) => {
                let id = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["content_id"].as_str().map(str::to_owned));
                if id.as_deref() != Some(sha256_hex(new.as_bytes()).as_str()) {
                    self.fail(format!(
                        "{}: acknowledged with another content_id: {}",
                        self.files[k].path(),
                        clip(&text)
                    ));
                }
                let f = &mut self.files[k];
                f.cur = new;
                // Every pending write was conditional on an older content: none can land now.
                f.pending.clear();
            }
            // A failure is already recorded; its outcome is as unknown as a retriable one's,
            // and learning it keeps one failure from being reported again on every later call.
            Answer::Retry | Answer::Broken => {
                self.files[k].pending.push(new);
                self.resolve(k).await;
            }
            Answer::Refused(msg) => self.explain(k, &msg).await,
        }
    }

    async fn write(&mut self, k: usize) {
        self.ctx.stats.op("write");
        let f = &mut self.files[k];
        f.version += 1;
        let (stem, version, path, if_match) = (
            f.stem.clone(),
            f.version,
            f.path(),
            sha256_hex(f.cur.as_bytes()),
        );
        let size = pick_size(&mut self.rng);
        let new = content(&stem, version, size, &mut self.rng);
        let a = self
            .call(
                "nexus_write_file",
                json!({"path": path, "content": new, "if_match": if_match}),
            )
            .await;
        self.settle(k, new, a).await;
    }

    async fn edit(&mut self, k: usize) {
        self.ctx.stats.op("edit");
        let f = &mut self.files[k];
        f.version += 1;
        let (old_head, new_head, new) = bump(&f.cur, f.version);
        let (path, if_match) = (f.path(), sha256_hex(f.cur.as_bytes()));
        let a = self
            .call(
                "nexus_edit_file",
                json!({"path": path, "if_match": if_match,
                       "edits": [{"old_str": old_head, "new_str": new_head}]}),
            )
            .await;
        self.settle(k, new, a).await;
    }

    async fn rename(&mut self) {
        self.ctx.stats.op("rename");
        let k = self.files.len() - 1;
        let (from, to) = (self.files[k].path(), self.files[k].other_path());
        match self
            .call(
                "nexus_rename_file",
                json!({"old_path": from, "new_path": to}),
            )
            .await
        {
            Answer::Ok(_) => self.files[k].at_b = !self.files[k].at_b,
            Answer::Retry | Answer::Broken => {
                self.files[k].rename_pending = true;
                self.resolve(k).await;
            }
            Answer::Refused(msg) => self.explain(k, &msg).await,
        }
    }

    /// A conflict or a miss on our own file: only one of our own operations of unknown
    /// outcome, landing late, may explain it.
    async fn explain(&mut self, k: usize, msg: &str) {
        let f = &self.files[k];
        let explainable =
            (is_conflict(msg) || is_not_found(msg)) && (!f.pending.is_empty() || f.rename_pending);
        if explainable {
            self.ctx.stats.explained.fetch_add(1, Ordering::Relaxed);
            self.resolve(k).await;
        } else {
            self.fail(format!("{}: refused: {msg}", f.path()));
        }
    }

    /// Reads `path`: `Some(Some(text))`, `Some(None)` when it does not exist, `None` on a
    /// retriable error (or a recorded failure).
    async fn fetch(&self, path: &str) -> Option<Option<String>> {
        match self.call("nexus_read_file", json!({"path": path})).await {
            Answer::Ok(t) => Some(Some(t)),
            Answer::Refused(m) if is_not_found(&m) => Some(None),
            Answer::Refused(m) => {
                self.fail(format!("read {path}: {m}"));
                None
            }
            Answer::Retry | Answer::Broken => None,
        }
    }

    /// Learns the state of file `k` after an unknown outcome: where it is and which content
    /// it holds, which must be the known one or one of the pending ones.
    async fn resolve(&mut self, k: usize) {
        self.ctx.stats.resolved.fetch_add(1, Ordering::Relaxed);
        for _ in 0..RESOLVE_TRIES {
            let f = &self.files[k];
            let moving = f.renamed && f.rename_pending;
            let here = if moving {
                match self.locate(k).await {
                    Some(Ok(p)) => p,
                    Some(Err(why)) => return self.fail(why),
                    None => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
            } else {
                f.path()
            };
            match self.fetch(&here).await {
                Some(Some(text)) => {
                    self.files[k].at_b = here.ends_with(".b.txt");
                    self.accept(k, text);
                    return;
                }
                // A late rename moved it since the glob: look again.
                Some(None) if moving => {}
                Some(None) => return self.fail(format!("{here}: missing")),
                None => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.fail(format!(
            "{}: still unreadable after {RESOLVE_TRIES} tries",
            self.files[k].path()
        ));
    }

    /// Where the renamed file `k` is, from one glob (one query, one snapshot: two reads could
    /// straddle a late rename and see the file twice or nowhere); `None` on a retriable
    /// error.
    async fn locate(&self, k: usize) -> Option<Result<String, String>> {
        let dir = format!("/c{}", self.id);
        let found = match self
            .call("nexus_glob", json!({"pattern": "r.*.txt", "path": dir}))
            .await
        {
            Answer::Ok(t) => glob_items(&dir, &t),
            Answer::Refused(m) => return Some(Err(format!("glob {dir}: {m}"))),
            Answer::Retry | Answer::Broken => return None,
        };
        let stem = &self.files[k].stem;
        Some(match found.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(format!("{stem}: missing (neither .a.txt nor .b.txt)")),
            many => Err(format!("{stem}: {many:?} all exist at once")),
        })
    }

    /// `text` was just read from file `k`: it must validate and be the known content or a
    /// pending one (which is then known to have landed).
    fn accept(&mut self, k: usize, text: String) {
        let path = self.files[k].path();
        if let Err(e) = validate(&path, &text) {
            self.fail(format!("torn or foreign read: {e}"));
            return;
        }
        self.ctx.stats.validated.fetch_add(1, Ordering::Relaxed);
        let f = &mut self.files[k];
        if text == f.cur {
            return;
        }
        if f.pending.contains(&text) {
            f.cur = text;
            f.pending.clear();
            return;
        }
        let got = validate(&path, &text).unwrap_or(0);
        let want = validate(&path, &f.cur).unwrap_or(0);
        self.fail(format!(
            "{path}: read v{got}, but v{want} was acknowledged last (lost or stale write)"
        ));
    }

    async fn read_own(&mut self, k: usize) {
        self.ctx.stats.op("read");
        let path = self.files[k].path();
        match self.fetch(&path).await {
            Some(Some(text)) => self.accept(k, text),
            Some(None) if self.files[k].rename_pending => {
                self.ctx.stats.explained.fetch_add(1, Ordering::Relaxed);
                self.resolve(k).await;
            }
            Some(None) => self.fail(format!("{path}: missing")),
            None => {}
        }
    }

    fn peer(&mut self) -> usize {
        self.peers[self.rng.below(self.peers.len() as u64) as usize]
    }

    /// Globs a peer's directory and reads one of its files: it must validate (a renamed
    /// file may have moved on in between).
    async fn cross_read(&mut self) {
        self.ctx.stats.op("glob+read");
        let peer = self.peer();
        let dir = format!("/c{peer}");
        let items = match self
            .call("nexus_glob", json!({"pattern": "**", "path": dir}))
            .await
        {
            Answer::Ok(t) => glob_items(&dir, &t),
            Answer::Refused(m) => {
                self.fail(format!("glob {dir}: {m}"));
                return;
            }
            _ => return,
        };
        let found: BTreeSet<&str> = items.iter().map(String::as_str).collect();
        for k in 0..FILES {
            let p = format!("{dir}/f{k}.txt");
            if !found.contains(p.as_str()) {
                self.fail(format!("glob {dir}: {p} missing from {items:?}"));
            }
        }
        if items.is_empty() {
            return;
        }
        let path = items[self.rng.below(items.len() as u64) as usize].clone();
        match self.fetch(&path).await {
            Some(Some(text)) => match validate(&path, &text) {
                Ok(_) => {
                    self.ctx.stats.validated.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => self.fail(format!("torn or foreign read: {e}")),
            },
            Some(None) if stem_of(&path) != path => {
                self.ctx.stats.moved.fetch_add(1, Ordering::Relaxed);
            }
            Some(None) => self.fail(format!("{path}: listed by glob, then missing")),
            None => {}
        }
    }

    /// Greps a directory (ours or a peer's) for headers: one per file, on line 1, naming it.
    async fn grep(&mut self) {
        self.ctx.stats.op("grep");
        let who = if self.rng.below(2) == 0 {
            self.id
        } else {
            self.peer()
        };
        let dir = format!("/c{who}");
        let t = match self
            .call("nexus_grep", json!({"pattern": "^NXS1 ", "path": dir}))
            .await
        {
            Answer::Ok(t) => t,
            Answer::Refused(m) => return self.fail(format!("grep {dir}: {m}")),
            _ => return,
        };
        let v: Value = serde_json::from_str(&t).unwrap_or_default();
        let Some(items) = v["items"].as_array() else {
            return self.fail(format!("grep {dir}: {}", clip(&t)));
        };
        let mut seen = BTreeSet::new();
        for m in items {
            let path = m["path"].as_str().unwrap_or_default();
            let named = m["text"]
                .as_str()
                .and_then(parse_header)
                .map(|h| h.0)
                .unwrap_or_default();
            if m["line"] != 1 || named != stem_of(path) {
                self.fail(format!("grep {dir}: a bad header match {m}"));
            }
            seen.insert(path.to_owned());
        }
        for k in 0..FILES {
            let p = format!("{dir}/f{k}.txt");
            if !seen.contains(&p) {
                self.fail(format!("grep {dir}: no header found in {p}"));
            }
        }
    }

    async fn list(&mut self) {
        self.ctx.stats.op("list");
        let dir = format!("/c{}", self.id);
        let t = match self.call("nexus_list_files", json!({"path": dir})).await {
            Answer::Ok(t) => t,
            Answer::Refused(m) => return self.fail(format!("list {dir}: {m}")),
            _ => return,
        };
        let v: Value = serde_json::from_str(&t).unwrap_or_default();
        let names: BTreeSet<&str> = v["items"]
            .as_array()
            .map(|a| a.iter().filter_map(|i| i["name"].as_str()).collect())
            .unwrap_or_default();
        for k in 0..FILES {
            if !names.contains(format!("f{k}.txt").as_str()) {
                self.fail(format!("list {dir}: f{k}.txt missing: {}", clip(&t)));
            }
        }
    }
}

// ---- if_match races ----------------------------------------------------------------------------

/// One round: `tokens.len()` racers write `/race/r<round>.txt` with the same `if_match`
/// through different frontends and nexusd at once. Returns whether the round was clean (no
/// retriable error: exactly one winner required).
async fn race(cluster: &Cluster, ctx: &Ctx, tokens: &[String], round: usize) -> bool {
    let path = format!("/race/r{round}.txt");
    let mut rng = Rng::new(round as u64 * 7919 + 1);
    let init = content(&path, 0, 64, &mut rng);
    let lb = Route::Mcp(cluster.mcp_lb.clone());
    match ctx
        .call(
            &lb,
            &tokens[0],
            "nexus_write_file",
            json!({"path": path, "content": init}),
        )
        .await
    {
        Answer::Ok(_) => {}
        other => {
            ctx.stats
                .fail(format!("race {round}: initial write: {other:?}"));
            return false;
        }
    }
    let etag = sha256_hex(init.as_bytes());
    let barrier = Arc::new(tokio::sync::Barrier::new(tokens.len()));
    let mut tasks = Vec::new();
    let mut contents = Vec::new();
    for (j, token) in tokens.iter().enumerate() {
        let route = match j % 4 {
            0 => Route::Mcp(cluster.frontend_mcp(0)),
            1 => Route::Mcp(cluster.frontend_mcp(1 % cluster.frontends.len())),
            2 => Route::Rpc(cluster.nexusd[j % cluster.nexusd.len()].base.clone()),
            _ => lb.clone(),
        };
        let text = content(&path, 1 + j as u64, 100 + 50 * j, &mut rng);
        contents.push(text.clone());
        let (ctx, token, barrier, path, etag) = (
            ctx.clone(),
            token.clone(),
            barrier.clone(),
            path.clone(),
            etag.clone(),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            ctx.call(
                &route,
                &token,
                "nexus_write_file",
                json!({"path": path, "content": text, "if_match": etag}),
            )
            .await
        }));
    }
    let (mut winners, mut losers, mut unknown) = (Vec::new(), 0, 0);
    for (j, t) in tasks.into_iter().enumerate() {
        match t.await.expect("racer") {
            Answer::Ok(_) => winners.push(j),
            Answer::Refused(m) if is_conflict(&m) => losers += 1,
            Answer::Refused(m) => ctx.stats.fail(format!("race {round}: racer {j}: {m}")),
            Answer::Retry => unknown += 1,
            Answer::Broken => {}
        }
    }
    if winners.len() > 1 || (unknown == 0 && winners.len() != 1) {
        ctx.stats.fail(format!(
            "race {round}: winners {winners:?}, {losers} conflicts, {unknown} unknown"
        ));
    }
    // Every nexusd agrees on the outcome.
    for (i, n) in cluster.nexusd.iter().enumerate() {
        let route = Route::Rpc(n.base.clone());
        let got = match ctx
            .call(&route, &tokens[0], "nexus_read_file", json!({"path": path}))
            .await
        {
            Answer::Ok(t) => t,
            other => {
                ctx.stats
                    .fail(format!("race {round}: read on nexusd {i}: {other:?}"));
                continue;
            }
        };
        let ok = match winners.first() {
            Some(&w) => got == contents[w],
            None => got == init || contents.contains(&got),
        };
        if !ok {
            ctx.stats.fail(format!(
                "race {round}: nexusd {i} holds {:?}, winners {winners:?}",
                got.lines().next()
            ));
        }
    }
    unknown == 0
}

// ---- the drill ---------------------------------------------------------------------------------

/// A session opened on frontend 0 carries on through frontend 1 (and back, and again after
/// frontend 0 was killed and restarted).
async fn handoff(cluster: &Cluster, ctx: &Ctx, token: &str, sid: &str, step: u64) {
    let path = "/handoff/s.txt";
    let mut rng = Rng::new(step + 99);
    let text = content(path, step, 300 + step as usize, &mut rng);
    let on = |i: usize| Route::Session(cluster.frontend_mcp(i), sid.to_owned());
    match ctx
        .call(
            &on(1),
            token,
            "nexus_write_file",
            json!({"path": path, "content": text}),
        )
        .await
    {
        Answer::Ok(_) => {}
        other => ctx.stats.fail(format!(
            "handoff {step}: write in the session via frontend 1: {other:?}"
        )),
    }
    for i in [0, 1, 0] {
        match ctx
            .call(&on(i), token, "nexus_read_file", json!({"path": path}))
            .await
        {
            Answer::Ok(t) if t == text => {}
            other => ctx.stats.fail(format!(
                "handoff {step}: read in the session via frontend {i}: {other:?}"
            )),
        }
    }
}

/// Every client's files, read from `route`: byte-identical to what the client knows, and
/// globbed as exactly the expected paths.
async fn verify_from(ctx: &Ctx, label: &str, route: &Route, done: &[(String, Vec<Own>)]) -> usize {
    let mut checked = 0;
    for (c, (token, files)) in done.iter().enumerate() {
        for f in files {
            let path = f.path();
            match ctx
                .call(route, token, "nexus_read_file", json!({"path": path}))
                .await
            {
                Answer::Ok(t) if t == f.cur => checked += 1,
                Answer::Ok(t) => ctx.stats.fail(format!(
                    "{label}: {path} is {} bytes (sha256 {}, {:?}); the last acknowledged is {} \
                     bytes (sha256 {}, {:?})",
                    t.len(),
                    sha256_hex(t.as_bytes()),
                    t.lines().next(),
                    f.cur.len(),
                    sha256_hex(f.cur.as_bytes()),
                    f.cur.lines().next()
                )),
                other => ctx.stats.fail(format!("{label}: read {path}: {other:?}")),
            }
        }
        let want: BTreeSet<String> = files.iter().map(Own::path).collect();
        match ctx
            .call(
                route,
                token,
                "nexus_glob",
                json!({"pattern": "**", "path": format!("/c{c}")}),
            )
            .await
        {
            Answer::Ok(t) => {
                let v: Value = serde_json::from_str(&t).unwrap_or_default();
                let got: BTreeSet<String> = v["items"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|i| i.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                if got != want {
                    ctx.stats
                        .fail(format!("{label}: glob /c{c}: {got:?}, expected {want:?}"));
                }
            }
            other => ctx.stats.fail(format!("{label}: glob /c{c}: {other:?}")),
        }
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_survive_kills_and_restarts_under_load_with_no_lost_or_torn_write() {
    let plan = Plan::from_env();
    let started = Instant::now();
    let zones: Vec<String> = (0..plan.zones).map(|z| format!("z{z}")).collect();
    let Some(mut cluster) = Cluster::start(ClusterSpec {
        nexusd: 3,
        frontends: 2,
        // One node keeps the default threshold, two send all but tiny files to S3.
        inline_max: vec![None, Some(256), Some(256)],
        zones: zones.clone(),
    })
    .await
    else {
        return; // NEXUS_TEST_SKIP_S3=1, said on stderr
    };
    eprintln!(
        "drill: {plan:?}; cluster up in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let mut tokens = Vec::new();
    for c in 0..plan.clients {
        let zone = &zones[c % plan.zones];
        tokens.push(
            cluster
                .mint(&format!("drill-{c}"), &format!("{zone}:rw"))
                .await,
        );
    }
    let stats = Arc::new(Stats::default());
    let chaos = Arc::new(Chaos::default());
    let ctx = Ctx::new(stats.clone(), chaos.clone());

    // The clients: each creates its files, then all start the load together.
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(tokio::sync::Barrier::new(plan.clients + 1));
    let mut clients = Vec::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    eprintln!("drill: seed {seed}");
    for (c, token) in tokens.iter().enumerate() {
        let ctx = Ctx::new(stats.clone(), chaos.clone());
        let route = if c % plan.sessions == 0 {
            let sid = ctx
                .open_session(&cluster.mcp_lb, token, &format!("drill-{c}"))
                .await
                .unwrap_or_else(|e| panic!("client {c}: {e}"));
            Route::Session(cluster.mcp_lb.clone(), sid)
        } else {
            Route::Mcp(cluster.mcp_lb.clone())
        };
        let client = Client {
            id: c,
            token: token.clone(),
            route,
            ctx,
            files: own_files(c),
            peers: (0..plan.clients)
                .filter(|p| p % plan.zones == c % plan.zones && *p != c)
                .collect(),
            rng: Rng::new(seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        };
        let (stop, ready) = (stop.clone(), ready.clone());
        clients.push(tokio::spawn(async move {
            let mut client = client;
            client.setup().await;
            ready.wait().await;
            let token = client.token.clone();
            (token, client.run(stop).await)
        }));
    }
    tokio::time::timeout(Duration::from_secs(120), ready.wait())
        .await
        .expect("the clients did not create their files");
    let load_started = Instant::now();

    // Racers: clients of zone z0, each with its own token.
    let racers: Vec<String> = tokens
        .iter()
        .step_by(plan.zones)
        .take(plan.racers)
        .cloned()
        .collect();
    assert_eq!(racers.len(), plan.racers, "enough clients in z0 to race");
    let mut rounds = (0usize, 0usize);
    let mut round = 0;

    tokio::time::sleep(plan.calm).await;
    for _ in 0..plan.race_rounds {
        round += 1;
        rounds.0 += 1;
        rounds.1 += usize::from(race(&cluster, &ctx, &racers, round).await);
    }
    let sid = ctx
        .open_session(&cluster.frontend_mcp(0), &tokens[1], "handoff")
        .await
        .expect("a session on frontend 0");
    handoff(&cluster, &ctx, &tokens[1], &sid, 1).await;

    // Kill cycles: a nexusd and a frontend SIGKILLed under load, restarted, then SeaweedFS.
    let mut restarts: BTreeMap<&str, usize> = BTreeMap::new();
    for cycle in 0..plan.kill_cycles {
        let (n, f) = (
            cycle % cluster.nexusd.len(),
            cycle % cluster.frontends.len(),
        );
        chaos.begin();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = stats.requests.load(Ordering::Relaxed);
        cluster.kill_nexusd(n);
        cluster.kill_frontend(f);
        tokio::time::sleep(plan.down).await;
        cluster.start_nexusd(n).await;
        cluster.start_frontend(f).await;
        *restarts.entry("nexusd").or_default() += 1;
        *restarts.entry("frontend").or_default() += 1;
        tokio::time::sleep(plan.down).await;
        cluster.weed.restart().await;
        *restarts.entry("seaweedfs").or_default() += 1;
        tokio::time::sleep(SETTLE).await;
        chaos.end();
        eprintln!(
            "drill: cycle {cycle}: killed nexusd {n} and frontend {f}, restarted them and \
             SeaweedFS; {} requests meanwhile",
            stats.requests.load(Ordering::Relaxed) - before
        );
        tokio::time::sleep(plan.calm / 2).await;
    }

    // After: more races, and the session opened before frontend 0 died carries on.
    for _ in 0..plan.race_rounds {
        round += 1;
        rounds.0 += 1;
        rounds.1 += usize::from(race(&cluster, &ctx, &racers, round).await);
    }
    handoff(&cluster, &ctx, &tokens[1], &sid, 2).await;
    tokio::time::sleep(plan.calm).await;
    stop.store(true, Ordering::Relaxed);
    let mut done = Vec::new();
    for t in clients {
        done.push(
            tokio::time::timeout(Duration::from_secs(120), t)
                .await
                .expect("a client did not stop")
                .expect("client task"),
        );
    }
    let load_secs = load_started.elapsed().as_secs_f64();

    // Every acknowledged write, from every nexusd directly and through each frontend.
    let mut checked = 0;
    for (i, n) in cluster.nexusd.iter().enumerate() {
        checked += verify_from(
            &ctx,
            &format!("nexusd {i}"),
            &Route::Rpc(n.base.clone()),
            &done,
        )
        .await;
    }
    for i in 0..cluster.frontends.len() {
        checked += verify_from(
            &ctx,
            &format!("frontend {i}"),
            &Route::Mcp(cluster.frontend_mcp(i)),
            &done,
        )
        .await;
    }

    let failures = stats.failures.lock().expect("stats").clone();
    eprintln!(
        "drill figures: {} clients ({} in sessions) over {} zones, {load_secs:.1}s of load; \
         {} requests; operations {:?}; retriable errors while a node was down {:?}; \
         {} reads validated, {} unknown outcomes resolved ({} explained by a late write or \
         rename of the client's own), {} renamed files moved between glob and read; \
         if_match races: {} rounds of {} racers, {} clean (exactly one winner), {} with an \
         unknown outcome; restarts {:?}; {} final reads byte-identical across {} nexusd and \
         {} frontends; {:.1}s in all",
        plan.clients,
        plan.clients.div_ceil(plan.sessions),
        plan.zones,
        stats.requests.load(Ordering::Relaxed),
        stats.ops.lock().expect("stats"),
        stats.retriable.lock().expect("stats"),
        stats.validated.load(Ordering::Relaxed),
        stats.resolved.load(Ordering::Relaxed),
        stats.explained.load(Ordering::Relaxed),
        stats.moved.load(Ordering::Relaxed),
        rounds.0,
        plan.racers,
        rounds.1,
        rounds.0 - rounds.1,
        restarts,
        checked,
        cluster.nexusd.len(),
        cluster.frontends.len(),
        started.elapsed().as_secs_f64(),
    );
    eprintln!(
        "drill: retriable error samples: {:#?}",
        stats.samples.lock().expect("stats")
    );
    assert!(
        failures.is_empty(),
        "{} failures, the first: {:#?}\n{}",
        failures.len(),
        &failures[..failures.len().min(20)],
        cluster.log_tails()
    );
    assert_eq!(
        checked,
        (cluster.nexusd.len() + cluster.frontends.len()) * plan.clients * (FILES + 1),
        "every file was checked everywhere"
    );
}
