//! File operations on `<data_dir>/zones/<zone>/…`.
//!
//! Every operation receives already-normalised [`ZonePath`]s and checks the zone
//! permission first. Blocking filesystem work runs on tokio's blocking pool. Writes go to
//! a temporary file in the target directory, are fsynced, renamed into place, and the
//! directory is fsynced, so a reader sees the old or the new content, never a mix, and an
//! acknowledged write survives a crash. Mutations of one path are serialised by a striped
//! lock so `if_match` checks and the write that follows are atomic.

use super::path::{TEMP_PREFIX, Target, ZonePath, ZoneView};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use nexus_wire::jsonrpc::printable;
use nexus_wire::methods::*;
use nexus_wire::{ErrorCode, RpcError};
use sha2::{Digest, Sha256};
use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const LOCK_STRIPES: usize = 256;
/// Most items a single page may return.
pub const MAX_PAGE: usize = 1000;
/// Entries a listing, glob or grep will walk before it stops.
const MAX_WALK: usize = 200_000;
/// Matches grep collects before it stops and reports `truncated`.
const MAX_GREP_MATCHES: usize = 100_000;
/// Longest line text a grep match carries.
const MAX_GREP_LINE: usize = 1000;
const MAX_PATTERN_LEN: usize = 1024;

#[derive(Clone)]
pub struct FileService {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
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
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            RpcError::new(ErrorCode::Internal, "storage full")
        }
        _ => {
            tracing::error!(error = %e, "file operation failed");
            RpcError::internal()
        }
    }
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

fn check_page(limit: usize) -> Result<usize, RpcError> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(RpcError::invalid_params(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    Ok(limit)
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap_or_default();
    hex::encode(b)
}

impl FileService {
    pub fn new(data_dir: &Path, max_file_bytes: u64) -> io::Result<Self> {
        let root = data_dir.join("zones");
        fs::create_dir_all(&root)?;
        let root = root.canonicalize()?;
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                max_file_bytes,
                locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            }),
        })
    }

    pub fn max_file_bytes(&self) -> u64 {
        self.inner.max_file_bytes
    }

    fn disk(&self, p: &ZonePath) -> PathBuf {
        let mut d = self.inner.root.join(&p.zone);
        for c in &p.rel {
            d.push(c);
        }
        d
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

    fn zone_path(view: &ZoneView, raw: &str) -> Result<ZonePath, RpcError> {
        match view.resolve(raw)? {
            Target::Zone(p) => Ok(p),
            Target::Root => Err(RpcError::invalid_path(
                "this operation needs a path inside a zone: /zone/<zone>/…",
            )),
        }
    }

    // ---------------------------------------------------------------- reads

    pub async fn read(&self, view: &ZoneView, p: ReadParams) -> Result<ReadResult, RpcError> {
        let zp = Self::zone_path(view, &p.path)?;
        zp.require_read()?;
        let disk = self.disk(&zp);
        let max = self.inner.max_file_bytes;
        let shown = zp.display();
        let bytes = self
            .blocking(move |_| {
                let meta = fs::symlink_metadata(&disk).map_err(|e| io_err(e, &zp))?;
                if meta.is_dir() {
                    return Err(RpcError::invalid_params(format!(
                        "{} is a directory",
                        zp.display()
                    )));
                }
                if !meta.is_file() {
                    return Err(RpcError::not_found(&zp.display()));
                }
                if meta.len() > max {
                    return Err(RpcError::new(
                        ErrorCode::TooLarge,
                        format!("file larger than {max} bytes"),
                    ));
                }
                fs::read(&disk).map_err(|e| io_err(e, &zp))
            })
            .await?;
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

    pub async fn stat(&self, view: &ZoneView, p: PathParams) -> Result<StatResult, RpcError> {
        let zp = match view.resolve(&p.path)? {
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
        zp.require_read()?;
        let disk = self.disk(&zp);
        let max = self.inner.max_file_bytes;
        self.blocking(move |_| {
            let shown = zp.display();
            let meta = match fs::symlink_metadata(&disk) {
                Ok(m) if m.is_dir() || m.is_file() => m,
                Ok(_) => return Ok(missing(shown)),
                Err(e) if e.kind() == io::ErrorKind::NotFound && zp.is_root() => {
                    return Ok(StatResult {
                        path: shown,
                        exists: true,
                        is_dir: true,
                        size: 0,
                        modified: None,
                        content_id: None,
                    });
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    return Ok(missing(shown));
                }
                Err(e) => return Err(io_err(e, &zp)),
            };
            let cid = if meta.is_file() && meta.len() <= max {
                Some(content_id(&fs::read(&disk).map_err(|e| io_err(e, &zp))?))
            } else {
                None
            };
            Ok(StatResult {
                path: shown,
                exists: true,
                is_dir: meta.is_dir(),
                size: if meta.is_file() { meta.len() } else { 0 },
                modified: rfc3339(meta.modified()),
                content_id: cid,
            })
        })
        .await
    }

    pub async fn list(&self, view: &ZoneView, p: ListParams) -> Result<ListResult, RpcError> {
        let limit = check_page(p.limit)?;
        let bases = self.bases(view, &p.path, true)?;
        let recursive = p.recursive;
        let root_listing = matches!(view.resolve(&p.path)?, Target::Root);
        let svc = self.clone();
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
                        if !recursive || !base.permission.can_read() {
                            continue;
                        }
                    }
                    svc.walk(base, recursive, false, &mut |zp, meta| {
                        items.push(ListItem {
                            path: zp.display(),
                            name: zp.rel.last().cloned().unwrap_or_default(),
                            is_dir: meta.is_dir(),
                            size: if meta.is_file() { meta.len() } else { 0 },
                            modified: rfc3339(meta.modified()),
                        });
                        true
                    })?;
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

    pub async fn glob(&self, view: &ZoneView, p: GlobParams) -> Result<GlobResult, RpcError> {
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
        let base_display = match view.resolve(&p.path)? {
            Target::Root => "/".to_owned(),
            Target::Zone(zp) => zp.display(),
        };
        let bases = self.bases(view, &p.path, false)?;
        let svc = self.clone();
        let all = self
            .blocking(move |_| {
                let mut out = Vec::new();
                let prefix = if base_display == "/" {
                    "/".to_owned()
                } else {
                    format!("{base_display}/")
                };
                for base in &bases {
                    svc.walk(base, true, false, &mut |zp, _| {
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

    pub async fn grep(&self, view: &ZoneView, p: GrepParams) -> Result<GrepResult, RpcError> {
        let limit = check_page(p.limit)?;
        if p.pattern.is_empty() || p.pattern.len() > MAX_PATTERN_LEN {
            return Err(RpcError::invalid_params(format!(
                "pattern must be 1-{MAX_PATTERN_LEN} bytes"
            )));
        }
        let re = regex::RegexBuilder::new(&p.pattern)
            .case_insensitive(p.ignore_case)
            .size_limit(1 << 20)
            .dfa_size_limit(4 << 20)
            .build()
            .map_err(|e| {
                let first = e.to_string().lines().last().unwrap_or("").trim().to_owned();
                RpcError::invalid_params(format!("invalid regex: {}", printable(&first)))
            })?;
        let bases = self.bases(view, &p.path, false)?;
        let max = self.inner.max_file_bytes;
        let svc = self.clone();
        let (all, truncated) = self
            .blocking(move |_| {
                let mut out = Vec::new();
                let mut truncated = false;
                for base in &bases {
                    let is_file = fs::symlink_metadata(svc.disk(base))
                        .map(|m| m.is_file())
                        .unwrap_or(false);
                    let mut scan = |zp: &ZonePath, meta: &fs::Metadata| -> bool {
                        if !meta.is_file() || meta.len() > max {
                            return true;
                        }
                        let Ok(bytes) = fs::read(svc.disk(zp)) else {
                            return true;
                        };
                        // Binary files are skipped, as grep tools do.
                        let Ok(text) = std::str::from_utf8(&bytes) else {
                            return true;
                        };
                        let shown = zp.display();
                        for (i, line) in text.lines().enumerate() {
                            if re.is_match(line) {
                                if out.len() >= MAX_GREP_MATCHES {
                                    truncated = true;
                                    return false;
                                }
                                let text: String = line.chars().take(MAX_GREP_LINE).collect();
                                out.push(GrepMatch {
                                    path: shown.clone(),
                                    line: i as u64 + 1,
                                    text,
                                });
                            }
                        }
                        true
                    };
                    if is_file {
                        let meta =
                            fs::symlink_metadata(svc.disk(base)).map_err(|e| io_err(e, base))?;
                        scan(base, &meta);
                    } else {
                        svc.walk(base, true, false, &mut scan)?;
                    }
                    if truncated {
                        break;
                    }
                }
                Ok((out, truncated))
            })
            .await?;
        let (items, total, has_more, next_offset) = page(all, p.offset, limit);
        Ok(GrepResult {
            items,
            total,
            has_more,
            next_offset,
            truncated,
        })
    }

    /// The zone locations a listing, glob or grep starting at `raw` covers. For the root of
    /// a multi-zone view: every zone (only readable ones unless `include_unreadable`).
    fn bases(
        &self,
        view: &ZoneView,
        raw: &str,
        include_unreadable: bool,
    ) -> Result<Vec<ZonePath>, RpcError> {
        match view.resolve(raw)? {
            Target::Root => Ok(view
                .zones()
                .into_iter()
                .filter(|(_, perm)| include_unreadable || perm.can_read())
                .map(|(z, _)| view.zone_root(&z))
                .collect()),
            Target::Zone(zp) => {
                zp.require_read()?;
                Ok(vec![zp])
            }
        }
    }

    /// Visits entries below `base` in name order, without following symlinks and hiding
    /// temporary files. A missing zone root is an empty zone; another missing base is an
    /// error. `visit` returns false to stop.
    fn walk(
        &self,
        base: &ZonePath,
        recursive: bool,
        _files_only: bool,
        visit: &mut dyn FnMut(&ZonePath, &fs::Metadata) -> bool,
    ) -> Result<(), RpcError> {
        let disk = self.disk(base);
        match fs::symlink_metadata(&disk) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.is_file() => {
                return Err(RpcError::invalid_params(format!(
                    "{} is a file, not a directory",
                    base.display()
                )));
            }
            Ok(_) => return Err(RpcError::not_found(&base.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound && base.is_root() => return Ok(()),
            Err(e) => return Err(io_err(e, base)),
        }
        let walker = walkdir::WalkDir::new(&disk)
            .min_depth(1)
            .max_depth(if recursive { super::path::MAX_DEPTH } else { 1 })
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| !e.file_name().to_string_lossy().starts_with(TEMP_PREFIX));
        for (n, entry) in walker.enumerate() {
            if n >= MAX_WALK {
                break;
            }
            let Ok(entry) = entry else { continue };
            let ft = entry.file_type();
            if ft.is_symlink() || !(ft.is_dir() || ft.is_file()) {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(&disk) else {
                continue;
            };
            let mut zp = base.clone();
            let mut ok = true;
            for c in rel.components() {
                match c.as_os_str().to_str() {
                    Some(s) => zp.rel.push(s.to_owned()),
                    None => ok = false,
                }
            }
            if !ok {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !visit(&zp, &meta) {
                break;
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- writes

    pub async fn write(&self, view: &ZoneView, p: WriteParams) -> Result<WriteResult, RpcError> {
        let zp = Self::zone_path(view, &p.path)?;
        zp.require_write()?;
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
            svc.atomic_write(&zp, &bytes)?;
            Ok(WriteResult {
                path: zp.display(),
                size: bytes.len() as u64,
                content_id: content_id(&bytes),
                created,
            })
        })
        .await
    }

    pub async fn edit(&self, view: &ZoneView, p: EditParams) -> Result<EditResult, RpcError> {
        let zp = Self::zone_path(view, &p.path)?;
        zp.require_write()?;
        zp.require_read()?;
        if p.edits.is_empty() || p.edits.len() > 1000 {
            return Err(RpcError::invalid_params(
                "edits must hold 1-1000 {old_str, new_str} items",
            ));
        }
        let svc = self.clone();
        self.blocking(move |_| {
            let _g = svc.lock(&zp);
            let disk = svc.disk(&zp);
            let meta = fs::symlink_metadata(&disk).map_err(|e| io_err(e, &zp))?;
            if !meta.is_file() {
                return Err(RpcError::invalid_params(format!("{} is not a file", zp.display())));
            }
            let old = fs::read(&disk).map_err(|e| io_err(e, &zp))?;
            if let Some(want) = &p.if_match
                && *want != content_id(&old)
            {
                return Err(conflict(&zp));
            }
            let mut text = String::from_utf8(old)
                .map_err(|_| RpcError::invalid_params(format!("{} is not valid UTF-8 text", zp.display())))?;
            let mut replacements = 0u64;
            for (i, e) in p.edits.iter().enumerate() {
                if e.old_str.is_empty() {
                    return Err(RpcError::invalid_params(format!("edit {}: old_str is empty", i + 1)));
                }
                let n = text.matches(&e.old_str).count();
                match (n, e.replace_all) {
                    (0, _) => {
                        return Err(RpcError::invalid_params(format!(
                            "edit {}: old_str not found in {}",
                            i + 1,
                            zp.display()
                        )));
                    }
                    (1, _) | (_, true) => {
                        text = text.replace(&e.old_str, &e.new_str);
                        replacements += n as u64;
                    }
                    (n, false) => {
                        return Err(RpcError::invalid_params(format!(
                            "edit {}: old_str occurs {n} times; add surrounding context or set replace_all",
                            i + 1
                        )));
                    }
                }
                svc.check_size(text.len())?;
            }
            svc.atomic_write(&zp, text.as_bytes())?;
            Ok(EditResult { path: zp.display(), size: text.len() as u64, content_id: content_id(text.as_bytes()), replacements })
        })
        .await
    }

    pub async fn delete(&self, view: &ZoneView, p: PathParams) -> Result<PathResult, RpcError> {
        let zp = Self::zone_path(view, &p.path)?;
        zp.require_write()?;
        if zp.is_root() {
            return Err(RpcError::invalid_params("cannot delete a zone root"));
        }
        let svc = self.clone();
        self.blocking(move |_| {
            let _g = svc.lock(&zp);
            let disk = svc.disk(&zp);
            let meta = fs::symlink_metadata(&disk).map_err(|e| io_err(e, &zp))?;
            if meta.is_dir() {
                return Err(RpcError::invalid_params(format!(
                    "{} is a directory; use rmdir",
                    zp.display()
                )));
            }
            fs::remove_file(&disk).map_err(|e| io_err(e, &zp))?;
            sync_parent(&disk).map_err(|e| io_err(e, &zp))?;
            Ok(PathResult { path: zp.display() })
        })
        .await
    }

    pub async fn mkdir(&self, view: &ZoneView, p: MkdirParams) -> Result<PathResult, RpcError> {
        let zp = Self::zone_path(view, &p.path)?;
        zp.require_write()?;
        let svc = self.clone();
        self.blocking(move |_| {
            let _g = svc.lock(&zp);
            let disk = svc.disk(&zp);
            match fs::symlink_metadata(&disk) {
                Ok(m) if m.is_dir() => {
                    return if p.exist_ok || zp.is_root() {
                        Ok(PathResult { path: zp.display() })
                    } else {
                        Err(RpcError::exists(&zp.display()))
                    };
                }
                Ok(_) => return Err(RpcError::exists(&zp.display())),
                Err(_) => {}
            }
            if p.parents {
                svc.make_dirs(&zp)?;
            } else {
                svc.ensure_zone_root(&zp)?;
                fs::create_dir(&disk).map_err(|e| io_err(e, &zp))?;
                sync_parent(&disk).map_err(|e| io_err(e, &zp))?;
            }
            Ok(PathResult { path: zp.display() })
        })
        .await
    }

    pub async fn rmdir(&self, view: &ZoneView, p: RmdirParams) -> Result<PathResult, RpcError> {
        let zp = Self::zone_path(view, &p.path)?;
        zp.require_write()?;
        if zp.is_root() {
            return Err(RpcError::invalid_params("cannot remove a zone root"));
        }
        let svc = self.clone();
        self.blocking(move |_| {
            let _g = svc.lock(&zp);
            let disk = svc.disk(&zp);
            let meta = fs::symlink_metadata(&disk).map_err(|e| io_err(e, &zp))?;
            if !meta.is_dir() {
                return Err(RpcError::invalid_params(format!(
                    "{} is not a directory; use delete",
                    zp.display()
                )));
            }
            if p.recursive {
                fs::remove_dir_all(&disk).map_err(|e| io_err(e, &zp))?;
            } else {
                fs::remove_dir(&disk).map_err(|e| io_err(e, &zp))?;
            }
            sync_parent(&disk).map_err(|e| io_err(e, &zp))?;
            Ok(PathResult { path: zp.display() })
        })
        .await
    }

    pub async fn rename(&self, view: &ZoneView, p: RenameParams) -> Result<RenameResult, RpcError> {
        let from = Self::zone_path(view, &p.old_path)?;
        let to = Self::zone_path(view, &p.new_path)?;
        from.require_write()?;
        to.require_write()?;
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
            let src = svc.disk(&from);
            let dst = svc.disk(&to);
            let src_meta = fs::symlink_metadata(&src).map_err(|e| io_err(e, &from))?;
            match fs::symlink_metadata(&dst) {
                Ok(m) if m.is_dir() || !p.overwrite || src_meta.is_dir() => {
                    return Err(RpcError::exists(&to.display()));
                }
                _ => {}
            }
            if let Some(parent) = to.parent() {
                svc.make_dirs(&parent)?;
            }
            fs::rename(&src, &dst).map_err(|e| io_err(e, &to))?;
            sync_parent(&dst).map_err(|e| io_err(e, &to))?;
            sync_parent(&src).map_err(|e| io_err(e, &from))?;
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
            return Err(RpcError::new(
                ErrorCode::TooLarge,
                format!(
                    "content larger than the {} byte limit",
                    self.inner.max_file_bytes
                ),
            ));
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
        let disk = self.disk(zp);
        match fs::symlink_metadata(&disk) {
            Ok(m) if m.is_dir() => Err(RpcError::invalid_params(format!(
                "{} is a directory",
                zp.display()
            ))),
            Ok(_) => {
                if let Some(want) = if_match {
                    let current = fs::read(&disk).map_err(|e| io_err(e, zp))?;
                    if content_id(&current) != want {
                        return Err(conflict(zp));
                    }
                }
                Ok(false)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                if if_match.is_some() {
                    return Err(conflict(zp));
                }
                Ok(true)
            }
            Err(e) => Err(io_err(e, zp)),
        }
    }

    fn ensure_zone_root(&self, zp: &ZonePath) -> Result<(), RpcError> {
        let root = self.inner.root.join(&zp.zone);
        if !root.is_dir() {
            fs::create_dir(&root)
                .or_else(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| io_err(e, zp))?;
            fsync_dir(&self.inner.root).map_err(|e| io_err(e, zp))?;
        }
        Ok(())
    }

    /// Creates `zp` and its missing parents as directories, fsyncing each new entry.
    fn make_dirs(&self, zp: &ZonePath) -> Result<(), RpcError> {
        self.ensure_zone_root(zp)?;
        let mut cur = self.inner.root.join(&zp.zone);
        let mut shown = zp.clone();
        shown.rel.clear();
        for c in &zp.rel {
            shown.rel.push(c.clone());
            let next = cur.join(c);
            match fs::symlink_metadata(&next) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(RpcError::invalid_path(format!(
                        "{} exists and is not a directory",
                        shown.display()
                    )));
                }
                Err(_) => {
                    match fs::create_dir(&next) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(io_err(e, &shown)),
                    }
                    fsync_dir(&cur).map_err(|e| io_err(e, &shown))?;
                }
            }
            cur = next;
        }
        Ok(())
    }

    /// temp file → write → fsync → rename over the target → fsync the directory.
    fn atomic_write(&self, zp: &ZonePath, bytes: &[u8]) -> Result<(), RpcError> {
        if zp.is_root() {
            return Err(RpcError::invalid_params("cannot write to a zone root"));
        }
        if let Some(parent) = zp.parent() {
            self.make_dirs(&parent)?;
        }
        let target = self.disk(zp);
        let dir = target
            .parent()
            .ok_or_else(RpcError::internal)?
            .to_path_buf();
        let tmp = dir.join(format!("{TEMP_PREFIX}{}", random_suffix()));
        let res = (|| -> io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            // Held until the file is closed after its rename, so a replica sweeping a shared
            // data dir at startup can tell this in-flight file from one abandoned by a crash.
            // Best effort: a filesystem without locks must not fail the write.
            let _ = rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive);
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &target)?;
            fsync_dir(&dir)
        })();
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(e, zp));
        }
        Ok(())
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
        let walker = walkdir::WalkDir::new(&self.inner.root)
            .min_depth(1)
            .follow_links(false)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_type().is_file() && e.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
            });
        for entry in walker {
            let path = entry.path();
            let old = entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .is_some_and(|t| t < started);
            // Opening for reading is enough to take the lock; it is held until the file is
            // gone and dies with the descriptor.
            let lock = if old {
                fs::File::open(path)
                    .ok()
                    .filter(|f| flock(f, FlockOperation::NonBlockingLockExclusive).is_ok())
            } else {
                None
            };
            if lock.is_some() && fs::remove_file(path).is_ok() {
                report.removed += 1;
            } else {
                report.kept += 1;
            }
        }
        report
    }
}

fn sync_parent(p: &Path) -> io::Result<()> {
    match p.parent() {
        Some(d) => fsync_dir(d),
        None => Ok(()),
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
