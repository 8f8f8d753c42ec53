//! The changing methods: `write`, `edit`, `delete`, `mkdir`, `rmdir`, `rename`. A write
//! stores its blob first, then commits one row change; `if_match` is a condition of that
//! one statement, so it holds across every node sharing the database. An edit is a read
//! and a conditional write of what it read: a concurrent change makes it start over (a
//! few times), or, when the caller gave `if_match`, a conflict.

use super::access::Access;
use super::error::Error;
use super::markdown::off_thread;
use super::service::{FileService, rel};
use super::tolerant;
use base64::Engine as _;
use chrono::Utc;
use nexus_wire::RpcError;
use nexus_wire::methods::*;

/// Times an edit starts over when the file changed under it.
const EDIT_ATTEMPTS: usize = 5;

impl FileService {
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
        let shown = zp.display();
        let blob = self.blobs.prepare(bytes);
        let now = Utc::now();
        self.blobs.store(&self.store, &blob, now).await?;
        let path = rel(&zp);
        let _change = self.changing(&zp.zone, Some(&path));
        let written = self
            .store
            .fs_write_file(&zp.zone, &path, &blob.row(), p.if_match.as_deref(), now)
            .await
            .map_err(|e| Error::fs(e, &shown))?;
        self.changes.changed(&zp.zone, &path);
        self.blobs.index_later(&self.store, &blob);
        Ok(WriteResult {
            path: shown,
            size: blob.bytes.len() as u64,
            content_id: blob.id.to_string(),
            // Whether the file existed is not the business of a caller who cannot read.
            created: readable.then_some(written.created),
        })
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
        let threshold = tolerant::threshold(p.fuzzy_threshold)?;
        let max = self.max_file_bytes;
        let shown = zp.display();
        let path = rel(&zp);
        for _ in 0..EDIT_ATTEMPTS {
            let Some(found) = self.row(&zp).await? else {
                return Err(Error::NotFound(shown).into());
            };
            if found.row.is_dir {
                return Err(RpcError::invalid_params(format!("{shown} is not a file")));
            }
            if found.row.size as u64 > max {
                return Err(Error::TooLarge(max).into());
            }
            let current = found.row.content_id.clone().unwrap_or_default();
            if let Some(want) = &p.if_match
                && *want != current
            {
                return Err(Error::Conflict(shown).into());
            }
            let old = self.blobs.fetch(&current, found.inline).await?;
            if std::str::from_utf8(&old).is_err() {
                return Err(RpcError::invalid_params(format!(
                    "{shown} is not valid UTF-8 text"
                )));
            }
            let applied = {
                let (edits, shown) = (p.edits.clone(), shown.clone());
                off_thread(move || {
                    let original = std::str::from_utf8(&old).unwrap_or_default();
                    tolerant::apply(original, &edits, threshold, max, &shown)
                })
                .await??
            };
            if p.preview {
                return Ok(EditResult {
                    path: shown,
                    size: found.row.size.max(0) as u64,
                    content_id: current,
                    replacements: applied.replacements,
                    diff: applied.diff,
                    diff_truncated: applied.diff_truncated,
                    matches: applied.matches,
                    preview: true,
                });
            }
            let text = applied.text;
            let blob = self.blobs.prepare(text.into_bytes());
            let now = Utc::now();
            self.blobs.store(&self.store, &blob, now).await?;
            let change = self.changing(&zp.zone, Some(&path));
            let written = self
                .store
                .fs_write_file(&zp.zone, &path, &blob.row(), Some(&current), now)
                .await;
            drop(change);
            match written {
                Ok(_) => {
                    self.changes.changed(&zp.zone, &path);
                    self.blobs.index_later(&self.store, &blob);
                    return Ok(EditResult {
                        path: shown,
                        size: blob.bytes.len() as u64,
                        content_id: blob.id.to_string(),
                        replacements: applied.replacements,
                        diff: applied.diff,
                        diff_truncated: applied.diff_truncated,
                        matches: applied.matches,
                        preview: false,
                    });
                }
                // Changed since it was read: with the caller's own if_match that is the
                // caller's conflict; otherwise the edit applies to the new content.
                Err(crate::db::FsError::Conflict) if p.if_match.is_none() => continue,
                Err(e) => return Err(Error::fs(e, &shown).into()),
            }
        }
        Err(RpcError::unavailable(format!(
            "{shown} kept changing while it was edited; retry"
        )))
    }

    pub async fn delete(&self, acc: &Access, p: PathParams) -> Result<PathResult, RpcError> {
        let zp = self.zone_path(&acc.view, &p.path)?;
        acc.require_write(&zp)?;
        if zp.is_root() {
            return Err(RpcError::invalid_params("cannot delete a zone root"));
        }
        let shown = zp.display();
        let path = rel(&zp);
        let _change = self.changing(&zp.zone, Some(&path));
        match self.store.fs_delete_file(&zp.zone, &path).await {
            Ok(()) => self.changes.changed(&zp.zone, &path),
            Err(crate::db::FsError::IsDir) => {
                return Err(RpcError::invalid_params(format!(
                    "{shown} is a directory; use rmdir"
                )));
            }
            // A caller who cannot read the zone gets the same answer whether or not the
            // file was there: afterwards it is not.
            Err(crate::db::FsError::NotFound) if !acc.can_read(&zp) => {}
            Err(e) => return Err(Error::fs(e, &shown).into()),
        }
        Ok(PathResult { path: shown })
    }

    pub async fn mkdir(&self, acc: &Access, p: MkdirParams) -> Result<PathResult, RpcError> {
        let zp = self.zone_path(&acc.view, &p.path)?;
        acc.require_write(&zp)?;
        let shown = zp.display();
        // A zone root always exists.
        if !zp.is_root() {
            // Parents may be made too: every cached row of the zone may be stale.
            let _change = self.changing(&zp.zone, None);
            self.store
                .fs_mkdir(&zp.zone, &rel(&zp), p.parents, p.exist_ok, Utc::now())
                .await
                .map_err(|e| match e {
                    crate::db::FsError::NotFound => {
                        Error::NotFound(zp.parent().map(|d| d.display()).unwrap_or_default())
                    }
                    e => Error::fs(e, &shown),
                })?;
        }
        Ok(PathResult { path: shown })
    }

    pub async fn rmdir(&self, acc: &Access, p: RmdirParams) -> Result<PathResult, RpcError> {
        let zp = self.zone_path(&acc.view, &p.path)?;
        acc.require_write(&zp)?;
        if zp.is_root() {
            return Err(RpcError::invalid_params("cannot remove a zone root"));
        }
        let shown = zp.display();
        let _change = self.changing(&zp.zone, None);
        let path = rel(&zp);
        self.store
            .fs_rmdir(&zp.zone, &path, p.recursive)
            .await
            .map_err(|e| Error::fs(e, &shown))?;
        // Everything below it is gone: subscriptions match below a changed directory.
        self.changes.changed(&zp.zone, &path);
        Ok(PathResult { path: shown })
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
        let (shown_from, shown_to) = (from.display(), to.display());
        let _change = self.changing(&from.zone, None);
        let (from_path, to_path) = (rel(&from), rel(&to));
        self.store
            .fs_rename(
                &from.zone,
                &from_path,
                &to.zone,
                &to_path,
                p.overwrite,
                Utc::now(),
            )
            .await
            .map_err(|e| match e {
                crate::db::FsError::NotFound => Error::NotFound(shown_from.clone()),
                e => Error::fs(e, &shown_to),
            })?;
        // What was there is gone, and what is there now is new (a file or a subtree).
        self.changes.changed(&from.zone, &from_path);
        self.changes.changed(&to.zone, &to_path);
        Ok(RenameResult {
            old_path: shown_from,
            new_path: shown_to,
        })
    }
}
