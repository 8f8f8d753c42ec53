//! Client ID Metadata Documents fetched and kept (SPEC §11): a client whose `client_id` is
//! an https URL is described by the JSON document at that URL. The rules (which URLs, which
//! addresses, what the document must say, how long it is kept) are
//! `nexus_oauth::cimd`; this module does the I/O, which that crate stays free of, and keeps
//! the client row that codes, tokens, `oauth clients list` and revocation hang on.
//!
//! The SSRF guard: the host is resolved here and every address it resolves to must pass the
//! classifier (one private address among public ones refuses the lot); the connection goes
//! to a checked address, so a second resolution cannot swap it (DNS rebinding). Redirects
//! are not followed: a 3xx is a refusal. One connection per fetch, HTTP/1.1, TLS verified
//! against the system roots and `NEXUS_OAUTH_CIMD_CA_FILE`; the whole fetch within
//! [`FETCH_TIMEOUT`], a `Content-Type` of JSON, and at most [`MAX_DOCUMENT_BYTES`] read.
//!
//! Kept per `Cache-Control` (bounded); a refusal is kept [`NEGATIVE_TTL`], so that a flood of
//! bad URLs costs one fetch each a minute; fetches per host are rate limited and few run at
//! once, so the hub cannot be made a scanner. A revoked client's row stays revoked: the
//! database is asked before the cache, and a fresh document cannot revive it.

use super::{OAuthServer, store_err};
use crate::config::CimdSettings;
use crate::db::StoreError;
use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http_body_util::BodyExt as _;
use nexus_oauth::OAuthError;
use nexus_oauth::cimd::{
    FETCH_TIMEOUT, MAX_DOCUMENT_BYTES, NEGATIVE_TTL, cache_ttl, check_client_id_url, classify,
    host_allowed, is_json_content_type, validate_document,
};
use nexus_oauth::client::Client;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use url::{Host, Position, Url};

/// Documents (and refusals) kept at most.
const CACHE_ENTRIES: u64 = 10_000;
/// Fetches from one host a minute.
const FETCHES_PER_HOST_PER_MIN: u32 = 30;
/// Fetches in flight at once, over all hosts.
const CONCURRENT_FETCHES: usize = 8;
/// Addresses of one host tried in turn.
const MAX_CONNECT_ATTEMPTS: usize = 3;

fn refused(d: impl Into<String>) -> OAuthError {
    OAuthError::new("invalid_client", d)
}

/// The roots a metadata document's certificate may chain to: the system's and the
/// operator's CA file. An unreadable or empty CA file is an error (at startup).
/// `addrs` when every one is allowed: a name with one public and one private address is
/// refused, as whichever the connection picked could be the private one.
fn every_address_allowed(
    host: &str,
    addrs: Vec<SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, OAuthError> {
    if addrs.is_empty() {
        return Err(refused("the client_id URL's host has no address"));
    }
    for a in &addrs {
        if let Some(why) = classify(a.ip()).refusal(allow_private) {
            return Err(refused(format!(
                "{host} is at {}, a {why} address; client metadata documents are fetched from public addresses only",
                a.ip()
            )));
        }
    }
    Ok(addrs)
}

pub(crate) fn load_roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    // Roots that fail to load are skipped; none at all leaves https failing closed.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        use rustls::pki_types::pem::PemObject;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!("no CA certificate in {}", path.display()));
        }
    }
    Ok(roots)
}

/// A document's verdict and until when it holds.
struct Entry {
    outcome: Result<Client, OAuthError>,
    until: Instant,
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// Judged earlier (kept): nothing new to record.
    Kept(Result<Client, OAuthError>),
    /// Judged now (fetched, or refused before a fetch): audited by the caller.
    Judged(Result<Client, OAuthError>),
}

/// Fetches and keeps metadata documents.
pub(crate) struct CimdFetcher {
    settings: CimdSettings,
    /// `None` when no TLS configuration could be built: every fetch is refused.
    tls: Option<Arc<rustls::ClientConfig>>,
    cache: moka::sync::Cache<String, Arc<Entry>>,
    per_host: DefaultKeyedRateLimiter<String>,
    fetching: Semaphore,
}

impl CimdFetcher {
    pub(crate) fn new(settings: &CimdSettings) -> Self {
        let tls = load_roots(settings.ca_file.as_deref())
            .and_then(|roots| {
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())
                .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            })
            .map_err(|e| tracing::warn!(error = %e, "client metadata documents cannot be fetched"))
            .ok()
            .map(Arc::new);
        let per_min = NonZeroU32::new(FETCHES_PER_HOST_PER_MIN).unwrap_or(NonZeroU32::MIN);
        Self {
            settings: settings.clone(),
            tls,
            cache: moka::sync::Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(nexus_oauth::cimd::MAX_TTL)
                .build(),
            per_host: RateLimiter::keyed(Quota::per_minute(per_min)),
            fetching: Semaphore::new(CONCURRENT_FETCHES),
        }
    }

    pub(crate) fn housekeeping(&self) {
        self.per_host.retain_recent();
        self.cache.run_pending_tasks();
    }

    /// The client described at `client_id` (an https URL by [`check_client_id_url`]).
    pub(crate) async fn lookup(&self, client_id: &str) -> Lookup {
        let url = match check_client_id_url(client_id) {
            Ok(u) => u,
            Err(e) => return Lookup::Judged(Err(e)),
        };
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if !host_allowed(&self.settings.allow_hosts, &host) {
            return Lookup::Judged(Err(refused(format!(
                "this hub does not accept clients from {host} (NEXUS_OAUTH_CIMD_ALLOW_HOSTS)"
            ))));
        }
        if let Some(e) = self.cache.get(client_id)
            && e.until > Instant::now()
        {
            return Lookup::Kept(e.outcome.clone());
        }
        let busy = || {
            OAuthError::new(
                "temporarily_unavailable",
                "too many client metadata fetches; try again in a minute",
            )
        };
        if self.per_host.check_key(&host).is_err() {
            return Lookup::Judged(Err(busy()));
        }
        let Ok(_permit) = self.fetching.try_acquire() else {
            return Lookup::Judged(Err(busy()));
        };
        let (outcome, ttl) = match tokio::time::timeout(FETCH_TIMEOUT, self.fetch(&url)).await {
            Ok(Ok((client, ttl))) => (Ok(client), ttl),
            Ok(Err(e)) => (Err(e), NEGATIVE_TTL),
            Err(_) => (
                Err(refused(format!(
                    "the client metadata document did not arrive within {} s",
                    FETCH_TIMEOUT.as_secs()
                ))),
                NEGATIVE_TTL,
            ),
        };
        self.cache.insert(
            client_id.to_owned(),
            Arc::new(Entry {
                outcome: outcome.clone(),
                until: Instant::now() + ttl,
            }),
        );
        Lookup::Judged(outcome)
    }

    /// The addresses `url`'s host resolves to, every one of them allowed.
    async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, OAuthError> {
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = match url.host() {
            Some(Host::Ipv4(a)) => vec![SocketAddr::new(a.into(), port)],
            Some(Host::Ipv6(a)) => vec![SocketAddr::new(a.into(), port)],
            Some(Host::Domain(d)) => tokio::net::lookup_host((d, port))
                .await
                .map_err(|_| refused(format!("{d} does not resolve")))?
                .collect(),
            None => Vec::new(),
        };
        every_address_allowed(
            url.host_str().unwrap_or_default(),
            addrs,
            self.settings.allow_private,
        )
    }

    async fn fetch(&self, url: &Url) -> Result<(Client, Duration), OAuthError> {
        let Some(tls) = self.tls.clone() else {
            return Err(refused("this hub cannot verify https servers"));
        };
        let addrs = self.resolve(url).await?;
        let host = url.host_str().unwrap_or_default();
        let mut tcp = None;
        for a in addrs.iter().take(MAX_CONNECT_ATTEMPTS) {
            if let Ok(s) = tokio::net::TcpStream::connect(a).await {
                tcp = Some(s);
                break;
            }
        }
        let tcp = tcp.ok_or_else(|| refused(format!("cannot connect to {host}")))?;
        let name = match url.host() {
            Some(Host::Domain(d)) => ServerName::try_from(d.to_owned())
                .map_err(|_| refused("the client_id URL's host is not a valid name"))?,
            Some(Host::Ipv4(a)) => ServerName::IpAddress(std::net::IpAddr::from(a).into()),
            Some(Host::Ipv6(a)) => ServerName::IpAddress(std::net::IpAddr::from(a).into()),
            None => return Err(refused("the client_id URL names a host")),
        };
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| refused(format!("TLS with {host} failed: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(16 * 1024)
            .handshake::<_, http_body_util::Empty<Bytes>>(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|_| refused(format!("HTTP with {host} failed")))?;
        // The connection is driven beside the request and closed with it.
        let driver = AbortOnDrop(tokio::spawn(conn));
        let req = http::Request::get(&url[Position::BeforePath..Position::AfterQuery])
            .header(
                http::header::HOST,
                &url[Position::BeforeHost..Position::AfterPort],
            )
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("nexus-hub/", env!("CARGO_PKG_VERSION")),
            )
            .body(http_body_util::Empty::new())
            .map_err(|_| refused("the client_id URL cannot be requested"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|_| refused(format!("{host} did not answer")))?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(refused(format!(
                "the client metadata document URL answered a redirect (HTTP {}); redirects are not followed",
                status.as_u16()
            )));
        }
        if status != http::StatusCode::OK {
            return Err(refused(format!(
                "the client metadata document URL answered HTTP {}",
                status.as_u16()
            )));
        }
        let header = |k: http::header::HeaderName| {
            resp.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if !header(http::header::CONTENT_TYPE).is_some_and(|ct| is_json_content_type(&ct)) {
            return Err(refused(
                "the client metadata document is not served as JSON (Content-Type application/json)",
            ));
        }
        let too_big = || {
            refused(format!(
                "the client metadata document is larger than {} KiB",
                MAX_DOCUMENT_BYTES / 1024
            ))
        };
        if header(http::header::CONTENT_LENGTH)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .is_some_and(|l| l > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(too_big());
        }
        let ttl = cache_ttl(header(http::header::CACHE_CONTROL).as_deref());
        let mut body = resp.into_body();
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| refused("the client metadata document was cut off"))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > MAX_DOCUMENT_BYTES {
                    return Err(too_big());
                }
                buf.extend_from_slice(&data);
            }
        }
        drop(driver);
        let client = validate_document(url.as_str(), &buf)?;
        Ok((client, ttl))
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl OAuthServer {
    /// The client whose `client_id` is a metadata document URL: `None` when documents are
    /// off or the client was revoked; a refusal says why the document was not accepted.
    pub(super) async fn metadata_client(
        &self,
        client_id: &str,
    ) -> Result<Option<(String, Vec<String>)>, OAuthError> {
        if !self.settings.cimd.enabled {
            return Ok(None);
        }
        let row = self
            .store()
            .oauth_client(client_id)
            .await
            .map_err(store_err)?;
        if row
            .as_ref()
            .is_some_and(|r| r.revoked_at.is_some() || r.kind != "cimd")
        {
            return Ok(None);
        }
        let (outcome, judged) = match self.cimd.lookup(client_id).await {
            Lookup::Kept(o) => (o, false),
            Lookup::Judged(o) => (o, true),
        };
        let client = match outcome {
            Ok(c) => c,
            Err(e) => {
                if judged {
                    self.audit(
                        "oauth.client_metadata",
                        None,
                        json!({ "client_id": client_id, "outcome": "refused", "reason": e.description }),
                    );
                }
                return Err(e);
            }
        };
        if judged {
            self.audit(
                "oauth.client_metadata",
                None,
                json!({ "client_id": client_id, "outcome": "fetched", "client_name": client.client_name, "redirect_uris": client.redirect_uris }),
            );
        }
        if judged || row.is_none() {
            // Refreshes the row's name and URIs; a row revoked meanwhile stays revoked.
            match self
                .store()
                .oauth_put_client(
                    client_id,
                    "cimd",
                    &client.client_name,
                    &client.redirect_uris,
                    chrono::Utc::now(),
                )
                .await
            {
                Ok(()) => {}
                Err(StoreError::Invalid(_)) => return Ok(None),
                Err(e) => return Err(store_err(e)),
            }
        }
        Ok(Some((client.client_name, client.redirect_uris)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(ips: &[&str]) -> Vec<SocketAddr> {
        ips.iter()
            .map(|ip| SocketAddr::new(ip.parse().expect("an address"), 443))
            .collect()
    }

    #[test]
    fn a_name_with_any_refused_address_is_refused() {
        // A name may resolve to a public and a private address at once (split-horizon DNS,
        // or an attacker's record): the private one could be the one connected to.
        for mixed in [
            &["93.184.215.14", "10.0.0.7"][..],
            &["10.0.0.7", "93.184.215.14"],
            &["2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::1"],
            &["93.184.215.14", "169.254.169.254"],
            &["93.184.215.14", "::ffff:127.0.0.1"],
        ] {
            let e =
                every_address_allowed("docs.example", addrs(mixed), false).expect_err("refused");
            assert!(
                e.description.contains("public addresses only"),
                "{mixed:?}: {e:?}"
            );
        }
        assert!(every_address_allowed("docs.example", Vec::new(), false).is_err());
        let public = addrs(&["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]);
        assert_eq!(
            every_address_allowed("docs.example", public.clone(), false).expect("public"),
            public
        );
        // An operator may allow private addresses; link-local stays refused.
        assert!(every_address_allowed("docs.internal", addrs(&["10.0.0.7"]), true).is_ok());
        assert!(
            every_address_allowed(
                "docs.internal",
                addrs(&["10.0.0.7", "169.254.169.254"]),
                true
            )
            .is_err()
        );
    }
}
