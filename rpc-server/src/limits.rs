//! Rate limits, keyed by the verified key id (never by header text, so a forged token
//! cannot spend someone else's budget). GCRA everywhere: `governor` in process, and the
//! same algorithm as a Redis script when Redis is configured, so every replica shares one
//! budget per token. If Redis fails, limits fall back to local for a moment, never to
//! refusing or to unlimited.
//!
//! Failed authentication is limited separately, per client address: past the limit a bad
//! token gets 429 instead of 401, while valid tokens from the same address are unaffected.

use crate::auth::Identity;
use crate::metrics::Metrics;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use nexus_wire::spec::RateLimit;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use uuid::Uuid;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;
/// One keyed limiter per distinct quota (count, period).
type ByQuota = HashMap<(u32, u32), Arc<Keyed<Uuid>>>;

/// Tier defaults.
#[derive(Debug, Clone, Copy)]
pub struct LimitConfig {
    pub token: RateLimit,
    pub admin: RateLimit,
    /// Failed authentications per client address.
    pub auth_failures: RateLimit,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            token: RateLimit {
                count: 300,
                period_secs: 60,
            },
            admin: RateLimit {
                count: 1000,
                period_secs: 60,
            },
            auth_failures: RateLimit {
                count: 60,
                period_secs: 60,
            },
        }
    }
}

/// The verdict for one request, with what the `X-RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the budget is whole again.
    pub reset_secs: u64,
    /// Seconds to wait before retrying (denied only).
    pub retry_after_secs: u64,
    pub tier: &'static str,
}

fn quota(r: RateLimit) -> Quota {
    let count = NonZeroU32::new(r.count.max(1)).unwrap_or(NonZeroU32::MIN);
    let interval = Duration::from_secs(u64::from(r.period_secs)) / count.get();
    Quota::with_period(interval.max(Duration::from_micros(1)))
        .unwrap_or_else(|| Quota::per_second(count))
        .allow_burst(count)
}

const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, math.floor((now - allow_at) / interval), 0, new_tat - now}
";

pub(crate) struct Limits {
    cfg: LimitConfig,
    local: RwLock<ByQuota>,
    failures: Keyed<IpAddr>,
    /// Addresses over their failure limit, and until when: consulted before any lookup.
    over_failure_limit: moka::sync::Cache<IpAddr, std::time::Instant>,
    redis: Option<RedisLimiter>,
    metrics: Metrics,
}

struct RedisLimiter {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
    script: redis::Script,
    /// Until when (ms since the epoch) to skip Redis after a failure.
    skip_until_ms: AtomicI64,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("cfg", &self.cfg)
            .field("shared", &self.redis.is_some())
            .finish()
    }
}

impl Limits {
    pub fn new(
        cfg: LimitConfig,
        redis_url: Option<&str>,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let redis = match redis_url {
            Some(u) => Some(RedisLimiter {
                client: redis::Client::open(u)
                    .map_err(|e| anyhow::anyhow!("invalid NEXUS_REDIS_URL: {e}"))?,
                conn: tokio::sync::Mutex::new(None),
                script: redis::Script::new(GCRA),
                skip_until_ms: AtomicI64::new(0),
            }),
            None => None,
        };
        let failure_period = Duration::from_secs(u64::from(cfg.auth_failures.period_secs).max(1));
        Ok(Self {
            failures: RateLimiter::keyed(quota(cfg.auth_failures)).with_middleware(),
            // An address is never refused for longer than one period, so neither is its entry
            // kept; the bound caps memory under a flood from many addresses.
            over_failure_limit: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(failure_period)
                .build(),
            cfg,
            local: RwLock::new(HashMap::new()),
            redis,
            metrics,
        })
    }

    fn quota_for(&self, id: &Identity) -> (RateLimit, &'static str) {
        if let Some(r) = id
            .rate_limit
            .as_deref()
            .and_then(|s| s.parse::<RateLimit>().ok())
        {
            return (r, "custom");
        }
        if id.is_admin {
            (self.cfg.admin, "admin")
        } else {
            (self.cfg.token, "token")
        }
    }

    /// Spends one unit of the caller's budget.
    pub async fn check(&self, id: &Identity) -> Decision {
        let (rate, tier) = self.quota_for(id);
        let d = match self.check_redis(id.key_id, rate, tier).await {
            Some(d) => d,
            None => self.check_local(id.key_id, rate, tier),
        };
        if !d.allowed {
            self.metrics.rate_limited.with_label_values(&[tier]).inc();
            self.note_rejection(tier).await;
        }
        d
    }

    /// Counts a rejection in Redis for `hub status --detail`; best effort, bounded.
    async fn note_rejection(&self, tier: &'static str) {
        let Some(r) = &self.redis else { return };
        let conn = r.conn.lock().await.clone();
        if let Some(mut c) = conn {
            let mut cmd = redis::cmd("HINCRBY");
            cmd.arg(nexus_wire::stats::RATE_LIMITED_KEY)
                .arg(tier)
                .arg(1);
            let _ =
                tokio::time::timeout(Duration::from_millis(200), cmd.query_async::<i64>(&mut c))
                    .await;
        }
    }

    fn check_local(&self, key: Uuid, rate: RateLimit, tier: &'static str) -> Decision {
        let k = (rate.count, rate.period_secs);
        let existing = self
            .local
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&k)
            .cloned();
        let limiter = match existing {
            Some(l) => l,
            None => {
                let mut w = self.local.write().unwrap_or_else(|e| e.into_inner());
                w.entry(k)
                    .or_insert_with(|| Arc::new(RateLimiter::keyed(quota(rate)).with_middleware()))
                    .clone()
            }
        };
        let interval = Duration::from_secs(u64::from(rate.period_secs)) / rate.count.max(1);
        match limiter.check_key(&key) {
            Ok(snap) => {
                let remaining = snap.remaining_burst_capacity();
                let missing = rate.count.saturating_sub(remaining);
                Decision {
                    allowed: true,
                    limit: rate.count,
                    remaining,
                    reset_secs: (interval * missing).as_secs_f64().ceil() as u64,
                    retry_after_secs: 0,
                    tier,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Decision {
                    allowed: false,
                    limit: rate.count,
                    remaining: 0,
                    reset_secs: (interval * rate.count).as_secs_f64().ceil() as u64,
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                    tier,
                }
            }
        }
    }

    async fn check_redis(
        &self,
        key: Uuid,
        rate: RateLimit,
        tier: &'static str,
    ) -> Option<Decision> {
        let r = self.redis.as_ref()?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        if r.skip_until_ms.load(Ordering::Relaxed) > now_ms {
            return None;
        }
        let interval_us =
            (u64::from(rate.period_secs) * 1_000_000 / u64::from(rate.count.max(1))).max(1);
        let attempt = async {
            let mut guard = r.conn.lock().await;
            if guard.is_none() {
                let cfg = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_millis(500)))
                    .set_response_timeout(Some(Duration::from_millis(500)))
                    .set_number_of_retries(1);
                *guard = Some(r.client.get_connection_manager_with_config(cfg).await?);
            }
            let mut conn = guard
                .clone()
                .ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "no connection")))?;
            drop(guard);
            let out: Vec<i64> = r
                .script
                .key(format!(
                    "nexus:rl:{key}:{}:{}",
                    rate.count, rate.period_secs
                ))
                .arg(interval_us)
                .arg(rate.count)
                .invoke_async(&mut conn)
                .await?;
            Ok::<_, redis::RedisError>(out)
        };
        match tokio::time::timeout(Duration::from_secs(1), attempt).await {
            Ok(Ok(v)) if v.len() == 4 => {
                let us = |x: i64| (x.max(0) as f64 / 1e6).ceil() as u64;
                Some(Decision {
                    allowed: v[0] == 1,
                    limit: rate.count,
                    remaining: v[1].clamp(0, i64::from(rate.count)) as u32,
                    reset_secs: us(v[3]),
                    retry_after_secs: if v[0] == 1 { 0 } else { us(v[2]).max(1) },
                    tier,
                })
            }
            _ => {
                // Redis is down or slow: local limits for a second, then try again.
                r.skip_until_ms.store(now_ms + 1000, Ordering::Relaxed);
                *r.conn.lock().await = None;
                self.metrics.rate_limit_fallbacks.inc();
                None
            }
        }
    }

    /// Records a failed authentication from `ip`; false when the address is over its limit.
    pub fn failed_auth(&self, ip: IpAddr) -> bool {
        match self.failures.check_key(&ip) {
            Ok(_) => true,
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                self.over_failure_limit
                    .insert(ip, std::time::Instant::now() + wait);
                self.refused_for_failures();
                false
            }
        }
    }

    /// True while `ip` is over its failed-authentication limit: its unverified tokens are
    /// refused without a lookup. Does not spend budget, nor count a refusal: a token
    /// verified recently still gets through (see [`Limits::refused_for_failures`]).
    pub fn over_failure_limit(&self, ip: IpAddr) -> bool {
        self.over_failure_limit
            .get(&ip)
            .is_some_and(|until| std::time::Instant::now() < until)
    }

    /// Counts a request refused because its address is over its failed-authentication limit.
    pub fn refused_for_failures(&self) {
        self.metrics
            .rate_limited
            .with_label_values(&["auth_failures"])
            .inc();
    }

    /// Drops idle per-key state; call periodically.
    pub fn housekeeping(&self) {
        self.failures.retain_recent();
        for l in self
            .local
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            l.retain_recent();
        }
    }
}
