//! Redis is optional (SPEC §6 "Redis down"): when it dies under traffic no tool call
//! fails, health and status say so, and audit events are dropped and counted, never
//! waited for; when it comes back the rpc-server resubscribes and a revoke by the real
//! `nexus hub token revoke` reaches it through the cluster bus (Redis) again (on a database without the
//! notification triggers, so Redis is the only way). A hub started while Redis is down
//! starts and serves.
//!
//! Every Redis here is this test's own (or a port with nothing on it): the shared test
//! Redis is never stopped.

use crate::common;
use crate::own_redis;

use common::procs::hub_cmd;
use common::redis::{
    WAIT, frontend_config, get_json, get_text, health_redis, metric_sum, rpc_server,
    wait_health_redis,
};
use common::{Client, Era, connect, is_error, spawn_frontend_from, text, try_call};
use own_redis::{OwnRedis, free_port, pings};
use rpc_server::limits::LimitConfig;
use rpc_server::testing::TestApp;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

async fn mint(app: &TestApp, name: &str) -> String {
    common::mint(&app.control, name, "eng:rw").await
}

/// One tool call; `Err` with a description when it failed in any way.
async fn call(c: &Client, i: usize) -> Result<(), String> {
    let path = format!("/load/{}.txt", i % 5);
    let r = if i.is_multiple_of(2) {
        try_call(
            c,
            "nexus_write_file",
            json!({"path": path, "content": format!("call {i}")}),
        )
        .await
    } else {
        try_call(c, "nexus_file_info", json!({"path": path})).await
    };
    match r {
        Ok(r) if is_error(&r) => Err(format!("call {i}: isError: {}", text(&r))),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("call {i}: protocol error: {e}")),
    }
}

async fn status(app: &TestApp, admin: &str) -> Value {
    app.rpc(admin, "hub_admin_status", json!({"detail": true}))
        .await
        .expect("hub_admin_status")
}

fn assert_redis_unknown(s: &Value, who: &str) {
    assert_eq!(s["redis"], "err", "{who}: {s}");
    assert!(s["connections"].is_null(), "{who}: connections: {s}");
    assert!(s["qps_5m"].is_null(), "{who}: qps_5m: {s}");
    assert_eq!(s["database"], "ok", "{who}: {s}");
}

/// `hub status` as the CLI computes it on the hub host: database figures from the store,
/// traffic figures from Redis.
async fn cli_status(app: &TestApp, redis_url: &str) -> Value {
    let mut s = common::control(&app.db.store).status().await;
    rpc_server::stats::fill(&mut s, Some(redis_url), false, &HashMap::new()).await;
    serde_json::to_value(s).expect("status JSON")
}

/// The identity cache TTL of the servers here (TestOptions' default).
const TTL: Duration = Duration::from_secs(60);
/// A refusal within this can only come from a broadcast: a twelfth of [`TTL`].
const PROPAGATION: Duration = Duration::from_secs(5);

async fn whoami(app: &TestApp, token: &str) -> u16 {
    app.rpc_raw(Some(token), "whoami", json!({})).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_dying_under_traffic_fails_no_call_and_its_return_is_noticed() {
    let mut redis = OwnRedis::start().await;
    let url = redis.url();
    let app = rpc_server(Some(&url), LimitConfig::default()).await;
    app.db.without_notify_triggers().await;
    let fe = spawn_frontend_from(frontend_config(&app.base, Some(&url), false)).await;
    let token = mint(&app, "worker").await;
    let admin = app.mint("admin", None, true).await.token;
    wait_health_redis(&app.base, "ok").await;
    let c = connect(&fe.mcp_url, &token, Era::Stateless).await;
    call(&c, 0).await.expect("first call");
    wait_health_redis(&fe.base, "ok").await;
    assert_eq!(status(&app, &admin).await["redis"], "ok");

    // 200 calls, paced over a few seconds; Redis is killed a third of the way in.
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut killed_at = None;
    for i in 1..=200 {
        if i == 70 {
            redis.kill();
            killed_at = Some(started.elapsed());
        }
        if let Err(e) = call(&c, i).await {
            failures.push(e);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "200 calls in {:?}, Redis killed at {killed_at:?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of 200 tool calls failed with Redis dying: {failures:#?}",
        failures.len()
    );

    // Health and status tell the truth.
    wait_health_redis(&app.base, "err").await;
    let h = get_json(&format!("{}/health", app.base)).await;
    assert_eq!(h["status"], "ok", "the rpc-server is still healthy: {h}");
    assert_redis_unknown(&status(&app, &admin).await, "hub_admin_status");
    assert_redis_unknown(&cli_status(&app, &url).await, "stats::fill");
    wait_health_redis(&fe.base, "err").await;
    let dropped = metric_sum(
        &get_text(&format!("{}/metrics", fe.base)).await,
        "nexus_audit_dropped_total",
    );
    assert!(
        dropped > 0.0,
        "audit events dropped while Redis was down: {dropped}"
    );

    // Redis returns on the same port.
    let back_at = Instant::now();
    redis.restart().await;
    let resubscribed = wait_health_redis(&app.base, "ok").await;
    eprintln!(
        "rpc-server /health redis ok {resubscribed:?} after Redis answered ({:?} after the restart began)",
        back_at.elapsed()
    );
    // The frontend reconnects on a later event.
    let deadline = Instant::now() + WAIT;
    let mut i = 1000;
    while health_redis(&fe.base).await != "ok" {
        assert!(
            Instant::now() < deadline,
            "the frontend did not reconnect to Redis within {WAIT:?}"
        );
        call(&c, i).await.expect("call after the restart");
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + WAIT;
    let s = loop {
        let s = status(&app, &admin).await;
        if s["connections"].as_u64().is_some_and(|n| n >= 1) || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(s["redis"], "ok", "{s}");
    assert!(
        s["connections"].as_u64().is_some_and(|n| n >= 1),
        "connections after Redis returned: {s}"
    );

    // A revoke by the CLI reaches the server through the bus (its Redis Stream) again. The
    // token is cached now, and the database announces nothing, so only the CLI's message
    // can make the server refuse it within the TTL.
    assert_eq!(whoami(&app, &token).await, 200);
    assert_eq!(whoami(&app, &token).await, 200);
    let mut cli = hub_cmd(&app.db.url);
    cli.args(["token", "revoke", "worker"])
        .env("NEXUS_REDIS_URL", &url);
    let out = tokio::time::timeout(WAIT, tokio::process::Command::from(cli).output())
        .await
        .expect("nexus hub token revoke hung")
        .expect("run nexus");
    let since = Instant::now();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "revoke: {stderr}");
    assert!(
        stderr.contains("through the cluster bus"),
        "the CLI says the bus carried the revoke: {stderr}"
    );
    loop {
        match whoami(&app, &token).await {
            401 => break,
            200 => {}
            s => panic!("whoami answered {s}"),
        }
        assert!(
            since.elapsed() < PROPAGATION,
            "revoked token still accepted {:?} after the CLI returned (cache TTL {TTL:?})",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "CLI revoke after the restart refused {:?} after the CLI returned",
        since.elapsed()
    );
    let refused = try_call(&c, "nexus_file_info", json!({"path": "/load/0.txt"})).await;
    assert!(
        refused.is_err() || refused.as_ref().is_ok_and(is_error),
        "the MCP client's revoked token still works: {refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_started_while_redis_is_down_starts_and_serves() {
    let port = free_port();
    assert!(!pings(port), "something answers on port {port}");
    let url = format!("redis://127.0.0.1:{port}/");
    let app = rpc_server(Some(&url), LimitConfig::default()).await;
    let fe = spawn_frontend_from(frontend_config(&app.base, Some(&url), true)).await;
    let token = mint(&app, "early").await;
    let admin = app.mint("admin", None, true).await.token;

    let c = connect(&fe.mcp_url, &token, Era::Stateless).await;
    let started = Instant::now();
    for i in 0..20 {
        call(&c, i)
            .await
            .unwrap_or_else(|e| panic!("with Redis down: {e}"));
    }
    eprintln!("20 calls with Redis down in {:?}", started.elapsed());
    let c2 = connect(&fe.mcp_url, &token, Era::Session).await;
    call(&c2, 1)
        .await
        .expect("a legacy session with Redis down");

    let h = get_json(&format!("{}/health", app.base)).await;
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["redis"], "err", "rpc-server /health with Redis down: {h}");
    wait_health_redis(&fe.base, "err").await;
    assert_redis_unknown(&status(&app, &admin).await, "hub_admin_status");
    let metrics = get_text(&format!("{}/metrics", fe.base)).await;
    let dropped = metric_sum(&metrics, "nexus_audit_dropped_total");
    assert!(
        dropped > 0.0,
        "nexus_audit_dropped_total with Redis down: {dropped}\n{metrics}"
    );
    assert!(!metrics.contains(&token), "a token in the metrics");
}
