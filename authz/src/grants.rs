//! Compiled grants: what one identity's subject set may do, per zone, as a zone role and a
//! prefix trie of folder grants. Compiled once (from the closure and the tuples that name its
//! subjects) and then consulted without any I/O: a check walks the path's components.
//!
//! The trie stores each granted folder once, whatever the number of tuples naming it, and
//! remembers only which subject granted it and until when, so a compiled set costs one node per
//! distinct path prefix.

use crate::closure::{SubjectSet, earliest};
use crate::decide::{Decision, Reason};
use crate::model::{DEFAULT_NAMESPACE, ObjectRef, Relation, SubjectRef, Tuple};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// The operation a check is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Read,
    Write,
}

impl Op {
    /// The file relation that grants the operation.
    pub fn relation(self) -> Relation {
        match self {
            Op::Read => Relation::CanRead,
            Op::Write => Relation::CanWrite,
        }
    }
}

/// A subject's role on a zone, the strongest of its zone tuples.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ZoneRole {
    #[default]
    None,
    Reader,
    Writer,
    Admin,
}

impl ZoneRole {
    fn of(relation: Relation) -> ZoneRole {
        match relation {
            Relation::Reader => ZoneRole::Reader,
            Relation::Writer => ZoneRole::Writer,
            Relation::Admin => ZoneRole::Admin,
            _ => ZoneRole::None,
        }
    }

    fn relation(self) -> Option<Relation> {
        match self {
            ZoneRole::None => None,
            ZoneRole::Reader => Some(Relation::Reader),
            ZoneRole::Writer => Some(Relation::Writer),
            ZoneRole::Admin => Some(Relation::Admin),
        }
    }

    /// Whether the role allows the operation on the whole zone.
    pub fn allows(self, op: Op) -> bool {
        match op {
            Op::Read => self >= ZoneRole::Reader,
            Op::Write => self >= ZoneRole::Writer,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ZoneRole::None => "none",
            ZoneRole::Reader => "reader",
            ZoneRole::Writer => "writer",
            ZoneRole::Admin => "admin",
        }
    }
}

impl fmt::Display for ZoneRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One grant: which subject (an index into `Grants::subjects`) and until when.
#[derive(Debug, Clone, Copy)]
struct Slot {
    subject: u32,
    expires_at: Option<DateTime<Utc>>,
}

/// Keeps the longer-lived of two grants of the same thing.
fn keep(old: Option<Slot>, new: Slot) -> Option<Slot> {
    match old {
        Some(o) => match (o.expires_at, new.expires_at) {
            (None, _) => Some(o),
            (Some(_), None) => Some(new),
            (Some(a), Some(b)) => Some(if b > a { new } else { o }),
        },
        None => Some(new),
    }
}

#[derive(Debug, Clone, Default)]
struct Node {
    children: BTreeMap<Box<str>, u32>,
    read: Option<Slot>,
    write: Option<Slot>,
}

#[derive(Debug, Clone)]
struct ZoneGrants {
    role: ZoneRole,
    role_slot: Option<Slot>,
    /// The folder trie; `nodes[0]` is the zone's root folder.
    nodes: Vec<Node>,
}

impl Default for ZoneGrants {
    fn default() -> Self {
        Self {
            role: ZoneRole::None,
            role_slot: None,
            nodes: vec![Node::default()],
        }
    }
}

impl ZoneGrants {
    fn insert(&mut self, path: &[String], write: bool, slot: Slot) {
        let mut at = 0usize;
        for c in path {
            let next = self.nodes.len();
            let child = *self.nodes[at]
                .children
                .entry(c.as_str().into())
                .or_insert_with(|| u32::try_from(next).unwrap_or(u32::MAX));
            if child as usize == next {
                self.nodes.push(Node::default());
            }
            at = child as usize;
        }
        let node = &mut self.nodes[at];
        if write {
            node.write = keep(node.write, slot);
        } else {
            node.read = keep(node.read, slot);
        }
    }

    /// The nearest granting folder at or above `path`: its depth and grant.
    fn covering(&self, path: &[String], op: Op) -> Option<(usize, Relation, Slot)> {
        let mut at = 0usize;
        for depth in 0..=path.len() {
            let node = &self.nodes[at];
            let hit = match op {
                Op::Read => node
                    .read
                    .map(|s| (Relation::CanRead, s))
                    .or(node.write.map(|s| (Relation::CanWrite, s))),
                Op::Write => node.write.map(|s| (Relation::CanWrite, s)),
            };
            if let Some((rel, slot)) = hit {
                return Some((depth, rel, slot));
            }
            let c = path.get(depth)?;
            at = *node.children.get(c.as_str())? as usize;
        }
        None
    }

    /// Whether `path` is inside a granted folder or on the way to one.
    fn visible(&self, path: &[String]) -> bool {
        if self.role.allows(Op::Read) {
            return true;
        }
        let mut at = 0usize;
        for c in path {
            let node = &self.nodes[at];
            if node.read.is_some() || node.write.is_some() {
                return true;
            }
            match node.children.get(c.as_str()) {
                Some(&next) => at = next as usize,
                None => return false,
            }
        }
        // Nodes exist only on the way to a grant, so reaching one means a grant at or below.
        let node = &self.nodes[at];
        node.read.is_some() || node.write.is_some() || !node.children.is_empty()
    }
}

/// What one identity may do, compiled from its subject set and the tuples naming it.
#[derive(Clone, Default)]
pub struct Grants {
    set: SubjectSet,
    subjects: Vec<SubjectRef>,
    zones: BTreeMap<String, ZoneGrants>,
    namespace_admin: Option<Slot>,
    valid_until: Option<DateTime<Utc>>,
}

/// A summary: the trie can hold a million nodes, and an identity that carries these grants
/// may be logged.
impl fmt::Debug for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grants")
            .field("set", &self.set)
            .field("zones", &self.zones.len())
            .field("trie_nodes", &self.trie_nodes())
            .field("namespace_admin", &self.is_namespace_admin())
            .field("valid_until", &self.valid_until)
            .finish()
    }
}

impl Grants {
    /// Compiles the grants of `set` from `tuples`; tuples that are expired at `now`, name other
    /// subjects, or are memberships are ignored.
    pub fn compile(set: &SubjectSet, tuples: &[Tuple], now: DateTime<Utc>) -> Grants {
        Self::compile_iter(set, tuples, now)
    }

    /// [`Grants::compile`] over any sequence of tuples, so a caller can stream rows.
    pub fn compile_iter<I>(set: &SubjectSet, tuples: I, now: DateTime<Utc>) -> Grants
    where
        I: IntoIterator,
        I::Item: Borrow<Tuple>,
    {
        let mut g = Grants {
            set: set.clone(),
            valid_until: set.valid_until(),
            ..Grants::default()
        };
        let mut interned: HashMap<SubjectRef, u32> = HashMap::new();
        for t in tuples {
            let t = t.borrow();
            if !t.is_live(now) || !set.contains(&t.subject) {
                continue;
            }
            let relevant = matches!(
                (&t.relation, &t.object),
                (Relation::Admin, ObjectRef::Namespace(_))
                    | (
                        Relation::Reader | Relation::Writer | Relation::Admin,
                        ObjectRef::Zone(_)
                    )
                    | (
                        Relation::CanRead | Relation::CanWrite,
                        ObjectRef::File { .. }
                    )
            );
            if !relevant {
                continue;
            }
            let subject = match interned.get(&t.subject) {
                Some(&i) => i,
                None => {
                    let i = u32::try_from(g.subjects.len()).unwrap_or(u32::MAX);
                    g.subjects.push(t.subject.clone());
                    interned.insert(t.subject.clone(), i);
                    i
                }
            };
            let slot = Slot {
                subject,
                expires_at: t.expires_at,
            };
            match (&t.relation, &t.object) {
                (Relation::Admin, ObjectRef::Namespace(n)) => {
                    if n != DEFAULT_NAMESPACE {
                        continue;
                    }
                    g.namespace_admin = keep(g.namespace_admin, slot);
                }
                (rel, ObjectRef::Zone(z)) => {
                    let zg = g.zones.entry(z.clone()).or_default();
                    let role = ZoneRole::of(*rel);
                    if role > zg.role {
                        zg.role = role;
                        zg.role_slot = Some(slot);
                    } else if role == zg.role {
                        zg.role_slot = keep(zg.role_slot, slot);
                    }
                }
                (rel, ObjectRef::File { zone, path }) => {
                    g.zones.entry(zone.clone()).or_default().insert(
                        path,
                        *rel == Relation::CanWrite,
                        slot,
                    );
                }
                _ => continue,
            }
            g.valid_until = earliest(g.valid_until, t.expires_at);
        }
        g
    }

    /// The decision for `op` on `path` (components below the zone root) in `zone`, from zone
    /// roles and folder grants alone: the model's `can_read`/`can_write`. The ceiling, zone
    /// modes and namespace admin are [`crate::decide::decide`]'s.
    pub fn check(&self, zone: &str, path: &[String], op: Op) -> Decision {
        let Some(zg) = self.zones.get(zone) else {
            return Decision::deny(Reason::NoGrant);
        };
        if zg.role.allows(op)
            && let (Some(slot), Some(rel)) = (zg.role_slot, zg.role.relation())
        {
            let t = self.tuple(slot, rel, ObjectRef::Zone(zone.to_owned()));
            return Decision::allow(Reason::ZoneRole, self.explain(slot, t));
        }
        match zg.covering(path, op) {
            Some((depth, rel, slot)) => {
                let object = ObjectRef::File {
                    zone: zone.to_owned(),
                    path: path[..depth].to_vec(),
                };
                let t = self.tuple(slot, rel, object);
                Decision::allow(Reason::PathTuple, self.explain(slot, t))
            }
            None => Decision::deny(Reason::NoGrant),
        }
    }

    /// [`Grants::check`] without the explanation (no allocation): `Some(ZoneRole)` or
    /// `Some(PathTuple)` when allowed, `None` when not.
    pub fn allows(&self, zone: &str, path: &[String], op: Op) -> Option<Reason> {
        let zg = self.zones.get(zone)?;
        if zg.role.allows(op) {
            return Some(Reason::ZoneRole);
        }
        zg.covering(path, op).map(|_| Reason::PathTuple)
    }

    /// The listing rule: `path` in `zone` is shown if it is inside a granted folder (or the
    /// zone role allows reading) or on the way to one.
    pub fn visible(&self, zone: &str, path: &[String]) -> bool {
        self.zones.get(zone).is_some_and(|zg| zg.visible(path))
    }

    /// Whether a subject of the set has `admin` on `namespace:default`.
    pub fn is_namespace_admin(&self) -> bool {
        self.namespace_admin.is_some()
    }

    /// The namespace-admin grant with its membership chain, if there is one.
    pub fn namespace_admin(&self) -> Option<Vec<Tuple>> {
        self.namespace_admin.map(|slot| {
            let t = self.tuple(
                slot,
                Relation::Admin,
                ObjectRef::Namespace(DEFAULT_NAMESPACE.to_owned()),
            );
            self.explain(slot, t)
        })
    }

    /// The strongest zone role of the set on `zone`.
    pub fn zone_role(&self, zone: &str) -> ZoneRole {
        self.zones.get(zone).map_or(ZoneRole::None, |z| z.role)
    }

    /// Zones where the set holds a role or a folder grant, by name.
    pub fn zones(&self) -> impl Iterator<Item = &str> {
        self.zones.keys().map(String::as_str)
    }

    /// The earliest expiry of anything the grants rest on: recompile by then.
    pub fn valid_until(&self) -> Option<DateTime<Utc>> {
        self.valid_until
    }

    /// Whether the grants may still be used at `now`.
    pub fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        self.valid_until.is_none_or(|v| now < v)
    }

    /// The subject set the grants were compiled for.
    pub fn subject_set(&self) -> &SubjectSet {
        &self.set
    }

    /// Folder-trie nodes over all zones (one per distinct granted path prefix, plus each
    /// zone's root): the size of the compiled grants.
    pub fn trie_nodes(&self) -> usize {
        self.zones.values().map(|z| z.nodes.len()).sum()
    }

    fn tuple(&self, slot: Slot, relation: Relation, object: ObjectRef) -> Tuple {
        Tuple {
            subject: self.subjects[slot.subject as usize].clone(),
            relation,
            object,
            expires_at: slot.expires_at,
        }
    }

    /// The membership chain to the granting subject, then the granting tuple.
    fn explain(&self, slot: Slot, granting: Tuple) -> Vec<Tuple> {
        let mut chain = match &self.subjects[slot.subject as usize] {
            SubjectRef::GroupMember(g) => self.set.path_to(g),
            _ => Vec::new(),
        };
        chain.push(granting);
        chain
    }
}
