//! Cost of a token verification: cache hit vs cache miss (one indexed lookup), against
//! the baseline of a bare `SELECT 1` round trip on the same database, in the same run.
//!
//! Usage: auth_verify [--quick]   (needs NEXUS_TEST_DATABASE_URL, see bench/run)

use nexus_bench::{measure, report};
use rpc_server::auth::database::DatabaseAuth;
use rpc_server::auth::last_used::LastUsed;
use rpc_server::auth::{AuthProvider, IdentityCache, TokenHasher};
use rpc_server::db::Backend;
use rpc_server::metrics::Metrics;
use rpc_server::testing::{TestDb, test_secret};
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (hits, misses) = if quick {
        (20_000, 1_000)
    } else {
        (200_000, 10_000)
    };
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let db = TestDb::new(backend).await;
        let hasher = Arc::new(TokenHasher::new(&test_secret())?);
        let control = rpc_server::control::Control::new(
            db.store.clone(),
            hasher.clone(),
            rpc_server::auth::InvalidationBus::new(),
            None,
        );
        control.create_zone("eng").await?;
        // Realistic table: many tokens, so the lookup is an index probe, not a tiny scan.
        for i in 0..200 {
            control
                .create_token(nexus_wire::methods::TokenCreateParams {
                    name: format!("t{i}"),
                    zone: Some("eng".into()),
                    ..Default::default()
                })
                .await?;
        }
        let token = control
            .create_token(nexus_wire::methods::TokenCreateParams {
                name: "bench".into(),
                zones: Some("eng:rw".into()),
                ..Default::default()
            })
            .await?
            .token;
        let provider = |ttl: Duration| {
            DatabaseAuth::new(
                db.store.clone(),
                hasher.clone(),
                Arc::new(IdentityCache::new(ttl, Duration::ZERO)),
                Arc::new(LastUsed::default()),
                Metrics::new(),
            )
        };
        let cached = provider(Duration::from_secs(3600));
        let uncached = provider(Duration::ZERO);
        let store = db.store.clone();
        let base = measure(
            &format!("[{}] baseline: SELECT 1 round trip", backend.as_str()),
            200,
            misses,
            || {
                let s = store.clone();
                async move { s.ping().await.expect("ping") }
            },
        )
        .await;
        let miss = measure(
            &format!("[{}] verify, cache miss (database)", backend.as_str()),
            200,
            misses,
            || async {
                uncached.authenticate(&token).await.expect("valid");
            },
        )
        .await;
        let hit = measure(
            &format!("[{}] verify, cache hit", backend.as_str()),
            1000,
            hits,
            || async {
                cached.authenticate(&token).await.expect("valid");
            },
        )
        .await;
        report(&base, &[&miss, &hit]);
        println!();
    }
    Ok(())
}
