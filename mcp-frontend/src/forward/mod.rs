//! The hop to the rpc-server: the caller's token on every call (there is no ambient token
//! here), a timeout per call, and who the rpc-server verified the caller to be. The
//! [`Transport`] carries the request: a pooled HTTP/1.1 client (plain, or TLS with
//! [`RpcTls`]), or the rpc-server's router in the same process.

mod client;
mod envelope;
mod tls;
mod transport;

pub use client::RpcClient;
pub use tls::RpcTls;
pub use transport::{HttpTransport, ServiceTransport, Transport, TransportError};

use nexus_wire::RpcError;
use nexus_wire::headers;
use secrecy::SecretString;

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
            (headers::RATE_LIMIT_LIMIT, self.limit),
            (headers::RATE_LIMIT_REMAINING, self.remaining),
            (headers::RATE_LIMIT_RESET, self.reset),
        ] {
            h.insert(name, axum::http::HeaderValue::from(v));
        }
    }
}

fn verified_from(h: &http::HeaderMap) -> Verified {
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
        num(headers::RATE_LIMIT_LIMIT),
        num(headers::RATE_LIMIT_REMAINING),
        num(headers::RATE_LIMIT_RESET),
    ) {
        (Some(limit), Some(remaining), Some(reset)) => Some(RateHeaders {
            limit,
            remaining,
            reset,
        }),
        _ => None,
    };
    Verified {
        key_id: text(headers::KEY_ID),
        is_admin: text(headers::ADMIN) == "true",
        // Percent-encoded by the rpc-server: a user id may be any UTF-8.
        user_id: nexus_wire::identity::decode_header_text(&text(headers::USER_ID))
            .unwrap_or_default(),
        zone: text(headers::ZONE),
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

/// Requests above this size that are cut off mid-upload were refused for their size.
const LARGE_REQUEST: usize = 1024 * 1024;

#[cfg(test)]
mod tests;
