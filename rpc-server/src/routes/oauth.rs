//! `/oauth/*` and the authorization server's metadata (SPEC §11): thin handlers that read
//! the request (query, bounded form or JSON body, cookie, client address) and send what
//! [`crate::oauth::OAuthServer`] decided. 404 when the OAuth server is off.

use crate::error::ApiError;
use crate::oauth::{OAuthServer, Outcome};
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest form or registration body: far above any real one.
const MAX_BODY: usize = 16 * 1024;

fn server(st: &AppState) -> Result<&Arc<OAuthServer>, ApiError> {
    st.oauth.as_ref().ok_or(ApiError::NotFound)
}

fn respond(o: Outcome) -> Response {
    match o {
        Outcome::Page {
            status,
            body,
            form_target,
            set_cookie,
        } => {
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let h = resp.headers_mut();
            for (name, value) in nexus_oauth::html::security_headers(form_target.as_deref()) {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(name, v);
                }
            }
            if let Some(c) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
                h.insert(header::SET_COOKIE, c);
            }
            resp
        }
        Outcome::Redirect(to) => match HeaderValue::from_str(&to) {
            Ok(loc) => {
                let mut resp = StatusCode::SEE_OTHER.into_response();
                let h = resp.headers_mut();
                h.insert(header::LOCATION, loc);
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                h.insert(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                );
                resp
            }
            Err(_) => StatusCode::BAD_REQUEST.into_response(),
        },
        Outcome::Away {
            location,
            set_cookie,
        } => match (
            HeaderValue::from_str(&location),
            HeaderValue::from_str(&set_cookie),
        ) {
            (Ok(loc), Ok(c)) => {
                let mut resp = StatusCode::SEE_OTHER.into_response();
                let h = resp.headers_mut();
                h.insert(header::LOCATION, loc);
                h.insert(header::SET_COOKIE, c);
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                h.insert(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                );
                resp
            }
            _ => StatusCode::BAD_REQUEST.into_response(),
        },
        Outcome::Json { status, body } => {
            let mut resp = Json(body).into_response();
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let h = resp.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            resp
        }
    }
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::COOKIE).and_then(|v| v.to_str().ok())
}

async fn form(body: Body) -> Result<Vec<(String, String)>, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
pub(super) async fn metadata(State(st): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(server(&st)?.metadata()).into_response())
}

pub(super) async fn authorize(
    State(st): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let o = server(&st)?;
    let query = req.uri().query().unwrap_or_default().to_owned();
    Ok(respond(o.authorize(&query, cookie(req.headers())).await))
}

pub(super) async fn login(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let o = server(&st)?;
    let (parts, body) = req.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = super::auth::client(&st, &parts.headers, peer);
    let f = form(body).await?;
    Ok(respond(o.login(&f, cookie(&parts.headers), ip).await))
}

pub(super) async fn consent(
    State(st): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let o = server(&st)?;
    let (parts, body) = req.into_parts();
    let f = form(body).await?;
    Ok(respond(o.consent(&f, cookie(&parts.headers)).await))
}

/// `POST /oauth/authorize/upstream`: "Continue with …".
pub(super) async fn upstream(
    State(st): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let o = server(&st)?;
    let (parts, body) = req.into_parts();
    let f = form(body).await?;
    Ok(respond(o.upstream_start(&f, cookie(&parts.headers)).await))
}

/// `GET /oauth/upstream/callback`: the upstream issuer's answer.
pub(super) async fn upstream_callback(
    State(st): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let o = server(&st)?;
    let query = req.uri().query().unwrap_or_default().to_owned();
    Ok(respond(
        o.upstream_callback(&query, cookie(req.headers())).await,
    ))
}

pub(super) async fn token(State(st): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let o = server(&st)?;
    let f = form(body).await?;
    Ok(respond(o.token(&f).await))
}

pub(super) async fn revoke(State(st): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let o = server(&st)?;
    let f = form(body).await?;
    Ok(respond(o.revoke(&f).await))
}

pub(super) async fn register(
    State(st): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let o = server(&st)?;
    let (parts, body) = req.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = super::auth::client(&st, &parts.headers, peer);
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    Ok(respond(o.register(&bytes, ip).await))
}
