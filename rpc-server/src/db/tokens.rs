//! Token rows and their zone grants.

use super::BeginWrite as _;
use super::{Store, StoreError, with_pool};
use chrono::{DateTime, Utc};
use nexus_wire::spec::{Permission, SubjectType, ZoneGrant};
use std::collections::HashMap;
use uuid::Uuid;

/// What the control plane asks the store to insert. Carries the digest, never the token.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub key_id: Uuid,
    pub digest: [u8; 32],
    pub name: String,
    pub user_id: String,
    pub subject_type: SubjectType,
    pub is_admin: bool,
    pub rate_limit: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub zones: Vec<ZoneGrant>,
    /// `READ,WRITE`…; `None`: the zones and admin flag decide (SPEC §10).
    pub permissions: Option<String>,
    /// Set for an access token issued by the OAuth server (kind `oauth`).
    pub oauth: Option<OAuthBinding>,
}

/// The client and refresh family an OAuth access token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthBinding {
    pub client_id: String,
    pub family_id: Uuid,
    /// Groups the subject's OIDC provider asserted at sign-in, comma-separated; empty for
    /// a local user.
    pub groups: String,
}

/// A token as stored, with its grants. `zones_active` is false when any granted zone is
/// deleted (the token is then refused).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub key_id: Uuid,
    pub name: String,
    pub user_id: String,
    pub subject_type: SubjectType,
    pub is_admin: bool,
    pub rate_limit: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub zones: Vec<ZoneGrant>,
    pub zones_active: bool,
    /// `READ,WRITE`…; `None`: the zones and admin flag decide (SPEC §10).
    pub permissions: Option<String>,
    /// The registered subject `user_id` names, if any (filled by the verification lookup).
    pub subject: Option<SubjectBinding>,
    /// `key` (minted by an operator or a user) or `oauth` (issued to an OAuth client).
    pub kind: String,
    /// The OAuth client an `oauth` token was issued to.
    pub oauth_client_id: Option<String>,
    /// Groups an `oauth` token speaks for (its subject's OIDC provider asserted them at
    /// sign-in), comma-separated; empty for every other token.
    pub oauth_groups: String,
}

/// The subject a token is bound to, as the verification lookup sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectBinding {
    pub subject_type: SubjectType,
    pub tenant_id: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    key_id: Uuid,
    name: String,
    user_id: String,
    subject_type: String,
    is_admin: bool,
    rate_limit: Option<String>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    permissions: Option<String>,
    kind: String,
    oauth_client_id: Option<String>,
    oauth_groups: String,
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    key_id: Uuid,
    zone_id: String,
    permission: String,
    zone_deleted_at: Option<DateTime<Utc>>,
}

/// Token columns joined with grants; `zone_id` is NULL for a zoneless token.
#[derive(sqlx::FromRow)]
struct JoinedRow {
    #[sqlx(flatten)]
    token: TokenRow,
    zone_id: Option<String>,
    permission: Option<String>,
    zone_deleted_at: Option<DateTime<Utc>>,
    s_type: Option<String>,
    s_tenant: Option<String>,
    s_disabled: Option<DateTime<Utc>>,
}

const TOKEN_COLS: &str = "t.key_id, t.name, t.user_id, t.subject_type, t.is_admin, t.rate_limit, \
     t.created_at, t.expires_at, t.revoked_at, t.last_used_at, t.permissions, t.kind, t.oauth_client_id, \
     t.oauth_groups";

fn corrupt(what: &str) -> StoreError {
    StoreError::Db(sqlx::Error::Decode(
        format!("corrupt {what} in database").into(),
    ))
}

impl TokenRow {
    fn into_record(self) -> Result<TokenRecord, StoreError> {
        Ok(TokenRecord {
            key_id: self.key_id,
            name: self.name,
            user_id: self.user_id,
            subject_type: self
                .subject_type
                .parse()
                .map_err(|_| corrupt("subject_type"))?,
            is_admin: self.is_admin,
            rate_limit: self.rate_limit,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            last_used_at: self.last_used_at,
            zones: Vec::new(),
            zones_active: true,
            permissions: self.permissions,
            subject: None,
            kind: self.kind,
            oauth_client_id: self.oauth_client_id,
            oauth_groups: self.oauth_groups,
        })
    }
}

fn add_grant(
    rec: &mut TokenRecord,
    zone_id: String,
    permission: &str,
    deleted: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let permission: Permission = permission.parse().map_err(|_| corrupt("permission"))?;
    rec.zones_active &= deleted.is_none();
    rec.zones.push(ZoneGrant {
        zone_id,
        permission,
    });
    Ok(())
}

/// Inserts the [`NewToken`] `$t` and its grants within the open transaction `$tx`, every
/// granted zone checked active first; returns the error early. A macro, as [`with_pool!`]
/// gives each backend its own transaction type.
macro_rules! insert_token_in {
    ($tx:ident, $t:expr) => {{
        const ZONE_OK: &str = "SELECT zone_id FROM zones WHERE zone_id = $1 AND deleted_at IS NULL";
        const INSERT: &str = "INSERT INTO api_tokens (key_id, token_hash, name, user_id, subject_type, \
             is_admin, rate_limit, created_at, expires_at, permissions, kind, oauth_client_id, \
             oauth_family, oauth_groups) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
        const GRANT: &str =
            "INSERT INTO token_zones (key_id, zone_id, permission) VALUES ($1, $2, $3)";
        let t: &$crate::db::NewToken = $t;
        for g in &t.zones {
            let found: Option<(String,)> =
                sqlx::query_as(ZONE_OK).bind(&g.zone_id).fetch_optional(&mut *$tx).await?;
            if found.is_none() {
                return Err($crate::db::StoreError::ZoneNotActive(g.zone_id.clone()));
            }
        }
        sqlx::query(INSERT)
            .bind(t.key_id)
            .bind(&t.digest[..])
            .bind(&t.name)
            .bind(&t.user_id)
            .bind(t.subject_type.as_str())
            .bind(t.is_admin)
            .bind(&t.rate_limit)
            .bind(t.created_at)
            .bind(t.expires_at)
            .bind(&t.permissions)
            .bind(if t.oauth.is_some() { "oauth" } else { "key" })
            .bind(t.oauth.as_ref().map(|o| o.client_id.clone()))
            .bind(t.oauth.as_ref().map(|o| o.family_id))
            .bind(t.oauth.as_ref().map_or("", |o| o.groups.as_str()))
            .execute(&mut *$tx)
            .await
            .map_err(|e| {
                if $crate::db::is_unique_violation(&e) {
                    $crate::db::StoreError::DuplicateName(t.name.clone())
                } else {
                    $crate::db::StoreError::Db(e)
                }
            })?;
        for g in &t.zones {
            sqlx::query(GRANT)
                .bind(t.key_id)
                .bind(&g.zone_id)
                .bind(g.permission.as_str())
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(super) use insert_token_in;

impl Store {
    /// Inserts a token and its grants in one transaction. Every granted zone must be active.
    pub async fn insert_token(&self, t: &NewToken) -> Result<(), StoreError> {
        let res: Result<(), StoreError> = with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            insert_token_in!(tx, t);
            tx.commit().await?;
            Ok(())
        }.await);
        res
    }

    /// Sets a key's permissions (stored form `READ,WRITE`).
    pub async fn set_token_permissions(
        &self,
        key_id: Uuid,
        permissions: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE api_tokens SET permissions = $2 WHERE key_id = $1";
        let n = with_pool!(self, p => sqlx::query(SQL).bind(key_id).bind(permissions)
            .execute(p).await.map(|r| r.rows_affected()))?;
        if n != 1 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The verification lookup: one indexed round trip by digest, grants included.
    pub async fn find_token_by_digest(
        &self,
        digest: &[u8; 32],
    ) -> Result<Option<TokenRecord>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLS}, tz.zone_id, tz.permission, z.deleted_at AS zone_deleted_at, \
             s.subject_type AS s_type, s.tenant_id AS s_tenant, s.disabled_at AS s_disabled \
             FROM api_tokens t \
             LEFT JOIN token_zones tz ON tz.key_id = t.key_id \
             LEFT JOIN zones z ON z.zone_id = tz.zone_id \
             LEFT JOIN subjects s ON s.subject_id = t.user_id \
             WHERE t.token_hash = $1 ORDER BY tz.zone_id"
        );
        let rows: Vec<JoinedRow> = with_pool!(self, p => {
            sqlx::query_as(&sql).bind(&digest[..]).fetch_all(p).await
        })?;
        let mut out: Option<TokenRecord> = None;
        for row in rows {
            let rec = match &mut out {
                Some(r) => r,
                None => {
                    let mut rec = row.token.into_record()?;
                    if let Some(t) = &row.s_type {
                        rec.subject = Some(SubjectBinding {
                            subject_type: t.parse().map_err(|_| corrupt("subject type"))?,
                            tenant_id: row.s_tenant.clone(),
                            disabled_at: row.s_disabled,
                        });
                    }
                    out.insert(rec)
                }
            };
            if let (Some(z), Some(perm)) = (row.zone_id, row.permission) {
                add_grant(rec, z, &perm, row.zone_deleted_at)?;
            }
        }
        Ok(out)
    }

    /// All tokens (revoked ones only when asked), oldest first, with grants.
    pub async fn list_tokens(&self, include_revoked: bool) -> Result<Vec<TokenRecord>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLS} FROM api_tokens t WHERE ($1 OR t.revoked_at IS NULL) \
             ORDER BY t.created_at, t.name"
        );
        const GRANTS: &str = "SELECT tz.key_id, tz.zone_id, tz.permission, z.deleted_at AS zone_deleted_at \
             FROM token_zones tz JOIN zones z ON z.zone_id = tz.zone_id ORDER BY tz.zone_id";
        let (rows, grants): (Vec<TokenRow>, Vec<GrantRow>) = with_pool!(self, p => {
            let rows = sqlx::query_as(&sql).bind(include_revoked).fetch_all(p).await?;
            let grants = sqlx::query_as(GRANTS).fetch_all(p).await?;
            Ok::<_, sqlx::Error>((rows, grants))
        })?;
        let mut records = rows
            .into_iter()
            .map(TokenRow::into_record)
            .collect::<Result<Vec<_>, _>>()?;
        let index: HashMap<Uuid, usize> = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.key_id, i))
            .collect();
        for g in grants {
            if let Some(&i) = index.get(&g.key_id) {
                add_grant(&mut records[i], g.zone_id, &g.permission, g.zone_deleted_at)?;
            }
        }
        Ok(records)
    }

    /// Soft-revokes a token. `NotFound` when it does not exist or is already revoked.
    pub async fn revoke_token(&self, key_id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        const SQL: &str =
            "UPDATE api_tokens SET revoked_at = $2 WHERE key_id = $1 AND revoked_at IS NULL";
        let n = with_pool!(self, p => {
            sqlx::query(SQL).bind(key_id).bind(now).execute(p).await.map(|r| r.rows_affected())
        })?;
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// Adds grants to a token, or changes the permission of ones it already holds.
    pub async fn upsert_token_zones(
        &self,
        key_id: Uuid,
        grants: &[ZoneGrant],
    ) -> Result<(), StoreError> {
        const ZONE_OK: &str = "SELECT zone_id FROM zones WHERE zone_id = $1 AND deleted_at IS NULL";
        const SQL: &str = "INSERT INTO token_zones (key_id, zone_id, permission) VALUES ($1, $2, $3) \
             ON CONFLICT (key_id, zone_id) DO UPDATE SET permission = excluded.permission";
        with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            for g in grants {
                let found: Option<(String,)> =
                    sqlx::query_as(ZONE_OK).bind(&g.zone_id).fetch_optional(&mut *tx).await?;
                if found.is_none() {
                    return Err(StoreError::ZoneNotActive(g.zone_id.clone()));
                }
                sqlx::query(SQL)
                    .bind(key_id)
                    .bind(&g.zone_id)
                    .bind(g.permission.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }.await)
    }

    /// Removes grants from a token; returns how many were removed.
    pub async fn remove_token_zones(
        &self,
        key_id: Uuid,
        zones: &[String],
    ) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM token_zones WHERE key_id = $1 AND zone_id = $2";
        with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            let mut n = 0;
            for z in zones {
                n += sqlx::query(SQL).bind(key_id).bind(z).execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(n)
        }.await)
    }

    /// Replaces a token's digest (secret rotation); only if it still has `old`.
    pub async fn rehash_token(
        &self,
        key_id: Uuid,
        old: &[u8; 32],
        new: &[u8; 32],
    ) -> Result<(), StoreError> {
        const SQL: &str =
            "UPDATE api_tokens SET token_hash = $3 WHERE key_id = $1 AND token_hash = $2";
        with_pool!(self, p => sqlx::query(SQL).bind(key_id).bind(&old[..]).bind(&new[..]).execute(p).await.map(drop))?;
        Ok(())
    }

    /// Writes batched `last_used_at` times; never moves a time backwards.
    pub async fn touch_last_used(&self, batch: &[(Uuid, DateTime<Utc>)]) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE api_tokens SET last_used_at = $2 \
             WHERE key_id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";
        if batch.is_empty() {
            return Ok(());
        }
        with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            for (key_id, at) in batch {
                sqlx::query(SQL).bind(key_id).bind(at).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        }.await)
    }
}
