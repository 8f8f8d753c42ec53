//! The HTTP serve loop of both Nexus Hub servers (nexusd and the MCP frontend), so both get
//! the same connection handling: plain or TLS (rustls), HTTP/1.1 and HTTP/2, TCP_NODELAY,
//! `ConnectInfo<SocketAddr>`, a bounded graceful drain, and bounds that a slow or hostile
//! client cannot stretch ([`ConnLimits`]):
//!
//! - **header read**: a request head must be complete within `header_read_timeout` of its
//!   first byte, and a new connection must deliver its first request head within that time
//!   of being accepted (a TLS handshake included), so a client that trickles its headers
//!   byte by byte (slowloris), or never sends anything, cannot hold a connection;
//! - **idle**: a connection with no request in flight is closed `idle_timeout` after its
//!   last response ended; a request in flight (a slow call, a long response stream) is
//!   never cut by either deadline;
//! - **request body**: a request's body must be received within `body_read_timeout` of its
//!   head (plus a second per [`BODY_GRACE_BYTES`] received, so a large upload at a sane
//!   rate is not cut); past it the request gets 408 and an HTTP/1.1 connection is closed,
//!   whatever the handler was doing, so a body trickled a byte at a time cannot hold a slot;
//! - **write stall**: a write the client does not accept for `write_timeout` closes the
//!   connection. Only a pending write counts: a response stream that writes rarely (SSE)
//!   is not stalled;
//! - **connection cap**: past `max_connections` open connections a new one is closed at
//!   once, before it costs a TLS handshake or a buffer; past `max_per_address` from one
//!   client address (an IPv6 /64) likewise, so one address cannot take every slot;
//! - **head size**: an HTTP/1.1 request head over [`MAX_HEAD_BYTES`] is refused with 431
//!   (HTTP/2 has its own 16 KiB header-list cap).
//!
//! hyper's own `header_read_timeout` is left off: it also runs while a kept-alive connection
//! waits for its next request, so idle connections would be closed after the header-read
//! time instead of the idle time. Those deadlines and the write stall live in [`Watched`],
//! the connection's byte stream, which sees bytes arrive and writes wait; [`Tracked`],
//! around the connection's service, tells it when requests start and when their responses
//! end, and times each request's body.
//!
//! Around the loop, the rest of the process shell both binaries share: [`runtime`],
//! [`telemetry`], [`shutdown_signal`], the [`config_file`] reader, and the HTTP edge both
//! services need alike: [`caller_token`], [`client_ip`], [`error_response`] and
//! [`metrics_response`]. It knows nothing of either server; it speaks the wire contract
//! (header names, the error envelope) through `nexus-wire`.

pub mod config_file;
pub mod credentials;
pub mod process;
pub mod responses;
pub mod runtime;
mod shutdown;
pub mod telemetry;

pub use credentials::{caller_token, client_ip};
pub use responses::{error_response, metrics_response};
pub use shutdown::shutdown_signal;

use axum::body::{Body, Bytes};
use axum::http::{Request, Response, StatusCode, Version, header};
use axum_server::accept::{Accept, DefaultAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use futures_util::future::{BoxFuture, Either, Ready, ready};
use http_body::{Frame, SizeHint};
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::Service;

pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Above the 90 s idle pool of common HTTP clients (reqwest, the frontend's own), so a
/// client rarely reuses a connection at the moment the server closes it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Generous for any honest upload of the bodies both servers take (at most tens of MiB,
/// with [`BODY_GRACE_BYTES`] stretching it), short enough that trickled bodies free their
/// slots within a minute.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Each this many body bytes received add a second to `body_read_timeout`: an upload kept
/// at 64 KiB/s or more is never cut, a trickle gains nothing.
pub const BODY_GRACE_BYTES: u64 = 64 * 1024;
/// hyper's HTTP/1.1 read buffer, hence the largest request head (request line and headers);
/// beyond it, 431. Without it a head could grow to hyper's default ~400 KiB buffer on every
/// connection. Bodies stream through the buffer, so it does not bound them.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long a graceful shutdown waits for requests in flight before closing them.
pub const DRAIN: Duration = Duration::from_secs(10);
/// Connections the kernel queues for `accept` (capped by `net.core.somaxconn`). The usual
/// 128 overflows under a burst of connects, and each connect dropped then waits a full SYN
/// retransmission (1 s, then 3 s) before it is even seen.
pub const ACCEPT_BACKLOG: u32 = 1024;
/// Longest timeout a flag may set.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// Bounds on the connections of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// A request head must be complete within this time of its first byte (of the accept,
    /// for a connection's first request).
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed this long after its last response.
    pub idle_timeout: Duration,
    /// A request body must be received within this time of its head (plus a second per
    /// [`BODY_GRACE_BYTES`] received); past it, 408 and the connection is closed.
    pub body_read_timeout: Duration,
    /// A write the client does not accept for this long closes the connection.
    pub write_timeout: Duration,
    /// Open connections at most; a new one past it is closed at once. 0: no cap.
    pub max_connections: usize,
    /// Open connections from one client address (an IPv6 /64) at most. 0: no cap. Off by
    /// default: behind a proxy, or for nexusd whose clients are frontends, one address
    /// rightly holds many; a server facing clients directly sets it (see
    /// [`ConnLimits::default_per_address`]).
    pub max_per_address: usize,
}

impl ConnLimits {
    /// A quarter of `max_connections`: one address cannot hold every slot, yet a NAT
    /// gateway of many honest clients still has room. 0 (no cap) when the total is uncapped.
    pub fn default_per_address(max_connections: usize) -> usize {
        max_connections / 4
    }
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_address: 0,
        }
    }
}

/// Parses a timeout flag: seconds (`10`, `1.5`) or a number with a unit (`500ms`, `10s`,
/// `2m`); more than 0 and at most an hour.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let bad = || format!("expected a timeout such as 10, 10s, 500ms or 2m (at most 1h), got {s:?}");
    // Short text only: the number is then small enough for f64 to hold exactly.
    if num.is_empty() || num.len() > 12 {
        return Err(bad());
    }
    let secs = num.trim().parse::<f64>().map_err(|_| bad())? * scale;
    if !secs.is_finite() || secs <= 0.0 || secs > MAX_TIMEOUT.as_secs_f64() {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Binds `host:port` as `TcpListener::bind` does (first address that binds wins,
/// `SO_REUSEADDR` on), with an accept queue of [`ACCEPT_BACKLOG`].
pub async fn bind(host: &str, port: u16) -> io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket
            .bind(addr)
            .and_then(|()| socket.listen(ACCEPT_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on")))
}

/// Loads a PEM certificate chain and key for built-in TLS (rustls with the ring provider).
/// With `client_ca` (a PEM bundle), a client must present a certificate chaining to it or
/// the handshake fails.
pub async fn load_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_ca: Option<&std::path::Path>,
) -> anyhow::Result<RustlsConfig> {
    // Another part of the process may have installed it already; either way one is set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cannot = |e: &dyn std::fmt::Display| {
        anyhow::anyhow!(
            "cannot load TLS certificate {} and key {}: {e}",
            cert.display(),
            key.display()
        )
    };
    let Some(ca) = client_ca else {
        return RustlsConfig::from_pem_file(cert, key)
            .await
            .map_err(|e| cannot(&e));
    };
    let verifier = client_verifier(ca)?;
    let (chain, private) = std::fs::read(cert)
        .and_then(|c| Ok((c, std::fs::read(key)?)))
        .map_err(|e| cannot(&e))?;
    use rustls::pki_types::pem::PemObject;
    let chain = rustls::pki_types::CertificateDer::pem_slice_iter(&chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| cannot(&"the certificate is not valid PEM"))?;
    let private = rustls::pki_types::PrivateKeyDer::from_pem_slice(&private)
        .map_err(|_| cannot(&"no PEM private key in the key file"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| cannot(&e))?
    .with_client_cert_verifier(verifier)
    .with_single_cert(chain, private)
    .map_err(|e| cannot(&e))?;
    // As axum-server sets it for a config it builds.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

/// Verifies client certificates against the CA bundle at `ca`. An error names the setting
/// and the file, never what is in it (a PEM parse error can quote a line).
fn client_verifier(
    ca: &std::path::Path,
) -> anyhow::Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    use rustls::pki_types::pem::PemObject;
    let what = "NEXUS_TLS_CLIENT_CA (--tls-client-ca)";
    let pem = std::fs::read(ca)
        .map_err(|e| anyhow::anyhow!("{what} {}: cannot read it: {e}", ca.display()))?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| anyhow::anyhow!("{what} {}: not valid PEM", ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        anyhow::bail!("{what} {}: no usable CA certificate in it", ca.display());
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| anyhow::anyhow!("{what} {}: {e}", ca.display()))
}

/// Serves `app` on `listener` (over TLS when `tls` is given) within `limits` until
/// `shutdown` resolves, then drains requests in flight for at most [`DRAIN`].
pub async fn serve(
    listener: TcpListener,
    tls: Option<RustlsConfig>,
    app: axum::Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(DRAIN));
    });
    let mut server = axum_server::from_tcp(listener.into_std()?)?.handle(handle);
    configure(server.http_builder());
    let make = app.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        Some(tls) => {
            let tls = RustlsAcceptor::new(tls).handshake_timeout(limits.header_read_timeout);
            server.acceptor(Guard::new(tls, limits)).serve(make).await
        }
        None => {
            server
                .acceptor(Guard::new(DefaultAcceptor::new(), limits))
                .serve(make)
                .await
        }
    }
}

/// hyper's settings: no timer of its own (the deadlines are [`Watched`]'s), a capped head.
pub fn configure(b: &mut hyper_util::server::conn::auto::Builder<TokioExecutor>) {
    b.http1()
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD_BYTES);
}

/// A stream as accepted; socket options are set here.
pub trait Socket: AsyncRead + AsyncWrite + Unpin {
    fn on_accept(&self) {}
    /// The client's address, for the per-address cap (None: not capped).
    fn peer_ip(&self) -> Option<IpAddr> {
        None
    }
}

impl Socket for tokio::net::TcpStream {
    fn on_accept(&self) {
        // Without TCP_NODELAY small responses wait on delayed ACKs (~40 ms per call).
        let _ = self.set_nodelay(true);
    }

    fn peer_ip(&self) -> Option<IpAddr> {
        self.peer_addr().ok().map(|a| a.ip())
    }
}

impl Socket for tokio::io::DuplexStream {}

/// The key an address is capped under: an IPv4 address (IPv4-mapped IPv6 included) as it
/// is, an IPv6 address by its /64, which one client usually holds whole.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::V6(seg.into())
        }
        v4 => v4,
    }
}

/// How many places each key holds, shared by a counter and the slots it hands out.
pub type Counts<K> = Arc<Mutex<HashMap<K, usize>>>;

/// One place counted against its key (a connection against its address, a request
/// against its client); uncounted when dropped.
#[derive(Debug)]
pub struct CountedSlot<K: Eq + std::hash::Hash> {
    key: K,
    counts: Counts<K>,
}

impl<K: Eq + std::hash::Hash + Clone> CountedSlot<K> {
    /// A place for `key` in `counts`, unless it holds `max` already.
    pub fn take(counts: &Counts<K>, key: K, max: usize) -> Option<Self> {
        let mut map = counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.clone()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Self {
            key,
            counts: counts.clone(),
        })
    }
}

impl<K: Eq + std::hash::Hash> Drop for CountedSlot<K> {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// What a connection holds of the caps, released when it closes.
#[derive(Debug)]
struct Slots {
    _total: Option<OwnedSemaphorePermit>,
    _address: Option<CountedSlot<IpAddr>>,
}

/// An acceptor that enforces [`ConnLimits`] around `inner` (plain or TLS): it takes a
/// connection slot (and one of its address's), then wraps the raw stream in [`Watched`]
/// (under TLS, so the handshake is bounded too) and the service in [`Tracked`].
#[derive(Debug, Clone)]
pub struct Guard<A> {
    inner: A,
    limits: ConnLimits,
    slots: Option<Arc<Semaphore>>,
    per_address: Counts<IpAddr>,
    last_warned: Arc<Mutex<Option<std::time::Instant>>>,
    last_warned_address: Arc<Mutex<Option<std::time::Instant>>>,
}

impl<A> Guard<A> {
    pub fn new(inner: A, limits: ConnLimits) -> Self {
        Self {
            inner,
            limits,
            slots: (limits.max_connections > 0)
                .then(|| Arc::new(Semaphore::new(limits.max_connections))),
            per_address: Default::default(),
            last_warned: Default::default(),
            last_warned_address: Default::default(),
        }
    }

    /// A flood refuses thousands of connections a second: say so at most once a minute.
    fn warn_full(&self) {
        if once_a_minute(&self.last_warned) {
            tracing::warn!(
                max_connections = self.limits.max_connections,
                "connection limit reached: closing new connections until some end"
            );
        }
    }

    fn warn_address_full(&self, key: IpAddr) {
        if once_a_minute(&self.last_warned_address) {
            tracing::warn!(
                max_per_address = self.limits.max_per_address,
                address = %key,
                "per-address connection limit reached: closing that address's new connections"
            );
        }
    }
}

fn once_a_minute(last: &Mutex<Option<std::time::Instant>>) -> bool {
    let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
        *last = Some(std::time::Instant::now());
        true
    } else {
        false
    }
}

impl<A, I, S> Accept<I, S> for Guard<A>
where
    A: Accept<Watched<I>, Tracked<S>>,
    I: Socket,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Either<Ready<io::Result<(A::Stream, A::Service)>>, A::Future>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        // Dropping the stream closes the connection.
        let refuse = |why| Either::Left(ready(Err(io::Error::other(why))));
        // The address first: a refused address must not take (even briefly) a total slot.
        let address = match (self.limits.max_per_address, stream.peer_ip()) {
            (0, _) | (_, None) => None,
            (max, Some(ip)) => {
                let key = address_key(ip);
                match CountedSlot::take(&self.per_address, key, max) {
                    Some(slot) => Some(slot),
                    None => {
                        self.warn_address_full(key);
                        return refuse("per-address connection limit reached");
                    }
                }
            }
        };
        let total = match &self.slots {
            None => None,
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    self.warn_full();
                    return refuse("connection limit reached");
                }
            },
        };
        stream.on_accept();
        let conn = Arc::new(Conn::new(self.limits));
        Either::Right(self.inner.accept(
            Watched {
                io: stream,
                conn: conn.clone(),
                timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
                armed: None,
                write_timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
                stalled_since: None,
                _slots: Slots {
                    _total: total,
                    _address: address,
                },
            },
            Tracked {
                inner: service,
                conn,
            },
        ))
    }
}

/// What one connection is doing, shared by its stream and its service.
#[derive(Debug)]
struct Conn {
    header_read: Duration,
    idle: Duration,
    body_read: Duration,
    write: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    in_flight: usize,
    /// When the request head now due began: the accept, or the first byte after an idle
    /// spell. None while idle with nothing received, or while requests are in flight.
    head_since: Option<Instant>,
    /// When the last response ended (at first, the accept).
    idle_since: Instant,
    /// The connection's reader, woken when its deadline moves without a byte arriving.
    reader: Option<Waker>,
}

impl Conn {
    fn new(limits: ConnLimits) -> Self {
        let now = Instant::now();
        Self {
            header_read: limits.header_read_timeout,
            idle: limits.idle_timeout,
            body_read: limits.body_read_timeout,
            write: limits.write_timeout,
            state: Mutex::new(State {
                in_flight: 0,
                head_since: Some(now),
                idle_since: now,
                reader: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the connection is to be closed unless a request starts first.
    fn deadline(&self, st: &State) -> Option<Instant> {
        if st.in_flight > 0 {
            None
        } else if let Some(since) = st.head_since {
            Some(since + self.header_read)
        } else {
            Some(st.idle_since + self.idle)
        }
    }

    /// A write that waited on the client went out: a response that was still being sent
    /// ends now, so the idle time counts from here, and the reader re-arms its deadline.
    fn stall_ended(&self) {
        let reader = {
            let mut st = self.lock();
            if st.in_flight == 0 && st.head_since.is_none() {
                st.idle_since = Instant::now();
            }
            st.reader.take()
        };
        if let Some(w) = reader {
            w.wake();
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        let mut st = self.lock();
        st.in_flight += 1;
        st.head_since = None;
        Busy(self.clone())
    }
}

/// One request in flight, from the service call until its response body is done (or
/// dropped unfinished).
#[derive(Debug)]
struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        let reader = {
            let mut st = self.0.lock();
            st.in_flight = st.in_flight.saturating_sub(1);
            if st.in_flight > 0 {
                None
            } else {
                st.idle_since = Instant::now();
                st.head_since = None;
                st.reader.take()
            }
        };
        // An HTTP/2 connection may not read again until the client sends something: wake
        // it so its idle deadline is armed now.
        if let Some(w) = reader {
            w.wake();
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "connection closed: request head or idle timeout",
    )
}

fn write_stalled() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "connection closed: the client stopped accepting the response",
    )
}

/// A connection's byte stream, closed (a read error) once its deadline passes: the request
/// head is late, or the connection has been idle too long; and closed (a write error) when
/// a write has waited on the client for the write timeout.
#[derive(Debug)]
pub struct Watched<I> {
    io: I,
    conn: Arc<Conn>,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    /// When the write now pending first found the client not accepting bytes.
    stalled_since: Option<Instant>,
    _slots: Slots,
}

impl<I> Watched<I> {
    /// Passes a write's result on, unless it has been pending for the write timeout: only
    /// a write that waits counts, so a stream that writes rarely is never stalled.
    fn stall<T>(&mut self, cx: &mut Context<'_>, res: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if res.is_ready() {
            if self.stalled_since.take().is_some() {
                self.conn.stall_ended();
            }
            return res;
        }
        let now = Instant::now();
        let since = *self.stalled_since.get_or_insert_with(|| {
            self.write_timer.as_mut().reset(now + self.conn.write);
            now
        });
        if now >= since + self.conn.write || self.write_timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(write_stalled()));
        }
        res
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.io).poll_read(cx, buf);
        let got_bytes = matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before;
        let now = Instant::now();
        let deadline = {
            let mut st = this.conn.lock();
            if got_bytes && st.in_flight == 0 && st.head_since.is_none() {
                st.head_since = Some(now);
            }
            if res.is_pending() && !st.reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.reader = Some(cx.waker().clone());
            }
            this.conn.deadline(&st)
        };
        // While a write waits on the client, the write timeout governs: a large response
        // read slowly is neither idle nor late.
        let Some(deadline) = deadline.filter(|_| this.stalled_since.is_none()) else {
            return res;
        };
        // Bytes that arrive late do not help: a trickled head is cut at its deadline.
        if now >= deadline {
            return Poll::Ready(Err(timed_out()));
        }
        if res.is_pending() {
            if this.armed != Some(deadline) {
                this.timer.as_mut().reset(deadline);
                this.armed = Some(deadline);
            }
            if this.timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(timed_out()));
            }
        }
        res
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_write(cx, buf);
        this.stall(cx, res)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_flush(cx);
        this.stall(cx, res)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.stall(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A connection's service: marks each request in flight until its response body is done,
/// and answers 408 (closing an HTTP/1.1 connection) when its body is not received in time.
#[derive(Debug, Clone)]
pub struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S, B> Service<Request<B>> for Tracked<S>
where
    S: Service<Request<WatchedBody<B>>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    B: http_body::Body,
{
    type Response = Response<TrackedBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Taken before the handler runs, and held by the future then by the body, so a
        // request abandoned half way (a reset stream) ends its busy spell too.
        let busy = self.conn.begin();
        let version = req.version();
        let progress = Arc::new(BodyProgress::default());
        if req.body().is_end_stream() {
            progress.done.store(true, Ordering::Relaxed);
        }
        let req = req.map(|inner| WatchedBody {
            inner,
            progress: progress.clone(),
        });
        let fut = self.inner.call(req);
        let due = Instant::now() + self.conn.body_read;
        Box::pin(async move {
            // The deadline runs beside the handler, not in the body's reads: a handler
            // that has not read the body yet (one verifying the caller first) still
            // answers in time, and the slot is freed even if nothing ever reads again.
            let late = std::pin::pin!(progress.overdue(due));
            let resp = match futures_util::future::select(std::pin::pin!(fut), late).await {
                Either::Left((resp, _)) => resp?,
                Either::Right(((), _)) => request_timeout(version),
            };
            Ok(resp.map(|inner| TrackedBody { inner, _busy: busy }))
        })
    }
}

/// 408; on HTTP/1.x with `Connection: close`, so the unread rest of the body is never
/// waited for (HTTP/2 resets just the stream).
fn request_timeout(version: Version) -> Response<Body> {
    let mut resp = Response::new(Body::from("request body not received in time\n"));
    *resp.status_mut() = StatusCode::REQUEST_TIMEOUT;
    if version <= Version::HTTP_11 {
        resp.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// How far one request's body has come.
#[derive(Debug, Default)]
struct BodyProgress {
    received: AtomicU64,
    /// All of it received, or no longer wanted by the handler.
    done: AtomicBool,
}

impl BodyProgress {
    /// Resolves once the body is late: not done by `due` plus the grace its received bytes
    /// earn. Never resolves once it is done.
    async fn overdue(&self, due: Instant) {
        loop {
            if self.done.load(Ordering::Relaxed) {
                return futures_util::future::pending().await;
            }
            let grace = self.received.load(Ordering::Relaxed) / BODY_GRACE_BYTES;
            let at = due + Duration::from_secs(grace);
            if Instant::now() >= at {
                return;
            }
            tokio::time::sleep_until(at).await;
        }
    }
}

/// A request body that reports its progress to the request's deadline.
#[derive(Debug)]
pub struct WatchedBody<B> {
    inner: B,
    progress: Arc<BodyProgress>,
}

impl<B: http_body::Body<Data = Bytes> + Unpin> http_body::Body for WatchedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_frame(cx);
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.progress
                        .received
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                if this.inner.is_end_stream() {
                    this.progress.done.store(true, Ordering::Relaxed);
                }
            }
            Poll::Ready(_) => this.progress.done.store(true, Ordering::Relaxed),
            Poll::Pending => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for WatchedBody<B> {
    fn drop(&mut self) {
        // A handler that drops the body does not wait on the client for it any more.
        self.progress.done.store(true, Ordering::Relaxed);
    }
}

/// A response body that keeps its request in flight until it is done.
#[derive(Debug)]
pub struct TrackedBody {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
