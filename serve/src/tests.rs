//! The connection deadlines on tokio's paused clock, over in-memory streams served by the
//! same hyper builder as production: every instant asserted is virtual, so the figures are
//! exact and the tests take no real time.

use super::*;
use axum::routing::get;
use http_body::Body as _;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const LIMITS: ConnLimits = ConnLimits {
    header_read_timeout: Duration::from_secs(1),
    idle_timeout: Duration::from_secs(5),
    max_connections: 0,
};

/// Longer than any deadline here: a connection still open then is a failure.
const PATIENCE: Duration = Duration::from_secs(600);

fn app() -> axum::Router {
    axum::Router::new()
        .route("/ok", get(|| async { "ok" }))
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
    let guard = Guard::new(DefaultAcceptor::new(), limits);
    let (client, server) = tokio::io::duplex(1 << 20);
    let (stream, svc) = guard.accept(server, app()).await.expect("accept");
    tokio::spawn(async move {
        let mut b = Builder::new(TokioExecutor::new());
        configure(&mut b);
        let _ = b
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
            .await;
    });
    client
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
