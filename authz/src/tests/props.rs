//! The compiled grants against the reference evaluator on random tuple sets over a small
//! universe (so that random tuples collide: nested groups, cycles, folders above folders,
//! zone roles, expiries on both sides of `now`).

use super::*;
use crate::closure::MAX_GROUP_DEPTH;
use crate::{Grants, Op, SubjectSet, ZoneRole, check, expand};
use chrono::Duration;
use proptest::prelude::*;

const KEY: &str = "0b8e2a4c-5f7d-4e1a-9c3b-2d6f8a1e4b7c";
const ZONES: [&str; 2] = ["z0", "z1"];
const PATHS: [&[&str]; 6] = [
    &[],
    &["a"],
    &["a", "b"],
    &["a", "b", "c"],
    &["d"],
    &["a", "e"],
];

fn concrete() -> Vec<SubjectRef> {
    vec![
        SubjectRef::User("alice".into()),
        SubjectRef::User("bob".into()),
        SubjectRef::Agent("bot".into()),
        SubjectRef::Token(KEY.into()),
    ]
}

fn groups() -> Vec<String> {
    (0..4).map(|i| format!("g{i}")).collect()
}

fn all_subjects() -> Vec<SubjectRef> {
    let mut s = concrete();
    s.extend(groups().into_iter().map(SubjectRef::GroupMember));
    s
}

fn file(zone: &str, p: &[&str]) -> ObjectRef {
    ObjectRef::File {
        zone: zone.into(),
        path: p.iter().map(|c| (*c).to_owned()).collect(),
    }
}

fn subject() -> impl Strategy<Value = SubjectRef> {
    proptest::sample::select(all_subjects())
}

fn expiry() -> impl Strategy<Value = Option<chrono::DateTime<chrono::Utc>>> {
    prop_oneof![
        6 => Just(None),
        1 => (-3i64..=3).prop_map(|m| Some(now() + Duration::minutes(m))),
    ]
}

fn a_tuple() -> impl Strategy<Value = Tuple> {
    let object_relation = prop_oneof![
        3 => proptest::sample::select(groups()).prop_map(|g| (Relation::Member, ObjectRef::Group(g))),
        2 => (proptest::sample::select(vec![Relation::Reader, Relation::Writer, Relation::Admin]),
              proptest::sample::select(ZONES.to_vec()))
            .prop_map(|(r, z)| (r, ObjectRef::Zone(z.into()))),
        4 => (proptest::sample::select(vec![Relation::CanRead, Relation::CanWrite]),
              proptest::sample::select(ZONES.to_vec()),
              proptest::sample::select(PATHS.to_vec()))
            .prop_map(|(r, z, p)| (r, file(z, p))),
        1 => Just((Relation::Admin, ObjectRef::Namespace("default".into()))),
    ];
    (subject(), object_relation, expiry()).prop_map(|(s, (r, o), e)| Tuple {
        subject: s,
        relation: r,
        object: o,
        expires_at: e,
    })
}

/// Checks that `because` proves `subject relation object` from live tuples of `tuples`.
fn proves(tuples: &[Tuple], subject: &SubjectRef, because: &[Tuple]) -> Result<(), String> {
    let Some((grant, chain)) = because.split_last() else {
        return Err("empty explanation".into());
    };
    if chain.len() > MAX_GROUP_DEPTH {
        return Err("chain longer than the depth bound".into());
    }
    let mut holder = subject.clone();
    for e in chain {
        if !tuples.contains(e) || !e.is_live(now()) || e.relation != Relation::Member {
            return Err(format!("{e} is not a live membership"));
        }
        if e.subject != holder {
            return Err(format!("{e} does not follow from {holder}"));
        }
        let ObjectRef::Group(g) = &e.object else {
            return Err(format!("{e} is not on a group"));
        };
        holder = SubjectRef::GroupMember(g.clone());
    }
    if !tuples.iter().any(|t| {
        t.subject == grant.subject
            && t.relation == grant.relation
            && t.object == grant.object
            && t.is_live(now())
    }) {
        return Err(format!("{grant} is not a live tuple"));
    }
    if grant.subject != holder {
        return Err(format!("{grant} is not held by {holder}"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// For every subject, zone, path and operation: the compiled grants decide as the
    /// reference does, and both explanations are proofs.
    #[test]
    fn compiled_grants_agree_with_the_reference(tuples in proptest::collection::vec(a_tuple(), 0..28)) {
        for s in all_subjects() {
            let set = SubjectSet::build(std::slice::from_ref(&s), &tuples, now()).expect("small closure");
            let g = Grants::compile(&set, &tuples, now());
            for zone in ZONES {
                for p in PATHS {
                    let obj = file(zone, p);
                    let ObjectRef::File { path, .. } = &obj else { unreachable!() };
                    for op in [Op::Read, Op::Write] {
                        let fast = g.check(zone, path, op);
                        let slow = check(&tuples, &s, op.relation(), &obj, now());
                        prop_assert_eq!(fast.allowed, slow.allowed, "{} {} {}", s, op.relation(), obj);
                        if fast.allowed {
                            prop_assert_eq!(proves(&tuples, &s, &fast.because), Ok(()));
                            prop_assert_eq!(proves(&tuples, &s, &slow.because), Ok(()));
                        } else {
                            prop_assert!(fast.because.is_empty() && slow.because.is_empty());
                        }
                    }
                    // Listing: readable, or a folder above something readable.
                    let below = PATHS.iter().any(|q| {
                        q.len() > p.len() && q.starts_with(p)
                            && check(&tuples, &s, Relation::CanRead, &file(zone, q), now()).allowed
                    }) || tuples.iter().any(|t| match &t.object {
                        ObjectRef::File { zone: z, path: tp } => z == zone
                            && tp.len() > p.len()
                            && tp.iter().zip(p.iter()).all(|(a, b)| a == b)
                            && t.is_live(now())
                            && set.contains(&t.subject),
                        _ => false,
                    });
                    let readable = check(&tuples, &s, Relation::CanRead, &obj, now()).allowed;
                    prop_assert_eq!(g.visible(zone, path), readable || below, "visible {} {}", s, obj);
                }
                let role = g.zone_role(zone);
                for (rel, min) in [(Relation::Reader, ZoneRole::Reader), (Relation::Writer, ZoneRole::Writer), (Relation::Admin, ZoneRole::Admin)] {
                    let r = check(&tuples, &s, rel, &ObjectRef::Zone(zone.into()), now());
                    prop_assert_eq!(role >= min, r.allowed, "{} {} zone:{}", s, rel, zone);
                }
            }
            for grp in groups() {
                let r = check(&tuples, &s, Relation::Member, &ObjectRef::Group(grp.clone()), now());
                prop_assert_eq!(set.contains(&SubjectRef::GroupMember(grp.clone())), r.allowed, "{} member {}", s, grp);
                if r.allowed && !r.because.is_empty() {
                    prop_assert_eq!(r.because.len(), set.path_to(&grp).len(), "shortest chains");
                }
            }
            let ns = ObjectRef::Namespace("default".into());
            prop_assert_eq!(g.is_namespace_admin(), check(&tuples, &s, Relation::Admin, &ns, now()).allowed);
        }
    }

    /// An identity of several base subjects may do what any one of them may.
    #[test]
    fn several_base_subjects_are_a_union(
        tuples in proptest::collection::vec(a_tuple(), 0..28),
        base in proptest::sample::subsequence(concrete(), 1..=3),
    ) {
        let set = SubjectSet::build(&base, &tuples, now()).expect("small closure");
        let g = Grants::compile(&set, &tuples, now());
        for zone in ZONES {
            for p in PATHS {
                let obj = file(zone, p);
                let ObjectRef::File { path, .. } = &obj else { unreachable!() };
                for op in [Op::Read, Op::Write] {
                    let any = base.iter().any(|s| check(&tuples, s, op.relation(), &obj, now()).allowed);
                    prop_assert_eq!(g.check(zone, path, op).allowed, any);
                }
            }
        }
    }

    /// `expand` lists exactly the subjects `check` allows, with proofs.
    #[test]
    fn expand_agrees_with_check(tuples in proptest::collection::vec(a_tuple(), 0..28)) {
        let mut objects: Vec<(Relation, ObjectRef)> = Vec::new();
        for zone in ZONES {
            for p in PATHS {
                objects.push((Relation::CanRead, file(zone, p)));
                objects.push((Relation::CanWrite, file(zone, p)));
            }
            for r in [Relation::Reader, Relation::Writer, Relation::Admin] {
                objects.push((r, ObjectRef::Zone(zone.into())));
            }
        }
        for g in groups() {
            objects.push((Relation::Member, ObjectRef::Group(g)));
        }
        objects.push((Relation::Admin, ObjectRef::Namespace("default".into())));
        for (rel, obj) in objects {
            let who = expand(&tuples, rel, &obj, now());
            for s in all_subjects() {
                let listed = who.iter().find(|(w, _)| *w == s);
                let allowed = check(&tuples, &s, rel, &obj, now()).allowed;
                let reflexive = matches!((&s, &obj), (SubjectRef::GroupMember(a), ObjectRef::Group(b)) if a == b);
                if reflexive {
                    continue;
                }
                prop_assert_eq!(listed.is_some(), allowed, "{} {} {}", s, rel, obj);
                if let Some((_, because)) = listed {
                    if rel == Relation::Member {
                        // A membership chain ends in the membership itself.
                        prop_assert!(!because.is_empty());
                    } else {
                        prop_assert_eq!(proves(&tuples, &s, because), Ok(()));
                    }
                }
            }
        }
    }

    /// Until `valid_until`, the grants compiled at `now` still decide as the reference does
    /// at that later time: the cache may keep them until then and no longer.
    #[test]
    fn grants_stay_right_until_they_say_so(
        tuples in proptest::collection::vec(a_tuple(), 0..28),
        s in subject(),
    ) {
        let set = SubjectSet::build(std::slice::from_ref(&s), &tuples, now()).expect("small closure");
        let g = Grants::compile(&set, &tuples, now());
        let until = g.valid_until().unwrap_or(now() + Duration::days(365));
        for t in [now(), until - Duration::seconds(1)] {
            if t < now() {
                continue;
            }
            for zone in ZONES {
                for p in PATHS {
                    let obj = file(zone, p);
                    let ObjectRef::File { path, .. } = &obj else { unreachable!() };
                    for op in [Op::Read, Op::Write] {
                        let later = check(&tuples, &s, op.relation(), &obj, t).allowed;
                        prop_assert_eq!(g.check(zone, path, op).allowed, later, "{} at {}", obj, t);
                    }
                }
            }
        }
    }
}

fn a_ceiling() -> impl Strategy<Value = crate::Ceiling> {
    use crate::{Access, Ceiling};
    prop_oneof![
        Just(Ceiling::NoZones),
        Just(Ceiling::Zones(None)),
        (any::<bool>(), any::<bool>())
            .prop_map(|(read, write)| Ceiling::Zones(Some(Access { read, write }))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The hub's decision, spelled out over the reference: within the ceiling, and an admin
    /// token, namespace admin, an open zone the token lists, or the file relation.
    /// `outcome` and `decide` agree, and `visible` follows the same order.
    #[test]
    fn the_decision_order_over_the_reference(
        tuples in proptest::collection::vec(a_tuple(), 0..28),
        s in subject(),
        admin in proptest::bool::weighted(0.1),
        ceiling in a_ceiling(),
        rebac in any::<bool>(),
    ) {
        use crate::{Ceiling, ZoneMode, decide, outcome, visible};
        let mode = if rebac { ZoneMode::Rebac } else { ZoneMode::Open };
        let set = SubjectSet::build(std::slice::from_ref(&s), &tuples, now()).expect("small closure");
        let g = Grants::compile(&set, &tuples, now());
        let ns = ObjectRef::Namespace("default".into());
        let ns_admin = check(&tuples, &s, Relation::Admin, &ns, now()).allowed;
        for zone in ZONES {
            for p in PATHS {
                let obj = file(zone, p);
                let ObjectRef::File { path, .. } = &obj else { unreachable!() };
                for op in [Op::Read, Op::Write] {
                    let within = match ceiling {
                        Ceiling::NoZones => true,
                        Ceiling::Zones(a) => a.is_some_and(|a| a.allows(op)),
                    };
                    let listed = matches!(ceiling, Ceiling::Zones(Some(_)));
                    let related = check(&tuples, &s, op.relation(), &obj, now()).allowed;
                    let want = within
                        && (admin || ns_admin || (mode == ZoneMode::Open && listed) || related);
                    let d = decide(admin, ceiling, mode, &g, zone, path, op);
                    prop_assert_eq!(d.allowed, want, "{} {:?} {:?} {:?}", obj, op, ceiling, mode);
                    prop_assert_eq!(outcome(admin, ceiling, mode, &g, zone, path, op), (d.allowed, d.reason));
                    if d.allowed && !d.because.is_empty() {
                        prop_assert_eq!(proves(&tuples, &s, &d.because), Ok(()));
                    }
                }
                let readable = decide(admin, ceiling, mode, &g, zone, path, Op::Read).allowed;
                let shown = visible(admin, ceiling, mode, &g, zone, path);
                prop_assert!(shown || !readable, "readable but hidden: {}", obj);
                if shown && !readable {
                    prop_assert!(!admin && g.visible(zone, path), "hidden folder shown: {}", obj);
                }
            }
        }
    }
}
