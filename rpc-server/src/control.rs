//! The control plane: minting, listing and revoking tokens, granting zones, managing
//! zones, and hub status. The admin RPC methods and the CLI's local mode both call this,
//! so the same request gives the same result and the same invalidations either way.

use crate::auth::{Invalidation, InvalidationBus, PlainToken, TokenHasher};
use crate::db::{NewToken, Store, StoreError, TokenRecord};
use chrono::{DateTime, SecondsFormat, Utc};
use nexus_wire::methods::*;
use nexus_wire::spec::{
    self, RateTier, SubjectType, ZoneGrant, parse_zone_glob, parse_zone_spec, validate_token_name,
    validate_zone_name,
};
use nexus_wire::{ErrorCode, RpcError};
use std::sync::Arc;
use uuid::Uuid;

mod audit;
mod rebac;
mod subjects;

pub use rebac::{parse_object, parse_relation, parse_subject};

/// Who asks the control plane for something: for authorization and the audit trail.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `None` for the CLI working on the database directly.
    pub key_id: Option<Uuid>,
    /// The registered subject the caller's token is bound to.
    pub subject_id: Option<String>,
    pub is_admin: bool,
    /// The token and its subject, before groups.
    pub base: Vec<nexus_authz::model::SubjectRef>,
    /// The token's zones (its ceiling); empty when it lists none.
    pub zones: Vec<ZoneGrant>,
}

impl Caller {
    /// The operator at the database (the CLI without `--remote`): an administrator.
    pub fn local() -> Self {
        Self {
            key_id: None,
            subject_id: None,
            is_admin: true,
            base: Vec::new(),
            zones: Vec::new(),
        }
    }

    pub fn from_identity(id: &crate::auth::Identity) -> Self {
        Self {
            key_id: Some(id.key_id),
            subject_id: id.subject.as_ref().map(|s| s.id.clone()),
            is_admin: id.is_admin,
            base: crate::auth::grants::base_subjects(id),
            zones: id.zones.clone(),
        }
    }

    /// What the tuples this caller writes record as their author.
    pub fn created_by(&self) -> String {
        match self.key_id {
            Some(k) => format!("key:{k}"),
            None => "local".into(),
        }
    }
}

/// Failures an operator can act on. The CLI maps these to exit codes, the RPC layer to
/// JSON-RPC errors.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Ambiguous {
        message: String,
        matches: Vec<TokenInfo>,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("database unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DuplicateName(n) => {
                Self::Conflict(format!("an active token named {n:?} already exists"))
            }
            StoreError::ZoneExists(z) => Self::Conflict(format!("zone {z:?} already exists")),
            StoreError::ZoneDeleted(z) => Self::Conflict(format!(
                "zone {z:?} was deleted; its tokens and files still exist: bring it back with `nexus hub zone restore {z}`, or pick another name"
            )),
            StoreError::ZoneNotActive(z) => Self::NotFound(format!(
                "zone {z:?} does not exist (create it with: nexus hub zone create {z})"
            )),
            StoreError::NotFound => Self::NotFound("not found".into()),
            StoreError::Invalid(m) => Self::Invalid(m),
            StoreError::SubjectExists(id) => {
                Self::Conflict(format!("a subject named {id:?} already exists"))
            }
            StoreError::TupleExists(t) => Self::Conflict(format!("tuple already exists: {t}")),
            e @ (StoreError::TooManyGroups | StoreError::TooManyTuples) => {
                Self::Invalid(e.to_string())
            }
            e if e.is_unavailable() => Self::Unavailable,
            e if e.is_missing_schema() => Self::Invalid(
                "the database has no Nexus schema yet: run `nexus hub migrate`".into(),
            ),
            e => {
                tracing::error!(error = %e, "store operation failed");
                Self::Internal
            }
        }
    }
}

impl From<spec::SpecError> for ControlError {
    fn from(e: spec::SpecError) -> Self {
        Self::Invalid(e.0)
    }
}

impl From<ControlError> for RpcError {
    fn from(e: ControlError) -> Self {
        let reason = |r: &str| Some(serde_json::json!({ "reason": r }));
        match e {
            ControlError::Invalid(m) => RpcError::invalid_params(m),
            ControlError::NotFound(m) => RpcError {
                data: reason("not_found"),
                ..RpcError::invalid_params(m)
            },
            ControlError::Ambiguous { message, matches } => RpcError {
                data: Some(serde_json::json!({ "reason": "ambiguous", "matches": matches })),
                ..RpcError::invalid_params(message)
            },
            ControlError::Conflict(m) => RpcError {
                data: reason("conflict"),
                ..RpcError::new(ErrorCode::FileExists, m)
            },
            ControlError::PermissionDenied(m) => RpcError::permission_denied(m),
            ControlError::Unavailable => {
                RpcError::unavailable("database unavailable; retry shortly")
            }
            ControlError::Internal => RpcError::internal(),
        }
    }
}

/// A malformed argument, in the words of the parser that refused it.
fn invalid(e: impl std::fmt::Display) -> ControlError {
    ControlError::Invalid(e.to_string())
}

/// A change to an active zone that found none is the caller's `NotFound`.
fn not_active_zone(name: &str, e: StoreError) -> ControlError {
    match e {
        StoreError::NotFound => ControlError::NotFound(format!("no active zone named {name:?}")),
        e => e.into(),
    }
}

fn zone_mode(access: &str) -> Result<nexus_authz::ZoneMode, ControlError> {
    access.parse().map_err(|_| {
        ControlError::Invalid(format!(
            "zone access mode must be open or rebac, got {:?}",
            nexus_wire::jsonrpc::printable(access)
        ))
    })
}

/// The deadline an expiry such as `30d` sets from `now`; `None` when there is no expiry.
fn expires_at(
    now: DateTime<Utc>,
    expiry: Option<&str>,
) -> Result<Option<DateTime<Utc>>, ControlError> {
    let Some(e) = expiry else {
        return Ok(None);
    };
    let d = chrono::Duration::from_std(spec::parse_expiry(e)?)
        .map_err(|_| ControlError::Invalid("duration too long".into()))?;
    Ok(Some(now + d))
}

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Shape of a stored token for listings: never the token, never the digest.
pub fn token_info(r: &TokenRecord, now: DateTime<Utc>) -> TokenInfo {
    let status = if r.revoked_at.is_some() {
        "revoked"
    } else if r.expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    };
    TokenInfo {
        key_id: r.key_id.to_string(),
        name: r.name.clone(),
        user_id: r.user_id.clone(),
        subject_type: r.subject_type,
        admin: r.is_admin,
        zones: r.zones.clone(),
        created_at: ts(r.created_at),
        expires_at: r.expires_at.map(ts),
        revoked_at: r.revoked_at.map(ts),
        last_used_at: r.last_used_at.map(ts),
        rate_limit: r.rate_limit.clone(),
        status: status.into(),
        kind: (r.kind != "key").then(|| r.kind.clone()),
        oauth_client: r.oauth_client_id.clone(),
        oauth_client_name: None,
    }
}

#[derive(Debug, Clone)]
pub struct Control {
    store: Store,
    /// Needed only to mint; listing and revoking work without the secret.
    hasher: Option<Arc<TokenHasher>>,
    bus: Arc<InvalidationBus>,
    endpoint: Option<String>,
    /// Queue of `admin.*`/`rebac.*` audit lines to publish on Redis besides the log.
    audit_redis: Option<tokio::sync::mpsc::Sender<String>>,
}

impl Control {
    pub fn new(
        store: Store,
        hasher: Arc<TokenHasher>,
        bus: Arc<InvalidationBus>,
        endpoint: Option<String>,
    ) -> Self {
        Self {
            store,
            hasher: Some(hasher),
            bus,
            endpoint,
            audit_redis: None,
        }
    }

    /// A control plane that can do everything but mint (no server secret at hand).
    pub fn without_secret(
        store: Store,
        bus: Arc<InvalidationBus>,
        endpoint: Option<String>,
    ) -> Self {
        Self {
            store,
            hasher: None,
            bus,
            endpoint,
            audit_redis: None,
        }
    }

    /// Also publishes audit events on Redis (`nexus:audit:admin`), in order, from one
    /// background task. Call within a Tokio runtime.
    pub fn with_audit_redis(mut self, url: &str) -> Self {
        match redis::Client::open(url) {
            Ok(c) => self.audit_redis = Some(audit::start_publisher(c)),
            Err(_) => tracing::warn!("invalid Redis URL: audit events go to the log only"),
        }
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Tells every cache here and elsewhere that a subject changed (the database also
    /// announces it; this is the immediate local half).
    pub fn publish_subject(&self, subject_id: &str) {
        self.bus.publish(Invalidation::Subject {
            subject_id: subject_id.to_owned(),
        });
    }

    /// Tells every cache here and elsewhere that these tokens were revoked (the database
    /// also announces it; this is the immediate local half).
    pub fn publish_tokens(&self, key_ids: &[Uuid]) {
        for k in key_ids {
            self.bus.publish(Invalidation::Token { key_id: *k });
        }
    }

    /// Mints a token. The raw token is in the result and nowhere else.
    pub async fn create_token(&self, p: TokenCreateParams) -> Result<TokenCreated, ControlError> {
        validate_token_name(&p.name)?;
        let Some(hasher) = &self.hasher else {
            return Err(ControlError::Invalid(
                "NEXUS_API_KEY_SECRET is not set: it is needed to mint tokens".into(),
            ));
        };
        let chosen = [p.zones.is_some(), p.zones_glob.is_some(), p.zone.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if chosen > 1 {
            return Err(ControlError::Invalid(
                "use only one of --zones, --zones-glob and --zone".into(),
            ));
        }
        let mut zones: Vec<ZoneGrant> = if let Some(spec) = &p.zones {
            parse_zone_spec(spec)?
        } else if let Some(z) = &p.zone {
            parse_zone_spec(z)?
        } else if let Some(g) = &p.zones_glob {
            let (glob, permission) = parse_zone_glob(g)?;
            let matcher = globset::Glob::new(&glob)
                .map_err(|e| ControlError::Invalid(format!("invalid zone glob: {}", e.kind())))?
                .compile_matcher();
            let found: Vec<ZoneGrant> = self
                .store
                .active_zones()
                .await?
                .into_iter()
                .filter(|z| matcher.is_match(z))
                .map(|zone_id| ZoneGrant {
                    zone_id,
                    permission,
                })
                .collect();
            if found.is_empty() {
                return Err(ControlError::NotFound(format!(
                    "no active zone matches {glob:?}"
                )));
            }
            found
        } else {
            Vec::new()
        };
        if zones.is_empty() && !p.admin {
            return Err(ControlError::Invalid(
                "a token needs zones: use --zones eng:rw,ops:r, --zones-glob 'team-*' or --zone Z (or --admin)".into(),
            ));
        }
        zones.sort_by(|a, b| a.zone_id.cmp(&b.zone_id));
        let user_id = p.user_id.clone().unwrap_or_else(|| p.name.clone());
        if user_id.is_empty() || user_id.len() > 256 || user_id.chars().any(char::is_control) {
            return Err(ControlError::Invalid(
                "user id must be 1-256 printable characters".into(),
            ));
        }
        let rate_limit = p
            .rate_limit
            .as_deref()
            .map(str::parse::<RateTier>)
            .transpose()?
            .map(|r| r.to_string());
        let now = Utc::now();
        let expires_at = expires_at(now, p.expires.as_deref())?;
        let token = PlainToken::generate();
        let new = NewToken {
            key_id: Uuid::new_v4(),
            digest: hasher.digest(token.expose()).0,
            name: p.name.clone(),
            user_id: user_id.clone(),
            subject_type: p.subject_type.unwrap_or(SubjectType::User),
            is_admin: p.admin,
            rate_limit: rate_limit.clone(),
            created_at: now,
            expires_at,
            zones: zones.clone(),
            permissions: None,
            oauth: None,
        };
        self.store.insert_token(&new).await?;
        tracing::info!(key_id = %new.key_id, name = %new.name, admin = new.is_admin, "token created");
        Ok(TokenCreated {
            key_id: new.key_id.to_string(),
            token: token.expose().to_owned(),
            name: new.name,
            admin: new.is_admin,
            zones,
            user_id,
            subject_type: new.subject_type,
            created_at: ts(now),
            expires_at: expires_at.map(ts),
            rate_limit,
        })
    }

    pub async fn list_tokens(&self, show_revoked: bool) -> Result<Vec<TokenInfo>, ControlError> {
        let now = Utc::now();
        let mut tokens: Vec<TokenInfo> = self
            .store
            .list_tokens(show_revoked)
            .await?
            .iter()
            .map(|r| token_info(r, now))
            .collect();
        if tokens.iter().any(|t| t.oauth_client.is_some()) {
            // Client ids are random (`dcr-…`): the name it registered is what a person knows.
            let clients = self.store.oauth_clients(now).await?;
            for t in &mut tokens {
                t.oauth_client_name = t.oauth_client.as_ref().and_then(|id| {
                    clients
                        .iter()
                        .find(|(c, _)| c.client_id == *id)
                        .map(|(c, _)| c.client_name.clone())
                });
            }
        }
        Ok(tokens)
    }

    /// Every MCP client the OAuth server knows, oldest first, with its live token count.
    pub async fn list_oauth_clients(&self) -> Result<Vec<OAuthClientInfo>, ControlError> {
        let now = Utc::now();
        Ok(self
            .store
            .oauth_clients(now)
            .await?
            .into_iter()
            .map(|(c, live)| OAuthClientInfo {
                redirect_uris: c.redirect_uri_list(),
                status: if c.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                }
                .into(),
                active_tokens: live,
                created_at: ts(c.created_at),
                client_id: c.client_id,
                kind: c.kind,
                client_name: c.client_name,
            })
            .collect())
    }

    /// Revokes a client: its access tokens (on every node, through the announcements), its
    /// refresh tokens, and any later sign-in through it.
    pub async fn revoke_oauth_client(
        &self,
        caller: &Caller,
        client_id: &str,
    ) -> Result<OAuthClientRevoked, ControlError> {
        let now = Utc::now();
        // A Client ID Metadata Document's URL not seen yet is blocked ahead of its first use
        // (a revoked row first, so that a fetch meanwhile cannot make it live).
        let blocked = client_id.starts_with("https://")
            && self.store.oauth_block_client(client_id, now).await?;
        let revoked = match self.store.oauth_revoke_client(client_id, now).await {
            Ok(k) => k,
            Err(StoreError::NotFound) => {
                return Err(ControlError::NotFound(format!(
                    "no OAuth client {:?}",
                    nexus_wire::jsonrpc::printable(client_id)
                )));
            }
            Err(e) => return Err(e.into()),
        };
        self.publish_tokens(&revoked);
        self.audit(
            "admin.oauth_client.revoke",
            caller,
            serde_json::json!({ "client_id": client_id, "revoked_tokens": revoked.len(), "blocked_before_use": blocked }),
        );
        Ok(OAuthClientRevoked {
            client_id: client_id.to_owned(),
            revoked: true,
            revoked_tokens: revoked.len(),
        })
    }

    /// Finds the one non-revoked token an operator means: by name, key id, or a key id
    /// prefix of at least 8 hex digits.
    pub async fn find_token(&self, identifier: &str) -> Result<TokenRecord, ControlError> {
        let ident = identifier.trim();
        if ident.is_empty() {
            return Err(ControlError::Invalid("token identifier is empty".into()));
        }
        let lowered = ident.to_ascii_lowercase();
        let hexish =
            lowered.len() >= 8 && lowered.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        let all = self.store.list_tokens(false).await?;
        let mut matches: Vec<TokenRecord> = all
            .into_iter()
            .filter(|r| r.name == ident || (hexish && r.key_id.to_string().starts_with(&lowered)))
            .collect();
        match matches.len() {
            0 => Err(ControlError::NotFound(format!(
                "no active token matches {:?}",
                nexus_wire::jsonrpc::printable(ident)
            ))),
            1 => Ok(matches.remove(0)),
            n => {
                let now = Utc::now();
                Err(ControlError::Ambiguous {
                    message: format!(
                        "{n} tokens match {:?}; use the full key_id",
                        nexus_wire::jsonrpc::printable(ident)
                    ),
                    matches: matches.iter().map(|r| token_info(r, now)).collect(),
                })
            }
        }
    }

    pub async fn revoke_token(&self, identifier: &str) -> Result<TokenInfo, ControlError> {
        let rec = self.find_token(identifier).await?;
        let now = Utc::now();
        self.store.revoke_token(rec.key_id, now).await?;
        self.bus.publish(Invalidation::Token { key_id: rec.key_id });
        if rec.kind == "oauth" {
            // The client would refresh its way back in: its grant ends with the token.
            let more = self
                .store
                .oauth_revoke_grant_of_token(rec.key_id, now)
                .await?;
            self.publish_tokens(&more);
        }
        tracing::info!(key_id = %rec.key_id, name = %rec.name, "token revoked");
        let mut rec = rec;
        rec.revoked_at = Some(now);
        Ok(token_info(&rec, now))
    }

    pub async fn add_token_zones(
        &self,
        identifier: &str,
        spec: &str,
    ) -> Result<TokenInfo, ControlError> {
        let grants = parse_zone_spec(spec)?;
        let rec = self.find_token(identifier).await?;
        self.store.upsert_token_zones(rec.key_id, &grants).await?;
        self.bus.publish(Invalidation::Token { key_id: rec.key_id });
        self.show_token(&rec.key_id.to_string()).await
    }

    pub async fn remove_token_zones(
        &self,
        identifier: &str,
        zones: &[String],
    ) -> Result<TokenInfo, ControlError> {
        for z in zones {
            validate_zone_name(z)?;
        }
        let rec = self.find_token(identifier).await?;
        let remaining = rec
            .zones
            .iter()
            .filter(|g| !zones.contains(&g.zone_id))
            .count();
        if remaining == 0 && !rec.is_admin {
            return Err(ControlError::Invalid(format!(
                "token {:?} would hold no zone; revoke it instead",
                rec.name
            )));
        }
        let n = self.store.remove_token_zones(rec.key_id, zones).await?;
        if n == 0 {
            return Err(ControlError::NotFound(format!(
                "token {:?} holds none of those zones",
                rec.name
            )));
        }
        self.bus.publish(Invalidation::Token { key_id: rec.key_id });
        self.show_token(&rec.key_id.to_string()).await
    }

    pub async fn show_token(&self, identifier: &str) -> Result<TokenInfo, ControlError> {
        let rec = self.find_token(identifier).await?;
        Ok(token_info(&rec, Utc::now()))
    }

    pub async fn create_zone(&self, name: &str) -> Result<ZoneInfo, ControlError> {
        self.create_zone_with_access(name, "open").await
    }

    /// Creates a zone in access mode `open` or `rebac` (SPEC §9).
    pub async fn create_zone_with_access(
        &self,
        name: &str,
        access: &str,
    ) -> Result<ZoneInfo, ControlError> {
        validate_zone_name(name)?;
        let mode = zone_mode(access)?;
        self.store
            .create_zone_with_access(name, mode.as_str(), Utc::now())
            .await?;
        // Zoneless admins must see the new zone.
        self.zone_changed(name);
        self.zone(name).await
    }

    /// Changes an active zone's access mode; every server drops what it cached about the
    /// zone.
    pub async fn set_zone_access(
        &self,
        name: &str,
        access: &str,
    ) -> Result<ZoneInfo, ControlError> {
        validate_zone_name(name)?;
        let mode = zone_mode(access)?;
        self.store
            .set_zone_access(name, mode.as_str())
            .await
            .map_err(|e| not_active_zone(name, e))?;
        self.zone_changed(name);
        tracing::info!(zone = %name, access = %mode, "zone access mode set");
        self.zone(name).await
    }

    /// Brings a deleted zone back with its files and grants; says how many tokens regain
    /// access.
    pub async fn restore_zone(&self, name: &str) -> Result<ZoneRestored, ControlError> {
        validate_zone_name(name)?;
        let regained = self
            .store
            .restore_zone(name, Utc::now())
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ControlError::NotFound(format!("no zone named {name:?}")),
                StoreError::ZoneExists(_) => {
                    ControlError::Conflict(format!("zone {name:?} is active, not deleted"))
                }
                e => e.into(),
            })?;
        // Refusals cached for tokens holding the zone are stale now.
        self.zone_changed(name);
        Ok(ZoneRestored {
            zone: self.zone(name).await?,
            tokens_regaining_access: regained,
        })
    }

    pub async fn list_zones(&self, show_deleted: bool) -> Result<Vec<ZoneInfo>, ControlError> {
        Ok(self
            .store
            .list_zones(show_deleted)
            .await?
            .into_iter()
            .map(|z| ZoneInfo {
                status: if z.deleted_at.is_some() {
                    "deleted"
                } else {
                    "active"
                }
                .into(),
                zone_id: z.zone_id,
                created_at: ts(z.created_at),
                deleted_at: z.deleted_at.map(ts),
                tokens: z.tokens.max(0) as u64,
                access_mode: z.access_mode,
            })
            .collect())
    }

    /// Every server drops what it cached about the zone (refusals and zone lists included).
    fn zone_changed(&self, name: &str) {
        self.bus.publish(Invalidation::Zone {
            zone_id: name.to_owned(),
        });
    }

    async fn zone(&self, name: &str) -> Result<ZoneInfo, ControlError> {
        self.list_zones(true)
            .await?
            .into_iter()
            .find(|z| z.zone_id == name)
            .ok_or_else(|| ControlError::NotFound(format!("zone {name:?} not found")))
    }

    /// Soft-deletes a zone; every token holding it is refused from now on.
    pub async fn delete_zone(&self, name: &str) -> Result<ZoneInfo, ControlError> {
        validate_zone_name(name)?;
        self.store
            .delete_zone(name, Utc::now())
            .await
            .map_err(|e| not_active_zone(name, e))?;
        self.zone_changed(name);
        self.zone(name).await
    }

    /// Ok when the database answers and has the schema; otherwise the reason.
    pub async fn check_database(&self) -> Result<(), ControlError> {
        self.store
            .list_zones(false)
            .await
            .map(drop)
            .map_err(Into::into)
    }

    /// key id → name of every token, for labelling traffic figures.
    pub async fn token_names(&self) -> std::collections::HashMap<String, String> {
        self.store
            .list_tokens(true)
            .await
            .map(|all| {
                all.into_iter()
                    .map(|r| (r.key_id.to_string(), r.name))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Status as the store sees it. Redis and traffic figures are filled by the caller.
    pub async fn status(&self) -> HubStatus {
        let backend = self.store.backend();
        let tokens = self.store.list_tokens(true).await;
        let zones = self.store.active_zones().await;
        let db_ok = tokens.is_ok() && zones.is_ok();
        let now = Utc::now();
        let counts = tokens.ok().map(|all| {
            let mut c = TokenCounts::default();
            for r in &all {
                match token_info(r, now).status.as_str() {
                    "revoked" => c.revoked += 1,
                    "expired" => c.expired += 1,
                    _ => c.active += 1,
                }
            }
            c
        });
        let health = if db_ok { "ok" } else { "err" };
        HubStatus {
            endpoint: self.endpoint.clone(),
            profile: match backend {
                crate::db::Backend::Postgres => "hub".into(),
                crate::db::Backend::Sqlite => "embedded".into(),
            },
            postgres: match backend {
                crate::db::Backend::Postgres => health.into(),
                crate::db::Backend::Sqlite => "n/a".into(),
            },
            database: health.into(),
            redis: "n/a".into(),
            tokens: counts,
            zones: zones.ok().map(|z| z.len() as u64),
            connections: None,
            qps_5m: None,
            detail: None,
            subjects: None,
            tuples: None,
            bus: None,
            nodes: None,
        }
    }

    /// Adds the subject and tuple counts `status --detail` shows; left out when the
    /// database cannot say.
    pub async fn fill_rebac_counts(&self, s: &mut HubStatus) {
        if let Ok((subjects, tuples)) = self.store.rebac_counts().await {
            s.subjects = Some(subjects);
            s.tuples = Some(tuples);
        }
    }
}
