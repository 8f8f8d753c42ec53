//! The Redis backend: invalidations on the Redis Stream `nexus:bus`, heartbeats as expiring
//! keys. No audit stream (the frontend keeps its own Redis audit writer).
//!
//! A subscriber reads with `XREAD BLOCK` from the last id it delivered. After a reconnect
//! it reads on from that id, so entries added while it was away are replayed; `XINFO
//! STREAM` tells whether entries after that id were trimmed first (`max-deleted-entry-id`,
//! Redis 7), which is a [`Gap`]. Replies are taken apart by hand rather than through the
//! client's typed stream replies, so one hostile entry (binary field names, extra fields)
//! is one refused message, not a reply that fails to parse forever.

use crate::subjects::{REDIS_FIELD, REDIS_NODE_PREFIX, REDIS_STREAM, REDIS_STREAM_MAXLEN};
use crate::{AuditLine, AuditRecord, Backend, BackendKind, BusError, Gap, Shared, Sink, backoff};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use nexus_wire::bus::{BusMessage, NodeBeat};
use redis::Value;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use std::sync::Arc;
use std::time::Duration;

/// How long one `XREAD` blocks; the connection's response timeout is a little longer, so a
/// silently dead connection is noticed within about this long.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries per `XREAD`.
const COUNT: usize = 256;
/// Timeouts of the publishing connection: a publish waits at most this for Redis.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct RedisBackend {
    client: redis::Client,
    /// Publishing and heartbeats; made on first use so a node starts while Redis is down.
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    shared: Arc<Shared>,
}

/// A stream entry id (`<ms>-<seq>`), ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct EntryId(u64, u64);

impl EntryId {
    const ZERO: Self = Self(0, 0);

    fn parse(s: &str) -> Option<Self> {
        let (ms, seq) = s.split_once('-')?;
        Some(Self(ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// What `XINFO STREAM` says about where the stream is.
#[derive(Debug, Default)]
struct StreamState {
    exists: bool,
    last_generated: Option<EntryId>,
    /// Redis ≥ 7: the highest id ever removed by `XDEL` (trimming does not set it).
    max_deleted: Option<EntryId>,
    /// Redis ≥ 7: how many entries were ever added.
    entries_added: Option<u64>,
    length: u64,
    first_entry: Option<EntryId>,
}

impl StreamState {
    /// Entries ever removed (trimmed or deleted), when Redis tells.
    fn removed(&self) -> Option<u64> {
        self.entries_added.map(|a| a.saturating_sub(self.length))
    }
}

impl RedisBackend {
    pub(crate) fn new(url: &str, shared: Arc<Shared>) -> Result<Self, BusError> {
        let client = redis::Client::open(url)
            .map_err(|e| BusError::Config(format!("NEXUS_BUS_URL: {e}")))?;
        Ok(Self {
            client,
            conn: tokio::sync::Mutex::new(None),
            shared,
        })
    }

    async fn manager(&self) -> Result<ConnectionManager, String> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let c = self
            .client
            .get_connection_manager_with_config(cfg)
            .await
            .map_err(|e| self.failed(&e))?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Runs `cmd` on the shared connection, keeping health up to date.
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        let mut c = self.manager().await?;
        match cmd.query_async::<T>(&mut c).await {
            Ok(v) => {
                self.shared.set_connected(true);
                Ok(v)
            }
            Err(e) => Err(self.failed(&e)),
        }
    }

    /// Notes `e`; a connection failure (rather than a refused command) marks the bus down.
    fn failed(&self, e: &redis::RedisError) -> String {
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
        {
            self.shared.set_connected(false);
        }
        let s = e.to_string();
        self.shared.error(&s);
        s
    }

    /// A connection of the subscriber's own: a blocking `XREAD` holds it.
    async fn reader(&self) -> Result<MultiplexedConnection, String> {
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(BLOCK + OP_TIMEOUT));
        self.client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(|e| self.failed(&e))
    }

    async fn run_subscriber(self: Arc<Self>, sink: Sink) {
        // The last id delivered (or skipped as unreadable); `None` before the first connect.
        let mut pos: Option<EntryId> = None;
        // Entries ever added up to `pos` (see `gap_on_resume`).
        let mut ordinal = 0u64;
        let mut attempt = 0;
        while !sink.is_closed() {
            let mut conn = match self.reader().await {
                Ok(c) => c,
                Err(_) => {
                    tokio::select! {
                        () = tokio::time::sleep(backoff(attempt)) => {}
                        () = sink.closed() => return,
                    }
                    attempt += 1;
                    continue;
                }
            };
            let state = match stream_state(&mut conn).await {
                Ok(s) => s,
                Err(e) => {
                    self.failed(&e);
                    tokio::select! {
                        () = tokio::time::sleep(backoff(attempt)) => {}
                        () = sink.closed() => return,
                    }
                    attempt += 1;
                    continue;
                }
            };
            attempt = 0;
            self.shared.set_connected(true);
            let last = state.last_generated.unwrap_or(EntryId::ZERO);
            // Entries up to the stream's end as found now were added while we were away.
            let mut replay_until = EntryId::ZERO;
            match pos {
                None => {
                    // A fresh subscriber starts at "now".
                    pos = Some(last);
                    ordinal = state.entries_added.unwrap_or(0);
                    if !sink.gap(Gap::Start).await {
                        return;
                    }
                }
                Some(p) => {
                    if let Some(why) = gap_on_resume(p, ordinal, &state) {
                        if !sink.gap(why).await {
                            return;
                        }
                        if why == Gap::Reset {
                            pos = Some(last);
                            ordinal = state.entries_added.unwrap_or(0);
                        } else {
                            // Reading on from `pos` starts at the oldest entry left.
                            ordinal = state.removed().unwrap_or(0);
                        }
                    }
                    replay_until = last;
                }
            }
            let mut behind = false;
            while let Some(p) = pos {
                // Everything missed is handed over: back on the bus.
                if p >= replay_until {
                    self.shared.set_synced(true);
                }
                // A full batch means we are behind: check nothing after us was trimmed
                // while we read (a connected but slow reader can fall 100k entries behind).
                if behind {
                    match stream_state(&mut conn).await {
                        Ok(s) => {
                            if gap_on_resume(p, ordinal, &s) == Some(Gap::Trimmed) {
                                ordinal = s.removed().unwrap_or(0);
                                if !sink.gap(Gap::Trimmed).await {
                                    return;
                                }
                            }
                        }
                        Err(e) => {
                            self.failed(&e);
                            break;
                        }
                    }
                }
                let mut cmd = redis::cmd("XREAD");
                cmd.arg("COUNT")
                    .arg(COUNT)
                    .arg("BLOCK")
                    .arg(BLOCK.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(REDIS_STREAM)
                    .arg(p.to_string());
                let read = cmd.query_async::<Value>(&mut conn);
                let reply = tokio::select! {
                    r = read => r,
                    () = sink.closed() => return,
                };
                let entries = match reply {
                    Ok(v) => xread_entries(v),
                    Err(e) => {
                        self.failed(&e);
                        break;
                    }
                };
                self.shared.set_connected(true);
                behind = entries.len() >= COUNT;
                for (id, payload) in entries {
                    if pos.is_some_and(|p| id <= p) {
                        continue;
                    }
                    pos = Some(id);
                    ordinal += 1;
                    let delivered = match payload {
                        Some(bytes) => sink.payload(&bytes, id <= replay_until).await,
                        None => {
                            self.shared
                                .metrics
                                .dropped(crate::metrics::DropReason::Malformed);
                            sink.gap(Gap::Unreadable).await
                        }
                    };
                    if !delivered {
                        return;
                    }
                }
            }
            self.shared.set_connected(false);
            // Not straight back: a reply that keeps failing must not spin.
            tokio::select! {
                () = tokio::time::sleep(backoff(0)) => {}
                () = sink.closed() => return,
            }
        }
    }
}

/// Whether resuming after `pos` misses something, from the stream's state. `ordinal`
/// counts the entries ever added up to and including `pos`.
///
/// Trimming (`MAXLEN`, `XTRIM`) removes the oldest entries, so with Redis 7's
/// `entries-added` it is exact: more entries removed than existed up to our position means
/// some after it are gone. `XDEL` can remove any entry and is caught by
/// `max-deleted-entry-id`. Older Redis only tells us that our own last entry is gone.
fn gap_on_resume(pos: EntryId, ordinal: u64, s: &StreamState) -> Option<Gap> {
    if !s.exists {
        // The key is gone: deleted, or Redis restarted without its data.
        return (pos != EntryId::ZERO).then_some(Gap::Reset);
    }
    if s.last_generated.is_some_and(|l| l < pos) {
        return Some(Gap::Reset);
    }
    let trimmed = match s.removed() {
        Some(removed) => removed > ordinal || s.max_deleted.is_some_and(|d| d > pos),
        None => s.first_entry.is_some_and(|f| f > pos),
    };
    trimmed.then_some(Gap::Trimmed)
}

async fn stream_state(conn: &mut MultiplexedConnection) -> Result<StreamState, redis::RedisError> {
    let reply = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(REDIS_STREAM)
        .query_async::<Value>(conn)
        .await;
    let v = match reply {
        Ok(v) => v,
        Err(e) if e.to_string().contains("no such key") => return Ok(StreamState::default()),
        Err(e) => return Err(e),
    };
    let mut s = StreamState {
        exists: true,
        ..StreamState::default()
    };
    for (k, v) in pairs(v) {
        match text(&k).as_deref() {
            Some("last-generated-id") => {
                s.last_generated = text(&v).and_then(|t| EntryId::parse(&t))
            }
            Some("max-deleted-entry-id") => {
                s.max_deleted = text(&v).and_then(|t| EntryId::parse(&t))
            }
            Some("entries-added") => s.entries_added = int(&v),
            Some("length") => s.length = int(&v).unwrap_or(0),
            Some("first-entry") => {
                s.first_entry = match v {
                    Value::Array(e) => e.first().and_then(text).and_then(|t| EntryId::parse(&t)),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    Ok(s)
}

/// Key/value pairs of a RESP2 flat array or a RESP3 map.
fn pairs(v: Value) -> Vec<(Value, Value)> {
    match v {
        Value::Map(m) => m,
        Value::Array(a) => {
            let mut it = a.into_iter();
            let mut out = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((k, v));
            }
            out
        }
        _ => Vec::new(),
    }
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        _ => text(v)?.parse().ok(),
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The entries of an `XREAD` reply on one stream: id and the `m` field's bytes, or `None`
/// for an entry that is not exactly one `m` field.
fn xread_entries(v: Value) -> Vec<(EntryId, Option<Vec<u8>>)> {
    let streams = match v {
        Value::Nil => return Vec::new(),
        Value::Map(m) => m.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
        Value::Array(a) => a
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => kv.pop(),
                _ => None,
            })
            .collect(),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for entries in streams {
        let Value::Array(entries) = entries else {
            continue;
        };
        for e in entries {
            let Value::Array(mut e) = e else { continue };
            if e.len() != 2 {
                continue;
            }
            let fields = e.pop();
            let Some(id) = e.first().and_then(text).and_then(|t| EntryId::parse(&t)) else {
                continue;
            };
            let payload = match fields {
                Some(Value::Array(f)) if f.len() == 2 => match (&f[0], &f[1]) {
                    (k, Value::BulkString(b)) if text(k).as_deref() == Some(REDIS_FIELD) => {
                        Some(b.clone())
                    }
                    _ => None,
                },
                Some(Value::Map(f)) if f.len() == 1 => match &f[0] {
                    (k, Value::BulkString(b)) if text(k).as_deref() == Some(REDIS_FIELD) => {
                        Some(b.clone())
                    }
                    _ => None,
                },
                _ => None,
            };
            out.push((id, payload));
        }
    }
    out
}

impl Backend for RedisBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Redis
    }

    fn publish<'a>(
        &'a self,
        msg: &'a BusMessage,
        _id: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        async move {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(REDIS_STREAM)
                .arg("MAXLEN")
                .arg("~")
                .arg(REDIS_STREAM_MAXLEN)
                .arg("*")
                .arg(REDIS_FIELD)
                .arg(msg.to_json());
            self.query::<Value>(&cmd).await.map(drop)
        }
        .boxed()
    }

    fn subscribe(self: Arc<Self>, sink: Sink) -> BoxFuture<'static, ()> {
        self.run_subscriber(sink).boxed()
    }

    fn audit<'a>(&'a self, _batch: Vec<AuditLine>) -> Option<BoxFuture<'a, u64>> {
        None
    }

    fn beat<'a>(&'a self, beat: &'a NodeBeat) -> BoxFuture<'a, Result<(), String>> {
        async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(format!("{REDIS_NODE_PREFIX}{}", beat.name))
                .arg(beat.to_json())
                .arg("EX")
                .arg(crate::BEAT_TTL.as_secs());
            self.query::<Value>(&cmd).await.map(drop)
        }
        .boxed()
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeBeat>, BusError>> {
        async move {
            let mut keys: Vec<String> = Vec::new();
            let mut cursor = 0u64;
            // Bounded: a cluster has a handful of nodes; stop at a sane number of rounds.
            for _ in 0..1000 {
                let mut cmd = redis::cmd("SCAN");
                cmd.arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{REDIS_NODE_PREFIX}*"))
                    .arg("COUNT")
                    .arg(1000);
                let (next, batch): (u64, Vec<String>) =
                    self.query(&cmd).await.map_err(BusError::Unavailable)?;
                keys.extend(batch);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            keys.sort();
            keys.dedup();
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let mut cmd = redis::cmd("MGET");
            cmd.arg(&keys);
            let values: Vec<Option<Vec<u8>>> =
                self.query(&cmd).await.map_err(BusError::Unavailable)?;
            Ok(values
                .into_iter()
                .flatten()
                .filter_map(|v| NodeBeat::parse(&v).ok())
                .collect())
        }
        .boxed()
    }

    fn read_audit(
        &self,
        _after: u64,
        _max: usize,
    ) -> BoxFuture<'_, Result<Vec<AuditRecord>, BusError>> {
        async { Err(BusError::Unsupported("the audit stream")) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(
        exists: bool,
        last: (u64, u64),
        added: Option<u64>,
        length: u64,
        first: Option<(u64, u64)>,
    ) -> StreamState {
        StreamState {
            exists,
            last_generated: Some(EntryId(last.0, last.1)),
            max_deleted: None,
            entries_added: added,
            length,
            first_entry: first.map(|(a, b)| EntryId(a, b)),
        }
    }

    #[test]
    fn resume_gaps() {
        // We saw 10 entries; our last is (100, 0).
        let p = EntryId(100, 0);
        // 20 added, 15 left: 5 removed, all at or before our position.
        assert_eq!(
            gap_on_resume(p, 10, &state(true, (200, 0), Some(20), 15, Some((60, 0)))),
            None
        );
        // 10 removed: exactly up to our position.
        assert_eq!(
            gap_on_resume(p, 10, &state(true, (200, 0), Some(20), 10, Some((101, 0)))),
            None
        );
        // 11 removed: one after us.
        assert_eq!(
            gap_on_resume(p, 10, &state(true, (200, 0), Some(20), 9, Some((150, 0)))),
            Some(Gap::Trimmed)
        );
        // Emptied.
        assert_eq!(
            gap_on_resume(p, 10, &state(true, (200, 0), Some(20), 0, None)),
            Some(Gap::Trimmed)
        );
        // An XDEL after our position.
        let mut s = state(true, (200, 0), Some(20), 19, Some((1, 0)));
        s.max_deleted = Some(EntryId(150, 0));
        assert_eq!(gap_on_resume(p, 10, &s), Some(Gap::Trimmed));
        s.max_deleted = Some(EntryId(50, 0));
        assert_eq!(gap_on_resume(p, 10, &s), None);
        // Behind us, or gone.
        assert_eq!(
            gap_on_resume(p, 10, &state(true, (90, 0), Some(3), 3, None)),
            Some(Gap::Reset)
        );
        assert_eq!(
            gap_on_resume(p, 10, &StreamState::default()),
            Some(Gap::Reset)
        );
        assert_eq!(
            gap_on_resume(EntryId::ZERO, 0, &StreamState::default()),
            None
        );
        // Redis 6: only the first entry tells.
        assert_eq!(
            gap_on_resume(p, 10, &state(true, (200, 0), None, 5, Some((100, 0)))),
            None
        );
        assert_eq!(
            gap_on_resume(p, 10, &state(true, (200, 0), None, 5, Some((150, 0)))),
            Some(Gap::Trimmed)
        );
    }

    #[test]
    fn entry_ids() {
        assert_eq!(
            EntryId::parse("1700000000000-3"),
            Some(EntryId(1_700_000_000_000, 3))
        );
        assert!(EntryId(1, 5) < EntryId(2, 0));
        assert_eq!(EntryId::parse("x-1"), None);
        assert_eq!(EntryId::parse("1"), None);
        assert_eq!(EntryId(5, 2).to_string(), "5-2");
    }

    #[test]
    fn xread_replies() {
        let bulk = |s: &[u8]| Value::BulkString(s.to_vec());
        let entry = |id: &str, fields: Vec<Value>| {
            Value::Array(vec![bulk(id.as_bytes()), Value::Array(fields)])
        };
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(b"nexus:bus"),
            Value::Array(vec![
                entry("1-0", vec![bulk(b"m"), bulk(b"{}")]),
                entry("1-1", vec![bulk(b"x"), bulk(b"{}")]),
                entry("1-2", vec![bulk(b"m"), bulk(b"a"), bulk(b"n"), bulk(b"b")]),
                entry("1-3", vec![bulk(b"\xff"), bulk(b"a")]),
            ]),
        ])]);
        assert_eq!(
            xread_entries(reply),
            vec![
                (EntryId(1, 0), Some(b"{}".to_vec())),
                (EntryId(1, 1), None),
                (EntryId(1, 2), None),
                (EntryId(1, 3), None),
            ]
        );
        assert!(xread_entries(Value::Nil).is_empty());
    }
}
