//! The verified caller, as every route sees it.

use chrono::{DateTime, Utc};
use nexus_providers::permissions::{Perm, Perms};
use nexus_wire::spec::{SubjectType, ZoneGrant};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// A verified identity. Holds no token material.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub key_id: Uuid,
    pub name: String,
    pub user_id: String,
    pub subject_type: SubjectType,
    pub is_admin: bool,
    /// Granted zones, sorted by name. Empty for an admin, who then sees every zone, and
    /// for a subject-bound token whose access comes from ReBAC grants alone.
    pub zones: Vec<ZoneGrant>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The token's own tier (a stored override), parsed once when the token is looked up.
    pub rate_limit: Option<nexus_wire::spec::RateTier>,
    /// The registered subject the token's `user_id` names, if any (SPEC §9).
    pub subject: Option<BoundSubject>,
    /// The caller's compiled ReBAC grants, built on the first call that needs them and
    /// dropped with the identity (see [`super::grants`]).
    pub rebac: RebacSlot,
    /// Which provider verified the credential.
    pub credential: Credential,
    /// Groups the credential's issuer asserts (an OIDC `groups_claim`): `group:<g>`
    /// memberships on top of the tuples, sorted. Empty for the hub's own credentials.
    pub groups: Vec<String>,
    /// Explicit permissions (SPEC §10): a login token's user's, or a key minted with a
    /// list. `None`: what the zones and admin flag allow, exactly as before permissions.
    pub permissions: Option<Perms>,
}

/// The provider that verified a credential (SPEC §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Credential {
    /// A key minted by `nexus hub token create` (or `/auth/api-keys`).
    #[default]
    Database,
    /// A key of the static file.
    Static,
    /// A login token of the local provider.
    Local,
    /// An access token of an OpenID provider.
    Oidc,
    /// The one key of `nexusd --api-key`.
    SingleKey,
}

impl Credential {
    pub const fn label(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Static => "static",
            Self::Local => "local",
            Self::Oidc => "oidc",
            Self::SingleKey => "single-key",
        }
    }
}

/// A registered subject a token is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundSubject {
    pub id: String,
    pub kind: SubjectType,
    pub tenant: Option<String>,
}

/// Holds an identity's compiled grants. Identities compare equal whatever their slots hold:
/// the grants are derived state, not part of who the caller is.
#[derive(Default)]
pub struct RebacSlot(
    Mutex<Option<Arc<super::grants::Compiled>>>,
    /// Held while compiling, so concurrent first calls of one identity compile once.
    tokio::sync::Mutex<()>,
);

impl RebacSlot {
    pub(crate) async fn building(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.1.lock().await
    }

    pub fn get(&self) -> Option<Arc<super::grants::Compiled>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, c: Option<Arc<super::grants::Compiled>>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = c;
    }
}

impl Clone for RebacSlot {
    fn clone(&self) -> Self {
        Self(Mutex::new(self.get()), Default::default())
    }
}

impl PartialEq for RebacSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for RebacSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.get().is_some() {
            "RebacSlot(compiled)"
        } else {
            "RebacSlot(empty)"
        })
    }
}

impl Identity {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// What this identity may do: its explicit permissions, or those its zones and
    /// admin flag imply.
    pub fn perms(&self) -> Perms {
        self.permissions.unwrap_or_else(|| {
            Perms::legacy(
                self.is_admin,
                self.zones.iter().any(|g| g.permission.can_write()),
            )
        })
    }

    /// Holds `p` (or more). For an identity without explicit permissions this is what
    /// its zones and admin flag imply.
    pub fn allows(&self, p: Perm) -> bool {
        self.perms().allows(p)
    }

    pub fn holds_zone(&self, zone: &str) -> bool {
        self.zones.iter().any(|g| g.zone_id == zone)
    }
}
