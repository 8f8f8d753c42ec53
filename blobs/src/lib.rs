//! Content-addressed blob stores (SPEC §12). A file's bytes are stored once under their
//! SHA-256 (the `content_id` every answer already carries); the namespace that names them
//! lives in the database, so a store only ever creates, reads and deletes whole blobs.
//! Create-only puts make deduplication free and let any number of nodes share one store:
//! two writers of the same content write the same bytes under the same name.
//!
//! [`BlobStore`] is the one interface; [`open`] picks the implementation from
//! `NEXUS_STORAGE_URL`: a local directory ([`LocalDir`]) or S3 ([`S3Store`]). The
//! rpc-server adds a third, small blobs inline in its database, behind the same trait.

mod id;
mod local;
mod s3;
#[cfg(feature = "testing")]
pub mod testing;
mod transport;
mod url;

pub use id::{ContentId, InvalidContentId};
pub use local::LocalDir;
pub use s3::{S3Credentials, S3Limits, S3Store};
pub use url::{S3Url, StoreUrl, UrlError};

use bytes::Bytes;
use std::sync::Arc;

/// What a create-only put found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The blob was written by this call.
    Created,
    /// The blob was already there: same name, so the same bytes.
    Existed,
}

/// Failures of a blob store, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No blob under that id.
    #[error("blob {0} is missing from the store")]
    NotFound(ContentId),
    /// The stored bytes do not hash to their name: changed behind the store's back.
    #[error("blob {0} is corrupt: its bytes do not match its content id")]
    Corrupt(ContentId),
    /// The store could not be reached or answered with a server error; retrying may help.
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a refused request, a local I/O failure).
    #[error("blob store error: {0}")]
    Other(String),
}

impl BlobError {
    /// True when the caller may retry later (the store was down or slow).
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// One place blobs live. Every method is safe to call from many nodes at once.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` under `id` unless a blob of that id exists (create-only). The caller
    /// guarantees `id` is the SHA-256 of `bytes`. Durable once it returns.
    async fn put(&self, id: &ContentId, bytes: Bytes) -> Result<Put, BlobError>;

    /// The blob's bytes, checked against `id` ([`BlobError::Corrupt`] otherwise).
    async fn get(&self, id: &ContentId) -> Result<Bytes, BlobError>;

    /// Removes the blob; a missing one is not an error.
    async fn delete(&self, id: &ContentId) -> Result<(), BlobError>;

    /// Whether a blob of that id is stored.
    async fn exists(&self, id: &ContentId) -> Result<bool, BlobError>;

    /// Up to `limit` stored ids greater than `after`, in ascending order (for the collector,
    /// `storage status` and `storage migrate`).
    async fn list(
        &self,
        after: Option<&ContentId>,
        limit: usize,
    ) -> Result<Vec<ContentId>, BlobError>;

    /// Where the blobs are, fit for logs and `storage status` (never a credential).
    fn describe(&self) -> String;
}

/// Opens the store a URL names: `file:///dir` or `s3://bucket/prefix?endpoint=…&region=…`
/// (credentials from the usual `AWS_*` variables).
pub async fn open(url: &StoreUrl) -> Result<Arc<dyn BlobStore>, BlobError> {
    Ok(match url {
        StoreUrl::File(dir) => Arc::new(LocalDir::open(dir).await?),
        StoreUrl::S3(s3) => Arc::new(S3Store::open(s3)?),
    })
}
