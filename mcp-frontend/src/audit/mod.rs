//! The audit trail: one JSON line per MCP request on stdout and, when Redis is configured,
//! on the `nexus:audit:mcp` channel and a capped stream, plus the per-minute traffic
//! counters `hub status` reads. All of it happens in one background task fed by a bounded
//! queue: a full queue or a Redis failure drops (and counts) events, never slows or fails
//! a request. Events carry key ids, never tokens, and never file content.

use crate::metrics::Metrics;
use nexus_wire::stats;
use serde::Serialize;
use tokio::sync::mpsc;

const QUEUE: usize = 8192;

/// One audited request.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub ts: String,
    pub event: &'static str,
    /// Ours (`X-Request-Id` of the response), never the caller's.
    pub request_id: Option<String>,
    /// The `X-Request-Id` the caller sent, cleaned and capped.
    pub client_request_id: Option<String>,
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

/// Adds one event's publish, stream entry and traffic counters to `p`.
fn add_to_pipeline(p: &mut redis::Pipeline, ev: &AuditEvent, line: &str) {
    let now = chrono_now_secs();
    let m = stats::minute(now);
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
}

fn chrono_now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Lines waiting for the stdout thread; past this many batches, stdout is not keeping up
/// and batches are dropped (and counted) rather than held in memory.
const STDOUT_BACKLOG: usize = 64;

/// Most events taken from the queue at once: one stdout write and one Redis round trip
/// carry them all.
const BATCH: usize = 1024;

/// How long the first event of a batch waits for others; an audit line is at most this late.
const GATHER: std::time::Duration = std::time::Duration::from_millis(10);

/// The thread that owns stdout. Writing from the async task would block a runtime worker
/// whenever the reader of stdout is slow; tokio's async stdout hands every flush to the
/// blocking pool, which under load cost more CPU than building the events.
fn stdout_thread() -> Option<std::sync::mpsc::SyncSender<Vec<u8>>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(STDOUT_BACKLOG);
    std::thread::Builder::new()
        .name("nexus-audit-stdout".into())
        .spawn(move || {
            use std::io::Write;
            let stdout = std::io::stdout();
            while let Ok(buf) = rx.recv() {
                let mut out = stdout.lock();
                let _ = out.write_all(&buf);
                let _ = out.flush();
            }
        })
        .ok()
        .map(|_| tx)
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
    let out = if stdout { stdout_thread() } else { None };
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        // Let a batch gather: waking this task and the stdout thread for every event cost
        // about 19 µs of CPU per request under load (bench/run), more than building them.
        batch.push(first);
        tokio::time::sleep(GATHER).await;
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(ev) => batch.push(ev),
                Err(_) => break,
            }
        }
        let events: Vec<(AuditEvent, String)> = batch
            .drain(..)
            .filter_map(|ev| serde_json::to_string(&ev).ok().map(|line| (ev, line)))
            .collect();
        if let Some(out) = &out {
            let mut buf = Vec::with_capacity(events.iter().map(|(_, l)| l.len() + 1).sum());
            for (_, line) in &events {
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
            }
            if out.try_send(buf).is_err() {
                metrics
                    .audit_dropped
                    .with_label_values(&["stdout_backlog"])
                    .inc_by(events.len() as u64);
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
                .inc_by(events.len() as u64);
            continue;
        };
        let mut p = redis::pipe();
        for (ev, line) in &events {
            add_to_pipeline(&mut p, ev, line);
        }
        let res: redis::RedisResult<()> = p.query_async(c).await;
        if res.is_err() {
            metrics
                .audit_dropped
                .with_label_values(&["publish_failed"])
                .inc_by(events.len() as u64);
            metrics.set_redis_up(false);
            conn = None;
            retry_at = std::time::Instant::now() + std::time::Duration::from_secs(1);
        } else {
            metrics.set_redis_up(true);
        }
    }
}
