//! How a request reaches the rpc-server: over a pooled HTTP/1.1 connection
//! ([`HttpTransport`]), or handed to its router in the same process ([`ServiceTransport`]).
//! Everything before and after the transport (token, verification, error mapping) is the
//! same for both.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::net::SocketAddr;
use std::time::Duration;

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No answer in time (connecting included).
    #[error("timed out")]
    Timeout,
    /// No connection could be made: nothing was sent.
    #[error("could not connect")]
    Connect,
    /// Connected, then the connection broke before a whole answer came back.
    #[error("the connection broke")]
    Broken,
}

/// Sends one request to the rpc-server and returns its whole answer. The caller bounds the
/// exchange in time; a transport only reports its own limits (connecting) as `Timeout`.
pub trait Transport: Send + Sync + std::fmt::Debug {
    fn send(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> BoxFuture<'_, Result<http::Response<Bytes>, TransportError>>;
}

/// A keep-alive pool of HTTP/1.1 connections, TCP_NODELAY on.
pub struct HttpTransport {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpTransport")
    }
}

impl Default for HttpTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpTransport {
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        // Without it a small request waits on Nagle + delayed ACK (~40 ms per call).
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(3)));
        // A peer that vanished without a FIN is noticed on an idle pooled connection.
        connector.set_keepalive(Some(Duration::from_secs(15)));
        connector.set_keepalive_interval(Some(Duration::from_secs(15)));
        connector.set_keepalive_retries(Some(3));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            // The idle timeout is enforced only with a timer.
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self { client }
    }
}

impl Transport for HttpTransport {
    fn send(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> BoxFuture<'_, Result<http::Response<Bytes>, TransportError>> {
        Box::pin(async move {
            let resp = self.client.request(req).await.map_err(|e| {
                if timed_out(&e) {
                    TransportError::Timeout
                } else if e.is_connect() {
                    TransportError::Connect
                } else {
                    TransportError::Broken
                }
            })?;
            collect(resp).await
        })
    }
}

/// Whether an io "timed out" is anywhere in the error's chain (the connect timeout).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Reads the whole body. Only a 200's body is used: a refusal whose body broke off is still
/// the refusal its status says.
async fn collect<B>(resp: http::Response<B>) -> Result<http::Response<Bytes>, TransportError>
where
    B: hyper::body::Body<Data = Bytes>,
{
    let (parts, body) = resp.into_parts();
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) if parts.status != http::StatusCode::OK => Bytes::new(),
        Err(_) => return Err(TransportError::Broken),
    };
    Ok(http::Response::from_parts(parts, bytes))
}

/// The rpc-server's router called in this process: no socket, no HTTP framing. The server
/// sees a loopback peer, as it would over TCP from a frontend on the same host.
#[derive(Clone)]
pub struct ServiceTransport<S> {
    service: S,
}

impl<S> std::fmt::Debug for ServiceTransport<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceTransport")
    }
}

impl<S> ServiceTransport<S> {
    pub fn new(service: S) -> Self {
        Self { service }
    }
}

/// The peer address the in-process server sees.
const LOOPBACK_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

impl<S> Transport for ServiceTransport<S>
where
    S: tower::Service<http::Request<axum::body::Body>, Response = http::Response<axum::body::Body>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
    S::Error: Send,
{
    fn send(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> BoxFuture<'_, Result<http::Response<Bytes>, TransportError>> {
        use tower::ServiceExt;
        let (mut parts, body) = req.into_parts();
        parts
            .extensions
            .insert(axum::extract::ConnectInfo(LOOPBACK_PEER));
        // As the HTTP client would send it.
        if !parts.headers.contains_key(http::header::HOST)
            && let Some(host) = parts
                .uri
                .authority()
                .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(http::header::HOST, host);
        }
        let req = http::Request::from_parts(parts, axum::body::Body::new(body));
        let service = self.service.clone();
        Box::pin(async move {
            let resp = service
                .oneshot(req)
                .await
                .map_err(|_| TransportError::Broken)?;
            collect(resp).await
        })
    }
}
