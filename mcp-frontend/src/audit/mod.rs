//! The audit trail: one JSON line per MCP request on stdout and, when Redis is configured,
//! on the `nexus:audit:mcp` channel and a capped stream, plus the per-minute traffic
//! counters `hub status` reads; with a NATS cluster bus, the same line on the durable
//! JetStream audit stream too (SPEC §13), under the request id so that a line sent twice
//! is stored once. All of it happens in one background task fed by a bounded queue: a full
//! queue, a Redis failure or a bus that is down drops (and counts) events, never slows or
//! fails a request. Events carry key ids, never tokens, and never file content.

mod traffic;

pub use traffic::Traffic;

use crate::metrics::Metrics;
use bytes::Bytes;
use nexus_bus::{BackendKind, Bus};
use nexus_wire::stats;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

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

/// What the writer task reads: events, and requests to say when everything queued before
/// them was written. Events are not boxed: that would be an allocation per request for the
/// sake of the one flush at shutdown (the queue's slots are an event's size either way).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Item {
    Event(AuditEvent),
    Flush(oneshot::Sender<()>),
}

#[derive(Debug, Clone)]
pub struct Auditor {
    tx: mpsc::Sender<Item>,
    metrics: Metrics,
    /// The NATS bus the writer also sends every line to, for [`Auditor::flush`].
    bus: Option<Bus>,
    /// Traffic figures kept in process (`FrontendConfig::live_traffic`).
    traffic: Option<std::sync::Arc<Traffic>>,
}

impl Auditor {
    /// Starts the writer task. `redis_url` adds publishing and traffic counters; a `bus`
    /// on NATS adds the durable audit stream (a Redis bus has none: Redis audit is
    /// `redis_url`'s); `traffic` has the writer also count every batch in process.
    pub fn start(
        redis_url: Option<String>,
        metrics: Metrics,
        stdout: bool,
        bus: Option<Bus>,
        traffic: Option<std::sync::Arc<Traffic>>,
    ) -> Self {
        let bus = bus.filter(|b| b.health().backend == BackendKind::Nats);
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = Writer {
            client: redis_url
                .as_deref()
                .and_then(|u| redis::Client::open(u).ok()),
            conn: None,
            retry_at: Instant::now(),
            out: if stdout { stdout_thread() } else { None },
            metrics: metrics.clone(),
            bus: bus.clone(),
            ids: FallbackIds::new(),
            traffic: traffic.clone(),
        };
        tokio::spawn(writer.run(rx));
        Self {
            tx,
            metrics,
            bus,
            traffic,
        }
    }

    /// The traffic figures kept in process, when they are.
    pub fn traffic(&self) -> Option<std::sync::Arc<Traffic>> {
        self.traffic.clone()
    }

    /// Queues an event; never waits.
    pub fn record(&self, ev: AuditEvent) {
        if self.tx.try_send(Item::Event(ev)).is_err() {
            self.metrics
                .audit_dropped
                .with_label_values(&["queue_full"])
                .inc();
        }
    }

    /// At shutdown, once no request is left: waits (at most `writer_within`) until the
    /// writer task has written every event queued so far (stdout included, and handed to
    /// the bus), then (at most `bus_within`) until the bus has sent them. Logs what could
    /// not be done; never fails.
    pub async fn flush(&self, writer_within: Duration, bus_within: Duration) {
        let written = tokio::time::timeout(writer_within, async {
            let (tx, rx) = oneshot::channel();
            self.tx.send(Item::Flush(tx)).await.ok()?;
            rx.await.ok()
        })
        .await;
        if !matches!(written, Ok(Some(()))) {
            tracing::warn!(
                within = ?writer_within,
                "audit events were still waiting to be written at shutdown"
            );
        }
        if let Some(bus) = &self.bus
            && let Err(e) = bus.flush_audit(bus_within).await
        {
            tracing::warn!(error = %e, "audit lines not all sent to the cluster bus");
        }
    }
}

/// Ids for events without a usable request id (there should be none: the edge stack gives
/// every request one): `audit-<random>-<n>`, unique across restarts, never derived from
/// anything the caller sent.
#[derive(Debug)]
struct FallbackIds {
    prefix: String,
    next: AtomicU64,
}

impl FallbackIds {
    fn new() -> Self {
        let mut b = [0u8; 8];
        if getrandom::fill(&mut b).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            b = t.to_le_bytes();
        }
        Self {
            prefix: format!("audit-{}", hex::encode(b)),
            next: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        format!(
            "{}-{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// Whether `id` can be a `Nats-Msg-Id` as the bus takes it: 1 to 128 visible ASCII
/// characters (our request ids are UUIDs).
fn usable_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
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
const GATHER: Duration = Duration::from_millis(10);

/// What the stdout thread reads.
enum ToStdout {
    Lines(Vec<u8>),
    /// Answered once everything before it is written and flushed.
    Flush(oneshot::Sender<()>),
}

/// The thread that owns stdout. Writing from the async task would block a runtime worker
/// whenever the reader of stdout is slow; tokio's async stdout hands every flush to the
/// blocking pool, which under load cost more CPU than building the events.
fn stdout_thread() -> Option<std::sync::mpsc::SyncSender<ToStdout>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<ToStdout>(STDOUT_BACKLOG);
    std::thread::Builder::new()
        .name("nexus-audit-stdout".into())
        .spawn(move || {
            use std::io::Write;
            let stdout = std::io::stdout();
            while let Ok(msg) = rx.recv() {
                match msg {
                    ToStdout::Lines(buf) => {
                        let mut out = stdout.lock();
                        let _ = out.write_all(&buf);
                        let _ = out.flush();
                    }
                    ToStdout::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        })
        .ok()
        .map(|_| tx)
}

/// The writer task's state: where lines go.
struct Writer {
    client: Option<redis::Client>,
    conn: Option<redis::aio::ConnectionManager>,
    retry_at: Instant,
    out: Option<std::sync::mpsc::SyncSender<ToStdout>>,
    metrics: Metrics,
    /// A NATS bus: every line also goes to its audit stream.
    bus: Option<Bus>,
    ids: FallbackIds,
    traffic: Option<std::sync::Arc<Traffic>>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Item>) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut flushes = Vec::new();
        while let Some(first) = rx.recv().await {
            match first {
                Item::Event(ev) => {
                    batch.push(ev);
                    // Let a batch gather: waking this task and the stdout thread for every
                    // event cost about 19 µs of CPU per request under load (bench/run), more
                    // than building them.
                    tokio::time::sleep(GATHER).await;
                }
                Item::Flush(done) => flushes.push(done),
            }
            // A flush ends the batch: it is answered once what came before it is written.
            while batch.len() < BATCH && flushes.is_empty() {
                match rx.try_recv() {
                    Ok(Item::Event(ev)) => batch.push(ev),
                    Ok(Item::Flush(done)) => flushes.push(done),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.write(std::mem::take(&mut batch)).await;
            }
            for done in flushes.drain(..) {
                self.flushed(done);
            }
        }
    }

    /// Answers `done` once stdout has written everything before it (at once without
    /// stdout, or when the stdout thread is behind: a flush must not wait on a full pipe).
    fn flushed(&self, done: oneshot::Sender<()>) {
        match &self.out {
            Some(out) => {
                if let Err(std::sync::mpsc::TrySendError::Full(ToStdout::Flush(done))) =
                    out.try_send(ToStdout::Flush(done))
                {
                    let _ = done.send(());
                }
            }
            None => {
                let _ = done.send(());
            }
        }
    }

    async fn write(&mut self, batch: Vec<AuditEvent>) {
        let events: Vec<(AuditEvent, String)> = batch
            .into_iter()
            .map(|mut ev| {
                // Every event has our request id; should one not, it gets a unique one so
                // the line can be told apart (and deduplicated by the bus) all the same.
                if ev.request_id.is_none() {
                    ev.request_id = Some(self.ids.next());
                }
                ev
            })
            .filter_map(|ev| serde_json::to_string(&ev).ok().map(|line| (ev, line)))
            .collect();
        if let Some(t) = &self.traffic {
            t.record(events.iter().map(|(ev, _)| ev), chrono_now_secs());
        }
        if let Some(out) = &self.out {
            let mut buf = Vec::with_capacity(events.iter().map(|(_, l)| l.len() + 1).sum());
            for (_, line) in &events {
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
            }
            if out.try_send(ToStdout::Lines(buf)).is_err() {
                self.metrics
                    .audit_dropped
                    .with_label_values(&["stdout_backlog"])
                    .inc_by(events.len() as u64);
            }
        }
        if let Some(bus) = &self.bus {
            // Queued for the bus's own task, never awaited here; what it cannot take or
            // send it counts in `nexus_bus_dropped_total`.
            for (ev, line) in &events {
                let id = match ev.request_id.as_deref() {
                    Some(id) if usable_id(id) => id.to_owned(),
                    _ => self.ids.next(),
                };
                bus.audit(&id, Bytes::copy_from_slice(line.as_bytes()));
            }
        }
        self.redis(&events).await;
    }

    async fn redis(&mut self, events: &[(AuditEvent, String)]) {
        let Some(client) = &self.client else { return };
        if self.conn.is_none() && Instant::now() >= self.retry_at {
            self.conn = connect(client).await;
            self.metrics.set_redis_up(self.conn.is_some());
            if self.conn.is_none() {
                // Do not retry on every event while Redis is away.
                self.retry_at = Instant::now() + Duration::from_secs(2);
            }
        }
        let Some(c) = self.conn.as_mut() else {
            self.metrics
                .audit_dropped
                .with_label_values(&["redis_unavailable"])
                .inc_by(events.len() as u64);
            return;
        };
        let mut p = redis::pipe();
        for (ev, line) in events {
            add_to_pipeline(&mut p, ev, line);
        }
        let res: redis::RedisResult<()> = p.query_async(c).await;
        if res.is_err() {
            self.metrics
                .audit_dropped
                .with_label_values(&["publish_failed"])
                .inc_by(events.len() as u64);
            self.metrics.set_redis_up(false);
            self.conn = None;
            self.retry_at = Instant::now() + Duration::from_secs(1);
        } else {
            self.metrics.set_redis_up(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_ids_are_request_ids_or_unique_fallbacks() {
        assert!(usable_id("0b6c1a3e-2f4d-4c49-9b1a-6f1f0f5e8d21"));
        for bad in ["", "two words", "tab\there", "é", &"x".repeat(129)] {
            assert!(!usable_id(bad), "{bad:?}");
        }
        let (a, b) = (FallbackIds::new(), FallbackIds::new());
        let ids = [a.next(), a.next(), b.next()];
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[0], ids[2], "another process starts elsewhere");
        assert!(ids.iter().all(|id| usable_id(id)), "{ids:?}");
    }

    fn event(request_id: Option<&str>) -> AuditEvent {
        AuditEvent {
            ts: "2026-01-01T00:00:00.000Z".into(),
            event: "mcp.request",
            request_id: request_id.map(str::to_owned),
            client_request_id: None,
            key_id: Some("kid".into()),
            subject_id: None,
            zone_id: None,
            rpc_method: "tools/list",
            tool_name: None,
            status_code: 200,
            outcome: "ok",
            latency_ms: 1.0,
            user_agent: None,
        }
    }

    #[tokio::test]
    async fn a_flush_waits_for_what_was_queued_and_is_bounded() {
        let audit = Auditor::start(None, Metrics::new(), false, None, None);
        for i in 0..100 {
            audit.record(event((i % 2 == 0).then_some("r")));
        }
        let t = Instant::now();
        audit
            .flush(Duration::from_secs(5), Duration::from_secs(5))
            .await;
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        // The writer took every event: the queue has room for a full one again.
        for _ in 0..QUEUE {
            audit.record(event(Some("r")));
        }
        assert_eq!(
            audit
                .metrics
                .audit_dropped
                .with_label_values(&["queue_full"])
                .get(),
            0
        );
    }
}
