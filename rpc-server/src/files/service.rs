//! File operations on `<data_dir>/zones/<zone>/…`.
//!
//! Every operation receives already-normalised [`ZonePath`]s and checks the zone
//! permission first. Paths are resolved beneath the zones directory through descriptors
//! without following any symbolic link ([`super::beneath`]): a link inside a zone is refused
//! when a path names it or goes through it, and is invisible to listings, glob and grep.
//! Blocking filesystem work runs on tokio's blocking pool. Writes go to a temporary file in
//! the target directory, are fsynced, renamed into place, and the directory is fsynced, so
//! a reader sees the old or the new content, never a mix, and an acknowledged write
//! survives a crash. Mutations of one path are serialised by a striped lock so `if_match`
//! checks and the write that follows are atomic.
//!
//! In a zone the caller can write but not read, answers must not tell what is there:
//! `write` leaves out `created`, `if_match` is refused (the caller cannot have read a
//! content id), `delete` of a missing file succeeds as the delete of an existing one does,
//! and `rename` needs `r` on the source zone (a move is a read: it lets the caller see the
//! file elsewhere, or learn that it exists). A write-only caller still learns that a name
//! is taken when it asks to create a directory there: refusing to clobber needs that
//! answer.

use super::access::{Access, Shown};
use super::beneath::{self, Entry, Step};
use super::edit::{self, EditError};
use super::path::{MAX_NAME_BYTES, TEMP_PREFIX, Target, ZonePath, ZoneView};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use nexus_wire::methods::*;
use nexus_wire::{ErrorCode, RpcError};
use rustix::fs::FileType;
use sha2::{Digest, Sha256};
use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const LOCK_STRIPES: usize = 256;
/// Most items a single page may return.
pub const MAX_PAGE: usize = 1000;
/// Entries a listing, glob or grep will walk before it stops.
const MAX_WALK: usize = 200_000;
pub(super) const MAX_PATTERN_LEN: usize = 1024;
/// Linux's `PATH_MAX`, the terminating NUL included.
const PATH_MAX: usize = 4096;
/// A temporary file's name: the prefix and 16 hex digits.
const TEMP_NAME_LEN: usize = TEMP_PREFIX.len() + 16;
/// Levels the startup sweep descends.
const SWEEP_DEPTH: usize = 256;

#[derive(Clone)]
pub struct FileService {
    inner: Arc<Inner>,
    greps: Arc<super::grep::Greps>,
    metrics: Option<crate::metrics::Metrics>,
}

struct Inner {
    root: PathBuf,
    /// The zones directory, held open: everything is resolved beneath it.
    root_fd: OwnedFd,
    max_file_bytes: u64,
    locks: Vec<Mutex<()>>,
}

impl std::fmt::Debug for FileService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileService")
            .field("root", &self.inner.root)
            .finish()
    }
}

/// Maps an I/O error to a JSON-RPC error that names the caller's path, never a disk path.
fn io_err(e: io::Error, path: &ZonePath) -> RpcError {
    let shown = path.display();
    if beneath::is_link_error(&e) {
        return RpcError::invalid_path(format!(
            "{shown} is or goes through a symbolic link, which this server does not follow"
        ));
    }
    match e.kind() {
        io::ErrorKind::NotFound => RpcError::not_found(&shown),
        io::ErrorKind::AlreadyExists => RpcError::exists(&shown),
        io::ErrorKind::PermissionDenied => {
            RpcError::permission_denied(format!("permission denied: {shown}"))
        }
        io::ErrorKind::NotADirectory => {
            RpcError::invalid_path(format!("a parent of {shown} is a file"))
        }
        io::ErrorKind::IsADirectory => RpcError::invalid_params(format!("{shown} is a directory")),
        io::ErrorKind::DirectoryNotEmpty => RpcError::invalid_params(format!(
            "directory not empty: {shown} (use recursive: true)"
        )),
        // Refused up front (`check_disk_len`, the normaliser); kept as the caller's error
        // should a filesystem with smaller limits still refuse.
        io::ErrorKind::InvalidFilename | io::ErrorKind::InvalidInput => {
            RpcError::invalid_path(format!("path too long or not valid here: {shown}"))
        }
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            RpcError::new(ErrorCode::Internal, "storage full")
        }
        _ => {
            tracing::error!(error = %e, "file operation failed");
            RpcError::internal()
        }
    }
}

/// Nothing at that path: the entry or one of its parents is missing, or a parent is a file.
fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn link_refused(zp: &ZonePath) -> RpcError {
    io_err(io::Error::from(rustix::io::Errno::LOOP), zp)
}

fn too_large(max: u64) -> RpcError {
    RpcError::new(
        ErrorCode::TooLarge,
        format!("content larger than the {max} byte limit"),
    )
}

fn rfc3339(t: io::Result<std::time::SystemTime>) -> Option<String> {
    t.ok()
        .map(|t| DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn content_id(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn page<T>(all: Vec<T>, offset: usize, limit: usize) -> (Vec<T>, usize, bool, Option<usize>) {
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

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap_or_default();
    hex::encode(b)
}

/// Files this small (by their size when opened) are read on the async worker itself: a
/// read of a few pages from the page cache costs less than the handoff to the blocking
/// pool and back (two context switches and a wakeup per call). Larger ones are read on
/// the blocking pool, where a slow disk cannot stall other requests.
pub(crate) const INLINE_READ_BYTES: u64 = 64 * 1024;

/// Reads an opened regular file of at most `max` bytes (one that grew past it since it
/// was measured is refused too).
fn read_bounded(f: fs::File, len: u64, max: u64) -> io::Result<Result<Vec<u8>, u64>> {
    let bytes = Vec::with_capacity(usize::try_from(len.min(max)).unwrap_or(0));
    read_rest(&f, bytes, max)
}

/// Reads the rest of an opened regular file after `bytes`, refusing one that has grown
/// past `max` bytes in all.
fn read_rest(f: &fs::File, mut bytes: Vec<u8>, max: u64) -> io::Result<Result<Vec<u8>, u64>> {
    let have = bytes.len() as u64;
    f.take(max.saturating_add(1).saturating_sub(have))
        .read_to_end(&mut bytes)?;
    Ok(if bytes.len() as u64 > max {
        Err(max)
    } else {
        Ok(bytes)
    })
}

/// Reads at most `limit` bytes of an opened file: `Ok` with all of it, or `Err` with what
/// was read when there is more (it grew since it was measured).
fn read_upto(f: &fs::File, len: u64, limit: u64) -> io::Result<Result<Vec<u8>, Vec<u8>>> {
    let mut bytes = Vec::with_capacity(usize::try_from(len.min(limit)).unwrap_or(0));
    f.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok(if bytes.len() as u64 > limit {
        Err(bytes)
    } else {
        Ok(bytes)
    })
}

/// What a walk is for: a listing shows the directories on the way to what the caller may
/// read; search results (glob, grep) show only what it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Show {
    Listing,
    Results,
}

/// How much of a path [`FileService::parent_dir`] may create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Create {
    Nothing,
    /// The zone's own directory (a zone starts out without one).
    ZoneRoot,
    /// Every missing parent.
    Parents,
}

impl FileService {
    pub fn new(data_dir: &Path, max_file_bytes: u64) -> io::Result<Self> {
        let root = data_dir.join("zones");
        fs::create_dir_all(&root)?;
        // The operator's data dir, resolved once at startup (it may sit behind a link);
        // nothing inside a zone is ever resolved this way.
        #[allow(clippy::disallowed_methods)]
        let root = root.canonicalize()?;
        let root_fd = beneath::open_root(&root)?;
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                root_fd,
                max_file_bytes,
                locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            }),
            greps: Arc::new(super::grep::Greps::new(Default::default(), None)),
            metrics: None,
        })
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

    /// Counts a file read by how it was done (`inline` or `blocking`).
    fn count_read(&self, mode: &str) {
        if let Some(m) = &self.metrics {
            m.file_reads.with_label_values(&[mode]).inc();
        }
    }

    pub fn max_file_bytes(&self) -> u64 {
        self.inner.max_file_bytes
    }

    fn root(&self) -> BorrowedFd<'_> {
        self.inner.root_fd.as_fd()
    }

    /// Opens the directory that holds `zp` (the zones directory for a zone root) without
    /// following links, and returns it with the entry's name there.
    fn parent_dir<'p>(&self, zp: &'p ZonePath, create: Create) -> io::Result<(OwnedFd, &'p str)> {
        let Some((leaf, parents)) = zp.rel.split_last() else {
            return Ok((self.root().try_clone_to_owned()?, zp.zone.as_str()));
        };
        let dir = match create {
            Create::Nothing => {
                let zone = beneath::open_subdir(self.root(), &zp.zone)?;
                beneath::open_dir(zone.as_fd(), parents)?
            }
            Create::ZoneRoot => {
                let (zone, created) = beneath::open_dir_create(self.root(), &[&zp.zone])?;
                if created {
                    beneath::fsync(self.root())?;
                }
                beneath::open_dir(zone.as_fd(), parents)?
            }
            Create::Parents => {
                let mut all = Vec::with_capacity(parents.len() + 1);
                all.push(zp.zone.as_str());
                all.extend(parents.iter().map(String::as_str));
                beneath::open_dir_create(self.root(), &all)?.0
            }
        };
        Ok((dir, leaf.as_str()))
    }

    /// The entry at `zp` and the directory holding it; `None` when nothing is there.
    fn lookup<'p>(
        &self,
        zp: &'p ZonePath,
    ) -> Result<Option<(OwnedFd, &'p str, rustix::fs::Stat)>, RpcError> {
        let (dir, leaf) = match self.parent_dir(zp, Create::Nothing) {
            Ok(found) => found,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(io_err(e, zp)),
        };
        match beneath::lstat(dir.as_fd(), leaf) {
            Ok(st) => Ok(Some((dir, leaf, st))),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(io_err(e, zp)),
        }
    }

    fn stripe(&self, p: &ZonePath) -> usize {
        let mut h = DefaultHasher::new();
        p.zone.hash(&mut h);
        p.rel.hash(&mut h);
        (h.finish() as usize) % LOCK_STRIPES
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, RpcError> + Send + 'static,
    ) -> Result<T, RpcError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|_| RpcError::internal())?
    }

    /// Resolves caller path text, refusing paths the disk could not hold.
    fn resolve(&self, view: &ZoneView, raw: &str) -> Result<Target, RpcError> {
        let target = view.resolve(raw)?;
        if let Target::Zone(zp) = &target {
            self.check_disk_len(zp)?;
        }
        Ok(target)
    }

    /// Every path this server puts on disk for `zp` — `<root>/<zone>/…/<name>` and the
    /// temporary file written beside it — must fit in `PATH_MAX`, so tools that reach the
    /// data dir by path (backups, restores, the startup sweep) can reach everything, and a
    /// path that cannot be stored is refused before any directory is made for it. Each
    /// name is within `NAME_MAX` already: the normaliser's limit, zone names' 63 bytes,
    /// temporary names' 27.
    fn check_disk_len(&self, zp: &ZonePath) -> Result<(), RpcError> {
        let zone_dir = self.inner.root.as_os_str().len() + 1 + zp.zone.len();
        let parent = zone_dir
            + zp.rel
                .iter()
                .rev()
                .skip(1)
                .map(|c| c.len() + 1)
                .sum::<usize>();
        let own = zp.rel.last().map_or(0, |c| c.len() + 1);
        let longest = (parent + own).max(parent + 1 + TEMP_NAME_LEN);
        if longest >= PATH_MAX || zp.rel.iter().any(|c| c.len() > MAX_NAME_BYTES) {
            let room = (PATH_MAX - 1).saturating_sub(zone_dir + 1 + TEMP_NAME_LEN + 1);
            return Err(RpcError::invalid_path(format!(
                "path too long for this server's storage: at most about {room} bytes below a zone root"
            )));
        }
        Ok(())
    }

    fn zone_path(&self, view: &ZoneView, raw: &str) -> Result<ZonePath, RpcError> {
        match self.resolve(view, raw)? {
            Target::Zone(p) => Ok(p),
            Target::Root => Err(RpcError::invalid_path(
                "this operation needs a path inside a zone: /zone/<zone>/…",
            )),
        }
    }

    // ---------------------------------------------------------------- reads

    pub async fn read(&self, acc: &Access, p: ReadParams) -> Result<ReadResult, RpcError> {
        let zp = self.zone_path(&acc.view, &p.path)?;
        acc.require_read(&zp)?;
        let max = self.inner.max_file_bytes;
        let shown = zp.display();
        let too_large =
            |max| RpcError::new(ErrorCode::TooLarge, format!("file larger than {max} bytes"));
        // Opening is a few cheap syscalls (one per directory, then fstat), done here; every
        // component still goes through the no-symlink resolution beneath the zones root.
        let (dir, leaf) = self
            .parent_dir(&zp, Create::Nothing)
            .map_err(|e| io_err(e, &zp))?;
        let f = beneath::open_read(dir.as_fd(), leaf).map_err(|e| io_err(e, &zp))?;
        drop(dir);
        let meta = f.metadata().map_err(|e| io_err(e, &zp))?;
        if meta.is_dir() {
            return Err(RpcError::invalid_params(format!("{shown} is a directory")));
        }
        if !meta.is_file() {
            return Err(RpcError::not_found(&shown));
        }
        if meta.len() > max {
            return Err(too_large(max));
        }
        let inline = INLINE_READ_BYTES.min(max);
        let first = if meta.len() <= inline {
            self.count_read("inline");
            read_upto(&f, meta.len(), inline).map_err(|e| io_err(e, &zp))?
        } else {
            Err(Vec::new())
        };
        let bytes = match first {
            Ok(bytes) => bytes,
            // Large, or grown past the inline size since it was measured: the rest on the
            // blocking pool.
            Err(start) => {
                self.count_read("blocking");
                let zp = zp.clone();
                self.blocking(move |_| {
                    read_rest(&f, start, max)
                        .map_err(|e| io_err(e, &zp))?
                        .map_err(too_large)
                })
                .await?
            }
        };
        let id = content_id(&bytes);
        let size = bytes.len() as u64;
        let content = match p.encoding {
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(&bytes),
            Encoding::Utf8 => String::from_utf8(bytes).map_err(|_| {
                RpcError::invalid_params(format!(
                    "{shown} is not valid UTF-8; read it with encoding \"base64\""
                ))
            })?,
        };
        Ok(ReadResult {
            path: shown,
            content,
            encoding: p.encoding,
            size,
            content_id: id,
        })
    }

    pub async fn stat(&self, acc: &Access, p: PathParams) -> Result<StatResult, RpcError> {
        let zp = match self.resolve(&acc.view, &p.path)? {
            Target::Root => {
                return Ok(StatResult {
                    path: "/".into(),
                    exists: true,
                    is_dir: true,
                    size: 0,
                    modified: None,
                    content_id: None,
                });
            }
            Target::Zone(zp) => zp,
        };
        // A directory on the way to something readable may be looked at, not a file.
        let readable = acc.can_read(&zp);
        if !readable && !acc.on_the_way(&zp) {
            acc.require_read(&zp)?;
        }
        let max = self.inner.max_file_bytes;
        let svc = self.clone();
        let denied = (!readable).then(|| acc.require_read(&zp).err()).flatten();
        self.blocking(move |_| {
            let shown = zp.display();
            let Some((dir, leaf, st)) = svc.lookup(&zp)? else {
                if zp.is_root() {
                    // A zone without files has no directory yet.
                    return Ok(StatResult {
                        path: shown,
                        exists: true,
                        is_dir: true,
                        size: 0,
                        modified: None,
                        content_id: None,
                    });
                }
                return Ok(missing(shown));
            };
            let ft = beneath::kind(&st);
            if let Some(denied) = denied
                && ft != FileType::Directory
            {
                return Err(denied);
            }
            if ft == FileType::Symlink {
                return Err(link_refused(&zp));
            }
            if ft != FileType::Directory && ft != FileType::RegularFile {
                return Ok(missing(shown));
            }
            let (is_dir, size, modified, cid) = if ft == FileType::Directory {
                let d = beneath::open_subdir(dir.as_fd(), leaf).map_err(|e| io_err(e, &zp))?;
                let meta = fs::File::from(d).metadata().map_err(|e| io_err(e, &zp))?;
                (true, 0, rfc3339(meta.modified()), None)
            } else {
                let f = beneath::open_read(dir.as_fd(), leaf).map_err(|e| io_err(e, &zp))?;
                let meta = f.metadata().map_err(|e| io_err(e, &zp))?;
                if !meta.is_file() {
                    return Ok(missing(shown));
                }
                let cid = if meta.len() <= max {
                    read_bounded(f, meta.len(), max)
                        .map_err(|e| io_err(e, &zp))?
                        .ok()
                        .map(|b| content_id(&b))
                } else {
                    None
                };
                (false, meta.len(), rfc3339(meta.modified()), cid)
            };
            Ok(StatResult {
                path: shown,
                exists: true,
                is_dir,
                size,
                modified,
                content_id: cid,
            })
        })
        .await
    }

    pub async fn list(&self, acc: &Access, p: ListParams) -> Result<ListResult, RpcError> {
        let limit = check_page(p.limit)?;
        let bases = self.bases(acc, &p.path, true)?;
        let recursive = p.recursive;
        let root_listing = matches!(self.resolve(&acc.view, &p.path)?, Target::Root);
        let svc = self.clone();
        let acc = acc.clone();
        let all = self
            .blocking(move |_| {
                let mut items = Vec::new();
                for base in &bases {
                    if root_listing {
                        items.push(ListItem {
                            path: base.display(),
                            name: base.zone.clone(),
                            is_dir: true,
                            size: 0,
                            modified: None,
                        });
                        if !recursive || !(acc.can_read(base) || acc.on_the_way(base)) {
                            continue;
                        }
                    }
                    svc.walk(
                        &acc,
                        Show::Listing,
                        base,
                        recursive,
                        false,
                        &mut |zp, meta| {
                            items.push(ListItem {
                                path: zp.display(),
                                name: zp.rel.last().cloned().unwrap_or_default(),
                                is_dir: meta.is_dir(),
                                size: if meta.is_file() { meta.len() } else { 0 },
                                modified: rfc3339(meta.modified()),
                            });
                            true
                        },
                    )?;
                }
                Ok(items)
            })
            .await?;
        let (items, total, has_more, next_offset) = page(all, p.offset, limit);
        Ok(ListResult {
            items,
            total,
            has_more,
            next_offset,
        })
    }

    pub async fn glob(&self, acc: &Access, p: GlobParams) -> Result<GlobResult, RpcError> {
        let limit = check_page(p.limit)?;
        if p.pattern.is_empty() || p.pattern.len() > MAX_PATTERN_LEN || p.pattern.contains('\0') {
            return Err(RpcError::invalid_params(format!(
                "pattern must be 1-{MAX_PATTERN_LEN} bytes without NUL"
            )));
        }
        if p.pattern.split('/').any(|c| c == "..") {
            return Err(RpcError::invalid_params(
                "'..' is not allowed in glob patterns",
            ));
        }
        let absolute = p.pattern.starts_with('/');
        let matcher = globset::GlobBuilder::new(p.pattern.trim_start_matches('/'))
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| RpcError::invalid_params(format!("invalid glob pattern: {}", e.kind())))?
            .compile_matcher();
        let base_display = match self.resolve(&acc.view, &p.path)? {
            Target::Root => "/".to_owned(),
            Target::Zone(zp) => zp.display(),
        };
        let bases = self.bases(acc, &p.path, false)?;
        let svc = self.clone();
        let acc = acc.clone();
        let all = self
            .blocking(move |_| {
                let mut out = Vec::new();
                let prefix = if base_display == "/" {
                    "/".to_owned()
                } else {
                    format!("{base_display}/")
                };
                for base in &bases {
                    svc.walk(&acc, Show::Results, base, true, false, &mut |zp, _| {
                        let shown = zp.display();
                        let candidate = if absolute {
                            shown.trim_start_matches('/')
                        } else {
                            shown.strip_prefix(&prefix).unwrap_or(&shown)
                        };
                        if matcher.is_match(candidate) {
                            out.push(shown.clone());
                        }
                        true
                    })?;
                }
                Ok(out)
            })
            .await?;
        let (items, total, has_more, next_offset) = page(all, p.offset, limit);
        Ok(GlobResult {
            items,
            total,
            has_more,
            next_offset,
        })
    }

    /// `grep`, under a budget and a concurrency cap per token (see [`super::grep`]).
    pub async fn grep(
        &self,
        token: uuid::Uuid,
        acc: &Access,
        p: GrepParams,
    ) -> Result<GrepResult, RpcError> {
        super::grep::run(self, &self.greps, token, acc, p).await
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
        match self.resolve(view, raw)? {
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

    /// Visits entries below `base` in name order through descriptors, never following or
    /// showing a symbolic link, and hiding temporary files. A missing zone root is an empty
    /// zone; another missing base is an error. A base that is a file is an error, or with
    /// `file_base` the one entry visited. `visit` returns false to stop.
    ///
    /// Only what `acc` lets the caller see is visited: what it may read, and for a listing
    /// the directories on the way to that. Nothing else is visited or entered. Reading is
    /// inherited downwards, so below a readable base nothing needs checking.
    pub(super) fn walk(
        &self,
        acc: &Access,
        show: Show,
        base: &ZonePath,
        recursive: bool,
        file_base: bool,
        visit: &mut dyn FnMut(&ZonePath, &Entry<'_>) -> bool,
    ) -> Result<(), RpcError> {
        let whole = acc.can_read(base);
        let Some((dir, leaf, st)) = self.lookup(base)? else {
            return if base.is_root() {
                Ok(())
            } else {
                Err(RpcError::not_found(&base.display()))
            };
        };
        match beneath::kind(&st) {
            FileType::Directory => {}
            FileType::RegularFile if file_base => {
                if whole {
                    visit(base, &Entry::new(dir.as_fd(), leaf, st));
                    return Ok(());
                }
                return acc.require_read(base);
            }
            FileType::RegularFile => {
                return Err(RpcError::invalid_params(format!(
                    "{} is a file, not a directory",
                    base.display()
                )));
            }
            FileType::Symlink => return Err(link_refused(base)),
            _ => return Err(RpcError::not_found(&base.display())),
        }
        let sub = beneath::open_subdir(dir.as_fd(), leaf).map_err(|e| io_err(e, base))?;
        let depth = if recursive { super::path::MAX_DEPTH } else { 1 };
        let mut zp = base.clone();
        beneath::walk(
            sub.as_fd(),
            depth,
            MAX_WALK,
            &|name| name.starts_with(TEMP_PREFIX),
            &mut |rel, entry| {
                zp.rel.truncate(base.rel.len());
                zp.rel.extend_from_slice(rel);
                let shown = if whole {
                    Shown::Readable
                } else {
                    acc.shows(&zp, entry.is_dir())
                };
                match (shown, show) {
                    (Shown::Hidden, _) => Step::Skip,
                    (Shown::OnTheWay, Show::Results) => Step::Continue,
                    _ if visit(&zp, entry) => Step::Continue,
                    _ => Step::Stop,
                }
            },
        )
        .map_err(|e| io_err(e, base))
    }

    // ---------------------------------------------------------------- writes

    pub async fn write(&self, acc: &Access, p: WriteParams) -> Result<WriteResult, RpcError> {
        let zp = self.zone_path(&acc.view, &p.path)?;
        acc.require_write(&zp)?;
        let readable = acc.can_read(&zp);
        if p.if_match.is_some() && !readable {
            // A content id comes from a read; answering "conflict" or not would tell a
            // caller who cannot read the zone what a file holds.
            let what = if zp.permission.can_read() {
                zp.display()
            } else {
                format!("zone '{}'", zp.zone)
            };
            return Err(RpcError::permission_denied(format!(
                "permission denied: if_match needs read access, and {what} is write-only for this token"
            )));
        }
        if zp.is_root() {
            return Err(RpcError::invalid_params("cannot write to a zone root"));
        }
        let bytes = match p.encoding {
            Encoding::Utf8 => p.content.into_bytes(),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(p.content.as_bytes())
                .map_err(|_| RpcError::invalid_params("content is not valid base64"))?,
        };
        self.check_size(bytes.len())?;
        let svc = self.clone();
        self.blocking(move |_| {
            let _g = svc.lock(&zp);
            let created = svc.check_if_match(&zp, p.if_match.as_deref())?;
            let (dir, leaf) = svc
                .parent_dir(&zp, Create::Parents)
                .map_err(|e| io_err(e, &zp))?;
            svc.atomic_write(dir.as_fd(), leaf, &bytes)
                .map_err(|e| io_err(e, &zp))?;
            Ok(WriteResult {
                path: zp.display(),
                size: bytes.len() as u64,
                content_id: content_id(&bytes),
                // Whether the file existed is not the business of a caller who cannot read.
                created: readable.then_some(created),
            })
        })
        .await
    }

    pub async fn edit(&self, acc: &Access, p: EditParams) -> Result<EditResult, RpcError> {
        let zp = self.zone_path(&acc.view, &p.path)?;
        acc.require_write(&zp)?;
        acc.require_read(&zp)?;
        if p.edits.is_empty() || p.edits.len() > 1000 {
            return Err(RpcError::invalid_params(
                "edits must hold 1-1000 {old_str, new_str} items",
            ));
        }
        let max = self.inner.max_file_bytes;
        let svc = self.clone();
        self.blocking(move |_| {
            let _g = svc.lock(&zp);
            let (dir, leaf) = svc
                .parent_dir(&zp, Create::Nothing)
                .map_err(|e| io_err(e, &zp))?;
            let f = beneath::open_read(dir.as_fd(), leaf).map_err(|e| io_err(e, &zp))?;
            let meta = f.metadata().map_err(|e| io_err(e, &zp))?;
            if !meta.is_file() {
                return Err(RpcError::invalid_params(format!("{} is not a file", zp.display())));
            }
            let old = read_bounded(f, meta.len(), max)
                .map_err(|e| io_err(e, &zp))?
                .map_err(too_large)?;
            if let Some(want) = &p.if_match
                && *want != content_id(&old)
            {
                return Err(conflict(&zp));
            }
            let text = String::from_utf8(old)
                .map_err(|_| RpcError::invalid_params(format!("{} is not valid UTF-8 text", zp.display())))?;
            let edits = p.edits.iter().map(|e| (e.old_str.as_str(), e.new_str.as_str(), e.replace_all));
            let (text, replacements) = edit::apply(text, edits, max).map_err(|e| match e {
                EditError::EmptyOld { edit } => {
                    RpcError::invalid_params(format!("edit {edit}: old_str is empty"))
                }
                EditError::NotFound { edit } => RpcError::invalid_params(format!(
                    "edit {edit}: old_str not found in {}",
                    zp.display()
                )),
                EditError::Ambiguous { edit, count } => RpcError::invalid_params(format!(
                    "edit {edit}: old_str occurs {count} times; add surrounding context or set replace_all"
                )),
                EditError::TooLarge { edit } => RpcError::new(
                    ErrorCode::TooLarge,
                    format!("edit {edit}: the result would be larger than the {max} byte limit"),
                ),
            })?;
            svc.atomic_write(dir.as_fd(), leaf, text.as_bytes())
                .map_err(|e| io_err(e, &zp))?;
            Ok(EditResult { path: zp.display(), size: text.len() as u64, content_id: content_id(text.as_bytes()), replacements })
        })
        .await
    }

    pub async fn delete(&self, acc: &Access, p: PathParams) -> Result<PathResult, RpcError> {
        let zp = self.zone_path(&acc.view, &p.path)?;
        acc.require_write(&zp)?;
        if zp.is_root() {
            return Err(RpcError::invalid_params("cannot delete a zone root"));
        }
        let readable = acc.can_read(&zp);
        let svc = self.clone();
        self.blocking(move |_| {
            let _g = svc.lock(&zp);
            let Some((dir, leaf, st)) = svc.lookup(&zp)? else {
                // A caller who cannot read the zone gets the same answer whether or not
                // the file was there: afterwards it is not.
                return if readable {
                    Err(RpcError::not_found(&zp.display()))
                } else {
                    Ok(PathResult { path: zp.display() })
                };
            };
            match beneath::kind(&st) {
                FileType::Directory => {
                    return Err(RpcError::invalid_params(format!(
                        "{} is a directory; use rmdir",
                        zp.display()
                    )));
                }
                FileType::Symlink => return Err(link_refused(&zp)),
                _ => {}
            }
            beneath::unlink(dir.as_fd(), leaf).map_err(|e| io_err(e, &zp))?;
            beneath::fsync(dir.as_fd()).map_err(|e| io_err(e, &zp))?;
            Ok(PathResult { path: zp.display() })
        })
        .await
    }

    pub async fn mkdir(&self, acc: &Access, p: MkdirParams) -> Result<PathResult, RpcError> {
        let zp = self.zone_path(&acc.view, &p.path)?;
        acc.require_write(&zp)?;
        let svc = self.clone();
        self.blocking(move |_| {
            let _g = svc.lock(&zp);
            let create = if p.parents {
                Create::Parents
            } else {
                Create::ZoneRoot
            };
            let (dir, leaf) = svc.parent_dir(&zp, create).map_err(|e| io_err(e, &zp))?;
            match beneath::mkdir(dir.as_fd(), leaf) {
                Ok(()) => beneath::fsync(dir.as_fd()).map_err(|e| io_err(e, &zp))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let st = beneath::lstat(dir.as_fd(), leaf).map_err(|e| io_err(e, &zp))?;
                    match beneath::kind(&st) {
                        FileType::Directory if p.exist_ok || zp.is_root() => {}
                        FileType::Symlink => return Err(link_refused(&zp)),
                        _ => return Err(RpcError::exists(&zp.display())),
                    }
                }
                Err(e) => return Err(io_err(e, &zp)),
            }
            Ok(PathResult { path: zp.display() })
        })
        .await
    }

    pub async fn rmdir(&self, acc: &Access, p: RmdirParams) -> Result<PathResult, RpcError> {
        let zp = self.zone_path(&acc.view, &p.path)?;
        acc.require_write(&zp)?;
        if zp.is_root() {
            return Err(RpcError::invalid_params("cannot remove a zone root"));
        }
        let svc = self.clone();
        self.blocking(move |_| {
            let _g = svc.lock(&zp);
            let Some((dir, leaf, st)) = svc.lookup(&zp)? else {
                return Err(RpcError::not_found(&zp.display()));
            };
            match beneath::kind(&st) {
                FileType::Directory => {}
                FileType::Symlink => return Err(link_refused(&zp)),
                _ => {
                    return Err(RpcError::invalid_params(format!(
                        "{} is not a directory; use delete",
                        zp.display()
                    )));
                }
            }
            if p.recursive {
                beneath::remove_tree(dir.as_fd(), leaf).map_err(|e| io_err(e, &zp))?;
            } else {
                beneath::rmdir(dir.as_fd(), leaf).map_err(|e| io_err(e, &zp))?;
            }
            beneath::fsync(dir.as_fd()).map_err(|e| io_err(e, &zp))?;
            Ok(PathResult { path: zp.display() })
        })
        .await
    }

    pub async fn rename(&self, acc: &Access, p: RenameParams) -> Result<RenameResult, RpcError> {
        let from = self.zone_path(&acc.view, &p.old_path)?;
        let to = self.zone_path(&acc.view, &p.new_path)?;
        // A move reads its source: it shows the file at a new place (maybe a zone the
        // caller can read) and tells whether it existed.
        acc.require_read(&from)?;
        acc.require_write(&from)?;
        acc.require_write(&to)?;
        if from.is_root() || to.is_root() {
            return Err(RpcError::invalid_params("cannot rename a zone root"));
        }
        if from.zone == to.zone && to.rel.starts_with(&from.rel) {
            return Err(RpcError::invalid_params(
                "cannot move a directory into itself",
            ));
        }
        let svc = self.clone();
        self.blocking(move |_| {
            let (a, b) = (svc.stripe(&from), svc.stripe(&to));
            let _g1 = svc.inner.locks[a.min(b)]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let _g2 = (a != b).then(|| {
                svc.inner.locks[a.max(b)]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
            });
            let Some((src_dir, src_leaf, src_st)) = svc.lookup(&from)? else {
                return Err(RpcError::not_found(&from.display()));
            };
            let src_kind = beneath::kind(&src_st);
            if src_kind == FileType::Symlink {
                return Err(link_refused(&from));
            }
            if let Some((_, _, dst_st)) = svc.lookup(&to)? {
                match beneath::kind(&dst_st) {
                    FileType::Symlink => return Err(link_refused(&to)),
                    FileType::Directory => return Err(RpcError::exists(&to.display())),
                    _ if !p.overwrite || src_kind == FileType::Directory => {
                        return Err(RpcError::exists(&to.display()));
                    }
                    _ => {}
                }
            }
            let (dst_dir, dst_leaf) = svc
                .parent_dir(&to, Create::Parents)
                .map_err(|e| io_err(e, &to))?;
            beneath::rename(src_dir.as_fd(), src_leaf, dst_dir.as_fd(), dst_leaf)
                .map_err(|e| io_err(e, &to))?;
            beneath::fsync(dst_dir.as_fd()).map_err(|e| io_err(e, &to))?;
            beneath::fsync(src_dir.as_fd()).map_err(|e| io_err(e, &from))?;
            Ok(RenameResult {
                old_path: from.display(),
                new_path: to.display(),
            })
        })
        .await
    }

    // ---------------------------------------------------------------- helpers

    fn check_size(&self, len: usize) -> Result<(), RpcError> {
        if len as u64 > self.inner.max_file_bytes {
            return Err(too_large(self.inner.max_file_bytes));
        }
        Ok(())
    }

    fn lock(&self, p: &ZonePath) -> std::sync::MutexGuard<'_, ()> {
        self.inner.locks[self.stripe(p)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Checks `if_match` against the current content; returns whether the file is new.
    fn check_if_match(&self, zp: &ZonePath, if_match: Option<&str>) -> Result<bool, RpcError> {
        let Some((dir, leaf, st)) = self.lookup(zp)? else {
            if if_match.is_some() {
                return Err(conflict(zp));
            }
            return Ok(true);
        };
        match beneath::kind(&st) {
            FileType::Directory => {
                return Err(RpcError::invalid_params(format!(
                    "{} is a directory",
                    zp.display()
                )));
            }
            FileType::Symlink => return Err(link_refused(zp)),
            _ => {}
        }
        if let Some(want) = if_match {
            let max = self.inner.max_file_bytes;
            let f = beneath::open_read(dir.as_fd(), leaf).map_err(|e| io_err(e, zp))?;
            let meta = f.metadata().map_err(|e| io_err(e, zp))?;
            let current = read_bounded(f, meta.len(), max).map_err(|e| io_err(e, zp))?;
            if current.map(|b| content_id(&b)).ok().as_deref() != Some(want) {
                return Err(conflict(zp));
            }
        }
        Ok(false)
    }

    /// temp file → write → fsync → rename over `name` in `dir` → fsync the directory.
    fn atomic_write(&self, dir: BorrowedFd<'_>, name: &str, bytes: &[u8]) -> io::Result<()> {
        let tmp = format!("{TEMP_PREFIX}{}", random_suffix());
        let res = (|| -> io::Result<()> {
            let mut f = beneath::create_new(dir, &tmp)?;
            // Held until the file is closed after its rename, so a replica sweeping a shared
            // data dir at startup can tell this in-flight file from one abandoned by a crash.
            // Best effort: a filesystem without locks must not fail the write.
            let _ = rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive);
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            beneath::rename(dir, &tmp, dir, name)?;
            beneath::fsync(dir)
        })();
        if res.is_err() {
            let _ = beneath::unlink(dir, &tmp);
        }
        res
    }
}

/// What a startup sweep of temporary files did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Abandoned temporary files deleted.
    pub removed: u64,
    /// Temporary files left alone: still locked by a writer, too young, or not removable.
    pub kept: u64,
}

impl FileService {
    /// Deletes temporary files that a writer abandoned when its process died between
    /// creating the file and renaming it into place. Clients never see them (walks hide
    /// them, paths cannot name them), but they hold disk space and keep directories from
    /// being empty.
    ///
    /// A file is abandoned when it was last modified before `started` (when this process
    /// began, so none of its own writes qualify) and no process holds its lock (every
    /// in-flight write locks its file, so another replica sharing the data dir keeps its
    /// own). Never follows symlinks.
    pub fn sweep_temp_files(&self, started: std::time::SystemTime) -> SweepReport {
        use rustix::fs::{FlockOperation, flock};
        let mut report = SweepReport::default();
        let _ = beneath::walk(
            self.root(),
            SWEEP_DEPTH,
            usize::MAX,
            &|_| false,
            &mut |_, entry| {
                if !entry.is_file() || !entry.name().starts_with(TEMP_PREFIX) {
                    return Step::Continue;
                }
                let old = entry.modified().is_ok_and(|t| t < started);
                // Opening for reading is enough to take the lock; it is held until the
                // file is gone and dies with the descriptor.
                let lock = if old {
                    entry
                        .open()
                        .ok()
                        .filter(|f| flock(f, FlockOperation::NonBlockingLockExclusive).is_ok())
                } else {
                    None
                };
                if lock.is_some() && entry.remove().is_ok() {
                    report.removed += 1;
                } else {
                    report.kept += 1;
                }
                Step::Continue
            },
        );
        report
    }
}

fn conflict(zp: &ZonePath) -> RpcError {
    RpcError::new(
        ErrorCode::Conflict,
        format!(
            "conflict: {} changed since if_match was read; read it again and retry",
            zp.display()
        ),
    )
}

fn missing(path: String) -> StatResult {
    StatResult {
        path,
        exists: false,
        is_dir: false,
        size: 0,
        modified: None,
        content_id: None,
    }
}
