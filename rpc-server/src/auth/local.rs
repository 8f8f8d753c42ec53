//! The local provider (SPEC §10): users with passwords log in and receive the hub's own
//! short-lived EdDSA JWTs plus a rotating refresh token; the JWT is then verified here.
//!
//! Verification: signature by `kid` against the public keys from the database (cached,
//! re-read on an unknown kid at most once a second), then the session (`jti`) through the
//! shared [`IdentityCache`] keyed by the token's digest, so a logout, a reused refresh
//! token or a disabled user refuses the token everywhere at once (the session row's
//! change is announced by the database like a key revoke; the identity's key id is the
//! jti). Passwords are hashed off the async threads, two at a time at most: an argon2id
//! hash takes 19 MiB and tens of milliseconds, and the host has two cores.

use super::cache::Cached;
use super::identity::{BoundSubject, Credential};
use super::{
    AuthError, AuthFuture, AuthProvider, Identity, IdentityCache, Invalidation, InvalidationBus,
    Refusal, TokenHasher,
};
use crate::db::{NewLocalUser, RefreshUse, SigningKeyRecord, Store, StoreError};
use crate::metrics::Metrics;
use base64::Engine as _;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use nexus_providers::login_token::{self, Claims, KeySet, Signer};
use nexus_providers::password::{self, Verified};
use nexus_providers::permissions::{Perm, Perms};
use nexus_wire::spec::{SubjectType, parse_zone_spec};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use secrecy::{ExposeSecret, SecretString};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// A refresh family lives this long from its login, however often it is rotated.
pub const FAMILY_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default login-token lifetime (`NEXUS_JWT_TTL`).
pub const DEFAULT_JWT_TTL: Duration = Duration::from_secs(3600);
/// Password hashes computed at once; more wait.
const HASHING_CONCURRENCY: usize = 2;
/// Prefix of refresh tokens, so one is never mistaken for an API key.
const REFRESH_PREFIX: &str = "rt-";
/// How long a key retired by a process that does not know the servers' token lifetime
/// (`nexus hub keys rotate`) keeps verifying: the longest lifetime [`parse_ttl`] allows,
/// plus a minute for clock skew. Longer than needed is harmless; shorter would cut off
/// live tokens.
pub const OFFLINE_RETIREMENT: Duration = Duration::from_secs(24 * 3600 + 60);

/// The local provider's settings (SPEC §10 environment).
#[derive(Debug, Clone)]
pub struct LocalSettings {
    pub root_username: String,
    /// `NEXUS_ROOT_PASSWORD`; unset: a random one is generated on first start.
    pub root_password: Option<SecretString>,
    pub root_enabled: bool,
    pub disable_root_after_setup: bool,
    /// `NEXUS_JWT_TTL`, else `local.jwt_ttl`, else one hour.
    pub jwt_ttl: Option<Duration>,
    /// Print a generated root password on stderr (nexusd); `nexus hub up` shows it itself,
    /// beside the admin token, and keeps it in `admin.env`.
    pub print_generated_password: bool,
}

impl Default for LocalSettings {
    fn default() -> Self {
        Self {
            root_username: "root".into(),
            root_password: None,
            root_enabled: true,
            disable_root_after_setup: false,
            jwt_ttl: None,
            print_generated_password: true,
        }
    }
}

impl LocalSettings {
    /// Reads `NEXUS_ROOT_*`, `NEXUS_DISABLE_ROOT_AFTER_SETUP` and `NEXUS_JWT_TTL`.
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let flag = |k: &str, default: bool| -> anyhow::Result<bool> {
            match var(k).as_deref().map(str::trim) {
                None => Ok(default),
                Some("1" | "true" | "yes" | "on") => Ok(true),
                Some("0" | "false" | "no" | "off") => Ok(false),
                Some(other) => anyhow::bail!("{k} must be true or false, got {other:?}"),
            }
        };
        let jwt_ttl = var("NEXUS_JWT_TTL")
            .map(|v| parse_ttl(&v))
            .transpose()
            .map_err(|e| anyhow::anyhow!("NEXUS_JWT_TTL: {e}"))?;
        Ok(Self {
            root_username: var("NEXUS_ROOT_USERNAME").unwrap_or_else(|| "root".into()),
            root_password: var("NEXUS_ROOT_PASSWORD").map(SecretString::from),
            root_enabled: flag("NEXUS_ROOT_ENABLED", true)?,
            disable_root_after_setup: flag("NEXUS_DISABLE_ROOT_AFTER_SETUP", false)?,
            jwt_ttl,
            print_generated_password: true,
        })
    }
}

/// `15m`, `1h`: between one minute and one day.
pub fn parse_ttl(v: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(v.trim()).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(60) || d > Duration::from_secs(24 * 3600) {
        return Err("must be between 1m and 24h".into());
    }
    Ok(d)
}

/// Why a login, refresh or admin operation failed, for the routes to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalError {
    /// Wrong credentials of any kind: always the same 401.
    #[error("invalid credentials")]
    Refused,
    #[error("{0}")]
    BadInput(&'static str),
    #[error("unavailable")]
    Unavailable,
}

impl From<StoreError> for LocalError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "local auth store operation failed");
        Self::Unavailable
    }
}

/// A login's answer (seed `002`'s shape).
#[derive(Debug, serde::Serialize)]
pub struct Issued {
    pub token: String,
    pub token_type: &'static str,
    pub expires_at: String,
    pub refresh_token: String,
}

/// Seals private signing keys at rest under a key derived from the server secret.
struct Seal(LessSafeKey);

impl Seal {
    fn new(hasher: &TokenHasher) -> anyhow::Result<Self> {
        let k = hasher.subkey("nexus-hub/signing-key-seal/v1");
        let key = UnboundKey::new(&CHACHA20_POLY1305, k.expose_secret())
            .map_err(|_| anyhow::anyhow!("cannot make the signing-key seal"))?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// nonce || ciphertext+tag, bound to the kid.
    fn seal(&self, kid: &str, secret: &[u8; 32]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce)?;
        let mut buf = secret.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut buf,
            )
            .map_err(|_| anyhow::anyhow!("cannot seal the signing key"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    fn open(&self, kid: &str, sealed: &[u8]) -> Option<[u8; 32]> {
        let (nonce, ct) = sealed.split_at_checked(12)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = ct.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buf)
            .ok()?;
        plain.try_into().ok()
    }
}

pub struct LocalAuth {
    store: Store,
    hasher: Arc<TokenHasher>,
    cache: Arc<IdentityCache>,
    bus: Arc<InvalidationBus>,
    metrics: Metrics,
    issuer: String,
    ttl: Duration,
    seal: Seal,
    keys: RwLock<KeySet>,
    signer: RwLock<Option<Arc<Signer>>>,
    /// When the key set was last read, to bound re-reads on unknown kids.
    keys_read: tokio::sync::Mutex<Option<tokio::time::Instant>>,
    hashing: Semaphore,
    pub(crate) throttle: crate::routes::LoginThrottle,
    settings: LocalSettings,
    /// The root password generated at this start, until the embedder takes it.
    generated_root_password: std::sync::Mutex<Option<SecretString>>,
}

impl std::fmt::Debug for LocalAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAuth")
            .field("issuer", &self.issuer)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn ts(t: DateTime<Utc>) -> String {
    crate::control::ts(t)
}

impl LocalAuth {
    pub fn new(
        store: Store,
        hasher: Arc<TokenHasher>,
        cache: Arc<IdentityCache>,
        bus: Arc<InvalidationBus>,
        metrics: Metrics,
        issuer: String,
        settings: LocalSettings,
    ) -> anyhow::Result<Self> {
        let ttl = settings.jwt_ttl.unwrap_or(DEFAULT_JWT_TTL);
        Ok(Self {
            seal: Seal::new(&hasher)?,
            store,
            hasher,
            cache,
            bus,
            metrics,
            issuer,
            ttl,
            keys: RwLock::default(),
            signer: RwLock::default(),
            keys_read: tokio::sync::Mutex::new(None),
            hashing: Semaphore::new(HASHING_CONCURRENCY),
            throttle: Default::default(),
            settings,
            generated_root_password: std::sync::Mutex::new(None),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The root password generated at this start (first start, no `NEXUS_ROOT_PASSWORD`),
    /// once: `nexus hub up` shows it and keeps it in `admin.env`.
    pub fn take_generated_root_password(&self) -> Option<SecretString> {
        self.generated_root_password
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs password work off the async threads, at most two at once.
    async fn hashing<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, LocalError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| LocalError::Unavailable)?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| LocalError::Unavailable)
    }

    /// A PHC argon2id hash of a new password.
    pub async fn hash_password(&self, pw: String) -> Result<String, LocalError> {
        password::check_password(&pw)
            .map_err(|_| LocalError::BadInput("password must be 1-1024 bytes"))?;
        self.hashing(move || password::hash(&pw))
            .await?
            .map_err(|_| LocalError::Unavailable)
    }

    // ---- keys ----

    /// Makes the first signing key when there is none, and loads the key set.
    pub async fn ensure_keys(&self) -> anyhow::Result<()> {
        if self.store.active_signing_key().await?.is_none() {
            let k = self.new_key()?;
            self.store.rotate_signing_key(&k, Utc::now(), true).await?;
        }
        self.reload_keys().await?;
        Ok(())
    }

    fn new_key(&self) -> anyhow::Result<SigningKeyRecord> {
        new_key(&self.seal)
    }

    /// A new active key; the old one verifies until its last token can have expired.
    pub async fn rotate_keys(&self) -> anyhow::Result<String> {
        let k = self.new_key()?;
        let until = Utc::now() + ChronoDuration::from_std(self.ttl)? + ChronoDuration::seconds(60);
        self.store.rotate_signing_key(&k, until, false).await?;
        self.reload_keys().await?;
        Ok(k.kid)
    }

    async fn reload_keys(&self) -> Result<(), StoreError> {
        let rows = self.store.signing_keys(Utc::now(), false).await?;
        let mut set = KeySet::default();
        let mut signer = None;
        for r in &rows {
            let Ok(public) = <[u8; 32]>::try_from(r.public_key.as_slice()) else {
                continue;
            };
            set.insert(&r.kid, &public);
            if r.state == "active" {
                match self.seal.open(&r.kid, &r.private_key) {
                    Some(secret) => signer = Signer::from_seed(&r.kid, &secret).ok().map(Arc::new),
                    None => tracing::error!(
                        kid = %r.kid,
                        "cannot open the active signing key (was NEXUS_API_KEY_SECRET changed?); run `nexus hub keys rotate`"
                    ),
                }
            }
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = set;
        *self.signer.write().unwrap_or_else(|e| e.into_inner()) = signer;
        *self.keys_read.lock().await = Some(tokio::time::Instant::now());
        Ok(())
    }

    /// Signs with the database's active key: a key rotated by another process (`nexus hub
    /// keys rotate`, another nexusd) is used from the next login on. One indexed lookup of
    /// the kid, small next to what a login or refresh already costs.
    async fn follow_active_key(&self) -> Result<(), LocalError> {
        let active = self.store.active_signing_kid().await?;
        let current = self
            .signer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|s| s.kid().to_owned());
        if active.is_some() && active != current {
            self.reload_keys().await?;
        }
        Ok(())
    }

    /// Re-reads keys for an unknown kid, at most once a second (a flood of made-up kids
    /// costs one query a second).
    async fn reload_for_unknown_kid(&self) {
        let mut last = self.keys_read.lock().await;
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        *last = Some(tokio::time::Instant::now());
        drop(last);
        if let Err(e) = self.reload_keys().await {
            tracing::warn!(error = %e, "cannot re-read signing keys");
        }
    }

    // ---- login, refresh, logout ----

    /// Checks a username and password; the same work and answer for an unknown user, a
    /// wrong password and a disabled user.
    pub async fn login(&self, username: &str, pw: &str) -> Result<Issued, LocalError> {
        let user = self.check_password(username, pw).await?;
        let now = Utc::now();
        let family_end = now + ChronoDuration::from_std(FAMILY_LIFETIME).unwrap_or_default();
        self.issue(&user.username, Uuid::new_v4(), None, family_end, now)
            .await
    }

    /// The user whose password this is (the OAuth login page's check, and `login`'s):
    /// the same work and answer for an unknown user, a wrong password and a disabled user.
    pub async fn check_password(
        &self,
        username: &str,
        pw: &str,
    ) -> Result<crate::db::LocalUserRecord, LocalError> {
        check_username(username)?;
        if pw.is_empty() || pw.len() > password::MAX_PASSWORD_BYTES {
            return Err(LocalError::BadInput("password must be 1-1024 bytes"));
        }
        let user = self.store.find_local_user(username).await?;
        let pw_owned = pw.to_owned();
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let verdict = self
            .hashing(move || match stored {
                Some(h) => password::verify(&pw_owned, &h),
                None => {
                    password::dummy_work(&pw_owned);
                    Verified::No
                }
            })
            .await?;
        let Some(user) = user.filter(|u| verdict.ok() && u.disabled_at.is_none()) else {
            self.metrics
                .auth_results
                .with_label_values(&["login_refused"])
                .inc();
            return Err(LocalError::Refused);
        };
        if verdict == Verified::YesRehash {
            // Seed-style bcrypt (or old argon2 parameters): replaced now that we know it.
            let pw_owned = pw.to_owned();
            if let Ok(Ok(h)) = self.hashing(move || password::hash(&pw_owned)).await
                && let Err(e) = self
                    .store
                    .set_local_password(&user.username, &h, None)
                    .await
            {
                tracing::warn!(error = %e, "could not re-hash a password");
            }
        }
        self.metrics
            .auth_results
            .with_label_values(&["login_ok"])
            .inc();
        Ok(user)
    }

    async fn issue(
        &self,
        username: &str,
        family: Uuid,
        parent: Option<[u8; 32]>,
        family_end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Issued, LocalError> {
        self.follow_active_key().await?;
        let signer = self
            .signer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(LocalError::Unavailable)?;
        let jti = Uuid::new_v4();
        let exp = now + ChronoDuration::from_std(self.ttl).unwrap_or_default();
        let token = signer
            .sign(&Claims {
                iss: self.issuer.clone(),
                sub: username.to_owned(),
                aud: None,
                iat: now.timestamp(),
                exp: exp.timestamp(),
                jti: jti.to_string(),
            })
            .map_err(|_| LocalError::Unavailable)?;
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|_| LocalError::Unavailable)?;
        let refresh = format!(
            "{REFRESH_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        );
        let digest = self.hasher.digest(&refresh).0;
        self.store
            .insert_session(
                jti,
                username,
                family,
                now,
                exp,
                &digest,
                parent.as_ref(),
                family_end,
            )
            .await?;
        Ok(Issued {
            token,
            token_type: "Bearer",
            expires_at: ts(exp),
            refresh_token: refresh,
        })
    }

    /// Rotates a refresh token: a fresh one yields a new pair; one presented again
    /// revokes its whole family and every session it issued.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Issued, LocalError> {
        if refresh_token.len() > 256 || !refresh_token.starts_with(REFRESH_PREFIX) {
            return Err(LocalError::Refused);
        }
        let digest = self.hasher.digest(refresh_token).0;
        let now = Utc::now();
        match self.store.use_refresh(&digest, now).await? {
            RefreshUse::Fresh {
                family_id,
                username,
                family_expires_at,
            } => {
                let live = self
                    .store
                    .find_local_user(&username)
                    .await?
                    .is_some_and(|u| u.disabled_at.is_none());
                if !live {
                    return Err(LocalError::Refused);
                }
                self.issue(&username, family_id, Some(digest), family_expires_at, now)
                    .await
            }
            RefreshUse::Reused => {
                self.metrics
                    .auth_results
                    .with_label_values(&["refresh_reused"])
                    .inc();
                tracing::warn!(
                    "a rotated refresh token was presented again; its family is revoked"
                );
                Err(LocalError::Refused)
            }
            RefreshUse::Invalid => Err(LocalError::Refused),
        }
    }

    /// Ends the session of a verified login token and its refresh family.
    pub async fn logout(&self, id: &Identity) -> Result<(), LocalError> {
        if id.credential != Credential::Local {
            return Err(LocalError::BadInput("logout needs a login token"));
        }
        self.store.logout_session(id.key_id, Utc::now()).await?;
        // Here at once; other processes through the database's announcement.
        self.bus.publish(Invalidation::Token { key_id: id.key_id });
        Ok(())
    }

    // ---- users ----

    /// With `NEXUS_DISABLE_ROOT_AFTER_SETUP`, root is disabled once another admin exists.
    pub async fn after_admin_created(&self) {
        if !self.settings.disable_root_after_setup {
            return;
        }
        if let Err(e) = disable_root_if_other_admin(self, &self.settings.root_username).await {
            tracing::warn!(error = %e, "could not disable root after setup");
        }
    }

    /// Creates or (with `update`) replaces a user. `password_hash` is a PHC argon2id or
    /// `$2b$` bcrypt string.
    pub async fn put_user(
        &self,
        username: &str,
        password_hash: String,
        perms: Perms,
        zones: &str,
        update: bool,
    ) -> Result<bool, StoreError> {
        check_username(username).map_err(|_| StoreError::Invalid("invalid username".into()))?;
        upsert_user(&self.store, username, password_hash, perms, zones, update).await
    }

    // ---- verification ----

    async fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        let digest = self.hasher.digest(token);
        let now = Utc::now();
        if let Some(answer) = self.cache.answer(&digest, &self.metrics, now) {
            return answer;
        }
        let Some(kid) = login_token::peek_kid(token) else {
            return self.refuse(digest, Refusal::Malformed);
        };
        let known = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&kid);
        if !known {
            self.reload_for_unknown_kid().await;
        }
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        let claims = match login_token::verify(token, &keys, &self.issuer, None) {
            Ok(c) => c,
            Err(login_token::TokenError::Expired) => return self.refuse(digest, Refusal::Expired),
            Err(_) => return self.refuse(digest, Refusal::Unknown),
        };
        let Ok(jti) = Uuid::parse_str(&claims.jti) else {
            return self.refuse(digest, Refusal::Malformed);
        };
        let epoch = self.cache.epoch();
        let s = match self.store.find_session(jti).await {
            Ok(Some(s)) => s,
            Ok(None) => return self.refuse(digest, Refusal::Unknown),
            Err(e) if e.is_unavailable() => return Err(AuthError::Unavailable),
            Err(_) => return Err(AuthError::Unavailable),
        };
        if s.revoked_at.is_some() || s.disabled_at.is_some() || s.username != claims.sub {
            return self.refuse(digest, Refusal::Revoked);
        }
        let token_exp = DateTime::<Utc>::from_timestamp(claims.exp, 0).unwrap_or(now);
        let expires_at = token_exp.min(s.expires_at);
        if expires_at <= now {
            return self.refuse(digest, Refusal::Expired);
        }
        let perms = Perms::parse_stored(&s.permissions).unwrap_or_default();
        let mut zones = if s.zones.trim().is_empty() {
            Vec::new()
        } else {
            parse_zone_spec(&s.zones).unwrap_or_default()
        };
        zones.sort_by(|a, b| a.zone_id.cmp(&b.zone_id));
        let identity = Arc::new(Identity {
            key_id: jti,
            name: format!("login:{}", s.username),
            user_id: s.username.clone(),
            subject_type: SubjectType::User,
            is_admin: perms.allows(Perm::Admin),
            zones,
            expires_at: Some(expires_at),
            rate_limit: None,
            subject: Some(BoundSubject {
                id: s.username,
                kind: SubjectType::User,
                tenant: s.tenant_id,
            }),
            rebac: Default::default(),
            credential: Credential::Local,
            groups: Vec::new(),
            permissions: Some(perms),
        });
        self.cache.insert_valid(digest, identity.clone(), epoch);
        Ok(identity)
    }

    fn refuse(&self, digest: super::TokenDigest, r: Refusal) -> Result<Arc<Identity>, AuthError> {
        self.cache.insert_refused(digest, r);
        Err(AuthError::Refused(r))
    }
}

fn new_key(seal: &Seal) -> anyhow::Result<SigningKeyRecord> {
    let (kid, secret, public) = login_token::generate_key().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(SigningKeyRecord {
        private_key: seal.seal(&kid, &secret)?,
        kid,
        public_key: public.to_vec(),
        state: "active".into(),
        created_at: Utc::now(),
        not_after: None,
    })
}

/// `nexus hub keys rotate`, outside any server: a new active signing key sealed with the
/// server secret `hasher` holds; the previous key verifies for [`OFFLINE_RETIREMENT`].
/// Running servers sign with the new key from their next login on and verify it on first
/// sight (an unknown kid re-reads the keys). Unless `force`, refuses (changing nothing)
/// when this secret cannot open the active key: a key sealed with another secret than
/// the servers' would stop every login. Returns the new kid.
pub async fn rotate_stored_key(
    store: &Store,
    hasher: &TokenHasher,
    force: bool,
) -> anyhow::Result<String> {
    let seal = Seal::new(hasher)?;
    if !force
        && let Some(active) = store.active_signing_key().await?
        && seal.open(&active.kid, &active.private_key).is_none()
    {
        anyhow::bail!(
            "this NEXUS_API_KEY_SECRET cannot open the active signing key {:?}: it is not the servers' secret. \
             Use the servers' secret, or --force if the old secret is lost (the new key is then sealed with this one, \
             which the servers must use too)",
            active.kid
        );
    }
    let k = new_key(&seal)?;
    let until = Utc::now() + ChronoDuration::from_std(OFFLINE_RETIREMENT)?;
    store.rotate_signing_key(&k, until, false).await?;
    Ok(k.kid)
}

/// `nexus admin set-password`, outside any server: the same argon2id hash as the
/// server's, made off the async threads; the user's sessions and refresh tokens are
/// revoked with it (a password change ends every login, as for root's). Unknown users
/// are `StoreError::NotFound`; a bad length is `StoreError::Invalid`.
pub async fn change_password(
    store: &Store,
    username: &str,
    pw: SecretString,
) -> Result<(), StoreError> {
    let hash = hash_for_store(pw).await?;
    store
        .change_local_password(username, &hash, Utc::now())
        .await
}

/// Creates a local user with a password, outside a running server (the operator's
/// `nexus admin set-password --create`): hashed as the server hashes, the subject
/// registered if it is not. `SubjectExists` when the user has a password already;
/// `Invalid` for a name that is not a subject id or a subject that is not a user.
pub async fn create_user(
    store: &Store,
    username: &str,
    pw: SecretString,
    perms: Perms,
    zones: &str,
) -> Result<(), StoreError> {
    nexus_authz::model::validate_subject_id("user", username).map_err(|_| {
        StoreError::Invalid(
            "a username is 1-128 of a-z 0-9 . _ @ - and starts with a letter or digit".into(),
        )
    })?;
    let hash = hash_for_store(pw).await?;
    upsert_user(store, username, hash, perms, zones, false)
        .await
        .map(|_| ())
}

/// The user's row (and subject) written, created or, with `update`, replaced.
async fn upsert_user(
    store: &Store,
    username: &str,
    password_hash: String,
    perms: Perms,
    zones: &str,
    update: bool,
) -> Result<bool, StoreError> {
    store
        .upsert_local_user(
            &NewLocalUser {
                username: username.to_owned(),
                password_hash,
                permissions: perms.stored(),
                zones: zones.to_owned(),
                tenant_id: None,
                now: Utc::now(),
            },
            update,
        )
        .await
}

/// A password checked and hashed (argon2id, on the blocking pool).
async fn hash_for_store(pw: SecretString) -> Result<String, StoreError> {
    password::check_password(pw.expose_secret())
        .map_err(|_| StoreError::Invalid("the password must be 1-1024 bytes".into()))?;
    tokio::task::spawn_blocking(move || password::hash(pw.expose_secret()))
        .await
        .map_err(|_| StoreError::Invalid("password hashing failed".into()))?
        .map_err(|_| StoreError::Invalid("password hashing failed".into()))
}

/// 1-128 bytes of visible characters; anything else is a 400 before any lookup.
pub fn check_username(u: &str) -> Result<(), LocalError> {
    if u.is_empty()
        || u.len() > password::MAX_USERNAME_BYTES
        || u.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(LocalError::BadInput(
            "username must be 1-128 visible characters",
        ));
    }
    Ok(())
}

impl AuthProvider for LocalAuth {
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            let res = self.verify(token).await;
            super::count_result(&self.metrics, &res);
            res
        })
    }

    fn cached(&self, token: &str) -> Option<Arc<Identity>> {
        match self.cache.get(&self.hasher.digest(token)) {
            Some(Cached::Valid(id)) if !id.is_expired(Utc::now()) => Some(id),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}

/// Root bootstrap (SPEC §10): creates the root user with SUPER on first start, with
/// `NEXUS_ROOT_PASSWORD` or a generated password printed once to stderr (never a
/// default, stored only hashed); an existing root keeps its password. With
/// `disable_root_after_setup`, root is disabled once another admin exists.
pub async fn bootstrap_root(local: &LocalAuth, s: &LocalSettings) -> anyhow::Result<()> {
    let root = s.root_username.as_str();
    if !s.root_enabled {
        if local.store.find_local_user(root).await?.is_some() {
            local
                .store
                .set_subject_disabled(root, Some(Utc::now()))
                .await?;
        }
        return Ok(());
    }
    let super_perms = Perms::of(&[Perm::Read, Perm::Write, Perm::Admin, Perm::Super]);
    match local.store.find_local_user(root).await? {
        Some(_) => {
            if let Some(pw) = &s.root_password {
                let h = local
                    .hash_password(pw.expose_secret().to_owned())
                    .await
                    .map_err(|e| anyhow::anyhow!("NEXUS_ROOT_PASSWORD: {e}"))?;
                // Only when it changed: verifying costs as much as hashing, so compare.
                let current = local
                    .store
                    .find_local_user(root)
                    .await?
                    .map(|u| u.password_hash);
                let pw2 = pw.expose_secret().to_owned();
                let same = match current {
                    Some(c) => {
                        local.hashing(move || password::verify(&pw2, &c)).await? == Verified::Yes
                    }
                    None => false,
                };
                if !same {
                    local
                        .store
                        .set_local_password(root, &h, Some(Utc::now()))
                        .await?;
                    local.store.revoke_user_sessions(root, Utc::now()).await?;
                }
            }
        }
        None => {
            let (pw, generated) = match &s.root_password {
                Some(p) => (p.expose_secret().to_owned(), false),
                None => (
                    password::generate().map_err(|e| anyhow::anyhow!("{e}"))?,
                    true,
                ),
            };
            let h = local
                .hash_password(pw.clone())
                .await
                .map_err(|e| anyhow::anyhow!("root password: {e}"))?;
            local.put_user(root, h, super_perms, "", false).await?;
            if generated && !s.print_generated_password {
                *local
                    .generated_root_password
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(SecretString::from(pw.clone()));
            } else if generated {
                // The one place the password is ever shown: stderr of the first start.
                eprintln!(
                    "nexusd: created the root user {root:?} with a generated password (shown once, stored only hashed):\n  {pw}\nLog in with POST /auth/login; set NEXUS_ROOT_PASSWORD or `nexus admin set-password {root}` to choose one."
                );
            }
            tracing::info!(user = %root, generated, "root user created");
        }
    }
    if s.disable_root_after_setup {
        disable_root_if_other_admin(local, root).await?;
    }
    Ok(())
}

async fn disable_root_if_other_admin(local: &LocalAuth, root: &str) -> anyhow::Result<()> {
    {
        let others = local.store.list_local_users().await?.into_iter().any(|u| {
            u.username != root
                && u.disabled_at.is_none()
                && Perms::parse_stored(&u.permissions).is_ok_and(|p| p.allows(Perm::Admin))
        });
        let root_live = local
            .store
            .find_local_user(root)
            .await?
            .is_some_and(|u| u.disabled_at.is_none());
        if others && root_live {
            local
                .store
                .set_subject_disabled(root, Some(Utc::now()))
                .await?;
            local.store.revoke_user_sessions(root, Utc::now()).await?;
            local.bus.publish(Invalidation::Subject {
                subject_id: root.to_owned(),
            });
            tracing::info!(user = %root, "root disabled: another admin exists (NEXUS_DISABLE_ROOT_AFTER_SETUP)");
        }
    }
    Ok(())
}

/// Upserts the users of the auth file's `local.users` (their hashes as given: bcrypt is
/// re-hashed on first login).
pub async fn upsert_config_users(
    local: &LocalAuth,
    users: &std::collections::BTreeMap<String, nexus_providers::config::LocalUser>,
) -> anyhow::Result<()> {
    for (name, u) in users {
        password::check_hash(&u.password_hash)
            .map_err(|e| anyhow::anyhow!("local.users.{name}: {e}"))?;
        let mut perms = match &u.permissions {
            Some(list) => {
                Perms::parse(list).map_err(|e| anyhow::anyhow!("local.users.{name}: {e}"))?
            }
            None => Perms::of(&[Perm::Read, Perm::Write]),
        };
        if u.is_admin {
            perms = Perms::of(&perms.iter().chain([Perm::Admin]).collect::<Vec<_>>());
        }
        let zones = u.zones.as_ref().map(|z| z.to_cli()).unwrap_or_default();
        if !zones.is_empty() {
            parse_zone_spec(&zones)
                .map_err(|e| anyhow::anyhow!("local.users.{name}.zones: {e}"))?;
        }
        // A hash re-done at login (bcrypt → argon2id) is kept across restarts while the
        // file still holds the same old hash.
        let existing = local.store.find_local_user(name).await?;
        let hash = match existing {
            Some(e)
                if password::check_hash(&e.password_hash).is_ok()
                    && !e.password_hash.starts_with("$2") =>
            {
                e.password_hash
            }
            _ => u.password_hash.clone(),
        };
        local.put_user(name, hash, perms, &zones, true).await?;
    }
    Ok(())
}
