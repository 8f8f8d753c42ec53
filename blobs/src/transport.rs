//! The HTTP transport under object_store: hyper with rustls on the ring provider, given
//! explicitly. object_store's own transport is reqwest, whose rustls either builds aws-lc-rs
//! or (without a provider) needs one installed process-wide before any reqwest client of
//! the process is built; by feature unification that would reach every crate's reqwest.
//! This one has no such reach, and applies the limits reqwest would: a connect timeout, a
//! deadline on each whole request (body included), and https only unless the URL allows http.
//!
//! It also types the answers the store must tell apart. Overload answers (500, 502, 503, 504,
//! 429) come back as retriable transport errors carrying their status, so object_store
//! retries them exactly as it retries server errors; refusals (401, 403) as errors it does
//! not retry. Either way the final error names a typed cause instead of text to parse.

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody,
    HttpResponse, HttpResponseBody, HttpService,
};
use object_store::{ClientConfigKey, ClientOptions};
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// A server overloaded or failing, as the transport reports it.
#[derive(Debug, thiserror::Error)]
#[error("the server answered {0}")]
pub(crate) struct Overloaded(pub(crate) http::StatusCode);

/// The server refused the request's credentials or their permissions.
#[derive(Debug, thiserror::Error)]
#[error("the server refused the request ({0})")]
pub(crate) struct Refused(pub(crate) http::StatusCode);

/// The TLS handshake with the endpoint failed (untrusted certificate, not TLS at all…).
#[derive(Debug, thiserror::Error)]
#[error("TLS with the endpoint failed: {0}")]
pub(crate) struct TlsFailed(rustls::Error);

/// The rustls error in a chain. An `io::Error` hides the error it wraps from `source()`
/// (tokio-rustls wraps it, hyper-rustls wraps that again), so wrappers are opened by hand.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut cause = Some(e);
    for _ in 0..16 {
        let c = cause?;
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return Some(tls.clone());
        }
        cause = match c.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    None
}

#[derive(Debug, thiserror::Error)]
#[error("no complete answer within {0:?}")]
struct DeadlinePassed(Duration);

type Https = hyper_rustls::HttpsConnector<TcpConnector>;

/// Builds object_store's clients: the store's own, and those of the credential providers
/// (instance metadata, container credentials), which ask for plain http through their
/// [`ClientOptions`]. Only `allow_http` is taken from those options; the limits are the
/// store's.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

#[derive(Debug)]
struct Service {
    client: Client<Https, HttpRequestBody>,
    request_timeout: Duration,
}

impl Transport {
    pub(crate) fn new(
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        // Roots that fail to load are skipped; none at all leaves https failing closed.
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            tracing::warn!("no system root certificates found: an https S3 cannot be verified");
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            tls: Arc::new(tls),
            connect_timeout,
            request_timeout,
        })
    }
}

impl HttpConnector for Transport {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let allow_http = options
            .get_config_value(&ClientConfigKey::AllowHttp)
            .as_deref()
            == Some("true");
        let mut tcp = TcpConnector::new();
        tcp.set_connect_timeout(Some(self.connect_timeout));
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config((*self.tls).clone());
        let https = if allow_http {
            https.https_or_http()
        } else {
            https.https_only()
        };
        let https = https.enable_http1().wrap_connector(tcp);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(HttpClient::new(Service {
            client,
            request_timeout: self.request_timeout,
        }))
    }
}

#[async_trait::async_trait]
impl HttpService for Service {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        use http::StatusCode as S;
        let limit = self.request_timeout;
        let deadline = Instant::now() + limit;
        let res = match tokio::time::timeout_at(deadline, self.client.request(req)).await {
            Ok(Ok(res)) => res,
            Ok(Err(e)) => return Err(client_error(e)),
            Err(_) => {
                return Err(HttpError::new(
                    HttpErrorKind::Timeout,
                    DeadlinePassed(limit),
                ));
            }
        };
        match res.status() {
            s @ (S::INTERNAL_SERVER_ERROR
            | S::BAD_GATEWAY
            | S::SERVICE_UNAVAILABLE
            | S::GATEWAY_TIMEOUT
            | S::TOO_MANY_REQUESTS) => Err(HttpError::new(HttpErrorKind::Request, Overloaded(s))),
            s @ (S::UNAUTHORIZED | S::FORBIDDEN) => {
                Err(HttpError::new(HttpErrorKind::Unknown, Refused(s)))
            }
            _ => Ok(res.map(|body| {
                HttpResponseBody::new(DeadlineBody {
                    body,
                    deadline: Box::pin(tokio::time::sleep_until(deadline)),
                    limit,
                })
            })),
        }
    }
}

/// A response body that fails once the request's deadline passes.
struct DeadlineBody {
    body: Incoming,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(body_error)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::new(
                HttpErrorKind::Timeout,
                DeadlinePassed(self.limit),
            )))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The kind object_store's retry loop acts on: failed connects and requests that never got
/// an answer are retried; timeouts and broken answers only for idempotent requests.
fn client_error(e: hyper_util::client::legacy::Error) -> HttpError {
    if let Some(tls) = tls_failure(&e) {
        // A certificate that does not verify or a peer that does not speak TLS will not
        // be fixed by retrying: not retried, reported as what it is.
        return HttpError::new(HttpErrorKind::Unknown, TlsFailed(tls));
    }
    let kind = if e.is_connect() {
        HttpErrorKind::Connect
    } else {
        kind_of(&e)
    };
    HttpError::new(kind, e)
}

fn body_error(e: hyper::Error) -> HttpError {
    HttpError::new(kind_of(&e), e)
}

fn kind_of(e: &(dyn std::error::Error + 'static)) -> HttpErrorKind {
    let chain = std::iter::successors(Some(e), |c| c.source());
    for c in chain {
        if let Some(h) = c.downcast_ref::<hyper::Error>() {
            if h.is_timeout() {
                return HttpErrorKind::Timeout;
            }
            if h.is_canceled() || h.is_closed() || h.is_incomplete_message() {
                return HttpErrorKind::Request;
            }
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::TimedOut => return HttpErrorKind::Timeout,
                K::ConnectionRefused => return HttpErrorKind::Connect,
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                    return HttpErrorKind::Interrupted;
                }
                _ => {}
            }
        }
    }
    HttpErrorKind::Unknown
}
