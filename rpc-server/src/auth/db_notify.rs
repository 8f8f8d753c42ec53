//! Changes announced by the database itself, so that a revoke reaches every running nexusd
//! without Redis, whichever process made it (nexusd, the CLI, an operator's SQL).
//!
//! Triggers (migration `20261201000001_invalidation_notify`) announce each token, grant or
//! zone change in the transaction that makes it: on Postgres as `NOTIFY nexus_invalidate`
//! with the invalidation as JSON, on SQLite as a row of `nexus_invalidations`, which nexusd
//! polls (`PRAGMA data_version` first, so an idle database costs one pragma per poll).
//! Notifications sent while a listener is disconnected are lost, so a listener drops the
//! whole cache each time it (re)connects: fail closed.
//!
//! [`ChangeWatch`] is the other side, for short-lived writers such as the CLI: it confirms
//! that the database announced what they changed.

use super::invalidation::{Invalidation, InvalidationBus};
use crate::metrics::Metrics;
use sqlx::postgres::PgListener;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The Postgres channel the triggers notify.
pub const CHANNEL: &str = "nexus_invalidate";
/// How often nexusd looks for SQLite changes: a revoke made by another process on the
/// embedded database is applied within this (plus one query).
pub const SQLITE_POLL: Duration = Duration::from_millis(25);
/// Longest wait for a listener connection before retrying.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((50u64 << attempt.min(5)).min(1000))
}

/// Applies one announced change; what cannot be read is treated as "anything changed".
fn apply(bus: &InvalidationBus, metrics: Option<&Metrics>, what: Option<Invalidation>) {
    bus.apply_local(&what.unwrap_or(Invalidation::All));
    if let Some(m) = metrics {
        m.invalidations.with_label_values(&["received"]).inc();
    }
}

/// Starts applying the database's announcements to `bus`. The first connection is made
/// before this returns (bounded), so a server that is up is already listening; after
/// that, losses are retried in the background for as long as the process lives.
pub async fn start(url: &str, bus: Arc<InvalidationBus>, metrics: Option<Metrics>) {
    let url = url.to_owned();
    if is_postgres(&url) {
        let first = pg_listen(&url).await.ok();
        if first.is_none() {
            tracing::warn!("cannot listen for database changes yet; retrying in the background");
        }
        tokio::spawn(pg_loop(url, bus, metrics, first));
    } else {
        let first = LiteWatch::open(&url).await.ok();
        if first.is_none() {
            tracing::warn!("cannot watch the database for changes yet; retrying in the background");
        }
        tokio::spawn(lite_loop(url, bus, metrics, first));
    }
}

async fn pg_listen(url: &str) -> Result<PgListener, sqlx::Error> {
    let connect = async {
        let mut l = PgListener::connect(url).await?;
        // A lost connection surfaces as `Ok(None)`; reconnecting is ours to do (and to
        // follow with a cache drop).
        l.eager_reconnect(false);
        l.listen(CHANNEL).await?;
        Ok(l)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
}

async fn pg_loop(
    url: String,
    bus: Arc<InvalidationBus>,
    metrics: Option<Metrics>,
    mut listener: Option<PgListener>,
) {
    let mut attempt = 0u32;
    loop {
        let mut l = match listener.take() {
            // Listening since before the server answered anything: nothing was missed.
            Some(l) => l,
            None => match pg_listen(&url).await {
                Ok(l) => {
                    tracing::info!("listening for database changes again");
                    // Changes made while nobody listened were not announced to us.
                    bus.apply_local(&Invalidation::All);
                    l
                }
                Err(_) => {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt = attempt.saturating_add(1);
                    continue;
                }
            },
        };
        attempt = 0;
        while let Ok(Some(n)) = l.try_recv().await {
            apply(
                &bus,
                metrics.as_ref(),
                serde_json::from_str(n.payload()).ok(),
            );
        }
        tracing::warn!("lost the database change listener; reconnecting");
    }
}

/// A dedicated SQLite connection (`data_version` is per connection) and the last change
/// applied.
struct LiteWatch {
    conn: SqliteConnection,
    version: Option<i64>,
    seq: i64,
}

impl LiteWatch {
    async fn open(url: &str) -> Result<Self, sqlx::Error> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(false)
            .busy_timeout(Duration::from_secs(2));
        let mut conn = SqliteConnection::connect_with(&opts).await?;
        let seq = max_seq(&mut conn).await?;
        Ok(Self {
            conn,
            version: None,
            seq,
        })
    }

    /// Changes committed since the last call, or `None` when some may have been missed.
    async fn changes(&mut self) -> Result<Option<Vec<Invalidation>>, sqlx::Error> {
        let v: i64 = sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&mut self.conn)
            .await?;
        if self.version == Some(v) {
            return Ok(Some(Vec::new()));
        }
        self.version = Some(v);
        let rows = sqlx::query(
            "SELECT seq, kind, key_id, zone_id, subject_id FROM nexus_invalidations WHERE seq > ? ORDER BY seq",
        )
        .bind(self.seq)
        .fetch_all(&mut self.conn)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(Some(Vec::new()));
        };
        // Sequence numbers are consecutive; a hole means pruned rows we never saw.
        let complete = first.try_get::<i64, _>("seq")? == self.seq + 1;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            self.seq = r.try_get("seq")?;
            out.push(lite_row(r));
        }
        Ok(complete.then_some(out))
    }
}

fn lite_row(r: &sqlx::sqlite::SqliteRow) -> Invalidation {
    let kind: String = r.try_get("kind").unwrap_or_default();
    match kind.as_str() {
        "token" => match r.try_get::<uuid::Uuid, _>("key_id") {
            Ok(key_id) => Invalidation::Token { key_id },
            Err(_) => Invalidation::All,
        },
        "zone" => match r.try_get::<String, _>("zone_id") {
            Ok(zone_id) => Invalidation::Zone { zone_id },
            Err(_) => Invalidation::All,
        },
        "rebac" => Invalidation::Rebac,
        "subject" => match r.try_get::<String, _>("subject_id") {
            Ok(subject_id) => Invalidation::Subject { subject_id },
            Err(_) => Invalidation::All,
        },
        _ => Invalidation::All,
    }
}

async fn max_seq(conn: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM nexus_invalidations")
        .fetch_one(conn)
        .await
}

async fn lite_loop(
    url: String,
    bus: Arc<InvalidationBus>,
    metrics: Option<Metrics>,
    mut watch: Option<LiteWatch>,
) {
    let mut tick = tokio::time::interval(SQLITE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = 0u32;
    loop {
        tick.tick().await;
        let Some(w) = watch.as_mut() else {
            if let Ok(w) = LiteWatch::open(&url).await {
                tracing::info!("watching the database for changes again");
                watch = Some(w);
                failures = 0;
                bus.apply_local(&Invalidation::All);
            }
            continue;
        };
        match w.changes().await {
            Ok(Some(list)) => {
                for what in list {
                    apply(&bus, metrics.as_ref(), Some(what));
                }
            }
            Ok(None) => apply(&bus, metrics.as_ref(), None),
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(error = %e, "cannot read database changes; reopening");
                }
                watch = None;
            }
        }
    }
}

/// For a process that changes tokens or zones and then exits (the CLI): started before
/// the change, it confirms afterwards that the database announced it to running servers.
pub struct ChangeWatch(Watch);

enum Watch {
    Pg(Box<PgListener>),
    /// The change log's position before the change.
    Lite {
        conn: SqliteConnection,
        since: i64,
    },
}

impl std::fmt::Debug for ChangeWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Watch::Pg(_) => "ChangeWatch(postgres)",
            Watch::Lite { .. } => "ChangeWatch(sqlite)",
        })
    }
}

impl ChangeWatch {
    /// Starts watching; fails when the database cannot announce changes (unreachable, or
    /// not migrated to a schema with the triggers).
    pub async fn start(url: &str) -> Result<Self, sqlx::Error> {
        if is_postgres(url) {
            let mut l = pg_listen(url).await?;
            // Without the triggers nothing would ever be announced.
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'nexus_invalidate_token_update'",
            )
            .fetch_one(&mut l)
            .await?;
            if n == 0 {
                return Err(sqlx::Error::Configuration(
                    "the database has no change notification triggers: run `nexus hub migrate`"
                        .into(),
                ));
            }
            Ok(Self(Watch::Pg(Box::new(l))))
        } else {
            let w = LiteWatch::open(url).await?;
            Ok(Self(Watch::Lite {
                conn: w.conn,
                since: w.seq,
            }))
        }
    }

    /// True when the database announced every change in `expected` within `timeout`.
    pub async fn confirm(&mut self, expected: &[Invalidation], timeout: Duration) -> bool {
        let mut missing: Vec<&Invalidation> = expected.iter().collect();
        let wait = async {
            match &mut self.0 {
                Watch::Pg(l) => {
                    while !missing.is_empty() {
                        let Ok(Some(n)) = l.try_recv().await else {
                            return false;
                        };
                        if let Ok(what) = serde_json::from_str::<Invalidation>(n.payload()) {
                            missing.retain(|m| **m != what);
                        }
                    }
                    true
                }
                Watch::Lite { conn, since } => {
                    let Ok(rows) = sqlx::query(
                        "SELECT seq, kind, key_id, zone_id, subject_id FROM nexus_invalidations WHERE seq > ?",
                    )
                    .bind(*since)
                    .fetch_all(conn)
                    .await
                    else {
                        return false;
                    };
                    for r in &rows {
                        let what = lite_row(r);
                        missing.retain(|m| **m != what);
                    }
                    missing.is_empty()
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }
}
