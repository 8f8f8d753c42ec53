//! Local users, login-token signing keys, login sessions and refresh tokens (SPEC §10).
//!
//! A local user is a §9 subject of type user plus a password hash, permissions and zone
//! grants; disabling the subject disables the login. Sessions are keyed by the login
//! token's `jti`; refresh tokens are stored as digests only. Revoking a session fires the
//! same database announcement as revoking a key (migration `20261215000001_local_auth`).

use super::BeginWrite as _;
use super::tuples::BUMP;
use super::{Store, StoreError, with_pool};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A local user to create or update.
#[derive(Debug, Clone)]
pub struct NewLocalUser {
    pub username: String,
    pub password_hash: String,
    /// Stored form, `READ,WRITE`.
    pub permissions: String,
    /// Zone grants in the CLI's form (`eng:rw,ops:r`); empty for none.
    pub zones: String,
    pub tenant_id: Option<String>,
    pub now: DateTime<Utc>,
}

/// A local user as stored, with its subject's state.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LocalUserRecord {
    pub username: String,
    pub password_hash: String,
    pub permissions: String,
    pub zones: String,
    pub created_at: DateTime<Utc>,
    pub password_changed_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub tenant_id: Option<String>,
}

/// What a login token's `jti` stands for, in one lookup.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SessionRecord {
    pub jti: Uuid,
    pub family_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub username: String,
    pub permissions: String,
    pub zones: String,
    pub disabled_at: Option<DateTime<Utc>>,
    pub tenant_id: Option<String>,
}

/// A signing key as stored (the private key sealed).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub public_key: Vec<u8>,
    pub private_key: Vec<u8>,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub not_after: Option<DateTime<Utc>>,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshUse {
    /// Unused and live: now marked used; mint the next pair in this family.
    Fresh {
        family_id: Uuid,
        username: String,
        family_expires_at: DateTime<Utc>,
    },
    /// Already used or revoked: the family (and its sessions) has just been revoked.
    Reused,
    /// Unknown or expired.
    Invalid,
}

const USER_COLS: &str = "u.username, u.password_hash, u.permissions, u.zones, u.created_at, \
     u.password_changed_at, s.disabled_at, s.tenant_id";

impl Store {
    /// Creates a local user (and its subject), or with `update` replaces the hash,
    /// permissions and zones of an existing one. A subject of another type by that name
    /// is refused.
    pub async fn upsert_local_user(
        &self,
        u: &NewLocalUser,
        update: bool,
    ) -> Result<bool, StoreError> {
        const SUBJECT: &str = "INSERT INTO subjects (subject_id, subject_type, display_name, \
             tenant_id, created_at) VALUES ($1, 'user', '', $2, $3) \
             ON CONFLICT (subject_id) DO NOTHING";
        const TYPE: &str = "SELECT subject_type FROM subjects WHERE subject_id = $1";
        const INSERT: &str = "INSERT INTO local_users (username, password_hash, permissions, \
             zones, created_at, password_changed_at) VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (username) DO NOTHING";
        const UPDATE: &str = "UPDATE local_users SET password_hash = $2, permissions = $3, \
             zones = $4, password_changed_at = CASE WHEN password_hash = $2 \
             THEN password_changed_at ELSE $5 END WHERE username = $1";
        with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            sqlx::query_scalar::<_, i64>(BUMP).fetch_one(&mut *tx).await?;
            sqlx::query(SUBJECT)
                .bind(&u.username)
                .bind(&u.tenant_id)
                .bind(u.now)
                .execute(&mut *tx)
                .await?;
            let ty: Option<(String,)> =
                sqlx::query_as(TYPE).bind(&u.username).fetch_optional(&mut *tx).await?;
            if ty.is_none_or(|(t,)| t != "user") {
                return Err(StoreError::Invalid(format!(
                    "subject {:?} exists and is not a user", u.username
                )));
            }
            let inserted = sqlx::query(INSERT)
                .bind(&u.username)
                .bind(&u.password_hash)
                .bind(&u.permissions)
                .bind(&u.zones)
                .bind(u.now)
                .execute(&mut *tx)
                .await?
                .rows_affected() == 1;
            if !inserted {
                if !update {
                    return Err(StoreError::SubjectExists(u.username.clone()));
                }
                sqlx::query(UPDATE)
                    .bind(&u.username)
                    .bind(&u.password_hash)
                    .bind(&u.permissions)
                    .bind(&u.zones)
                    .bind(u.now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(inserted)
        }.await)
    }

    pub async fn find_local_user(
        &self,
        username: &str,
    ) -> Result<Option<LocalUserRecord>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLS} FROM local_users u JOIN subjects s ON s.subject_id = u.username \
             WHERE u.username = $1"
        );
        Ok(with_pool!(self, p => {
            sqlx::query_as(&sql).bind(username).fetch_optional(p).await
        })?)
    }

    pub async fn list_local_users(&self) -> Result<Vec<LocalUserRecord>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLS} FROM local_users u JOIN subjects s ON s.subject_id = u.username \
             ORDER BY u.username"
        );
        Ok(with_pool!(self, p => sqlx::query_as(&sql).fetch_all(p).await)?)
    }

    /// Replaces a user's password hash (a re-hash keeps `password_changed_at` unless
    /// `changed`).
    pub async fn set_local_password(
        &self,
        username: &str,
        hash: &str,
        changed: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE local_users SET password_hash = $2, \
             password_changed_at = COALESCE($3, password_changed_at) WHERE username = $1";
        let n = with_pool!(self, p => sqlx::query(SQL).bind(username).bind(hash).bind(changed)
            .execute(p).await.map(|r| r.rows_affected()))?;
        if n != 1 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// A new password: the hash replaced and every session and refresh token of the user
    /// revoked, in one transaction (the session rows' triggers announce the revokes to
    /// every running server). `NotFound` for a name that is not a local user.
    pub async fn change_local_password(
        &self,
        username: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SET: &str = "UPDATE local_users SET password_hash = $2, password_changed_at = $3 \
             WHERE username = $1";
        const SESSIONS: &str = "UPDATE login_sessions SET revoked_at = $2 \
             WHERE username = $1 AND revoked_at IS NULL";
        const REFRESH: &str = "UPDATE refresh_tokens SET revoked_at = $2 \
             WHERE username = $1 AND revoked_at IS NULL";
        let found = with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            let n = sqlx::query(SET)
                .bind(username)
                .bind(hash)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n != 1 {
                return Ok(false);
            }
            sqlx::query(SESSIONS).bind(username).bind(now).execute(&mut *tx).await?;
            sqlx::query(REFRESH).bind(username).bind(now).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(true)
        }.await)?;
        if !found {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn set_local_permissions(
        &self,
        username: &str,
        permissions: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE local_users SET permissions = $2 WHERE username = $1";
        let n = with_pool!(self, p => sqlx::query(SQL).bind(username).bind(permissions)
            .execute(p).await.map(|r| r.rows_affected()))?;
        if n != 1 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    // ---- signing keys ----

    pub async fn active_signing_key(&self) -> Result<Option<SigningKeyRecord>, StoreError> {
        const SQL: &str = "SELECT kid, public_key, private_key, state, created_at, not_after \
             FROM signing_keys WHERE state = 'active'";
        Ok(with_pool!(self, p => sqlx::query_as(SQL).fetch_optional(p).await)?)
    }

    /// The kid of the active key only (no key material): what a signer checks before
    /// each login, so a key rotated by another process is used at once.
    pub async fn active_signing_kid(&self) -> Result<Option<String>, StoreError> {
        const SQL: &str = "SELECT kid FROM signing_keys WHERE state = 'active'";
        Ok(with_pool!(self, p => sqlx::query_scalar(SQL).fetch_optional(p).await)?)
    }

    /// Every key that may still have live tokens: the active one and retired ones whose
    /// `not_after` is still ahead.
    pub async fn signing_keys(
        &self,
        now: DateTime<Utc>,
        all: bool,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        const SQL: &str = "SELECT kid, public_key, private_key, state, created_at, not_after \
             FROM signing_keys WHERE $2 OR state = 'active' OR not_after > $1 ORDER BY created_at";
        Ok(with_pool!(self, p => sqlx::query_as(SQL).bind(now).bind(all).fetch_all(p).await)?)
    }

    /// Makes `k` the active key; the previous active key is retired with `retire_until`
    /// as its `not_after`. With `only_if_none`, nothing happens when a key is already
    /// active (two servers starting at once make one key, not two). True when inserted.
    pub async fn rotate_signing_key(
        &self,
        k: &SigningKeyRecord,
        retire_until: DateTime<Utc>,
        only_if_none: bool,
    ) -> Result<bool, StoreError> {
        const ACTIVE: &str = "SELECT kid FROM signing_keys WHERE state = 'active'";
        const RETIRE: &str = "UPDATE signing_keys SET state = 'retired', not_after = $1 \
             WHERE state = 'active'";
        const INSERT: &str = "INSERT INTO signing_keys (kid, alg, public_key, private_key, state, \
             created_at) VALUES ($1, 'EdDSA', $2, $3, 'active', $4)";
        let res = with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            let active: Option<(String,)> = sqlx::query_as(ACTIVE).fetch_optional(&mut *tx).await?;
            if active.is_some() && only_if_none {
                return Ok(false);
            }
            sqlx::query(RETIRE).bind(retire_until).execute(&mut *tx).await?;
            sqlx::query(INSERT)
                .bind(&k.kid)
                .bind(&k.public_key)
                .bind(&k.private_key)
                .bind(k.created_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(true)
        }.await);
        match res {
            // Another server made the first key at the same moment.
            Err(e) if super::is_unique_violation(&e) && only_if_none => Ok(false),
            r => Ok(r?),
        }
    }

    // ---- sessions and refresh tokens ----

    /// Records a login session and its refresh token together.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_session(
        &self,
        jti: Uuid,
        username: &str,
        family_id: Uuid,
        issued_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        refresh_digest: &[u8; 32],
        parent_digest: Option<&[u8; 32]>,
        family_expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SESSION: &str = "INSERT INTO login_sessions (jti, username, family_id, issued_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5)";
        const REFRESH: &str = "INSERT INTO refresh_tokens (token_hash, family_id, parent_hash, \
             username, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)";
        with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            sqlx::query(SESSION)
                .bind(jti)
                .bind(username)
                .bind(family_id)
                .bind(issued_at)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(REFRESH)
                .bind(&refresh_digest[..])
                .bind(family_id)
                .bind(parent_digest.map(|d| d.to_vec()))
                .bind(username)
                .bind(issued_at)
                .bind(family_expires_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        }.await)?;
        Ok(())
    }

    /// The session of a login token, with its user's permissions and subject state.
    pub async fn find_session(&self, jti: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        const SQL: &str = "SELECT ls.jti, ls.family_id, ls.expires_at, ls.revoked_at, \
             u.username, u.permissions, u.zones, s.disabled_at, s.tenant_id \
             FROM login_sessions ls JOIN local_users u ON u.username = ls.username \
             JOIN subjects s ON s.subject_id = u.username WHERE ls.jti = $1";
        Ok(with_pool!(self, p => sqlx::query_as(SQL).bind(jti).fetch_optional(p).await)?)
    }

    /// Revokes a whole refresh family and every session it issued.
    pub async fn revoke_family(
        &self,
        family_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SESSIONS: &str = "UPDATE login_sessions SET revoked_at = $2 \
             WHERE family_id = $1 AND revoked_at IS NULL";
        const REFRESH: &str = "UPDATE refresh_tokens SET revoked_at = $2 \
             WHERE family_id = $1 AND revoked_at IS NULL";
        with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            sqlx::query(SESSIONS).bind(family_id).bind(now).execute(&mut *tx).await?;
            sqlx::query(REFRESH).bind(family_id).bind(now).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        }.await)?;
        Ok(())
    }

    /// Revokes every session and refresh token of a user (password change, disable).
    pub async fn revoke_user_sessions(
        &self,
        username: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SESSIONS: &str = "UPDATE login_sessions SET revoked_at = $2 \
             WHERE username = $1 AND revoked_at IS NULL";
        const REFRESH: &str = "UPDATE refresh_tokens SET revoked_at = $2 \
             WHERE username = $1 AND revoked_at IS NULL";
        with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            sqlx::query(SESSIONS).bind(username).bind(now).execute(&mut *tx).await?;
            sqlx::query(REFRESH).bind(username).bind(now).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        }.await)?;
        Ok(())
    }

    /// Presents a refresh token: marks it used when fresh (one conditional update, so two
    /// racing presentations cannot both succeed); a used or revoked one revokes its family.
    pub async fn use_refresh(
        &self,
        digest: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<RefreshUse, StoreError> {
        const USE: &str = "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 \
             AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
             RETURNING family_id, username, expires_at";
        const FIND: &str = "SELECT family_id, expires_at FROM refresh_tokens WHERE token_hash = $1";
        let fresh: Option<(Uuid, String, DateTime<Utc>)> = with_pool!(self, p => {
            sqlx::query_as(USE).bind(&digest[..]).bind(now).fetch_optional(p).await
        })?;
        if let Some((family_id, username, family_expires_at)) = fresh {
            return Ok(RefreshUse::Fresh {
                family_id,
                username,
                family_expires_at,
            });
        }
        let found: Option<(Uuid, DateTime<Utc>)> = with_pool!(self, p => {
            sqlx::query_as(FIND).bind(&digest[..]).fetch_optional(p).await
        })?;
        match found {
            Some((family, exp)) if exp > now => {
                self.revoke_family(family, now).await?;
                Ok(RefreshUse::Reused)
            }
            _ => Ok(RefreshUse::Invalid),
        }
    }

    /// The session a login token's refresh family belongs to: revokes the session and
    /// its family (logout).
    pub async fn logout_session(&self, jti: Uuid, now: DateTime<Utc>) -> Result<bool, StoreError> {
        const FAMILY: &str = "SELECT family_id FROM login_sessions WHERE jti = $1";
        let family: Option<(Uuid,)> = with_pool!(self, p => {
            sqlx::query_as(FAMILY).bind(jti).fetch_optional(p).await
        })?;
        match family {
            Some((f,)) => {
                self.revoke_family(f, now).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
