//! [`RpcClient`]: one call to the rpc-server with the caller's token, its answer mapped to
//! a result and who the caller is, or to a [`ForwardError`].

use super::envelope;
use super::tls::{RpcTls, Tls};
use super::transport::{HttpTransport, Transport, TransportError};
use super::{
    CallerToken, Charge, ForwardError, LARGE_REQUEST, RawVerdict, Verified, verified_from,
};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http_body_util::Full;
use nexus_wire::RpcError;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub struct RpcClient {
    transport: Arc<dyn Transport>,
    base: String,
    timeout: Duration,
    next_id: AtomicU64,
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");

impl RpcClient {
    /// A client over a pooled HTTP/1.1 connection to `base` (`http://host:port`).
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        if !base.starts_with("http://") {
            anyhow::bail!(
                "the rpc-server's URL must be http:// here (https:// needs TLS settings)"
            );
        }
        Ok(Self::with_transport(
            base,
            Arc::new(HttpTransport::new()),
            timeout,
        ))
    }

    /// A client over pooled HTTP/1.1-over-TLS connections to `base` (`https://host:port`),
    /// verifying the server as `tls` says.
    pub fn with_tls(base: &str, tls: &RpcTls, timeout: Duration) -> anyhow::Result<Self> {
        if !base.starts_with("https://") {
            anyhow::bail!("TLS settings for the rpc-server need an https:// URL");
        }
        Ok(Self::with_transport(
            base,
            Arc::new(HttpTransport::with_connector(Tls::new(tls))),
            timeout,
        ))
    }

    /// A client whose requests `transport` carries; `base` still forms their URIs.
    pub fn with_transport(base: &str, transport: Arc<dyn Transport>, timeout: Duration) -> Self {
        Self {
            transport,
            base: base.trim_end_matches('/').to_owned(),
            timeout,
            next_id: AtomicU64::new(1),
        }
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
        let (raw, verified) = self.call_with(token, method, &params, Charge::Free).await?;
        let value = serde_json::from_slice(&raw)
            .map_err(|_| ForwardError::Unavailable("malformed response".into()))?;
        Ok((value, verified))
    }

    /// [`call`](Self::call) without a `Value` on either side: `params` (a `RawValue`, a map
    /// or any serializable type) is written as it serializes and the `result` comes back
    /// as its raw JSON text.
    pub async fn call_raw<P: Serialize + ?Sized>(
        &self,
        token: &CallerToken,
        method: &str,
        params: &P,
    ) -> Result<(Bytes, Verified), ForwardError> {
        self.call_with(token, method, params, Charge::Free).await
    }

    /// Verifies the caller's token with `whoami`; `charge` says whether it counts.
    pub async fn whoami(
        &self,
        token: &CallerToken,
        charge: Charge,
    ) -> Result<Verified, ForwardError> {
        self.call_with(token, "whoami", &Empty {}, charge)
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
        const BODY: &[u8] = br#"{"jsonrpc":"2.0","id":0,"method":"whoami","params":{}}"#;
        let Ok(mut req) = self.post("whoami", Bytes::from_static(BODY), client) else {
            return RawVerdict::Unavailable;
        };
        for (name, value) in credentials {
            req.headers_mut().append(name.clone(), value.clone());
        }
        match self
            .send(req, self.timeout)
            .await
            .map(|r| r.status().as_u16())
        {
            Ok(429) => RawVerdict::TooManyFailures,
            Ok(401) | Ok(200) => RawVerdict::Refused,
            Ok(_) | Err(_) => RawVerdict::Unavailable,
        }
    }

    /// Relays one request to the rpc-server as it came (method, path, query, body and the
    /// `relayed` headers), the client's address as `X-Forwarded-For`; the answer comes
    /// back whole. For the public `/auth/*` paths, which the rpc-server alone answers.
    pub async fn relay(
        &self,
        method: http::Method,
        path_and_query: &str,
        relayed: &http::HeaderMap,
        body: Bytes,
        client: Option<std::net::IpAddr>,
    ) -> Result<http::Response<Bytes>, TransportError> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.base))
            .header(CONTENT_LENGTH, body.len())
            .body(Full::new(body))
            .map_err(|_| TransportError::Connect)?;
        let headers = req.headers_mut();
        for (name, value) in relayed {
            headers.append(name.clone(), value.clone());
        }
        if let Some(ip) = client
            && let Ok(v) = HeaderValue::try_from(ip.to_string())
        {
            headers.insert(nexus_wire::headers::FORWARDED_FOR, v);
        }
        self.send(req, self.timeout).await
    }

    /// The issuers the rpc-server's provider chain accepts and the scopes a hub token can
    /// carry (`GET /auth/providers`, no token); `None` when it does not answer well.
    pub async fn auth_providers(&self) -> Option<nexus_wire::resource::AuthProviders> {
        let url = format!("{}{}", self.base, nexus_wire::resource::AUTH_PROVIDERS_PATH);
        let req = http::Request::get(url).body(Full::new(Bytes::new())).ok()?;
        let resp = self.send(req, Duration::from_secs(2)).await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        serde_json::from_slice(resp.body()).ok()
    }

    /// Is the rpc-server ready (its database reachable)?
    pub async fn ready(&self) -> bool {
        let Ok(req) = http::Request::get(format!("{}/healthz/ready", self.base))
            .body(Full::new(Bytes::new()))
        else {
            return false;
        };
        match self.send(req, Duration::from_secs(2)).await {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        }
    }

    async fn call_with<P: Serialize + ?Sized>(
        &self,
        token: &CallerToken,
        method: &str,
        params: &P,
        charge: Charge,
    ) -> Result<(Bytes, Verified), ForwardError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = envelope::encode(id, method, params)
            .map_err(|_| ForwardError::Rpc(RpcError::internal()))?;
        let len = body.len();
        let unreachable = || ForwardError::Unavailable("connection failed".into());
        let mut req = self
            .post(method, Bytes::from(body), token.client)
            .map_err(|_| unreachable())?;
        let mut bearer = HeaderValue::try_from(format!("Bearer {}", token.secret.expose_secret()))
            .map_err(|_| unreachable())?;
        bearer.set_sensitive(true);
        let headers = req.headers_mut();
        headers.insert(AUTHORIZATION, bearer);
        if charge == Charge::Counted {
            headers.insert(
                nexus_wire::headers::COUNT_REQUEST,
                HeaderValue::from_static("1"),
            );
        }
        let resp = self.send(req, self.timeout).await.map_err(|e| match e {
            TransportError::Timeout => ForwardError::Unavailable("timed out".into()),
            // Connected, then cut off mid-upload: the server refused the size.
            TransportError::Broken if len > LARGE_REQUEST => too_large(len),
            TransportError::Broken | TransportError::Connect => unreachable(),
        })?;
        match resp.status().as_u16() {
            200 => {}
            401 => return Err(ForwardError::Unauthorized),
            429 => {
                let retry_after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                let verified = Box::new(verified_from(resp.headers()));
                return Err(ForwardError::RateLimited {
                    retry_after,
                    verified,
                });
            }
            413 => return Err(too_large(len)),
            503 => return Err(ForwardError::AuthUnavailable),
            s => return Err(ForwardError::Unavailable(format!("HTTP {s}"))),
        }
        let verified = verified_from(resp.headers());
        match envelope::decode(resp.body()) {
            Ok(Ok(result)) => Ok((result, verified)),
            Ok(Err(e)) => Err(ForwardError::Rpc(e)),
            Err(envelope::Malformed) => Err(ForwardError::Unavailable("malformed response".into())),
        }
    }

    /// A JSON POST to `/api/nfs/{method}`, the client's address as `X-Forwarded-For` so the
    /// rpc-server's per-address limits see the client, not the frontend.
    fn post(
        &self,
        method: &str,
        body: Bytes,
        client: Option<std::net::IpAddr>,
    ) -> Result<http::Request<Full<Bytes>>, http::Error> {
        let forwarded = match client {
            Some(ip) => HeaderValue::try_from(ip.to_string())?,
            None => HeaderValue::from_static(""),
        };
        http::Request::post(format!("{}/api/nfs/{method}", self.base))
            .header(CONTENT_TYPE, JSON)
            .header(CONTENT_LENGTH, body.len())
            .header(nexus_wire::headers::FORWARDED_FOR, forwarded)
            .body(Full::new(body))
    }

    /// Sends through the transport, the whole exchange bounded by `within`.
    async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
        within: Duration,
    ) -> Result<http::Response<Bytes>, TransportError> {
        tokio::time::timeout(within, self.transport.send(req))
            .await
            .unwrap_or(Err(TransportError::Timeout))
    }
}

#[derive(Serialize)]
struct Empty {}

fn too_large(len: usize) -> ForwardError {
    ForwardError::Rpc(RpcError::new(
        nexus_wire::ErrorCode::TooLarge,
        format!("request of {len} bytes is too large for the hub; send smaller content"),
    ))
}
