//! A small HTTP/1.1 load generator: replays one recorded MCP request over kept-alive
//! connections, one connection per caller, and checks every answer. It is deliberately
//! thinner than any MCP client (no parsing beyond a substring check), so that the servers,
//! not the generator, are what the figures measure.

use crate::Sample;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HOST, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One request to send again and again.
#[derive(Clone, Debug)]
pub struct Replay {
    pub addr: SocketAddr,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Replay {
    /// The same request sent to another server, with `authorization` set (or removed).
    pub fn to(&self, addr: SocketAddr, bearer: Option<&str>) -> Replay {
        let mut r = self.clone();
        r.addr = addr;
        r.headers.retain(|(k, _)| k != hyper::header::AUTHORIZATION);
        if let Some(t) = bearer {
            let v = HeaderValue::from_str(&format!("Bearer {t}")).expect("token header");
            r.headers.push((hyper::header::AUTHORIZATION, v));
        }
        r
    }

    /// The same request with `header` set to `value`.
    pub fn with_header(mut self, header: &str, value: &str) -> Replay {
        let name = HeaderName::from_bytes(header.as_bytes()).expect("header name");
        self.headers.retain(|(k, _)| k != name);
        self.headers
            .push((name, HeaderValue::from_str(value).expect("header value")));
        self
    }

    /// The same call made to tool `name` with `args` (body and the `Mcp-Name` header).
    pub fn calling(&self, name: &str, args: serde_json::Value) -> Replay {
        let mut body: serde_json::Value =
            serde_json::from_slice(&self.body).expect("recorded body is JSON");
        body["params"]["name"] = name.into();
        body["params"]["arguments"] = args;
        let mut r = self.clone();
        r.body = serde_json::to_vec(&body).expect("JSON").into();
        if r.headers.iter().any(|(k, _)| k == "mcp-name") {
            r = r.with_header("mcp-name", name);
        }
        r
    }

    fn request(&self) -> hyper::Request<Full<Bytes>> {
        let mut b = hyper::Request::post(self.path.as_str());
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        b.header(HOST, self.addr.to_string())
            .body(Full::new(self.body.clone()))
            .expect("request")
    }
}

/// One kept-alive connection.
#[allow(missing_debug_implementations)] // hyper's sender has no Debug
pub struct Conn {
    send: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        Ok(Conn { send })
    }

    /// Sends `r` and returns the status and body.
    pub async fn send(&mut self, r: &Replay) -> anyhow::Result<(u16, Bytes)> {
        self.send.ready().await?;
        let resp = self.send.send_request(r.request()).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Sends `r` and fails unless the answer is a successful tool result.
    pub async fn call(&mut self, r: &Replay) -> anyhow::Result<()> {
        let (status, body) = self.send(r).await?;
        check(status, &body)
    }
}

/// A tool call succeeded: HTTP 200, a JSON-RPC result, and not a tool error.
pub fn check(status: u16, body: &[u8]) -> anyhow::Result<()> {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    if status == 200 && has(b"\"result\"") && !has(b"\"isError\":true") {
        return Ok(());
    }
    let shown = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    anyhow::bail!("call failed: HTTP {status}: {shown}")
}

/// Latency of `iters` calls made one after another on one connection, after `warmup`.
pub async fn latency(name: &str, r: &Replay, warmup: usize, iters: usize) -> Sample {
    let mut c = Conn::open(r.addr).await.expect("connect");
    for _ in 0..warmup {
        c.call(r).await.expect("call");
    }
    let mut times = Vec::with_capacity(iters);
    let start = Instant::now();
    for _ in 0..iters {
        let t = Instant::now();
        c.call(r).await.expect("call");
        times.push(t.elapsed());
    }
    crate::summarize(name, times, start.elapsed())
}

/// What `throughput` measured.
#[derive(Debug, Clone)]
pub struct Load {
    pub name: String,
    pub callers: usize,
    pub calls: u64,
    pub rate: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// `callers` connections each calling back to back for `dur`; every call must succeed.
pub async fn throughput(name: &str, r: &Replay, callers: usize, dur: Duration) -> Load {
    throughput_each(name, callers, dur, |_| r.clone()).await
}

/// Like [`throughput`], with a request of its own for each caller (e.g. its own file).
pub async fn throughput_each(
    name: &str,
    callers: usize,
    dur: Duration,
    req: impl Fn(usize) -> Replay,
) -> Load {
    let start = Arc::new(tokio::sync::Barrier::new(callers + 1));
    let mut tasks = Vec::with_capacity(callers);
    for i in 0..callers {
        let r = req(i);
        let start = start.clone();
        let mut c = Conn::open(r.addr).await.expect("connect");
        // One untimed call per connection, so connection setup is not in the figures.
        c.call(&r).await.expect("first call");
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let end = Instant::now() + dur;
            let mut lat = Vec::with_capacity(4096);
            while Instant::now() < end {
                let t = Instant::now();
                c.call(&r).await.expect("call");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    start.wait().await;
    let t0 = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("caller"));
    }
    let took = t0.elapsed();
    all.sort_unstable();
    let pick = |q: f64| {
        all.get(((all.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    Load {
        name: name.into(),
        callers,
        calls: all.len() as u64,
        rate: all.len() as f64 / took.as_secs_f64(),
        p50: pick(0.5),
        p99: pick(0.99),
    }
}
