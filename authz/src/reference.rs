//! The reference evaluator: the model's relations decided straight from a list of tuples, with
//! no closure cache and no trie. It answers `rebac check` and `rebac expand`, and is what the
//! compiled grants are tested against (and what is tested against OpenFGA).
//!
//! It shares only the vocabulary with [`crate::closure`] and [`crate::grants`]: memberships are
//! found level by level by scanning every edge, folders by comparing paths.

use crate::closure::{MAX_GROUP_DEPTH, MAX_GROUPS};
use crate::decide::{Decision, Reason};
use crate::model::{ObjectRef, Relation, SubjectRef, Tuple, check_relation_on};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet, VecDeque};

/// Does `subject` have `relation` on `object` at `now`? The model's semantics exactly (member
/// on groups, reader/writer/admin on zones, can_read/can_write on files, admin on the
/// namespace), with the group depth and size bounds; no ceiling and no zone mode.
pub fn check(
    tuples: &[Tuple],
    subject: &SubjectRef,
    relation: Relation,
    object: &ObjectRef,
    now: DateTime<Utc>,
) -> Decision {
    if check_relation_on(relation, object).is_err() {
        return Decision::deny(Reason::NoGrant);
    }
    let live: Vec<&Tuple> = tuples.iter().filter(|t| t.is_live(now)).collect();
    let Some(chains) = memberships(&live, subject) else {
        return Decision::deny(Reason::TooManyGroups);
    };
    // The chain by which `subject` is (or is in) `s`.
    let holds = |s: &SubjectRef| -> Option<Vec<Tuple>> {
        if s == subject {
            return Some(Vec::new());
        }
        match s {
            SubjectRef::GroupMember(g) => chains
                .get(g)
                .map(|c| c.iter().map(|t| (*t).clone()).collect()),
            _ => None,
        }
    };
    if let (Relation::Member, ObjectRef::Group(g)) = (relation, object) {
        return match holds(&SubjectRef::GroupMember(g.clone())) {
            Some(chain) => Decision::allow(Reason::Membership, chain),
            None => Decision::deny(Reason::NoGrant),
        };
    }
    for t in &live {
        let Some(reason) = grants(t, relation, object) else {
            continue;
        };
        if let Some(mut chain) = holds(&t.subject) {
            chain.push((*t).clone());
            return Decision::allow(reason, chain);
        }
    }
    Decision::deny(Reason::NoGrant)
}

/// Whether tuple `t` (whatever its subject) confers `relation` on `object`, and as what.
fn grants(t: &Tuple, relation: Relation, object: &ObjectRef) -> Option<Reason> {
    use Relation::*;
    match (&t.object, object) {
        (ObjectRef::Namespace(a), ObjectRef::Namespace(b)) if a == b => {
            (relation == Admin && t.relation == Admin).then_some(Reason::NamespaceAdmin)
        }
        (ObjectRef::Zone(a), ObjectRef::Zone(b)) if a == b => {
            zone_implies(t.relation, relation).then_some(Reason::ZoneRole)
        }
        (ObjectRef::Zone(a), ObjectRef::File { zone, .. }) if a == zone => {
            let needed = if relation == CanWrite { Writer } else { Reader };
            zone_implies(t.relation, needed).then_some(Reason::ZoneRole)
        }
        (ObjectRef::File { zone: za, path: pa }, ObjectRef::File { zone: zb, path: pb })
            if za == zb && pb.starts_with(pa) =>
        {
            let ok = t.relation == CanWrite || (t.relation == CanRead && relation == CanRead);
            ok.then_some(Reason::PathTuple)
        }
        _ => None,
    }
}

/// admin ⊇ writer ⊇ reader.
fn zone_implies(held: Relation, wanted: Relation) -> bool {
    let rank = |r: Relation| match r {
        Relation::Reader => 1,
        Relation::Writer => 2,
        Relation::Admin => 3,
        _ => 0,
    };
    rank(held) > 0 && rank(wanted) > 0 && rank(held) >= rank(wanted)
}

/// The groups `subject` is in, each with its (shortest) membership chain, found level by
/// level up to [`MAX_GROUP_DEPTH`] edges; `None` past [`MAX_GROUPS`] groups.
fn memberships<'a>(
    live: &[&'a Tuple],
    subject: &SubjectRef,
) -> Option<HashMap<String, Vec<&'a Tuple>>> {
    let edges: Vec<&Tuple> = live
        .iter()
        .copied()
        .filter(|t| t.relation == Relation::Member && matches!(t.object, ObjectRef::Group(_)))
        .collect();
    let mut chains: HashMap<String, Vec<&Tuple>> = HashMap::new();
    // A group's members as a subject: the group itself is reached with no edge.
    if let SubjectRef::GroupMember(g) = subject {
        chains.insert(g.clone(), Vec::new());
    }
    for _level in 0..MAX_GROUP_DEPTH {
        let mut found: HashMap<String, Vec<&Tuple>> = HashMap::new();
        for e in &edges {
            let ObjectRef::Group(to) = &e.object else {
                continue;
            };
            if chains.contains_key(to) || found.contains_key(to) {
                continue;
            }
            let via = if &e.subject == subject {
                Some(Vec::new())
            } else if let SubjectRef::GroupMember(from) = &e.subject {
                chains.get(from).cloned()
            } else {
                None
            };
            if let Some(mut chain) = via {
                chain.push(*e);
                found.insert(to.clone(), chain);
            }
        }
        if found.is_empty() {
            break;
        }
        chains.extend(found);
        if chains.len() > MAX_GROUPS {
            return None;
        }
    }
    Some(chains)
}

/// Who has `relation` on `object` at `now`, and why: each subject (usersets included) once,
/// nearest first, with the chain of tuples from it to the granting tuple.
pub fn expand(
    tuples: &[Tuple],
    relation: Relation,
    object: &ObjectRef,
    now: DateTime<Utc>,
) -> Vec<(SubjectRef, Vec<Tuple>)> {
    if check_relation_on(relation, object).is_err() {
        return Vec::new();
    }
    let live: Vec<&Tuple> = tuples.iter().filter(|t| t.is_live(now)).collect();
    let mut members_of: HashMap<&str, Vec<&Tuple>> = HashMap::new();
    for t in &live {
        if let (Relation::Member, ObjectRef::Group(g)) = (t.relation, &t.object) {
            members_of.entry(g.as_str()).or_default().push(t);
        }
    }
    let mut seen: HashSet<SubjectRef> = HashSet::new();
    let mut queue: VecDeque<(SubjectRef, Vec<Tuple>, usize)> = VecDeque::new();
    let mut out = Vec::new();
    if let (Relation::Member, ObjectRef::Group(g)) = (relation, object) {
        // The group's own userset is where the walk starts, not an answer.
        let start = SubjectRef::GroupMember(g.clone());
        seen.insert(start.clone());
        queue.push_back((start, Vec::new(), 0));
    } else {
        for t in &live {
            if grants(t, relation, object).is_some() && seen.insert(t.subject.clone()) {
                out.push((t.subject.clone(), vec![(*t).clone()]));
                queue.push_back((t.subject.clone(), vec![(*t).clone()], 0));
            }
        }
    }
    while let Some((subject, chain, dist)) = queue.pop_front() {
        let SubjectRef::GroupMember(g) = &subject else {
            continue;
        };
        if dist >= MAX_GROUP_DEPTH {
            continue;
        }
        for e in members_of.get(g.as_str()).into_iter().flatten() {
            if !seen.insert(e.subject.clone()) {
                continue;
            }
            let mut c = Vec::with_capacity(chain.len() + 1);
            c.push((*e).clone());
            c.extend(chain.iter().cloned());
            out.push((e.subject.clone(), c.clone()));
            queue.push_back((e.subject.clone(), c, dist + 1));
        }
    }
    out
}
