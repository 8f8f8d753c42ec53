//! [`FileService`]: the file methods over the database namespace and the blob store.
//! `read.rs`, `write.rs` and `search.rs` hold the methods; this module what they share:
//! resolving caller paths, the walk over rows in path order, paging.
//!
//! Every operation receives already-normalised [`ZonePath`]s and checks the caller's
//! access first. In a zone the caller can write but not read, answers must not tell what
//! is there: `write` leaves out `created`, `if_match` is refused (the caller cannot have
//! read a content id), `delete` of a missing file succeeds as the delete of an existing one
//! does, and `rename` needs `r` on the source zone (a move is a read: it lets the caller see
//! the file elsewhere, or learn that it exists). A write-only caller still learns that a
//! name is taken when it asks to create a directory there: refusing to clobber needs that
//! answer.

use super::access::{Access, Shown};
use super::error::Error;
use super::path::{Target, ZonePath, ZoneView};
use super::store::Blobs;
use crate::db::{FsRow, FsRowBytes, Store};
use chrono::{DateTime, SecondsFormat, Utc};
use nexus_wire::RpcError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most items a single page may return.
pub const MAX_PAGE: usize = 1000;
/// Entries a listing, glob or grep will walk before it stops.
pub(super) const MAX_WALK: usize = 200_000;
pub(super) const MAX_PATTERN_LEN: usize = 1024;
/// Rows fetched per round trip of a walk (keyset pages: `path > last`).
pub(super) const WALK_PAGE: i64 = 1000;

#[derive(Clone)]
pub struct FileService {
    pub(super) store: Store,
    /// Rows by path, only where this process is the namespace's one writer (SQLite).
    rows: Option<Arc<RowCache>>,
    pub(super) blobs: Blobs,
    pub(super) max_file_bytes: u64,
    pub(super) greps: Arc<super::grep::Greps>,
    pub(super) metrics: Option<crate::metrics::Metrics>,
    /// Semantic search's endpoint, when one is configured.
    pub(super) embedder: Option<super::embeddings::Embedder>,
    /// Where committed changes are announced (resource subscriptions).
    pub(super) changes: super::changes::FileChanges,
}

impl std::fmt::Debug for FileService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileService")
            .field("database", &self.store.backend())
            .field("blobs", &self.blobs)
            .finish()
    }
}

/// Rows by (zone, path). A reader caches what it read only when no change was in flight
/// from before its query to after it (`started` = `finished` before, `started` unchanged
/// after), so a row read before a concurrent change commits is never kept; a change drops
/// its own entry (or all, for a subtree) once it has committed.
pub(super) struct RowCache {
    cache: moka::sync::Cache<(String, String), FsRowBytes>,
    started: AtomicU64,
    finished: AtomicU64,
}

impl RowCache {
    fn new() -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .weigher(|k: &(String, String), v: &FsRowBytes| {
                    let n = k.0.len() + k.1.len() + v.inline.as_ref().map_or(0, Vec::len) + 128;
                    u32::try_from(n).unwrap_or(u32::MAX)
                })
                .max_capacity(64 * 1024 * 1024)
                .build(),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
        }
    }

    /// The change count when none is in flight.
    fn quiet(&self) -> Option<u64> {
        let s = self.started.load(Ordering::SeqCst);
        (self.finished.load(Ordering::SeqCst) == s).then_some(s)
    }

    fn still_quiet(&self, at: u64) -> bool {
        self.started.load(Ordering::SeqCst) == at
    }
}

/// A change in flight (see [`FileService::changing`]).
pub(super) struct Changing {
    rows: Arc<RowCache>,
    key: Option<(String, String)>,
}

impl Drop for Changing {
    fn drop(&mut self) {
        match &self.key {
            Some(k) => self.rows.cache.invalidate(k),
            None => self.rows.cache.invalidate_all(),
        }
        self.rows.finished.fetch_add(1, Ordering::SeqCst);
    }
}

/// What a walk is for: a listing shows the directories on the way to what the caller may
/// read; search results (glob, grep) show only what it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Show {
    Listing,
    Results,
}

/// A path's text in the namespace: its components below the zone root.
pub(super) fn rel(zp: &ZonePath) -> String {
    zp.rel.join("/")
}

pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn page<T>(
    all: Vec<T>,
    offset: usize,
    limit: usize,
) -> (Vec<T>, usize, bool, Option<usize>) {
    let total = all.len();
    let items: Vec<T> = all.into_iter().skip(offset).take(limit).collect();
    let end = offset.saturating_add(items.len());
    let has_more = end < total;
    (items, total, has_more, has_more.then_some(end))
}

pub(super) fn check_page(limit: usize) -> Result<usize, RpcError> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(RpcError::invalid_params(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    Ok(limit)
}

impl FileService {
    pub(crate) fn new(store: Store, blobs: Blobs, max_file_bytes: u64) -> Self {
        // An SQLite namespace belongs to one process: every change to it goes through this
        // service, so a row cache invalidated by those changes is exact. Nodes sharing
        // Postgres read each row from the database (one indexed lookup), so a write on one
        // node is read on any other at once.
        let rows =
            (store.backend() == crate::db::Backend::Sqlite).then(|| Arc::new(RowCache::new()));
        Self {
            store,
            rows,
            blobs,
            max_file_bytes,
            greps: Arc::new(super::grep::Greps::new(Default::default(), None)),
            metrics: None,
            embedder: None,
            changes: Default::default(),
        }
    }

    /// Where this service announces committed changes.
    pub fn changes(&self) -> &super::changes::FileChanges {
        &self.changes
    }

    /// Semantic and hybrid search through this embeddings endpoint.
    pub fn with_embeddings(
        mut self,
        cfg: Option<super::embeddings::EmbeddingsConfig>,
    ) -> Result<Self, String> {
        self.embedder = cfg.map(super::embeddings::Embedder::new).transpose()?;
        Ok(self)
    }

    /// Sets what one grep may spend and how many may run at once, and where greps and
    /// reads are counted.
    pub fn with_grep_limits(
        mut self,
        limits: super::grep::GrepLimits,
        metrics: Option<crate::metrics::Metrics>,
    ) -> Self {
        self.greps = Arc::new(super::grep::Greps::new(limits, metrics.clone()));
        self.metrics = metrics;
        self
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// Counts a file read by where its bytes came from (`database`, `cache`, `store`).
    pub(super) fn count_read(&self, source: &str) {
        if let Some(m) = &self.metrics {
            m.file_reads.with_label_values(&[source]).inc();
        }
    }

    pub(super) fn zone_path(&self, view: &ZoneView, raw: &str) -> Result<ZonePath, RpcError> {
        match view.resolve(raw)? {
            Target::Zone(p) => Ok(p),
            Target::Root => Err(RpcError::invalid_path(
                "this operation needs a path inside a zone: /zone/<zone>/…",
            )),
        }
    }

    pub(super) fn check_size(&self, len: usize) -> Result<(), Error> {
        if len as u64 > self.max_file_bytes {
            return Err(Error::TooLarge(self.max_file_bytes));
        }
        Ok(())
    }

    /// The zone locations a listing, glob or grep starting at `raw` covers. For the root of
    /// a multi-zone view: every zone (only readable ones unless `include_unreadable`).
    pub(super) fn bases(
        &self,
        acc: &Access,
        raw: &str,
        include_unreadable: bool,
    ) -> Result<Vec<ZonePath>, RpcError> {
        let view = &acc.view;
        match view.resolve(raw)? {
            Target::Root => Ok(view
                .zones()
                .into_iter()
                .filter(|(_, perm)| include_unreadable || perm.can_read())
                .map(|(z, _)| view.zone_root(&z))
                .collect()),
            Target::Zone(zp) => {
                // A directory on the way to something readable may be walked: the walk
                // shows only that way and what is readable.
                if !acc.on_the_way(&zp) {
                    acc.require_read(&zp)?;
                }
                Ok(vec![zp])
            }
        }
    }

    /// The row at `zp`; `None` when nothing is there (a zone root has no row).
    pub(super) async fn row(&self, zp: &ZonePath) -> Result<Option<FsRowBytes>, Error> {
        let path = rel(zp);
        let Some(rows) = &self.rows else {
            return Ok(self.store.fs_get(&zp.zone, &path).await?);
        };
        let key = (zp.zone.clone(), path);
        if let Some(r) = rows.cache.get(&key) {
            return Ok(Some(r));
        }
        let quiet = rows.quiet();
        let found = self.store.fs_get(&key.0, &key.1).await?;
        if let (Some(r), Some(at)) = (&found, quiet)
            && rows.still_quiet(at)
        {
            rows.cache.insert(key, r.clone());
        }
        Ok(found)
    }

    /// Marks a change of the namespace at `zone`/`path` (`None`: anywhere, e.g. a subtree)
    /// for the row cache; hold the guard until the change has committed or failed.
    pub(super) fn changing(&self, zone: &str, path: Option<&str>) -> Option<Changing> {
        let rows = self.rows.clone()?;
        rows.started.fetch_add(1, Ordering::SeqCst);
        Some(Changing {
            rows,
            key: path.map(|p| (zone.to_owned(), p.to_owned())),
        })
    }

    /// Visits entries below `base` in path order, from keyset pages of rows. A zone root
    /// always exists (empty when it has no rows); another missing base is an error. A base
    /// that is a file is an error, or with `file_base` the one entry visited. `visit`
    /// returns false to stop; at most [`MAX_WALK`] entries are visited.
    ///
    /// Only what `acc` lets the caller see is visited: what it may read, and for a listing
    /// the directories on the way to that. Reading is inherited downwards, so below a
    /// readable base nothing needs checking.
    pub(super) async fn walk(
        &self,
        acc: &Access,
        show: Show,
        base: &ZonePath,
        recursive: bool,
        file_base: bool,
        visit: &mut (dyn FnMut(&ZonePath, &FsRow) -> bool + Send),
    ) -> Result<(), Error> {
        self.walk_from(acc, show, base, recursive, file_base, ("", None), visit)
            .await
    }

    /// A recursive [`FileService::walk`] of only the entries whose path below `base`
    /// starts with `narrow` (a glob's literal prefix): one range scan; with `like`, of
    /// only the paths (below the zone root) that `LIKE` pattern matches.
    pub(super) async fn walk_narrowed(
        &self,
        acc: &Access,
        show: Show,
        base: &ZonePath,
        narrow: &str,
        like: Option<&str>,
        visit: &mut (dyn FnMut(&ZonePath, &FsRow) -> bool + Send),
    ) -> Result<(), Error> {
        self.walk_from(acc, show, base, true, false, (narrow, like), visit)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn walk_from(
        &self,
        acc: &Access,
        show: Show,
        base: &ZonePath,
        recursive: bool,
        file_base: bool,
        (narrow, like): (&str, Option<&str>),
        visit: &mut (dyn FnMut(&ZonePath, &FsRow) -> bool + Send),
    ) -> Result<(), Error> {
        let whole = acc.can_read(base);
        let base_rel = rel(base);
        if !base.is_root() {
            match self.row(base).await? {
                None => return Err(Error::NotFound(base.display())),
                Some(r) if !r.row.is_dir => {
                    if !file_base {
                        return Err(RpcError::invalid_params(format!(
                            "{} is a file, not a directory",
                            base.display()
                        ))
                        .into());
                    }
                    if !whole {
                        return Err(acc
                            .require_read(base)
                            .err()
                            .unwrap_or_else(RpcError::internal)
                            .into());
                    }
                    visit(base, &r.row);
                    return Ok(());
                }
                Some(_) => {}
            }
        }
        let from = if base.is_root() {
            narrow.to_owned()
        } else {
            format!("{base_rel}/{narrow}")
        };
        let mut after = String::new();
        let mut seen = 0usize;
        let mut zp = base.clone();
        loop {
            let rows = if recursive {
                self.store
                    .fs_range(&base.zone, &from, like, &after, WALK_PAGE)
                    .await?
            } else {
                self.store
                    .fs_children(&base.zone, &base_rel, &after, WALK_PAGE)
                    .await?
            };
            let full = rows.len() as i64 == WALK_PAGE;
            for row in &rows {
                if !row.path.starts_with(&from) {
                    return Ok(());
                }
                seen += 1;
                if seen > MAX_WALK {
                    return Ok(());
                }
                zp.rel.clear();
                zp.rel.extend(row.path.split('/').map(str::to_owned));
                let shown = if whole {
                    Shown::Readable
                } else {
                    acc.shows(&zp, row.is_dir)
                };
                match (shown, show) {
                    (Shown::Hidden, _) | (Shown::OnTheWay, Show::Results) => continue,
                    _ => {
                        if !visit(&zp, row) {
                            return Ok(());
                        }
                    }
                }
            }
            match rows.last() {
                Some(last) if full => after = last.path.clone(),
                _ => return Ok(()),
            }
        }
    }
}
