//! Nexus Hub authorization: the model of `model.fga` (users, agents, services and tokens;
//! nested groups; zone roles; folder grants; the hub administrator) and its evaluator. Pure:
//! no I/O, no clock of its own (callers pass `now`), no async.
//!
//! The design keeps the database off the hot path:
//! - [`closure::SubjectSet`]: per identity, the base subjects and every group they are in,
//!   found once by an iterative, cycle-safe, depth- and size-bounded walk;
//! - [`grants::Grants`]: compiled once from the closure and the tuples naming its subjects, a
//!   zone role and a prefix trie of folder grants per zone, with the earliest expiry it rests
//!   on, so a cache knows when to rebuild;
//! - a check is then a walk down the trie along the path's components ([`Grants::check`]),
//!   wrapped by [`decide::decide`] in the hub's order: admin token, the token's zones as a
//!   ceiling, namespace admin, zone mode;
//! - [`check`] and [`expand`] decide straight from a tuple list, for `rebac check`/`expand`
//!   and as the reference the compiled form is tested against.
//!
//! Every decision carries the tuples that made it (`--explain`): the membership chain from the
//! subject outwards, then the granting tuple.

pub mod closure;
pub mod decide;
pub mod grants;
pub mod model;
mod reference;

pub use closure::{MAX_GROUP_DEPTH, MAX_GROUPS, SubjectSet};
pub use decide::{Access, Ceiling, Decision, Reason, ZoneMode, decide, outcome, visible};
pub use grants::{Grants, Op, ZoneRole};
pub use model::{Error, ObjectRef, Relation, SubjectRef, Tuple};
pub use reference::{check, expand};

#[cfg(test)]
mod tests;
