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
use super::store::Prepared;
use crate::db::ImportItem;
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
/// Entries, and bytes of files, stored per transaction.
const BATCH: usize = 500;
const BATCH_BYTES: usize = 32 * 1024 * 1024;

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
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Found>(64);
            let root = zones.clone();
            let max = self.max_file_bytes;
            let walker = tokio::task::spawn_blocking(move || walk(&root, max, &tx));
            let mut batch = Vec::new();
            let mut bytes = 0usize;
            while let Some(found) = rx.recv().await {
                if let Found::File { bytes: b, .. } = &found {
                    bytes += b.len();
                }
                batch.push(found);
                if batch.len() >= BATCH || bytes >= BATCH_BYTES {
                    self.import_batch(std::mem::take(&mut batch), &mut out)
                        .await?;
                    bytes = 0;
                }
            }
            self.import_batch(batch, &mut out).await?;
            walker.await??;
            self.store
                .fs_import_finished(&source, out.files as i64, Utc::now())
                .await?;
            if let Err(e) = self.store.fs_analyze().await {
                tracing::warn!(error = %e, "statistics not refreshed after the import; searches may be slow until the database's own analysis runs");
            }
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

    /// Stores a batch: blobs kept outside the database are recorded (one transaction) and
    /// put first, then every row is inserted in one transaction.
    async fn import_batch(&self, batch: Vec<Found>, out: &mut Imported) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let prepared: Vec<(Found, Option<Prepared>)> = batch
            .into_iter()
            .map(|f| match f {
                Found::File {
                    zone,
                    path,
                    bytes,
                    modified,
                } => {
                    let p = self.blobs.prepare(bytes);
                    (
                        Found::File {
                            zone,
                            path,
                            bytes: Vec::new(),
                            modified,
                        },
                        Some(p),
                    )
                }
                other => (other, None),
            })
            .collect();
        let external: Vec<_> = prepared
            .iter()
            .filter_map(|(_, p)| p.as_ref().filter(|p| !p.inline).map(Prepared::row))
            .collect();
        if !external.is_empty() {
            self.store.fs_touch_blobs(&external, now).await?;
            for (_, p) in &prepared {
                if let Some(p) = p.as_ref().filter(|p| !p.inline) {
                    self.blobs
                        .put_prepared(p)
                        .await
                        .map_err(|e| anyhow::anyhow!("storing a blob: {e:?}"))?;
                }
            }
        }
        let mut items = Vec::with_capacity(prepared.len());
        for (found, p) in &prepared {
            match found {
                Found::Dir { zone, path } => {
                    out.directories += 1;
                    items.push(ImportItem {
                        zone,
                        path,
                        blob: None,
                        modified: now,
                    });
                }
                Found::File {
                    zone,
                    path,
                    modified,
                    ..
                } => {
                    let p = p
                        .as_ref()
                        .ok_or_else(|| anyhow::anyhow!("unprepared file"))?;
                    out.bytes += p.bytes.len() as u64;
                    items.push(ImportItem {
                        zone,
                        path,
                        blob: Some(p.row_with_text()),
                        modified: *modified,
                    });
                }
                Found::Unreadable(what) => {
                    tracing::warn!(entry = %what, "not imported: unreadable");
                    out.skipped += 1;
                }
            }
        }
        let (made, present) = self
            .store
            .fs_import_batch(&items, now)
            .await
            .map_err(|e| anyhow::anyhow!("importing a batch: {e}"))?;
        out.files += made;
        out.present += present;
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
