//! Resource subscriptions across nodes (SPEC §14), with real processes: two `nexus serve`
//! on one Postgres database and a Redis cluster bus, each with its own `nexus mcp serve`.
//! Subscribers hold sessions on frontend A (→ nexusd A); every change is made through
//! frontend B (→ nexusd B), so only the bus can carry it to them.
//!
//! - A legacy session (`resources/subscribe`) and a 2026-07-28 `subscriptions/listen`
//!   stream, both rmcp clients, are told `notifications/resources/updated` of the URI they
//!   gave when the file is written, edited, or its directory moved away.
//! - Nothing is told of the same path in a zone the subscriber does not hold; subscribing
//!   to a file of such a zone, or to one outside every zone, is refused.
//! - A revoked token's subscriptions end at once (the revocation travels the bus too): a
//!   later change is told to another subscriber of the same file, not to it.
//! - `nexus hub up` (no bus): a change made through the embedded hub reaches a subscriber,
//!   an rmcp session and the official Python SDK in both eras (`tests/python/subscriptions.py`).
//!
//! "Nothing was told" is judged against a later change that is told: notifications of
//! one frontend follow the order the bus delivered the changes in.

use crate::common;

use common::procs::{
    Proc, free_port, hub, mcp_serve_cmd, run_nexus, serve_cmd, start_frontend, start_nexusd,
};
use common::{Client, Era, STEP};
use rmcp::model::{
    CallToolRequestParams, ClientConfig, ResourceUpdatedNotificationParam, SubscriptionFilter,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient};
use rpc_server::testing::{DropDatabase, empty_postgres_database, redis_url};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;

/// At most this long for one notification to arrive.
const TOLD_WITHIN: Duration = Duration::from_secs(20);

/// A client that hands every `notifications/resources/updated` to the test.
#[derive(Clone)]
struct Watcher(mpsc::UnboundedSender<String>);

impl ClientHandler for Watcher {
    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        let _ = self.0.send(params.uri);
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

type Watching = RunningService<RoleClient, Watcher>;

/// A legacy session on `mcp` that reports its notifications.
async fn watcher(mcp: &str, token: &str) -> (Watching, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(mcp.to_owned()).auth_header(token.to_owned()),
    );
    let client = tokio::time::timeout(
        STEP,
        Watcher(tx).serve_with_lifecycle(transport, ClientLifecycleMode::Initialize),
    )
    .await
    .expect("connect in time")
    .expect("connect");
    (client, rx)
}

#[allow(deprecated)]
async fn subscribe(c: &Watching, uri: &str) -> Result<(), String> {
    tokio::time::timeout(
        STEP,
        c.subscribe(rmcp::model::SubscribeRequestParams::new(uri)),
    )
    .await
    .expect("subscribe in time")
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// The next notification, or `None` when none came in time.
async fn next_told(rx: &mut mpsc::UnboundedReceiver<String>) -> Option<String> {
    tokio::time::timeout(TOLD_WITHIN, rx.recv())
        .await
        .ok()
        .flatten()
}

/// Everything told until (and including) `uri`; panics when `uri` is never told.
async fn told_until(rx: &mut mpsc::UnboundedReceiver<String>, uri: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match next_told(rx).await {
            Some(u) => {
                let done = u == uri;
                seen.push(u);
                if done {
                    return seen;
                }
            }
            None => panic!("{uri} was never told; told: {seen:?}"),
        }
    }
}

async fn call(c: &Client, tool: &str, args: Value) {
    let r = tokio::time::timeout(
        STEP,
        c.call_tool(
            CallToolRequestParams::new(tool.to_owned())
                .with_arguments(args.as_object().cloned().expect("object arguments")),
        ),
    )
    .await
    .expect("call in time")
    .expect("call");
    assert_ne!(r.is_error, Some(true), "{tool} {args}: {r:?}");
}

async fn write(c: &Client, path: &str, text: &str) {
    call(
        c,
        "nexus_write_file",
        json!({"path": path, "content": text}),
    )
    .await;
}

/// Two nexusd on one database and one Redis bus, a frontend in front of each.
struct TwoNodes {
    _fe: [Proc; 2],
    _rpc: [Proc; 2],
    fe: [String; 2],
    db_url: String,
    _dir: tempfile::TempDir,
    _db: DropDatabase,
}

impl TwoNodes {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db_url = empty_postgres_database("nexus_subs").await;
        let db = DropDatabase(db_url.rsplit_once('/').expect("db name").1.to_owned());
        hub(&db_url, &["migrate"]).await;
        hub(&db_url, &["zone", "create", "eng"]).await;
        hub(&db_url, &["zone", "create", "ops"]).await;
        let bus = redis_url();
        let mut rpc = Vec::new();
        let mut fe = Vec::new();
        let mut fe_urls = Vec::new();
        for i in 0..2 {
            let port = free_port();
            let mut cmd = serve_cmd(&db_url, &dir.path().join(format!("data{i}")), port);
            cmd.env("NEXUS_BUS_URL", &bus)
                .env("NEXUS_RATE_LIMIT_TOKEN", "100000/m");
            let label: &'static str = if i == 0 { "nexusd-a" } else { "nexusd-b" };
            let (p, base) = start_nexusd(label, cmd, dir.path(), port).await;
            rpc.push(p);
            let port = free_port();
            let mut cmd = mcp_serve_cmd(&base, port);
            cmd.env("NEXUS_BUS_URL", &bus);
            let label: &'static str = if i == 0 { "frontend-a" } else { "frontend-b" };
            let (p, base) = start_frontend(label, cmd, dir.path(), port).await;
            fe.push(p);
            fe_urls.push(format!("{base}/mcp"));
        }
        let [fe_a, fe_b]: [Proc; 2] = fe.try_into().expect("two frontends");
        let [rpc_a, rpc_b]: [Proc; 2] = rpc.try_into().expect("two nexusd");
        let [url_a, url_b]: [String; 2] = fe_urls.try_into().expect("two urls");
        Self {
            _fe: [fe_a, fe_b],
            _rpc: [rpc_a, rpc_b],
            fe: [url_a, url_b],
            db_url,
            _dir: dir,
            _db: db,
        }
    }

    async fn mint(&self, name: &str, zones: &str) -> (String, String) {
        let out = hub(
            &self.db_url,
            &[
                "token", "create", "--name", name, "--zones", zones, "--json",
            ],
        )
        .await;
        let v: Value = serde_json::from_str(&out).expect("token create --json");
        (
            v["token"].as_str().expect("token").to_owned(),
            v["key_id"].as_str().expect("key id").to_owned(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_another_node_is_told_to_subscribers_of_the_file_and_of_nothing_else() {
    let hub = TwoNodes::start().await;
    let (writer, _) = hub.mint("writer", "eng:rw,ops:rw").await;
    let (reader, reader_key) = hub.mint("reader", "eng:r").await;
    // Several zones (paths under /zone/<zone>/), ops only to write.
    let (other, _) = hub.mint("other-reader", "eng:r,ops:w").await;
    let w = common::connect(&hub.fe[1], &writer, Era::Session).await;
    write(&w, "/zone/eng/notes/plan.md", "# Plan\n").await;
    write(&w, "/zone/eng/notes/sentinel.md", "s\n").await;
    write(&w, "/zone/ops/notes/plan.md", "ops\n").await;

    // The reader holds only eng: its paths are '/'-rooted.
    let plan = "nexus://files/notes/plan.md";
    let sentinel = "nexus://files/notes/sentinel.md";
    let (legacy, mut told) = watcher(&hub.fe[0], &reader).await;
    subscribe(&legacy, plan)
        .await
        .expect("subscribe to a readable file");
    subscribe(&legacy, sentinel)
        .await
        .expect("subscribe to the sentinel");
    // Nothing that climbs out of its view, nor another scheme.
    for refused in ["nexus://files/../ops/notes/plan.md", "file:///etc/passwd"] {
        let e = subscribe(&legacy, refused)
            .await
            .expect_err(&format!("{refused} must be refused"));
        assert!(!e.is_empty(), "{refused}: {e}");
    }
    // A zone held only to write, or not at all, is no subscription either.
    let (multi, _) = watcher(&hub.fe[0], &other).await;
    for refused in [
        "nexus://files/zone/ops/notes/plan.md",
        "nexus://files/zone/hr/notes/plan.md",
    ] {
        let e = subscribe(&multi, refused)
            .await
            .expect_err(&format!("{refused} must be refused"));
        assert!(!e.is_empty(), "{refused}: {e}");
    }
    let _ = multi.cancel().await;
    let (m_plan, m_sentinel) = (
        "nexus://files/zone/eng/notes/plan.md",
        "nexus://files/zone/eng/notes/sentinel.md",
    );

    // The 2026-07-28 era: one listen stream, on the same frontend.
    let modern = common::connect(&hub.fe[0], &other, Era::Stateless).await;
    let mut listening = tokio::time::timeout(
        STEP,
        modern.listen(
            SubscriptionFilter::builder()
                .resource_subscription(m_plan)
                .resource_subscription(m_sentinel)
                .build(),
        ),
    )
    .await
    .expect("listen in time")
    .expect("listen");
    let acked = listening
        .acknowledged()
        .resource_subscriptions
        .clone()
        .unwrap_or_default();
    assert_eq!(acked, vec![m_plan.to_owned(), m_sentinel.to_owned()]);
    let (ltx, mut ltold) = mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        while let Ok(Some(n)) = listening.next().await {
            if let rmcp::model::ServerNotification::ResourceUpdatedNotification(u) = n {
                let _ = ltx.send(u.params.uri);
            }
        }
    });

    // A write through node B is told on node A, to both.
    write(&w, "/zone/eng/notes/plan.md", "# Plan\nv2\n").await;
    assert_eq!(next_told(&mut told).await.as_deref(), Some(plan));
    assert_eq!(next_told(&mut ltold).await.as_deref(), Some(m_plan));
    // An edit too.
    call(
        &w,
        "nexus_edit_file",
        json!({"path": "/zone/eng/notes/plan.md", "edits": [{"old_str": "v2", "new_str": "v3"}]}),
    )
    .await;
    assert_eq!(next_told(&mut told).await.as_deref(), Some(plan));
    assert_eq!(next_told(&mut ltold).await.as_deref(), Some(m_plan));

    // The same path in ops, and an unsubscribed file of eng: nothing; then the sentinel.
    write(&w, "/zone/ops/notes/plan.md", "ops v2\n").await;
    write(&w, "/zone/eng/notes/unwatched.md", "x\n").await;
    write(&w, "/zone/eng/notes/sentinel.md", "s2\n").await;
    assert_eq!(
        told_until(&mut told, sentinel).await,
        vec![sentinel.to_owned()]
    );
    assert_eq!(
        told_until(&mut ltold, m_sentinel).await,
        vec![m_sentinel.to_owned()]
    );

    // The reader's token is revoked (the CLI, straight on the database, announced on the
    // bus): its subscriptions end; the other reader's stream is still told.
    let (code, _, err) = run_nexus(
        &["hub", "token", "revoke", &reader_key],
        &[
            ("NEXUS_DATABASE_URL".to_owned(), hub.db_url.clone()),
            (
                "NEXUS_API_KEY_SECRET".to_owned(),
                rpc_server::testing::TEST_SECRET.to_owned(),
            ),
            ("NEXUS_BUS_URL".to_owned(), redis_url()),
        ],
    )
    .await;
    assert_eq!(code, 0, "revoke: {err}");
    // Moving the directory away changes the file the stream watches.
    call(
        &w,
        "nexus_rename_file",
        json!({"old_path": "/zone/eng/notes", "new_path": "/zone/eng/archive"}),
    )
    .await;
    write(&w, "/zone/eng/notes/sentinel.md", "s3\n").await;
    // The move tells both files (in no set order), the write the sentinel again.
    let mut seen = told_until(&mut ltold, m_sentinel).await;
    seen.extend(told_until(&mut ltold, m_sentinel).await);
    assert!(
        seen.contains(&m_plan.to_owned()),
        "a moved directory tells its files: {seen:?}"
    );
    // The revoked session was told nothing of either change.
    assert_eq!(
        told.try_recv().ok(),
        None,
        "a revoked token was told of a change"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        told.try_recv().ok(),
        None,
        "a revoked token was told of a change"
    );

    pump.abort();
    let _ = legacy.cancel().await;
    let _ = modern.cancel().await;
    let _ = w.cancel().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_hub_tells_subscribers_without_a_bus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut up = common::procs::BannerHub::start(&dir.path().join("hub"));
    let banner = up.banner();
    let line = |key: &str| {
        common::procs::field(&banner, key).unwrap_or_else(|| panic!("no {key} line in {banner:?}"))
    };
    let (mcp, token) = (line("mcp: "), line("token: "));
    let w = common::connect(&mcp, &token, Era::Stateless).await;
    write(&w, "/zone/default/readme.md", "hello\n").await;
    let (legacy, mut told) = watcher(&mcp, &token).await;
    subscribe(&legacy, "nexus://files/zone/default/readme.md")
        .await
        .expect("subscribe");
    write(&w, "/zone/default/readme.md", "hello again\n").await;
    assert_eq!(
        next_told(&mut told).await.as_deref(),
        Some("nexus://files/zone/default/readme.md")
    );
    let _ = legacy.cancel().await;
    let _ = w.cancel().await;

    // The official Python SDK subscribes, is told, unsubscribes and is told nothing more;
    // and in the 2026-07-28 era listens (`Client.listen`), told of its file alone.
    for args in [
        &[mcp.as_str(), token.as_str(), "/zone/default/py/watched.md"][..],
        &[
            mcp.as_str(),
            token.as_str(),
            "/zone/default/py/listened.md",
            "--listen",
        ],
    ] {
        let out =
            common::auth::run_python("subscriptions.py", args, &[], Duration::from_secs(90)).await;
        assert!(
            out.contains("ok: told") && out.contains("ok: quiet"),
            "{}: {out}",
            args[2..].join(" ")
        );
    }
}
