//! Zone rows: create, restore, list, soft-delete. Creating never revives a deleted zone:
//! a deleted zone's grants still exist, so bringing it back is an explicit restore that
//! says how many tokens regain access.

use super::{Store, StoreError, with_pool};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ZoneRecord {
    pub zone_id: String,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Non-revoked tokens holding the zone.
    pub tokens: i64,
    /// `open` or `rebac`.
    pub access_mode: String,
}

impl Store {
    /// Creates a zone. A name in use, active ([`StoreError::ZoneExists`]) or deleted
    /// ([`StoreError::ZoneDeleted`]), is refused.
    pub async fn create_zone(&self, zone_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.create_zone_with_access(zone_id, "open", now).await
    }

    /// [`Store::create_zone`] with an access mode (`open` or `rebac`) set in the same
    /// statement, so a `rebac` zone is never open for a moment.
    pub async fn create_zone_with_access(
        &self,
        zone_id: &str,
        access_mode: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO zones (zone_id, created_at, deleted_at, access_mode) \
             VALUES ($1, $2, NULL, $3) ON CONFLICT (zone_id) DO NOTHING RETURNING zone_id";
        let row: Option<(String,)> = with_pool!(self, p => {
            sqlx::query_as(SQL).bind(zone_id).bind(now).bind(access_mode).fetch_optional(p).await
        })?;
        if row.is_some() {
            return Ok(());
        }
        match self.zone_deleted_at(zone_id).await? {
            Some(Some(_)) => Err(StoreError::ZoneDeleted(zone_id.to_owned())),
            _ => Err(StoreError::ZoneExists(zone_id.to_owned())),
        }
    }

    /// `None` when no such zone, `Some(None)` when active, `Some(Some(t))` when deleted.
    async fn zone_deleted_at(
        &self,
        zone_id: &str,
    ) -> Result<Option<Option<DateTime<Utc>>>, StoreError> {
        const SQL: &str = "SELECT deleted_at FROM zones WHERE zone_id = $1";
        let row: Option<(Option<DateTime<Utc>>,)> = with_pool!(self, p => {
            sqlx::query_as(SQL).bind(zone_id).fetch_optional(p).await
        })?;
        Ok(row.map(|r| r.0))
    }

    /// Brings a deleted zone back, with its files and grants. Returns how many tokens
    /// regain access: not revoked, not expired, holding it and no other deleted zone.
    /// [`StoreError::NotFound`] when no zone of that name exists, [`StoreError::ZoneExists`]
    /// when it is active.
    pub async fn restore_zone(&self, zone_id: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
        const SQL: &str =
            "UPDATE zones SET deleted_at = NULL WHERE zone_id = $1 AND deleted_at IS NOT NULL";
        let n = with_pool!(self, p => {
            sqlx::query(SQL).bind(zone_id).execute(p).await.map(|r| r.rows_affected())
        })?;
        if n != 1 {
            return Err(match self.zone_deleted_at(zone_id).await? {
                None => StoreError::NotFound,
                Some(_) => StoreError::ZoneExists(zone_id.to_owned()),
            });
        }
        const HOLDERS: &str = "SELECT t.expires_at FROM api_tokens t \
             JOIN token_zones tz ON tz.key_id = t.key_id \
             WHERE tz.zone_id = $1 AND t.revoked_at IS NULL AND NOT EXISTS ( \
               SELECT 1 FROM token_zones o JOIN zones z ON z.zone_id = o.zone_id \
               WHERE o.key_id = t.key_id AND z.deleted_at IS NOT NULL)";
        let rows: Vec<(Option<DateTime<Utc>>,)> = with_pool!(self, p => {
            sqlx::query_as(HOLDERS).bind(zone_id).fetch_all(p).await
        })?;
        Ok(rows
            .iter()
            .filter(|(exp,)| exp.is_none_or(|t| t > now))
            .count() as u64)
    }

    pub async fn list_zones(&self, include_deleted: bool) -> Result<Vec<ZoneRecord>, StoreError> {
        const SQL: &str = "SELECT z.zone_id, z.created_at, z.deleted_at, z.access_mode, \
             (SELECT COUNT(*) FROM token_zones tz JOIN api_tokens t ON t.key_id = tz.key_id \
              WHERE tz.zone_id = z.zone_id AND t.revoked_at IS NULL) AS tokens \
             FROM zones z WHERE ($1 OR z.deleted_at IS NULL) ORDER BY z.zone_id";
        Ok(with_pool!(self, p => {
            sqlx::query_as::<_, ZoneRecord>(SQL).bind(include_deleted).fetch_all(p).await
        })?)
    }

    /// Names of the active zones, sorted.
    pub async fn active_zones(&self) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT zone_id FROM zones WHERE deleted_at IS NULL ORDER BY zone_id";
        let rows: Vec<(String,)> = with_pool!(self, p => sqlx::query_as(SQL).fetch_all(p).await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The active zones with their access modes (`open`, `rebac`), sorted by name.
    pub async fn active_zone_modes(&self) -> Result<Vec<(String, String)>, StoreError> {
        const SQL: &str = "SELECT zone_id, access_mode FROM zones WHERE deleted_at IS NULL \
             ORDER BY zone_id";
        Ok(with_pool!(self, p => sqlx::query_as(SQL).fetch_all(p).await)?)
    }

    /// Sets an active zone's access mode (`open` or `rebac`).
    /// [`StoreError::NotFound`] when no active zone has that name.
    pub async fn set_zone_access(
        &self,
        zone_id: &str,
        access_mode: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str =
            "UPDATE zones SET access_mode = $2 WHERE zone_id = $1 AND deleted_at IS NULL";
        let n = with_pool!(self, p => {
            sqlx::query(SQL).bind(zone_id).bind(access_mode).execute(p).await.map(|r| r.rows_affected())
        })?;
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// Soft-deletes an active zone.
    pub async fn delete_zone(&self, zone_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        const SQL: &str =
            "UPDATE zones SET deleted_at = $2 WHERE zone_id = $1 AND deleted_at IS NULL";
        let n = with_pool!(self, p => {
            sqlx::query(SQL).bind(zone_id).bind(now).execute(p).await.map(|r| r.rows_affected())
        })?;
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }
}
