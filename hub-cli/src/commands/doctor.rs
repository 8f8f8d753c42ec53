//! `nexus hub doctor`: the hub's MCP endpoint checked from the operator's machine the way
//! an MCP client meets it — reachability, TLS, Host/Origin acceptance, the RFC 9728
//! metadata, a real `initialize` + `tools/list` with the token, and rate-limit headroom.
//! One line per check, with what to do about each failure; exit 1 when any check fails.
//!
//! The HTTP client is its own (hyper's HTTP/1.1 connection over TCP, rustls with the ring
//! provider passed explicitly for https): a doctor must say *why* a connection failed —
//! refused, timed out, certificate not trusted, name mismatch — which a pooled client
//! folds into one error. Every exchange is bounded by `--timeout`.

use crate::cli::DoctorArgs;
use crate::error::CliError;
use crate::output;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Value, json};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The protocol version `initialize` asks for: one every MCP client of 2025 speaks.
const PROTOCOL_VERSION: &str = "2025-06-18";
/// Below this share of the budget left, the rate-limit check warns.
const LOW_HEADROOM: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    Ok,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Serialize)]
pub(crate) struct Check {
    name: &'static str,
    status: Verdict,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    url: String,
    ok: bool,
    checks: Vec<Check>,
}

/// Where the endpoint is: scheme, authority and path of the `/mcp` URL.
#[derive(Debug, Clone)]
struct Target {
    https: bool,
    host: String,
    port: u16,
    /// `host[:port]` as the URL has it: the Host header.
    authority: String,
    /// `scheme://authority`.
    base: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "not an http:// or https:// URL".to_owned())?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            _ => return Err(format!("unsupported scheme {scheme:?}")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err("the URL needs a host (and no user info)".into());
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| "unclosed [ in the host".to_owned())?;
                (h.to_owned(), after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            },
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
            None if https => 443,
            None => 80,
        };
        Ok(Self {
            https,
            host,
            port,
            authority: authority.to_owned(),
            base: format!("{}://{authority}", if https { "https" } else { "http" }),
            path: path.to_owned(),
        })
    }

    fn loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// Why a request got no answer, in the words an operator needs.
#[derive(Debug)]
enum NetError {
    Connect(String),
    Tls(String),
    Timeout,
    Http(String),
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            Self::Timeout => f.write_str("no answer in time"),
            Self::Http(e) => write!(f, "HTTP exchange failed: {e}"),
        }
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The JSON-RPC message of an MCP answer: a JSON body, or the first `data:` event
    /// of an SSE stream carrying one.
    fn message(&self) -> Option<Value> {
        if let Ok(v) = serde_json::from_slice::<Value>(&self.body) {
            return Some(v);
        }
        let text = std::str::from_utf8(&self.body).ok()?;
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("result").is_some() || v.get("error").is_some())
    }

    /// The hub's refusal code (`{"error":{"code":"forbidden_host",…}}`).
    fn refusal(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        let e = v.get("error")?;
        e.get("code")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| e.as_str().map(str::to_owned))
    }
}

struct Client {
    target: Target,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
}

impl Client {
    fn new(
        target: Target,
        ca: Option<&std::path::Path>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let tls = if target.https {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if let Some(path) = ca {
                use rustls::pki_types::pem::PemObject;
                let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("--ca-file {}: {e}", path.display()))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(format!(
                        "--ca-file {}: no CA certificate in it",
                        path.display()
                    ));
                }
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Self {
            target,
            tls,
            timeout,
        })
    }

    /// One request on a fresh connection.
    async fn send(&self, req: http::Request<Full<Bytes>>) -> Result<Answer, NetError> {
        tokio::time::timeout(self.timeout, self.exchange(req))
            .await
            .unwrap_or(Err(NetError::Timeout))
    }

    async fn exchange(&self, req: http::Request<Full<Bytes>>) -> Result<Answer, NetError> {
        let t = &self.target;
        let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(|e| NetError::Connect(format!("{}:{}: {e}", t.host, t.port)))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => http1(TokioIo::new(tcp), req).await,
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(t.host.clone())
                    .map_err(|e| NetError::Tls(e.to_string()))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| NetError::Tls(e.to_string()))?;
                http1(TokioIo::new(stream), req).await
            }
        }
    }

    fn request(&self, method: &str, path: &str) -> http::request::Builder {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.target.authority)
            .header(
                http::header::USER_AGENT,
                concat!("nexus-hub-doctor/", env!("CARGO_PKG_VERSION")),
            )
    }

    async fn get(&self, path: &str) -> Result<Answer, NetError> {
        let req = self
            .request("GET", path)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| NetError::Http(e.to_string()))?;
        self.send(req).await
    }

    /// An MCP POST to the endpoint.
    async fn mcp(
        &self,
        body: &Value,
        token: Option<&SecretString>,
        session: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Answer, NetError> {
        let mut b = self
            .request("POST", &self.target.path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL_VERSION);
        if let Some(t) = token {
            b = b.header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", t.expose_secret()),
            );
        }
        if let Some(s) = session {
            b = b.header("mcp-session-id", s);
        }
        if let Some(o) = origin {
            b = b.header(http::header::ORIGIN, o);
        }
        let req = b
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| NetError::Http(e.to_string()))?;
        self.send(req).await
    }
}

async fn http1<I>(io: I, req: http::Request<Full<Bytes>>) -> Result<Answer, NetError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| NetError::Http(e.to_string()))?;
    let driver = tokio::spawn(conn);
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| NetError::Http(e.to_string()));
    let out = match res {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            // An answer bigger than this is not what a doctor needs to read.
            let limited = http_body_util::Limited::new(body, 4 << 20);
            match limited.collect().await {
                Ok(b) => Ok(Answer {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body: b.to_bytes(),
                }),
                Err(e) => Err(NetError::Http(e.to_string())),
            }
        }
        Err(e) => Err(e),
    };
    driver.abort();
    out
}

fn check(name: &'static str, status: Verdict, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
        fix: None,
    }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        status: Verdict::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        status: Verdict::Warn,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

/// What a refused MCP request means, and what to do.
fn refused(name: &'static str, a: &Answer, target: &Target, token_env: &str) -> Check {
    let code = a.refusal().unwrap_or_default();
    match a.status {
        401 => fail(
            name,
            "401 Unauthorized: the hub does not accept this token (wrong, revoked or expired)",
            format!(
                "mint a new token (`nexus hub token create --name … --zone …`), put it in ${token_env} and update the client's configuration (`nexus hub client-config CLIENT`)"
            ),
        ),
        403 if code == "forbidden_origin" => fail(
            name,
            "403 Forbidden: the hub refuses this Origin",
            "add the client's origin to NEXUS_MCP_ALLOWED_ORIGINS on the frontend and restart it",
        ),
        403 => fail(
            name,
            format!("403 Forbidden: the hub refuses Host {:?}", target.authority),
            format!(
                "add {:?} to NEXUS_MCP_ALLOWED_HOSTS on the frontend (or --allowed-hosts) and restart it; behind a proxy, forward the Host clients use",
                target.host
            ),
        ),
        429 => fail(
            name,
            format!(
                "429 Too Many Requests (Retry-After: {} s)",
                a.header("retry-after").unwrap_or("?")
            ),
            "wait for Retry-After; if it persists, raise the token's limit (`--rate-limit` on token create) or slow the client down; repeated 401s from one address are limited too",
        ),
        s => fail(
            name,
            format!(
                "HTTP {s}{}",
                if code.is_empty() {
                    String::new()
                } else {
                    format!(" ({code})")
                }
            ),
            "see the frontend's log for this request (its X-Request-Id)",
        ),
    }
}

fn net_fail(name: &'static str, e: &NetError, t: &Target) -> Check {
    match e {
        NetError::Connect(d) => fail(
            name,
            format!("cannot connect: {d}"),
            format!(
                "is the hub running (`nexus hub up`, or nexus-mcp) and listening on {}:{}? check the host, the port and any firewall",
                t.host, t.port
            ),
        ),
        NetError::Tls(d) => fail(
            name,
            format!("TLS handshake with {} failed: {d}", t.host),
            "the certificate must be valid for this host and signed by a trusted CA: fix it, or pass --ca-file with the CA that signed it",
        ),
        NetError::Timeout => fail(
            name,
            "no answer in time",
            "check that the hub is up and that nothing between here and it drops the connection (or raise --timeout)",
        ),
        NetError::Http(d) => fail(
            name,
            format!("not an HTTP answer: {d}"),
            "is this the MCP frontend's port (8081 by default), and http vs https right?",
        ),
    }
}

/// The token to check with: `--token-env`, else NEXUS_TOKEN, else NEXUS_API_KEY.
fn token(var: Option<&str>) -> (String, Option<SecretString>) {
    let read = |v: &str| {
        std::env::var(v)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .map(|t| SecretString::from(t.trim().to_owned()))
    };
    match var {
        Some(v) => (v.to_owned(), read(v)),
        None => match read("NEXUS_TOKEN") {
            Some(t) => ("NEXUS_TOKEN".into(), Some(t)),
            None => match read("NEXUS_API_KEY") {
                Some(t) => ("NEXUS_API_KEY".into(), Some(t)),
                None => ("NEXUS_TOKEN".into(), None),
            },
        },
    }
}

pub(crate) async fn run(a: DoctorArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let url = a.url.as_deref().ok_or_else(|| {
        CliError::with_code(
            "pass --url (the hub's MCP URL) or set NEXUS_MCP_URL (`source <data-dir>/admin.env`)",
            2,
        )
    })?;
    let url = crate::clients::mcp_url(url)?;
    let (token_env, token) = token(a.token_env.as_deref());
    let checks = diagnose(&a, &url, &token_env, token.as_ref()).await?;
    let ok = checks.iter().all(|c| c.status != Verdict::Fail);
    if a.json {
        output::json(out, &Report { url, ok, checks })?;
    } else {
        for c in &checks {
            let tag = match c.status {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "warn",
                Verdict::Fail => "FAIL",
                Verdict::Skip => "skip",
            };
            let fix = c
                .fix
                .as_ref()
                .filter(|_| c.status != Verdict::Ok)
                .map(|f| format!(" — fix: {f}"))
                .unwrap_or_default();
            output::line(out, &format!("{tag}  {:<10} {}{fix}", c.name, c.detail))?;
        }
    }
    if ok { Ok(()) } else { Err(CliError::silent(1)) }
}

async fn diagnose(
    a: &DoctorArgs,
    url: &str,
    token_env: &str,
    token: Option<&SecretString>,
) -> Result<Vec<Check>, CliError> {
    let mut checks = Vec::new();
    let target = match Target::parse(url) {
        Ok(t) => t,
        Err(e) => {
            return Err(CliError::with_code(format!("--url {url:?}: {e}"), 2));
        }
    };
    let client = Client::new(
        target.clone(),
        a.ca_file.as_deref(),
        Duration::from_secs(a.timeout.max(1)),
    )
    .map_err(|e| CliError::with_code(e, 2))?;

    // 1. Reachability (and with https, TLS): the health document needs no token.
    let started = Instant::now();
    let health = client.get("/health").await;
    let reached = match &health {
        Ok(h) => {
            checks.push(check(
                "reachable",
                Verdict::Ok,
                format!(
                    "{} answered in {} ms (GET /health: {})",
                    target.base,
                    started.elapsed().as_millis(),
                    h.status
                ),
            ));
            true
        }
        Err(e @ NetError::Tls(_)) => {
            checks.push(check(
                "reachable",
                Verdict::Ok,
                format!("{}:{} accepts connections", target.host, target.port),
            ));
            checks.push(net_fail("tls", e, &target));
            false
        }
        Err(e) => {
            checks.push(net_fail("reachable", e, &target));
            false
        }
    };
    if reached {
        checks.push(if target.https {
            check(
                "tls",
                Verdict::Ok,
                format!("certificate valid for {}", target.host),
            )
        } else if target.loopback() {
            check("tls", Verdict::Ok, "plain http on loopback: nothing leaves this machine")
        } else {
            warn(
                "tls",
                "plain http beyond this machine: tokens cross the network in clear",
                "put TLS in front of the frontend (deploy/ has Caddy and nginx configs) and use https://",
            )
        });
    }
    let later = [
        "host",
        "origin",
        "metadata",
        "token",
        "initialize",
        "tools",
        "ratelimit",
    ];
    if !reached {
        if !checks.iter().any(|c| c.name == "tls") {
            checks.push(check("tls", Verdict::Skip, "not reached"));
        }
        for name in later {
            checks.push(check(name, Verdict::Skip, "not reached"));
        }
        return Ok(checks);
    }

    // 2. Host: the guard answers a foreign Host with 403 before looking at any token, so
    // a request without one tells them apart (401 = the Host passed).
    let probe = json!({"jsonrpc": "2.0", "id": 0, "method": "ping"});
    let mut host_ok = false;
    match client.mcp(&probe, None, None, None).await {
        Ok(r) if r.status == 401 => {
            host_ok = true;
            let challenge = r.header("www-authenticate").unwrap_or_default().to_owned();
            checks.push(if challenge.contains("resource_metadata=") {
                check(
                    "host",
                    Verdict::Ok,
                    format!("Host {} accepted; no token → 401 with the metadata challenge", target.authority),
                )
            } else {
                warn(
                    "host",
                    format!("Host {} accepted, but the 401 names no resource_metadata", target.authority),
                    "a proxy in front may be rewriting WWW-Authenticate; clients that sign in with OAuth need it",
                )
            });
        }
        Ok(r) if r.status == 403 => checks.push(refused("host", &r, &target, token_env)),
        Ok(r) => checks.push(warn(
            "host",
            format!("a request without a token got {} (expected 401)", r.status),
            "NEXUS_MCP_REQUIRE_BEARER should be true on a hub reachable by others",
        )),
        Err(e) => checks.push(net_fail("host", &e, &target)),
    }

    // 3. Origin: what a browser-based client would send.
    match &a.origin {
        None => checks.push(check(
            "origin",
            Verdict::Skip,
            "agents on the desktop and CLI send no Origin (pass --origin for a browser-based client)",
        )),
        Some(origin) => match client.mcp(&probe, None, None, Some(origin)).await {
            Ok(r) if r.status == 403 => checks.push(refused("origin", &r, &target, token_env)),
            Ok(_) => checks.push(check("origin", Verdict::Ok, format!("Origin {origin} accepted"))),
            Err(e) => checks.push(net_fail("origin", &e, &target)),
        },
    }

    // 4. The RFC 9728 metadata clients read before signing in.
    checks.push(metadata(&client, &target, url).await);

    // 5. The token, then a real initialize + tools/list with it.
    let Some(token) = token.filter(|_| host_ok) else {
        if host_ok {
            checks.push(fail(
                "token",
                format!("${token_env} is not set"),
                format!("export {token_env}=sk-… (the token the client will use), or pass --token-env VAR"),
            ));
        } else {
            checks.push(check("token", Verdict::Skip, "the Host is refused"));
        }
        for name in ["initialize", "tools", "ratelimit"] {
            checks.push(check(name, Verdict::Skip, "no request can succeed"));
        }
        return Ok(checks);
    };
    checks.push(check(
        "token",
        Verdict::Ok,
        format!("from ${token_env} (not shown)"),
    ));
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "nexus-hub-doctor", "version": env!("CARGO_PKG_VERSION")}
        }
    });
    let session = match client.mcp(&init, Some(token), None, None).await {
        Ok(r) if r.status == 200 => match r.message() {
            Some(m) if m.get("result").is_some() => {
                let info = &m["result"]["serverInfo"];
                checks.push(check(
                    "initialize",
                    Verdict::Ok,
                    format!(
                        "{} {} (protocol {})",
                        info["name"].as_str().unwrap_or("?"),
                        info["version"].as_str().unwrap_or("?"),
                        m["result"]["protocolVersion"].as_str().unwrap_or("?")
                    ),
                ));
                r.header("mcp-session-id").map(str::to_owned)
            }
            other => {
                checks.push(fail(
                    "initialize",
                    format!(
                        "no initialize result: {}",
                        other
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "not JSON-RPC".into())
                    ),
                    "is this URL the hub's /mcp endpoint?",
                ));
                return Ok(skip_rest(checks, &["tools", "ratelimit"]));
            }
        },
        Ok(r) => {
            checks.push(refused("initialize", &r, &target, token_env));
            return Ok(skip_rest(checks, &["tools", "ratelimit"]));
        }
        Err(e) => {
            checks.push(net_fail("initialize", &e, &target));
            return Ok(skip_rest(checks, &["tools", "ratelimit"]));
        }
    };
    let sid = session.as_deref();
    // The session is live once the client says so (the answer carries nothing).
    let _ = client
        .mcp(
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            Some(token),
            sid,
            None,
        )
        .await;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}});
    match client.mcp(&list, Some(token), sid, None).await {
        Ok(r) if r.status == 200 => {
            let tools: Vec<String> = r
                .message()
                .and_then(|m| m["result"]["tools"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect();
            checks.push(if tools.is_empty() {
                fail(
                    "tools",
                    "tools/list returned no tools",
                    "see the frontend's log for this request",
                )
            } else {
                let admin = tools.iter().any(|t| t.starts_with("nexus_hub_"));
                check(
                    "tools",
                    Verdict::Ok,
                    format!(
                        "{} tools{}",
                        tools.len(),
                        if admin {
                            " (admin tools included: an admin token)"
                        } else {
                            ""
                        }
                    ),
                )
            });
            checks.push(headroom(&r));
        }
        Ok(r) => {
            checks.push(refused("tools", &r, &target, token_env));
            checks.push(check(
                "ratelimit",
                Verdict::Skip,
                "no answer to read it from",
            ));
        }
        Err(e) => {
            checks.push(net_fail("tools", &e, &target));
            checks.push(check(
                "ratelimit",
                Verdict::Skip,
                "no answer to read it from",
            ));
        }
    }
    if let Some(s) = sid {
        // End the session this check opened; a failure here changes nothing.
        if let Ok(req) = client
            .request("DELETE", &target.path)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.expose_secret()),
            )
            .header("mcp-session-id", s)
            .body(Full::new(Bytes::new()))
        {
            let _ = client.send(req).await;
        }
    }
    Ok(checks)
}

fn skip_rest(mut checks: Vec<Check>, names: &[&'static str]) -> Vec<Check> {
    for n in names {
        checks.push(check(n, Verdict::Skip, "initialize failed"));
    }
    checks
}

/// `X-RateLimit-*` of an answered request: how much of the token's budget is left.
fn headroom(r: &Answer) -> Check {
    let num = |h: &str| r.header(h).and_then(|v| v.parse::<u64>().ok());
    match (
        num(nexus_wire::headers::RATE_LIMIT_LIMIT),
        num(nexus_wire::headers::RATE_LIMIT_REMAINING),
    ) {
        (Some(limit), Some(left)) => {
            let reset = num(nexus_wire::headers::RATE_LIMIT_RESET).unwrap_or(0);
            let detail = format!("{left} of {limit} requests left (whole again in {reset} s)");
            if limit > 0 && (left as f64) < (limit as f64) * LOW_HEADROOM {
                warn(
                    "ratelimit",
                    detail,
                    "this token is close to its limit: raise it (`--rate-limit` on token create) or spread the load over several tokens",
                )
            } else {
                check("ratelimit", Verdict::Ok, detail)
            }
        }
        _ => check(
            "ratelimit",
            Verdict::Warn,
            "the answer carried no X-RateLimit-* headers (a proxy may strip them)",
        ),
    }
}

/// The protected-resource metadata, and the metadata of the authorization servers it names.
async fn metadata(client: &Client, target: &Target, url: &str) -> Check {
    let path = "/.well-known/oauth-protected-resource";
    let r = match client.get(path).await {
        Ok(r) => r,
        Err(e) => return net_fail("metadata", &e, target),
    };
    if r.status != 200 {
        return fail(
            "metadata",
            format!("GET {path}: {}", r.status),
            "a proxy must pass /.well-known/* to the frontend; clients that sign in with OAuth start there",
        );
    }
    let Ok(doc) = serde_json::from_slice::<Value>(&r.body) else {
        return fail(
            "metadata",
            format!("GET {path}: not JSON"),
            "a proxy must pass /.well-known/* to the frontend unchanged",
        );
    };
    let resource = doc["resource"].as_str().unwrap_or_default();
    if resource.trim_end_matches('/') != url.trim_end_matches('/') {
        return warn(
            "metadata",
            format!("the document names resource {resource:?}, not {url:?}"),
            "set the frontend's public URL (NEXUS_MCP_URL, --public-url) to the URL clients use",
        );
    }
    let servers: Vec<&str> = doc["authorization_servers"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut answering = Vec::new();
    let mut silent = Vec::new();
    for s in &servers {
        if as_metadata_answers(client, target, s).await {
            answering.push(*s);
        } else {
            silent.push(*s);
        }
    }
    if silent.is_empty() {
        check(
            "metadata",
            Verdict::Ok,
            format!(
                "resource {resource}; authorization servers: {}",
                servers.join(", ")
            ),
        )
    } else {
        warn(
            "metadata",
            format!(
                "resource {resource}; no authorization-server metadata at {}",
                silent.join(", ")
            ),
            "clients configured with a header (nexus hub client-config) are unaffected; a client with no header tries OAuth there and fails",
        )
    }
}

/// Whether `issuer` answers RFC 8414 or OpenID discovery. Only the hub's own origin is
/// asked through this client; another host gets a client of its own.
async fn as_metadata_answers(client: &Client, target: &Target, issuer: &str) -> bool {
    let Ok(t) = Target::parse(issuer) else {
        return false;
    };
    let own;
    let c = if t.base == target.base {
        client
    } else {
        match Client::new(t.clone(), None, client.timeout) {
            Ok(c) => {
                own = c;
                &own
            }
            Err(_) => return false,
        }
    };
    let suffix = t.path.trim_end_matches('/');
    for wk in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        if let Ok(r) = c.get(&format!("{wk}{suffix}")).await
            && r.status == 200
            && serde_json::from_slice::<Value>(&r.body).is_ok_and(|v| v.get("issuer").is_some())
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:8081/mcp").expect("ok");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8081, "/mcp")
        );
        assert!(t.loopback() && !t.https);
        let t = Target::parse("https://hub.example.com/mcp").expect("ok");
        assert_eq!((t.port, t.authority.as_str()), (443, "hub.example.com"));
        assert!(!t.loopback());
        let t = Target::parse("http://[::1]:9/mcp").expect("ok");
        assert_eq!((t.host.as_str(), t.port), ("::1", 9));
        for bad in [
            "ftp://x/mcp",
            "http://",
            "http://u@h/mcp",
            "http://h:port/mcp",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sse_and_json_answers() {
        let a = |body: &str| Answer {
            status: 200,
            headers: Default::default(),
            body: Bytes::from(body.to_owned()),
        };
        let sse =
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[]}}\n\n";
        assert!(a(sse).message().is_some_and(|m| m["result"].is_object()));
        assert!(
            a("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}")
                .message()
                .is_some()
        );
        assert_eq!(
            a("{\"error\":{\"code\":\"forbidden_host\",\"message\":\"x\"}}")
                .refusal()
                .as_deref(),
            Some("forbidden_host")
        );
    }
}
