//! [`S3Store`]: blobs as objects `<prefix>/<id[0..2]>/<id>` in an S3 bucket, through the
//! `object_store` crate, with create-only puts (`If-None-Match: *`).
//!
//! A dead or slow S3 must not hang a caller: connects and whole requests are bounded (by the
//! transport, [`super::transport`]), retries are few with short backoff inside a total
//! budget, and what is left is reported as [`BlobError::Unavailable`]. Error messages never
//! carry a credential nor a response body (S3 echoes signed headers in some refusals).

use super::transport::{Overloaded, Refused, TlsFailed, Transport};
use super::url::{S3Url, StoreUrl};
use super::{BlobError, BlobStore, ContentId, Put};
use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig,
};
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::time::Duration;

/// Explicit S3 credentials; without them the store takes the usual `AWS_*` variables (and
/// the other sources object_store knows: web identity, instance metadata).
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// How long the store waits for S3 before reporting it unavailable.
#[derive(Debug, Clone)]
pub struct S3Limits {
    /// One TCP/TLS connect.
    pub connect_timeout: Duration,
    /// One whole request, body included.
    pub request_timeout: Duration,
    /// Retries after the first attempt (server errors, failed connects, idempotent timeouts).
    pub max_retries: usize,
    /// No retry starts once this long has passed since the first attempt.
    pub retry_budget: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// Every bound together stays under the frontend's rpc timeout (30 s by default): a
/// stalled S3 is the store's error (retriable, -32010), never the gateway's timeout.
impl Default for S3Limits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(15),
            max_retries: 3,
            retry_budget: Duration::from_secs(8),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

#[derive(Debug)]
pub struct S3Store {
    store: AmazonS3,
    /// Key prefix with its trailing `/`, or empty.
    prefix: String,
    described: String,
}

impl S3Store {
    /// The store `url` names, credentials from the environment, default limits.
    pub fn open(url: &S3Url) -> Result<Self, BlobError> {
        Self::open_with(url, None, &S3Limits::default())
    }

    /// The store `url` names with explicit credentials (else the environment's) and limits.
    pub fn open_with(
        url: &S3Url,
        credentials: Option<&S3Credentials>,
        limits: &S3Limits,
    ) -> Result<Self, BlobError> {
        let transport = Transport::new(limits.connect_timeout, limits.request_timeout)
            .map_err(|e| BlobError::Other(format!("cannot set up TLS for S3: {e}")))?;
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: limits.initial_backoff,
                max_backoff: limits.max_backoff,
                base: 2.0,
            },
            max_retries: limits.max_retries,
            retry_timeout: limits.retry_budget,
        };
        // Client settings from the environment are dropped: the store's own limits and TLS
        // verification are not for an `AWS_*` variable to loosen (`allow_http` is the URL's).
        let mut b = AmazonS3Builder::from_env()
            .with_client_options(ClientOptions::new())
            .with_retry(retry)
            .with_http_connector(transport)
            .with_bucket_name(&url.bucket)
            .with_allow_http(url.allow_http);
        if let Some(endpoint) = &url.endpoint {
            // Custom servers (SeaweedFS, MinIO…) rarely have per-bucket host names.
            b = b
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        if let Some(region) = &url.region {
            b = b.with_region(region);
        }
        if let Some(c) = credentials {
            b = b
                .with_access_key_id(&c.access_key_id)
                .with_secret_access_key(c.secret_access_key.expose_secret());
            if let Some(t) = &c.session_token {
                b = b.with_token(t.expose_secret());
            }
        }
        // The endpoint may also come from `AWS_ENDPOINT`.
        if b.get_config_value(&AmazonS3ConfigKey::Endpoint)
            .is_some_and(|e| e.starts_with("http://"))
            && !url.allow_http
        {
            return Err(BlobError::Other(
                "the S3 endpoint is http:// but allow_http is false".into(),
            ));
        }
        let store = b.build().map_err(|e| {
            // Builder errors name the missing or malformed setting, never its value.
            BlobError::Other(format!("cannot configure S3 for s3://{}: {e}", url.bucket))
        })?;
        let prefix = if url.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", url.prefix)
        };
        Ok(Self {
            store,
            prefix,
            described: StoreUrl::S3(url.clone()).to_string(),
        })
    }

    /// The object key of a blob: `<prefix>/<id[0..2]>/<id>`.
    pub fn object_key(&self, id: &ContentId) -> String {
        format!("{}{}/{}", self.prefix, id.shard(), id)
    }

    fn path(&self, id: &ContentId) -> Path {
        Path::from(self.object_key(id))
    }

    /// The id a listed key names, if it is a blob of this store's layout.
    fn id_of(&self, key: &str) -> Option<ContentId> {
        let rest = key.strip_prefix(&self.prefix)?;
        let (shard, name) = rest.split_once('/')?;
        let id = ContentId::parse(name).ok()?;
        (id.shard() == shard).then_some(id)
    }
}

#[async_trait::async_trait]
impl BlobStore for S3Store {
    async fn put(&self, id: &ContentId, bytes: Bytes) -> Result<Put, BlobError> {
        let opts = PutOptions::from(PutMode::Create);
        match self
            .store
            .put_opts(&self.path(id), PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(_) => Ok(Put::Created),
            // Same name, same bytes: another writer got there first.
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(Put::Existed),
            Err(e) => Err(classify("put", e)),
        }
    }

    async fn get(&self, id: &ContentId) -> Result<Bytes, BlobError> {
        let read = async { self.store.get(&self.path(id)).await?.bytes().await };
        match read.await {
            Ok(bytes) if id.matches(&bytes) => Ok(bytes),
            Ok(_) => Err(BlobError::Corrupt(id.clone())),
            Err(object_store::Error::NotFound { .. }) => Err(BlobError::NotFound(id.clone())),
            Err(e) => Err(classify("get", e)),
        }
    }

    async fn delete(&self, id: &ContentId) -> Result<(), BlobError> {
        match self.store.delete(&self.path(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(classify("delete", e)),
        }
    }

    async fn exists(&self, id: &ContentId) -> Result<bool, BlobError> {
        match self.store.head(&self.path(id)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(classify("exists", e)),
        }
    }

    async fn list(
        &self,
        after: Option<&ContentId>,
        limit: usize,
    ) -> Result<Vec<ContentId>, BlobError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        // S3 lists keys in ascending byte order and starts after the cursor's key; the shard
        // is the id's own first two digits, so key order is id order.
        let mut stream = match after {
            Some(a) => self.store.list_with_offset(prefix.as_ref(), &self.path(a)),
            None => self.store.list(prefix.as_ref()),
        };
        let mut out = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(|e| classify("list", e))?;
            if let Some(id) = self.id_of(meta.location.as_ref()) {
                if after.is_some_and(|a| &id <= a) || out.last().is_some_and(|l| &id <= l) {
                    return Err(BlobError::Other(
                        "S3 listed keys out of order: the server is not S3-compatible".into(),
                    ));
                }
                out.push(id);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        self.described.clone()
    }
}

/// Maps an object_store failure to what a caller can act on, in words safe to log.
fn classify(op: &str, e: object_store::Error) -> BlobError {
    use object_store::Error as E;
    let refused = || {
        BlobError::Other(format!(
            "S3 refused the {op}: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the bucket's policy"
        ))
    };
    match &e {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => return refused(),
        E::NotFound { .. } => {
            return BlobError::Other(format!("S3 {op}: the bucket does not exist"));
        }
        _ => {}
    }
    let chain = || {
        std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |c| {
            c.source()
        })
    };
    // The typed causes the transport planted sit below the HttpError that carries them.
    if chain().any(|c| c.is::<Refused>()) {
        return refused();
    }
    if let Some(t) = chain().find_map(|c| c.downcast_ref::<TlsFailed>()) {
        return BlobError::Other(format!("S3 {op}: {t}"));
    }
    if let Some(o) = chain().find_map(|c| c.downcast_ref::<Overloaded>()) {
        return BlobError::Unavailable(format!("S3 {op}: {o}"));
    }
    if let Some(h) = chain().find_map(|c| c.downcast_ref::<HttpError>()) {
        let what = match h.kind() {
            HttpErrorKind::Connect => Some("cannot connect"),
            HttpErrorKind::Timeout => Some("timed out"),
            HttpErrorKind::Request | HttpErrorKind::Interrupted => Some("connection lost"),
            _ => None,
        };
        if let Some(what) = what {
            return BlobError::Unavailable(format!("S3 {op}: {what}"));
        }
    }
    BlobError::Other(format!("S3 {op} failed: {}", without_body(&e.to_string())))
}

/// An object_store message up to the status it quotes: the response body after it may
/// echo request headers.
fn without_body(msg: &str) -> String {
    const MARK: &str = "status code: ";
    let cut = match msg.find(MARK) {
        Some(i) => {
            let after = i + MARK.len();
            msg[after..].find(':').map_or(msg.len(), |j| after + j)
        }
        None => msg.len(),
    };
    msg[..cut].chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(prefix: &str) -> S3Store {
        let url = S3Url {
            bucket: "b".into(),
            prefix: prefix.into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            region: Some("us-east-1".into()),
            allow_http: true,
        };
        let creds = S3Credentials {
            access_key_id: "AKIDTEST".into(),
            secret_access_key: "very-secret".to_owned().into(),
            session_token: None,
        };
        S3Store::open_with(&url, Some(&creds), &S3Limits::default()).expect("builds")
    }

    #[test]
    fn keys_and_listed_names() {
        let id = ContentId::of(b"x");
        let s = store("hub/blobs");
        assert_eq!(s.object_key(&id), format!("hub/blobs/{}/{id}", id.shard()));
        assert_eq!(s.id_of(&s.object_key(&id)), Some(id.clone()));
        assert_eq!(s.id_of(&format!("hub/blobs/00/{id}")), None);
        assert_eq!(s.id_of(&format!("other/{}/{id}", id.shard())), None);
        assert_eq!(s.id_of("hub/blobs/ab/not-an-id"), None);
        let root = store("");
        assert_eq!(root.object_key(&id), format!("{}/{id}", id.shard()));
        assert_eq!(root.id_of(&root.object_key(&id)), Some(id));
        assert!(!format!("{s:?}").contains("very-secret"));
        assert!(!s.describe().contains("very-secret"));
    }

    #[test]
    fn plain_http_only_when_the_url_allows_it() {
        let url = S3Url {
            bucket: "b".into(),
            prefix: String::new(),
            endpoint: Some("http://127.0.0.1:9".into()),
            region: None,
            allow_http: false,
        };
        let e = S3Store::open_with(&url, None, &S3Limits::default()).expect_err("refused");
        assert!(e.to_string().contains("allow_http"), "{e}");
    }

    #[test]
    fn messages_stop_before_the_body() {
        let m = "Error performing PUT http://h/b/k in 1ms - Server returned non-2xx status code: 400 Bad Request: <Error><StringToSign>x-amz-security-token:SECRET</StringToSign></Error>";
        let cut = without_body(m);
        assert!(cut.ends_with("status code: 400 Bad Request"), "{cut}");
        assert_eq!(without_body("plain"), "plain");
    }
}
