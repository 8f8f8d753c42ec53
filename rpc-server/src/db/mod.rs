//! The store: tokens, zones, subjects and relationship tuples on Postgres (production) or SQLite (embedded).
//!
//! One set of queries serves both dialects: every method body is written once and expanded
//! for each pool by [`with_pool!`], so both backends are type-checked against the same SQL
//! and run the same store tests. Times are decided in Rust and bound as parameters, never
//! taken from the database clock, so both dialects agree on them.

mod files;
mod local;
mod oauth;
mod subjects;
mod tokens;
mod tuples;
mod zones;

pub use files::{
    BlobRow, CollectorLock, FsError, FsProbeRow, FsRow, FsRowBytes, FsStats, ImportItem,
    TextFilter, Written, parent_of,
};
pub use local::{LocalUserRecord, NewLocalUser, RefreshUse, SessionRecord, SigningKeyRecord};
pub use oauth::{
    CodeUse, NewCode, NewRefresh, OAuthClientRecord, OAuthCodeRecord, OAuthRefreshRecord,
    OAuthRefreshUse, join_groups, split_groups,
};
pub use subjects::{NewSubject, SubjectDeleted, SubjectRecord};
pub use tokens::{NewToken, OAuthBinding, SubjectBinding, TokenRecord};
pub use tuples::{
    MAX_CLOSURE_EDGES, MAX_LISTED, MAX_TUPLES_PER_IDENTITY, TupleFilter, TupleRecord,
};
pub use zones::ZoneRecord;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

#[derive(Debug, Clone)]
enum Pool {
    Pg(PgPool),
    Lite(SqlitePool),
}

/// A transaction that will write. On SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`), waiting out the busy timeout for another writer: a deferred transaction that
/// read first and then writes fails at once (`SQLITE_BUSY`) when another connection wrote
/// meanwhile, which concurrent file writes and token changes would make routine.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send;
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send {
        self.begin()
    }
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

/// Expands `$body` once per backend with `$p` bound to the concrete pool.
macro_rules! with_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match &$store.pool {
            $crate::db::Pool::Pg($p) => $body,
            $crate::db::Pool::Lite($p) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Failures of store operations, in terms the control plane can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a token named {0:?} already exists")]
    DuplicateName(String),
    #[error("zone {0:?} already exists")]
    ZoneExists(String),
    /// The name belongs to a deleted zone, which only an explicit restore brings back.
    #[error("zone {0:?} was deleted")]
    ZoneDeleted(String),
    #[error("zone {0:?} does not exist or is deleted")]
    ZoneNotActive(String),
    #[error("not found")]
    NotFound,
    /// Input the store refuses (an invalid tuple, an unknown subject, a bad owner).
    #[error("{0}")]
    Invalid(String),
    #[error("subject {0:?} already exists")]
    SubjectExists(String),
    #[error("tuple already exists: {0}")]
    TupleExists(String),
    /// The subject closure is past its bound: refused, never truncated silently.
    #[error("too many groups")]
    TooManyGroups,
    /// An identity's tuples are past their bound: refused, never truncated silently.
    #[error("too many tuples for one identity")]
    TooManyTuples,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

impl StoreError {
    /// True when the database could not be reached, as opposed to refusing the operation.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Db(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_),
            ) => true,
            // The server going away under a statement: connection exceptions (class 08),
            // an administrator's shutdown or a server starting up (class 57P).
            Self::Db(sqlx::Error::Database(d)) => d
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
            _ => false,
        }
    }
}

impl StoreError {
    /// True when the tables do not exist: the database was never migrated.
    pub fn is_missing_schema(&self) -> bool {
        match self {
            Self::Db(sqlx::Error::Database(d)) => {
                d.code().as_deref() == Some("42P01") || d.message().contains("no such table")
            }
            _ => false,
        }
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// How long a query waits for a Postgres connection by default (`NEXUS_DATABASE_ACQUIRE_TIMEOUT`).
/// sqlx's own default is 30 s, far too long to hold a caller while the database is down.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// A handle on the token and zone tables. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Connects to `postgres://…` or `sqlite://…` (the SQLite file is created if missing).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// As [`Store::connect`], with the longest wait for a Postgres connection. While the
    /// database is down every query that needs one waits this long (the pool keeps trying
    /// to reconnect), then fails; callers turn that into 503.
    pub async fn connect_with(url: &str, acquire_timeout: Duration) -> Result<Self, StoreError> {
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // No JIT: every query here is short, and the planner's estimates for the
            // recursive group closure are large enough to trigger a compile costing far
            // more than the query itself.
            let opts = PgConnectOptions::from_str(url)?
                .application_name("nexus-hub")
                .options([("jit", "off")]);
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .min_connections(1)
                .acquire_timeout(acquire_timeout)
                .connect_with(opts)
                .await?;
            Pool::Pg(pool)
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?;
            // The database holds every token's digest: a new file is made owner-only before
            // SQLite opens it (its -wal and -shm take the same mode), never with the umask's.
            // In-memory databases (`sqlite::memory:`, `mode=memory`) have no file to make.
            let file = opts.get_filename();
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            if !in_memory && !file.as_os_str().is_empty() {
                use std::os::unix::fs::OpenOptionsExt;
                // Already there: left as it is (startup tightens it). Cannot be made (no
                // such directory, say): SQLite reports that itself just below.
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(file);
            }
            let opts = opts
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a token that the CLI reported as minted or revoked survives power loss.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(opts)
                .await?;
            Pool::Lite(pool)
        } else {
            return Err(StoreError::Db(sqlx::Error::Configuration(
                "database URL must start with postgres://, postgresql:// or sqlite:".into(),
            )));
        };
        Ok(Self { pool })
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Pg(_) => Backend::Postgres,
            Pool::Lite(_) => Backend::Sqlite,
        }
    }

    /// Applies the migrations of this backend's dialect.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let res = match &self.pool {
            Pool::Pg(p) => sqlx::migrate!("../migrations/postgres").run(p).await,
            Pool::Lite(p) => sqlx::migrate!("../migrations/sqlite").run(p).await,
        };
        res.map_err(|e| StoreError::Db(e.into()))
    }

    /// One cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn close(&self) {
        with_pool!(self, p => p.close().await)
    }
}

impl Store {
    /// A Postgres run-time setting of this store's connections (`None` on SQLite), for
    /// tests and diagnostics.
    #[doc(hidden)]
    pub async fn pg_setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        match &self.pool {
            Pool::Pg(p) => Ok(Some(
                sqlx::query_scalar("SELECT current_setting($1)")
                    .bind(name)
                    .fetch_one(p)
                    .await?,
            )),
            Pool::Lite(_) => Ok(None),
        }
    }

    /// Runs one statement of DDL (test and maintenance use only).
    #[doc(hidden)]
    pub async fn execute_raw(&self, sql: &str) -> Result<(), StoreError> {
        with_pool!(self, p => sqlx::raw_sql(sql).execute(p).await.map(|_| ()))?;
        Ok(())
    }
}
