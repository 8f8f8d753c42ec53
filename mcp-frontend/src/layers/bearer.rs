//! The bearer layer: nothing reaches MCP on behalf of a caller whose token the rpc-server
//! has not accepted, and a caller nobody has vouched for can hold almost nothing.
//!
//! The token comes from `Authorization: Bearer`, `X-Nexus-API-Key` or `X-API-Key`; it is verified by the
//! rpc-server (whose identity cache is the only cache of verdicts). The frontend remembers
//! only which token fingerprints were verified lately ([`super::admission`]): an unknown
//! token is verified before a byte of its body is read, and every body has a deadline.
//! Every MCP request costs the caller one unit of its rate limit:
//! - A `tools/call` verifies on the forwarded call itself (one rpc hop, counted): the
//!   handler leaves the rpc-server's verdict in a [`VerdictCell`], and a refusal turns the
//!   response into 401, 429 or 503, in a legacy session as without one. If the handler
//!   never reached the rpc-server (unknown tool, malformed call), the token is verified,
//!   and counted, before the response is released.
//! - Everything else (initialize, tools/list, discover, GET, DELETE, notifications) is
//!   verified with one counted `whoami` before it goes on.

use crate::error::GatewayError;
use crate::forward::{CallerToken, Charge, ForwardError, RawVerdict, Verified};
use crate::request::{Caller, McpBody, McpCall, Parsed, Verdict, VerdictCell};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use secrecy::SecretString;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const API_KEY_NAME: HeaderName = HeaderName::from_static(nexus_wire::headers::API_KEY);
const X_API_KEY_NAME: HeaderName = HeaderName::from_static(nexus_wire::headers::X_API_KEY);

/// Longest credential header value passed on for judgement: a token is at most
/// `MAX_TOKEN_LEN` bytes, with a scheme and some whitespace.
const RAW_CREDENTIAL_MAX: usize = nexus_wire::bearer::MAX_TOKEN_LEN + 64;

/// Largest session tool result held while its verdict is read (a 16 MiB file, as JSON).
const SETTLE_MAX: usize = 128 * 1024 * 1024;

pub(crate) async fn bearer(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let mut call = McpCall {
        method: req.method().to_string(),
        tool: None,
    };
    let mut resp = match authorize(&st, req, &mut call, next).await {
        Ok(r) => enveloped(r).await,
        Err(e) => e.into_response(),
    };
    resp.extensions_mut().insert(call);
    resp
}

/// Where the RFC 9728 metadata of this resource lives, named by the request's Host; the
/// URL is built only for a refusal that sends it.
fn unauthorized(st: &AppState, host: Option<&HeaderValue>) -> GatewayError {
    let host = host.and_then(|v| v.to_str().ok());
    GatewayError::Unauthorized {
        metadata: format!(
            "{}/.well-known/oauth-protected-resource",
            st.public_base(host)
        ),
    }
}

/// 401, or 429 once this client address has failed too often: token guessing is slow.
fn refuse(st: &AppState, peer: Option<IpAddr>, host: Option<&HeaderValue>) -> GatewayError {
    match peer {
        Some(ip) if st.auth_failures.check_key(&ip).is_err() => GatewayError::TooManyFailures,
        _ => unauthorized(st, host),
    }
}

/// The answer to a failed verification of `token`; a rate-limited caller is still known
/// (`who`), for the audit line.
fn refusal(
    st: &AppState,
    e: &ForwardError,
    token: &CallerToken,
    peer: Option<IpAddr>,
    host: Option<&HeaderValue>,
) -> (GatewayError, Option<Verified>) {
    match e {
        ForwardError::Unauthorized => {
            st.known.forget(token);
            (refuse(st, peer, host), None)
        }
        ForwardError::RateLimited {
            retry_after,
            verified,
        } => (
            GatewayError::RateLimited {
                retry_after: *retry_after,
                rate: verified.rate.clone(),
            },
            Some((**verified).clone()).filter(|v| !v.key_id.is_empty()),
        ),
        // Not verified, not refused: the caller must hear "retry", and nothing else.
        ForwardError::AuthUnavailable | ForwardError::Rpc(_) => (GatewayError::Unavailable, None),
        ForwardError::Unavailable(_) => (GatewayError::UpstreamUnavailable, None),
    }
}

/// A refusal as a response, with the caller it knew (if any) for the observe layer.
fn refused((e, who): (GatewayError, Option<Verified>)) -> Response {
    let mut r = e.into_response();
    if let Some(v) = who {
        r.extensions_mut().insert(v);
    }
    r
}

/// The client's address: behind a trusted proxy (a TLS terminator), the forwarded one.
pub(crate) fn client_ip(st: &AppState, parts: &axum::http::request::Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| nexus_serve::client_ip(c.0.ip(), &parts.headers, &st.cfg.trusted_proxies))
}

/// A credential the frontend cannot parse is judged by the rpc-server all the same, so
/// it costs what an unknown token costs and meets the same refusal (SPEC §2: no timing
/// tell). Only header values short enough to be a token's are sent on.
async fn refuse_unparsed(st: &AppState, headers: &HeaderMap, peer: Option<IpAddr>) -> GatewayError {
    let credentials: Vec<(HeaderName, HeaderValue)> =
        [header::AUTHORIZATION, API_KEY_NAME, X_API_KEY_NAME]
            .into_iter()
            .flat_map(|name| {
                headers
                    .get_all(&name)
                    .iter()
                    .map(move |v| (name.clone(), v.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
    let sendable = credentials
        .iter()
        .all(|(_, v)| v.len() <= RAW_CREDENTIAL_MAX);
    if sendable {
        match st.rpc.judge_raw(&credentials, peer).await {
            RawVerdict::Refused => {}
            RawVerdict::TooManyFailures => return GatewayError::TooManyFailures,
            RawVerdict::Unavailable => return GatewayError::Unavailable,
        }
    }
    refuse(st, peer, headers.get(header::HOST))
}

enum BodyError {
    TooLarge,
    Late,
    Broken,
}

/// The whole body, within `deadline` of now plus a second per
/// [`nexus_serve::BODY_GRACE_BYTES`] received (the connection-level rule): an honest large
/// upload is not cut, a trickle gains nothing.
async fn read_body(body: Body, max: usize, deadline: Duration) -> Result<Bytes, BodyError> {
    let started = Instant::now();
    let mut frames = body.into_data_stream();
    let mut buf = Vec::new();
    loop {
        let grace = Duration::from_secs(buf.len() as u64 / nexus_serve::BODY_GRACE_BYTES);
        match tokio::time::timeout_at(started + deadline + grace, frames.next()).await {
            Err(_) => return Err(BodyError::Late),
            Ok(None) => return Ok(Bytes::from(buf)),
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(chunk))) => {
                if buf.len() + chunk.len() > max {
                    return Err(BodyError::TooLarge);
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
}

async fn authorize(
    st: &AppState,
    req: Request,
    call: &mut McpCall,
    next: Next,
) -> Result<Response, GatewayError> {
    let (mut parts, body) = req.into_parts();
    // Identity travels in extensions set here, never in headers a client could forge;
    // strip look-alikes anyway so nothing downstream can be confused by them.
    for name in nexus_wire::headers::IDENTITY {
        parts.headers.remove(name);
    }
    let peer = client_ip(st, &parts);
    let host = parts.headers.get(header::HOST).cloned();
    let host = host.as_ref();
    let token = match nexus_serve::caller_token(&parts.headers) {
        Ok(t) => Some(CallerToken {
            secret: SecretString::from(t.to_owned()),
            client: peer,
        }),
        Err(nexus_wire::bearer::BearerError::Missing) if !st.cfg.require_bearer => None,
        Err(nexus_wire::bearer::BearerError::Missing) => {
            return Err(refuse(st, peer, host));
        }
        Err(nexus_wire::bearer::BearerError::Malformed) => {
            return Err(refuse_unparsed(st, &parts.headers, peer).await);
        }
    };
    // A body declared too large is refused before a byte of it is read (hyper then closes
    // the connection instead of draining it); an undeclared one is cut at the limit.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > st.cfg.max_body_bytes as u64) {
        return Err(GatewayError::PayloadTooLarge);
    }
    let is_post = parts.method == Method::POST;
    // A token nobody has vouched for lately is verified before a byte of the body is
    // read, while the caller's address holds one of a few places: junk tokens cannot make
    // this process wait on bodies. A request without a body (GET, DELETE) is never a tool
    // call: this verification is its counted hop, not a step before one.
    let charge = if is_post {
        Charge::Free
    } else {
        Charge::Counted
    };
    let mut counted = None;
    let mut key_id = token.as_ref().and_then(|t| st.known.key_id(t));
    if let Some(t) = &token
        && key_id.is_none()
    {
        let _place = match peer {
            Some(ip) => match st.unverified.try_acquire(ip) {
                Some(g) => Some(g),
                None => return Err(GatewayError::TooManyUnverified),
            },
            None => None,
        };
        match st.rpc.whoami(t, charge).await {
            Ok(v) => {
                st.known.remember(t, &v.key_id);
                key_id = Some(Arc::from(v.key_id.as_str()));
                if charge == Charge::Counted {
                    counted = Some(v);
                }
            }
            Err(e) => return Ok(refused(refusal(st, &e, t, peer, host))),
        }
    }
    let mcp_body = if is_post {
        let bytes =
            match read_body(body, st.cfg.max_body_bytes, st.cfg.limits.body_read_timeout).await {
                Ok(b) => b,
                Err(BodyError::TooLarge) => return Err(GatewayError::PayloadTooLarge),
                Err(BodyError::Late) => {
                    return Err(GatewayError::RequestTimeout {
                        limit: st.cfg.limits.body_read_timeout,
                    });
                }
                Err(BodyError::Broken) => return Err(GatewayError::UnreadableBody),
            };
        let b = McpBody::parse(bytes);
        call.method = match &b.parsed {
            Parsed::Single(_) => b.method().unwrap_or_default().to_owned(),
            Parsed::Batch => "batch".into(),
            Parsed::NotJson => String::new(),
        };
        call.tool = b.tool();
        Some(Arc::new(b))
    } else {
        None
    };
    let body = match &mcp_body {
        Some(b) => Body::from(b.bytes.clone()),
        None => Body::empty(),
    };
    let is_json = is_post
        && is_json_content_type(&parts.headers)
        && mcp_body
            .as_ref()
            .is_some_and(|b| !matches!(b.parsed, Parsed::NotJson));
    let not_json = is_post && !is_json && is_json_content_type(&parts.headers);
    if let Some(b) = mcp_body {
        parts.extensions.insert(b);
    }
    let Some(token) = token else {
        // Bearer not required and none given: the rpc-server refuses every forwarded call.
        return Ok(next.run(Request::from_parts(parts, body)).await);
    };
    parts.extensions.insert(Caller {
        token: token.clone(),
        key_id,
    });
    if is_json && call.method == "tools/call" {
        // The tool call itself verifies (and counts) the token.
        let verdict = VerdictCell::default();
        parts.extensions.insert(verdict.clone());
        let resp = settled(next.run(Request::from_parts(parts, body)).await).await?;
        return Ok(match verdict.get() {
            Some(Verdict::Verified(v)) => accepted(st, resp, v.clone()),
            Some(Verdict::Refused(e)) => refused(refusal(st, e, &token, peer, host)),
            // The handler did not reach the rpc-server: decide on the token (this counts
            // as the request's hop) before answering.
            None => match st.rpc.whoami(&token, Charge::Counted).await {
                Ok(v) => accepted(st, resp, v),
                Err(e) => refused(refusal(st, &e, &token, peer, host)),
            },
        });
    }
    // Everything else is answered without another hop: its verification counts.
    let verified = match counted {
        Some(v) => v,
        None => match st.rpc.whoami(&token, Charge::Counted).await {
            Ok(v) => v,
            Err(e) => return Ok(refused(refusal(st, &e, &token, peer, host))),
        },
    };
    if not_json {
        st.metrics.saw_client(&verified.key_id);
        let mut r = GatewayError::ParseError.into_response();
        r.extensions_mut().insert(verified);
        return Ok(r);
    }
    parts.extensions.insert(verified.clone());
    let resp = next.run(Request::from_parts(parts, body)).await;
    Ok(accepted(st, resp, verified))
}

/// A response for a verified caller: its rate headers, and who it was for the audit line.
fn accepted(st: &AppState, mut resp: Response, v: Verified) -> Response {
    st.metrics.saw_client(&v.key_id);
    if let Some(rate) = &v.rate {
        rate.apply(resp.headers_mut());
    }
    resp.extensions_mut().insert(v);
    resp
}

/// Waits for an SSE response to end (a session's tool call answers on a stream that
/// closes after the result), so the verdict the handler reported can be read.
async fn settled(resp: Response) -> Result<Response, GatewayError> {
    if !super::limits::is_event_stream(resp.headers()) {
        return Ok(resp);
    }
    let (parts, body) = resp.into_parts();
    match axum::body::to_bytes(body, SETTLE_MAX).await {
        Ok(b) => Ok(Response::from_parts(parts, Body::from(b))),
        Err(_) => Err(GatewayError::Undeliverable),
    }
}

/// rmcp answers some refusals in text/plain; the frontend's answers are JSON (the error
/// envelope) whatever refused.
async fn enveloped(resp: Response) -> Response {
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let is = |prefix: &str| {
        content_type
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    if status.is_success()
        || status.is_redirection()
        || is("application/json")
        || is("text/event-stream")
    {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let message = if status.is_server_error() {
        // rmcp's texts for its own failures name internals; the log has them.
        "internal error; retry shortly".to_owned()
    } else {
        let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let text = nexus_wire::jsonrpc::printable(text.trim());
        if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            text
        }
    };
    let mut r = GatewayError::Transport { status, message }.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            r.headers_mut().append(name.clone(), value.clone());
        }
    }
    *r.extensions_mut() = parts.extensions;
    r
}

#[cfg(test)]
mod tests {
    use crate::request::McpBody;
    use axum::body::Bytes;

    fn peek(b: &'static [u8]) -> (Option<String>, Option<String>) {
        let b = McpBody::parse(Bytes::from_static(b));
        (b.method().map(str::to_owned), b.tool())
    }

    #[test]
    fn peeks_method_and_tool() {
        assert_eq!(
            peek(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nexus_read_file"}}"#),
            (Some("tools/call".into()), Some("nexus_read_file".into()))
        );
        assert!(matches!(
            McpBody::parse(Bytes::from_static(br#"[{"method":"x"}]"#)).parsed,
            crate::request::Parsed::Batch
        ));
        assert!(matches!(
            McpBody::parse(Bytes::from_static(b"{not json")).parsed,
            crate::request::Parsed::NotJson
        ));
        assert_eq!(
            peek(br#"{"method":"tools/call","params":{"name":5}}"#).1,
            None
        );
    }
}
