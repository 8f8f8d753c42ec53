//! TLS on the hop to the rpc-server (`--url https://…`): the trust and client certificate
//! the frontend presents ([`RpcTls`], read once at startup), and the [`Tls`] connector the
//! pooled transport runs its connections through. rustls with the ring provider, passed
//! explicitly: nothing here depends on a process-wide default provider. Hostname (or IP)
//! verification is always on; there is no switch to turn it off.

use super::transport::{Connect, TransportError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// The frontend's TLS client settings for the rpc-server: whose certificates it trusts,
/// and the certificate it presents, if any. `Debug` shows where they came from, never a
/// key.
#[derive(Clone)]
pub struct RpcTls {
    config: Arc<rustls::ClientConfig>,
    summary: String,
}

impl std::fmt::Debug for RpcTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RpcTls({})", self.summary)
    }
}

/// One of the three settings, named as an operator sets it.
const CA: &str = "NEXUS_MCP_RPC_CA (--rpc-ca)";
const CERT: &str = "NEXUS_MCP_RPC_CERT (--rpc-cert)";
const KEY: &str = "NEXUS_MCP_RPC_KEY (--rpc-key)";

impl RpcTls {
    /// Reads the settings: `ca`, a PEM bundle that is then the only trust (the system's
    /// roots otherwise), and an optional client certificate chain and its key (PEM).
    /// An error names the setting and the file, never what is in it.
    pub fn load(ca: Option<&Path>, client: Option<(&Path, &Path)>) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        let trust = match ca {
            Some(path) => {
                let certs = read_certs(CA, path)?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    anyhow::bail!("{CA} {}: no usable CA certificate in it", path.display());
                }
                format!("ca {}", path.display())
            }
            None => {
                // Roots that fail to load are skipped; none at all cannot verify anything.
                let native = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    anyhow::bail!(
                        "no system root certificates found to verify the rpc-server's https \
                         certificate: set {CA} to the CA bundle that signed it"
                    );
                }
                "system roots".to_owned()
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow::anyhow!("TLS to the rpc-server: {e}"))?
            .with_root_certificates(roots);
        let (mut config, summary) = match client {
            None => (builder.with_no_client_auth(), trust),
            Some((cert, key)) => {
                let chain = read_certs(CERT, cert)?;
                let private = read_key(key)?;
                let config = builder.with_client_auth_cert(chain, private).map_err(|e| {
                    anyhow::anyhow!(
                        "{CERT} {} and {KEY} {}: not a certificate and its key ({e})",
                        cert.display(),
                        key.display()
                    )
                })?;
                (config, format!("{trust}, client cert {}", cert.display()))
            }
        };
        // The transport speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            summary,
        })
    }
}

fn read_file(what: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("{what} {}: cannot read it: {e}", path.display()))
}

/// The certificates of a PEM file. A parse error's own text can quote a line of the file,
/// so it is not passed on.
fn read_certs(what: &str, path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read_file(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| anyhow::anyhow!("{what} {}: not valid PEM", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{what} {}: no PEM certificate in it", path.display());
    }
    Ok(certs)
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = read_file(KEY, path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| anyhow::anyhow!("{KEY} {}: no PEM private key in it", path.display()))
}

/// Turns a TCP connection into a TLS one to the host of the request's authority, and
/// says in the log why a TLS connection failed, at most every [`WARN_EVERY`].
pub(crate) struct Tls {
    connector: tokio_rustls::TlsConnector,
    last_warned: Mutex<Option<Instant>>,
}

/// Every call fails alike while TLS is misconfigured: one line now and then says why.
const WARN_EVERY: Duration = Duration::from_secs(10);

impl Tls {
    pub(crate) fn new(tls: &RpcTls) -> Self {
        Self {
            connector: tokio_rustls::TlsConnector::from(tls.config.clone()),
            last_warned: Mutex::new(None),
        }
    }

    fn warn(&self, authority: &str, e: &rustls::Error) {
        {
            let mut last = self.last_warned.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < WARN_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        match e {
            rustls::Error::InvalidCertificate(_) => tracing::warn!(
                rpc = authority,
                error = %e,
                "TLS verification of the rpc-server's certificate failed: check NEXUS_MCP_RPC_CA and the host name in --url"
            ),
            rustls::Error::AlertReceived(_) => tracing::warn!(
                rpc = authority,
                error = %e,
                "the rpc-server refused the TLS connection: does it trust this frontend's client certificate (NEXUS_MCP_RPC_CERT)?"
            ),
            _ => tracing::warn!(rpc = authority, error = %e, "TLS with the rpc-server failed"),
        }
    }
}

/// The rustls error inside an I/O error, if that is what it is.
fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref())
}

impl Connect for Tls {
    type Io = tokio_rustls::client::TlsStream<TcpStream>;
    const DEFAULT_PORT: u16 = 443;

    async fn wrap(&self, tcp: TcpStream, authority: &str) -> Result<Self::Io, TransportError> {
        let host = authority
            .parse::<http::uri::Authority>()
            .map_err(|_| TransportError::Connect)?;
        let host = host.host().trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned()).map_err(|_| TransportError::Connect)?;
        match tokio::time::timeout(
            super::transport::CONNECT_TIMEOUT,
            self.connector.connect(name, tcp),
        )
        .await
        {
            Err(_) => Err(TransportError::Timeout),
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => {
                if let Some(tls) = rustls_error(&e) {
                    self.warn(authority, tls);
                }
                Err(TransportError::Connect)
            }
        }
    }

    fn failed(&self, authority: &str, e: &hyper::Error) {
        // Under TLS 1.3 a server that refuses the client's certificate says so after the
        // client's side of the handshake is done: it shows up on the first request.
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(c) = cause {
            if let Some(tls) = c.downcast_ref::<std::io::Error>().and_then(rustls_error) {
                self.warn(authority, tls);
                return;
            }
            cause = c.source();
        }
    }
}
