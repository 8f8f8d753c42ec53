//! The rpc client: one pooled keep-alive HTTP client to the rpc-server, TCP_NODELAY on, a
//! timeout per call, and the caller's token on every call. There is no ambient token here.

use nexus_wire::RpcError;
use nexus_wire::jsonrpc::Response as RpcResponse;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The caller's token, carried through one request in its extensions. `Debug` is redacted.
#[derive(Clone)]
pub struct CallerToken {
    pub secret: SecretString,
    /// The client's address, passed on as `X-Forwarded-For` so the rpc-server's
    /// per-address limits see the client, not the frontend.
    pub client: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for CallerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallerToken(<redacted>)")
    }
}

/// Who the rpc-server said the caller is, from the `x-nexus-key-id` and `x-nexus-admin`
/// headers of an authenticated response. Valid for the one request that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub key_id: String,
    pub is_admin: bool,
    pub user_id: String,
    /// The zone the call addressed, or the caller's zones (comma-separated; `*` = all).
    pub zone: String,
    /// The rpc-server's `X-RateLimit-*` values for this caller, passed on to the agent.
    pub rate: Option<RateHeaders>,
}

/// `X-RateLimit-Limit`, `-Remaining`, `-Reset`, as the rpc-server sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateHeaders {
    pub limit: u64,
    pub remaining: u64,
    pub reset: u64,
}

impl RateHeaders {
    pub fn apply(&self, h: &mut axum::http::HeaderMap) {
        for (name, v) in [
            ("x-ratelimit-limit", self.limit),
            ("x-ratelimit-remaining", self.remaining),
            ("x-ratelimit-reset", self.reset),
        ] {
            h.insert(name, axum::http::HeaderValue::from(v));
        }
    }
}

fn verified_from(h: &reqwest::header::HeaderMap) -> Verified {
    let text = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let num = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let rate = match (
        num("x-ratelimit-limit"),
        num("x-ratelimit-remaining"),
        num("x-ratelimit-reset"),
    ) {
        (Some(limit), Some(remaining), Some(reset)) => Some(RateHeaders {
            limit,
            remaining,
            reset,
        }),
        _ => None,
    };
    Verified {
        key_id: text(KEY_ID_HEADER),
        is_admin: text(ADMIN_HEADER) == "true",
        // Percent-encoded by the rpc-server: a user id may be any UTF-8.
        user_id: nexus_wire::identity::decode_header_text(&text(USER_ID_HEADER))
            .unwrap_or_default(),
        zone: text(ZONE_HEADER),
        rate,
    }
}

/// Why a forwarded call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ForwardError {
    /// The rpc-server refused the token (401).
    #[error("the token is missing, invalid, expired or revoked")]
    Unauthorized,
    /// The rpc-server limited the caller (429).
    #[error("rate limited; {}", retry_text(*retry_after))]
    RateLimited {
        retry_after: Option<u64>,
        verified: Box<Verified>,
    },
    /// The rpc-server could not decide whether the token is valid (503: its database is
    /// unreachable). Nothing ran; the caller is neither accepted nor refused.
    #[error("the hub cannot verify tokens right now; retry shortly")]
    AuthUnavailable,
    /// The rpc-server could not be reached or did not answer usefully.
    #[error("the hub's rpc-server is unavailable: {0}; retry shortly")]
    Unavailable(String),
    /// The call reached the method and failed there.
    #[error("{0}")]
    Rpc(RpcError),
}

fn retry_text(retry_after: Option<u64>) -> String {
    match retry_after {
        Some(s) => format!("retry in {s} s"),
        None => "retry shortly".into(),
    }
}

/// Whether a `whoami` counts against the caller's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// A verification step before a call that counts.
    Free,
    /// The request's only hop to the rpc-server.
    Counted,
}

/// What the rpc-server said about a credential the frontend could not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawVerdict {
    Refused,
    TooManyFailures,
    Unavailable,
}

#[derive(Debug)]
pub struct RpcClient {
    http: reqwest::Client,
    base: String,
    next_id: AtomicU64,
}

/// Requests above this size that are cut off mid-upload were refused for their size.
const LARGE_REQUEST: usize = 1024 * 1024;

pub const KEY_ID_HEADER: &str = "x-nexus-key-id";
pub const ADMIN_HEADER: &str = "x-nexus-admin";
pub const USER_ID_HEADER: &str = "x-nexus-user-id";
pub const ZONE_HEADER: &str = "x-nexus-zone";

impl RpcClient {
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            // Without it a small request waits on Nagle + delayed ACK (~40 ms per call).
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .connect_timeout(Duration::from_secs(3))
            .timeout(timeout)
            // The rpc-server is addressed directly; never through an environment proxy.
            .no_proxy()
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            next_id: AtomicU64::new(1),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Calls `method` with the caller's token. Returns the result and who the rpc-server
    /// verified the caller to be.
    pub async fn call(
        &self,
        token: &CallerToken,
        method: &str,
        params: Value,
    ) -> Result<(Value, Verified), ForwardError> {
        self.call_with(token, method, params, Charge::Free).await
    }

    /// Verifies the caller's token with `whoami`; `charge` says whether it counts.
    pub async fn whoami(
        &self,
        token: &CallerToken,
        charge: Charge,
    ) -> Result<Verified, ForwardError> {
        self.call_with(token, "whoami", serde_json::json!({}), charge)
            .await
            .map(|(_, v)| v)
    }

    /// Has the rpc-server judge credential headers the frontend could not parse, so that a
    /// malformed credential costs what an unknown one does (one verification there) and is
    /// refused by the same code. The headers go as they came; the verdict is never "yes".
    pub async fn judge_raw(
        &self,
        credentials: &[(axum::http::HeaderName, axum::http::HeaderValue)],
        client: Option<std::net::IpAddr>,
    ) -> RawVerdict {
        let mut req = self
            .http
            .post(format!("{}/api/nfs/whoami", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                "x-forwarded-for",
                client.map(|ip| ip.to_string()).unwrap_or_default(),
            )
            .body(r#"{"jsonrpc":"2.0","id":0,"method":"whoami","params":{}}"#);
        for (name, value) in credentials {
            req = req.header(name.clone(), value.clone());
        }
        match req.send().await.map(|r| r.status().as_u16()) {
            Ok(429) => RawVerdict::TooManyFailures,
            Ok(401) | Ok(200) => RawVerdict::Refused,
            Ok(_) | Err(_) => RawVerdict::Unavailable,
        }
    }

    async fn call_with(
        &self,
        token: &CallerToken,
        method: &str,
        params: Value,
        charge: Charge,
    ) -> Result<(Value, Verified), ForwardError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::to_vec(&nexus_wire::jsonrpc::encode_request(id, method, &params))
            .map_err(|_| ForwardError::Rpc(RpcError::internal()))?;
        let len = body.len();
        let mut req = self
            .http
            .post(format!("{}/api/nfs/{method}", self.base))
            .bearer_auth(token.secret.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                "x-forwarded-for",
                token.client.map(|ip| ip.to_string()).unwrap_or_default(),
            );
        if charge == Charge::Counted {
            req = req.header(nexus_wire::identity::COUNT_REQUEST_HEADER, "1");
        }
        let resp = req.body(body).send().await.map_err(|e| {
            if e.is_timeout() {
                ForwardError::Unavailable("timed out".into())
            } else if !e.is_connect() && len > LARGE_REQUEST {
                // Connected, then cut off mid-upload: the server refused the size.
                ForwardError::Rpc(RpcError::new(
                    nexus_wire::ErrorCode::TooLarge,
                    format!(
                        "request of {len} bytes is too large for the hub; send smaller content"
                    ),
                ))
            } else {
                ForwardError::Unavailable("connection failed".into())
            }
        })?;
        match resp.status().as_u16() {
            200 => {}
            401 => return Err(ForwardError::Unauthorized),
            429 => {
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                let verified = Box::new(verified_from(resp.headers()));
                return Err(ForwardError::RateLimited {
                    retry_after,
                    verified,
                });
            }
            413 => {
                return Err(ForwardError::Rpc(RpcError::new(
                    nexus_wire::ErrorCode::TooLarge,
                    format!(
                        "request of {len} bytes is too large for the hub; send smaller content"
                    ),
                )));
            }
            503 => return Err(ForwardError::AuthUnavailable),
            s => return Err(ForwardError::Unavailable(format!("HTTP {s}"))),
        }
        let verified = verified_from(resp.headers());
        let parsed: RpcResponse = resp
            .json()
            .await
            .map_err(|_| ForwardError::Unavailable("malformed response".into()))?;
        match parsed.into_result() {
            Ok(v) => Ok((v, verified)),
            Err(e) => Err(ForwardError::Rpc(e)),
        }
    }

    /// Is the rpc-server ready (its database reachable)?
    pub async fn ready(&self) -> bool {
        match self
            .http
            .get(format!("{}/healthz/ready", self.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        }
    }
}
