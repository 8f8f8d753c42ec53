//! `/auth/*` on nexusd (SPEC §10, seed `002`): login, refresh, logout, who am I, API keys
//! and local users. Every refusal is the one JSON error envelope ([`ApiError`]); every
//! change is an audit event like the admin methods'. Who may do what is the caller's
//! permissions: ADMIN manages users, SUPER grants ADMIN or SUPER and removes admins; a key
//! never exceeds its owner.

use crate::auth::Identity;
use crate::auth::local::{LocalAuth, LocalError};
use crate::control::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use nexus_providers::password;
use nexus_providers::permissions::{Perm, Perms};
use nexus_wire::methods::TokenCreateParams;
use nexus_wire::spec::parse_zone_spec;
use serde::Deserialize;
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

/// Largest `/auth/*` request body: far above any real one.
const MAX_BODY: usize = 16 * 1024;

/// Login attempts: per client address, and per username from one address, so that a
/// brute force on a username from one address never locks its owner out elsewhere.
#[derive(Debug)]
pub(crate) struct LoginThrottle {
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    per_user_address: DefaultKeyedRateLimiter<(String, IpAddr)>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        let per_min = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            per_address: RateLimiter::keyed(per_min(30)),
            per_user_address: RateLimiter::keyed(per_min(5)),
        }
    }
}

impl LoginThrottle {
    pub(crate) fn allow(&self, ip: IpAddr, username: &str) -> bool {
        self.per_address.check_key(&ip).is_ok()
            && self
                .per_user_address
                .check_key(&(username.to_owned(), ip))
                .is_ok()
    }

    pub(crate) fn housekeeping(&self) {
        self.per_address.retain_recent();
        self.per_user_address.retain_recent();
    }
}

/// An answer that carries a credential (a token pair, a new key): no cache may keep it
/// (RFC 6749 §5.1).
fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    h.insert(
        axum::http::header::PRAGMA,
        axum::http::HeaderValue::from_static("no-cache"),
    );
    resp
}

fn local(st: &AppState) -> Result<&Arc<LocalAuth>, ApiError> {
    st.local.as_ref().ok_or(ApiError::NotFound)
}

fn local_err(e: LocalError) -> ApiError {
    match e {
        LocalError::Refused => ApiError::Unauthorized,
        LocalError::BadInput(m) => ApiError::BadRequest(m),
        LocalError::Unavailable => ApiError::Unavailable,
    }
}

/// Reads and decodes a bounded JSON body; anything malformed (not UTF-8, not the shape)
/// is a 400 before anything happens.
async fn json_body<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::BadRequest("the body must be a JSON object of the documented shape"))
}

pub(super) fn client(st: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> IpAddr {
    let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip());
    nexus_serve::client_ip(peer, headers, &st.trusted_proxies)
}

async fn caller(st: &AppState, headers: &HeaderMap) -> Result<Arc<Identity>, ApiError> {
    let token = nexus_serve::caller_token(headers).map_err(|_| ApiError::Unauthorized)?;
    st.auth.authenticate(token).await.map_err(|e| match e {
        crate::auth::AuthError::Refused(_) => ApiError::Unauthorized,
        crate::auth::AuthError::Unavailable => ApiError::Unavailable,
    })
}

fn need(id: &Identity, p: Perm) -> Result<(), ApiError> {
    if id.allows(p) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(match p {
            Perm::Super => "this needs SUPER (the root user)",
            Perm::Admin => "this needs ADMIN",
            Perm::Write => "this needs WRITE",
            Perm::Read => "this needs READ",
        }))
    }
}

fn audit(st: &AppState, event: &'static str, id: &Identity, detail: serde_json::Value) {
    if let Some(c) = &st.control {
        c.audit(event, &Caller::from_identity(id), detail);
    }
}

fn parse_perms(list: &[String]) -> Result<Perms, ApiError> {
    Perms::parse(list)
        .map_err(|_| ApiError::BadRequest("permissions are READ, WRITE, ADMIN or SUPER"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

pub(super) async fn post_login(
    State(st): State<AppState>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned();
    let headers = parts.headers;
    let l = local(&st)?;
    let b: LoginBody = json_body(body).await?;
    crate::auth::local::check_username(&b.username).map_err(local_err)?;
    if b.password.is_empty() || b.password.len() > password::MAX_PASSWORD_BYTES {
        return Err(ApiError::BadRequest("password must be 1-1024 bytes"));
    }
    let ip = client(&st, &headers, peer.map(|c| c.0));
    if !l.throttle.allow(ip, &b.username) {
        st.metrics.rate_limited.with_label_values(&["login"]).inc();
        return Err(ApiError::LoginThrottled);
    }
    let issued = l.login(&b.username, &b.password).await.map_err(local_err)?;
    Ok(no_store(Json(issued).into_response()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

pub(super) async fn post_refresh(
    State(st): State<AppState>,
    body: Body,
) -> Result<Response, ApiError> {
    let l = local(&st)?;
    let b: RefreshBody = json_body(body).await?;
    let issued = l.refresh(&b.refresh_token).await.map_err(local_err)?;
    Ok(no_store(Json(issued).into_response()))
}

pub(super) async fn post_logout(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let l = local(&st)?;
    let id = caller(&st, &headers).await?;
    l.logout(&id).await.map_err(local_err)?;
    audit(&st, "auth.logout", &id, json!({ "user": id.user_id }));
    Ok(Json(json!({ "logged_out": true })).into_response())
}

pub(super) async fn get_me(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = caller(&st, &headers).await?;
    Ok(Json(json!({
        "user_id": id.user_id,
        "subject_type": id.subject_type,
        "credential": id.credential.label(),
        "key_id": id.key_id.to_string(),
        "is_admin": id.is_admin,
        "permissions": id.perms().names(),
        "zones": id.zones,
        "expires_at": id.expires_at.map(crate::control::ts),
    }))
    .into_response())
}

// ---- API keys ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyBody {
    name: String,
    #[serde(default)]
    permissions: Option<Vec<String>>,
    /// RFC 3339.
    #[serde(default)]
    expires_at: Option<String>,
    /// `eng:rw,ops:r`; absent: the caller's own zones.
    #[serde(default)]
    zones: Option<String>,
}

pub(super) async fn post_api_keys(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = caller(&st, &headers).await?;
    let b: NewKeyBody = json_body(body).await?;
    let control = st.control.as_ref().ok_or(ApiError::NotFound)?;
    let mine = id.perms();
    let perms = match &b.permissions {
        Some(list) => parse_perms(list)?,
        None => mine,
    };
    if perms.is_empty() || !perms.within(mine) {
        return Err(ApiError::Forbidden(
            "a key cannot hold more permissions than its owner",
        ));
    }
    if perms.contains(Perm::Super) {
        return Err(ApiError::Forbidden(
            "SUPER stays with the root user; keys cannot hold it",
        ));
    }
    // Zones: within the owner's. An owner with no zone list sees every zone only as an
    // admin; anyone else's key lists zones it holds itself.
    let zones = match &b.zones {
        Some(z) => {
            let want = parse_zone_spec(z)
                .map_err(|_| ApiError::BadRequest("zones look like eng:rw,ops:r"))?;
            if !id.is_admin || !id.zones.is_empty() {
                for g in &want {
                    let held = id.zones.iter().find(|h| h.zone_id == g.zone_id);
                    let ok = held.is_some_and(|h| {
                        (!g.permission.can_read() || h.permission.can_read())
                            && (!g.permission.can_write() || h.permission.can_write())
                    });
                    if !ok {
                        return Err(ApiError::Forbidden(
                            "a key cannot reach zones its owner does not hold",
                        ));
                    }
                }
            }
            Some(z.clone())
        }
        None if id.zones.is_empty() => None,
        None => Some(
            id.zones
                .iter()
                .map(|g| format!("{}:{}", g.zone_id, g.permission))
                .collect::<Vec<_>>()
                .join(","),
        ),
    };
    let admin = perms.allows(Perm::Admin);
    if zones.is_none() && !admin {
        return Err(ApiError::BadRequest(
            "a key without ADMIN needs zones (eng:rw,ops:r)",
        ));
    }
    let expires = match &b.expires_at {
        Some(t) => {
            let at = chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|_| ApiError::BadRequest("expires_at must be RFC 3339"))?
                .with_timezone(&chrono::Utc);
            let secs = (at - chrono::Utc::now()).num_seconds();
            if secs <= 0 {
                return Err(ApiError::BadRequest("expires_at must be in the future"));
            }
            Some(format!("{secs}s"))
        }
        None => None,
    };
    let created = control
        .create_token(TokenCreateParams {
            name: b.name,
            zones,
            zones_glob: None,
            zone: None,
            admin,
            expires,
            user_id: Some(id.user_id.clone()),
            subject_type: Some(id.subject_type),
            rate_limit: None,
        })
        .await
        .map_err(|e| match e {
            crate::control::ControlError::Conflict(_) => {
                ApiError::Conflict("a key by that name exists")
            }
            crate::control::ControlError::Unavailable => ApiError::Unavailable,
            _ => ApiError::BadRequest("the key cannot be made as asked (name, zones or expiry)"),
        })?;
    let key_id = uuid::Uuid::parse_str(&created.key_id).map_err(|_| ApiError::Unavailable)?;
    if control
        .store()
        .set_token_permissions(key_id, &perms.stored())
        .await
        .is_err()
    {
        // Never hand out a key whose permissions did not stick.
        let _ = control.revoke_token(&created.key_id).await;
        return Err(ApiError::Unavailable);
    }
    audit(
        &st,
        "auth.api_key_create",
        &id,
        json!({ "key_id": created.key_id, "name": created.name, "permissions": perms.names() }),
    );
    Ok(no_store(
        Json(json!({
            "id": created.key_id,
            "name": created.name,
            "key": created.token,
            "permissions": perms.names(),
            "zones": created.zones,
            "created_at": created.created_at,
            "expires_at": created.expires_at,
        }))
        .into_response(),
    ))
}

pub(super) async fn get_api_keys(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = caller(&st, &headers).await?;
    let control = st.control.as_ref().ok_or(ApiError::NotFound)?;
    let all = control
        .list_tokens(false)
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let mine: Vec<_> = all
        .into_iter()
        .filter(|t| t.user_id == id.user_id)
        .map(|t| {
            json!({
                "id": t.key_id, "name": t.name, "zones": t.zones, "admin": t.admin,
                "created_at": t.created_at, "expires_at": t.expires_at,
                "last_used_at": t.last_used_at, "status": t.status,
            })
        })
        .collect();
    Ok(Json(json!({ "api_keys": mine })).into_response())
}

pub(super) async fn delete_api_keys(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let id = caller(&st, &headers).await?;
    let control = st.control.as_ref().ok_or(ApiError::NotFound)?;
    let key_id =
        uuid::Uuid::parse_str(&key).map_err(|_| ApiError::BadRequest("id must be a key id"))?;
    let rec = control
        .find_token(&key_id.to_string())
        .await
        .map_err(|_| ApiError::NotFound)?;
    if rec.user_id != id.user_id {
        need(&id, Perm::Admin)?;
    }
    control
        .revoke_token(&key_id.to_string())
        .await
        .map_err(|_| ApiError::Unavailable)?;
    audit(
        &st,
        "auth.api_key_revoke",
        &id,
        json!({ "key_id": key_id.to_string() }),
    );
    Ok(Json(json!({ "id": key_id.to_string(), "revoked": true })).into_response())
}

// ---- users ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    username: String,
    password: String,
    #[serde(default)]
    permissions: Option<Vec<String>>,
    #[serde(default)]
    zones: Option<String>,
}

/// ADMIN may grant READ and WRITE; only SUPER may grant ADMIN or SUPER.
fn may_grant(id: &Identity, perms: Perms) -> Result<(), ApiError> {
    need(id, Perm::Admin)?;
    if (perms.contains(Perm::Admin) || perms.contains(Perm::Super)) && !id.allows(Perm::Super) {
        return Err(ApiError::Forbidden("granting ADMIN or SUPER needs SUPER"));
    }
    Ok(())
}

pub(super) async fn post_users(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let l = local(&st)?;
    let id = caller(&st, &headers).await?;
    need(&id, Perm::Admin)?;
    let b: NewUserBody = json_body(body).await?;
    let perms = match &b.permissions {
        Some(list) => parse_perms(list)?,
        None => Perms::of(&[Perm::Read]),
    };
    may_grant(&id, perms)?;
    if nexus_authz::model::validate_subject_id("user", &b.username).is_err() {
        return Err(ApiError::BadRequest(
            "username must be 1-128 of a-z 0-9 . _ @ - and start with a letter or digit",
        ));
    }
    let zones = b.zones.unwrap_or_default();
    if !zones.is_empty() {
        parse_zone_spec(&zones)
            .map_err(|_| ApiError::BadRequest("zones look like eng:rw,ops:r"))?;
    }
    let hash = l.hash_password(b.password).await.map_err(local_err)?;
    match l.put_user(&b.username, hash, perms, &zones, false).await {
        Ok(_) => {}
        Err(crate::db::StoreError::SubjectExists(_)) | Err(crate::db::StoreError::Invalid(_)) => {
            return Err(ApiError::Conflict("a subject by that name exists"));
        }
        Err(_) => return Err(ApiError::Unavailable),
    }
    audit(
        &st,
        "auth.user_create",
        &id,
        json!({ "user": b.username, "permissions": perms.names() }),
    );
    if perms.allows(Perm::Admin) {
        l.after_admin_created().await;
    }
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({ "username": b.username, "permissions": perms.names(), "zones": zones })),
    )
        .into_response())
}

pub(super) async fn get_users(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let l = local(&st)?;
    let id = caller(&st, &headers).await?;
    need(&id, Perm::Admin)?;
    let users = l
        .store()
        .list_local_users()
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let out: Vec<_> = users
        .into_iter()
        .map(|u| {
            json!({
                "username": u.username,
                "permissions": Perms::parse_stored(&u.permissions).unwrap_or_default().names(),
                "zones": u.zones,
                "disabled": u.disabled_at.is_some(),
                "created_at": crate::control::ts(u.created_at),
                "password_changed_at": crate::control::ts(u.password_changed_at),
            })
        })
        .collect();
    Ok(Json(json!({ "users": out })).into_response())
}

async fn target_perms(l: &LocalAuth, user: &str) -> Result<Perms, ApiError> {
    let u = l
        .store()
        .find_local_user(user)
        .await
        .map_err(|_| ApiError::Unavailable)?
        .ok_or(ApiError::NotFound)?;
    Ok(Perms::parse_stored(&u.permissions).unwrap_or_default())
}

pub(super) async fn delete_users(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    let l = local(&st)?;
    let id = caller(&st, &headers).await?;
    need(&id, Perm::Admin)?;
    let theirs = target_perms(l, &user).await?;
    if theirs.allows(Perm::Admin) {
        need(&id, Perm::Super)?;
    }
    if user == id.user_id {
        return Err(ApiError::BadRequest("you cannot delete yourself"));
    }
    l.store()
        .delete_subject(&user, chrono::Utc::now())
        .await
        .map_err(|_| ApiError::Unavailable)?;
    st.control.as_ref().inspect(|c| c.publish_subject(&user));
    audit(&st, "auth.user_delete", &id, json!({ "user": user }));
    Ok(Json(json!({ "username": user, "deleted": true })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionsBody {
    permissions: Vec<String>,
}

pub(super) async fn post_user_permissions(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(user): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let l = local(&st)?;
    let id = caller(&st, &headers).await?;
    need(&id, Perm::Admin)?;
    let b: PermissionsBody = json_body(body).await?;
    let perms = parse_perms(&b.permissions)?;
    may_grant(&id, perms)?;
    let theirs = target_perms(l, &user).await?;
    if theirs.allows(Perm::Admin) {
        need(&id, Perm::Super)?;
    }
    // SUPER is root's alone (SPEC §10): never granted to another user, never taken from
    // root, so the hub cannot lose its one superuser by a request.
    if perms.contains(Perm::Super) != theirs.contains(Perm::Super) {
        return Err(ApiError::BadRequest(
            "SUPER belongs to root alone: it is neither granted nor removed",
        ));
    }
    l.store()
        .set_local_permissions(&user, &perms.stored())
        .await
        .map_err(|_| ApiError::Unavailable)?;
    st.control.as_ref().inspect(|c| c.publish_subject(&user));
    audit(
        &st,
        "auth.user_permissions",
        &id,
        json!({ "user": user, "permissions": perms.names() }),
    );
    if perms.allows(Perm::Admin) {
        l.after_admin_created().await;
    }
    Ok(Json(json!({ "username": user, "permissions": perms.names() })).into_response())
}

/// `POST /auth/keys/rotate` (SUPER): a new signing key; the old one verifies until its
/// last token expires.
pub(super) async fn post_keys_rotate(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let l = local(&st)?;
    let id = caller(&st, &headers).await?;
    need(&id, Perm::Super)?;
    let kid = l.rotate_keys().await.map_err(|_| ApiError::Unavailable)?;
    audit(&st, "auth.keys_rotate", &id, json!({ "kid": kid }));
    Ok(Json(json!({ "kid": kid })).into_response())
}
