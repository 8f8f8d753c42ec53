//! Revocation propagation: 20 revocations made by a CLI-like control plane (its own process
//! state, publishing through Redis), timed from the revoke call returning to the first 401
//! seen by a client polling a running rpc-server. Baseline in the same run: one poll's round
//! trip (what "instant" can mean for a polling client).
//!
//! Usage: revocation [--quick]   (needs NEXUS_TEST_DATABASE_URL and NEXUS_TEST_REDIS_URL)

use rpc_server::auth::broadcast::{self, RedisHealth};
use rpc_server::auth::{InvalidationBus, TokenHasher};
use rpc_server::control::Control;
use rpc_server::db::Backend;
use rpc_server::testing::{TestApp, TestOptions, redis_url, test_secret};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = if std::env::args().any(|a| a == "--quick") {
        10
    } else {
        20
    };
    // Polling a revoked token counts as failed authentication: lift that limit here.
    let limits = rpc_server::limits::LimitConfig {
        auth_failures: "100000/m".parse()?,
        ..Default::default()
    };
    let opts = TestOptions {
        redis_url: Some(redis_url()),
        limits,
        ..Default::default()
    };
    let app = TestApp::spawn_with(Backend::Postgres, opts).await;
    app.zone("eng").await;
    // Let the server subscribe before the first revoke.
    for _ in 0..100 {
        let h: serde_json::Value = app
            .client
            .get(format!("{}/health", app.base))
            .send()
            .await?
            .json()
            .await?;
        if h["redis"] == "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bus = InvalidationBus::new();
    let b = broadcast::start(
        &redis_url(),
        bus.clone(),
        None,
        RedisHealth::default(),
        false,
    )?;
    bus.set_broadcaster(b.clone());
    let cli = Control::new(
        app.db.store.clone(),
        Arc::new(TokenHasher::new(&test_secret())?),
        bus,
        None,
    );

    let mut poll_rtt = Vec::new();
    let mut lags = Vec::new();
    let mut accepted_after = 0u32;
    for i in 0..n {
        let t = app.mint(&format!("rev{i}"), Some("eng:r"), false).await;
        for _ in 0..3 {
            let s = Instant::now();
            let (status, _) = app.rpc_raw(Some(&t.token), "whoami", json!({})).await;
            assert_eq!(status, 200);
            poll_rtt.push(s.elapsed());
        }
        cli.revoke_token(&t.key_id).await?;
        let returned = Instant::now();
        loop {
            let (status, _) = app.rpc_raw(Some(&t.token), "whoami", json!({})).await;
            if status == 401 {
                lags.push(returned.elapsed());
                break;
            }
            accepted_after += 1;
            if returned.elapsed() > Duration::from_secs(5) {
                anyhow::bail!("revocation {i} not seen within 5 s");
            }
        }
        // Nothing may be accepted once refused.
        for _ in 0..5 {
            let (status, _) = app.rpc_raw(Some(&t.token), "whoami", json!({})).await;
            assert_eq!(status, 401, "accepted again after refusal");
        }
    }
    b.flush(Duration::from_secs(3)).await;
    lags.sort();
    poll_rtt.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let med = lags[lags.len() / 2];
    let max = lags[lags.len() - 1];
    let base = poll_rtt[poll_rtt.len() / 2];
    println!("revocations: {n} (CLI-like control plane → Redis → running rpc-server)");
    println!("baseline: one poll round trip, median {:.3} ms", ms(base));
    println!(
        "revoke returned → first 401: median {:.3} ms ({:.1}× a poll), max {:.3} ms ({:.1}× a poll)",
        ms(med),
        ms(med) / ms(base),
        ms(max),
        ms(max) / ms(base)
    );
    println!(
        "polls accepted while the broadcast was in flight (revoke returned, first 401 not yet seen): {accepted_after}"
    );
    println!("polls accepted after a token's first 401: 0 (5 per revocation, each asserted)");
    Ok(())
}
