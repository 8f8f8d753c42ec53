//! Revocation across processes through Redis (SPEC §2): two rpc-servers on one database,
//! each with its own identity cache (TTL 60 s) and its own invalidation bus, joined only by
//! a Redis of this test's own. A revoke made by one server, or by a CLI-like control plane
//! with a Redis broadcaster, is refused by the other at once, not after the TTL; after
//! Redis restarts the servers resubscribe and revocations flow again.
//!
//! Propagation times are printed (run with `--nocapture` to see them).

mod own_redis;

use nexus_wire::methods::TokenCreateParams;
use own_redis::OwnRedis;
use rpc_server::auth::broadcast::{self, RedisHealth};
use rpc_server::auth::{InvalidationBus, TokenHasher};
use rpc_server::control::Control;
use rpc_server::db::{Backend, Store};
use rpc_server::testing::{TestApp, TestDb, TestOptions, test_secret};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a revocation may take to reach the other server (the cache TTL is 60 s).
const PROPAGATION: Duration = Duration::from_secs(2);
/// Longest wait for a server to notice Redis going away or coming back.
const REDIS_WAIT: Duration = Duration::from_secs(10);

fn options(redis: &OwnRedis) -> TestOptions {
    TestOptions {
        auth_cache_ttl: Duration::from_secs(60),
        redis_url: Some(redis.url()),
        ..Default::default()
    }
}

/// Server A on a fresh database, and server B: another process's worth of server (own
/// cache, own bus, own data dir) on the same database and the same Redis.
async fn two_servers(redis: &OwnRedis) -> (TestApp, TestApp) {
    let a = TestApp::spawn_with(Backend::Postgres, options(redis)).await;
    let b = second_server(&a, options(redis)).await;
    wait_redis(&a, "ok").await;
    wait_redis(&b, "ok").await;
    a.zone("eng").await;
    (a, b)
}

async fn second_server(a: &TestApp, o: TestOptions) -> TestApp {
    let db = TestDb {
        url: a.db.url.clone(),
        store: Store::connect(&a.db.url).await.expect("connect"),
        dir: tempfile::tempdir().expect("tempdir"),
    };
    TestApp::start(db, tempfile::tempdir().expect("tempdir"), o).await
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    tokio::time::timeout(
        Duration::from_secs(5),
        app.client.get(format!("{}{path}", app.base)).send(),
    )
    .await
    .unwrap_or_else(|_| panic!("GET {path} hung"))
    .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

async fn redis_field(app: &TestApp) -> String {
    let h: Value = get(app, "/health").await.json().await.expect("health JSON");
    h["redis"].as_str().unwrap_or_default().to_owned()
}

/// Waits (bounded) until the server's `/health` reports `redis` = `want`.
async fn wait_redis(app: &TestApp, want: &str) -> Duration {
    let start = Instant::now();
    loop {
        let got = redis_field(app).await;
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < REDIS_WAIT,
            "{}: /health redis is {got:?}, not {want:?}, after {REDIS_WAIT:?}",
            app.base
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn whoami_status(app: &TestApp, token: &str) -> u16 {
    app.rpc_raw(Some(token), "whoami", json!({})).await.0
}

/// Uses the token twice, so the second answer comes from the server's identity cache.
async fn warm(app: &TestApp, token: &str) {
    for _ in 0..2 {
        assert_eq!(
            whoami_status(app, token).await,
            200,
            "{}: token accepted",
            app.base
        );
    }
}

/// Polls until the server refuses the token; returns how long that took from `since`.
async fn refused_within(app: &TestApp, token: &str, since: Instant, what: &str) -> Duration {
    loop {
        let s = whoami_status(app, token).await;
        if s == 401 {
            let took = since.elapsed();
            eprintln!("propagation [{what}]: refused after {took:?}");
            return took;
        }
        assert_eq!(s, 200, "{what}: unexpected status");
        assert!(
            since.elapsed() < PROPAGATION,
            "{what}: {} still accepts the revoked token after {PROPAGATION:?} (cache TTL is 60 s)",
            app.base
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn mint(app: &TestApp, name: &str) -> String {
    app.control
        .create_token(TokenCreateParams {
            name: name.into(),
            zones: Some("eng:rw".into()),
            user_id: Some(format!("user-{name}")),
            ..Default::default()
        })
        .await
        .expect("mint")
        .token
}

/// The value of an unlabelled sample `name` in Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse::<f64>().ok())?
    })
}

/// A control plane as the CLI builds it: its own bus, whose only way to the servers is a
/// Redis broadcaster (no subscriber: a CLI process has no cache to keep fresh).
fn cli_control(store: Store, redis_url: &str) -> (Control, Arc<broadcast::RedisBroadcaster>) {
    let bus = InvalidationBus::new();
    let b = broadcast::start(redis_url, bus.clone(), None, RedisHealth::default(), false)
        .expect("broadcaster");
    bus.set_broadcaster(b.clone());
    let hasher = Arc::new(TokenHasher::new(&test_secret()).expect("secret"));
    (Control::new(store, hasher, bus, None), b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_on_one_server_is_refused_by_the_other_at_once() {
    let redis = OwnRedis::start().await;
    let (a, b) = two_servers(&redis).await;
    let t = mint(&a, "roaming").await;
    let bystander = mint(&a, "bystander").await;
    warm(&a, &t).await;
    warm(&b, &t).await;
    warm(&b, &bystander).await;

    let since = Instant::now();
    let info = a.control.revoke_token("roaming").await.expect("revoke");
    assert_eq!(info.status, "revoked");
    // The server that made the change refuses at once.
    assert_eq!(whoami_status(&a, &t).await, 401);
    refused_within(&b, &t, since, "server A -> server B").await;
    // Only the revoked token is affected.
    assert_eq!(whoami_status(&b, &bystander).await, 200);

    // B measured the lag of the message it applied.
    let text = get(&b, "/metrics").await.text().await.expect("metrics");
    let count = sample(&text, "nexus_invalidation_lag_seconds_count").unwrap_or(0.0);
    assert!(
        count > 0.0,
        "nexus_invalidation_lag_seconds_count is {count} on the receiving server"
    );
    let sum = sample(&text, "nexus_invalidation_lag_seconds_sum").unwrap_or(f64::NAN);
    assert!(
        (0.0..PROPAGATION.as_secs_f64()).contains(&sum),
        "lag sum {sum} s for {count} message(s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_control_plane_with_a_redis_broadcaster_reaches_every_server() {
    let redis = OwnRedis::start().await;
    let (a, b) = two_servers(&redis).await;
    let t = mint(&a, "cli-revoked").await;
    let quiet = mint(&a, "quiet-revoked").await;
    for app in [&a, &b] {
        warm(app, &t).await;
        warm(app, &quiet).await;
    }

    // Control: a control plane with no way to the servers leaves their caches stale (the
    // TTL is the only backstop), so a prompt refusal below is the broadcast's doing.
    let hasher = Arc::new(TokenHasher::new(&test_secret()).expect("secret"));
    let silent = Control::new(a.db.store.clone(), hasher, InvalidationBus::new(), None);
    silent
        .revoke_token("quiet-revoked")
        .await
        .expect("silent revoke");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        whoami_status(&a, &quiet).await,
        200,
        "cached identity outlives a silent revoke (TTL backstop)"
    );
    assert_eq!(whoami_status(&b, &quiet).await, 200);

    let store = Store::connect(&a.db.url).await.expect("connect");
    let (cli, broadcaster) = cli_control(store, &redis.url());
    let since = Instant::now();
    cli.revoke_token("cli-revoked").await.expect("revoke");
    assert!(
        broadcaster.flush(Duration::from_secs(3)).await,
        "the CLI's invalidation was not published within 3 s"
    );
    eprintln!("CLI revoke + flush took {:?}", since.elapsed());
    refused_within(&a, &t, since, "CLI -> server A").await;
    refused_within(&b, &t, since, "CLI -> server B").await;
    for app in [&a, &b] {
        let text = get(app, "/metrics").await.text().await.expect("metrics");
        let count = sample(&text, "nexus_invalidation_lag_seconds_count").unwrap_or(0.0);
        assert!(count > 0.0, "{}: lag histogram count is {count}", app.base);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_restarts_servers_resubscribe_and_revocations_flow_again() {
    let mut redis = OwnRedis::start().await;
    let (a, b) = two_servers(&redis).await;
    let first = mint(&a, "first").await;
    let during = mint(&a, "during-outage").await;
    let after = mint(&a, "after-restart").await;
    for app in [&a, &b] {
        warm(app, &first).await;
        warm(app, &during).await;
    }

    // Before the outage: the broadcast works.
    let since = Instant::now();
    a.control.revoke_token("first").await.expect("revoke");
    refused_within(&b, &first, since, "before restart").await;

    redis.kill();
    let noticed = wait_redis(&b, "err").await;
    eprintln!("server B noticed Redis down after {noticed:?}");
    wait_redis(&a, "err").await;
    // Serving goes on without Redis.
    assert_eq!(whoami_status(&b, &during).await, 200);
    assert_eq!(whoami_status(&a, &after).await, 200);
    // A revoke made while Redis is down cannot be broadcast ...
    a.control
        .revoke_token("during-outage")
        .await
        .expect("revoke during the outage");
    assert_eq!(whoami_status(&a, &during).await, 401);

    let down_at = Instant::now();
    redis.restart().await;
    let back = wait_redis(&b, "ok").await;
    eprintln!(
        "server B resubscribed {back:?} after Redis answered again ({:?} after the restart began)",
        down_at.elapsed()
    );
    wait_redis(&a, "ok").await;
    // ... but a resubscribing server drops its whole cache, since it may have missed
    // messages: the token revoked during the outage is refused now, not after the TTL.
    assert_eq!(
        whoami_status(&b, &during).await,
        401,
        "a token revoked while Redis was down is still accepted after the resubscription"
    );

    // After the restart, broadcasts flow again. The token is cached on B only now, after
    // the resubscription dropped B's cache, so a refusal is the new broadcast's doing.
    warm(&b, &after).await;
    let since = Instant::now();
    a.control
        .revoke_token("after-restart")
        .await
        .expect("revoke");
    refused_within(&b, &after, since, "after restart").await;
}

/// Polls `check` on B until it holds; returns how long that took from `since`.
async fn until_within<F, Fut>(since: Instant, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if check().await {
            let took = since.elapsed();
            eprintln!("propagation [{what}]: {took:?}");
            return took;
        }
        assert!(
            since.elapsed() < PROPAGATION,
            "{what}: not seen by the other server after {PROPAGATION:?} (cache TTL is 60 s)"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Zone names a zoneless admin sees at `/`.
async fn admin_zones(app: &TestApp, admin: &str) -> Vec<String> {
    let r = app
        .rpc(admin, "list", json!({"path": "/"}))
        .await
        .expect("list /");
    let mut names: Vec<String> = r["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

async fn whoami_zones(app: &TestApp, token: &str) -> Vec<String> {
    let w = app.rpc(token, "whoami", json!({})).await.expect("whoami");
    let mut zones: Vec<String> = w["zones"]
        .as_array()
        .expect("zones")
        .iter()
        .filter_map(|z| z["zone"].as_str().map(str::to_owned))
        .collect();
    zones.sort();
    zones
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_and_grant_changes_reach_the_other_server_at_once() {
    let redis = OwnRedis::start().await;
    let (a, b) = two_servers(&redis).await;
    a.zone("ops").await;
    let admin = a.mint("root", None, true).await.token;
    let t = mint(&a, "grantee").await;
    let ops_only = a
        .control
        .create_token(TokenCreateParams {
            name: "ops-only".into(),
            zones: Some("ops:rw".into()),
            ..Default::default()
        })
        .await
        .expect("mint")
        .token;
    // Warm B: identities and the admin's zone list.
    warm(&b, &t).await;
    warm(&b, &ops_only).await;
    assert_eq!(admin_zones(&b, &admin).await, ["eng", "ops"]);
    assert_eq!(admin_zones(&b, &admin).await, ["eng", "ops"]);
    assert_eq!(whoami_zones(&b, &t).await, ["eng"]);

    // A grant added on A is seen by B.
    let since = Instant::now();
    a.control
        .add_token_zones("grantee", "ops:r")
        .await
        .expect("add zone");
    until_within(since, "grant added", || async {
        whoami_zones(&b, &t).await == ["eng", "ops"]
    })
    .await;

    // A zone created on A is listed to B's zoneless admin.
    let since = Instant::now();
    a.zone("fresh").await;
    until_within(since, "zone created", || async {
        admin_zones(&b, &admin).await == ["eng", "fresh", "ops"]
    })
    .await;

    // A zone deleted on A: B refuses the token holding only it, drops it from the
    // admin's list and from the other token's zones.
    warm(&b, &ops_only).await;
    let since = Instant::now();
    a.control.delete_zone("ops").await.expect("delete zone");
    refused_within(&b, &ops_only, since, "zone deleted: its only token").await;
    until_within(since, "zone deleted: admin list", || async {
        admin_zones(&b, &admin).await == ["eng", "fresh"]
    })
    .await;
    // The token that also held the deleted zone: B answers as A, which made the change
    // (SPEC §2: every zone a token holds must be active).
    let on_a = whoami_status(&a, &t).await;
    assert_eq!(on_a, 401, "a token holding a deleted zone");
    refused_within(&b, &t, since, "zone deleted: a token also holding it").await;
}
