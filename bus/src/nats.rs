//! The NATS JetStream backend: invalidations on the stream `NEXUS_INVAL` (subjects
//! `nexus.inval.<kind>`), audit lines on `NEXUS_AUDIT` (deduplicated by `Nats-Msg-Id`),
//! heartbeats in the KV bucket `nexus_nodes`. Names and the permissions each role needs are
//! in [`crate::subjects`].
//!
//! A subscriber reads with an ephemeral ordered consumer and keeps the stream sequence of
//! the last message it delivered. It does not rely on the consumer surviving a reconnect
//! (an ephemeral consumer lives in the server's memory, and a restarted or failed-over
//! server has lost it): on every reconnection it looks at the stream, says [`Gap`] when
//! the stream no longer holds what follows its position, and makes a new consumer that
//! starts right after that position. Sequences of one stream are consecutive, so a jump
//! while reading also means messages were removed before we read them: a gap too.

use crate::subjects::{
    AUDIT_STREAM, AUDIT_SUBJECT, INVAL_STREAM, INVAL_SUBJECTS, NODES_BUCKET, NODES_STREAM,
    inbox_prefix, inval_subject, node_key_subject,
};
use crate::{
    AuditLine, AuditRecord, Backend, BackendKind, BusError, Gap, NatsSettings, Shared, Sink,
    backoff, metrics::AuditOutcome, metrics::DropReason,
};
use async_nats::connection::State;
use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig, stream};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt as _, StreamExt as _};
use nexus_wire::bus::{BusMessage, NodeBeat, Role};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// JetStream API requests and publish acknowledgements wait at most this long.
const API_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an invalidation's publish waits for its acknowledgement before it is sent again
/// (the message id makes the stream store it once). Shorter than [`API_TIMEOUT`]: while a
/// stream elects a new leader (a server died) an ack is lost, and a revocation should not
/// wait the whole API timeout to be sent again to the new leader.
const ACK_PATIENCE: Duration = Duration::from_secs(1);
/// How long a listing (nodes, audit) waits for the next message before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Limits of the invalidation stream: replay covers an hour's or 100k messages' absence;
/// a node away longer gets a gap and drops its caches.
const INVAL_MAX_AGE: Duration = Duration::from_secs(3600);
const INVAL_MAX_MSGS: i64 = 100_000;
/// `Nats-Msg-Id`s are remembered this long: a retried publish within it is stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

pub(crate) struct NatsBackend {
    client: async_nats::Client,
    js: jetstream::Context,
    shared: Arc<Shared>,
    settings: NatsSettings,
    /// Counts connections (the first included): a subscriber rebuilds its consumer when it
    /// changes.
    epoch: watch::Receiver<u64>,
    /// Whether the streams this node creates or looks up were seen; reset when a request
    /// suggests they are gone.
    inval_ready: tokio::sync::Mutex<bool>,
    audit_ready: tokio::sync::Mutex<bool>,
    nodes_ready: tokio::sync::Mutex<bool>,
    /// Unique per process, so two processes with one node name (a restart while the old
    /// consumers linger) never collide on consumer names.
    consumer_prefix: String,
    serial: AtomicU64,
}

impl NatsBackend {
    pub(crate) async fn connect(
        servers: &[crate::NatsServer],
        user: Option<(String, String)>,
        creds: Option<&Path>,
        settings: NatsSettings,
        shared: Arc<Shared>,
    ) -> Result<Self, BusError> {
        let node = shared.node.name.clone();
        let mut opts = match creds {
            Some(p) => {
                crate::url::check_creds_file(p).map_err(BusError::Config)?;
                async_nats::ConnectOptions::with_credentials_file(p)
                    .await
                    .map_err(|e| {
                        BusError::Config(format!("NEXUS_NATS_CREDS {}: {e}", p.display()))
                    })?
            }
            None => async_nats::ConnectOptions::new(),
        };
        if let Some((u, p)) = user {
            // async-nats does not use a user:password in the server URL by itself.
            opts = opts.user_and_password(u, p);
        }
        let (epoch_tx, epoch) = watch::channel(0u64);
        let epoch_tx = Arc::new(epoch_tx);
        let events = shared.clone();
        let opts = opts
            .name(&node)
            .custom_inbox_prefix(inbox_prefix(&node))
            // The servers in the order the operator listed them (its own first, usually),
            // not shuffled: a node's first choice is a deployment decision.
            .retain_servers_order()
            // Start while the cluster is down; connect in the background.
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .reconnect_delay_callback(|n| backoff(u32::try_from(n).unwrap_or(u32::MAX)))
            .event_callback(move |event| {
                let shared = events.clone();
                let epoch = epoch_tx.clone();
                async move { on_event(&shared, &epoch, event) }
            });
        let addrs: Vec<async_nats::ServerAddr> = servers
            .iter()
            .map(|s| s.addr().parse())
            .collect::<Result<_, _>>()
            .map_err(|e: std::io::Error| BusError::Config(format!("NEXUS_BUS_URL: {e}")))?;
        let client = opts
            .connect(addrs)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(API_TIMEOUT)
            .build(client.clone());
        Ok(Self {
            client,
            js,
            settings,
            epoch,
            inval_ready: tokio::sync::Mutex::new(false),
            audit_ready: tokio::sync::Mutex::new(false),
            nodes_ready: tokio::sync::Mutex::new(false),
            consumer_prefix: format!("{node}_{}", crate::random_hex()),
            serial: AtomicU64::new(0),
            shared,
        })
    }

    fn role(&self) -> Role {
        self.shared.node.role
    }

    fn next_consumer_name(&self) -> String {
        format!(
            "{}_{}",
            self.consumer_prefix,
            self.serial.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn inval_config(&self) -> stream::Config {
        stream::Config {
            name: INVAL_STREAM.to_owned(),
            subjects: vec![INVAL_SUBJECTS.to_owned()],
            max_age: INVAL_MAX_AGE,
            max_messages: INVAL_MAX_MSGS,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: self.settings.replicas,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        }
    }

    fn audit_config(&self) -> stream::Config {
        stream::Config {
            name: AUDIT_STREAM.to_owned(),
            subjects: vec![AUDIT_SUBJECT.to_owned()],
            max_age: self.settings.audit_max_age,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: self.settings.replicas,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        }
    }

    /// The invalidation stream, created when missing by rpc nodes; frontends may only look
    /// it up (their credential cannot create it).
    async fn inval_stream(&self) -> Result<stream::Stream, String> {
        let got = match self.role() {
            Role::Rpc => self
                .js
                .get_or_create_stream(self.inval_config())
                .await
                .map_err(|e| e.to_string()),
            Role::Frontend => self
                .js
                .get_stream(INVAL_STREAM)
                .await
                .map_err(|e| e.to_string()),
        };
        got.map_err(|e| format!("stream {INVAL_STREAM}: {e}"))
    }

    /// Makes sure the invalidation stream exists before the first publish (rpc nodes).
    async fn ensure_inval(&self) -> Result<(), String> {
        let mut ready = self.inval_ready.lock().await;
        if !*ready && self.role() == Role::Rpc {
            self.inval_stream().await?;
            *ready = true;
        }
        Ok(())
    }

    async fn ensure_audit(&self) -> Result<(), String> {
        let mut ready = self.audit_ready.lock().await;
        if !*ready {
            self.js
                .get_or_create_stream(self.audit_config())
                .await
                .map_err(|e| format!("stream {AUDIT_STREAM}: {e}"))?;
            *ready = true;
        }
        Ok(())
    }

    /// The heartbeat bucket, created by rpc nodes; frontends only write their key into it.
    async fn ensure_nodes(&self) -> Result<(), String> {
        let mut ready = self.nodes_ready.lock().await;
        if *ready || self.role() != Role::Rpc {
            return Ok(());
        }
        if self.js.get_key_value(NODES_BUCKET).await.is_err() {
            self.js
                .create_key_value(jetstream::kv::Config {
                    bucket: NODES_BUCKET.to_owned(),
                    history: 1,
                    max_age: crate::BEAT_TTL,
                    num_replicas: self.settings.replicas,
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("bucket {NODES_BUCKET}: {e}"))?;
        }
        *ready = true;
        Ok(())
    }

    /// Deletes a consumer we no longer read, in the background; if that fails the server
    /// removes it after its inactivity threshold anyway.
    fn forget_consumer(&self, stream: &'static str, name: String) {
        let js = self.js.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                js.delete_consumer_from_stream(&name, stream),
            )
            .await;
        });
    }

    /// Waits until connected; false if the sink's consumer went away meanwhile.
    async fn wait_connected(&self, epoch: &mut watch::Receiver<u64>, sink: &Sink) -> bool {
        loop {
            epoch.borrow_and_update();
            if self.client.connection_state() == State::Connected {
                return true;
            }
            tokio::select! {
                r = epoch.changed() => if r.is_err() { return false },
                () = sink.closed() => return false,
                // The event may have fired before we looked; look again now and then.
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    async fn run_subscriber(self: Arc<Self>, sink: Sink) {
        let mut epoch = self.epoch.clone();
        // The stream sequence of the last message delivered (or skipped as unreadable).
        let mut pos: Option<u64> = None;
        let mut attempt = 0;
        loop {
            self.shared.set_synced(false);
            if !self.wait_connected(&mut epoch, &sink).await {
                return;
            }
            let stream = match self.inval_stream().await {
                Ok(s) => s,
                Err(e) => {
                    self.shared.error(&e);
                    tokio::select! {
                        () = tokio::time::sleep(backoff(attempt)) => {}
                        () = sink.closed() => return,
                    }
                    attempt += 1;
                    continue;
                }
            };
            let state = stream.cached_info().state.clone();
            let mut replay_until = 0;
            let start = match pos {
                None => {
                    // A fresh subscriber starts at "now".
                    if !sink.gap(Gap::Start).await {
                        return;
                    }
                    state.last_sequence
                }
                Some(p) => {
                    let p = if state.last_sequence < p {
                        // The stream is behind us: recreated, or restored from older data.
                        if !sink.gap(Gap::Reset).await {
                            return;
                        }
                        state.last_sequence
                    } else if state.first_sequence > p + 1 && state.last_sequence > p {
                        if !sink.gap(Gap::Trimmed).await {
                            return;
                        }
                        state.first_sequence - 1
                    } else {
                        p
                    };
                    replay_until = state.last_sequence;
                    p
                }
            };
            pos = Some(start);
            let name = self.next_consumer_name();
            let consumer = stream
                .create_consumer(OrderedConfig {
                    name: Some(name.clone()),
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: start + 1,
                    },
                    ..Default::default()
                })
                .await;
            let messages = match consumer {
                Ok(c) => c.messages().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let mut messages = match messages {
                Ok(m) => m,
                Err(e) => {
                    self.shared
                        .error(format!("consumer on {INVAL_STREAM}: {e}"));
                    tokio::select! {
                        () = tokio::time::sleep(backoff(attempt)) => {}
                        () = sink.closed() => return,
                    }
                    attempt += 1;
                    continue;
                }
            };
            if replay_until <= start {
                self.shared.set_synced(true);
            }
            let mut failed = false;
            loop {
                let next = tokio::select! {
                    m = messages.next() => m,
                    r = epoch.changed() => {
                        if r.is_err() { return }
                        // Reconnected: the consumer may be gone with the old connection
                        // or server; make a new one from our position.
                        break;
                    }
                    () = sink.closed() => {
                        self.forget_consumer(INVAL_STREAM, name);
                        return;
                    }
                };
                let m = match next {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        self.shared.error(format!("reading {INVAL_STREAM}: {e}"));
                        failed = true;
                        break;
                    }
                    None => {
                        failed = true;
                        break;
                    }
                };
                attempt = 0;
                let seq = match m.info() {
                    Ok(i) => i.stream_sequence,
                    Err(e) => {
                        self.shared.error(format!("reading {INVAL_STREAM}: {e}"));
                        continue;
                    }
                };
                let p = pos.unwrap_or(0);
                if seq <= p {
                    // Seen already (a recreated consumer overlapping the old one).
                    continue;
                }
                if seq > p + 1 && !sink.gap(Gap::Trimmed).await {
                    return;
                }
                pos = Some(seq);
                if !sink.payload(&m.payload, seq <= replay_until).await {
                    self.forget_consumer(INVAL_STREAM, name);
                    return;
                }
                if seq >= replay_until {
                    self.shared.set_synced(true);
                }
            }
            drop(messages);
            self.forget_consumer(INVAL_STREAM, name);
            if failed {
                // A consumer that fails as soon as it is made must not spin.
                tokio::select! {
                    () = tokio::time::sleep(backoff(attempt)) => {}
                    () = sink.closed() => return,
                }
                attempt += 1;
            }
        }
    }

    /// Reads `stream` with a throwaway ordered consumer from `deliver`, until caught up or
    /// `max` messages.
    async fn read_all(
        &self,
        stream: &'static str,
        deliver: DeliverPolicy,
        filter: &str,
        max: usize,
    ) -> Result<Vec<jetstream::Message>, BusError> {
        let unavailable = |e: String| BusError::Unavailable(format!("{stream}: {e}"));
        let s = self
            .js
            .get_stream(stream)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let name = self.next_consumer_name();
        let consumer = s
            .create_consumer(OrderedConfig {
                name: Some(name.clone()),
                deliver_policy: deliver,
                filter_subject: filter.to_owned(),
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let pending = consumer.cached_info().num_pending;
        let mut out = Vec::new();
        if pending > 0 && max > 0 {
            let mut msgs = consumer
                .messages()
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            while out.len() < max {
                match tokio::time::timeout(READ_TIMEOUT, msgs.next()).await {
                    Ok(Some(Ok(m))) => {
                        let caught_up = m.info().map(|i| i.pending == 0).unwrap_or(false);
                        out.push(m);
                        if caught_up {
                            break;
                        }
                    }
                    Ok(Some(Err(e))) => return Err(unavailable(e.to_string())),
                    Ok(None) => break,
                    Err(_) => return Err(unavailable("timed out reading".to_owned())),
                }
            }
        }
        self.forget_consumer(stream, name);
        Ok(out)
    }
}

fn on_event(shared: &Shared, epoch: &watch::Sender<u64>, event: async_nats::Event) {
    use async_nats::Event;
    match event {
        Event::Connected => {
            shared.set_connected(true);
            epoch.send_modify(|e| *e += 1);
        }
        Event::Disconnected => shared.set_connected(false),
        Event::ServerError(e) => {
            let text = e.to_string();
            if text.to_ascii_lowercase().contains("permissions violation") {
                shared.metrics.permission_denied();
                tracing::error!(error = %text, "the NATS server refused this node's request: its credential lacks a permission");
            }
            shared.error(format!("NATS server: {text}"));
        }
        Event::ClientError(e) => shared.error(format!("NATS client: {e}")),
        Event::SlowConsumer(_) | Event::LameDuckMode | Event::Draining | Event::Closed => {
            shared.error(format!("NATS: {event}"));
        }
    }
}

impl Backend for NatsBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Nats
    }

    fn publish<'a>(
        &'a self,
        msg: &'a BusMessage,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        async move {
            self.ensure_inval().await?;
            let publish = jetstream::message::PublishMessage::build()
                .payload(Bytes::from(msg.to_json()))
                // A retry of a publish whose ack was lost is then stored once.
                .message_id(id);
            let ack = self
                .js
                .send_publish(inval_subject(msg.what.kind()), publish)
                .await
                .map_err(|e| e.to_string())?;
            match tokio::time::timeout(ACK_PATIENCE, ack).await {
                Err(_) => Err(format!("no acknowledgement within {ACK_PATIENCE:?}")),
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => {
                    // The stream may be gone (a server that lost its data): look again.
                    *self.inval_ready.lock().await = false;
                    Err(e.to_string())
                }
            }
        }
        .boxed()
    }

    fn subscribe(self: Arc<Self>, sink: Sink) -> BoxFuture<'static, ()> {
        self.run_subscriber(sink).boxed()
    }

    fn audit<'a>(&'a self, batch: Vec<AuditLine>) -> Option<BoxFuture<'a, u64>> {
        Some(
            async move {
                let n = batch.len() as u64;
                let fail_all = |why: &str| {
                    self.shared.error(format!("audit: {why}"));
                    for _ in 0..n {
                        self.shared.metrics.dropped(DropReason::Unavailable);
                    }
                    n
                };
                // Down: drop now rather than queue behind a reconnect.
                if self.client.connection_state() != State::Connected {
                    return fail_all("not connected");
                }
                if let Err(e) = self.ensure_audit().await {
                    return fail_all(&e);
                }
                let mut acks = Vec::with_capacity(batch.len());
                let mut failed = 0;
                for item in batch {
                    let publish = jetstream::message::PublishMessage::build()
                        .payload(item.line)
                        .message_id(&item.id);
                    match self.js.send_publish(AUDIT_SUBJECT, publish).await {
                        Ok(ack) => acks.push(ack),
                        Err(e) => {
                            failed += 1;
                            self.shared.error(format!("audit: {e}"));
                        }
                    }
                }
                for ack in acks {
                    match ack.await {
                        Ok(a) if a.duplicate => self.shared.metrics.audit(AuditOutcome::Duplicate),
                        Ok(_) => self.shared.metrics.audit(AuditOutcome::Stored),
                        Err(e) => {
                            failed += 1;
                            self.shared.error(format!("audit: {e}"));
                        }
                    }
                }
                if failed > 0 {
                    *self.audit_ready.lock().await = false;
                    for _ in 0..failed {
                        self.shared.metrics.dropped(DropReason::Unavailable);
                    }
                }
                failed
            }
            .boxed(),
        )
    }

    fn beat<'a>(&'a self, beat: &'a NodeBeat) -> BoxFuture<'a, Result<(), String>> {
        async move {
            self.ensure_nodes().await?;
            // A plain JetStream publish to our own key: all a frontend's credential allows
            // (the KV client would look the bucket up first).
            let ack = self
                .js
                .publish(node_key_subject(&beat.name), Bytes::from(beat.to_json()))
                .await
                .map_err(|e| e.to_string())?;
            ack.await
                .map(drop)
                .map_err(|e| format!("{e} (bucket {NODES_BUCKET} missing? rpc nodes create it)"))
        }
        .boxed()
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeBeat>, BusError>> {
        async move {
            self.ensure_nodes().await.map_err(BusError::Unavailable)?;
            let msgs = self
                .read_all(
                    NODES_STREAM,
                    DeliverPolicy::LastPerSubject,
                    // The server wants a filter with last-per-subject.
                    &format!("$KV.{NODES_BUCKET}.>"),
                    10_000,
                )
                .await?;
            // Deleted or purged keys have empty payloads: not beats.
            Ok(msgs
                .iter()
                .filter_map(|m| NodeBeat::parse(&m.payload).ok())
                .collect())
        }
        .boxed()
    }

    fn read_audit(
        &self,
        after: u64,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<AuditRecord>, BusError>> {
        async move {
            let msgs = self
                .read_all(
                    AUDIT_STREAM,
                    DeliverPolicy::ByStartSequence {
                        start_sequence: after + 1,
                    },
                    "",
                    max,
                )
                .await?;
            Ok(msgs
                .into_iter()
                .filter_map(|m| {
                    let seq = m.info().ok()?.stream_sequence;
                    let id = m
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("Nats-Msg-Id"))
                        .map(|v| v.as_str().to_owned())
                        .unwrap_or_default();
                    Some(AuditRecord {
                        seq,
                        id,
                        line: m.payload.clone(),
                    })
                })
                .collect())
        }
        .boxed()
    }
}
