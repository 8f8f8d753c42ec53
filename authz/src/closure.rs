//! The subject closure: the base subjects of an identity (its token, its user or agent) and
//! every group they are in, transitively. Built once per identity by a breadth-first walk over
//! `member` edges: iterative (no recursion, whatever the chain's length), cycle-safe (a group
//! is entered once), bounded in depth and in size (both fail closed).

use crate::model::{Error, ObjectRef, Relation, SubjectRef, Tuple};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// Memberships more than this many `member` edges away from a base subject are not reached.
pub const MAX_GROUP_DEPTH: usize = 32;
/// A subject in more groups than this is refused ("too many groups"); the caller denies.
pub const MAX_GROUPS: usize = 10_000;

/// How a group was reached: the edge that entered it and the group that edge came from.
#[derive(Debug, Clone)]
struct Via {
    /// `None` for a group that is itself a base subject (`group:<g>#member`).
    edge: Option<Tuple>,
    from: Option<String>,
    depth: usize,
}

/// An identity's subjects: its base subjects and the groups they are in.
#[derive(Clone, Default)]
pub struct SubjectSet {
    base: Vec<SubjectRef>,
    groups: HashMap<String, Via>,
    /// Groups in the order reached (nearest first), for stable output.
    order: Vec<String>,
    valid_until: Option<DateTime<Utc>>,
}

/// A summary: up to [`MAX_GROUPS`] groups with their edges is too much for a log line.
impl std::fmt::Debug for SubjectSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectSet")
            .field("base", &self.base)
            .field("groups", &self.order.len())
            .field("valid_until", &self.valid_until)
            .finish()
    }
}

impl SubjectSet {
    /// Walks `member` edges (on `group:` objects, live at `now`; other tuples are ignored) out
    /// from `base`. Fails with [`Error::TooManyGroups`] past [`MAX_GROUPS`].
    pub fn build(
        base: &[SubjectRef],
        member_edges: &[Tuple],
        now: DateTime<Utc>,
    ) -> Result<SubjectSet, Error> {
        let mut by_subject: HashMap<&SubjectRef, Vec<&Tuple>> = HashMap::new();
        for t in member_edges {
            if t.relation == Relation::Member
                && matches!(t.object, ObjectRef::Group(_))
                && t.is_live(now)
            {
                by_subject.entry(&t.subject).or_default().push(t);
            }
        }
        let mut set = SubjectSet {
            base: Vec::new(),
            ..SubjectSet::default()
        };
        for s in base {
            if !set.base.contains(s) {
                set.base.push(s.clone());
            }
            if let SubjectRef::GroupMember(g) = s {
                set.enter(g, None, None, 0)?;
            }
        }
        let mut frontier: Vec<SubjectRef> = set.base.clone();
        for depth in 1..=MAX_GROUP_DEPTH {
            let mut next = Vec::new();
            for node in &frontier {
                let Some(edges) = by_subject.get(node) else {
                    continue;
                };
                let from = match node {
                    SubjectRef::GroupMember(g) => Some(g.clone()),
                    _ => None,
                };
                for edge in edges {
                    set.valid_until = earliest(set.valid_until, edge.expires_at);
                    let ObjectRef::Group(g) = &edge.object else {
                        continue;
                    };
                    if set.groups.contains_key(g) {
                        continue;
                    }
                    set.enter(g, Some((*edge).clone()), from.clone(), depth)?;
                    next.push(SubjectRef::GroupMember(g.clone()));
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        Ok(set)
    }

    fn enter(
        &mut self,
        group: &str,
        edge: Option<Tuple>,
        from: Option<String>,
        depth: usize,
    ) -> Result<(), Error> {
        if self.groups.contains_key(group) {
            return Ok(());
        }
        if self.groups.len() >= MAX_GROUPS {
            return Err(Error::TooManyGroups { limit: MAX_GROUPS });
        }
        self.groups
            .insert(group.to_owned(), Via { edge, from, depth });
        self.order.push(group.to_owned());
        Ok(())
    }

    /// Whether `subject` is one of the set's subjects (`group:<g>#member` when in group g).
    pub fn contains(&self, subject: &SubjectRef) -> bool {
        match subject {
            SubjectRef::GroupMember(g) => self.groups.contains_key(g),
            other => self.base.contains(other),
        }
    }

    /// The base subjects, as given.
    pub fn base(&self) -> &[SubjectRef] {
        &self.base
    }

    /// The groups, nearest first.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// How many `member` edges separate the group from a base subject.
    pub fn depth(&self, group: &str) -> Option<usize> {
        self.groups.get(group).map(|v| v.depth)
    }

    /// The membership chain that reaches `group`, from a base subject outwards; empty for a
    /// base group or a group not in the set.
    pub fn path_to(&self, group: &str) -> Vec<Tuple> {
        let mut chain = Vec::new();
        let mut at = group;
        // Each step moves one level nearer a base subject, so this ends within the depth bound.
        while let Some(via) = self.groups.get(at) {
            if let Some(edge) = &via.edge {
                chain.push(edge.clone());
            }
            match &via.from {
                Some(prev) if chain.len() <= MAX_GROUP_DEPTH => at = prev,
                _ => break,
            }
        }
        chain.reverse();
        chain
    }

    /// The earliest expiry among the memberships that were walked: the set may shrink then.
    pub fn valid_until(&self) -> Option<DateTime<Utc>> {
        self.valid_until
    }
}

pub(crate) fn earliest(
    a: Option<DateTime<Utc>>,
    b: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
