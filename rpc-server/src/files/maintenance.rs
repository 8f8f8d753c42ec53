//! What `nexus hub storage` does, beside the servers: report the namespace and the blob
//! store, run one collector round, and copy every blob kept outside the database to
//! another store (`migrate --to`). Copying is idempotent and resumable: blobs are named by
//! content and puts are create-only, so a copy interrupted anywhere is finished by running
//! it again, and a blob already at the destination is not sent twice.

use super::store::{Blobs, Collected};
use crate::db::{FsStats, Store};
use nexus_blobs::{BlobError, BlobStore, ContentId, Put};
use std::sync::Arc;
use std::time::Duration;

/// `storage status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StorageStatus {
    pub database: &'static str,
    pub store: String,
    /// `ok`, or why the store could not be listed.
    pub store_health: String,
    #[serde(flatten)]
    pub stats: FsStats,
}

pub async fn status(store: &Store, backing: &dyn BlobStore) -> anyhow::Result<StorageStatus> {
    let stats = store.fs_stats().await?;
    let store_health = match backing.list(None, 1).await {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    Ok(StorageStatus {
        database: store.backend().as_str(),
        store: backing.describe(),
        store_health,
        stats,
    })
}

/// One collector round (`storage gc`): what a server does every interval.
pub async fn collect(
    store: &Store,
    backing: Arc<dyn BlobStore>,
    grace: Duration,
) -> anyhow::Result<Collected> {
    Blobs::new(backing, 0, 0)
        .collect(store, grace, chrono::Utc::now())
        .await
        .map_err(|e| anyhow::anyhow!("collector: {e:?}"))
}

/// What a copy did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Migrated {
    /// Blobs written to the destination.
    pub copied: u64,
    pub bytes: u64,
    /// Blobs the destination already had (an earlier, interrupted run; or shared content).
    pub present: u64,
    /// Blobs the source no longer has (collected meanwhile, or lost: logged each).
    pub missing: u64,
}

/// Copies every blob the namespace keeps outside the database from `from` to `to`, in
/// content-id order; `progress` is told after each.
pub async fn migrate(
    store: &Store,
    from: &dyn BlobStore,
    to: &dyn BlobStore,
    mut progress: impl FnMut(&Migrated),
) -> anyhow::Result<Migrated> {
    if from.describe() == to.describe() {
        anyhow::bail!("the destination is the store the blobs are in already");
    }
    let mut out = Migrated::default();
    let mut after = String::new();
    loop {
        let batch = store.fs_external_blobs(&after, 500).await?;
        let Some((last, _)) = batch.last() else {
            break;
        };
        after = last.clone();
        for (id, _) in batch {
            let Ok(id) = ContentId::parse(&id) else {
                continue;
            };
            if to.exists(&id).await? {
                out.present += 1;
            } else {
                match from.get(&id).await {
                    Ok(bytes) => {
                        let n = bytes.len() as u64;
                        if to.put(&id, bytes).await? == Put::Created {
                            out.copied += 1;
                            out.bytes += n;
                        } else {
                            out.present += 1;
                        }
                    }
                    Err(BlobError::NotFound(_)) => {
                        tracing::warn!(content_id = %id, "not copied: the source store does not have it");
                        out.missing += 1;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            progress(&out);
        }
    }
    Ok(out)
}
