//! Embeddings for `search`'s semantic and hybrid modes, from an OpenAI-compatible endpoint
//! (`POST {NEXUS_EMBEDDINGS_URL}/embeddings`).
//!
//! A file's vector is kept in the database per content id and model (`fs_embeddings`):
//! content ids are hashes of the bytes, so an entry never goes stale and every node shares
//! it. Requests go out in batches of at most [`EmbeddingsConfig::batch`] texts, each
//! bounded in time and in response size; the API key is sent only as the bearer header
//! and never logged. Any failure is the caller's to degrade on: search answers by keyword
//! then, and counts it.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use secrecy::{ExposeSecret as _, SecretString};
use std::sync::Arc;
use std::time::Duration;

/// Longest answer of one embeddings request.
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// Characters of a file (its start) that are embedded.
pub(crate) const EMBED_CHARS: usize = 8_000;
/// Widest vector accepted.
const MAX_DIMS: usize = 8192;

/// Where embeddings come from.
#[derive(Clone)]
pub struct EmbeddingsConfig {
    /// The API's base (`https://api.openai.com/v1`); `/embeddings` is appended.
    pub url: String,
    pub model: String,
    pub api_key: Option<SecretString>,
    /// Bound of one request.
    pub timeout: Duration,
    /// Texts per request.
    pub batch: usize,
}

impl std::fmt::Debug for EmbeddingsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingsConfig")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.timeout)
            .field("batch", &self.batch)
            .finish()
    }
}

/// Why no vectors came back (a bounded metrics label each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EmbedError {
    #[error("the embeddings endpoint did not answer in time")]
    Timeout,
    #[error("the embeddings endpoint could not be reached")]
    Connect,
    #[error("the embeddings endpoint refused the request")]
    Status,
    #[error("the embeddings endpoint answered something else than embeddings")]
    Malformed,
    #[error("the embeddings cache failed")]
    Store,
}

impl EmbedError {
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Status => "status",
            Self::Malformed => "malformed",
            Self::Store => "store",
        }
    }
}

type Client = nexus_providers::oidc::jwks::HttpsClient<Full<Bytes>>;

/// The endpoint's client.
#[derive(Clone)]
pub(crate) struct Embedder {
    cfg: Arc<EmbeddingsConfig>,
    endpoint: http::Uri,
    client: Client,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("cfg", &self.cfg).finish()
    }
}

impl Embedder {
    pub(crate) fn new(cfg: EmbeddingsConfig) -> Result<Self, String> {
        let endpoint: http::Uri = format!("{}/embeddings", cfg.url.trim_end_matches('/'))
            .parse()
            .map_err(|e| format!("NEXUS_EMBEDDINGS_URL is not a URL: {e}"))?;
        match endpoint.scheme_str() {
            Some("https" | "http") if endpoint.host().is_some() => {}
            _ => return Err("NEXUS_EMBEDDINGS_URL must be an http(s) URL with a host".into()),
        }
        let client = nexus_providers::oidc::jwks::https_client()?;
        Ok(Self {
            cfg: Arc::new(cfg),
            endpoint,
            client,
        })
    }

    pub(crate) fn model(&self) -> &str {
        &self.cfg.model
    }

    pub(crate) fn batch(&self) -> usize {
        self.cfg.batch.max(1)
    }

    /// One vector per text, in order: one request of at most [`Embedder::batch`] texts.
    pub(crate) async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        #[derive(serde::Deserialize)]
        struct Item {
            index: usize,
            embedding: Vec<f32>,
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            data: Vec<Item>,
        }
        let body = serde_json::to_vec(&serde_json::json!({
            "model": self.cfg.model,
            "input": texts,
        }))
        .map_err(|_| EmbedError::Malformed)?;
        let mut req = http::Request::post(self.endpoint.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json");
        if let Some(key) = &self.cfg.api_key {
            let mut v = http::HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                .map_err(|_| EmbedError::Malformed)?;
            v.set_sensitive(true);
            req = req.header(http::header::AUTHORIZATION, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| EmbedError::Malformed)?;
        let answer = tokio::time::timeout(self.cfg.timeout, async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|_| EmbedError::Connect)?;
            if !resp.status().is_success() {
                return Err(EmbedError::Status);
            }
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|_| EmbedError::Malformed)?
                .to_bytes();
            serde_json::from_slice::<Answer>(&bytes).map_err(|_| EmbedError::Malformed)
        })
        .await
        .map_err(|_| EmbedError::Timeout)??;
        let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for item in answer.data {
            let slot = out.get_mut(item.index).ok_or(EmbedError::Malformed)?;
            if item.embedding.is_empty()
                || item.embedding.len() > MAX_DIMS
                || item.embedding.iter().any(|x| !x.is_finite())
            {
                return Err(EmbedError::Malformed);
            }
            *slot = Some(item.embedding);
        }
        out.into_iter()
            .map(|v| v.ok_or(EmbedError::Malformed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_never_in_debug_output() {
        let cfg = EmbeddingsConfig {
            url: "http://127.0.0.1:1".into(),
            model: "m".into(),
            api_key: Some(SecretString::from("sk-very-secret")),
            timeout: Duration::from_secs(1),
            batch: 8,
        };
        assert!(!format!("{cfg:?}").contains("very-secret"));
        let e = Embedder::new(cfg).expect("embedder");
        assert!(!format!("{e:?}").contains("very-secret"));
        assert!(
            Embedder::new(EmbeddingsConfig {
                url: "ftp://x".into(),
                model: "m".into(),
                api_key: None,
                timeout: Duration::from_secs(1),
                batch: 8,
            })
            .is_err()
        );
    }
}
