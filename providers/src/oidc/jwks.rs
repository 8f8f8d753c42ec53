//! One issuer's signing keys (SPEC §10): discovered from `<issuer>/.well-known/
//! openid-configuration` unless `jwks_uri` is configured, fetched over HTTP(S) with
//! bounded bodies and timeouts, and cached by `kid`.
//!
//! The rules, and why:
//! - each key carries the algorithms its type allows (RSA: RS*/PS*, P-256: ES256, P-384:
//!   ES384, Ed25519: EdDSA), narrowed by its `alg`; symmetric and unknown keys are dropped,
//!   so `alg: none` and HS* (the "public key as HMAC secret" attack) can never verify;
//! - the set is kept for the response's `Cache-Control: max-age`, clamped to 60 s–1 h
//!   (10 min when absent): an IdP cannot make the hub fetch on every request, nor pin a
//!   rotated-out key for a day;
//! - a `kid` not in a fresh set forces one refetch, at most once a minute per issuer: key
//!   rotation works at once, while a flood of made-up `kid`s costs the IdP one request a
//!   minute;
//! - while the IdP cannot be reached, the last good set keeps verifying for up to 24 h after
//!   it was fetched, then nothing does (fail closed);
//! - at most [`MAX_KEYS`] keys of at most [`MAX_BODY_BYTES`] of JSON are used, whatever the
//!   IdP serves.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// Largest discovery or JWKS document read: real ones are a few KiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Keys used from one JWKS; real IdPs publish two or three.
pub const MAX_KEYS: usize = 100;
/// Bounds of how long a fetched set is fresh.
pub const MIN_FRESH: Duration = Duration::from_secs(60);
pub const MAX_FRESH: Duration = Duration::from_secs(3600);
pub const DEFAULT_FRESH: Duration = Duration::from_secs(600);
/// How often an unknown `kid` may force a refetch.
pub const FORCED_REFETCH_EVERY: Duration = Duration::from_secs(60);
/// How long after a failed fetch the next one may be tried (keys still served meanwhile).
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(15);
/// How long the last good set outlives its freshness while the IdP is down.
pub const MAX_STALE: Duration = Duration::from_secs(24 * 3600);
/// Per-request timeout of a discovery or JWKS fetch.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A verification key and the algorithms it may verify.
pub struct Key {
    pub decoding: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// The usable keys of one JWKS, by `kid` (a key without one is kept under `""`).
#[derive(Debug, Default)]
pub struct KeySet {
    keys: HashMap<String, Arc<Key>>,
}

impl KeySet {
    pub fn get(&self, kid: Option<&str>) -> Option<Arc<Key>> {
        match kid {
            Some(k) => self.keys.get(k).cloned(),
            // A token without `kid` is only unambiguous against a one-key set.
            None if self.keys.len() == 1 => self.keys.values().next().cloned(),
            None => None,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Builds the set from a JWKS document; `allowed` (the issuer's configured algorithms,
    /// if any) narrows every key further.
    pub fn parse(body: &[u8], allowed: Option<&[Algorithm]>) -> Result<Self, FetchError> {
        #[derive(serde::Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc = serde_json::from_slice(body).map_err(|_| FetchError::Invalid)?;
        let total = doc.keys.len();
        let mut keys = HashMap::new();
        for raw in doc.keys {
            if keys.len() == MAX_KEYS {
                tracing::warn!(
                    total,
                    used = MAX_KEYS,
                    "the JWKS has more keys than the hub uses; the rest are ignored"
                );
                break;
            }
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
                continue;
            };
            if let Some((kid, key)) = usable(&jwk, allowed) {
                keys.entry(kid).or_insert_with(|| Arc::new(key));
            }
        }
        Ok(Self { keys })
    }
}

/// The key, if it is a public signature key of a supported type.
fn usable(jwk: &Jwk, allowed: Option<&[Algorithm]>) -> Option<(String, Key)> {
    use Algorithm::*;
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[ES256],
            EllipticCurve::P384 => &[ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => &[EdDSA],
        // Symmetric keys (`oct`) never verify an issuer's tokens; other types are unknown.
        _ => return None,
    };
    let mut algorithms: Vec<Algorithm> = match jwk.common.key_algorithm {
        None => family.to_vec(),
        Some(ka) => {
            let a = key_algorithm(ka)?;
            if !family.contains(&a) {
                return None;
            }
            vec![a]
        }
    };
    if let Some(allowed) = allowed {
        algorithms.retain(|a| allowed.contains(a));
    }
    if algorithms.is_empty() {
        return None;
    }
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    let kid = jwk.common.key_id.clone().unwrap_or_default();
    Some((
        kid,
        Key {
            decoding,
            algorithms,
        },
    ))
}

fn key_algorithm(ka: KeyAlgorithm) -> Option<Algorithm> {
    use Algorithm::*;
    Some(match ka {
        KeyAlgorithm::RS256 => RS256,
        KeyAlgorithm::RS384 => RS384,
        KeyAlgorithm::RS512 => RS512,
        KeyAlgorithm::PS256 => PS256,
        KeyAlgorithm::PS384 => PS384,
        KeyAlgorithm::PS512 => PS512,
        KeyAlgorithm::ES256 => ES256,
        KeyAlgorithm::ES384 => ES384,
        KeyAlgorithm::EdDSA => EdDSA,
        _ => return None,
    })
}

/// Why a fetch gave no key set. Each has a fixed metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("the IdP could not be reached or answered with an error")]
    Unreachable,
    #[error("the document is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("the document is not valid")]
    Invalid,
    #[error("the discovery document names another issuer")]
    IssuerMismatch,
}

impl FetchError {
    pub const fn label(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::TooLarge => "too_large",
            Self::Invalid => "invalid",
            Self::IssuerMismatch => "issuer_mismatch",
        }
    }
}

/// A fetched key set and how long it is fresh.
#[derive(Debug)]
pub struct Fetched {
    pub keys: KeySet,
    pub fresh_for: Duration,
}

pub type FetchFuture = Pin<Box<dyn Future<Output = Result<Fetched, FetchError>> + Send>>;
/// Fetches the key set: over HTTP in production ([`HttpFetcher`]).
pub type FetchFn = Arc<dyn Fn() -> FetchFuture + Send + Sync>;
/// Told of each fetch's outcome (`ok` or a [`FetchError::label`]), for metrics.
pub type OnFetch = Arc<dyn Fn(&'static str) + Send + Sync>;

/// Why no key was found for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// The IdP publishes no such key (after the refetch it was allowed).
    Unknown,
    /// No good key set is held, or the last one is older than [`MAX_STALE`].
    Unavailable,
}

#[derive(Default)]
struct State {
    keys: Option<Arc<KeySet>>,
    /// When the held set was fetched.
    fetched: Option<Instant>,
    /// Until when no fetch is needed (fresh set, or backing off after a failure).
    quiet_until: Option<Instant>,
    /// When an unknown `kid` last forced a fetch.
    forced: Option<Instant>,
    /// Fetches tried, and whether the last one succeeded.
    attempts: u64,
    last_ok: bool,
}

/// The cached keys of one issuer.
pub struct JwksCache {
    fetch: FetchFn,
    on_fetch: OnFetch,
    state: RwLock<State>,
    /// One fetch at a time; callers waiting on it then read its result.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("JwksCache")
            .field("keys", &st.keys.as_ref().map(|k| k.len()))
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    pub fn new(fetch: FetchFn, on_fetch: OnFetch) -> Self {
        Self {
            fetch,
            on_fetch,
            state: RwLock::default(),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The key for a token's `kid`.
    pub async fn key(&self, kid: Option<&str>) -> Result<Arc<Key>, KeyError> {
        let due = self.read().quiet_until.is_none_or(|t| Instant::now() >= t);
        if due {
            self.refresh(false).await;
        }
        let now = Instant::now();
        let (found, may_force) = {
            let st = self.read();
            if st
                .fetched
                .is_none_or(|f| now.duration_since(f) >= MAX_STALE)
            {
                return Err(KeyError::Unavailable);
            }
            let may_force = st
                .forced
                .is_none_or(|t| now.duration_since(t) >= FORCED_REFETCH_EVERY);
            (st.keys.as_ref().and_then(|k| k.get(kid)), may_force)
        };
        if let Some(k) = found {
            return Ok(k);
        }
        if may_force && self.refresh(true).await {
            let st = self.read();
            if let Some(k) = st.keys.as_ref().and_then(|k| k.get(kid)) {
                return Ok(k);
            }
        }
        Err(KeyError::Unknown)
    }

    /// Fetches unless another caller did meanwhile; `forced` for an unknown `kid` (counted
    /// against the once-a-minute allowance). True when a fetch succeeded (here or in the
    /// call this one waited for).
    async fn refresh(&self, forced: bool) -> bool {
        let seen = self.read().attempts;
        let _one = self.fetching.lock().await;
        let asked = Instant::now();
        {
            let mut st = self.write();
            // Another caller fetched while this one waited: its result stands.
            if st.attempts != seen {
                return st.last_ok;
            }
            if forced {
                if st
                    .forced
                    .is_some_and(|t| asked.duration_since(t) < FORCED_REFETCH_EVERY)
                {
                    return false;
                }
                st.forced = Some(asked);
            }
            st.attempts += 1;
        }
        let res = (self.fetch)().await;
        let now = Instant::now();
        let mut st = self.write();
        st.last_ok = res.is_ok();
        match res {
            Ok(f) => {
                (self.on_fetch)("ok");
                if f.keys.is_empty() {
                    tracing::warn!("the issuer's JWKS holds no usable signature key");
                }
                st.keys = Some(Arc::new(f.keys));
                st.fetched = Some(now);
                st.quiet_until = Some(now + f.fresh_for);
                true
            }
            Err(e) => {
                (self.on_fetch)(e.label());
                tracing::warn!(error = %e, "cannot fetch the issuer's JWKS; keeping the last good keys");
                st.quiet_until = Some(now + RETRY_AFTER_FAILURE);
                false
            }
        }
    }
}

/// `max-age` of a `Cache-Control` value, clamped; [`DEFAULT_FRESH`] when absent or
/// unreadable, [`MIN_FRESH`] for `no-store`/`no-cache`.
pub fn freshness(cache_control: Option<&str>) -> Duration {
    let Some(cc) = cache_control else {
        return DEFAULT_FRESH;
    };
    let mut out = None;
    for d in cc.split(',').map(str::trim) {
        let d = d.to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            return MIN_FRESH;
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            out = v
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    out.unwrap_or(DEFAULT_FRESH).clamp(MIN_FRESH, MAX_FRESH)
}

/// Fetches an issuer's keys over HTTP(S): discovery first unless `jwks_uri` is given.
#[derive(Debug, Clone)]
pub struct HttpFetcher {
    client: HttpsClient<http_body_util::Empty<bytes::Bytes>>,
    issuer: String,
    jwks_uri: Option<String>,
    allowed: Option<Vec<Algorithm>>,
    /// The `jwks_uri` discovery found, reused until a fetch from it fails.
    discovered: Arc<RwLock<Option<String>>>,
}

/// An outbound HTTP/1.1 client with request bodies of type `B`.
pub type HttpsClient<B> = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    B,
>;

/// An HTTP/1.1 client for https (rustls with the ring provider, the servers' own; the
/// system's root certificates) and for plain http, which each caller allows only where it
/// should (here: loopback issuers). Also the rpc-server's embeddings client.
pub fn https_client<B>() -> Result<HttpsClient<B>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    let mut roots = rustls::RootCertStore::empty();
    // Roots that fail to load are skipped; none at all leaves https failing closed.
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!("no system root certificates found: https servers cannot be verified");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}

/// Keys are fetched over https; plain http only from a loopback host (a local IdP, tests),
/// where nobody on the network can swap the keys in transit.
pub fn fetchable(url: &str) -> bool {
    let Ok(u) = url.parse::<http::Uri>() else {
        return false;
    };
    match (u.scheme_str().unwrap_or_default(), u.host()) {
        ("https", Some(_)) => true,
        ("http", Some("localhost")) => true,
        ("http", Some(h)) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        _ => false,
    }
}

impl HttpFetcher {
    pub fn new(
        issuer: &str,
        jwks_uri: Option<&str>,
        allowed: Option<Vec<Algorithm>>,
    ) -> Result<Self, String> {
        Ok(Self {
            client: https_client().map_err(|e| format!("cannot fetch keys for {issuer}: {e}"))?,
            issuer: issuer.to_owned(),
            jwks_uri: jwks_uri.map(str::to_owned),
            allowed,
            discovered: Arc::default(),
        })
    }

    /// As the [`FetchFn`] of a [`JwksCache`].
    pub fn into_fn(self) -> FetchFn {
        let me = Arc::new(self);
        Arc::new(move || {
            let me = me.clone();
            Box::pin(async move { me.fetch().await })
        })
    }

    /// One GET, bounded in time and size. Redirects are not followed: the IdP's URLs are
    /// what was configured or discovered, and a redirect could lead anywhere.
    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<String>), FetchError> {
        use http_body_util::BodyExt as _;
        let req = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|_| FetchError::Invalid)?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|_| FetchError::Unreachable)?;
            if !resp.status().is_success() {
                return Err(FetchError::Unreachable);
            }
            let cc = resp
                .headers()
                .get(http::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        FetchError::TooLarge
                    } else {
                        FetchError::Unreachable
                    }
                })?;
            Ok((body.to_bytes().to_vec(), cc))
        };
        tokio::time::timeout(FETCH_TIMEOUT, exchange)
            .await
            .unwrap_or(Err(FetchError::Unreachable))
    }

    async fn jwks_uri(&self) -> Result<String, FetchError> {
        if let Some(u) = &self.jwks_uri {
            return Ok(u.clone());
        }
        if let Some(u) = self
            .discovered
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(u);
        }
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let (body, _) = self.get(&url).await?;
        let d: Discovery = serde_json::from_slice(&body).map_err(|_| FetchError::Invalid)?;
        if d.issuer != self.issuer {
            return Err(FetchError::IssuerMismatch);
        }
        if !fetchable(&d.jwks_uri) {
            return Err(FetchError::Invalid);
        }
        *self.discovered.write().unwrap_or_else(|e| e.into_inner()) = Some(d.jwks_uri.clone());
        Ok(d.jwks_uri)
    }

    async fn fetch(&self) -> Result<Fetched, FetchError> {
        let uri = self.jwks_uri().await?;
        let res = self.get(&uri).await;
        if res.is_err() {
            // The IdP may have moved its keys: discover again next time.
            *self.discovered.write().unwrap_or_else(|e| e.into_inner()) = None;
        }
        let (body, cc) = res?;
        let keys = KeySet::parse(&body, self.allowed.as_deref())?;
        Ok(Fetched {
            keys,
            fresh_for: freshness(cc.as_deref()),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_come_over_https_or_from_loopback() {
        for ok in [
            "https://idp.example",
            "http://127.0.0.1:9090",
            "http://[::1]:9090/jwks",
            "http://localhost/x",
        ] {
            assert!(super::fetchable(ok), "{ok}");
        }
        for bad in [
            "http://idp.example",
            "http://10.0.0.1/jwks",
            "ftp://idp.example",
            "not a url",
        ] {
            assert!(!super::fetchable(bad), "{bad}");
        }
    }

    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// An Ed25519 public key in JWK form (RFC 8037 A.2).
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn ed(kid: &str) -> serde_json::Value {
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": kid})
    }

    fn set(kids: &[&str]) -> KeySet {
        let doc = serde_json::json!({"keys": kids.iter().map(|k| ed(k)).collect::<Vec<_>>()});
        KeySet::parse(doc.to_string().as_bytes(), None).expect("jwks")
    }

    #[test]
    fn keys_carry_the_algorithms_of_their_type() {
        let doc = serde_json::json!({"keys": [
            ed("ed"),
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "enc", "use": "enc"},
            {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "wrong-alg", "alg": "RS256"},
            {"kty": "EC", "crv": "P-256", "kid": "ec",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "RSA", "kid": "rsa", "alg": "PS256", "e": "AQAB",
             "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"},
            {"kty": "weird", "kid": "junk"},
        ]});
        let s = KeySet::parse(doc.to_string().as_bytes(), None).expect("jwks");
        assert_eq!(s.len(), 3, "ed, ec and rsa only");
        assert_eq!(
            s.get(Some("ed")).expect("ed").algorithms,
            [Algorithm::EdDSA]
        );
        assert_eq!(
            s.get(Some("ec")).expect("ec").algorithms,
            [Algorithm::ES256]
        );
        assert_eq!(
            s.get(Some("rsa")).expect("rsa").algorithms,
            [Algorithm::PS256],
            "alg narrows"
        );
        for absent in ["hmac", "enc", "wrong-alg", "junk"] {
            assert!(s.get(Some(absent)).is_none(), "{absent}");
        }
        assert!(s.get(None).is_none(), "no kid is ambiguous among three");
        let only_rs =
            KeySet::parse(doc.to_string().as_bytes(), Some(&[Algorithm::RS256])).expect("jwks");
        assert!(only_rs.is_empty(), "configured algorithms narrow further");
    }

    #[test]
    fn a_huge_jwks_is_truncated() {
        let kids: Vec<String> = (0..10_000).map(|i| format!("k{i}")).collect();
        let refs: Vec<&str> = kids.iter().map(String::as_str).collect();
        assert_eq!(set(&refs).len(), MAX_KEYS);
    }

    #[test]
    fn cache_control_is_clamped() {
        assert_eq!(freshness(None), DEFAULT_FRESH);
        assert_eq!(freshness(Some("public, max-age=5")), MIN_FRESH);
        assert_eq!(freshness(Some("max-age=86400")), MAX_FRESH);
        assert_eq!(freshness(Some("max-age=300")), Duration::from_secs(300));
        assert_eq!(freshness(Some("no-store")), MIN_FRESH);
        assert_eq!(freshness(Some("max-age=junk")), DEFAULT_FRESH);
    }

    /// A fetcher serving `kids`, counting fetches, failing while `down`.
    struct Idp {
        fetches: AtomicUsize,
        down: AtomicBool,
        kids: RwLock<Vec<&'static str>>,
    }

    fn cache(idp: &Arc<Idp>) -> JwksCache {
        let i = idp.clone();
        JwksCache::new(
            Arc::new(move || {
                let i = i.clone();
                Box::pin(async move {
                    i.fetches.fetch_add(1, Ordering::SeqCst);
                    if i.down.load(Ordering::SeqCst) {
                        return Err(FetchError::Unreachable);
                    }
                    let kids = i.kids.read().expect("kids").clone();
                    Ok(Fetched {
                        keys: set(&kids),
                        fresh_for: Duration::from_secs(300),
                    })
                })
            }),
            Arc::new(|_| {}),
        )
    }

    fn idp(kids: &[&'static str]) -> Arc<Idp> {
        Arc::new(Idp {
            fetches: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            kids: RwLock::new(kids.to_vec()),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_kids_refetch_once_a_minute() {
        let i = idp(&["k1"]);
        let c = cache(&i);
        assert!(c.key(Some("k1")).await.is_ok());
        assert_eq!(i.fetches.load(Ordering::SeqCst), 1);
        assert!(c.key(Some("k1")).await.is_ok(), "fresh: no fetch");
        assert_eq!(i.fetches.load(Ordering::SeqCst), 1);
        // Rotation: the new kid is found by the one forced refetch.
        i.kids.write().expect("kids").insert(0, "k2");
        assert!(c.key(Some("k2")).await.is_ok());
        assert_eq!(i.fetches.load(Ordering::SeqCst), 2);
        for n in 0..100 {
            let kid = format!("bogus-{n}");
            assert_eq!(c.key(Some(&kid)).await.err(), Some(KeyError::Unknown));
        }
        assert_eq!(
            i.fetches.load(Ordering::SeqCst),
            2,
            "the flood cost nothing"
        );
        tokio::time::advance(FORCED_REFETCH_EVERY).await;
        assert_eq!(c.key(Some("bogus")).await.err(), Some(KeyError::Unknown));
        assert_eq!(i.fetches.load(Ordering::SeqCst), 3, "one a minute");
    }

    #[tokio::test(start_paused = true)]
    async fn last_good_keys_serve_while_the_idp_is_down_then_fail_closed() {
        let i = idp(&["k1"]);
        let c = cache(&i);
        assert!(c.key(Some("k1")).await.is_ok());
        i.down.store(true, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(c.key(Some("k1")).await.is_ok(), "stale but within 24 h");
        let before = i.fetches.load(Ordering::SeqCst);
        assert!(c.key(Some("k1")).await.is_ok());
        assert_eq!(
            i.fetches.load(Ordering::SeqCst),
            before,
            "backs off after a failure"
        );
        assert_eq!(c.key(Some("new")).await.err(), Some(KeyError::Unknown));
        tokio::time::advance(MAX_STALE).await;
        assert_eq!(c.key(Some("k1")).await.err(), Some(KeyError::Unavailable));
        i.down.store(false, Ordering::SeqCst);
        tokio::time::advance(RETRY_AFTER_FAILURE).await;
        assert!(c.key(Some("k1")).await.is_ok(), "back once the IdP is");
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_verifies_before_the_first_fetch_succeeds() {
        let i = idp(&["k1"]);
        i.down.store(true, Ordering::SeqCst);
        let c = cache(&i);
        assert_eq!(c.key(Some("k1")).await.err(), Some(KeyError::Unavailable));
    }
}
