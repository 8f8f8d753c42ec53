//! How a request reaches the rpc-server: over a pooled HTTP/1.1 connection
//! ([`HttpTransport`], plain or through TLS), or handed to its router in the same process
//! ([`ServiceTransport`]). Everything before and after the transport (token, verification,
//! error mapping) is the same for all of them.

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

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

/// How a new TCP connection becomes the byte stream HTTP runs on: as it is ([`Plain`],
/// `http://`), or through TLS (`https://`, see `super::tls`). A type parameter of the
/// pool, so the plain path holds no TLS code at all.
pub trait Connect: Send + Sync + 'static {
    type Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    /// The port of an authority that names none.
    const DEFAULT_PORT: u16;
    /// The stream for `tcp`, connected to `authority` (`host[:port]`).
    fn wrap(
        &self,
        tcp: TcpStream,
        authority: &str,
    ) -> impl Future<Output = Result<Self::Io, TransportError>> + Send;
    /// Told of a request that failed on a connection, to say why in the log if it knows.
    fn failed(&self, authority: &str, e: &hyper::Error);
}

/// `http://`: the TCP connection itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Connect for Plain {
    type Io = TcpStream;
    const DEFAULT_PORT: u16 = 80;

    async fn wrap(&self, tcp: TcpStream, _: &str) -> Result<TcpStream, TransportError> {
        Ok(tcp)
    }

    fn failed(&self, _: &str, _: &hyper::Error) {}
}

/// A keep-alive pool of HTTP/1.1 connections to the rpc-server, TCP_NODELAY on, each one
/// plain or TLS as `C` makes it.
///
/// A connection has no task of its own: the task making a call drives its connection
/// while the call is in flight (hyper's low-level `http1` client), and an idle connection
/// waits in the pool undriven. A call thus never hands its request to another task and
/// waits to be woken back, which on a multi-threaded runtime often meant a second worker
/// thread and a cross-thread wakeup for every call; it also spares a channel and a task
/// per connection. An idle connection the server has closed is noticed when it is taken
/// from the pool, and a request that never left a stale connection is sent again on a
/// new one; one that may have left is never resent (tool calls are not idempotent).
pub struct HttpTransport<C: Connect = Plain> {
    idle: std::sync::Mutex<Vec<Pooled<C>>>,
    connector: C,
}

type Connection<C> =
    hyper::client::conn::http1::Connection<TokioIo<<C as Connect>::Io>, Full<Bytes>>;

struct Pooled<C: Connect> {
    /// `host:port` this connection goes to.
    authority: String,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    conn: Pin<Box<Connection<C>>>,
    idle_since: Instant,
}

/// How long an idle connection is kept, and how many are.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
const MAX_IDLE: usize = 256;
/// For the TCP connect, and again for a TLS handshake.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl<C: Connect> std::fmt::Debug for HttpTransport<C> {
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
        Self::with_connector(Plain)
    }
}

impl<C: Connect> HttpTransport<C> {
    pub(crate) fn with_connector(connector: C) -> Self {
        Self {
            idle: Default::default(),
            connector,
        }
    }

    /// The most recently used idle connection to `authority` that is still open.
    fn checkout(&self, authority: &str) -> Option<Pooled<C>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(mut p) = idle.pop() {
            // An idle connection that has ended (the server closed it) resolves at once.
            let ended = p.conn.as_mut().now_or_never().is_some();
            if !ended
                && p.authority == authority
                && p.idle_since.elapsed() < IDLE_TIMEOUT
                && !p.sender.is_closed()
            {
                return Some(p);
            }
        }
        None
    }

    fn checkin(&self, mut p: Pooled<C>) {
        p.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|q| q.idle_since.elapsed() < IDLE_TIMEOUT);
        if idle.len() < MAX_IDLE {
            idle.push(p);
        }
    }
}

async fn connect<C: Connect>(connector: &C, authority: &str) -> Result<Pooled<C>, TransportError> {
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
    let addr = if has_port {
        std::borrow::Cow::Borrowed(authority)
    } else {
        std::borrow::Cow::Owned(format!("{authority}:{}", C::DEFAULT_PORT))
    };
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&*addr)).await {
        Err(_) => return Err(TransportError::Timeout),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
            return Err(TransportError::Timeout);
        }
        Ok(Err(_)) => return Err(TransportError::Connect),
        Ok(Ok(s)) => s,
    };
    // Without it a small request waits on Nagle + delayed ACK (~40 ms per call).
    stream
        .set_nodelay(true)
        .map_err(|_| TransportError::Connect)?;
    // A peer that vanished without a FIN is noticed on an idle pooled connection.
    let probes = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(15))
        .with_interval(Duration::from_secs(15))
        .with_retries(3);
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&probes);
    let io = connector.wrap(stream, authority).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|_| TransportError::Connect)?;
    Ok(Pooled {
        authority: authority.to_owned(),
        sender,
        conn: Box::pin(conn),
        idle_since: Instant::now(),
    })
}

/// Runs `exchange` while driving `conn` in the same task. Returns the exchange's outcome
/// and whether the connection is still open.
async fn drive<F: Future, C: Connect>(
    exchange: F,
    conn: &mut Pin<Box<Connection<C>>>,
) -> (F::Output, bool) {
    let mut exchange = std::pin::pin!(exchange);
    let mut open = true;
    let out = std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = exchange.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        if open && conn.as_mut().poll(cx).is_ready() {
            // The connection ended: the exchange has its answer (an error) now.
            open = false;
            return exchange.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await;
    (out, open)
}

/// Whether a connection may carry another request after this answer. A server may refuse
/// a large body (413, 401) before it has read it and then close the connection or discard
/// the rest: after a large request, only a 200 (the body was read) puts it back, whatever
/// the connection's state looks like at that moment.
fn reusable(status: http::StatusCode, body_len: u64) -> bool {
    const SMALL_BODY: u64 = 64 * 1024;
    status == http::StatusCode::OK || body_len <= SMALL_BODY
}

/// What one attempt on a connection came to.
enum Attempt {
    Answer(http::Response<Bytes>),
    /// The request never left: it may go again on another connection.
    Unsent(http::Request<Full<Bytes>>),
    Failed(TransportError),
}

impl<C: Connect> Transport for HttpTransport<C> {
    fn send(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> BoxFuture<'_, Result<http::Response<Bytes>, TransportError>> {
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let authority = parts
                .uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .ok_or(TransportError::Connect)?;
            if !parts.headers.contains_key(http::header::HOST)
                && let Ok(host) = http::HeaderValue::from_str(&authority)
            {
                parts.headers.insert(http::header::HOST, host);
            }
            // The connection is to the server: the request line carries the path only.
            parts.uri = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
                .parse()
                .map_err(|_| TransportError::Connect)?;
            let body_len = hyper::body::Body::size_hint(&body)
                .exact()
                .unwrap_or(u64::MAX);
            let mut req = http::Request::from_parts(parts, body);
            loop {
                let (mut p, reused) = match self.checkout(&authority) {
                    Some(p) => (p, true),
                    None => (connect(&self.connector, &authority).await?, false),
                };
                let Pooled { sender, conn, .. } = &mut p;
                let (connector, authority) = (&self.connector, authority.as_str());
                let exchange = async {
                    if sender.ready().await.is_err() {
                        return Attempt::Failed(TransportError::Broken);
                    }
                    match sender.try_send_request(req).await {
                        Ok(resp) => match collect(resp).await {
                            Ok(r) => Attempt::Answer(r),
                            Err(e) => Attempt::Failed(e),
                        },
                        Err(mut e) => {
                            connector.failed(authority, e.error());
                            match e.take_message() {
                                Some(unsent) => Attempt::Unsent(unsent),
                                None => Attempt::Failed(TransportError::Broken),
                            }
                        }
                    }
                };
                let (attempt, open) = drive::<_, C>(exchange, conn).await;
                match attempt {
                    Attempt::Answer(r) => {
                        if open && !p.sender.is_closed() && reusable(r.status(), body_len) {
                            self.checkin(p);
                        }
                        return Ok(r);
                    }
                    // A pooled connection went stale before the request left: try anew.
                    Attempt::Unsent(unsent) if reused => req = unsent,
                    Attempt::Unsent(_) => return Err(TransportError::Broken),
                    Attempt::Failed(e) => return Err(e),
                }
            }
        })
    }
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
