//! Revocation across processes (SPEC §2, §13): two rpc-servers on one database, each with
//! its own identity cache (TTL 60 s) and its own invalidation bus. Through the cluster bus
//! on Redis (a Redis Stream on a Redis of this test's own, on a database without the
//! notification triggers, so that nothing else can carry a change): a revoke made by one
//! server is refused by the other long before the TTL, and a revoke made while Redis was
//! down reaches the other server when it comes back (published then, replayed by the
//! reader, or — when the stream was lost — a gap that empties the cache). Through the
//! database alone: a server whose listener connection is cut listens again and drops its
//! cache (fail closed). The bus's own flush, replay and gap behaviour: `bus/tests/`.
//!
//! The real CLI against real processes, and the < 100 ms figure: `hub-cli/tests/revocation_cli.rs`.
//! Propagation times are printed (run with `--nocapture` to see them).

use crate::own_redis;

use nexus_wire::methods::TokenCreateParams;
use own_redis::OwnRedis;
use rpc_server::db::{Backend, Store};
use rpc_server::testing::{TestApp, TestDb, TestOptions, wait_health_redis};
use serde_json::json;
use std::time::{Duration, Instant};

/// The identity cache TTL of every server here.
const TTL: Duration = Duration::from_secs(60);
/// A refusal within this can only come from a broadcast: a twelfth of [`TTL`], the
/// backstop. (How fast a broadcast is, is revocation_cli.rs's to measure.)
const PROPAGATION: Duration = Duration::from_secs(5);
/// Longest wait for a server to notice Redis going away or coming back: the subscriber's
/// 3 s connect timeout plus its longest backoff (5 s), and 2 s to spare.
const REDIS_WAIT: Duration = Duration::from_secs(10);

fn options(redis: &OwnRedis) -> TestOptions {
    TestOptions {
        auth_cache_ttl: TTL,
        redis_url: Some(redis.url()),
        ..Default::default()
    }
}

/// Server A on a fresh database without notification triggers, and server B: another
/// process's worth of server (own cache, own bus, own data dir) on the same database and
/// the same Redis, which is then the only way between them.
async fn two_servers(redis: &OwnRedis) -> (TestApp, TestApp) {
    let a = TestApp::spawn_with(Backend::Postgres, options(redis)).await;
    a.db.without_notify_triggers().await;
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

/// Waits (bounded) until the server's `/health` reports `redis` = `want`.
async fn wait_redis(app: &TestApp, want: &str) -> Duration {
    wait_health_redis(&app.base, want, REDIS_WAIT).await
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
            "{what}: {} still accepts the revoked token after {PROPAGATION:?} (cache TTL {TTL:?})",
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
async fn a_server_whose_change_listener_is_cut_listens_again_and_drops_its_cache() {
    // No Redis: the database's notifications are the only way between processes.
    let o = TestOptions {
        auth_cache_ttl: TTL,
        ..Default::default()
    };
    let a = TestApp::spawn_with(Backend::Postgres, o.clone()).await;
    a.zone("eng").await;
    let b = second_server(&a, o).await;
    let t = mint(&a, "cut-off").await;
    warm(&b, &t).await;

    // Announced: B refuses at once.
    let since = Instant::now();
    a.control.revoke_token("cut-off").await.expect("revoke");
    refused_within(&b, &t, since, "NOTIFY, no Redis").await;

    // A change nobody announces (the triggers gone) while B's listener is away must not
    // survive B listening again. The triggers go first: the mint's own announcement could
    // otherwise reach B after the warm-up and empty its cache before the unannounced revoke.
    a.db.without_notify_triggers().await;
    let t = mint(&a, "while-away").await;
    warm(&b, &t).await;
    a.control.revoke_token("while-away").await.expect("revoke");
    assert_eq!(
        whoami_status(&b, &t).await,
        200,
        "nothing announced the revoke: B still has the token cached"
    );
    let listeners = "SELECT pid FROM pg_stat_activity \
                     WHERE datname = current_database() AND query LIKE 'LISTEN%'";
    let pool = sqlx::PgPool::connect(&a.db.url).await.expect("connect");
    let before: Vec<i32> = sqlx::query_scalar(listeners)
        .fetch_all(&pool)
        .await
        .expect("listeners");
    assert_eq!(before.len(), 2, "A and B each listen: {before:?}");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .execute(&pool)
    .await
    .expect("terminate the listeners");
    // The event: both listen again, on new connections.
    let since = Instant::now();
    loop {
        let now: Vec<i32> = sqlx::query_scalar(listeners)
            .fetch_all(&pool)
            .await
            .expect("listeners");
        if now.len() == 2 && now.iter().all(|p| !before.contains(p)) {
            break;
        }
        assert!(
            since.elapsed() < PROPAGATION,
            "the servers did not listen again within {PROPAGATION:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Listening again, B dropped what it had cached (the drop follows the LISTEN
    // immediately; poll briefly for it).
    refused_within(&b, &t, Instant::now(), "listener reconnected").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_made_while_redis_was_down_arrives_when_it_is_back() {
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
        "server B reconnected {back:?} after Redis answered again ({:?} after the restart began)",
        down_at.elapsed()
    );
    wait_redis(&a, "ok").await;
    // ... but it reaches B once Redis is back (A's publisher retries, B's reader resumes
    // from its last id), long before the TTL.
    refused_within(&b, &during, down_at, "revoked while Redis was down").await;

    // After the restart, changes flow again. The token is cached on B only now, so a
    // refusal is the new message's doing.
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
            "{what}: not seen by the other server after {PROPAGATION:?} (cache TTL {TTL:?})"
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
