//! Who may do what to which path: the decision of SPEC §9 for one request.
//!
//! Order: the zones a token lists are the ceiling (nothing reaches past them, not even
//! `admin` on `namespace:default`); within it an admin token, then a namespace admin, may
//! do anything; then the zone's access mode: in an `open` zone a listed grant suffices,
//! while a `rebac` zone, or any zone for a token that lists none, needs a zone role or a
//! path tuple from the caller's compiled grants (`nexus_authz::decide`).

use super::path::{ZonePath, ZoneView};
use crate::metrics::Metrics;
use nexus_authz::decide::{Ceiling, Reason, ZoneMode, outcome, visible};
use nexus_authz::grants::{Grants, Op};
use nexus_wire::RpcError;
use nexus_wire::spec::ZoneGrant;
use std::collections::HashMap;
use std::sync::Arc;

/// Zone access modes by zone name; a zone not named is `open`.
pub type ZoneModes = HashMap<String, ZoneMode>;

/// The caller's access for one request: the path view and what decides over it.
#[derive(Debug, Clone)]
pub struct Access {
    pub view: ZoneView,
    admin: bool,
    /// True when the token lists zones: then they are exactly the view's, with their
    /// permissions, and they are the ceiling.
    lists: bool,
    modes: Arc<ZoneModes>,
    /// Present whenever a decision may need them (see [`Access::needs_grants`]).
    grants: Option<Arc<Grants>>,
    metrics: Option<Metrics>,
}

/// The view path's operation words, for messages.
fn verb(op: Op) -> &'static str {
    match op {
        Op::Read => "read",
        Op::Write => "write",
    }
}

impl Access {
    /// True when some decision for this caller consults ReBAC grants: it is not an admin
    /// token, and it lists no zones or one of its zones is in `rebac` mode.
    pub fn needs_grants(admin: bool, listed: &[ZoneGrant], modes: &ZoneModes) -> bool {
        !admin
            && (listed.is_empty()
                || listed
                    .iter()
                    .any(|g| modes.get(&g.zone_id) == Some(&ZoneMode::Rebac)))
    }

    /// The access of a caller. `lists` says the token lists zones, which `view` must then
    /// be the view of; `grants` must be present when [`Access::needs_grants`] says so, or
    /// every decision that needs them is a denial.
    pub fn new(
        view: ZoneView,
        admin: bool,
        lists: bool,
        modes: Arc<ZoneModes>,
        grants: Option<Arc<Grants>>,
        metrics: Option<Metrics>,
    ) -> Self {
        Self {
            view,
            admin,
            lists,
            modes,
            grants,
            metrics,
        }
    }

    /// The zone's access mode.
    pub fn mode(&self, zone: &str) -> ZoneMode {
        self.modes.get(zone).copied().unwrap_or(ZoneMode::Open)
    }

    /// What the token puts on `zone`.
    fn ceiling(&self, zone: &str) -> Ceiling {
        let grant = self.lists.then(|| self.view.permission(zone)).flatten();
        Ceiling::from_grant(self.lists, grant.map(|p| (p.can_read(), p.can_write())))
    }

    /// The decision for `op` on `zp`, and why (without the tuples that made it: this is
    /// asked once per entry of a walk).
    fn reason(&self, zp: &ZonePath, op: Op) -> (bool, Reason) {
        outcome(
            self.admin,
            self.ceiling(&zp.zone),
            self.mode(&zp.zone),
            self.grants(),
            &zp.zone,
            &zp.rel,
            op,
        )
    }

    fn grants(&self) -> &Grants {
        static NONE: std::sync::OnceLock<Grants> = std::sync::OnceLock::new();
        match &self.grants {
            Some(g) => g,
            None => NONE.get_or_init(Grants::default),
        }
    }

    /// True when `op` on `zp` is allowed.
    pub fn allows(&self, zp: &ZonePath, op: Op) -> bool {
        let (ok, reason) = self.reason(zp, op);
        self.count(op, ok, reason);
        ok
    }

    fn count(&self, op: Op, ok: bool, reason: Reason) {
        if let Some(m) = &self.metrics
            && !matches!(reason, Reason::AdminToken)
        {
            let outcome = if ok { "allowed" } else { "denied" };
            m.rebac_checks.with_label_values(&[verb(op), outcome]).inc();
        }
    }

    /// `Ok` when `op` on `zp` is allowed; otherwise the permission error naming the zone
    /// or the path.
    pub fn require(&self, zp: &ZonePath, op: Op) -> Result<(), RpcError> {
        let (ok, reason) = self.reason(zp, op);
        self.count(op, ok, reason);
        if ok {
            return Ok(());
        }
        // Past the ceiling: the zone-level message the token's own grants explain.
        if matches!(reason, Reason::Ceiling) {
            match op {
                Op::Read => zp.require_read()?,
                Op::Write => zp.require_write()?,
            }
            return Err(RpcError::permission_denied(format!(
                "permission denied: zone '{}' is not one of this token's zones",
                zp.zone
            )));
        }
        Err(RpcError::permission_denied(format!(
            "permission denied: no {} access to {}",
            verb(op),
            zp.display()
        )))
    }

    pub fn require_read(&self, zp: &ZonePath) -> Result<(), RpcError> {
        self.require(zp, Op::Read)
    }

    pub fn require_write(&self, zp: &ZonePath) -> Result<(), RpcError> {
        self.require(zp, Op::Write)
    }

    pub fn can_read(&self, zp: &ZonePath) -> bool {
        self.allows(zp, Op::Read)
    }

    /// True when the directory `zp` may be shown although it may not be read: it is on
    /// the way to something the caller may read. Never past the ceiling.
    pub fn on_the_way(&self, zp: &ZonePath) -> bool {
        visible(
            self.admin,
            self.ceiling(&zp.zone),
            self.mode(&zp.zone),
            self.grants(),
            &zp.zone,
            &zp.rel,
        )
    }

    /// Whether a walk shows `zp`, and whether it goes below it (directories only).
    pub fn shows(&self, zp: &ZonePath, is_dir: bool) -> Shown {
        // Not counted in the metrics: a walk asks once per entry.
        if self.reason(zp, Op::Read).0 {
            return Shown::Readable;
        }
        if is_dir && self.on_the_way(zp) {
            return Shown::OnTheWay;
        }
        Shown::Hidden
    }
}

/// What a walk does with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// The caller may read it.
    Readable,
    /// A directory on the way to something readable: listed, entered, not a result of a
    /// search.
    OnTheWay,
    /// Neither shown nor entered.
    Hidden,
}
