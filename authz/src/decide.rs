//! The hub's decision for a file operation, in the order of SPEC §9: admin token, the token's
//! zones as a ceiling nothing can pass, `admin` on `namespace:default`, then the zone's mode
//! (`open`: the zone grant suffices; `rebac`: a zone role or a folder grant is needed).
//!
//! An admin token that lists zones is held to them too (as the hub always held it): the
//! ceiling is checked first, so the order is ceiling, admin token, namespace admin, mode. For
//! an admin token listing no zones, the two orders agree.

use crate::grants::{Grants, Op};
use crate::model::{Error, Tuple};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a zone decides access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneMode {
    /// The token's zone grant suffices (the hub's behaviour before subjects existed).
    #[default]
    Open,
    /// A zone role or a folder grant is needed as well.
    Rebac,
}

impl ZoneMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneMode::Open => "open",
            ZoneMode::Rebac => "rebac",
        }
    }
}

impl fmt::Display for ZoneMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ZoneMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "open" => Ok(ZoneMode::Open),
            "rebac" => Ok(ZoneMode::Rebac),
            other => Err(Error::InvalidName {
                kind: "zone access mode",
                name: other.chars().take(80).collect(),
                rule: "expected open or rebac",
            }),
        }
    }
}

/// What a token's zone grant allows on one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Access {
    pub read: bool,
    pub write: bool,
}

impl Access {
    pub fn allows(self, op: Op) -> bool {
        match op {
            Op::Read => self.read,
            Op::Write => self.write,
        }
    }
}

/// The ceiling a token puts on one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ceiling {
    /// The token lists no zones: no ceiling of its own, and no zone grant either.
    NoZones,
    /// The token lists zones; `Some` is what it holds on this zone, `None` that it does not
    /// list this zone (then nothing passes).
    Zones(Option<Access>),
}

impl Ceiling {
    /// From a token's zone list: whether it lists any, and its (read, write) on this zone.
    pub fn from_grant(lists_zones: bool, grant: Option<(bool, bool)>) -> Ceiling {
        if lists_zones {
            Ceiling::Zones(grant.map(|(read, write)| Access { read, write }))
        } else {
            Ceiling::NoZones
        }
    }
}

/// Why a decision went the way it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// An admin token.
    AdminToken,
    /// Outside the token's zones, or beyond its read/write on the zone.
    Ceiling,
    /// A subject of the set has `admin` on `namespace:default`.
    NamespaceAdmin,
    /// The zone is `open` and the token lists it.
    ZoneGrant,
    /// A reader, writer or admin tuple on the zone.
    ZoneRole,
    /// A `can_read`/`can_write` tuple on the path or a folder above it.
    PathTuple,
    /// A `member` chain (checks of `member` on a group).
    Membership,
    /// Nothing grants it.
    NoGrant,
    /// The subject is in more than [`crate::closure::MAX_GROUPS`] groups: denied.
    TooManyGroups,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::AdminToken => "admin token",
            Reason::Ceiling => "outside the token's zones",
            Reason::NamespaceAdmin => "admin on namespace:default",
            Reason::ZoneGrant => "the token's zone grant (open zone)",
            Reason::ZoneRole => "zone role",
            Reason::PathTuple => "path tuple",
            Reason::Membership => "group membership",
            Reason::NoGrant => "no tuple grants it",
            Reason::TooManyGroups => "too many groups",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision and the tuples that made it: the membership chain from the subject outwards,
/// then the granting tuple (empty when nothing granted it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
    pub because: Vec<Tuple>,
}

impl Decision {
    pub fn allow(reason: Reason, because: Vec<Tuple>) -> Decision {
        Decision {
            allowed: true,
            reason,
            because,
        }
    }

    pub fn deny(reason: Reason) -> Decision {
        Decision {
            allowed: false,
            reason,
            because: Vec::new(),
        }
    }
}

/// The decision for `op` on `path` (components below the zone root) in `zone`, with the
/// tuples that made it.
pub fn decide(
    is_admin_token: bool,
    ceiling: Ceiling,
    mode: ZoneMode,
    grants: &Grants,
    zone: &str,
    path: &[String],
    op: Op,
) -> Decision {
    let (allowed, reason) = outcome(is_admin_token, ceiling, mode, grants, zone, path, op);
    if !allowed {
        return Decision::deny(reason);
    }
    match reason {
        Reason::NamespaceAdmin => {
            Decision::allow(reason, grants.namespace_admin().unwrap_or_default())
        }
        Reason::ZoneRole | Reason::PathTuple => grants.check(zone, path, op),
        _ => Decision::allow(reason, Vec::new()),
    }
}

/// [`decide`] without the explanation, for the hot path (no allocation).
pub fn outcome(
    is_admin_token: bool,
    ceiling: Ceiling,
    mode: ZoneMode,
    grants: &Grants,
    zone: &str,
    path: &[String],
    op: Op,
) -> (bool, Reason) {
    let listed = match ceiling {
        Ceiling::Zones(Some(access)) if access.allows(op) => true,
        Ceiling::Zones(_) => return (false, Reason::Ceiling),
        Ceiling::NoZones => false,
    };
    if is_admin_token {
        return (true, Reason::AdminToken);
    }
    if grants.is_namespace_admin() {
        return (true, Reason::NamespaceAdmin);
    }
    if mode == ZoneMode::Open && listed {
        return (true, Reason::ZoneGrant);
    }
    match grants.allows(zone, path, op) {
        Some(reason) => (true, reason),
        None => (false, Reason::NoGrant),
    }
}

/// The listing rule with the same order: whether `path` in `zone` may appear in a listing
/// (it is readable, or a folder on the way to something readable).
pub fn visible(
    is_admin_token: bool,
    ceiling: Ceiling,
    mode: ZoneMode,
    grants: &Grants,
    zone: &str,
    path: &[String],
) -> bool {
    let listed = match ceiling {
        Ceiling::Zones(Some(access)) if access.read => true,
        Ceiling::Zones(_) => return false,
        Ceiling::NoZones => false,
    };
    if is_admin_token || grants.is_namespace_admin() || (mode == ZoneMode::Open && listed) {
        return true;
    }
    grants.visible(zone, path)
}
