//! The real `nexusd` is SIGKILLed in the middle of a write storm, three times, and restarted
//! on the same data dir and database (SPEC §4: writes are atomic and durable).
//!
//! Proves, after every restart: each acknowledged write is intact (the file holds a complete
//! version, no older than the last one acknowledged and no newer than the last one sent);
//! nothing half-written is ever visible through read, list, glob or grep, during the storm
//! or after the crash (every visible file carries a header naming its path, version, length
//! and SHA-256, and validates); temporary files the killed process left in the local blob
//! store are deleted when the restarted server opens it, while a temporary file still locked
//! by a live writer (another process sharing the directory) is left alone.

use nexus_wire::methods::TokenCreateParams;
use rpc_server::auth::{InvalidationBus, TokenHasher};
use rpc_server::control::Control;
use rpc_server::db::Backend;
use rpc_server::testing::{TEST_SECRET, TestDb, free_port, sha256_hex, test_secret};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ROUNDS: usize = 3;
const WRITERS: usize = 8;
const FILES_PER_WRITER: usize = 6;
/// Files the reader must have read and validated, in each round, before the kill: the
/// "never visible half-written during the storm" claim needs reads during the storm.
const READS_BEFORE_KILL: u64 = 10;
/// Bound of one HTTP exchange and of every wait for a state change.
const STEP: Duration = Duration::from_secs(15);
/// A name prefix the path normaliser reserves: never a client's file.
const TEMP_PREFIX: &str = ".nexus-tmp-";
/// Where the local blob store's temporary files start their names.
const BLOB_TEMP_PREFIX: &str = ".tmp-";

// ---- the server as a child process ---------------------------------------------------------

/// `nexusd` running as a child on a fixed port; SIGKILLed on drop.
struct Nexusd {
    child: Option<Child>,
    base: String,
    log: PathBuf,
}

impl Nexusd {
    async fn start(db_url: &str, data_dir: &Path, port: u16, log: &Path) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_nexusd"))
            // Only what this test sets: no NEXUS_* from the environment (Redis, config file).
            .env_clear()
            .env("NEXUS_DATABASE_URL", db_url)
            .env("NEXUS_API_KEY_SECRET", TEST_SECRET)
            .env("NEXUS_DATA_DIR", data_dir)
            .env("NEXUS_HOST", "127.0.0.1")
            .env("NEXUS_PORT", port.to_string())
            .env("NEXUS_RATE_LIMIT_TOKEN", "1000000/s")
            .env("NEXUS_MAX_FILE_BYTES", (4 << 20).to_string())
            .env("NEXUS_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log fd"))
            .stderr(out)
            .spawn()
            .expect("spawn nexusd");
        let mut s = Self {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
        };
        s.wait_ready().await;
        s
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + STEP;
        let http = client();
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                panic!("nexusd exited at start ({st}):\n{}", tail(&self.log));
            }
            if let Ok(r) = http
                .get(format!("{}/healthz/ready", self.base))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nexusd not ready within {STEP:?}:\n{}",
                tail(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL: no shutdown, no flush, no goodbye.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL nexusd");
            let st = c.wait().expect("reap nexusd");
            assert!(
                !st.success(),
                "nexusd exited cleanly instead of dying: {st}"
            );
        }
    }
}

impl Drop for Nexusd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(STEP)
        .build()
        .expect("http client")
}

// ---- self-verifying content ----------------------------------------------------------------

/// A small deterministic generator (xorshift64*): sizes and bodies.
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

/// Mostly small files, some medium, a few up to 1 MiB.
fn pick_size(rng: &mut Rng) -> usize {
    let n = match rng.below(10) {
        0..=6 => 16 + rng.below(4096),
        7 | 8 => 4096 + rng.below(124 * 1024),
        _ => 256 * 1024 + rng.below(768 * 1024),
    };
    n as usize
}

/// `NXS1 <path> v=<version> len=<body bytes> sha=<sha256 of body>\n<body>`. The body is
/// lowercase text, so no body line can look like a header.
fn content(path: &str, version: u64, len: usize, rng: &mut Rng) -> String {
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
    let sha = sha256_hex(&body);
    let body = String::from_utf8(body).expect("ascii");
    format!("NXS1 {path} v={version} len={len} sha={sha}\n{body}")
}

/// The header of a header line: (path, version, length, sha).
fn parse_header(line: &str) -> Option<(String, u64, usize, String)> {
    let mut parts = line.split(' ');
    if parts.next()? != "NXS1" {
        return None;
    }
    let path = parts.next()?.to_owned();
    let version = parts.next()?.strip_prefix("v=")?.parse().ok()?;
    let len = parts.next()?.strip_prefix("len=")?.parse().ok()?;
    let sha = parts.next()?.strip_prefix("sha=")?.to_owned();
    parts.next().is_none().then_some((path, version, len, sha))
}

/// The version a complete file of `path` holds, or why it is not one.
fn validate(path: &str, text: &str) -> Result<u64, String> {
    let (head, body) = text
        .split_once('\n')
        .ok_or_else(|| format!("{path}: no header line ({} bytes)", text.len()))?;
    let (named, version, len, sha) =
        parse_header(head).ok_or_else(|| format!("{path}: bad header {head:?}"))?;
    if named != path {
        return Err(format!("{path}: header names {named}"));
    }
    if body.len() != len {
        return Err(format!(
            "{path} v{version}: body is {} bytes, header says {len} (torn write)",
            body.len()
        ));
    }
    if sha256_hex(body.as_bytes()) != sha {
        return Err(format!("{path} v{version}: body does not match its sha256"));
    }
    Ok(version)
}

// ---- calls ---------------------------------------------------------------------------------

/// How a call ended.
#[derive(Debug)]
enum Call {
    Ok(Value),
    /// A JSON-RPC error from a live server.
    Rpc(Value),
    /// No complete answer: the server died (or was dead) during the call.
    Lost(#[allow(dead_code, reason = "shown by Debug in failure messages")] String),
}

async fn call(http: &reqwest::Client, base: &str, token: &str, method: &str, p: Value) -> Call {
    let sent = http
        .post(format!("{base}/api/nfs/{method}"))
        .bearer_auth(token)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": p}))
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => return Call::Lost(e.to_string()),
    };
    let status = resp.status().as_u16();
    let body: Value = match resp.json().await {
        Ok(v) => v,
        Err(e) => return Call::Lost(format!("HTTP {status}, body cut: {e}")),
    };
    assert_eq!(status, 200, "{method}: HTTP {status}: {body}");
    match body.get("error") {
        Some(e) => Call::Rpc(e.clone()),
        None => Call::Ok(body["result"].clone()),
    }
}

/// A call that must succeed on a live server.
async fn must(http: &reqwest::Client, base: &str, token: &str, method: &str, p: Value) -> Value {
    match call(http, base, token, method, p.clone()).await {
        Call::Ok(v) => v,
        other => panic!("{method} {p}: {other:?}"),
    }
}

// ---- the storm -----------------------------------------------------------------------------

/// What a writer knows about one of its files.
#[derive(Debug, Clone, Copy, Default)]
struct FileState {
    /// Last version the server acknowledged (0: none yet).
    acked: u64,
    /// Last version sent (≥ `acked`); its outcome may be unknown.
    sent: u64,
}

fn file_path(writer: usize, k: usize) -> String {
    // Half the files in a subdirectory, so writes also create directories.
    if k.is_multiple_of(2) {
        format!("/w{writer}/f{k}.txt")
    } else {
        format!("/w{writer}/d{}/f{k}.txt", k % 3)
    }
}

/// Overwrites its own files with growing versions until a call gets no answer (the server
/// died) or `stop` is set; returns what it knows.
async fn writer(
    base: String,
    token: String,
    id: usize,
    mut files: Vec<FileState>,
    seed: u64,
    acks: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Vec<FileState> {
    let http = client();
    let mut rng = Rng::new(seed ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for _ in 0..100_000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let k = rng.below(FILES_PER_WRITER as u64) as usize;
        let path = file_path(id, k);
        let version = files[k].sent + 1;
        files[k].sent = version;
        let text = content(&path, version, pick_size(&mut rng), &mut rng);
        match call(
            &http,
            &base,
            &token,
            "write",
            json!({"path": path, "content": text}),
        )
        .await
        {
            Call::Ok(r) => {
                assert_eq!(r["size"], text.len(), "{path} v{version}: size");
                assert_eq!(
                    r["content_id"],
                    sha256_hex(text.as_bytes()),
                    "{path} v{version}"
                );
                files[k].acked = version;
                acks.fetch_add(1, Ordering::Relaxed);
            }
            Call::Rpc(e) => panic!("write {path} v{version} refused: {e}"),
            Call::Lost(_) => break,
        }
    }
    files
}

/// Reads everything it can see, over and over, while the storm runs; every visible file
/// must validate. Counts each validated file in `validated` as it goes; returns how many
/// files it checked.
async fn reader(
    base: String,
    token: String,
    stop: Arc<AtomicBool>,
    validated: Arc<AtomicU64>,
) -> u64 {
    let http = client();
    let mut checked = 0;
    for _ in 0..100_000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let listed = match call(
            &http,
            &base,
            &token,
            "list",
            json!({"path": "/", "recursive": true, "limit": 1000}),
        )
        .await
        {
            Call::Ok(v) => v,
            Call::Rpc(e) => panic!("list during the storm: {e}"),
            Call::Lost(_) => break,
        };
        for item in listed["items"].as_array().expect("items") {
            let path = item["path"].as_str().expect("path");
            assert!(
                !item["name"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(TEMP_PREFIX),
                "a temporary file is listed: {item}"
            );
            if item["is_dir"] == true {
                continue;
            }
            match call(&http, &base, &token, "read", json!({"path": path})).await {
                Call::Ok(r) => {
                    let text = r["content"].as_str().expect("content");
                    if let Err(e) = validate(path, text) {
                        panic!("a reader saw a half-written file during the storm: {e}");
                    }
                    checked += 1;
                    validated.fetch_add(1, Ordering::Relaxed);
                }
                Call::Rpc(e) => panic!("read {path} during the storm: {e}"),
                Call::Lost(_) => return checked,
            }
        }
    }
    checked
}

// ---- checks after a restart ----------------------------------------------------------------

/// Every temporary file under `dir`.
fn temp_files(dir: &Path) -> BTreeSet<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(BLOB_TEMP_PREFIX)
        })
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// All pages of a paginated method's `items`.
async fn all_items(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    method: &str,
    p: Value,
) -> Vec<Value> {
    let mut out = Vec::new();
    for page in 0..100 {
        let mut p = p.clone();
        p["limit"] = json!(1000);
        p["offset"] = json!(page * 1000);
        let r = must(http, base, token, method, p).await;
        out.extend(r["items"].as_array().expect("items").iter().cloned());
        if r["has_more"] != true {
            return out;
        }
    }
    panic!("{method}: more than 100 pages");
}

/// Checks the files as a client sees them against what the writers know. Returns how many
/// files exist.
async fn verify(base: &str, token: &str, state: &BTreeMap<String, FileState>) -> usize {
    let http = client();
    // Each file: a complete version, acked ≤ version ≤ sent.
    let mut existing = BTreeSet::new();
    for (path, st) in state {
        match call(&http, base, token, "read", json!({"path": path})).await {
            Call::Ok(r) => {
                let text = r["content"].as_str().expect("content");
                let v = validate(path, text).unwrap_or_else(|e| panic!("after the crash: {e}"));
                assert!(
                    v >= st.acked && v <= st.sent,
                    "{path}: holds v{v}, but v{} was acknowledged and v{} the last sent",
                    st.acked,
                    st.sent
                );
                existing.insert(path.clone());
            }
            Call::Rpc(e) if e["code"] == -32007 => {
                assert_eq!(st.acked, 0, "{path}: acknowledged v{} is gone", st.acked);
            }
            other => panic!("read {path} after the crash: {other:?}"),
        }
    }
    // list, glob and grep show exactly the complete files, nothing else.
    let listed: BTreeSet<String> = all_items(
        &http,
        base,
        token,
        "list",
        json!({"path": "/", "recursive": true}),
    )
    .await
    .into_iter()
    .filter(|i| {
        assert!(
            !i["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with(TEMP_PREFIX),
            "a temporary file is listed: {i}"
        );
        i["is_dir"] != true
    })
    .map(|i| i["path"].as_str().expect("path").to_owned())
    .collect();
    assert_eq!(listed, existing, "list vs the files that read back");
    let globbed: BTreeSet<String> = all_items(&http, base, token, "glob", json!({"pattern": "**"}))
        .await
        .into_iter()
        .map(|i| i.as_str().expect("glob item").to_owned())
        .filter(|p| {
            assert!(!p.contains(TEMP_PREFIX), "a temporary file is globbed: {p}");
            p.ends_with(".txt")
        })
        .collect();
    assert_eq!(globbed, existing, "glob vs the files that read back");
    let grepped = all_items(&http, base, token, "grep", json!({"pattern": "^NXS1 "})).await;
    let mut seen = BTreeSet::new();
    for m in &grepped {
        let path = m["path"].as_str().expect("path");
        assert_eq!(m["line"], 1, "a header line inside a body: {m}");
        let (named, ..) = parse_header(m["text"].as_str().expect("text"))
            .unwrap_or_else(|| panic!("grep matched a bad header: {m}"));
        assert_eq!(named, path, "{m}");
        assert!(seen.insert(path.to_owned()), "{path} has two headers");
    }
    assert_eq!(seen, existing, "grep vs the files that read back");
    existing.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_storm_loses_no_acknowledged_write_and_shows_no_torn_file() {
    let db = TestDb::new(Backend::Postgres).await;
    let hasher = Arc::new(TokenHasher::new(&test_secret()).expect("secret"));
    let control = Control::new(db.store.clone(), hasher, InvalidationBus::new(), None);
    control.create_zone("storm").await.expect("zone");
    let mint = |name: &str, zones: &str| TokenCreateParams {
        name: name.into(),
        zones: Some(zones.into()),
        ..Default::default()
    };
    let token = control
        .create_token(mint("writer", "storm:rw"))
        .await
        .expect("mint")
        .token;
    let reader_token = control
        .create_token(mint("reader", "storm:r"))
        .await
        .expect("mint")
        .token;
    let data = tempfile::tempdir().expect("data dir");
    let logs = tempfile::tempdir().expect("log dir");
    let log = logs.path().join("nexusd.log");
    let port = free_port();
    // A shard of the local blob store: where a killed writer's temporary files are.
    let zone_dir = data.path().join("blobs").join("00");
    let http = client();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    eprintln!("seed {seed}");
    let mut rng = Rng::new(seed);
    let mut files: Vec<Vec<FileState>> =
        vec![vec![FileState::default(); FILES_PER_WRITER]; WRITERS];
    let mut server = Nexusd::start(&db.url, data.path(), port, &log).await;
    // A temporary file that a live writer elsewhere (another replica) still holds.
    let mut held: Option<(PathBuf, std::fs::File)> = None;
    let mut released: Option<PathBuf> = None;
    let mut totals = (0u64, 0usize, 0u64);

    for round in 1..=ROUNDS {
        let acks = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (id, st) in files.iter().enumerate() {
            tasks.push(tokio::spawn(writer(
                server.base.clone(),
                token.clone(),
                id,
                st.clone(),
                rng.next(),
                acks.clone(),
                stop.clone(),
            )));
        }
        let validated = Arc::new(AtomicU64::new(0));
        let reading = tokio::spawn(reader(
            server.base.clone(),
            reader_token.clone(),
            stop.clone(),
            validated.clone(),
        ));

        // SIGKILL after a random number of acknowledgements, and only once the reader has
        // validated files while the writers were writing, a random few ms later.
        let kill_after = 40 + rng.below(80);
        let deadline = Instant::now() + STEP;
        while acks.load(Ordering::Relaxed) < kill_after
            || validated.load(Ordering::Relaxed) < READS_BEFORE_KILL
        {
            assert!(
                Instant::now() < deadline,
                "round {round}: only {} writes acknowledged and {} files read in {STEP:?}",
                acks.load(Ordering::Relaxed),
                validated.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.below(30))).await;
        let read_before_kill = validated.load(Ordering::Relaxed);
        server.kill();
        let acked_at_kill = acks.load(Ordering::Relaxed);
        // The writers stop on their first unanswered call; `stop` only bounds stragglers.
        stop.store(true, Ordering::Relaxed);
        for (id, t) in tasks.into_iter().enumerate() {
            files[id] = tokio::time::timeout(STEP, t)
                .await
                .expect("writer stuck")
                .expect("writer");
        }
        let read_checked = tokio::time::timeout(STEP, reading)
            .await
            .expect("reader stuck")
            .expect("reader");
        assert!(
            read_before_kill >= READS_BEFORE_KILL && read_checked >= read_before_kill,
            "round {round}: the reader validated {read_before_kill} files before the kill \
             ({read_checked} in all); the storm needs at least {READS_BEFORE_KILL} reads"
        );
        // Answers read before the kill may be counted after it.
        let acked_round = acks.load(Ordering::Relaxed);

        // What the dead process left on disk, plus an abandoned temporary file of our own
        // and, from the first round on, one a live writer still holds.
        let ours: Vec<PathBuf> = held
            .iter()
            .map(|(p, _)| p.clone())
            .chain(released.clone())
            .collect();
        let leftovers: BTreeSet<PathBuf> = temp_files(data.path())
            .into_iter()
            .filter(|p| !ours.contains(p))
            .collect();
        std::fs::create_dir_all(&zone_dir).expect("shard dir");
        let planted = zone_dir.join(format!("{BLOB_TEMP_PREFIX}planted-{round}"));
        std::fs::write(&planted, "NXS1 /planted v=1 len=999 sha=0\nhalf").expect("plant");
        if round == 1 {
            let p = zone_dir.join(format!("{BLOB_TEMP_PREFIX}held"));
            let f = std::fs::File::create(&p).expect("held temp file");
            rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                .expect("lock the held temp file");
            held = Some((p, f));
        }
        eprintln!(
            "round {round}: SIGKILL at {acked_at_kill} acknowledged writes ({acked_round} in the \
             round); the reader had validated {read_checked} files; {} temporary files left by \
             the dead process",
            leftovers.len()
        );

        server = Nexusd::start(&db.url, data.path(), port, &log).await;
        // Clients cannot name the reserved temporary prefix.
        let existing = verify(&server.base, &token, &merged(&files)).await;
        match call(
            &http,
            &server.base,
            &token,
            "read",
            json!({"path": format!("/{TEMP_PREFIX}planted")}),
        )
        .await
        {
            Call::Rpc(e) => assert_eq!(e["code"], -32004, "{e}"),
            other => panic!("read of a reserved name: {other:?}"),
        }
        // The sweep removes everything the dead process (and we) abandoned, and only that.
        // (The blob store sweeps when it opens, before the server listens.)
        let deadline = Instant::now() + STEP;
        let removed = leftovers.len() + 1 + usize::from(released.is_some());
        loop {
            let remaining = temp_files(data.path());
            let held_path = held.as_ref().map(|(p, _)| p.clone());
            let rest: Vec<&PathBuf> = remaining
                .iter()
                .filter(|p| Some(*p) != held_path.as_ref())
                .collect();
            if rest.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: still there after the sweep: {rest:?}\n{}",
                tail(&server.log)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some((p, _)) = &held {
            assert!(
                p.exists(),
                "round {round}: the sweep deleted a locked temp file"
            );
        }
        if let Some(p) = &released {
            assert!(!p.exists(), "the released temp file was not swept");
        }
        // Round 2 lets go of the held file: the next restart must treat it as abandoned.
        if round == 2
            && let Some((p, f)) = held.take()
        {
            drop(f);
            released = Some(p);
        } else {
            released = None;
        }
        totals.0 += acked_round;
        totals.1 += leftovers.len();
        totals.2 += read_checked;
        eprintln!(
            "round {round}: restarted; {existing} files verified via read/list/glob/grep; swept {removed} temporary files"
        );
    }
    eprintln!(
        "{ROUNDS} rounds: {} writes acknowledged, {} temporary files left by killed processes \
         and swept, {} files validated by the reader during the storms",
        totals.0, totals.1, totals.2
    );
    drop(held);
    server.kill();
}

fn merged(files: &[Vec<FileState>]) -> BTreeMap<String, FileState> {
    files
        .iter()
        .enumerate()
        .flat_map(|(w, fs)| {
            fs.iter()
                .enumerate()
                .filter(|(_, st)| st.sent > 0)
                .map(move |(k, st)| (file_path(w, k), *st))
        })
        .collect()
}
