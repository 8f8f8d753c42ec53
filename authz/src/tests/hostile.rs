use super::*;
use crate::closure::{MAX_GROUP_DEPTH, MAX_GROUPS};
use crate::model::Error;
use crate::{Grants, Op, Reason, SubjectSet, check, expand};

fn chain(len: usize) -> Vec<Tuple> {
    let mut t = vec![Tuple::new(
        SubjectRef::User("alice".into()),
        Relation::Member,
        ObjectRef::Group("g0".into()),
    )];
    for i in 1..len {
        t.push(Tuple::new(
            SubjectRef::GroupMember(format!("g{}", i - 1)),
            Relation::Member,
            ObjectRef::Group(format!("g{i}")),
        ));
    }
    t
}

/// A 10,000-deep chain: the walk is iterative and stops at the depth bound (fail closed).
#[test]
fn a_ten_thousand_deep_group_chain_stops_at_the_depth_bound() {
    let mut tuples = chain(10_000);
    // The last group of the chain grants a folder: too far away to count.
    tuples.push(Tuple::new(
        SubjectRef::GroupMember("g9999".into()),
        Relation::CanRead,
        ObjectRef::parse("file:/zone/eng/far").expect("object"),
    ));
    tuples.push(Tuple::new(
        SubjectRef::GroupMember(format!("g{}", MAX_GROUP_DEPTH - 1)),
        Relation::CanRead,
        ObjectRef::parse("file:/zone/eng/near").expect("object"),
    ));
    let alice = SubjectRef::User("alice".into());
    let set = SubjectSet::build(std::slice::from_ref(&alice), &tuples, now()).expect("closure");
    assert_eq!(set.groups().count(), MAX_GROUP_DEPTH);
    let last = format!("g{}", MAX_GROUP_DEPTH - 1);
    assert!(set.contains(&SubjectRef::GroupMember(last.clone())));
    assert!(!set.contains(&SubjectRef::GroupMember(format!("g{MAX_GROUP_DEPTH}"))));
    assert_eq!(set.path_to(&last).len(), MAX_GROUP_DEPTH);

    let g = Grants::compile(&set, &tuples, now());
    assert!(g.check("eng", &path("near"), Op::Read).allowed);
    assert!(!g.check("eng", &path("far"), Op::Read).allowed);
    let d = g.check("eng", &path("near"), Op::Read);
    assert_eq!(d.because.len(), MAX_GROUP_DEPTH + 1);

    for (group, want) in [(last.as_str(), true), ("g32", false), ("g9999", false)] {
        let r = check(
            &tuples,
            &alice,
            Relation::Member,
            &ObjectRef::Group(group.into()),
            now(),
        );
        assert_eq!(r.allowed, want, "{group}");
    }
    let near = ObjectRef::parse("file:/zone/eng/near").expect("object");
    let who = expand(&tuples, Relation::CanRead, &near, now());
    assert!(who.iter().any(|(s, _)| *s == alice));
    let far = ObjectRef::parse("file:/zone/eng/far").expect("object");
    let who = expand(&tuples, Relation::CanRead, &far, now());
    assert!(!who.iter().any(|(s, _)| *s == alice));
    assert_eq!(
        who.len(),
        MAX_GROUP_DEPTH + 1,
        "the userset and 32 levels of members"
    );

    // From the middle of the chain as a group's members: the same bound, counted from there.
    let mid = SubjectRef::GroupMember("g5000".into());
    let set = SubjectSet::build(std::slice::from_ref(&mid), &tuples, now()).expect("closure");
    assert_eq!(set.groups().count(), MAX_GROUP_DEPTH + 1);
    assert!(set.contains(&SubjectRef::GroupMember("g5032".into())));
    assert!(!set.contains(&SubjectRef::GroupMember("g5033".into())));
}

/// More groups than the bound: the closure fails and the reference denies.
#[test]
fn too_many_groups_fails_closed() {
    let alice = SubjectRef::User("alice".into());
    let wide = |n: usize| -> Vec<Tuple> {
        let mut t: Vec<Tuple> = (0..n)
            .map(|i| {
                Tuple::new(
                    alice.clone(),
                    Relation::Member,
                    ObjectRef::Group(format!("g{i}")),
                )
            })
            .collect();
        t.push(Tuple::new(
            SubjectRef::GroupMember("g0".into()),
            Relation::Admin,
            ObjectRef::Namespace("default".into()),
        ));
        t
    };
    let at_limit = wide(MAX_GROUPS);
    let set =
        SubjectSet::build(std::slice::from_ref(&alice), &at_limit, now()).expect("at the limit");
    assert_eq!(set.groups().count(), MAX_GROUPS);
    let ns = ObjectRef::Namespace("default".into());
    assert!(check(&at_limit, &alice, Relation::Admin, &ns, now()).allowed);

    let over = wide(MAX_GROUPS + 1);
    let err = SubjectSet::build(std::slice::from_ref(&alice), &over, now()).expect_err("over");
    assert_eq!(err, Error::TooManyGroups { limit: MAX_GROUPS });
    assert!(err.to_string().contains("too many groups"));
    let d = check(&over, &alice, Relation::Admin, &ns, now());
    assert_eq!((d.allowed, d.reason), (false, Reason::TooManyGroups));
}

/// A million grants for one subject, streamed: the compiled form is one trie node per distinct
/// path prefix, however many tuples name it.
#[test]
fn a_million_tuples_for_one_subject_compile_to_one_node_per_prefix() {
    const N: usize = 1_000_000;
    let alice = SubjectRef::User("alice".into());
    let set = SubjectSet::build(std::slice::from_ref(&alice), &[], now()).expect("closure");
    let stream = |distinct_leaves: usize| {
        let alice = alice.clone();
        (0..N).map(move |i| {
            let leaf = i % distinct_leaves;
            Tuple::new(
                alice.clone(),
                if i % 2 == 0 {
                    Relation::CanRead
                } else {
                    Relation::CanWrite
                },
                ObjectRef::File {
                    zone: "big".into(),
                    path: vec![
                        "shared".into(),
                        format!("d{}", leaf / 1000),
                        format!("f{}", leaf % 1000),
                    ],
                },
            )
        })
    };
    // A million distinct files under 1,000 folders: root + shared + 1,000 + 1,000,000 nodes.
    let g = Grants::compile_iter(&set, stream(N), now());
    assert_eq!(g.trie_nodes(), 1 + 1 + 1_000 + N);
    assert!(g.check("big", &path("shared/d999/f999"), Op::Read).allowed);
    assert!(!g.check("big", &path("shared/d999"), Op::Read).allowed);
    assert!(g.visible("big", &path("shared/d999")));
    drop(g);
    // A million tuples naming 2,000 files: 2,000 leaves, not a million.
    let g = Grants::compile_iter(&set, stream(2_000), now());
    assert_eq!(g.trie_nodes(), 1 + 1 + 2 + 2_000);
    assert!(g.check("big", &path("shared/d1/f999/x"), Op::Write).allowed);
}

/// Debug output (an identity carrying grants may be logged) is a summary, not the trie.
#[test]
fn debug_output_stays_small_whatever_the_grants() {
    let alice = SubjectRef::User("alice".into());
    let mut tuples = chain(MAX_GROUP_DEPTH);
    tuples.extend((0..10_000).map(|i| {
        Tuple::new(
            alice.clone(),
            Relation::CanRead,
            ObjectRef::File {
                zone: "eng".into(),
                path: vec![format!("f{i}")],
            },
        )
    }));
    let set = SubjectSet::build(std::slice::from_ref(&alice), &tuples, now()).expect("closure");
    let g = Grants::compile(&set, &tuples, now());
    assert_eq!(g.trie_nodes(), 10_001);
    let text = format!("{g:?}");
    assert!(text.len() < 300, "{text}");
    assert!(text.contains("trie_nodes: 10001"), "{text}");
}
