//! The cluster bus (SPEC §13): how a change made on one node (a token revoked, a tuple
//! changed, a secret rotated) reaches every other node's caches, how frontends ship audit
//! lines to a durable stream, and how nodes tell each other they are alive.
//!
//! One [`Bus`] handle per process, cheap to clone, over a backend chosen by
//! `NEXUS_BUS_URL`: a Redis Stream (`redis.rs`) or NATS JetStream (`nats.rs`). It replaces
//! Redis pub/sub, which loses whatever is published while a node is disconnected: here a
//! subscriber remembers the last position it delivered and replays from it after a
//! reconnect, and when it cannot (the stream was trimmed past it) it says so with
//! [`Delivery::Gap`], so the consumer drops every cache instead of serving stale grants.
//! Publishing never blocks or fails the caller: a bounded queue and one task, with
//! [`Bus::flush`] for callers (the CLI) that must know a change went out.

mod metrics;
mod nats;
mod redis;
pub mod subjects;
#[cfg(feature = "testing")]
pub mod testing;
mod url;

pub use nexus_wire::bus::{BadRole, BusMessage, Invalidation, KeyId, NodeBeat, Role};
pub use subjects::{Permissions, permissions};
pub use url::{BadBusUrl, BusUrl, NatsServer};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use metrics::{DropReason, Metrics, Outcome};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

/// Invalidations waiting to be published; a burst larger than this is a bug or an attack,
/// and dropping (counted) beats unbounded memory.
const PUBLISH_QUEUE: usize = 4096;
/// Audit lines waiting to be sent (the frontend's own audit queue is the same size).
const AUDIT_QUEUE: usize = 8192;
/// How long one invalidation is retried while the bus is unreachable before it is dropped:
/// long enough to ride out a server restart or a cluster failover, short enough that a
/// dead bus does not keep a full queue forever.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(30);
/// How often a node rewrites its heartbeat.
const BEAT_EVERY: Duration = Duration::from_secs(5);
/// How long a heartbeat is kept: a node silent for this long is gone.
pub const BEAT_TTL: Duration = Duration::from_secs(60);
/// Deliveries buffered per subscriber before the reading task waits for the consumer.
const DELIVERY_BUFFER: usize = 1024;

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Eight random hex digits, to tell this process's names from an earlier one's.
pub(crate) fn random_hex() -> String {
    let mut b = [0u8; 4];
    // Only uniqueness depends on it; the clock is an acceptable fallback.
    if getrandom::fill(&mut b).is_err() {
        b = (now_ms() as u32).to_le_bytes();
    }
    hex::encode(b)
}

/// Reconnect and retry delay: doubling from 100 ms, at most 2 s, so a restarted server is
/// found again within about two seconds without hammering a dead one.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(5)).min(2000))
}

/// Which bus a [`Bus`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Redis,
    Nats,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Nats => "nats",
        }
    }
}

/// Who this node is on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// Unique in the cluster; see [`nexus_wire::bus::is_valid_node_name`].
    pub name: String,
    pub role: Role,
    /// The node's software version, shown by `hub status`.
    pub version: String,
}

impl NodeIdentity {
    /// This node's name: `NEXUS_NODE_NAME` as `var` reads it, or `<role>-<host>-<port>`
    /// (the host name with anything but `A-Z a-z 0-9 _ -` made `-`), stable across restarts
    /// and distinct for two nodes of one machine.
    pub fn name_from_env(var: impl Fn(&str) -> Option<String>, role: Role, port: u16) -> String {
        if let Some(n) = var("NEXUS_NODE_NAME").filter(|n| !n.trim().is_empty()) {
            return n.trim().to_owned();
        }
        let host = var("HOSTNAME")
            .filter(|h| !h.is_empty())
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .unwrap_or_default();
        let host: String = host
            .trim()
            .chars()
            .take(40)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let role = role.as_str();
        if host.is_empty() {
            format!("{role}-{port}")
        } else {
            format!("{role}-{host}-{port}")
        }
    }
}

/// NATS settings beyond the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSettings {
    /// Replicas of the streams this node creates (`NEXUS_NATS_REPLICAS`): 1 for a single
    /// server, 3 in a 3-node cluster.
    pub replicas: usize,
    /// How long the audit stream keeps lines.
    pub audit_max_age: Duration,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            replicas: 1,
            audit_max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Everything [`Bus::start`] needs.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// `NEXUS_BUS_URL`.
    pub url: String,
    /// `NEXUS_NATS_CREDS`: this node's `.creds` file.
    pub nats_creds: Option<PathBuf>,
    pub node: NodeIdentity,
    pub nats: NatsSettings,
    /// Whether this process is a node others should see (`hub status`): servers are; a
    /// CLI run that only publishes a change is not.
    pub heartbeat: bool,
}

impl BusConfig {
    /// The configuration from the environment (`NEXUS_BUS_URL`, `NEXUS_NATS_CREDS`,
    /// `NEXUS_NATS_REPLICAS`) as `var` reads it; `None` when no bus is configured.
    pub fn from_env(
        node: NodeIdentity,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, BusError> {
        let Some(url) = var("NEXUS_BUS_URL").filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        let mut nats = NatsSettings::default();
        if let Some(r) = var("NEXUS_NATS_REPLICAS") {
            nats.replicas = r
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=5).contains(n))
                .ok_or_else(|| {
                    BusError::Config(format!("NEXUS_NATS_REPLICAS must be 1 to 5, not {r:?}"))
                })?;
        }
        Ok(Some(Self {
            url,
            nats_creds: var("NEXUS_NATS_CREDS")
                .filter(|p| !p.trim().is_empty())
                .map(PathBuf::from),
            node,
            nats,
            heartbeat: true,
        }))
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// An invalidation published by some node (this one included: skip `origin == me`).
    Message(BusMessage),
    /// Invalidations may have been missed: drop every cache.
    Gap(Gap),
}

/// Why a [`Delivery::Gap`] was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// The subscriber's first connection: it starts from "now" and anything before is
    /// unknown (a fresh process has empty caches, so this costs nothing).
    Start,
    /// Messages after our position were removed (trimmed, purged, expired) before we read
    /// them.
    Trimmed,
    /// The stream is behind our position or gone: it was recreated or lost its data.
    Reset,
    /// A message on the invalidation stream could not be read (malformed, too large, a
    /// newer version or kind): whatever it invalidated is unknown, so fail closed.
    Unreadable,
}

impl Gap {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Trimmed => "trimmed",
            Self::Reset => "reset",
            Self::Unreadable => "unreadable",
        }
    }
}

/// The bus as `hub status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BusHealth {
    pub connected: bool,
    pub backend: BackendKind,
    pub last_error: Option<String>,
}

/// One line of the audit stream ([`Bus::read_audit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its stream sequence: pass the last one seen as `after` to read on.
    pub seq: u64,
    /// The id it was published with (`Nats-Msg-Id`).
    pub id: String,
    pub line: Bytes,
}

/// Failures of [`Bus`] calls.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(transparent)]
    Url(#[from] BadBusUrl),
    #[error("bus configuration: {0}")]
    Config(String),
    #[error("cannot register the bus metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    #[error("{0} is not available on this bus")]
    Unsupported(&'static str),
}

/// Why [`Bus::flush`] cannot confirm that everything queued reached the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlushError {
    #[error("{0} message(s) could not be published to the bus")]
    Failed(u64),
    #[error("messages were still waiting for the bus after {0:?}")]
    TimedOut(Duration),
}

/// What a subscriber task hands its deliveries to, with the bookkeeping every backend does
/// the same way.
pub(crate) struct Sink {
    tx: mpsc::Sender<Delivery>,
    shared: Arc<Shared>,
}

impl Sink {
    /// False once the consumer is gone (the task should end).
    pub(crate) async fn gap(&self, why: Gap) -> bool {
        self.shared.metrics.gap(why);
        tracing::info!(
            reason = why.label(),
            "bus gap: the consumer drops every cache"
        );
        self.tx.send(Delivery::Gap(why)).await.is_ok()
    }

    /// Reads one payload from the invalidation stream and delivers it. An unreadable one
    /// is counted and delivered as a [`Gap::Unreadable`]. False once the consumer is gone.
    pub(crate) async fn payload(&self, bytes: &[u8], replayed: bool) -> bool {
        match nexus_wire::bus::parse(bytes) {
            Ok(msg) => {
                self.shared.metrics.lag(msg.at_ms);
                if replayed {
                    self.shared.metrics.replayed();
                }
                self.tx.send(Delivery::Message(msg)).await.is_ok()
            }
            Err(e) => {
                let reason = match e {
                    nexus_wire::bus::BadMessage::TooLarge(_) => DropReason::TooLarge,
                    _ => DropReason::Malformed,
                };
                self.shared.metrics.dropped(reason);
                tracing::warn!(error = %e, "unreadable message on the invalidation stream");
                self.gap(Gap::Unreadable).await
            }
        }
    }

    pub(crate) async fn closed(&self) {
        self.tx.closed().await;
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// State every backend task shares: who we are, metrics, health.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) node: NodeIdentity,
    pub(crate) metrics: Metrics,
    connected: AtomicBool,
    /// Whether this node was ever connected (so a later connection is a reconnect).
    was_connected: AtomicBool,
    /// Whether a subscriber reads invalidations here, and whether it has handed over
    /// everything the bus held when it (re)connected: until then, a node that was cut off
    /// is not back (its caches may still hold what the replay is about to drop).
    subscribed: AtomicBool,
    synced: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    /// Records that the bus answered (or, with `false`, that the connection is lost).
    pub(crate) fn set_connected(&self, up: bool) {
        if !up {
            self.set_synced(false);
        }
        let before = self.connected.swap(up, Ordering::AcqRel);
        self.metrics.set_connected(up);
        if up && !before && self.was_connected.swap(true, Ordering::AcqRel) {
            self.metrics.reconnected();
        }
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Records whether the subscriber has handed over all the bus held at its (re)connect.
    pub(crate) fn set_synced(&self, done: bool) {
        self.synced.store(done, Ordering::Release);
    }

    /// Connected, and (with a subscriber) caught up with what was missed.
    fn is_up(&self) -> bool {
        self.is_connected()
            && (!self.subscribed.load(Ordering::Acquire) || self.synced.load(Ordering::Acquire))
    }

    pub(crate) fn error(&self, e: impl std::fmt::Display) {
        let e = e.to_string();
        tracing::debug!(error = %e, "bus error");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }

    fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// One audit line waiting to be sent.
#[derive(Debug)]
pub(crate) struct AuditLine {
    pub(crate) id: String,
    pub(crate) line: Bytes,
}

/// What a bus must do; one implementation per `NEXUS_BUS_URL` scheme.
pub(crate) trait Backend: Send + Sync + 'static {
    fn kind(&self) -> BackendKind;

    /// One attempt to put `msg` on the invalidation stream; `Ok` once the bus confirmed it.
    /// `id` is the same for every attempt of one message (for buses that deduplicate).
    fn publish<'a>(&'a self, msg: &'a BusMessage, id: &'a str)
    -> BoxFuture<'a, Result<(), String>>;

    /// Reads the invalidation stream into `sink` until the sink's consumer is gone.
    fn subscribe(self: Arc<Self>, sink: Sink) -> BoxFuture<'static, ()>;

    /// Sends a batch of audit lines; returns how many could not be sent. `None` when this
    /// bus has no audit stream.
    fn audit<'a>(&'a self, batch: Vec<AuditLine>) -> Option<BoxFuture<'a, u64>>;

    /// Writes this node's heartbeat.
    fn beat<'a>(&'a self, beat: &'a NodeBeat) -> BoxFuture<'a, Result<(), String>>;

    /// Every heartbeat the bus still holds.
    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeBeat>, BusError>>;

    /// Up to `max` audit lines after sequence `after`.
    fn read_audit(
        &self,
        after: u64,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<AuditRecord>, BusError>>;
}

/// Counts messages in and out of a queue so a flush can wait for it to drain.
#[derive(Debug, Default)]
struct Tracker {
    pending: AtomicU64,
    failed: AtomicU64,
    drained: Notify,
}

impl Tracker {
    fn add(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// One message done; `failed` ones are counted before `pending` drops, so a flush that
    /// sees the queue empty sees the failure too.
    fn done(&self, failed: bool) {
        if failed {
            self.failed.fetch_add(1, Ordering::AcqRel);
        }
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drained.notify_waiters();
        }
    }

    async fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        let wait = async {
            loop {
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
            0 => Ok(()),
            n => Err(FlushError::Failed(n)),
        }
    }
}

struct Queued {
    msg: BusMessage,
    id: String,
    give_up_at: Instant,
}

struct Inner {
    shared: Arc<Shared>,
    backend: Arc<dyn Backend>,
    publish_tx: mpsc::Sender<Queued>,
    published: Arc<Tracker>,
    audit_tx: Option<mpsc::Sender<AuditLine>>,
    audited: Arc<Tracker>,
    /// Publish ids are `<node>.<random>.<counter>`: unique across restarts of a node.
    id_prefix: String,
    next_id: AtomicU64,
    /// Background tasks that would otherwise outlive the last handle.
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The bus handle. Clones share one connection, queue and heartbeat; background tasks stop
/// when the last clone is dropped (subscribers when their receiver is).
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("node", &self.inner.shared.node.name)
            .field("backend", &self.inner.backend.kind())
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// Starts the bus: parses the URL, registers the metrics in `registry`, and starts the
    /// publisher and heartbeat tasks. Does not wait for the bus to be reachable (a node
    /// starts while the bus is down; [`Bus::health`] tells), but fails on configuration
    /// errors: a bad URL, a bad node name, an unreadable credentials file.
    pub async fn start(
        config: BusConfig,
        registry: Option<&prometheus::Registry>,
    ) -> Result<Self, BusError> {
        if !nexus_wire::bus::is_valid_node_name(&config.node.name) {
            return Err(BusError::Config(format!(
                "node name {:?} must be 1-64 of A-Z a-z 0-9 _ -",
                config.node.name
            )));
        }
        let url = BusUrl::parse(&config.url, config.nats_creds.is_some())?;
        let shared = Arc::new(Shared {
            node: config.node.clone(),
            metrics: Metrics::new(registry)?,
            connected: AtomicBool::new(false),
            was_connected: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            synced: AtomicBool::new(false),
            last_error: Mutex::new(None),
        });
        shared.metrics.set_connected(false);
        let backend: Arc<dyn Backend> = match &url {
            BusUrl::Redis(u) => Arc::new(redis::RedisBackend::new(u, shared.clone())?),
            BusUrl::Nats { servers, user } => Arc::new(
                nats::NatsBackend::connect(
                    servers,
                    user.clone(),
                    config.nats_creds.as_deref(),
                    config.nats.clone(),
                    shared.clone(),
                )
                .await?,
            ),
        };

        let mut tasks = Vec::new();
        let published = Arc::new(Tracker::default());
        let (publish_tx, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        tasks.push(
            tokio::spawn(publisher(
                publish_rx,
                backend.clone(),
                shared.clone(),
                published.clone(),
            ))
            .abort_handle(),
        );

        let audited = Arc::new(Tracker::default());
        let audit_tx = if backend.kind() == BackendKind::Nats {
            let (tx, rx) = mpsc::channel(AUDIT_QUEUE);
            tasks.push(tokio::spawn(auditor(rx, backend.clone(), audited.clone())).abort_handle());
            Some(tx)
        } else {
            None
        };

        let beat = NodeBeat {
            name: config.node.name.clone(),
            role: config.node.role,
            version: config.node.version.clone(),
            started_at_ms: now_ms(),
            at_ms: 0,
        };
        if config.heartbeat {
            tasks.push(
                tokio::spawn(heartbeat(backend.clone(), shared.clone(), beat)).abort_handle(),
            );
        }

        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                backend,
                publish_tx,
                published,
                audit_tx,
                audited,
                id_prefix: format!("{}.{}", config.node.name, random_hex()),
                next_id: AtomicU64::new(0),
                tasks,
            }),
        })
    }

    pub fn node(&self) -> &NodeIdentity {
        &self.inner.shared.node
    }

    /// Queues `what` for every node (this one included). Never waits and never fails: a
    /// full queue drops it (counted as `queue_full`); [`Bus::flush`] reports drops.
    pub fn publish(&self, what: Invalidation) {
        let msg = BusMessage::new(self.inner.shared.node.name.clone(), now_ms(), what);
        self.inner.published.add();
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let queued = Queued {
            msg,
            id: format!("{}.{n}", self.inner.id_prefix),
            give_up_at: Instant::now() + PUBLISH_PATIENCE,
        };
        if self.inner.publish_tx.try_send(queued).is_err() {
            self.inner.shared.metrics.dropped(DropReason::QueueFull);
            self.inner.shared.metrics.published(Outcome::Failed);
            self.inner.published.done(true);
        }
    }

    /// Queues a hint (a `file_changed`) only while the queue is at most half full, so a
    /// burst of writes while the bus is slow never crowds out a revocation. `false` when
    /// it was not queued; nothing is counted as dropped.
    pub fn publish_hint(&self, what: Invalidation) -> bool {
        if self.inner.publish_tx.capacity() < PUBLISH_QUEUE / 2 {
            return false;
        }
        self.publish(what);
        true
    }

    /// Waits (at most `timeout`) until every invalidation queued so far was confirmed by the
    /// bus. `Ok` only when none was ever dropped by this handle: for short-lived callers
    /// such as the CLI, which must know that a revocation went out.
    pub async fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        self.inner.published.flush(timeout).await
    }

    /// Every invalidation published by any node from now on, in order, replayed after a
    /// reconnect; [`Delivery::Gap`] first (a fresh start) and whenever replay is impossible.
    /// Each call reads on its own; dropping the receiver stops it.
    pub fn subscribe(&self) -> mpsc::Receiver<Delivery> {
        let (tx, rx) = mpsc::channel(DELIVERY_BUFFER);
        self.inner.shared.subscribed.store(true, Ordering::Release);
        let sink = Sink {
            tx,
            shared: self.inner.shared.clone(),
        };
        tokio::spawn(self.inner.backend.clone().subscribe(sink));
        rx
    }

    /// Queues one audit line for the durable audit stream, under `id` (`Nats-Msg-Id`: the
    /// stream stores one line per id within its duplicate window). NATS only: on Redis it
    /// returns `false` and does nothing (the frontend keeps its own Redis audit writer).
    /// `false` too when the line was dropped (queue full, id unusable), counted.
    pub fn audit(&self, id: &str, line: Bytes) -> bool {
        let Some(tx) = &self.inner.audit_tx else {
            return false;
        };
        let metrics = &self.inner.shared.metrics;
        // The id goes into a header: no whitespace or control characters that could
        // end it early or start another.
        if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            metrics.dropped(DropReason::BadId);
            return false;
        }
        if line.len() > nexus_wire::bus::MAX_MESSAGE_BYTES {
            metrics.dropped(DropReason::TooLarge);
            return false;
        }
        self.inner.audited.add();
        let item = AuditLine {
            id: id.to_owned(),
            line,
        };
        if tx.try_send(item).is_err() {
            metrics.dropped(DropReason::QueueFull);
            self.inner.audited.done(true);
            return false;
        }
        true
    }

    /// Waits (at most `timeout`) until every audit line queued so far was sent; `Ok` when
    /// none was ever dropped by this handle. On Redis, `Ok` at once.
    pub async fn flush_audit(&self, timeout: Duration) -> Result<(), FlushError> {
        self.inner.audited.flush(timeout).await
    }

    /// Up to `max` lines of the audit stream after sequence `after` (0: from the start),
    /// oldest first. NATS only; for rpc nodes (frontends may not read the audit stream).
    pub async fn read_audit(&self, after: u64, max: usize) -> Result<Vec<AuditRecord>, BusError> {
        self.inner.backend.read_audit(after, max).await
    }

    /// Every node that wrote a heartbeat within [`BEAT_TTL`], by name.
    pub async fn nodes(&self) -> Result<Vec<NodeBeat>, BusError> {
        let mut beats = self.inner.backend.nodes().await?;
        let oldest = now_ms() - i64::try_from(BEAT_TTL.as_millis()).unwrap_or(i64::MAX);
        beats.retain(|b| b.at_ms >= oldest);
        beats.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(beats)
    }

    pub fn health(&self) -> BusHealth {
        BusHealth {
            connected: self.inner.shared.is_up(),
            backend: self.inner.backend.kind(),
            last_error: self.inner.shared.last_error(),
        }
    }
}

/// Publishes queued invalidations one at a time, in order, each retried until it is
/// confirmed or its patience runs out.
async fn publisher(
    mut rx: mpsc::Receiver<Queued>,
    backend: Arc<dyn Backend>,
    shared: Arc<Shared>,
    tracker: Arc<Tracker>,
) {
    while let Some(q) = rx.recv().await {
        let mut attempt = 0;
        let ok = loop {
            match backend.publish(&q.msg, &q.id).await {
                Ok(()) => break true,
                Err(e) => {
                    shared.error(format!("publish: {e}"));
                    let wait = backoff(attempt);
                    attempt += 1;
                    if Instant::now() + wait > q.give_up_at {
                        break false;
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        };
        if ok {
            shared.metrics.published(Outcome::Ok);
        } else {
            shared.metrics.published(Outcome::Failed);
            shared.metrics.dropped(DropReason::Unavailable);
            tracing::warn!(
                kind = q.msg.what.kind(),
                "could not publish an invalidation to the bus; other nodes rely on their cache TTL"
            );
        }
        tracker.done(!ok);
    }
}

/// Sends audit lines in batches (JetStream acknowledges a batch about as fast as one line).
/// A bus that is down drops the batch at once: audit must never back up into requests.
async fn auditor(
    mut rx: mpsc::Receiver<AuditLine>,
    backend: Arc<dyn Backend>,
    tracker: Arc<Tracker>,
) {
    const BATCH: usize = 256;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let n = batch.len() as u64;
        let failed = match backend.audit(std::mem::take(&mut batch)) {
            Some(f) => f.await,
            None => n,
        };
        for i in 0..n {
            tracker.done(i < failed);
        }
    }
}

/// Writes this node's heartbeat every [`BEAT_EVERY`], at once on start, and again soon
/// after a failure so a node shows up as soon as the bus does.
async fn heartbeat(backend: Arc<dyn Backend>, shared: Arc<Shared>, mut beat: NodeBeat) {
    let mut failures = 0;
    loop {
        beat.at_ms = now_ms();
        let wait = match backend.beat(&beat).await {
            Ok(()) => {
                failures = 0;
                BEAT_EVERY
            }
            Err(e) => {
                shared.error(format!("heartbeat: {e}"));
                failures += 1;
                backoff(failures).min(Duration::from_secs(1))
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodeIdentity {
        NodeIdentity {
            name: name.to_owned(),
            role: Role::Rpc,
            version: "0".to_owned(),
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn config_from_env() {
        assert!(
            BusConfig::from_env(node("a"), env(&[]))
                .expect("no bus")
                .is_none()
        );
        assert!(
            BusConfig::from_env(node("a"), env(&[("NEXUS_BUS_URL", " ")]))
                .expect("blank")
                .is_none()
        );
        let c = BusConfig::from_env(
            node("a"),
            env(&[
                ("NEXUS_BUS_URL", "nats://n1:4222,n2:4222"),
                ("NEXUS_NATS_CREDS", "/etc/nexus/a.creds"),
                ("NEXUS_NATS_REPLICAS", "3"),
            ]),
        )
        .expect("config")
        .expect("a bus");
        assert_eq!(c.nats.replicas, 3);
        assert_eq!(c.nats_creds, Some(PathBuf::from("/etc/nexus/a.creds")));
        for bad in ["0", "6", "three", ""] {
            assert!(
                BusConfig::from_env(
                    node("a"),
                    env(&[
                        ("NEXUS_BUS_URL", "redis://127.0.0.1"),
                        ("NEXUS_NATS_REPLICAS", bad)
                    ])
                )
                .is_err(),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn start_refuses_bad_configuration() {
        let config = |name: &str, url: &str, creds: Option<&str>| BusConfig {
            url: url.to_owned(),
            nats_creds: creds.map(PathBuf::from),
            node: node(name),
            nats: NatsSettings::default(),
            heartbeat: true,
        };
        for (c, want) in [
            (config("a.b", "redis://127.0.0.1:1", None), "node name"),
            (config("", "redis://127.0.0.1:1", None), "node name"),
            (config("a", "mqtt://h", None), "unknown scheme"),
            (
                config("a", "nats://nats.example:4222", None),
                "NEXUS_NATS_CREDS",
            ),
            (
                config(
                    "a",
                    "nats://nats.example:4222",
                    Some("/nonexistent/a.creds"),
                ),
                "cannot read",
            ),
        ] {
            let e = Bus::start(c, None).await.expect_err(want);
            assert!(e.to_string().contains(want), "{e}");
        }
        let dir = tempfile_dir();
        let not_creds = dir.join("a.creds");
        std::fs::write(&not_creds, "hello").expect("write");
        let e = Bus::start(config("a", "nats://127.0.0.1:1", not_creds.to_str()), None)
            .await
            .expect_err("not a creds file");
        assert!(e.to_string().contains("not a NATS .creds file"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_node_starts_while_its_bus_is_down() {
        // Nothing listens on port 1: start succeeds, health says so, publishes wait.
        let registry = prometheus::Registry::new();
        let bus = Bus::start(
            BusConfig {
                url: "redis://127.0.0.1:1".to_owned(),
                nats_creds: None,
                node: node("a"),
                nats: NatsSettings::default(),
                heartbeat: true,
            },
            Some(&registry),
        )
        .await
        .expect("starts");
        bus.publish(Invalidation::All);
        assert!(matches!(
            bus.flush(Duration::from_millis(200)).await,
            Err(FlushError::TimedOut(_))
        ));
        let h = bus.health();
        assert!(!h.connected);
        assert_eq!(h.backend, BackendKind::Redis);
        // A second bus cannot register the same metrics in the same registry.
        let again = Bus::start(
            BusConfig {
                url: "redis://127.0.0.1:1".to_owned(),
                nats_creds: None,
                node: node("b"),
                nats: NatsSettings::default(),
                heartbeat: true,
            },
            Some(&registry),
        )
        .await;
        assert!(matches!(again, Err(BusError::Metrics(_))));
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("nexus-bus-test-{}", random_hex()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }
}
