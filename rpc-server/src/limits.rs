//! Rate limits, keyed by the verified key id (never by header text, so a forged token
//! cannot spend someone else's budget). A tier is a list of windows (`1000/m,10000/h`,
//! SPEC §10); a request is admitted only when every window admits it, and a refused
//! request spends nothing in any window. GCRA everywhere: in process, and the same
//! algorithm as a Redis script when Redis is configured, so every replica shares one
//! budget per token. If Redis fails, limits fall back to local for a moment, never to
//! refusing or to unlimited.
//!
//! The per-key windows are GCRA written out here (a theoretical arrival time per window)
//! rather than `governor`'s: governor checks one quota at a time and cannot take back a
//! unit, so a request the hour window refused would still have spent the minute window's.
//! The in-process state runs on tokio's clock, so tests can pause time.
//!
//! Failed authentication is limited separately, per client address (one window,
//! `governor`): past the limit a bad token gets 429 instead of 401, while valid tokens
//! from the same address are unaffected.

use crate::auth::Identity;
use crate::metrics::Metrics;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use nexus_wire::spec::{MAX_RATE_WINDOWS, RateLimit, RateTier};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use uuid::Uuid;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// Tier defaults.
#[derive(Debug, Clone, Copy)]
pub struct LimitConfig {
    pub token: RateTier,
    pub admin: RateTier,
    /// Failed authentications per client address.
    pub auth_failures: RateLimit,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            token: RateTier::single(RateLimit {
                count: 300,
                period_secs: 60,
            }),
            admin: RateTier::single(RateLimit {
                count: 1000,
                period_secs: 60,
            }),
            auth_failures: RateLimit {
                count: 60,
                period_secs: 60,
            },
        }
    }
}

/// The verdict for one request, with what the `X-RateLimit-*` headers report: the window
/// that refused it (the longest wait, if several did), or, when admitted, the window
/// nearest exhaustion (see [`verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until that window's budget is whole again.
    pub reset_secs: u64,
    /// Seconds to wait before retrying (denied only).
    pub retry_after_secs: u64,
    pub tier: &'static str,
}

/// What one window says about one request.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    count: u32,
    allowed: bool,
    remaining: u32,
    /// Until the window's budget is whole again.
    reset: Duration,
    /// Until the window would admit the request (refused only).
    wait: Duration,
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// One decision from the windows' answers. Refused when any window refuses; the headers
/// then name the refusing window with the longest wait (its `Retry-After` is when every
/// window admits again). Admitted: the window nearest exhaustion is the one with the least
/// remaining relative to its limit (`remaining / limit`, compared exactly); on a tie the
/// longer window, whose budget takes longer to come back. Windows come shortest first.
fn verdict(windows: &[Window], tier: &'static str) -> Decision {
    let refused = windows.iter().filter(|w| !w.allowed).max_by_key(|w| w.wait);
    if let Some(w) = refused {
        return Decision {
            allowed: false,
            limit: w.count,
            remaining: 0,
            reset_secs: ceil_secs(w.reset).max(1),
            retry_after_secs: ceil_secs(w.wait).max(1),
            tier,
        };
    }
    let mut nearest = windows.first().copied().unwrap_or_default();
    for w in windows.iter().skip(1) {
        // w.remaining / w.count <= nearest.remaining / nearest.count, without division.
        if u64::from(w.remaining) * u64::from(nearest.count)
            <= u64::from(nearest.remaining) * u64::from(w.count)
        {
            nearest = *w;
        }
    }
    Decision {
        allowed: true,
        limit: nearest.count,
        remaining: nearest.remaining,
        reset_secs: ceil_secs(nearest.reset),
        retry_after_secs: 0,
        tier,
    }
}

/// GCRA for one window at `now`: the theoretical arrival time to keep if every window
/// admits, and the window's answer. Times in units of `1/per_sec` s (ns in process; the
/// Redis script below is the same arithmetic in µs).
fn gcra(w: RateLimit, tat: u64, now: u64, per_sec: u64) -> (u64, Window) {
    let count = u64::from(w.count.max(1));
    let interval = (u64::from(w.period_secs) * per_sec / count).max(1);
    let tau = interval * count;
    let unit = |x: u64| Duration::from_nanos(x.saturating_mul(1_000_000_000 / per_sec));
    let t = tat.max(now);
    let new_tat = t + interval;
    if new_tat <= now + tau {
        let window = Window {
            count: w.count,
            allowed: true,
            remaining: ((now + tau - new_tat) / interval) as u32,
            reset: unit(new_tat - now),
            wait: Duration::ZERO,
        };
        (new_tat, window)
    } else {
        let window = Window {
            count: w.count,
            allowed: false,
            remaining: 0,
            reset: unit(t - now),
            wait: unit(new_tat - tau - now),
        };
        (tat, window)
    }
}

/// Every window of a tier in one step: each window's state read and judged, and written
/// only when all of them admit. Returns, per window: admitted (0/1), remaining, wait (µs),
/// reset (µs).
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
local tats = {}
local ok = true
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  tats[i] = new_tat
  if allow_at > now then
    ok = false
    out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = allow_at - now; out[#out + 1] = tat - now
  else
    out[#out + 1] = 1
    out[#out + 1] = math.floor((now - allow_at) / interval)
    out[#out + 1] = 0
    out[#out + 1] = new_tat - now
  end
end
if ok then
  for i = 1, #KEYS do
    redis.call('SET', KEYS[i], tats[i], 'PX', math.ceil((tats[i] - now) / 1000) + 1000)
  end
end
return out
";

/// The in-process state of one key: the tier it was judged under and each window's
/// theoretical arrival time (ns since [`Limits::epoch`]). A token whose tier changes
/// starts afresh, as it does under its new windows' own keys in Redis.
#[derive(Debug, Clone, Copy)]
struct KeyState {
    tier: RateTier,
    tat: [u64; MAX_RATE_WINDOWS],
}

/// Shards of the per-key state: a short lock each, spread by key id.
const SHARDS: usize = 16;

pub(crate) struct Limits {
    cfg: LimitConfig,
    /// Zero of the in-process clock (tokio's, so tests can pause it).
    epoch: tokio::time::Instant,
    local: Box<[Mutex<HashMap<Uuid, KeyState>>]>,
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

fn quota(r: RateLimit) -> Quota {
    let count = NonZeroU32::new(r.count.max(1)).unwrap_or(NonZeroU32::MIN);
    let interval = Duration::from_secs(u64::from(r.period_secs)) / count.get();
    Quota::with_period(interval.max(Duration::from_micros(1)))
        .unwrap_or_else(|| Quota::per_second(count))
        .allow_burst(count)
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
            epoch: tokio::time::Instant::now(),
            local: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            redis,
            metrics,
        })
    }

    /// Whether shared limits reach Redis (as their last attempt found); `None` without it.
    pub fn redis_up(&self) -> Option<bool> {
        let r = self.redis.as_ref()?;
        Some(r.skip_until_ms.load(Ordering::Relaxed) <= chrono::Utc::now().timestamp_millis())
    }

    fn tier_for(&self, id: &Identity) -> (RateTier, &'static str) {
        if let Some(r) = id.rate_limit {
            return (r, "custom");
        }
        if id.is_admin {
            (self.cfg.admin, "admin")
        } else {
            (self.cfg.token, "token")
        }
    }

    /// Spends one unit of every window of the caller's tier, or none when any refuses.
    pub async fn check(&self, id: &Identity) -> Decision {
        let (tier, label) = self.tier_for(id);
        let d = match self.check_redis(id.key_id, tier, label).await {
            Some(d) => d,
            None => self.check_local(id.key_id, tier, label),
        };
        if !d.allowed {
            self.metrics.rate_limited.with_label_values(&[label]).inc();
            self.note_rejection(label).await;
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

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn shard(&self, key: Uuid) -> &Mutex<HashMap<Uuid, KeyState>> {
        &self.local[(key.as_u128() as usize) % SHARDS]
    }

    fn check_local(&self, key: Uuid, tier: RateTier, label: &'static str) -> Decision {
        let now = self.now_ns();
        let mut answers = [Window::default(); MAX_RATE_WINDOWS];
        let mut tats = [0u64; MAX_RATE_WINDOWS];
        let n = tier.windows().len();
        let mut map = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let state = map.entry(key).or_insert(KeyState {
            tier,
            tat: [0; MAX_RATE_WINDOWS],
        });
        if state.tier != tier {
            *state = KeyState {
                tier,
                tat: [0; MAX_RATE_WINDOWS],
            };
        }
        for (i, w) in tier.windows().iter().enumerate() {
            (tats[i], answers[i]) = gcra(*w, state.tat[i], now, 1_000_000_000);
        }
        let d = verdict(&answers[..n], label);
        if d.allowed {
            state.tat = tats;
        }
        d
    }

    async fn check_redis(
        &self,
        key: Uuid,
        tier: RateTier,
        label: &'static str,
    ) -> Option<Decision> {
        let r = self.redis.as_ref()?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        if r.skip_until_ms.load(Ordering::Relaxed) > now_ms {
            return None;
        }
        let windows = tier.windows();
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
            let mut inv = r.script.prepare_invoke();
            for w in windows {
                // One key per window, named as single-window limits always were.
                let interval_us =
                    (u64::from(w.period_secs) * 1_000_000 / u64::from(w.count.max(1))).max(1);
                inv.key(format!("nexus:rl:{key}:{}:{}", w.count, w.period_secs))
                    .arg(interval_us)
                    .arg(w.count);
            }
            let out: Vec<i64> = inv.invoke_async(&mut conn).await?;
            Ok::<_, redis::RedisError>(out)
        };
        match tokio::time::timeout(Duration::from_secs(1), attempt).await {
            Ok(Ok(v)) if v.len() == 4 * windows.len() => {
                let us = |x: i64| Duration::from_micros(x.max(0) as u64);
                let mut answers = [Window::default(); MAX_RATE_WINDOWS];
                for (i, (w, a)) in windows.iter().zip(v.chunks_exact(4)).enumerate() {
                    answers[i] = Window {
                        count: w.count,
                        allowed: a[0] == 1,
                        remaining: a[1].clamp(0, i64::from(w.count)) as u32,
                        wait: us(a[2]),
                        reset: us(a[3]),
                    };
                }
                Some(verdict(&answers[..windows.len()], label))
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

    /// Drops idle per-key state (every window whole again); call periodically.
    pub fn housekeeping(&self) {
        self.failures.retain_recent();
        let now = self.now_ns();
        for shard in &self.local {
            shard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, s| s.tat.iter().any(|&t| t > now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn caller(tier: Option<&str>) -> Identity {
        Identity {
            key_id: Uuid::new_v4(),
            name: "t".into(),
            user_id: "t".into(),
            subject_type: nexus_wire::spec::SubjectType::User,
            is_admin: false,
            zones: Vec::new(),
            expires_at: None,
            rate_limit: tier.map(|t| t.parse().expect("tier")),
            subject: None,
            rebac: Default::default(),
            credential: Default::default(),
            groups: Vec::new(),
            permissions: None,
        }
    }

    fn limits() -> Limits {
        Limits::new(LimitConfig::default(), None, Metrics::new()).expect("limits")
    }

    async fn admitted(l: &Limits, id: &Identity, n: usize, what: &str) -> Decision {
        let mut last = None;
        for i in 0..n {
            let d = l.check(id).await;
            assert!(d.allowed, "{what}: request {} refused: {d:?}", i + 1);
            last = Some(d);
        }
        last.expect("n > 0")
    }

    /// 5/m and 8/h: five requests, then the minute window refuses; a minute later it is
    /// whole again, and the hour window (charged only for admitted requests) lets three
    /// more through before it refuses, its own Retry-After and headers on the answer.
    #[tokio::test(start_paused = true)]
    async fn the_hour_window_bites_after_the_minute_window_resets() {
        let l = limits();
        let id = caller(Some("8/h,5/m"));
        let d = l.check(&id).await;
        // 4/5 left in the minute, 7/8 in the hour: the minute is nearer exhaustion.
        assert_eq!((d.allowed, d.limit, d.remaining), (true, 5, 4), "{d:?}");
        let d = admitted(&l, &id, 4, "the minute's first five").await;
        assert_eq!((d.limit, d.remaining), (5, 0), "{d:?}");
        for _ in 0..10 {
            let d = l.check(&id).await;
            assert!(!d.allowed, "the minute window is spent: {d:?}");
            assert_eq!((d.limit, d.remaining), (5, 0), "{d:?}");
            // One unit of 5/m comes back every 12 s.
            assert!((1..=12).contains(&d.retry_after_secs), "{d:?}");
            assert!(d.reset_secs <= 60, "{d:?}");
        }
        tokio::time::advance(Duration::from_secs(61)).await;
        // The minute window is whole; the hour has 8 − 5 left (a minute brings back
        // ~0.13 of a unit): three.
        let d = l.check(&id).await;
        assert!(d.allowed, "{d:?}");
        // 4/5 in the minute, 2/8 in the hour: now the hour is nearer.
        assert_eq!((d.limit, d.remaining), (8, 2), "{d:?}");
        let d = admitted(&l, &id, 2, "the hour's last units").await;
        assert_eq!((d.limit, d.remaining), (8, 0), "{d:?}");
        let d = l.check(&id).await;
        assert!(!d.allowed, "the hour window is spent: {d:?}");
        assert_eq!(
            (d.limit, d.remaining),
            (8, 0),
            "the hour window refused: {d:?}"
        );
        // One unit of 8/h comes back every 450 s: far beyond anything the minute says.
        assert!(
            (61..=450).contains(&d.retry_after_secs),
            "Retry-After from the hour window: {d:?}"
        );
        // Waiting what it said is enough.
        tokio::time::advance(Duration::from_secs(d.retry_after_secs)).await;
        assert!(l.check(&id).await.allowed, "after Retry-After");
    }

    /// A refused request spends nothing: fifty refusals by the minute window a minute
    /// leave the hour window's budget whole, so over three minutes 2/m,5/h admits 2, 2
    /// and then the hour's last 1.
    #[tokio::test(start_paused = true)]
    async fn a_refused_request_spends_no_window() {
        let l = limits();
        let id = caller(Some("2/m,5/h"));
        let mut per_minute = Vec::new();
        for _ in 0..3 {
            let mut admitted = 0;
            for _ in 0..50 {
                admitted += usize::from(l.check(&id).await.allowed);
            }
            per_minute.push(admitted);
            tokio::time::advance(Duration::from_secs(61)).await;
        }
        assert_eq!(per_minute, [2, 2, 1]);
    }

    /// Equal shares: the longer window is named (its budget takes longer to return).
    #[test]
    fn ties_name_the_longer_window() {
        let w = |count, remaining, reset| Window {
            count,
            allowed: true,
            remaining,
            reset: Duration::from_secs(reset),
            wait: Duration::ZERO,
        };
        let d = verdict(&[w(10, 5, 30), w(100, 50, 1800)], "t");
        assert_eq!((d.limit, d.remaining, d.reset_secs), (100, 50, 1800));
        let d = verdict(&[w(10, 4, 30), w(100, 50, 1800)], "t");
        assert_eq!((d.limit, d.remaining, d.reset_secs), (10, 4, 30));
    }

    /// Tier defaults still apply, and a single window behaves as before.
    #[tokio::test(start_paused = true)]
    async fn defaults_and_a_single_window() {
        let l = Limits::new(
            LimitConfig {
                token: "2/s".parse().expect("tier"),
                ..LimitConfig::default()
            },
            None,
            Metrics::new(),
        )
        .expect("limits");
        let id = caller(None);
        let d = admitted(&l, &id, 2, "2/s").await;
        assert_eq!((d.limit, d.remaining, d.tier), (2, 0, "token"));
        let d = l.check(&id).await;
        assert_eq!((d.allowed, d.retry_after_secs), (false, 1), "{d:?}");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(l.check(&id).await.allowed);
        // Idle state is dropped once every window is whole.
        tokio::time::advance(Duration::from_secs(2)).await;
        l.housekeeping();
        assert!(l.local.iter().all(|s| s.lock().expect("lock").is_empty()));
    }
}
