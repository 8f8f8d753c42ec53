//! Zone rows: create (or restore), list, soft-delete.

use super::{Store, StoreError, with_pool};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ZoneRecord {
    pub zone_id: String,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Non-revoked tokens holding the zone.
    pub tokens: i64,
}

impl Store {
    /// Creates a zone, or restores a deleted one of the same name.
    pub async fn create_zone(&self, zone_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO zones (zone_id, created_at, deleted_at) VALUES ($1, $2, NULL) \
             ON CONFLICT (zone_id) DO UPDATE SET deleted_at = NULL, created_at = excluded.created_at \
             WHERE zones.deleted_at IS NOT NULL RETURNING zone_id";
        let row: Option<(String,)> = with_pool!(self, p => {
            sqlx::query_as(SQL).bind(zone_id).bind(now).fetch_optional(p).await
        })?;
        match row {
            Some(_) => Ok(()),
            None => Err(StoreError::ZoneExists(zone_id.to_owned())),
        }
    }

    pub async fn list_zones(&self, include_deleted: bool) -> Result<Vec<ZoneRecord>, StoreError> {
        const SQL: &str = "SELECT z.zone_id, z.created_at, z.deleted_at, \
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
