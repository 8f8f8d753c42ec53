//! The connection deadlines on tokio's paused clock, over in-memory streams served by the
//! same hyper builder as production: every instant asserted is virtual, so the figures are
//! exact and the tests take no real time.

use super::*;
use axum::routing::{get, post};
use http_body::Body as _;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const LIMITS: ConnLimits = ConnLimits {
    header_read_timeout: Duration::from_secs(1),
    idle_timeout: Duration::from_secs(5),
    body_read_timeout: Duration::from_secs(2),
    write_timeout: Duration::from_secs(3),
    max_connections: 0,
    max_per_address: 0,
};

/// A response larger than the in-memory pipe: its writes wait until the client reads.
const BIG: usize = 4 << 20;

/// Longer than any deadline here: a connection still open then is a failure.
const PATIENCE: Duration = Duration::from_secs(600);

fn app() -> axum::Router {
    axum::Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/upload",
            post(|body: Bytes| async move { format!("got {}", body.len()) }),
        )
        .route(
            "/upload-then-work",
            post(|body: Bytes| async move {
                tokio::time::sleep(LIMITS.body_read_timeout * 3).await;
                format!("got {}", body.len())
            }),
        )
        .route("/big", get(|| async { vec![b'x'; BIG] }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(LIMITS.idle_timeout * 3).await;
                "slow"
            }),
        )
        .route(
            "/stream",
            get(|| async {
                let chunks = futures_util::stream::unfold(0u8, |i| async move {
                    match i {
                        0 => Some((Ok::<_, io::Error>(Bytes::from_static(b"first")), 1)),
                        1 => {
                            tokio::time::sleep(LIMITS.idle_timeout * 2).await;
                            Some((Ok(Bytes::from_static(b"last")), 2))
                        }
                        _ => None,
                    }
                });
                Body::from_stream(chunks)
            }),
        )
}

/// A connection accepted by a [`Guard`] and served as production serves it; the client end.
async fn open(limits: ConnLimits) -> DuplexStream {
    open_served(limits).await.0
}

/// As [`open`], with the task serving the connection: it ends when the server closes it.
async fn open_served(limits: ConnLimits) -> (DuplexStream, tokio::task::JoinHandle<()>) {
    let guard = Guard::new(DefaultAcceptor::new(), limits);
    let (client, server) = tokio::io::duplex(1 << 20);
    let (stream, svc) = guard.accept(server, app()).await.expect("accept");
    let served = tokio::spawn(async move {
        let mut b = Builder::new(TokioExecutor::new());
        configure(&mut b);
        let _ = b
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
            .await;
    });
    (client, served)
}

/// Reads until the text seen so far contains `needle`; panics if the connection closes.
async fn read_until(c: &mut DuplexStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let n = c.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed before {needle:?}; got {:?}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("no answer");
    String::from_utf8_lossy(&seen).into_owned()
}

/// Waits for the server to close the connection; returns what arrived before.
async fn closed(c: &mut DuplexStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server never closed the connection");
    seen
}

/// `at` is `from + d`, to the timer's millisecond.
#[track_caller]
fn assert_at(at: Instant, from: Instant, d: Duration) {
    let took = at - from;
    assert!(
        took >= d && took <= d + Duration::from_millis(2),
        "closed after {took:?}, expected {d:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_new_connection_is_closed_at_the_header_deadline() {
    let t0 = Instant::now();
    let mut c = open(LIMITS).await;
    assert!(closed(&mut c).await.is_empty());
    assert_at(Instant::now(), t0, LIMITS.header_read_timeout);
}

#[tokio::test(start_paused = true)]
async fn a_trickled_head_is_cut_at_the_header_deadline() {
    let t0 = Instant::now();
    let c = open(LIMITS).await;
    let (mut rd, mut wr) = tokio::io::split(c);
    // 40 bytes at 100 ms each would take 4 s: the head is due after 1 s.
    let head = b"GET /ok HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        for b in head {
            if wr.write_all(&[*b]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sent
    });
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(PATIENCE, rd.read(&mut buf))
        .await
        .expect("never closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "no response to a trickled head");
    assert_at(Instant::now(), t0, LIMITS.header_read_timeout);
    let sent = writer.await.expect("writer");
    assert!(sent < head.len(), "all {sent} bytes went in");
}

#[tokio::test(start_paused = true)]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_deadline() {
    let mut c = open(LIMITS).await;
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    read_until(&mut c, "\r\n\r\nok").await;
    let answered = Instant::now();
    // Idle, not header-read: waiting for the next request is not a slow head.
    assert!(closed(&mut c).await.is_empty());
    assert_at(Instant::now(), answered, LIMITS.idle_timeout);
}

#[tokio::test(start_paused = true)]
async fn a_head_begun_after_an_idle_spell_is_due_within_the_header_time() {
    let mut c = open(LIMITS).await;
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    read_until(&mut c, "\r\n\r\nok").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.write_all(b"GET /ok HT").await.expect("write");
    let begun = Instant::now();
    assert!(closed(&mut c).await.is_empty());
    assert_at(Instant::now(), begun, LIMITS.header_read_timeout);
}

#[tokio::test(start_paused = true)]
async fn requests_in_flight_are_never_cut() {
    let mut c = open(LIMITS).await;
    // A handler slower than both deadlines.
    c.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let r = read_until(&mut c, "slow").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // A response body silent for longer than both deadlines between its chunks.
    c.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let r = read_until(&mut c, "0\r\n\r\n").await;
    assert!(r.contains("first") && r.contains("last"), "{r}");
    // And the connection is still usable.
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    read_until(&mut c, "\r\n\r\nok").await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_http2_connection_is_closed_at_the_idle_deadline() {
    let c = open(LIMITS).await;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(c))
            .await
            .expect("h2 handshake");
    let driver = tokio::spawn(conn);
    let req = axum::http::Request::get("http://x/ok")
        .body(String::new())
        .expect("request");
    let resp = send.send_request(req).await.expect("h2 request");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while let Some(frame) =
        futures_util::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
    {
        if let Ok(data) = frame.expect("frame").into_data() {
            got.extend_from_slice(&data[..]);
        }
    }
    assert_eq!(got, b"ok");
    let answered = Instant::now();
    let _ = tokio::time::timeout(PATIENCE, driver)
        .await
        .expect("the server never closed the h2 connection");
    assert_at(Instant::now(), answered, LIMITS.idle_timeout);
}

#[tokio::test(start_paused = true)]
async fn past_the_cap_new_connections_are_closed_until_one_ends() {
    let limits = ConnLimits {
        max_connections: 2,
        ..LIMITS
    };
    let guard = Guard::new(DefaultAcceptor::new(), limits);
    let mut held = Vec::new();
    for _ in 0..2 {
        let (_client, server) = tokio::io::duplex(64);
        held.push(guard.accept(server, app()).await.expect("under the cap"));
    }
    let (mut client, server) = tokio::io::duplex(64);
    assert!(guard.accept(server, app()).await.is_err(), "past the cap");
    let mut buf = [0u8; 1];
    assert_eq!(client.read(&mut buf).await.expect("read"), 0, "closed");
    held.pop();
    let (_client, server) = tokio::io::duplex(64);
    assert!(
        guard.accept(server, app()).await.is_ok(),
        "a slot was freed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_trickled_body_gets_408_and_a_closed_connection_at_the_body_deadline() {
    let c = open(LIMITS).await;
    let (mut rd, mut wr) = tokio::io::split(c);
    wr.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        .await
        .expect("write head");
    let head_done = Instant::now();
    // 100 bytes at one per 100 ms would take 10 s: the body is due after 2 s.
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        for _ in 0..100 {
            if wr.write_all(b"y").await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sent
    });
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server never closed the connection");
    assert_at(Instant::now(), head_done, LIMITS.body_read_timeout);
    let r = String::from_utf8_lossy(&seen);
    assert!(r.starts_with("HTTP/1.1 408"), "{r}");
    assert!(r.to_ascii_lowercase().contains("connection: close"), "{r}");
    let sent = writer.await.expect("writer");
    assert!(sent < 100, "the whole trickled body went in");
}

#[tokio::test(start_paused = true)]
async fn a_body_never_sent_is_cut_at_the_body_deadline() {
    let mut c = open(LIMITS).await;
    c.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n")
        .await
        .expect("write head");
    let head_done = Instant::now();
    let r = String::from_utf8_lossy(&closed(&mut c).await).into_owned();
    assert_at(Instant::now(), head_done, LIMITS.body_read_timeout);
    assert!(r.starts_with("HTTP/1.1 408"), "{r}");
}

#[tokio::test(start_paused = true)]
async fn a_body_received_in_time_leaves_a_slow_handler_alone() {
    let mut c = open(LIMITS).await;
    c.write_all(b"POST /upload-then-work HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .expect("write");
    let r = read_until(&mut c, "got 5").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // And a GET has no body to wait for.
    c.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    read_until(&mut c, "slow").await;
}

#[tokio::test(start_paused = true)]
async fn a_large_body_at_a_steady_rate_earns_more_time() {
    let mut c = open(LIMITS).await;
    // 8 × 64 KiB, one a second: 7 s, far past the bare 2 s, each block earning 1 s more.
    const BLOCKS: usize = 8;
    let len = BLOCKS * BODY_GRACE_BYTES as usize;
    c.write_all(
        format!("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write head");
    let block = vec![b'z'; BODY_GRACE_BYTES as usize];
    for i in 0..BLOCKS {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        c.write_all(&block).await.expect("write block");
    }
    let r = read_until(&mut c, &format!("got {len}")).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_closed_at_the_write_timeout() {
    let (mut c, served) = open_served(LIMITS).await;
    c.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    // The response fills the pipe at once; from then on its writes wait on the client.
    let asked = Instant::now();
    tokio::time::timeout(PATIENCE, served)
        .await
        .expect("a stalled response held its connection")
        .expect("serve task");
    assert_at(Instant::now(), asked, LIMITS.write_timeout);
}

#[tokio::test(start_paused = true)]
async fn a_slow_but_steady_reader_gets_the_whole_response() {
    let mut c = open(LIMITS).await;
    c.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    // 64 KiB every 2 s: each pending write completes within the 3 s write timeout, though
    // the whole takes more than two minutes.
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while got < BIG {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let n = c.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed after {got} bytes");
        got += n;
    }
}

/// An in-memory connection from a given client address.
struct FromAddr(IpAddr, DuplexStream);

impl AsyncRead for FromAddr {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().1).poll_read(cx, buf)
    }
}

impl AsyncWrite for FromAddr {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().1).poll_write(cx, b)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().1).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().1).poll_shutdown(cx)
    }
}

impl Socket for FromAddr {
    fn peer_ip(&self) -> Option<IpAddr> {
        Some(self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn one_address_cannot_take_every_slot() {
    let limits = ConnLimits {
        max_connections: 4,
        max_per_address: 2,
        ..LIMITS
    };
    let guard = Guard::new(DefaultAcceptor::new(), limits);
    let accept = |ip: &str| {
        let ip: IpAddr = ip.parse().expect("ip");
        let (_client, server) = tokio::io::duplex(64);
        guard.accept(FromAddr(ip, server), app())
    };
    let mut held = Vec::new();
    for ip in ["10.0.0.1", "10.0.0.1"] {
        held.push(accept(ip).await.expect("under the address cap"));
    }
    assert!(
        accept("10.0.0.1").await.is_err(),
        "a third from one address"
    );
    // The same address written as IPv4-mapped IPv6 is the same client.
    assert!(accept("::ffff:10.0.0.1").await.is_err(), "mapped form");
    // An IPv6 client is capped by its /64.
    held.push(accept("2001:db8:0:1::1").await.expect("first of a /64"));
    held.push(accept("2001:db8:0:1::2").await.expect("second of a /64"));
    assert!(
        accept("2001:db8:0:1:ffff::3").await.is_err(),
        "third of a /64"
    );
    // Refusals by address took no total slot: all four are the two addresses' own.
    assert_eq!(held.len(), 4);
    assert!(accept("10.0.0.2").await.is_err(), "past the total cap");
    held.remove(0);
    held.push(
        accept("10.0.0.1")
            .await
            .expect("a slot of its own was freed"),
    );
    assert!(accept("10.0.0.1").await.is_err(), "back at its cap");
}

#[tokio::test(start_paused = true)]
async fn an_oversized_head_is_refused_with_431() {
    let mut c = open(LIMITS).await;
    let big = "a".repeat(MAX_HEAD_BYTES + 1);
    c.write_all(format!("GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let r = String::from_utf8_lossy(&closed(&mut c).await).into_owned();
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
}

#[tokio::test]
async fn bind_listens_like_tcp_listener_bind() {
    let l = bind("localhost", 0).await.expect("bind localhost");
    let addr = l.local_addr().expect("addr");
    assert!(addr.ip().is_loopback(), "{addr}");
    let taken = bind(&addr.ip().to_string(), addr.port()).await;
    assert_eq!(
        taken.expect_err("a port in use").kind(),
        io::ErrorKind::AddrInUse
    );
    assert!(bind("no-such-host.invalid", 0).await.is_err());
}

#[test]
fn timeouts_parse_as_seconds_or_with_a_unit() {
    let ok = [
        ("10", 10_000),
        ("1.5", 1_500),
        ("10s", 10_000),
        ("500ms", 500),
        ("2m", 120_000),
        (" 3 ", 3_000),
        ("3600", 3_600_000),
    ];
    for (s, ms) in ok {
        assert_eq!(parse_timeout(s), Ok(Duration::from_millis(ms)), "{s}");
    }
    for s in [
        "",
        "0",
        "-1",
        "0ms",
        "3601",
        "61m",
        "nan",
        "inf",
        "1e400",
        "10h",
        "s",
        "9999999999999",
    ] {
        assert!(parse_timeout(s).is_err(), "{s:?} accepted");
    }
}
