//! The first start after an upgrade: files an earlier release kept under
//! `<data_dir>/zones/<zone>/…` move into the namespace and the blob store. Content ids do
//! not change (they were always the SHA-256 of the bytes) and modification times are kept.
//! The walk resolves beneath the zones directory without following links, as the old
//! server did. The import is idempotent (an existing row is never replaced), so a crash
//! midway is finished by the next start; when it completes, the directory is renamed to
//! `zones.imported` (kept, so nothing is lost) and the import is recorded.

use super::beneath::{self, Step};
use super::path::TEMP_PREFIX;
use super::service::FileService;
use chrono::{DateTime, Utc};
use std::io::Read;
use std::path::{Path, PathBuf};

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    pub files: u64,
    pub directories: u64,
    pub bytes: u64,
    /// Files already in the namespace (a resumed import).
    pub present: u64,
    /// Entries that could not be read (logged each).
    pub skipped: u64,
    /// Where the old directory now is.
    pub kept_at: Option<PathBuf>,
}

enum Found {
    Dir {
        zone: String,
        path: String,
    },
    File {
        zone: String,
        path: String,
        bytes: Vec<u8>,
        modified: DateTime<Utc>,
    },
    Unreadable(String),
}

/// Levels below the zones directory the walk descends (the normaliser's depth and one).
const DEPTH: usize = 256;

impl FileService {
    /// Imports `<data_dir>/zones` when it is there and not yet imported.
    pub async fn import_data_dir(&self, data_dir: &Path) -> anyhow::Result<Option<Imported>> {
        let zones = data_dir.join("zones");
        if !zones.is_dir() {
            return Ok(None);
        }
        // The operator's data dir, resolved once (it may sit behind a link); nothing below
        // it is resolved this way.
        #[allow(clippy::disallowed_methods)]
        let zones = zones.canonicalize()?;
        let source = zones.display().to_string();
        let mut out = Imported::default();
        if !self.store.fs_import_done(&source).await? {
            tracing::info!(dir = %source, "importing files kept by an earlier release into the database namespace");
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Found>(16);
            let root = zones.clone();
            let max = self.max_file_bytes;
            let walker = tokio::task::spawn_blocking(move || walk(&root, max, &tx));
            while let Some(found) = rx.recv().await {
                self.import_one(found, &mut out).await?;
            }
            walker.await??;
            self.store
                .fs_import_finished(&source, out.files as i64, Utc::now())
                .await?;
        }
        let mut kept = data_dir.join("zones.imported");
        if kept.exists() {
            kept = data_dir.join(format!(
                "zones.imported-{}",
                Utc::now().format("%Y%m%dT%H%M%S")
            ));
        }
        std::fs::rename(&zones, &kept)?;
        tracing::info!(
            files = out.files,
            directories = out.directories,
            bytes = out.bytes,
            already_present = out.present,
            skipped = out.skipped,
            kept_at = %kept.display(),
            "import finished; the old directory is kept and may be removed once checked"
        );
        out.kept_at = Some(kept);
        Ok(Some(out))
    }

    async fn import_one(&self, found: Found, out: &mut Imported) -> anyhow::Result<()> {
        match found {
            Found::Dir { zone, path } => {
                self.store
                    .fs_mkdir(&zone, &path, true, true, Utc::now())
                    .await
                    .map_err(|e| anyhow::anyhow!("directory {zone}/{path}: {e}"))?;
                out.directories += 1;
            }
            Found::File {
                zone,
                path,
                bytes,
                modified,
            } => {
                let len = bytes.len() as u64;
                let blob = self.blobs.prepare(bytes);
                let now = Utc::now();
                self.blobs
                    .store(&self.store, &blob, now)
                    .await
                    .map_err(|e| anyhow::anyhow!("file {zone}/{path}: {e:?}"))?;
                let made = self
                    .store
                    .fs_import_file(&zone, &path, &blob.row(), modified, now)
                    .await
                    .map_err(|e| anyhow::anyhow!("file {zone}/{path}: {e}"))?;
                if made {
                    out.files += 1;
                    out.bytes += len;
                } else {
                    out.present += 1;
                }
            }
            Found::Unreadable(what) => {
                tracing::warn!(entry = %what, "not imported: unreadable");
                out.skipped += 1;
            }
        }
        Ok(())
    }
}

/// Walks the old zones directory, sending what it finds (files with their bytes).
fn walk(root: &Path, max: u64, tx: &tokio::sync::mpsc::Sender<Found>) -> anyhow::Result<()> {
    let root_fd = beneath::open_root(root)?;
    beneath::walk(
        std::os::fd::AsFd::as_fd(&root_fd),
        DEPTH,
        usize::MAX,
        &|name| name.starts_with(TEMP_PREFIX),
        &mut |comps, entry| {
            let Some((zone, rest)) = comps.split_first() else {
                return Step::Continue;
            };
            if rest.is_empty() {
                // A zone's own directory: its rows appear with its contents.
                return Step::Continue;
            }
            let path = rest.join("/");
            let found = if entry.is_dir() {
                Found::Dir {
                    zone: zone.clone(),
                    path,
                }
            } else if entry.len() > max {
                Found::Unreadable(format!("{zone}/{path} (larger than the file size limit)"))
            } else {
                let mut bytes = Vec::new();
                match entry
                    .open()
                    .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
                {
                    Ok(_) if bytes.len() as u64 <= max => Found::File {
                        zone: zone.clone(),
                        path,
                        bytes,
                        modified: entry
                            .modified()
                            .map(DateTime::<Utc>::from)
                            .unwrap_or_else(|_| Utc::now()),
                    },
                    _ => Found::Unreadable(format!("{zone}/{path}")),
                }
            };
            if tx.blocking_send(found).is_err() {
                return Step::Stop;
            }
            Step::Continue
        },
    )?;
    Ok(())
}
