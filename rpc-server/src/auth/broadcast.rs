//! Redis pub/sub for invalidations: a change made in one process reaches every other
//! rpc-server at once. Publishing is off the caller's path (a bounded queue and one task);
//! the subscriber resubscribes after Redis restarts and drops the whole cache when it
//! (re)connects, since it may have missed messages while away. The database announces
//! the same changes itself ([`super::db_notify`]); Redis is the second path.

use super::invalidation::{Broadcaster, Invalidation, InvalidationBus};
use crate::metrics::Metrics;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

pub const CHANNEL: &str = "nexus:invalidate";
const QUEUE: usize = 4096;

#[derive(Debug, Serialize, Deserialize)]
struct Message {
    #[serde(flatten)]
    what: Invalidation,
    /// When the change was made (ms since the epoch), to measure propagation.
    at_ms: i64,
    /// The publishing process; it has applied the change already.
    origin: String,
}

/// Is Redis reachable, as last seen by the subscriber or publisher.
#[derive(Debug, Default, Clone)]
pub struct RedisHealth(Arc<AtomicBool>);

impl RedisHealth {
    pub fn is_up(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    fn set(&self, up: bool) {
        self.0.store(up, Ordering::Relaxed);
    }
}

/// Publishes invalidations to Redis from a background task.
#[derive(Debug)]
pub struct RedisBroadcaster {
    tx: mpsc::Sender<Message>,
    origin: String,
    pending: Arc<AtomicUsize>,
    /// Invalidations published, ever.
    published: Arc<AtomicUsize>,
    /// Invalidations given up on (Redis unreachable, or the queue full), ever.
    failed: Arc<AtomicUsize>,
    drained: Arc<Notify>,
    metrics: Option<Metrics>,
}

/// Why [`RedisBroadcaster::flush`] cannot confirm that other processes were told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlushError {
    #[error("{0} invalidation(s) could not be published to Redis")]
    Failed(usize),
    #[error("invalidations were still waiting for Redis after {0:?}")]
    TimedOut(Duration),
}

impl Broadcaster for RedisBroadcaster {
    fn broadcast(&self, what: &Invalidation) {
        let msg = Message {
            what: what.clone(),
            at_ms: chrono::Utc::now().timestamp_millis(),
            origin: self.origin.clone(),
        };
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.tx.try_send(msg).is_err() {
            self.failed.fetch_add(1, Ordering::AcqRel);
            self.pending.fetch_sub(1, Ordering::AcqRel);
            if let Some(m) = &self.metrics {
                m.invalidations.with_label_values(&["dropped"]).inc();
            }
        }
    }
}

impl RedisBroadcaster {
    /// Waits (bounded) until the queue is empty; for short-lived callers such as the CLI.
    /// `Ok` only when every invalidation broadcast so far was published, with how many
    /// that is (a caller that expected more than that was not wired to this broadcaster).
    pub async fn flush(&self, timeout: Duration) -> Result<usize, FlushError> {
        let wait = async {
            while self.pending.load(Ordering::Acquire) > 0 {
                let n = self.drained.notified();
                if self.pending.load(Ordering::Acquire) == 0 {
                    break;
                }
                n.await;
            }
        };
        if tokio::time::timeout(timeout, wait).await.is_err() {
            return Err(FlushError::TimedOut(timeout));
        }
        match self.failed.load(Ordering::Acquire) {
            0 => Ok(self.published.load(Ordering::Acquire)),
            n => Err(FlushError::Failed(n)),
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(6)).min(5000))
}

async fn connect_manager(
    client: &redis::Client,
) -> redis::RedisResult<redis::aio::ConnectionManager> {
    let cfg = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2);
    client.get_connection_manager_with_config(cfg).await
}

/// Starts the publisher (returned, to be installed on the bus) and, when `subscribe`, the
/// subscriber that applies other processes' changes to `bus`.
pub fn start(
    url: &str,
    bus: Arc<InvalidationBus>,
    metrics: Option<Metrics>,
    health: RedisHealth,
    subscribe: bool,
) -> anyhow::Result<Arc<RedisBroadcaster>> {
    let client =
        redis::Client::open(url).map_err(|e| anyhow::anyhow!("invalid NEXUS_REDIS_URL: {e}"))?;
    let origin = uuid::Uuid::new_v4().to_string();
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
    let pending = Arc::new(AtomicUsize::new(0));
    let published = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let drained = Arc::new(Notify::new());
    let b = Arc::new(RedisBroadcaster {
        tx,
        origin: origin.clone(),
        pending: pending.clone(),
        published: published.clone(),
        failed: failed.clone(),
        drained: drained.clone(),
        metrics: metrics.clone(),
    });

    let pub_client = client.clone();
    let pub_metrics = metrics.clone();
    tokio::spawn(async move {
        let mut conn: Option<redis::aio::ConnectionManager> = None;
        while let Some(msg) = rx.recv().await {
            let payload = serde_json::to_string(&msg).unwrap_or_default();
            let mut sent = false;
            for attempt in 0..3 {
                if conn.is_none() {
                    conn = connect_manager(&pub_client).await.ok();
                }
                if let Some(c) = conn.as_mut() {
                    let r: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                        .arg(CHANNEL)
                        .arg(&payload)
                        .query_async(c)
                        .await;
                    if r.is_ok() {
                        sent = true;
                        break;
                    }
                    conn = None;
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
            if let Some(m) = &pub_metrics {
                m.invalidations
                    .with_label_values(&[if sent { "published" } else { "publish_failed" }])
                    .inc();
            }
            if sent {
                published.fetch_add(1, Ordering::AcqRel);
            } else {
                // Counted before `pending` drops, so a flush that sees the queue empty
                // sees this too.
                failed.fetch_add(1, Ordering::AcqRel);
                tracing::warn!(
                    "could not publish a token invalidation to Redis; other processes rely on the database's notification"
                );
            }
            if pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                drained.notify_waiters();
            }
        }
    });

    if subscribe {
        tokio::spawn(subscriber(client, bus, metrics, health, origin));
    }
    Ok(b)
}

async fn subscriber(
    client: redis::Client,
    bus: Arc<InvalidationBus>,
    metrics: Option<Metrics>,
    health: RedisHealth,
    origin: String,
) {
    let mut attempt = 0u32;
    loop {
        let pubsub = async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(CHANNEL).await?;
            Ok::<_, redis::RedisError>(ps)
        };
        let mut ps = match tokio::time::timeout(Duration::from_secs(3), pubsub).await {
            Ok(Ok(ps)) => ps,
            _ => {
                health.set(false);
                tokio::time::sleep(backoff(attempt)).await;
                attempt = attempt.saturating_add(1);
                continue;
            }
        };
        if attempt > 0 {
            tracing::info!("resubscribed to Redis invalidations");
        }
        attempt = 0;
        // Messages may have been missed while disconnected: forget everything cached, and
        // only then say Redis is up, so whoever sees "up" knows the cache was emptied.
        bus.apply_local(&Invalidation::All);
        health.set(true);
        let mut stream = ps.on_message();
        while let Some(msg) = stream.next().await {
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            let Ok(m) = serde_json::from_str::<Message>(&payload) else {
                continue;
            };
            if m.origin == origin {
                continue;
            }
            bus.apply_local(&m.what);
            if let Some(mx) = &metrics {
                let lag = (chrono::Utc::now().timestamp_millis() - m.at_ms).max(0) as f64 / 1000.0;
                mx.invalidation_lag.observe(lag);
                mx.invalidations.with_label_values(&["received"]).inc();
            }
        }
        health.set(false);
        tracing::warn!("lost the Redis invalidation subscription; reconnecting");
    }
}
