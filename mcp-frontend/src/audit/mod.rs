//! The audit trail: one JSON line per MCP request on stdout and, when Redis is configured,
//! on the `nexus:audit:mcp` channel and a capped stream, plus the per-minute traffic
//! counters `hub status` reads. All of it happens in one background task fed by a bounded
//! queue: a full queue or a Redis failure drops (and counts) events, never slows or fails
//! a request. Events carry key ids, never tokens, and never file content.

use crate::metrics::Metrics;
use nexus_wire::stats;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

const QUEUE: usize = 8192;

/// One audited request.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub ts: String,
    pub event: &'static str,
    pub request_id: Option<String>,
    pub key_id: Option<String>,
    pub subject_id: Option<String>,
    pub zone_id: Option<String>,
    pub rpc_method: &'static str,
    pub tool_name: Option<&'static str>,
    pub status_code: u16,
    pub outcome: &'static str,
    pub latency_ms: f64,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Auditor {
    tx: mpsc::Sender<AuditEvent>,
    metrics: Metrics,
}

impl Auditor {
    /// Starts the writer task. `redis_url` adds publishing and traffic counters.
    pub fn start(redis_url: Option<String>, metrics: Metrics, stdout: bool) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(rx, redis_url, metrics.clone(), stdout));
        Self { tx, metrics }
    }

    /// Queues an event; never waits.
    pub fn record(&self, ev: AuditEvent) {
        if self.tx.try_send(ev).is_err() {
            self.metrics
                .audit_dropped
                .with_label_values(&["queue_full"])
                .inc();
        }
    }
}

async fn connect(client: &redis::Client) -> Option<redis::aio::ConnectionManager> {
    let cfg = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(1)))
        .set_response_timeout(Some(std::time::Duration::from_secs(1)))
        .set_number_of_retries(1);
    client.get_connection_manager_with_config(cfg).await.ok()
}

fn pipeline(ev: &AuditEvent, line: &str) -> redis::Pipeline {
    let now = chrono_now_secs();
    let m = stats::minute(now);
    let mut p = redis::pipe();
    p.cmd("PUBLISH")
        .arg(stats::AUDIT_CHANNEL)
        .arg(line)
        .ignore();
    p.cmd("XADD")
        .arg(stats::AUDIT_STREAM)
        .arg("MAXLEN")
        .arg("~")
        .arg(stats::AUDIT_STREAM_MAXLEN)
        .arg("*")
        .arg("event")
        .arg(line)
        .ignore();
    // Traffic figures count verified callers only.
    if let Some(key) = &ev.key_id {
        let rk = stats::requests_key(m);
        let ck = stats::clients_key(m);
        p.cmd("INCR")
            .arg(&rk)
            .ignore()
            .cmd("EXPIRE")
            .arg(&rk)
            .arg(stats::KEY_TTL_SECS)
            .ignore();
        p.cmd("PFADD")
            .arg(&ck)
            .arg(key)
            .ignore()
            .cmd("EXPIRE")
            .arg(&ck)
            .arg(stats::KEY_TTL_SECS)
            .ignore();
        p.cmd("HSET")
            .arg(stats::LAST_SEEN_KEY)
            .arg(key)
            .arg(&ev.ts)
            .ignore();
        p.cmd("EXPIRE")
            .arg(stats::LAST_SEEN_KEY)
            .arg(stats::KEY_TTL_SECS)
            .ignore();
        if let Some(zones) = &ev.zone_id {
            for z in zones.split(',').filter(|z| !z.is_empty() && *z != "*") {
                let zr = stats::zone_requests_key(z, m);
                let zc = stats::zone_clients_key(z, m);
                p.cmd("INCR")
                    .arg(&zr)
                    .ignore()
                    .cmd("EXPIRE")
                    .arg(&zr)
                    .arg(stats::KEY_TTL_SECS)
                    .ignore();
                p.cmd("PFADD")
                    .arg(&zc)
                    .arg(key)
                    .ignore()
                    .cmd("EXPIRE")
                    .arg(&zc)
                    .arg(stats::KEY_TTL_SECS)
                    .ignore();
                p.cmd("HSET")
                    .arg(stats::ZONES_SEEN_KEY)
                    .arg(z)
                    .arg(m)
                    .ignore();
            }
        }
    }
    p
}

fn chrono_now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn writer(
    mut rx: mpsc::Receiver<AuditEvent>,
    redis_url: Option<String>,
    metrics: Metrics,
    stdout: bool,
) {
    let client = redis_url
        .as_deref()
        .and_then(|u| redis::Client::open(u).ok());
    let mut conn: Option<redis::aio::ConnectionManager> = None;
    let mut retry_at = std::time::Instant::now();
    let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
    while let Some(ev) = rx.recv().await {
        let Ok(line) = serde_json::to_string(&ev) else {
            continue;
        };
        if stdout {
            let _ = out.write_all(line.as_bytes()).await;
            let _ = out.write_all(b"\n").await;
            if rx.is_empty() {
                let _ = out.flush().await;
            }
        }
        let Some(client) = &client else { continue };
        if conn.is_none() && std::time::Instant::now() >= retry_at {
            conn = connect(client).await;
            metrics.set_redis_up(conn.is_some());
            if conn.is_none() {
                // Do not retry on every event while Redis is away.
                retry_at = std::time::Instant::now() + std::time::Duration::from_secs(2);
            }
        }
        let Some(c) = conn.as_mut() else {
            metrics
                .audit_dropped
                .with_label_values(&["redis_unavailable"])
                .inc();
            continue;
        };
        let res: redis::RedisResult<()> = pipeline(&ev, &line).query_async(c).await;
        if res.is_err() {
            metrics
                .audit_dropped
                .with_label_values(&["publish_failed"])
                .inc();
            metrics.set_redis_up(false);
            conn = None;
            retry_at = std::time::Instant::now() + std::time::Duration::from_secs(1);
        } else {
            metrics.set_redis_up(true);
        }
    }
    let _ = out.flush().await;
}
