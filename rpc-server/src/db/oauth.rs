//! The OAuth server's rows (SPEC §11, migration `20261230000002_oauth`): clients, single-use
//! authorization codes and refresh-token families, digests only. An access token is an
//! `api_tokens` row of kind `oauth` ([`super::OAuthBinding`]); revoking a family or a
//! client revokes those rows, and their triggers announce it like any token revocation.

use super::BeginWrite as _;
use super::tokens::insert_token_in;
use super::{NewToken, Store, StoreError, with_pool};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Groups as the `oauth_groups` columns hold them: comma-separated, sorted, without repeats.
pub fn join_groups(groups: &[String]) -> String {
    let mut g: Vec<&str> = groups
        .iter()
        .map(String::as_str)
        .filter(|g| nexus_providers::oidc::is_subject_id(g))
        .collect();
    g.sort_unstable();
    g.dedup();
    g.join(",")
}

/// The groups of an `oauth_groups` column. A name that is not a valid group is dropped:
/// fewer groups can only mean less access.
pub fn split_groups(stored: &str) -> Vec<String> {
    let mut g: Vec<String> = stored
        .split(',')
        .filter(|g| nexus_providers::oidc::is_subject_id(g))
        .map(str::to_owned)
        .collect();
    g.sort_unstable();
    g.dedup();
    g
}

/// A client as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OAuthClientRecord {
    pub client_id: String,
    /// `dcr` or `cimd`.
    pub kind: String,
    pub client_name: String,
    /// JSON array.
    pub redirect_uris: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl OAuthClientRecord {
    pub fn redirect_uri_list(&self) -> Vec<String> {
        serde_json::from_str(&self.redirect_uris).unwrap_or_default()
    }
}

/// An authorization code to store (its digest).
#[derive(Debug, Clone)]
pub struct NewCode {
    pub digest: [u8; 32],
    pub client_id: String,
    pub username: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: String,
    pub scope: String,
    pub zones: String,
    pub family_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The OIDC provider that signed the subject in; `None`: a local user.
    pub provider: Option<String>,
    /// Groups the OIDC provider asserted at sign-in, comma-separated (migration
    /// `20261231000003_oauth_groups`); empty for a local user.
    pub oauth_groups: String,
}

/// A code as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OAuthCodeRecord {
    pub client_id: String,
    pub username: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: String,
    pub scope: String,
    pub zones: String,
    pub family_id: Uuid,
    /// The OIDC provider that signed the subject in; `None`: a local user.
    pub provider: Option<String>,
    /// Groups the OIDC provider asserted at sign-in, comma-separated (migration
    /// `20261231000003_oauth_groups`); empty for a local user.
    pub oauth_groups: String,
}

/// What presenting a code found.
#[derive(Debug, Clone, PartialEq)]
pub enum CodeUse {
    /// Unused and live: now used.
    Fresh(Box<OAuthCodeRecord>),
    /// Used before: every token issued from it (these) has just been revoked (RFC 6749 §4.1.2).
    Reused(Vec<Uuid>),
    /// Unknown or expired.
    Invalid,
}

/// A refresh token to store (its digest) with the access token minted beside it.
#[derive(Debug, Clone)]
pub struct NewRefresh {
    pub digest: [u8; 32],
    pub family_id: Uuid,
    pub client_id: String,
    pub username: String,
    pub resource: String,
    pub scope: String,
    pub zones: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The OIDC provider that signed the subject in; `None`: a local user.
    pub provider: Option<String>,
    /// Groups the OIDC provider asserted at sign-in, comma-separated (migration
    /// `20261231000003_oauth_groups`); empty for a local user.
    pub oauth_groups: String,
}

/// A refresh token as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OAuthRefreshRecord {
    pub family_id: Uuid,
    pub client_id: String,
    pub username: String,
    pub resource: String,
    pub scope: String,
    pub zones: String,
    pub expires_at: DateTime<Utc>,
    /// The OIDC provider that signed the subject in; `None`: a local user.
    pub provider: Option<String>,
    /// Groups the OIDC provider asserted at sign-in, comma-separated (migration
    /// `20261231000003_oauth_groups`); empty for a local user.
    pub oauth_groups: String,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq)]
pub enum OAuthRefreshUse {
    Fresh(OAuthRefreshRecord),
    /// Used or revoked before: the family has just been revoked; these access tokens with it.
    Reused(Vec<Uuid>),
    Invalid,
}

const CLIENT_COLS: &str = "client_id, kind, client_name, redirect_uris, created_at, revoked_at";

impl Store {
    /// Registers a client. For a metadata-document client (`cimd`) an existing, unrevoked
    /// row is refreshed with the document's current name and URIs; a revoked one stays
    /// revoked (`Invalid`).
    pub async fn oauth_put_client(
        &self,
        client_id: &str,
        kind: &str,
        client_name: &str,
        redirect_uris: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const INSERT: &str = "INSERT INTO oauth_clients (client_id, kind, client_name, redirect_uris, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_id) DO UPDATE SET \
             client_name = excluded.client_name, redirect_uris = excluded.redirect_uris \
             WHERE oauth_clients.revoked_at IS NULL AND oauth_clients.kind = excluded.kind";
        let uris = serde_json::to_string(redirect_uris)
            .map_err(|_| StoreError::Invalid("redirect URIs".into()))?;
        let n = with_pool!(self, p => sqlx::query(INSERT)
            .bind(client_id).bind(kind).bind(client_name).bind(&uris).bind(now)
            .execute(p).await.map(|r| r.rows_affected()))?;
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::Invalid("the client is revoked".into()))
        }
    }

    pub async fn oauth_client(
        &self,
        client_id: &str,
    ) -> Result<Option<OAuthClientRecord>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLS} FROM oauth_clients WHERE client_id = $1");
        Ok(with_pool!(self, p => sqlx::query_as(&sql).bind(client_id).fetch_optional(p).await)?)
    }

    /// Every client, oldest first, with its count of live access tokens.
    pub async fn oauth_clients(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(OAuthClientRecord, i64)>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLS} FROM oauth_clients ORDER BY created_at, client_id");
        const COUNTS: &str = "SELECT oauth_client_id, COUNT(*) FROM api_tokens \
             WHERE oauth_client_id IS NOT NULL AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $1) GROUP BY oauth_client_id";
        let (rows, counts): (Vec<OAuthClientRecord>, Vec<(String, i64)>) = with_pool!(self, p => {
            let rows = sqlx::query_as(&sql).fetch_all(p).await?;
            let counts = sqlx::query_as(COUNTS).bind(now).fetch_all(p).await?;
            Ok::<_, sqlx::Error>((rows, counts))
        })?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let n = counts
                    .iter()
                    .find(|(c, _)| *c == r.client_id)
                    .map_or(0, |(_, n)| *n);
                (r, n)
            })
            .collect())
    }

    /// Revokes a client, its refresh tokens and its access tokens; returns the access
    /// tokens' key ids (to drop from caches). `NotFound` for an unknown client.
    pub async fn oauth_revoke_client(
        &self,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        const CLIENT: &str =
            "UPDATE oauth_clients SET revoked_at = COALESCE(revoked_at, $2) WHERE client_id = $1";
        const REFRESH: &str = "UPDATE oauth_refresh_tokens SET revoked_at = $2 \
             WHERE client_id = $1 AND revoked_at IS NULL";
        const TOKENS: &str = "UPDATE api_tokens SET revoked_at = $2 \
             WHERE oauth_client_id = $1 AND revoked_at IS NULL RETURNING key_id";
        with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            let n = sqlx::query(CLIENT).bind(client_id).bind(now).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query(REFRESH).bind(client_id).bind(now).execute(&mut *tx).await?;
            let keys: Vec<(Uuid,)> = sqlx::query_as(TOKENS).bind(client_id).bind(now).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            Ok(keys.into_iter().map(|(k,)| k).collect())
        }.await)
    }

    /// Blocks a metadata-document client not seen yet: a revoked `cimd` row, so that its
    /// document is never accepted. True when the row is new; a client already known is left
    /// for [`Store::oauth_revoke_client`].
    pub async fn oauth_block_client(
        &self,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO oauth_clients (client_id, kind, client_name, redirect_uris, created_at, revoked_at) \
             VALUES ($1, 'cimd', '', '[]', $2, $2) ON CONFLICT (client_id) DO NOTHING";
        let n = with_pool!(self, p => sqlx::query(SQL).bind(client_id).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    pub async fn oauth_insert_code(&self, c: &NewCode) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO oauth_codes (code_hash, client_id, username, redirect_uri, \
             code_challenge, resource, scope, zones, family_id, created_at, expires_at, provider, \
             oauth_groups) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
        with_pool!(self, p => sqlx::query(SQL)
            .bind(&c.digest[..]).bind(&c.client_id).bind(&c.username).bind(&c.redirect_uri)
            .bind(&c.code_challenge).bind(&c.resource).bind(&c.scope).bind(&c.zones)
            .bind(c.family_id).bind(c.created_at).bind(c.expires_at).bind(&c.provider)
            .bind(&c.oauth_groups)
            .execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Presents a code: one conditional update marks it used, so two racing redemptions
    /// cannot both succeed; a used one revokes what it issued.
    pub async fn oauth_use_code(
        &self,
        digest: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<CodeUse, StoreError> {
        const USE: &str = "UPDATE oauth_codes SET used_at = $2 WHERE code_hash = $1 \
             AND used_at IS NULL AND expires_at > $2 RETURNING client_id, username, redirect_uri, \
             code_challenge, resource, scope, zones, family_id, provider, oauth_groups";
        const FIND: &str = "SELECT family_id, used_at FROM oauth_codes WHERE code_hash = $1";
        let fresh: Option<OAuthCodeRecord> = with_pool!(self, p => {
            sqlx::query_as(USE).bind(&digest[..]).bind(now).fetch_optional(p).await
        })?;
        if let Some(c) = fresh {
            return Ok(CodeUse::Fresh(Box::new(c)));
        }
        let found: Option<(Uuid, Option<DateTime<Utc>>)> = with_pool!(self, p => {
            sqlx::query_as(FIND).bind(&digest[..]).fetch_optional(p).await
        })?;
        match found {
            Some((family, Some(_))) => Ok(CodeUse::Reused(
                self.oauth_revoke_family(family, now).await?,
            )),
            _ => Ok(CodeUse::Invalid),
        }
    }

    /// Stores an access token and its refresh token in one transaction.
    pub async fn oauth_insert_grant(
        &self,
        token: &NewToken,
        refresh: &NewRefresh,
    ) -> Result<(), StoreError> {
        const REFRESH: &str = "INSERT INTO oauth_refresh_tokens (token_hash, family_id, client_id, \
             username, resource, scope, zones, issued_at, expires_at, provider, oauth_groups) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
        let res: Result<(), StoreError> = with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            insert_token_in!(tx, token);
            sqlx::query(REFRESH)
                .bind(&refresh.digest[..]).bind(refresh.family_id).bind(&refresh.client_id)
                .bind(&refresh.username).bind(&refresh.resource).bind(&refresh.scope)
                .bind(&refresh.zones).bind(refresh.issued_at).bind(refresh.expires_at)
                .bind(&refresh.provider).bind(&refresh.oauth_groups)
                .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        }.await);
        res
    }

    /// Presents a refresh token: fresh → marked used; used or revoked (and not past the
    /// family's end) → the family is revoked.
    pub async fn oauth_use_refresh(
        &self,
        digest: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<OAuthRefreshUse, StoreError> {
        const USE: &str = "UPDATE oauth_refresh_tokens SET used_at = $2 WHERE token_hash = $1 \
             AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
             RETURNING family_id, client_id, username, resource, scope, zones, expires_at, provider, \
             oauth_groups";
        const FIND: &str =
            "SELECT family_id, expires_at FROM oauth_refresh_tokens WHERE token_hash = $1";
        let fresh: Option<OAuthRefreshRecord> = with_pool!(self, p => {
            sqlx::query_as(USE).bind(&digest[..]).bind(now).fetch_optional(p).await
        })?;
        if let Some(r) = fresh {
            return Ok(OAuthRefreshUse::Fresh(r));
        }
        let found: Option<(Uuid, DateTime<Utc>)> = with_pool!(self, p => {
            sqlx::query_as(FIND).bind(&digest[..]).fetch_optional(p).await
        })?;
        match found {
            Some((family, exp)) if exp > now => Ok(OAuthRefreshUse::Reused(
                self.oauth_revoke_family(family, now).await?,
            )),
            _ => Ok(OAuthRefreshUse::Invalid),
        }
    }

    /// Revokes a family's refresh tokens and access tokens; returns the access tokens'
    /// key ids.
    pub async fn oauth_revoke_family(
        &self,
        family: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        const REFRESH: &str = "UPDATE oauth_refresh_tokens SET revoked_at = $2 \
             WHERE family_id = $1 AND revoked_at IS NULL";
        const TOKENS: &str = "UPDATE api_tokens SET revoked_at = $2 \
             WHERE oauth_family = $1 AND revoked_at IS NULL RETURNING key_id";
        with_pool!(self, p => async {
            let mut tx = p.begin_write().await?;
            sqlx::query(REFRESH).bind(family).bind(now).execute(&mut *tx).await?;
            let keys: Vec<(Uuid,)> = sqlx::query_as(TOKENS).bind(family).bind(now).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(keys.into_iter().map(|(k,)| k).collect())
        }.await)
    }

    /// Revokes the grant an access token was issued under: its family's refresh tokens and
    /// every access token of the family (the token itself included); returns those access
    /// tokens' key ids. An operator revoking one access token means the client to lose
    /// access, and a live refresh token would only mint the next one. Empty for a token
    /// that is not an OAuth one.
    pub async fn oauth_revoke_grant_of_token(
        &self,
        key_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        const FAMILY: &str = "SELECT oauth_family FROM api_tokens WHERE key_id = $1";
        let family: Option<(Option<Uuid>,)> =
            with_pool!(self, p => sqlx::query_as(FAMILY).bind(key_id).fetch_optional(p).await)?;
        match family.and_then(|(f,)| f) {
            Some(f) => self.oauth_revoke_family(f, now).await,
            None => Ok(Vec::new()),
        }
    }

    /// The family and client of a refresh token (RFC 7009 revocation).
    pub async fn oauth_family_of_refresh(
        &self,
        digest: &[u8; 32],
    ) -> Result<Option<(Uuid, String)>, StoreError> {
        const FIND: &str =
            "SELECT family_id, client_id FROM oauth_refresh_tokens WHERE token_hash = $1";
        Ok(with_pool!(self, p => sqlx::query_as(FIND).bind(&digest[..]).fetch_optional(p).await)?)
    }
}
