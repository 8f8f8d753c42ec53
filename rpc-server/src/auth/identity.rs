//! The verified caller, as every route sees it.

use chrono::{DateTime, Utc};
use nexus_wire::spec::{SubjectType, ZoneGrant};
use uuid::Uuid;

/// A verified identity. Holds no token material.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub key_id: Uuid,
    pub name: String,
    pub user_id: String,
    pub subject_type: SubjectType,
    pub is_admin: bool,
    /// Granted zones, sorted by name. Empty only for an admin, who then sees every zone.
    pub zones: Vec<ZoneGrant>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit: Option<String>,
}

impl Identity {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    pub fn holds_zone(&self, zone: &str) -> bool {
        self.zones.iter().any(|g| g.zone_id == zone)
    }
}
