//! Helpers for the tests that run a hub with Redis (audit trail, traffic figures, Redis
//! outages, metrics): frontend and rpc-server settings, plain GETs, and Prometheus text
//! parsing.

use super::http;
use mcp_frontend::FrontendConfig;
use rpc_server::db::Backend;
use rpc_server::limits::LimitConfig;
use rpc_server::testing::{TestApp, TestOptions};
use secrecy::SecretString;
use serde_json::Value;
use std::time::Duration;

/// Upper bound of one HTTP exchange or one wait in these tests.
pub const WAIT: Duration = super::STEP;

/// Frontend settings for tests: loopback in front of `rpc_base`, Redis at `redis_url`.
pub fn frontend_config(
    rpc_base: &str,
    redis_url: Option<&str>,
    audit_stdout: bool,
) -> FrontendConfig {
    let mut cfg = FrontendConfig::local(rpc_base, 0);
    cfg.redis_url = redis_url.map(|u| SecretString::from(u.to_owned()));
    cfg.audit_stdout = audit_stdout;
    cfg
}

/// Limits far above anything these tests send.
pub fn unthrottled() -> LimitConfig {
    let lots: nexus_wire::spec::RateLimit = "1000000/s".parse().expect("rate");
    LimitConfig {
        token: lots.into(),
        admin: lots.into(),
        auth_failures: lots,
    }
}

/// An rpc-server (Postgres) using Redis at `redis_url`, with zone `eng`.
pub async fn rpc_server(redis_url: Option<&str>, limits: LimitConfig) -> TestApp {
    let app = TestApp::spawn_with(
        Backend::Postgres,
        TestOptions {
            redis_url: redis_url.map(str::to_owned),
            limits,
            ..Default::default()
        },
    )
    .await;
    app.zone("eng").await;
    app
}

pub async fn get_text(url: &str) -> String {
    let resp = http()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    resp.text().await.expect("body")
}

pub async fn get_json(url: &str) -> Value {
    let t = get_text(url).await;
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {t}"))
}

/// The `redis` field of `<base>/health`.
pub async fn health_redis(base: &str) -> String {
    get_json(&format!("{base}/health")).await["redis"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits (at most [`WAIT`]) until `<base>/health` reports `redis` = `want`; returns how long.
pub async fn wait_health_redis(base: &str, want: &str) -> Duration {
    rpc_server::testing::wait_health_redis(base, want, WAIT).await
}

/// The sum of every sample of metric `name` (any labels) in Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = if rest.starts_with('{') {
                rest.rsplit_once('}')?.1
            } else if rest.starts_with(' ') {
                rest
            } else {
                return None;
            };
            value.trim().parse::<f64>().ok()
        })
        .sum()
}
