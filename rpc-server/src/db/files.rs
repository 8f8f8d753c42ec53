//! The file namespace (SPEC §12): one row per directory or file of a zone, naming its
//! blob by content id; and the blobs' own rows (when last written, small ones' bytes, grep's
//! text). Every mutation is one transaction, so `if_match`, mkdir, rmdir and rename are
//! atomic across any number of nodes sharing the database.
//!
//! Paths are relative to the zone root, `/`-joined, compared bytewise; a directory's
//! subtree is the range `[dir + "/", dir + "0")` (`0` follows `/`). A write creates missing
//! parents bottom-up and locks the nearest existing one (a no-op update), so an rmdir of
//! that parent waits for it; subtree deletes and moves repeat until they find nothing
//! more, so a file committed under a directory while it was being removed or moved is
//! not left behind without its parents.

use super::BeginWrite as _;
use super::{Pool, Store, StoreError, with_pool};
use chrono::{DateTime, Utc};

/// A directory or file row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FsRow {
    pub path: String,
    pub is_dir: bool,
    pub size: i64,
    pub content_id: Option<String>,
    pub version: i64,
    pub modified: DateTime<Utc>,
}

/// A row with its blob's bytes when they are kept in the database.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FsRowBytes {
    #[sqlx(flatten)]
    pub row: FsRow,
    pub inline: Option<Vec<u8>>,
}

/// A blob a write is about to reference.
#[derive(Debug, Clone)]
pub struct BlobRow<'a> {
    pub content_id: &'a str,
    pub size: i64,
    /// The bytes, when the blob is small enough to live in the database.
    pub inline: Option<&'a [u8]>,
    /// The text grep's index keeps, for UTF-8 blobs up to a size.
    pub text: Option<&'a str>,
}

/// Refusals of namespace operations.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Exists,
    #[error("a parent is a file")]
    ParentIsFile,
    #[error("is a directory")]
    IsDir,
    #[error("is not a directory")]
    NotDir,
    #[error("directory not empty")]
    NotEmpty,
    /// `if_match` did not hold.
    #[error("conflict")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for FsError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Db(e))
    }
}

/// What a file write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub created: bool,
    pub version: i64,
}

/// Rounds a subtree delete or move repeats at most (each finds what committed meanwhile).
const SETTLE_ROUNDS: usize = 16;

/// The parent path of `path` (`""` at the zone root).
pub fn parent_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// Upper bound (exclusive) of `dir`'s subtree range; the lower is `dir + "/"`.
fn subtree_end(dir: &str) -> String {
    format!("{dir}0")
}

fn subtree_start(dir: &str) -> String {
    format!("{dir}/")
}

const ROW: &str = "path, is_dir, size, content_id, version, modified";

/// The bounds of a grep page below `from` (`$1` zone, `$2` from, `$3` after, `$4` limit):
/// its end (`$5`) when it has one, the clause using it, and the first parameter left for
/// the text conditions.
fn page_bounds(from: &str) -> (Option<String>, &'static str, usize) {
    match prefix_end(from) {
        Some(u) => (Some(u), "AND e.path < $5", 6),
        None => (None, "", 5),
    }
}

/// Binds a grep page's parameters in [`page_bounds`]'s order, then the text patterns.
macro_rules! subtree_page {
    ($q:expr, $zone:expr, $from:expr, $after:expr, $limit:expr, $upper:expr, $text:expr) => {{
        let mut q = $q.bind($zone).bind($from).bind($after).bind($limit);
        if let Some(u) = &$upper {
            q = q.bind(u);
        }
        for pat in $text.patterns() {
            q = q.bind(pat);
        }
        q
    }};
}

/// Runs the local macro `$body!(tx, Backend, lock)` in a write transaction on the
/// store's pool, once per dialect: `lock` is the row-lock clause (`FOR UPDATE` on
/// Postgres; SQLite's write lock covers everything). An early `return` rolls back.
macro_rules! run_write {
    ($store:expr, $body:ident) => {
        match &$store.pool {
            Pool::Pg(p) => {
                let mut tx = p.begin_write().await?;
                let out = $body!(tx, Pg, " FOR UPDATE");
                tx.commit().await?;
                out
            }
            Pool::Lite(p) => {
                let mut tx = p.begin_write().await?;
                let out = $body!(tx, Lite, "");
                tx.commit().await?;
                out
            }
        }
    };
}

/// Creates the missing directories above `path` bottom-up and locks the nearest existing
/// one; a file on the way is [`FsError::ParentIsFile`].
macro_rules! ensure_parents {
    ($tx:ident, $zone:expr, $path:expr, $now:expr) => {{
        const UPSERT: &str = "INSERT INTO fs_entries \
             (zone_id, path, parent, is_dir, size, content_id, version, modified) \
             VALUES ($1, $2, $3, TRUE, 0, NULL, 1, $4) \
             ON CONFLICT (zone_id, path) DO UPDATE SET version = fs_entries.version + 1 \
             RETURNING is_dir, version";
        let mut dir = parent_of($path);
        while !dir.is_empty() {
            let (is_dir, version): (bool, i64) = sqlx::query_as(UPSERT)
                .bind($zone)
                .bind(dir)
                .bind(parent_of(dir))
                .bind($now)
                .fetch_one(&mut *$tx)
                .await?;
            if !is_dir {
                return Err(FsError::ParentIsFile);
            }
            if version > 1 {
                break;
            }
            dir = parent_of(dir);
        }
    }};
}

/// Whether the entry at `$path` is a directory (`None`: nothing there), its row locked
/// for the transaction when `$lock` is the dialect's lock clause.
macro_rules! kind_of {
    ($tx:ident, $zone:expr, $path:expr, $lock:expr) => {{
        let sql = format!(
            "SELECT is_dir FROM fs_entries WHERE zone_id = $1 AND path = $2{}",
            $lock
        );
        let kind: Option<(bool,)> = sqlx::query_as(&sql)
            .bind($zone)
            .bind($path)
            .fetch_optional(&mut *$tx)
            .await?;
        kind.map(|k| k.0)
    }};
}

/// Records a blob a write references (its `touched_at` keeps the collector away).
macro_rules! touch_blob {
    ($tx:ident, $blob:expr, $now:expr, $backend:ident) => {{
        const TOUCH: &str = "INSERT INTO fs_blobs (content_id, size, touched_at, inline, is_text) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (content_id) DO UPDATE SET \
             touched_at = excluded.touched_at, \
             inline = COALESCE(fs_blobs.inline, excluded.inline), \
             is_text = fs_blobs.is_text OR excluded.is_text";
        let b: &BlobRow<'_> = $blob;
        sqlx::query(TOUCH)
            .bind(b.content_id)
            .bind(b.size)
            .bind($now)
            .bind(b.inline)
            .bind(b.text.is_some())
            .execute(&mut *$tx)
            .await?;
        if let Some(text) = b.text {
            sqlx::query(text_insert!($backend))
                .bind(b.content_id)
                .bind(text)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

/// Keeps a blob's text once (grep's trigram index).
macro_rules! text_insert {
    (Pg) => {
        "INSERT INTO fs_text (content_id, body) VALUES ($1, $2) ON CONFLICT (content_id) DO NOTHING"
    };
    (Lite) => {
        "INSERT INTO fs_text (rowid, body) SELECT b.rowid, $2 FROM fs_blobs b \
         WHERE b.content_id = $1 AND NOT EXISTS (SELECT 1 FROM fs_text t WHERE t.rowid = b.rowid)"
    };
}

impl Store {
    /// The row at `path` with its inline bytes, or `None`.
    pub async fn fs_get(&self, zone: &str, path: &str) -> Result<Option<FsRowBytes>, StoreError> {
        const SQL: &str = "SELECT e.path, e.is_dir, e.size, e.content_id, e.version, e.modified, \
             b.inline FROM fs_entries e LEFT JOIN fs_blobs b ON b.content_id = e.content_id \
             WHERE e.zone_id = $1 AND e.path = $2";
        Ok(with_pool!(self, p => {
            sqlx::query_as(SQL).bind(zone).bind(path).fetch_optional(p).await
        })?)
    }

    /// Up to `limit` entries directly in `dir` (`""`: the zone root) after `after`, by path.
    pub async fn fs_children(
        &self,
        zone: &str,
        dir: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<FsRow>, StoreError> {
        self.fs_page("parent = $4", zone, &[dir], after, limit)
            .await
    }

    /// Up to `limit` entries whose path starts with `from` and after `after`, by path: a
    /// range scan of the zone's index. With `like` (a `LIKE` pattern, `\` escaping), only
    /// paths it matches: the database drops what cannot match before a row is sent.
    pub async fn fs_range(
        &self,
        zone: &str,
        from: &str,
        like: Option<&str>,
        after: &str,
        limit: i64,
    ) -> Result<Vec<FsRow>, StoreError> {
        let upper = prefix_end(from);
        let mut cond = String::from("path >= $4");
        let mut args = vec![from];
        if let Some(u) = &upper {
            args.push(u);
            cond.push_str(&format!(" AND path < ${}", args.len() + 3));
        }
        if let Some(l) = like {
            args.push(l);
            cond.push_str(&format!(" AND path LIKE ${} ESCAPE '\\'", args.len() + 3));
        }
        self.fs_page(&cond, zone, &args, after, limit).await
    }

    /// One keyset page of a zone's rows where `cond` (on `$4`, `$5`, … bound to `args`)
    /// holds, after `after`.
    async fn fs_page(
        &self,
        cond: &str,
        zone: &str,
        args: &[&str],
        after: &str,
        limit: i64,
    ) -> Result<Vec<FsRow>, StoreError> {
        let sql = format!(
            "SELECT {ROW} FROM fs_entries WHERE zone_id = $1 AND {cond} AND path > $2 \
             ORDER BY path LIMIT $3"
        );
        Ok(with_pool!(self, p => {
            let mut q = sqlx::query_as(&sql).bind(zone).bind(after).bind(limit);
            for a in args {
                q = q.bind(*a);
            }
            q.fetch_all(p).await
        })?)
    }

    /// Writes a file row naming `blob` (touched in the same transaction when it is inline),
    /// creating parents. With `if_match`, only when the current content id is that one.
    pub async fn fs_write_file(
        &self,
        zone: &str,
        path: &str,
        blob: &BlobRow<'_>,
        if_match: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Written, FsError> {
        const UPDATE_IF: &str = "UPDATE fs_entries SET content_id = $3, size = $4, \
             version = version + 1, modified = $5 \
             WHERE zone_id = $1 AND path = $2 AND is_dir = FALSE AND content_id = $6 \
             RETURNING version";
        const UPSERT: &str = "INSERT INTO fs_entries \
             (zone_id, path, parent, is_dir, size, content_id, version, modified) \
             VALUES ($1, $2, $3, FALSE, $4, $5, 1, $6) \
             ON CONFLICT (zone_id, path) DO UPDATE SET content_id = excluded.content_id, \
             size = excluded.size, version = fs_entries.version + 1, \
             modified = excluded.modified WHERE fs_entries.is_dir = FALSE RETURNING version";
        macro_rules! body {
            ($tx:ident, $backend:ident, $lock:expr) => {{
                if blob.inline.is_some() {
                    touch_blob!($tx, blob, now, $backend);
                }
                ensure_parents!($tx, zone, path, now);
                let version: Option<(i64,)> = match if_match {
                    Some(want) => {
                        sqlx::query_as(UPDATE_IF)
                            .bind(zone)
                            .bind(path)
                            .bind(blob.content_id)
                            .bind(blob.size)
                            .bind(now)
                            .bind(want)
                            .fetch_optional(&mut *$tx)
                            .await?
                    }
                    None => {
                        sqlx::query_as(UPSERT)
                            .bind(zone)
                            .bind(path)
                            .bind(parent_of(path))
                            .bind(blob.size)
                            .bind(blob.content_id)
                            .bind(now)
                            .fetch_optional(&mut *$tx)
                            .await?
                    }
                };
                match version {
                    Some((v,)) => Written {
                        created: v == 1,
                        version: v,
                    },
                    None => {
                        return Err(match kind_of!($tx, zone, path, "") {
                            Some(true) => FsError::IsDir,
                            _ => FsError::Conflict,
                        });
                    }
                }
            }};
        }
        Ok(run_write!(self, body))
    }

    /// Deletes a file row. [`FsError::IsDir`] for a directory, [`FsError::NotFound`] when
    /// nothing is there.
    pub async fn fs_delete_file(&self, zone: &str, path: &str) -> Result<(), FsError> {
        const DELETE: &str = "DELETE FROM fs_entries WHERE zone_id = $1 AND path = $2 \
             AND is_dir = FALSE RETURNING version";
        macro_rules! body {
            ($tx:ident, $backend:ident, $lock:expr) => {{
                let gone: Option<(i64,)> = sqlx::query_as(DELETE)
                    .bind(zone)
                    .bind(path)
                    .fetch_optional(&mut *$tx)
                    .await?;
                if gone.is_none() {
                    return Err(if kind_of!($tx, zone, path, "").is_some() {
                        FsError::IsDir
                    } else {
                        FsError::NotFound
                    });
                }
            }};
        }
        run_write!(self, body);
        Ok(())
    }

    /// Makes a directory. Without `parents` its parent must exist (the zone root always
    /// does). An existing directory is fine when `exist_ok`; anything else there is
    /// [`FsError::Exists`].
    pub async fn fs_mkdir(
        &self,
        zone: &str,
        path: &str,
        parents: bool,
        exist_ok: bool,
        now: DateTime<Utc>,
    ) -> Result<(), FsError> {
        const INSERT: &str = "INSERT INTO fs_entries \
             (zone_id, path, parent, is_dir, size, content_id, version, modified) \
             VALUES ($1, $2, $3, TRUE, 0, NULL, 1, $4) \
             ON CONFLICT (zone_id, path) DO NOTHING RETURNING version";
        macro_rules! body {
            ($tx:ident, $backend:ident, $lock:expr) => {{
                let parent = parent_of(path);
                if parents {
                    ensure_parents!($tx, zone, path, now);
                } else if !parent.is_empty() {
                    match kind_of!($tx, zone, parent, $lock) {
                        None => return Err(FsError::NotFound),
                        Some(false) => return Err(FsError::ParentIsFile),
                        Some(true) => {}
                    }
                }
                let made: Option<(i64,)> = sqlx::query_as(INSERT)
                    .bind(zone)
                    .bind(path)
                    .bind(parent)
                    .bind(now)
                    .fetch_optional(&mut *$tx)
                    .await?;
                if made.is_none() {
                    if !(exist_ok && kind_of!($tx, zone, path, "") == Some(true)) {
                        return Err(FsError::Exists);
                    }
                }
            }};
        }
        run_write!(self, body);
        Ok(())
    }

    /// Removes a directory: empty, or with everything below it when `recursive`.
    pub async fn fs_rmdir(&self, zone: &str, path: &str, recursive: bool) -> Result<(), FsError> {
        const CHILD: &str =
            "SELECT path FROM fs_entries WHERE zone_id = $1 AND parent = $2 LIMIT 1";
        const SUBTREE: &str =
            "DELETE FROM fs_entries WHERE zone_id = $1 AND path >= $2 AND path < $3";
        const ITSELF: &str = "DELETE FROM fs_entries WHERE zone_id = $1 AND path = $2";
        macro_rules! body {
            ($tx:ident, $backend:ident, $lock:expr) => {{
                match kind_of!($tx, zone, path, $lock) {
                    None => return Err(FsError::NotFound),
                    Some(false) => return Err(FsError::NotDir),
                    Some(true) => {}
                }
                if recursive {
                    let (lo, hi) = (subtree_start(path), subtree_end(path));
                    for _ in 0..SETTLE_ROUNDS {
                        let n = sqlx::query(SUBTREE)
                            .bind(zone)
                            .bind(&lo)
                            .bind(&hi)
                            .execute(&mut *$tx)
                            .await?
                            .rows_affected();
                        if n == 0 {
                            break;
                        }
                    }
                } else {
                    let child: Option<(String,)> = sqlx::query_as(CHILD)
                        .bind(zone)
                        .bind(path)
                        .fetch_optional(&mut *$tx)
                        .await?;
                    if child.is_some() {
                        return Err(FsError::NotEmpty);
                    }
                }
                sqlx::query(ITSELF)
                    .bind(zone)
                    .bind(path)
                    .execute(&mut *$tx)
                    .await?;
            }};
        }
        run_write!(self, body);
        Ok(())
    }

    /// Moves a file or a directory with everything below it, across zones too. The
    /// destination's parents are created; an existing destination file is replaced only
    /// with `overwrite` (and never by a directory).
    #[allow(clippy::too_many_arguments)]
    pub async fn fs_rename(
        &self,
        from_zone: &str,
        from: &str,
        to_zone: &str,
        to: &str,
        overwrite: bool,
        now: DateTime<Utc>,
    ) -> Result<(), FsError> {
        const MOVE: &str = "UPDATE fs_entries SET zone_id = $3, \
             path = $4 || substr(path, length($2) + 1), \
             parent = CASE WHEN path = $2 THEN $5 ELSE $4 || substr(parent, length($2) + 1) END \
             WHERE zone_id = $1 AND (path = $2 OR (path >= $6 AND path < $7))";
        const DELETE: &str = "DELETE FROM fs_entries WHERE zone_id = $1 AND path = $2";
        macro_rules! body {
            ($tx:ident, $backend:ident, $lock:expr) => {{
                let Some(src_dir) = kind_of!($tx, from_zone, from, $lock) else {
                    return Err(FsError::NotFound);
                };
                if let Some(dst_dir) = kind_of!($tx, to_zone, to, $lock) {
                    if dst_dir || src_dir || !overwrite {
                        return Err(FsError::Exists);
                    }
                    sqlx::query(DELETE)
                        .bind(to_zone)
                        .bind(to)
                        .execute(&mut *$tx)
                        .await?;
                }
                ensure_parents!($tx, to_zone, to, now);
                let (lo, hi) = (subtree_start(from), subtree_end(from));
                for _ in 0..SETTLE_ROUNDS {
                    let n = sqlx::query(MOVE)
                        .bind(from_zone)
                        .bind(from)
                        .bind(to_zone)
                        .bind(to)
                        .bind(parent_of(to))
                        .bind(&lo)
                        .bind(&hi)
                        .execute(&mut *$tx)
                        .await?
                        .rows_affected();
                    if n == 0 || !src_dir {
                        break;
                    }
                }
            }};
        }
        run_write!(self, body);
        Ok(())
    }

    /// Files at or below `from` (a path prefix; `""` for the zone) whose blob has text
    /// containing every one of `like_all` and at least one of `like_any` (when given),
    /// after `after`, by path. Files whose blob has no indexed text are always returned:
    /// only a scan can tell what they hold. The trigram index picks the content ids first
    /// (materialized), and only their files are joined and sorted: the cost is that of the
    /// matching files, so use it when they are few ([`Store::fs_text_matches`]).
    pub async fn fs_grep_candidates(
        &self,
        zone: &str,
        from: &str,
        text: &TextFilter<'_>,
        after: &str,
        limit: i64,
    ) -> Result<Vec<FsRowBytes>, StoreError> {
        // The subtree's end bounds the scan: past it nothing can match.
        let (upper, below, first) = page_bounds(from);
        let cond = text.conditions(self.backend(), "t.body", first);
        let sql = if cond.is_empty() {
            format!(
                "SELECT e.path, e.is_dir, e.size, e.content_id, e.version, e.modified, b.inline \
                 FROM fs_entries e JOIN fs_blobs b ON b.content_id = e.content_id \
                 WHERE e.zone_id = $1 AND e.path >= $2 AND e.path > $3 {below} \
                 AND e.is_dir = FALSE ORDER BY e.path LIMIT $4"
            )
        } else {
            // SQLite: CROSS JOIN keeps the matching ids the outer loop (its planner would
            // rather walk the zone in path order and probe them).
            let (texts, join) = match self.backend() {
                super::Backend::Postgres => ("SELECT t.content_id FROM fs_text t WHERE", "JOIN"),
                super::Backend::Sqlite => (
                    "SELECT b2.content_id FROM fs_text t JOIN fs_blobs b2 ON b2.rowid = t.rowid WHERE",
                    "CROSS JOIN",
                ),
            };
            format!(
                "WITH ids AS MATERIALIZED ({texts} {cond} \
                 UNION SELECT content_id FROM fs_blobs WHERE is_text = FALSE) \
                 SELECT e.path, e.is_dir, e.size, e.content_id, e.version, e.modified, b.inline \
                 FROM ids {join} fs_entries e ON e.content_id = ids.content_id \
                 JOIN fs_blobs b ON b.content_id = e.content_id \
                 WHERE e.zone_id = $1 AND e.path >= $2 AND e.path > $3 {below} \
                 AND e.is_dir = FALSE ORDER BY e.path LIMIT $4"
            )
        };
        Ok(with_pool!(self, p => {
            subtree_page!(sqlx::query_as(&sql), zone, from, after, limit, upper, text)
                .fetch_all(p)
                .await
        })?)
    }

    /// How many indexed texts (of any zone) `text` matches, counting no further than `cap`:
    /// whether [`Store::fs_grep_candidates`] is cheap for it.
    pub async fn fs_text_matches(
        &self,
        text: &TextFilter<'_>,
        cap: i64,
    ) -> Result<i64, StoreError> {
        let cond = text.conditions(self.backend(), "t.body", 2);
        if cond.is_empty() {
            return Ok(cap);
        }
        let sql = format!("SELECT count(*) FROM (SELECT 1 FROM fs_text t WHERE {cond} LIMIT $1) s");
        Ok(with_pool!(self, p => {
            let mut q = sqlx::query_scalar(&sql).bind(cap);
            for pat in text.patterns() {
                q = q.bind(pat);
            }
            q.fetch_one(p).await
        })?)
    }

    /// The next `limit` files at or below `from` after `after`, by path, each with whether
    /// it is a grep candidate (as [`Store::fs_grep_candidates`] decides) and its inline
    /// bytes only when it is. Each file's text is tested by itself (a key lookup and a
    /// `LIKE`), so the cost is the page's, however many files of the zone match: cheap
    /// when most do.
    pub async fn fs_grep_probe(
        &self,
        zone: &str,
        from: &str,
        text: &TextFilter<'_>,
        after: &str,
        limit: i64,
    ) -> Result<Vec<FsProbeRow>, StoreError> {
        // SQLite: the body from FTS5's content table (`fs_text_content`, columns `id` and
        // `c0`), by rowid. Asking the FTS5 table itself for one rowid and a `LIKE` reads
        // the trigram posting lists for every row.
        let (texts, body) = match self.backend() {
            super::Backend::Postgres => (
                "SELECT 1 FROM fs_text t WHERE t.content_id = e.content_id AND",
                "t.body",
            ),
            super::Backend::Sqlite => (
                "SELECT 1 FROM fs_text_content t WHERE t.id = b.rowid AND",
                "t.c0",
            ),
        };
        // The subtree's end bounds the scan: past it nothing can match.
        let (upper, below, first) = page_bounds(from);
        let cond = text.conditions(self.backend(), body, first);
        let hit = if cond.is_empty() {
            "TRUE".to_owned()
        } else {
            format!("(b.is_text = FALSE OR EXISTS ({texts} {cond}))")
        };
        let sql = format!(
            "SELECT path, is_dir, size, content_id, version, modified, \
             CASE WHEN hit THEN inline END AS inline, hit FROM (\
             SELECT e.path, e.is_dir, e.size, e.content_id, e.version, e.modified, b.inline, \
             {hit} AS hit \
             FROM fs_entries e JOIN fs_blobs b ON b.content_id = e.content_id \
             WHERE e.zone_id = $1 AND e.path >= $2 AND e.path > $3 {below} AND e.is_dir = FALSE \
             ORDER BY e.path LIMIT $4) s ORDER BY path"
        );
        Ok(with_pool!(self, p => {
            subtree_page!(sqlx::query_as(&sql), zone, from, after, limit, upper, text)
                .fetch_all(p)
                .await
        })?)
    }
}

impl Store {
    /// Files at or below `from` (a path prefix; `""` for the zone) of at most `max_size`
    /// bytes, and their bytes together: the corpus statistics of a keyword search.
    pub async fn fs_scope_stats(
        &self,
        zone: &str,
        from: &str,
        max_size: i64,
    ) -> Result<(i64, i64), StoreError> {
        let upper = prefix_end(from);
        let below = if upper.is_some() { "AND path < $4" } else { "" };
        let sql = format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM fs_entries \
             WHERE zone_id = $1 AND path >= $2 AND is_dir = FALSE AND size <= $3 {below}"
        );
        Ok(with_pool!(self, p => {
            let mut q = sqlx::query_as(&sql).bind(zone).bind(from).bind(max_size);
            if let Some(u) = &upper {
                q = q.bind(u);
            }
            q.fetch_one(p).await
        })?)
    }
}

impl Store {
    /// The vectors of `model` kept for any of `ids`, as (content id, little-endian f32s).
    pub async fn fs_embeddings(
        &self,
        model: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT content_id, vector FROM fs_embeddings WHERE model = $1 AND content_id IN ({})",
            marks.join(", ")
        );
        Ok(with_pool!(self, p => {
            let mut q = sqlx::query_as(&sql).bind(model);
            for id in ids {
                q = q.bind(id);
            }
            q.fetch_all(p).await
        })?)
    }

    /// Keeps a blob's vector of `model` (the first one stored wins: they are equal).
    pub async fn fs_put_embedding(
        &self,
        content_id: &str,
        model: &str,
        vector: &[u8],
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO fs_embeddings (content_id, model, vector) VALUES ($1, $2, $3) \
             ON CONFLICT (content_id, model) DO NOTHING";
        with_pool!(self, p => {
            sqlx::query(SQL).bind(content_id).bind(model).bind(vector).execute(p).await.map(drop)
        })?;
        Ok(())
    }
}

/// What a grep's prefilter asks of a file's text: every one of `all` and (when not empty)
/// one of `any`, as `LIKE` patterns.
#[derive(Debug, Clone, Copy)]
pub struct TextFilter<'a> {
    pub all: &'a [String],
    pub any: &'a [String],
    pub ignore_case: bool,
}

impl TextFilter<'_> {
    /// The conditions on `body`, with parameters numbered from `first`; empty when there
    /// are none.
    fn conditions(&self, backend: super::Backend, body: &str, first: usize) -> String {
        let op = match (self.ignore_case, backend) {
            (true, super::Backend::Postgres) => "ILIKE",
            // SQLite's LIKE (and FTS5's trigram tokenizer) ignore ASCII case already.
            _ => "LIKE",
        };
        let mut n = first;
        let mut cond = Vec::new();
        for _ in self.all {
            cond.push(format!("{body} {op} ${n}"));
            n += 1;
        }
        if !self.any.is_empty() {
            let mut alts = Vec::new();
            for _ in self.any {
                alts.push(format!("{body} {op} ${n}"));
                n += 1;
            }
            cond.push(format!("({})", alts.join(" OR ")));
        }
        cond.join(" AND ")
    }

    fn patterns(&self) -> impl Iterator<Item = &String> {
        self.all.iter().chain(self.any)
    }
}

/// A row of [`Store::fs_grep_probe`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FsProbeRow {
    #[sqlx(flatten)]
    pub found: FsRowBytes,
    pub hit: bool,
}

impl Store {
    /// Adds a blob's text to grep's index and marks the blob as indexed, in one
    /// transaction; nothing when the blob is gone (collected) or indexed already.
    pub async fn fs_index_text(&self, content_id: &str, text: &str) -> Result<(), StoreError> {
        const MARK: &str =
            "UPDATE fs_blobs SET is_text = TRUE WHERE content_id = $1 AND is_text = FALSE";
        macro_rules! body {
            ($tx:ident, $backend:ident, $lock:expr) => {{
                let n = sqlx::query(MARK)
                    .bind(content_id)
                    .execute(&mut *$tx)
                    .await?
                    .rows_affected();
                if n == 1 {
                    sqlx::query(text_insert!($backend))
                        .bind(content_id)
                        .bind(text)
                        .execute(&mut *$tx)
                        .await?;
                }
            }};
        }
        run_write!(self, body);
        Ok(())
    }
}

/// The collector's exclusive right to run, held until dropped: a transaction-scoped
/// advisory lock on Postgres (released with the transaction, even if this node dies), a
/// process-wide lock on SQLite (one process owns an SQLite file).
#[derive(Debug)]
pub enum CollectorLock {
    Pg(sqlx::Transaction<'static, sqlx::Postgres>),
    Local(tokio::sync::OwnedMutexGuard<()>),
}

/// The advisory lock key of the blob collector.
const COLLECTOR_LOCK: i64 = 0x6e78_6763; // "nxgc"

/// Totals for `storage status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FsStats {
    pub zones: i64,
    pub files: i64,
    pub directories: i64,
    /// Bytes of all files, duplicates counted each time.
    pub logical_bytes: i64,
    pub blobs: i64,
    /// Bytes of distinct blobs.
    pub blob_bytes: i64,
    pub inline_blobs: i64,
    pub text_indexed: i64,
    /// Blobs no file references (the collector's work, once their grace period ends).
    pub unreferenced: i64,
}

impl CollectorLock {
    /// Gives the lock back now. (A dropped transaction is rolled back only when its
    /// connection is next used, which would keep the lock held until then.)
    pub async fn release(self) -> Result<(), StoreError> {
        if let Self::Pg(tx) = self {
            tx.rollback().await?;
        }
        Ok(())
    }
}

impl Store {
    pub async fn fs_collector_lock(&self) -> Result<Option<CollectorLock>, StoreError> {
        match &self.pool {
            Pool::Pg(p) => {
                let mut tx = p.begin().await?;
                let (got,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
                    .bind(COLLECTOR_LOCK)
                    .fetch_one(&mut *tx)
                    .await?;
                Ok(got.then_some(CollectorLock::Pg(tx)))
            }
            Pool::Lite(_) => {
                static LOCK: std::sync::OnceLock<std::sync::Arc<tokio::sync::Mutex<()>>> =
                    std::sync::OnceLock::new();
                let m = LOCK.get_or_init(Default::default).clone();
                Ok(m.try_lock_owned().ok().map(CollectorLock::Local))
            }
        }
    }

    /// Up to `limit` ids of blobs no file references and untouched since `cutoff`.
    pub async fn fs_unreferenced_blobs(
        &self,
        cutoff: DateTime<Utc>,
        after: &str,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT b.content_id FROM fs_blobs b WHERE b.content_id > $1 \
             AND b.touched_at < $2 AND NOT EXISTS \
             (SELECT 1 FROM fs_entries e WHERE e.content_id = b.content_id) \
             ORDER BY b.content_id LIMIT $3";
        let rows: Vec<(String,)> = with_pool!(self, p => {
            sqlx::query_as(SQL).bind(after).bind(cutoff).bind(limit).fetch_all(p).await
        })?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Removes one blob's row when it is still unreferenced and untouched since `cutoff`,
    /// running `delete_stored` (removal from the blob store) before the row's removal
    /// commits; its failure keeps the row. Returns the blob's size when it was removed.
    pub async fn fs_collect_blob<F, Fut>(
        &self,
        content_id: &str,
        cutoff: DateTime<Utc>,
        delete_stored: F,
    ) -> Result<Option<u64>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        // A blob's vectors go with it (they describe its bytes and nothing else).
        const DROP_EMBEDDINGS: &str = "DELETE FROM fs_embeddings WHERE content_id = $1";
        const SQL: &str = "DELETE FROM fs_blobs WHERE content_id = $1 AND touched_at < $2 \
             AND NOT EXISTS (SELECT 1 FROM fs_entries e WHERE e.content_id = fs_blobs.content_id) \
             RETURNING size, inline IS NULL";
        match &self.pool {
            Pool::Pg(p) => {
                let mut tx = p.begin().await?;
                let gone: Option<(i64, bool)> = sqlx::query_as(SQL)
                    .bind(content_id)
                    .bind(cutoff)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((size, external)) = gone else {
                    return Ok(None);
                };
                sqlx::query(DROP_EMBEDDINGS)
                    .bind(content_id)
                    .execute(&mut *tx)
                    .await?;
                if external {
                    delete_stored().await.map_err(StoreError::Invalid)?;
                }
                tx.commit().await?;
                Ok(Some(size.max(0) as u64))
            }
            Pool::Lite(p) => {
                let mut tx = p.begin_write().await?;
                let sql = SQL.replace("RETURNING size", "RETURNING rowid, size");
                let gone: Option<(i64, i64, bool)> = sqlx::query_as(&sql)
                    .bind(content_id)
                    .bind(cutoff)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((rowid, size, external)) = gone else {
                    return Ok(None);
                };
                sqlx::query("DELETE FROM fs_text WHERE rowid = $1")
                    .bind(rowid)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(DROP_EMBEDDINGS)
                    .bind(content_id)
                    .execute(&mut *tx)
                    .await?;
                if external {
                    delete_stored().await.map_err(StoreError::Invalid)?;
                }
                tx.commit().await?;
                Ok(Some(size.max(0) as u64))
            }
        }
    }

    /// Keeps a blob's bytes in the database (the inline store), recording it if new.
    pub async fn fs_put_inline(
        &self,
        content_id: &str,
        bytes: &[u8],
        now: DateTime<Utc>,
    ) -> Result<nexus_blobs::Put, StoreError> {
        const SQL: &str = "INSERT INTO fs_blobs (content_id, size, touched_at, inline, is_text) \
             VALUES ($1, $2, $3, $4, FALSE) ON CONFLICT (content_id) DO UPDATE SET \
             touched_at = excluded.touched_at, inline = COALESCE(fs_blobs.inline, excluded.inline) \
             RETURNING (inline IS NOT NULL)";
        const HAD: &str = "SELECT inline IS NOT NULL FROM fs_blobs WHERE content_id = $1";
        let had: Option<(bool,)> = with_pool!(self, p => {
            sqlx::query_as(HAD).bind(content_id).fetch_optional(p).await
        })?;
        with_pool!(self, p => {
            sqlx::query(SQL)
                .bind(content_id)
                .bind(bytes.len() as i64)
                .bind(now)
                .bind(bytes)
                .execute(p)
                .await
                .map(|_| ())
        })?;
        Ok(if had == Some((true,)) {
            nexus_blobs::Put::Existed
        } else {
            nexus_blobs::Put::Created
        })
    }

    /// A blob's bytes when the database keeps them.
    pub async fn fs_inline(&self, content_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        const SQL: &str = "SELECT inline FROM fs_blobs WHERE content_id = $1";
        let row: Option<(Option<Vec<u8>>,)> = with_pool!(self, p => {
            sqlx::query_as(SQL).bind(content_id).fetch_optional(p).await
        })?;
        Ok(row.and_then(|r| r.0))
    }

    /// Forgets a blob's inline bytes (its row stays while files reference it).
    pub async fn fs_drop_inline(&self, content_id: &str) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE fs_blobs SET inline = NULL WHERE content_id = $1";
        with_pool!(self, p => sqlx::query(SQL).bind(content_id).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Ids of blobs kept inline, after `after`, in order.
    pub async fn fs_inline_ids(&self, after: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT content_id FROM fs_blobs WHERE content_id > $1 \
             AND inline IS NOT NULL ORDER BY content_id LIMIT $2";
        let rows: Vec<(String,)> = with_pool!(self, p => {
            sqlx::query_as(SQL).bind(after).bind(limit).fetch_all(p).await
        })?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Ids and sizes of blobs kept outside the database, after `after`, in order (what
    /// `storage migrate` copies).
    pub async fn fs_external_blobs(
        &self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        const SQL: &str = "SELECT content_id, size FROM fs_blobs WHERE content_id > $1 \
             AND inline IS NULL ORDER BY content_id LIMIT $2";
        Ok(with_pool!(self, p => {
            sqlx::query_as(SQL).bind(after).bind(limit).fetch_all(p).await
        })?)
    }

    pub async fn fs_stats(&self) -> Result<FsStats, StoreError> {
        const SQL: &str = "SELECT \
             (SELECT COUNT(DISTINCT zone_id) FROM fs_entries), \
             (SELECT COUNT(*) FROM fs_entries WHERE is_dir = FALSE), \
             (SELECT COUNT(*) FROM fs_entries WHERE is_dir = TRUE), \
             (SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM fs_entries WHERE is_dir = FALSE), \
             (SELECT COUNT(*) FROM fs_blobs), \
             (SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM fs_blobs), \
             (SELECT COUNT(*) FROM fs_blobs WHERE inline IS NOT NULL), \
             (SELECT COUNT(*) FROM fs_blobs WHERE is_text = TRUE), \
             (SELECT COUNT(*) FROM fs_blobs b WHERE NOT EXISTS \
                (SELECT 1 FROM fs_entries e WHERE e.content_id = b.content_id))";
        #[allow(clippy::type_complexity)]
        let r: (i64, i64, i64, i64, i64, i64, i64, i64, i64) =
            with_pool!(self, p => sqlx::query_as(SQL).fetch_one(p).await)?;
        Ok(FsStats {
            zones: r.0,
            files: r.1,
            directories: r.2,
            logical_bytes: r.3,
            blobs: r.4,
            blob_bytes: r.5,
            inline_blobs: r.6,
            text_indexed: r.7,
            unreferenced: r.8,
        })
    }

    /// Whether a data directory's import finished, by its source path.
    pub async fn fs_import_done(&self, source: &str) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT files FROM fs_imports WHERE source = $1";
        let row: Option<(i64,)> = with_pool!(self, p => {
            sqlx::query_as(SQL).bind(source).fetch_optional(p).await
        })?;
        Ok(row.is_some())
    }

    /// Refreshes the planner's statistics of the namespace after a bulk load: until
    /// autovacuum gets to it, Postgres plans grep's trigram prefilter as if the tables were
    /// empty (a sequential scan, hundreds of milliseconds over 100,000 files).
    pub async fn fs_analyze(&self) -> Result<(), StoreError> {
        let sql = match self.backend() {
            super::Backend::Postgres => "ANALYZE fs_entries, fs_blobs, fs_text",
            super::Backend::Sqlite => "ANALYZE",
        };
        self.execute_raw(sql).await
    }

    pub async fn fs_import_finished(
        &self,
        source: &str,
        files: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO fs_imports (source, files, finished_at) VALUES ($1, $2, $3) \
             ON CONFLICT (source) DO NOTHING";
        with_pool!(self, p => {
            sqlx::query(SQL).bind(source).bind(files).bind(now).execute(p).await.map(|_| ())
        })?;
        Ok(())
    }
}

impl Store {
    /// Every file as (zone, path), in order: what tests and `storage status` look at.
    #[doc(hidden)]
    pub async fn fs_all_files(&self) -> Result<Vec<(String, String)>, StoreError> {
        const SQL: &str = "SELECT zone_id, path FROM fs_entries WHERE is_dir = FALSE \
             ORDER BY zone_id, path";
        Ok(with_pool!(self, p => sqlx::query_as(SQL).fetch_all(p).await)?)
    }
}

/// One entry of an import batch: a file (with its blob) or a directory.
#[derive(Debug, Clone)]
pub struct ImportItem<'a> {
    pub zone: &'a str,
    pub path: &'a str,
    /// `None`: a directory.
    pub blob: Option<BlobRow<'a>>,
    pub modified: DateTime<Utc>,
}

impl Store {
    /// Records blobs about to be stored outside the database, in one transaction, before
    /// they are stored: the collector then leaves them alone until the grace period has
    /// passed.
    pub async fn fs_touch_blobs(
        &self,
        blobs: &[BlobRow<'_>],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        macro_rules! body {
            ($tx:ident, $backend:ident, $lock:expr) => {
                for blob in blobs {
                    touch_blob!($tx, blob, now, $backend);
                }
            };
        }
        run_write!(self, body);
        Ok(())
    }

    /// Inserts a batch of imported entries in one transaction, never replacing an existing
    /// row. Returns how many files were new and how many were there already.
    pub async fn fs_import_batch(
        &self,
        items: &[ImportItem<'_>],
        now: DateTime<Utc>,
    ) -> Result<(u64, u64), FsError> {
        const FILE: &str = "INSERT INTO fs_entries \
             (zone_id, path, parent, is_dir, size, content_id, version, modified) \
             VALUES ($1, $2, $3, FALSE, $4, $5, 1, $6) ON CONFLICT (zone_id, path) DO NOTHING \
             RETURNING version";
        const DIR: &str = "INSERT INTO fs_entries \
             (zone_id, path, parent, is_dir, size, content_id, version, modified) \
             VALUES ($1, $2, $3, TRUE, 0, NULL, 1, $4) ON CONFLICT (zone_id, path) DO NOTHING";
        macro_rules! body {
            ($tx:ident, $backend:ident, $lock:expr) => {{
                let (mut made, mut present) = (0u64, 0u64);
                for item in items {
                    ensure_parents!($tx, item.zone, item.path, item.modified);
                    match &item.blob {
                        None => {
                            sqlx::query(DIR)
                                .bind(item.zone)
                                .bind(item.path)
                                .bind(parent_of(item.path))
                                .bind(item.modified)
                                .execute(&mut *$tx)
                                .await?;
                        }
                        Some(blob) => {
                            touch_blob!($tx, blob, now, $backend);
                            let r: Option<(i64,)> = sqlx::query_as(FILE)
                                .bind(item.zone)
                                .bind(item.path)
                                .bind(parent_of(item.path))
                                .bind(blob.size)
                                .bind(blob.content_id)
                                .bind(item.modified)
                                .fetch_optional(&mut *$tx)
                                .await?;
                            if r.is_some() {
                                made += 1;
                            } else {
                                present += 1;
                            }
                        }
                    }
                }
                (made, present)
            }};
        }
        Ok(run_write!(self, body))
    }
}

/// The least string greater than every string starting with `prefix` (bytewise), or
/// `None` when there is none (the empty prefix, or one of only `char::MAX`).
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next scalar value (skipping the surrogate gap) sorts after it in UTF-8 too.
        let next = match last as u32 {
            0xD7FF => Some('\u{E000}'),
            n => char::from_u32(n + 1),
        };
        if let Some(c) = next {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends_bound_exactly_the_prefix() {
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("d0042/").as_deref(), Some("d00420"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        for (prefix, inside, outside) in [
            ("d/", "d/zzz\u{10FFFF}", "d0"),
            ("ab", "ab\u{10FFFF}", "ac"),
            ("é", "é\u{10FFFF}/x", "ê"),
        ] {
            let end = prefix_end(prefix).expect("a non-empty prefix has an end");
            assert!(inside.as_bytes() < end.as_bytes(), "{inside} < {end}");
            assert!(outside.as_bytes() >= end.as_bytes(), "{outside} >= {end}");
        }
    }
}
