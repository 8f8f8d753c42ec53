//! `POST /api/nfs/{method}`: authenticate from headers, then read and decode the body,
//! then dispatch. Authentication comes first so an unauthenticated caller can make the
//! server do nothing, not even read its body.

use crate::auth::grants::Compiled;
use crate::auth::{AuthError, Identity};
use crate::control::Caller;
use crate::error::ApiError;
use crate::files::ZoneView;
use crate::files::access::Access;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use nexus_providers::permissions::Perm;
use nexus_wire::Method;
use nexus_wire::headers;
use nexus_wire::jsonrpc::{self, Response as RpcResponse};
use nexus_wire::methods::*;
use nexus_wire::spec::Permission;
use nexus_wire::{ErrorCode, RpcError};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

pub async fn call_method(
    State(st): State<AppState>,
    method: Result<Path<String>, axum::extract::rejection::PathRejection>,
    req: axum::extract::Request,
) -> Response {
    let started = Instant::now();
    let name = method.map(|Path(m)| m).unwrap_or_default();
    // Parsed once, here: past this point methods are matched as variants.
    let method = Method::parse(&name);
    let label = method.map_or("other", Method::label);
    let (parts, body) = req.into_parts();
    // Behind a trusted proxy (the MCP frontend), the client is the forwarded address.
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| nexus_serve::client_ip(c.0.ip(), &parts.headers, &st.trusted_proxies));
    let call = Call {
        name: &name,
        method,
    };
    let (resp, outcome) = handle(&st, call, &parts.headers, peer, body).await;
    st.metrics
        .rpc_requests
        .with_label_values(&[label, outcome])
        .inc();
    st.metrics
        .rpc_latency
        .with_label_values(&[label])
        .observe(started.elapsed().as_secs_f64());
    resp
}

/// The method a request named: its text as sent (for errors) and what it parsed to.
#[derive(Clone, Copy)]
struct Call<'a> {
    name: &'a str,
    method: Option<Method>,
}

async fn handle(
    st: &AppState,
    call: Call<'_>,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    body: Body,
) -> (Response, &'static str) {
    // An address already over its failed-authentication budget costs no lookup: only an
    // identity verified recently (cached) still gets through.
    if let Some(ip) = peer
        && st.limits.over_failure_limit(ip)
    {
        match cached_identity(st, headers) {
            Some(id) => return authenticated(st, call, headers, id, body).await,
            None => {
                st.limits.refused_for_failures();
                return ApiError::TooManyFailures.answer();
            }
        }
    }
    let identity = match authenticate(st, headers).await {
        Ok(id) => id,
        Err(ApiError::Unavailable) => {
            return ApiError::Unavailable.answer();
        }
        Err(e) => {
            // Token guessing is slow: past the per-address budget, failures get 429.
            if let Some(ip) = peer
                && !st.limits.failed_auth(ip)
            {
                return ApiError::TooManyFailures.answer();
            }
            return e.answer();
        }
    };
    authenticated(st, call, headers, identity, body).await
}

/// The rest of a request once its caller is known.
async fn authenticated(
    st: &AppState,
    call: Call<'_>,
    headers: &HeaderMap,
    identity: Arc<Identity>,
    body: Body,
) -> (Response, &'static str) {
    // whoami is the frontend's verification call and a cache hit: it spends no budget,
    // unless the forwarder answers a request with it alone and asks for it to count.
    let decision =
        if call.method == Some(Method::Whoami) && !headers.contains_key(headers::COUNT_REQUEST) {
            None
        } else {
            Some(st.limits.check(&identity).await)
        };
    if let Some(d) = decision
        && !d.allowed
    {
        let (mut resp, outcome) = ApiError::RateLimited(d).answer();
        identity_headers(resp.headers_mut(), &identity, None);
        return (resp, outcome);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // An authenticated caller that overshoots moderately gets its body drained so it can
    // read the 413 (closing mid-upload looks like a network failure to it); a grossly
    // oversized one is cut off.
    let too_large = |body: Body| async move {
        let drain = async {
            let mut stream = body.into_data_stream();
            let mut seen = 0usize;
            while let Some(Ok(chunk)) = futures_util::StreamExt::next(&mut stream).await {
                seen += chunk.len();
                if seen > st.max_body_bytes.saturating_mul(4) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), drain).await;
        ApiError::PayloadTooLarge.answer()
    };
    if declared.is_some_and(|n| n > st.max_body_bytes) {
        if declared.is_some_and(|n| n > st.max_body_bytes.saturating_mul(4)) {
            return ApiError::PayloadTooLarge.answer();
        }
        return too_large(body).await;
    }
    let Ok(bytes) = axum::body::to_bytes(body, st.max_body_bytes).await else {
        return ApiError::PayloadTooLarge.answer();
    };
    let mut zone: Option<String> = None;
    let (id, result) = match jsonrpc::decode_request(&bytes) {
        Err((id, e)) => (id, Err(e)),
        Ok(req) => match req.method.as_deref() {
            Some(m) if m != call.name => (
                req.id,
                Err(RpcError::invalid_request(
                    "the body's method does not match the URL's",
                )),
            ),
            _ => (
                req.id,
                match call.method {
                    Some(m) => dispatch(st, &identity, m, req.params, &mut zone).await,
                    None => Err(RpcError::method_not_found(call.name)),
                },
            ),
        },
    };
    let outcome = if result.is_ok() { "ok" } else { "rpc_error" };
    let resp = match result {
        Ok(v) => RpcResponse::ok(id, v),
        Err(e) => RpcResponse::err(id, e),
    };
    let mut resp = Json(resp).into_response();
    // Tell a trusted forwarder (the MCP frontend) who was verified, so verification can
    // ride on the call itself. A key id is an identifier, not a credential.
    let h = resp.headers_mut();
    identity_headers(h, &identity, zone);
    if let Some(d) = decision {
        crate::error::rate_limit_headers(h, &d);
    }
    (resp, outcome)
}

/// Names the verified caller (and the zone addressed) for a trusted forwarder.
fn identity_headers(h: &mut HeaderMap, identity: &Identity, zone: Option<String>) {
    if let Ok(v) = HeaderValue::from_str(&identity.key_id.to_string()) {
        h.insert(headers::KEY_ID, v);
    }
    h.insert(
        headers::ADMIN,
        HeaderValue::from_static(if identity.is_admin { "true" } else { "false" }),
    );
    // Percent-encoded: a user id may be any UTF-8, a header value only visible ASCII.
    let user = nexus_wire::identity::encode_header_text(&identity.user_id);
    if let Ok(v) = HeaderValue::from_str(&user) {
        h.insert(headers::USER_ID, v);
    }
    let zone = zone.unwrap_or_else(|| match identity.zones.as_slice() {
        [] => "*".into(),
        zs => zs
            .iter()
            .map(|g| g.zone_id.as_str())
            .collect::<Vec<_>>()
            .join(","),
    });
    if let Ok(v) = HeaderValue::from_str(&zone) {
        h.insert(headers::ZONE, v);
    }
}

/// The zone a file call's path resolves to, for audit.
fn zone_of(v: &ZoneView, params: &Value) -> Option<String> {
    let path = ["path", "old_path"]
        .iter()
        .find_map(|k| params.get(*k).and_then(Value::as_str))?;
    match v.resolve(path) {
        Ok(crate::files::Target::Zone(zp)) => Some(zp.zone),
        _ => None,
    }
}

/// What the credential headers carry.
enum Credential<'a> {
    /// No credential header at all.
    Missing,
    /// One usable candidate token.
    Token(&'a str),
    /// Something unusable (two values, two different tokens, a wrong scheme, non-ASCII):
    /// refused, but only after the same work as an unknown token, on this stand-in.
    Unusable(String),
}

fn credential(h: &HeaderMap) -> Credential<'_> {
    match nexus_serve::caller_token(h) {
        Ok(t) => Credential::Token(t),
        Err(nexus_wire::bearer::BearerError::Missing) => Credential::Missing,
        Err(nexus_wire::bearer::BearerError::Malformed) => {
            let raw = h
                .get(header::AUTHORIZATION)
                .or_else(|| h.get(headers::API_KEY))
                .or_else(|| h.get(headers::X_API_KEY))
                .map(HeaderValue::as_bytes)
                .unwrap_or_default();
            Credential::Unusable(
                String::from_utf8_lossy(raw)
                    .chars()
                    .take(nexus_wire::bearer::MAX_TOKEN_LEN)
                    .collect(),
            )
        }
    }
}

/// A recently verified identity for the request's token, without a database lookup.
fn cached_identity(st: &AppState, headers: &HeaderMap) -> Option<Arc<Identity>> {
    match credential(headers) {
        Credential::Token(t) => st.auth.cached(t),
        Credential::Missing | Credential::Unusable(_) => None,
    }
}

async fn authenticate(st: &AppState, headers: &HeaderMap) -> Result<Arc<Identity>, ApiError> {
    let refused = |e: AuthError| match e {
        AuthError::Refused(_) => ApiError::Unauthorized,
        AuthError::Unavailable => ApiError::Unavailable,
    };
    match credential(headers) {
        Credential::Missing => {
            st.metrics
                .auth_results
                .with_label_values(&["missing"])
                .inc();
            Err(ApiError::Unauthorized)
        }
        Credential::Token(t) => st.auth.authenticate(t).await.map_err(refused),
        // Never accepted, whatever the stand-in happens to match.
        Credential::Unusable(stand_in) => match st.auth.authenticate(&stand_in).await {
            Ok(_) => Err(ApiError::Unauthorized),
            Err(e) => Err(refused(e)),
        },
    }
}

/// Decodes params; errors name the offending field (`content: invalid type: …`).
fn params<T: DeserializeOwned>(v: Value) -> Result<T, RpcError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            RpcError::invalid_params(format!("invalid params: {inner}"))
        } else {
            RpcError::invalid_params(format!("invalid params: {path}: {inner}"))
        }
    })
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, RpcError> {
    serde_json::to_value(v).map_err(|_| RpcError::internal())
}

/// The caller's access for this request: its path view, the zone modes, and its compiled
/// ReBAC grants when a decision may need them (for `whoami`, whenever it is subject-bound,
/// to name its groups; a failure to compile them then only leaves the groups out).
async fn access(
    st: &AppState,
    id: &Identity,
    whoami: bool,
) -> Result<(Access, Option<Arc<Compiled>>), RpcError> {
    let zones = st.zones.active().await?;
    let needs = Access::needs_grants(id.is_admin, &id.zones, &zones.modes);
    let compiled = match &st.grants {
        Some(g) if needs => Some(g.for_identity(id).await?),
        Some(g) if whoami && id.subject.is_some() => g.for_identity(id).await.ok(),
        _ => None,
    };
    let view = if id.zones.is_empty() && !id.is_admin {
        // A subject-bound token that lists no zones sees those its grants reach into.
        let reach = |z: &str| {
            compiled
                .as_ref()
                .is_some_and(|c| c.grants.is_namespace_admin() || c.grants.visible(z, &[]))
        };
        ZoneView::Multi {
            zones: zones
                .names
                .iter()
                .filter(|z| reach(z))
                .map(|z| (z.clone(), Permission::ReadWrite))
                .collect(),
        }
    } else {
        ZoneView::for_identity(id, &zones.names)
    };
    let acc = Access::new(
        view,
        id.is_admin,
        !id.zones.is_empty(),
        zones.modes.clone(),
        compiled.as_ref().map(|c| c.grants.clone()),
        Some(st.metrics.clone()),
    );
    Ok((acc, compiled))
}

/// Runs a method; for file methods also reports the zone addressed (for audit), from the
/// same view the call uses.
async fn dispatch(
    st: &AppState,
    id: &Identity,
    method: Method,
    p: Value,
    zone: &mut Option<String>,
) -> Result<Value, RpcError> {
    // The one permission check of the request path (SPEC §10). Identities without
    // explicit permissions (keys minted before them) are judged by zones and the admin
    // flag below, exactly as before.
    if let Some(perms) = id.permissions {
        let needed = required_permission(method);
        if !perms.allows(needed) {
            return Err(RpcError::permission_denied(format!(
                "permission denied: {method} needs {needed}"
            )));
        }
    }
    match method.kind() {
        MethodKind::Admin => return dispatch_admin(st, id, method, p).await,
        MethodKind::Rebac => return dispatch_rebac(st, id, method, p).await,
        MethodKind::File => {}
    }
    let (a, compiled) = access(st, id, method == Method::Whoami).await?;
    *zone = zone_of(&a.view, &p);
    let f = &st.files;
    match method {
        Method::Read => to_value(f.read(&a, params(p)?).await?),
        Method::Write => to_value(f.write(&a, params(p)?).await?),
        Method::Edit => to_value(f.edit(&a, params(p)?).await?),
        Method::Delete => to_value(f.delete(&a, params(p)?).await?),
        Method::List => to_value(f.list(&a, params(p)?).await?),
        Method::Stat => to_value(f.stat(&a, params(p)?).await?),
        Method::Mkdir => to_value(f.mkdir(&a, params(p)?).await?),
        Method::Rmdir => to_value(f.rmdir(&a, params(p)?).await?),
        Method::Rename => to_value(f.rename(&a, params(p)?).await?),
        Method::Glob => to_value(f.glob(&a, params(p)?).await?),
        Method::Grep => to_value(f.grep(id.key_id, &a, params(p)?).await?),
        Method::Search => to_value(f.search(id.key_id, &a, params(p)?).await?),
        Method::MdStructure => to_value(f.md_structure(&a, params(p)?).await?),
        Method::Whoami => {
            let _: EmptyParams = params(p)?;
            let v = &a.view;
            to_value(WhoamiResult {
                key_id: id.key_id.to_string(),
                name: id.name.clone(),
                user_id: id.user_id.clone(),
                subject_type: id.subject_type,
                is_admin: id.is_admin,
                zones: v
                    .zones()
                    .into_iter()
                    .map(|(zone, permission)| WhoamiZone { zone, permission })
                    .collect(),
                path_mode: if v.is_single() { "single" } else { "multi" }.into(),
                expires_at: id.expires_at.map(crate::control::ts),
                subject: id.subject.as_ref().map(|s| WhoamiSubject {
                    id: s.id.clone(),
                    kind: s.kind,
                    tenant: s.tenant.clone(),
                }),
                groups: compiled.map(|c| c.groups.clone()).unwrap_or_default(),
                zone_access: v
                    .zones()
                    .into_iter()
                    .map(|(zone, _)| {
                        let mode = a.mode(&zone).to_string();
                        (zone, mode)
                    })
                    .collect(),
            })
        }
        _ => Err(RpcError::method_not_found(method.as_str())),
    }
}

/// What a method needs: READ for reads, WRITE for mutations, ADMIN for the admin and
/// tuple-writing methods.
fn required_permission(method: Method) -> Perm {
    match method.kind() {
        MethodKind::Admin => Perm::Admin,
        MethodKind::Rebac => match method {
            Method::RebacCreate | Method::RebacDelete => Perm::Admin,
            _ => Perm::Read,
        },
        MethodKind::File => match method {
            Method::Write
            | Method::Edit
            | Method::Delete
            | Method::Mkdir
            | Method::Rmdir
            | Method::Rename => Perm::Write,
            _ => Perm::Read,
        },
    }
}

/// ReBAC methods: the control plane decides who may (admin tokens, or zone admins for
/// objects in their zones).
async fn dispatch_rebac(
    st: &AppState,
    id: &Identity,
    method: Method,
    p: Value,
) -> Result<Value, RpcError> {
    let Some(c) = &st.control else {
        return Err(RpcError::new(
            ErrorCode::MethodNotFound,
            "ReBAC methods need a database (not available in single-key mode)",
        ));
    };
    let caller = Caller::from_identity(id);
    match method {
        Method::RebacCreate => to_value(c.rebac_create(&caller, params(p)?).await?),
        Method::RebacDelete => to_value(c.rebac_delete(&caller, params(p)?).await?),
        Method::RebacCheck => to_value(c.rebac_check(&caller, params(p)?).await?),
        Method::RebacListTuples => to_value(c.rebac_list(&caller, params(p)?).await?),
        Method::RebacExpand => to_value(c.rebac_expand(&caller, params(p)?).await?),
        _ => Err(RpcError::method_not_found(method.as_str())),
    }
}

async fn dispatch_admin(
    st: &AppState,
    id: &Identity,
    method: Method,
    p: Value,
) -> Result<Value, RpcError> {
    if !id.is_admin {
        return Err(RpcError::permission_denied(format!(
            "permission denied: {method} needs an admin token"
        )));
    }
    let Some(c) = &st.control else {
        return Err(RpcError::new(
            ErrorCode::MethodNotFound,
            "admin methods need a database (not available in single-key mode)",
        ));
    };
    match method {
        Method::TokenCreate => to_value(c.create_token(params(p)?).await?),
        Method::TokenList => {
            let q: TokenListParams = params(p)?;
            to_value(c.list_tokens(q.show_revoked).await?)
        }
        Method::TokenRevoke => {
            let q: TokenRevokeParams = params(p)?;
            to_value(c.revoke_token(&q.identifier).await?)
        }
        Method::ZoneCreate => {
            let q: ZoneParams = params(p)?;
            to_value(c.create_zone(&q.name).await?)
        }
        Method::ZoneList => {
            let q: ZoneListParams = params(p)?;
            to_value(c.list_zones(q.show_deleted).await?)
        }
        Method::ZoneDelete => {
            let q: ZoneParams = params(p)?;
            to_value(c.delete_zone(&q.name).await?)
        }
        Method::CreateUser => to_value(
            c.create_user(&Caller::from_identity(id), params(p)?)
                .await?,
        ),
        Method::CreateAgentKey => to_value(
            c.create_agent_key(&Caller::from_identity(id), params(p)?)
                .await?,
        ),
        Method::ListUsers => {
            let q: AdminListUsersParams = params(p)?;
            to_value(c.list_users(q.subject_type).await?)
        }
        Method::DeleteUser => {
            let q: AdminUserParams = params(p)?;
            to_value(
                c.delete_user(&Caller::from_identity(id), &q.subject_id)
                    .await?,
            )
        }
        Method::SetUserState => {
            let q: AdminSetUserStateParams = params(p)?;
            let caller = Caller::from_identity(id);
            to_value(c.set_user_state(&caller, &q.subject_id, q.disabled).await?)
        }
        Method::OAuthClientList => {
            let _: EmptyParams = params(p)?;
            to_value(c.list_oauth_clients().await?)
        }
        Method::OAuthClientRevoke => {
            let q: OAuthClientRevokeParams = params(p)?;
            to_value(
                c.revoke_oauth_client(&Caller::from_identity(id), &q.client_id)
                    .await?,
            )
        }
        Method::ZoneRestore => {
            let q: ZoneParams = params(p)?;
            to_value(c.restore_zone(&q.name).await?)
        }
        Method::Status => {
            let q: StatusParams = params(p)?;
            let mut s = c.status().await;
            if s.endpoint.is_none() {
                s.endpoint = st.public_url.clone();
            }
            let names = if q.detail {
                c.fill_rebac_counts(&mut s).await;
                c.token_names().await
            } else {
                Default::default()
            };
            let url = st
                .redis_url
                .as_ref()
                .map(secrecy::ExposeSecret::expose_secret);
            match (url, st.live.get()) {
                // No Redis, a frontend in this process: its own figures.
                (None, Some(live)) => {
                    let rejected = ["admin", "custom", "token"]
                        .into_iter()
                        .map(|t| (t, st.metrics.rate_limited.with_label_values(&[t]).get()))
                        .filter(|(_, n)| *n > 0)
                        .map(|(t, n)| (t.to_owned(), n))
                        .collect();
                    crate::stats::fill_live(&mut s, live.as_ref(), q.detail, &names, rejected);
                    s.redis = "n/a".into();
                }
                _ => crate::stats::fill(&mut s, url, q.detail, &names).await,
            }
            s.bus = st.bus_status();
            s.nodes = st.bus_nodes().await;
            to_value(s)
        }
        _ => Err(RpcError::method_not_found(method.as_str())),
    }
}
