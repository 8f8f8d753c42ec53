//! Rate limits (SPEC §6), in process (no Redis) and shared through Redis: per verified
//! token with tier defaults and per-token overrides, `X-RateLimit-*` headers on every
//! metered answer and `Retry-After` on 429; forged tokens never spend a real token's
//! budget; failed authentication is limited per client address without touching valid
//! tokens from that address; replicas sharing one Redis share one budget.
//!
//! Redis keys are named by key id, and key ids are fresh uuids, so tests sharing the test
//! Redis never meet (and nothing is flushed).

use nexus_wire::methods::TokenCreateParams;
use rpc_server::db::{Backend, Store};
use rpc_server::limits::LimitConfig;
use rpc_server::testing::{TestApp, TestDb, TestOptions, metric_at, redis_url};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// In-process limiter only.
    Local,
    /// GCRA in the shared test Redis.
    Shared,
}

fn options(v: Variant) -> TestOptions {
    TestOptions {
        limits: LimitConfig {
            token: "5/m".parse().expect("rate"),
            admin: "8/m".parse().expect("rate"),
            auth_failures: "3/m".parse().expect("rate"),
        },
        redis_url: match v {
            Variant::Local => None,
            Variant::Shared => Some(redis_url()),
        },
        ..Default::default()
    }
}

async fn spawn(v: Variant) -> TestApp {
    let app = TestApp::spawn_with(Backend::Postgres, options(v)).await;
    app.zone("eng").await;
    app
}

/// Another server on the same database (and, with `Shared`, the same Redis).
async fn second_server(a: &TestApp, v: Variant) -> TestApp {
    let db = TestDb {
        url: a.db.url.clone(),
        store: Store::connect(&a.db.url).await.expect("connect"),
        dir: tempfile::tempdir().expect("tempdir"),
    };
    TestApp::start(db, tempfile::tempdir().expect("tempdir"), options(v)).await
}

async fn mint(app: &TestApp, name: &str, admin: bool, rate_limit: Option<&str>) -> String {
    app.control
        .create_token(TokenCreateParams {
            name: name.into(),
            zones: (!admin).then(|| "eng:rw".into()),
            admin,
            rate_limit: rate_limit.map(Into::into),
            ..Default::default()
        })
        .await
        .expect("mint")
        .token
}

/// One metered call (`stat /`); returns the status and headers.
async fn stat(app: &TestApp, token: &str) -> (u16, reqwest::header::HeaderMap) {
    let resp = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        app.client
            .post(format!("{}/api/nfs/stat", app.base))
            .bearer_auth(token)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "stat", "params": {"path": "/"}}))
            .send(),
    )
    .await
    .expect("request hung")
    .expect("request");
    (resp.status().as_u16(), resp.headers().clone())
}

fn num(h: &reqwest::header::HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Spends `calls` of a budget of `limit`: the first `limit` are 200 with the limit and a
/// decreasing remainder, the rest 429 with every header a client needs to back off.
async fn burst(app: &TestApp, token: &str, limit: u64, calls: u64, who: &str) {
    for i in 0..calls {
        let (s, h) = stat(app, token).await;
        if i < limit {
            assert_eq!(s, 200, "{who}: call {} of a budget of {limit}", i + 1);
            assert_eq!(
                num(&h, "x-ratelimit-limit"),
                Some(limit),
                "{who}: limit header"
            );
            assert_eq!(
                num(&h, "x-ratelimit-remaining"),
                Some(limit - 1 - i),
                "{who}: remaining after call {}",
                i + 1
            );
            assert!(
                num(&h, "x-ratelimit-reset").is_some(),
                "{who}: reset header"
            );
        } else {
            assert_eq!(s, 429, "{who}: call {} over a budget of {limit}", i + 1);
            let retry = num(&h, "retry-after").expect("Retry-After on 429");
            assert!(
                (1..=60).contains(&retry),
                "{who}: Retry-After {retry} s (one unit comes back every {} s)",
                60 / limit
            );
            assert_eq!(
                num(&h, "x-ratelimit-limit"),
                Some(limit),
                "{who}: 429 limit"
            );
            assert_eq!(
                num(&h, "x-ratelimit-remaining"),
                Some(0),
                "{who}: 429 remaining"
            );
            let reset = num(&h, "x-ratelimit-reset").expect("X-RateLimit-Reset on 429");
            assert!(
                (1..=60).contains(&reset),
                "{who}: X-RateLimit-Reset {reset} s"
            );
        }
    }
}

async fn tiers_and_overrides(v: Variant) {
    let app = spawn(v).await;
    let a = mint(&app, "a", false, None).await;
    let b = mint(&app, "b", false, None).await;
    let admin = mint(&app, "root", true, None).await;
    let slow = mint(&app, "slow", false, Some("2/m")).await;

    burst(&app, &a, 5, 8, "token A (5/m)").await;
    // Another token's budget is its own.
    let (s, h) = stat(&app, &b).await;
    assert_eq!(s, 200, "token B is not limited by A's burst");
    assert_eq!(num(&h, "x-ratelimit-remaining"), Some(4));
    // The admin tier.
    burst(&app, &admin, 8, 10, "admin (8/m)").await;
    // A per-token override.
    burst(&app, &slow, 2, 4, "token minted with rate_limit 2/m").await;
    // whoami (the frontend's verification call) is not metered, even when over budget.
    assert_eq!(app.rpc_raw(Some(&a), "whoami", json!({})).await.0, 200);
    assert_eq!(stat(&app, &a).await.0, 429, "A is still over its budget");
    if v == Variant::Shared {
        // The verdicts came from Redis, not from the local fallback.
        assert_eq!(
            metric_at(&app.base, "nexus_rate_limit_fallbacks_total").await,
            Some(0),
            "fallbacks to local limits"
        );
    }
}

#[tokio::test]
async fn local_limits_follow_the_tier_and_the_token_override() {
    tiers_and_overrides(Variant::Local).await;
}

#[tokio::test]
async fn shared_limits_follow_the_tier_and_the_token_override() {
    tiers_and_overrides(Variant::Shared).await;
}

/// `sk-…` with its last characters changed: same prefix, not the token.
fn forged(token: &str, i: usize) -> String {
    let keep = token.len() - 6;
    format!("{}{:06x}", &token[..keep], 0xabc000 + i)
}

async fn forged_tokens_do_not_spend_budget(v: Variant) {
    // The forgeries come from A's own address: with the usual failure limit they would put
    // it over budget (failed_auth_is_limited_per_address tests that), so here failures are
    // allowed freely and only A's own budget is under test.
    let mut o = options(v);
    o.limits.auth_failures = "1000/m".parse().expect("rate");
    let app = TestApp::spawn_with(Backend::Postgres, o).await;
    app.zone("eng").await;
    let a = mint(&app, "a", false, None).await;
    let mut seen = std::collections::BTreeMap::<u16, u32>::new();
    for i in 0..50 {
        let f = forged(&a, i);
        assert_ne!(f, a);
        let (s, _) = stat(&app, &f).await;
        *seen.entry(s).or_default() += 1;
    }
    assert!(
        seen.keys().all(|s| *s == 401 || *s == 429),
        "forged tokens answered {seen:?}"
    );
    // A never used yet: its whole budget is there.
    burst(&app, &a, 5, 6, "token A after 50 forged look-alikes").await;
}

#[tokio::test]
async fn local_forged_look_alike_tokens_do_not_spend_the_real_tokens_budget() {
    forged_tokens_do_not_spend_budget(Variant::Local).await;
}

#[tokio::test]
async fn shared_forged_look_alike_tokens_do_not_spend_the_real_tokens_budget() {
    forged_tokens_do_not_spend_budget(Variant::Shared).await;
}

async fn failed_auth_is_limited_per_address(v: Variant) {
    let app = spawn(v).await;
    if v == Variant::Shared {
        // Subscribing empties the identity cache: warm it only after.
        app.wait_redis_up().await;
    }
    let good = app.settled(mint(&app, "good", false, None)).await;
    let uncached = mint(&app, "uncached", false, None).await;
    // `good` is verified (and cached) before the failures begin; `uncached` is not.
    let (s, _) = stat(&app, &good).await;
    assert_eq!(s, 200, "valid token before any failure");
    let bad = |i: u32| {
        format!(
            "sk-not-a-real-token-{i:04}-{}",
            uuid::Uuid::new_v4().simple()
        )
    };
    for i in 0..3 {
        let (s, h) = stat(&app, &bad(i)).await;
        assert_eq!(s, 401, "bad token {} of a budget of 3", i + 1);
        assert!(
            h.get("www-authenticate").is_some(),
            "401 carries a challenge"
        );
    }
    for i in 3..8 {
        let (s, h) = stat(&app, &bad(i)).await;
        assert_eq!(s, 429, "bad token {} past the per-address budget", i + 1);
        assert!(
            num(&h, "retry-after").is_some_and(|r| r >= 1),
            "429 for failures carries Retry-After"
        );
    }
    // A request with no token at all is a failure too, and is refused the same way.
    let resp = app
        .client
        .post(format!("{}/api/nfs/stat", app.base))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "stat", "params": {"path": "/"}}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        resp.status().as_u16(),
        429,
        "no token, over the address budget"
    );
    // A valid token whose identity is cached is not affected: no lookup is needed for it.
    let (s, h) = stat(&app, &good).await;
    assert_eq!(s, 200, "cached valid token from a throttled address");
    assert_eq!(num(&h, "x-ratelimit-remaining"), Some(3));
    // Any other credential from a throttled address costs no database lookup at all, so a
    // valid one not yet cached waits out the address's Retry-After like the rest.
    let (s, h) = stat(&app, &uncached).await;
    assert_eq!(s, 429, "uncached valid token from a throttled address");
    assert!(num(&h, "retry-after").is_some_and(|r| r >= 1));
}

#[tokio::test]
async fn local_failed_authentication_is_limited_per_address() {
    failed_auth_is_limited_per_address(Variant::Local).await;
}

#[tokio::test]
async fn shared_failed_authentication_is_limited_per_address() {
    failed_auth_is_limited_per_address(Variant::Shared).await;
}

#[tokio::test]
async fn two_servers_sharing_redis_share_one_budget() {
    let one = spawn(Variant::Shared).await;
    let two = second_server(&one, Variant::Shared).await;
    let a = mint(&one, "a", false, None).await;
    for i in 0..3 {
        let (s, h) = stat(&one, &a).await;
        assert_eq!(s, 200, "server 1, call {}", i + 1);
        assert_eq!(num(&h, "x-ratelimit-remaining"), Some(4 - i));
    }
    for i in 3..5 {
        let (s, h) = stat(&two, &a).await;
        assert_eq!(s, 200, "server 2, call {} of the shared budget", i + 1);
        assert_eq!(num(&h, "x-ratelimit-remaining"), Some(4 - i));
    }
    let (s, h) = stat(&two, &a).await;
    assert_eq!(
        s, 429,
        "the 6th call (3 on server 1, 3 on server 2) is over the shared budget of 5"
    );
    assert!(num(&h, "retry-after").is_some());
    assert_eq!(stat(&one, &a).await.0, 429, "and server 1 agrees");
}

/// Without Redis each replica keeps its own budget: the contrast to the test above.
#[tokio::test]
async fn two_servers_without_redis_keep_separate_budgets() {
    let one = spawn(Variant::Local).await;
    let two = second_server(&one, Variant::Local).await;
    let a = mint(&one, "a", false, None).await;
    for (n, app) in [(1, &one), (2, &two)] {
        for i in 0..3 {
            assert_eq!(stat(app, &a).await.0, 200, "server {n}, call {}", i + 1);
        }
    }
}

/// A tier of two windows through Redis: both replicas judge every window of the one shared
/// budget. `6/m,4/h` is exhausted by its hour window after four calls spread over two
/// servers; the 429 names that window (limit 4, a Retry-After of the hour's 900 s pace,
/// not the minute's 10 s). An override is stored in canonical order, whatever was typed.
#[tokio::test]
async fn two_servers_sharing_redis_check_every_window_of_a_tier() {
    let one = spawn(Variant::Shared).await;
    let two = second_server(&one, Variant::Shared).await;
    let created = one
        .control
        .create_token(TokenCreateParams {
            name: "windows".into(),
            zones: Some("eng:rw".into()),
            rate_limit: Some("4/h, 6/m".into()),
            ..Default::default()
        })
        .await
        .expect("mint");
    assert_eq!(created.rate_limit.as_deref(), Some("6/m,4/h"));
    let a = created.token;
    for (i, app) in [&one, &two, &one, &two].into_iter().enumerate() {
        let (s, h) = stat(app, &a).await;
        assert_eq!(s, 200, "call {} of the hour's 4", i + 1);
        // The hour window (3/4 left after one call, against the minute's 5/6) is nearer.
        assert_eq!(num(&h, "x-ratelimit-limit"), Some(4), "call {}", i + 1);
        assert_eq!(num(&h, "x-ratelimit-remaining"), Some(3 - i as u64));
    }
    for app in [&two, &one] {
        let (s, h) = stat(app, &a).await;
        assert_eq!(s, 429, "the hour window is spent on both servers");
        assert_eq!(num(&h, "x-ratelimit-limit"), Some(4));
        let retry = num(&h, "retry-after").expect("Retry-After");
        assert!(
            (61..=900).contains(&retry),
            "Retry-After {retry} s comes from the hour window"
        );
    }
    // Where the minute window is the nearer one, it is the one reported.
    let b = mint(&one, "b", false, Some("3/m,100/h")).await;
    let (s, h) = stat(&two, &b).await;
    assert_eq!(s, 200);
    assert_eq!(num(&h, "x-ratelimit-limit"), Some(3));
    assert_eq!(num(&h, "x-ratelimit-remaining"), Some(2));
}
