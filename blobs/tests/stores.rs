//! The blob store contract: one body run against `LocalDir` and against `S3Store` on a real
//! SeaweedFS. Then S3's own failure modes: wrong or missing credentials, a hostile server (a
//! fault-injecting proxy answering 500s or stalling), a dead endpoint, and a restart.

use bytes::Bytes;
use nexus_blobs::testing::{BUCKET, LocalBehind, S3Behind, SeaweedFs, bytes_of, contract};
use nexus_blobs::{
    BlobError, BlobStore, ContentId, LocalDir, Put, S3Credentials, S3Limits, S3Store,
};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_dir_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("blobs");
    let store = Arc::new(LocalDir::open(&root).await.expect("open"));
    assert_eq!(store.describe(), format!("file://{}", root.display()));
    contract(store, &LocalBehind(root)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_on_seaweedfs_keeps_the_contract() {
    let Some(weed) = SeaweedFs::start().await else {
        return;
    };
    let store = Arc::new(weed.store("hub/blobs"));
    assert_eq!(
        store.describe(),
        format!(
            "s3://{BUCKET}/hub/blobs?endpoint={}&region=us-east-1",
            weed.endpoint()
        )
    );
    assert_eq!(
        nexus_blobs::StoreUrl::parse(&weed.storage_url("hub/blobs")).expect("storage URL"),
        nexus_blobs::StoreUrl::S3(weed.url("hub/blobs"))
    );
    let behind = S3Behind {
        raw: weed.raw(),
        store: store.clone(),
        prefix: "hub/blobs".into(),
    };
    contract(store, &behind).await;

    // The same layout at the bucket's root.
    let root = weed.store("");
    let b = Bytes::from_static(b"at the root");
    let id = ContentId::of(&b);
    assert_eq!(root.put(&id, b.clone()).await.expect("put"), Put::Created);
    assert_eq!(root.get(&id).await.expect("get"), b);
    assert!(root.list(None, 10_000).await.expect("list").contains(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_refuses_wrong_or_missing_credentials_clearly() {
    let Some(weed) = SeaweedFs::start().await else {
        return;
    };
    let good = weed.store("creds");
    let b = Bytes::from_static(b"guarded");
    let id = ContentId::of(&b);
    good.put(&id, b.clone()).await.expect("put");

    // What a spawned server would be given works as credentials.
    let env: std::collections::HashMap<_, _> = weed.aws_env().into_iter().collect();
    let from_env = S3Credentials {
        access_key_id: env["AWS_ACCESS_KEY_ID"].clone(),
        secret_access_key: env["AWS_SECRET_ACCESS_KEY"].clone().into(),
        session_token: None,
    };
    let spawned = S3Store::open_with(&weed.url("creds"), Some(&from_env), &S3Limits::default())
        .expect("open");
    assert_eq!(spawned.get(&id).await.expect("get"), b);

    let real = weed.credentials();
    let wrong_secret = S3Credentials {
        secret_access_key: "not-the-secret-0123456789".to_owned().into(),
        ..real.clone()
    };
    let unknown_key = S3Credentials {
        access_key_id: "AKIDUNKNOWN0000".into(),
        ..real
    };
    for creds in [wrong_secret, unknown_key] {
        let bad = S3Store::open_with(&weed.url("creds"), Some(&creds), &S3Limits::default())
            .expect("open");
        let other = Bytes::from_static(b"intruder");
        let results = [
            bad.put(&ContentId::of(&other), other).await.map(|_| ()),
            bad.get(&id).await.map(|_| ()),
            bad.exists(&id).await.map(|_| ()),
            bad.delete(&id).await,
            bad.list(None, 10).await.map(|_| ()),
        ];
        for r in results {
            let e = r.expect_err("refused");
            assert!(matches!(e, BlobError::Other(_)), "{e:?}");
            assert!(!e.is_retriable());
            let msg = e.to_string();
            assert!(msg.contains("AWS_SECRET_ACCESS_KEY"), "{msg}");
            assert!(!msg.contains("not-the-secret"), "{msg}");
        }
    }
    // Nothing the refused calls did changed the store.
    assert_eq!(good.get(&id).await.expect("still there"), b);

    // Anonymous requests are refused as well: the server really checks signatures.
    let anonymous = weed
        .builder()
        .with_skip_signature(true)
        .build()
        .expect("anonymous client");
    let key = Path::from(good.object_key(&id));
    assert!(anonymous.get(&key).await.is_err());
    assert!(
        anonymous
            .put(&Path::from("anon"), PutPayload::from_static(b"x"))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_blobs_survive_a_seaweedfs_restart() {
    let Some(mut weed) = SeaweedFs::start().await else {
        return;
    };
    let store = weed.store("restart");
    let blobs: Vec<Bytes> = [("a", 10), ("b", 1 << 20), ("c", 0)]
        .iter()
        .map(|(s, n)| bytes_of(s, *n))
        .collect();
    for b in &blobs {
        store.put(&ContentId::of(b), b.clone()).await.expect("put");
    }
    weed.restart().await;
    // A fresh client, as a restarted hub would have.
    let store = weed.store("restart");
    let mut ids: Vec<ContentId> = blobs.iter().map(|b| ContentId::of(b)).collect();
    for (b, id) in blobs.iter().zip(&ids) {
        assert_eq!(&store.get(id).await.expect("get after restart"), b);
        assert_eq!(store.put(id, b.clone()).await.expect("put"), Put::Existed);
    }
    ids.sort();
    assert_eq!(store.list(None, 100).await.expect("list"), ids);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    Fail500,
    Stall,
}

/// A TCP proxy in front of S3 that passes traffic through, or reads each request and
/// answers 500, or reads it and never answers. Changing the mode drops every open
/// connection, so pooled client connections see the new behaviour too.
struct FaultProxy {
    addr: std::net::SocketAddr,
    mode: watch::Sender<Mode>,
    /// Requests that reached a faulty mode.
    attempts: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (mode, rx) = watch::channel(Mode::Pass);
        let attempts = Arc::new(AtomicUsize::new(0));
        let counter = attempts.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                let (rx, counter) = (rx.clone(), counter.clone());
                tokio::spawn(serve(conn, upstream, rx, counter));
            }
        });
        Self {
            addr,
            mode,
            attempts,
            task,
        }
    }

    fn set(&self, mode: Mode) {
        self.attempts.store(0, Ordering::SeqCst);
        self.mode.send_replace(mode);
    }

    fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (head and `Content-Length` body); false at EOF or on nonsense.
async fn read_request(conn: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 << 10 {
            return false;
        }
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let body_len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut left = body_len.saturating_sub(buf.len() - head_end);
    while left > 0 {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
    true
}

async fn serve(
    mut conn: TcpStream,
    upstream: std::net::SocketAddr,
    mut rx: watch::Receiver<Mode>,
    attempts: Arc<AtomicUsize>,
) {
    let mode = *rx.borrow_and_update();
    let work = async {
        match mode {
            Mode::Pass => {
                if let Ok(mut up) = TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
                }
            }
            Mode::Fail500 => {
                while read_request(&mut conn).await {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let body =
                        "<Error><Code>InternalError</Code><Message>injected</Message></Error>";
                    let res = format!(
                        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(res.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
            Mode::Stall => {
                if read_request(&mut conn).await {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    // A mode change ends every connection; none outlives a minute whatever the client does.
    let bounded = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::select! {
            () = work => {}
            _ = rx.changed() => {}
        }
    });
    let _ = bounded.await;
}

/// Short limits so the faults resolve quickly; the retry bound is what the test checks.
fn hostile_limits() -> S3Limits {
    S3Limits {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        max_retries: 2,
        retry_budget: Duration::from_secs(5),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    }
}

/// `why` lists what the error may say, separated by `|`.
fn assert_unavailable<T: std::fmt::Debug>(what: &str, why: &str, r: Result<T, BlobError>) {
    match r {
        Err(e @ BlobError::Unavailable(_)) => {
            assert!(e.is_retriable());
            let text = e.to_string();
            assert!(why.split('|').any(|w| text.contains(w)), "{what}: {e}");
        }
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_gives_unavailable_on_a_failing_or_stalled_server_then_recovers() {
    let Some(weed) = SeaweedFs::start().await else {
        return;
    };
    let limits = hostile_limits();
    let most = limits.max_retries + 1;
    let proxy = FaultProxy::start(([127, 0, 0, 1], weed.s3_port()).into()).await;
    let mut url = weed.url("hostile");
    url.endpoint = Some(format!("http://{}", proxy.addr));
    let store = S3Store::open_with(&url, Some(&weed.credentials()), &limits).expect("open");

    let a = bytes_of("before the storm", 4096);
    let a_id = ContentId::of(&a);
    assert_eq!(
        store.put(&a_id, a.clone()).await.expect("put"),
        Put::Created
    );
    let b = bytes_of("during the storm", 4096);
    let b_id = ContentId::of(&b);

    proxy.set(Mode::Fail500);
    assert_unavailable("get on 500s", "answered 500", store.get(&a_id).await);
    let n = proxy.attempts();
    assert!((1..=most).contains(&n), "get tried {n} times");
    proxy.set(Mode::Fail500);
    // Setting the mode again drops the connection the get left in the client's pool: a put
    // sent on it before the client notices ends as a lost connection, which is not retried
    // (the body may have been sent). Either way the caller is told to retry.
    assert_unavailable(
        "put on 500s",
        "answered 500|connection lost",
        store.put(&b_id, b.clone()).await,
    );
    let n = proxy.attempts();
    assert!((1..=most).contains(&n), "put tried {n} times");
    proxy.set(Mode::Fail500);
    assert_unavailable("exists on 500s", "answered 500", store.exists(&a_id).await);
    assert!(proxy.attempts() <= most);
    proxy.set(Mode::Fail500);
    assert_unavailable("list on 500s", "answered 500", store.list(None, 10).await);
    assert!(proxy.attempts() <= most);

    proxy.set(Mode::Stall);
    assert_unavailable("get on a stall", "timed out", store.get(&a_id).await);
    let n = proxy.attempts();
    assert!((1..=most).contains(&n), "get tried {n} times");
    proxy.set(Mode::Stall);
    assert_unavailable(
        "put on a stall",
        "timed out",
        store.put(&b_id, b.clone()).await,
    );
    let n = proxy.attempts();
    assert!((1..=most).contains(&n), "put tried {n} times");

    // Healed: the same store works again, and nothing half-written got through.
    proxy.set(Mode::Pass);
    assert_eq!(store.get(&a_id).await.expect("get after heal"), a);
    assert!(!store.exists(&b_id).await.expect("exists"));
    assert_eq!(
        store.put(&b_id, b.clone()).await.expect("put"),
        Put::Created
    );
    assert_eq!(store.get(&b_id).await.expect("get"), b);

    // Nobody listening at all.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    url.endpoint = Some(format!("http://127.0.0.1:{dead_port}"));
    let dead = S3Store::open_with(&url, Some(&weed.credentials()), &limits).expect("open");
    assert_unavailable(
        "get from a dead endpoint",
        "cannot connect",
        dead.get(&a_id).await,
    );
    assert_unavailable(
        "put to a dead endpoint",
        "cannot connect",
        dead.put(&b_id, b).await,
    );
}

/// An https endpoint is spoken to in TLS, verified: a server answering in plain HTTP (which
/// would satisfy a client that skipped TLS) is an error, never a blob, and not "retry later".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_https_endpoint_is_tls_or_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    let server = tokio::spawn(async move {
        for _ in 0..20 {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                .await;
        }
    });
    let url = nexus_blobs::S3Url {
        bucket: BUCKET.into(),
        prefix: "tls".into(),
        endpoint: Some(format!("https://{addr}")),
        region: Some("us-east-1".into()),
        allow_http: false,
    };
    let creds = S3Credentials {
        access_key_id: "AKIDTLS".into(),
        secret_access_key: "tls-secret".to_owned().into(),
        session_token: None,
    };
    let store = S3Store::open_with(&url, Some(&creds), &hostile_limits()).expect("open");
    let e = store
        .get(&ContentId::of(b"hello"))
        .await
        .expect_err("not TLS");
    assert!(matches!(e, BlobError::Other(_)), "{e:?}");
    assert!(e.to_string().contains("TLS"), "{e}");
    assert!(connections.load(Ordering::SeqCst) >= 1);
    server.abort();
}
