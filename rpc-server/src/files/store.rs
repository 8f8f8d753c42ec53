//! The bytes of files: [`Blobs`] puts a write's bytes where they belong (inline in the
//! database when small, else the configured [`BlobStore`]), keeps a content cache keyed by
//! content id (immutable, so never stale on any node), and runs the collector that removes
//! blobs no file references once a grace period has passed.
//!
//! Order is what keeps a reader from ever meeting a row whose blob is missing: a blob kept
//! outside the database is first recorded (`fs_blobs.touched_at`, committed), then stored,
//! and only then referenced by a file row; the collector deletes a blob only inside a
//! transaction that re-checks, under the blob row's lock, that nothing references it and
//! nothing touched it within the grace period. A writer reusing the blob meanwhile waits
//! for that transaction and then stores the blob anew.

use super::error::Error;
use crate::db::{BlobRow, Store};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use nexus_blobs::{BlobError, BlobStore, ContentId};
use std::sync::Arc;
use std::time::Duration;

/// Text larger than this is not indexed for grep (such files are always scanned).
pub(crate) const TEXT_INDEX_MAX: usize = 1024 * 1024;

/// Text indexing jobs one node runs at once, and keeps waiting; past that a blob is left
/// unindexed (grep then scans it: slower, never wrong).
const INDEXERS: usize = 2;
const INDEX_QUEUE: usize = 256;

/// Where a file service keeps bytes.
#[derive(Clone)]
pub(crate) struct Blobs {
    backing: Arc<dyn BlobStore>,
    /// Places for text indexing jobs (running and waiting).
    indexing: Arc<tokio::sync::Semaphore>,
    running: Arc<tokio::sync::Semaphore>,
    /// The store blobs are being moved from (`NEXUS_STORAGE_PREVIOUS_URL`): what the
    /// backing store does not have yet is read there and copied over.
    previous: Option<Arc<dyn BlobStore>>,
    /// Blobs up to this size live in the database (0: none).
    inline_max: u64,
    cache: moka::sync::Cache<ContentId, Bytes>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs")
            .field("backing", &self.backing.describe())
            .field("inline_max", &self.inline_max)
            .finish()
    }
}

/// A write's bytes, hashed and classified once.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub id: ContentId,
    pub bytes: Bytes,
    pub inline: bool,
    /// Indexable text: UTF-8 without NUL, up to [`TEXT_INDEX_MAX`].
    text: bool,
}

impl Prepared {
    /// The blob's row for a write: without its text, which [`Blobs::index_later`] adds
    /// off the write's path (until then grep scans the blob).
    pub fn row(&self) -> BlobRow<'_> {
        BlobRow {
            content_id: self.id.as_str(),
            size: self.bytes.len() as i64,
            inline: self.inline.then_some(&self.bytes[..]),
            text: None,
        }
    }

    /// The text grep's index keeps for it, if any.
    pub fn text(&self) -> Option<&str> {
        if self.text {
            std::str::from_utf8(&self.bytes).ok()
        } else {
            None
        }
    }

    /// The blob's row with its text, indexed in the same transaction (an import).
    pub fn row_with_text(&self) -> BlobRow<'_> {
        BlobRow {
            text: self.text(),
            ..self.row()
        }
    }
}

pub(crate) fn blob_error(e: BlobError) -> Error {
    match e {
        BlobError::NotFound(id) | BlobError::Corrupt(id) => {
            tracing::error!(content_id = %id, error = %e_text(&id), "a file's blob is missing or corrupt");
            Error::BlobLost
        }
        BlobError::Unavailable(why) => {
            tracing::warn!(error = %why, "blob store unavailable");
            Error::Unavailable("the blob store")
        }
        BlobError::Other(why) => {
            tracing::error!(error = %why, "blob store error");
            Error::Internal
        }
    }
}

fn e_text(id: &ContentId) -> String {
    format!("blob {id} cannot be read back")
}

impl Blobs {
    pub fn new(backing: Arc<dyn BlobStore>, inline_max: u64, cache_bytes: u64) -> Self {
        let cache = moka::sync::Cache::builder()
            .weigher(|_: &ContentId, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
            .max_capacity(cache_bytes)
            .build();
        Self {
            backing,
            indexing: Arc::new(tokio::sync::Semaphore::new(INDEX_QUEUE)),
            running: Arc::new(tokio::sync::Semaphore::new(INDEXERS)),
            previous: None,
            inline_max,
            cache,
        }
    }

    /// Reads what the backing store lacks from `previous`, copying it over (a migration
    /// between stores in progress).
    pub fn with_previous(mut self, previous: Option<Arc<dyn BlobStore>>) -> Self {
        self.previous = previous;
        self
    }

    pub fn prepare(&self, bytes: Vec<u8>) -> Prepared {
        let id = ContentId::of(&bytes);
        let text = bytes.len() <= TEXT_INDEX_MAX
            && memchr::memchr(0, &bytes).is_none()
            && std::str::from_utf8(&bytes).is_ok();
        Prepared {
            id,
            inline: (bytes.len() as u64) <= self.inline_max,
            bytes: Bytes::from(bytes),
            text,
        }
    }

    /// Stores a blob that lives outside the database (recorded first, then put). An inline
    /// blob is written by the file row's own transaction instead.
    pub async fn store(
        &self,
        store: &Store,
        p: &Prepared,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        if p.inline {
            return Ok(());
        }
        store
            .fs_touch_blobs(std::slice::from_ref(&p.row()), now)
            .await?;
        self.backing
            .put(&p.id, p.bytes.clone())
            .await
            .map_err(blob_error)?;
        self.cache.insert(p.id.clone(), p.bytes.clone());
        Ok(())
    }

    /// Adds a written blob's text to grep's trigram index after the write has answered:
    /// updating a trigram index for a large text costs far more than the write itself.
    /// A blob stays `is_text = false` (always scanned by grep) until this commits, so a
    /// grep is never wrong meanwhile, and one whose job is dropped (queue full, node
    /// stopped) is simply always scanned.
    pub fn index_later(&self, store: &Store, p: &Prepared) {
        let Some(text) = p.text() else {
            return;
        };
        let Ok(place) = self.indexing.clone().try_acquire_owned() else {
            return;
        };
        let (store, running) = (store.clone(), self.running.clone());
        let (id, text) = (p.id.to_string(), text.to_owned());
        tokio::spawn(async move {
            let _place = place;
            let Ok(_run) = running.acquire_owned().await else {
                return;
            };
            if let Err(e) = store.fs_index_text(&id, &text).await {
                tracing::debug!(content_id = %id, error = %e, "text not indexed; grep scans this blob");
            }
        });
    }

    /// Puts a blob already recorded with `fs_touch_blobs` (an import's batch).
    pub async fn put_prepared(&self, p: &Prepared) -> Result<(), Error> {
        self.backing
            .put(&p.id, p.bytes.clone())
            .await
            .map_err(blob_error)?;
        Ok(())
    }

    /// A file's bytes: inline ones as they came with the row, others from the cache or
    /// the store.
    pub async fn fetch(&self, content_id: &str, inline: Option<Vec<u8>>) -> Result<Bytes, Error> {
        if let Some(b) = inline {
            return Ok(Bytes::from(b));
        }
        let id = ContentId::parse(content_id).map_err(|_| Error::Internal)?;
        if let Some(b) = self.cache.get(&id) {
            return Ok(b);
        }
        let b = match (self.backing.get(&id).await, &self.previous) {
            (Ok(b), _) => b,
            (Err(BlobError::NotFound(_)), Some(prev)) => {
                let b = prev.get(&id).await.map_err(blob_error)?;
                self.backing.put(&id, b.clone()).await.map_err(blob_error)?;
                b
            }
            (Err(e), _) => return Err(blob_error(e)),
        };
        self.cache.insert(id, b.clone());
        Ok(b)
    }

    /// Removes blobs no file references and nothing touched for `grace`, one node at a
    /// time (the others find the collector's lock taken and skip the round).
    pub async fn collect(
        &self,
        store: &Store,
        grace: Duration,
        now: DateTime<Utc>,
    ) -> Result<Collected, Error> {
        let cutoff = now - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        let Some(lock) = store.fs_collector_lock().await? else {
            return Ok(Collected {
                skipped: true,
                ..Collected::default()
            });
        };
        let out = self.collect_locked(store, cutoff).await;
        lock.release().await?;
        out
    }

    async fn collect_locked(
        &self,
        store: &Store,
        cutoff: DateTime<Utc>,
    ) -> Result<Collected, Error> {
        let mut out = Collected::default();
        let mut after = String::new();
        loop {
            let batch = store.fs_unreferenced_blobs(cutoff, &after, 500).await?;
            let Some(last) = batch.last() else {
                break;
            };
            after = last.clone();
            for id in batch {
                let Ok(cid) = ContentId::parse(&id) else {
                    continue;
                };
                let backing = self.backing.clone();
                let removed = store
                    .fs_collect_blob(&id, cutoff, || async move {
                        backing.delete(&cid).await.map_err(|e| e.to_string())
                    })
                    .await;
                match removed {
                    Ok(Some(bytes)) => {
                        out.removed += 1;
                        out.bytes += bytes;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "collector could not remove a blob; it stays for the next round");
                        out.failed += 1;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// What one collector round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Collected {
    /// Another node held the collector's lock: nothing was done.
    pub skipped: bool,
    pub removed: u64,
    pub bytes: u64,
    pub failed: u64,
}

/// Small blobs kept in the database as a [`BlobStore`] of their own: what `storage
/// migrate` and the store tests use to treat the three kinds of store alike.
#[derive(Debug, Clone)]
pub struct DbInline {
    store: Store,
}

impl DbInline {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn db_err(e: crate::db::StoreError) -> BlobError {
    if e.is_unavailable() {
        BlobError::Unavailable(e.to_string())
    } else {
        BlobError::Other(e.to_string())
    }
}

#[async_trait::async_trait]
impl BlobStore for DbInline {
    async fn put(&self, id: &ContentId, bytes: Bytes) -> Result<nexus_blobs::Put, BlobError> {
        self.store
            .fs_put_inline(id.as_str(), &bytes, Utc::now())
            .await
            .map_err(db_err)
    }

    async fn get(&self, id: &ContentId) -> Result<Bytes, BlobError> {
        match self.store.fs_inline(id.as_str()).await.map_err(db_err)? {
            Some(b) if id.matches(&b) => Ok(Bytes::from(b)),
            Some(_) => Err(BlobError::Corrupt(id.clone())),
            None => Err(BlobError::NotFound(id.clone())),
        }
    }

    async fn delete(&self, id: &ContentId) -> Result<(), BlobError> {
        self.store.fs_drop_inline(id.as_str()).await.map_err(db_err)
    }

    async fn exists(&self, id: &ContentId) -> Result<bool, BlobError> {
        Ok(self
            .store
            .fs_inline(id.as_str())
            .await
            .map_err(db_err)?
            .is_some())
    }

    async fn list(
        &self,
        after: Option<&ContentId>,
        limit: usize,
    ) -> Result<Vec<ContentId>, BlobError> {
        let ids = self
            .store
            .fs_inline_ids(after.map_or("", |a| a.as_str()), limit as i64)
            .await
            .map_err(db_err)?;
        Ok(ids
            .iter()
            .filter_map(|s| ContentId::parse(s).ok())
            .collect())
    }

    fn describe(&self) -> String {
        format!("inline in the {} database", self.store.backend().as_str())
    }
}
