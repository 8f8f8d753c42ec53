use super::*;
use crate::decide::{Access, Ceiling, ZoneMode, decide, visible};
use crate::{Grants, Op, Reason, SubjectSet, ZoneRole, check, expand};
use chrono::Duration;

fn user(id: &str) -> SubjectRef {
    SubjectRef::User(id.into())
}

fn compile(base: &[SubjectRef], tuples: &[Tuple]) -> Grants {
    let set = SubjectSet::build(base, tuples, now()).expect("closure");
    Grants::compile(&set, tuples, now())
}

/// The seed's walkthrough, hub-wide in zone `eng`.
fn seed() -> Vec<Tuple> {
    vec![
        tuple("user:alice", "member", "group:engineering"),
        tuple("user:alice", "can_read", "file:/zone/eng/workspace"),
        tuple(
            "user:alice",
            "can_write",
            "file:/zone/eng/workspace/alice-files",
        ),
        tuple(
            "group:engineering",
            "can_read",
            "file:/zone/eng/shared/engineering",
        ),
        tuple("agent:bot-analyzer", "member", "group:bots"),
    ]
}

#[test]
fn the_seed_example_decides_as_documented() {
    let tuples = seed();
    let g = compile(&[user("alice")], &tuples);
    let cases = [
        ("workspace", Op::Read, true),
        ("workspace/notes/a.md", Op::Read, true),
        ("workspace", Op::Write, false),
        ("workspace/other", Op::Write, false),
        ("workspace/alice-files", Op::Write, true),
        ("workspace/alice-files/x/y", Op::Write, true),
        ("workspace/alice-files/x", Op::Read, true),
        ("shared/engineering/doc", Op::Read, true),
        ("shared/engineering/doc", Op::Write, false),
        ("shared", Op::Read, false),
        ("", Op::Read, false),
        ("workspacex", Op::Read, false),
    ];
    for (p, op, want) in cases {
        let d = g.check("eng", &path(p), op);
        assert_eq!(d.allowed, want, "{p} {op:?}");
        let relation = op.relation();
        let object = ObjectRef::File {
            zone: "eng".into(),
            path: path(p),
        };
        let r = check(&tuples, &user("alice"), relation, &object, now());
        assert_eq!(r.allowed, want, "reference: {p} {op:?}");
        assert_eq!(r.because, d.because, "same explanation for {p}");
    }
    // Nothing in another zone, and nothing for someone else.
    assert!(!g.check("ops", &path("workspace"), Op::Read).allowed);
    let bob = compile(&[user("bob")], &tuples);
    assert!(!bob.check("eng", &path("workspace"), Op::Read).allowed);

    // The explanation: membership, then the group's grant.
    let d = g.check("eng", &path("shared/engineering/doc"), Op::Read);
    assert_eq!(d.reason, Reason::PathTuple);
    assert_eq!(
        d.because,
        vec![
            tuple("user:alice", "member", "group:engineering"),
            tuple(
                "group:engineering#member",
                "can_read",
                "file:/zone/eng/shared/engineering"
            ),
        ]
    );
    // A read under a can_write folder is explained by the can_write tuple.
    let d = g.check("eng", &path("workspace/alice-files/x"), Op::Read);
    assert_eq!(
        d.because,
        vec![tuple("user:alice", "can_read", "file:/zone/eng/workspace")],
        "the nearest folder above decides"
    );
    let groups: Vec<&str> = g.subject_set().groups().collect();
    assert_eq!(groups, ["engineering"]);
}

#[test]
fn listing_shows_the_way_to_grants_and_nothing_else() {
    let g = compile(&[user("alice")], &seed());
    for (p, want) in [
        ("", true),
        ("workspace", true),
        ("workspace/anything/below", true),
        ("shared", true),
        ("shared/engineering", true),
        ("shared/engineering/x", true),
        ("shared/marketing", false),
        ("other", false),
        ("workspacex", false),
    ] {
        assert_eq!(g.visible("eng", &path(p)), want, "{p:?}");
    }
    assert!(
        !g.visible("ops", &[]),
        "no grant in the zone: not even its root"
    );
    let reader = compile(
        &[user("carol")],
        &[tuple("user:carol", "reader", "zone:ops")],
    );
    assert!(reader.visible("ops", &path("any/thing")));
    assert_eq!(reader.zone_role("ops"), ZoneRole::Reader);
    assert_eq!(reader.zone_role("eng"), ZoneRole::None);
    assert_eq!(reader.zones().collect::<Vec<_>>(), ["ops"]);
}

#[test]
fn zone_roles_nest_and_cover_the_whole_zone() {
    let tuples = vec![
        tuple("user:r", "reader", "zone:eng"),
        tuple("user:w", "writer", "zone:eng"),
        tuple("user:a", "admin", "zone:eng"),
    ];
    for (who, read, write) in [("r", true, false), ("w", true, true), ("a", true, true)] {
        let g = compile(&[user(who)], &tuples);
        assert_eq!(g.check("eng", &path("x/y"), Op::Read).allowed, read);
        assert_eq!(g.check("eng", &path("x/y"), Op::Write).allowed, write);
        assert_eq!(g.check("eng", &[], Op::Write).allowed, write);
        let d = g.check("eng", &path("x"), Op::Read);
        assert_eq!(d.reason, Reason::ZoneRole);
        for (rel, want) in [("reader", true), ("writer", write), ("admin", who == "a")] {
            let r = check(
                &tuples,
                &user(who),
                rel.parse().expect("relation"),
                &ObjectRef::Zone("eng".into()),
                now(),
            );
            assert_eq!(r.allowed, want, "{who} {rel}");
        }
    }
}

#[test]
fn the_decision_order_puts_the_ceiling_first() {
    let tuples = vec![
        tuple("user:alice", "can_write", "file:/zone/eng"),
        tuple("user:alice", "admin", "zone:ops"),
        tuple("user:root", "member", "group:admins"),
        tuple("group:admins", "admin", "namespace:default"),
    ];
    let alice = compile(&[user("alice")], &tuples);
    let root = compile(&[user("root")], &tuples);
    let rw = Access {
        read: true,
        write: true,
    };
    let ro = Access {
        read: true,
        write: false,
    };
    let p = path("a/b");
    let run =
        |g: &Grants, c: Ceiling, m: ZoneMode, z: &str, op: Op| decide(false, c, m, g, z, &p, op);

    // An admin token passes everything within its own zones, if it lists any.
    let none = Grants::default();
    let d = decide(
        true,
        Ceiling::NoZones,
        ZoneMode::Rebac,
        &none,
        "x",
        &p,
        Op::Write,
    );
    assert_eq!((d.allowed, d.reason), (true, Reason::AdminToken));
    let d = decide(
        true,
        Ceiling::Zones(Some(rw)),
        ZoneMode::Rebac,
        &none,
        "x",
        &p,
        Op::Write,
    );
    assert_eq!((d.allowed, d.reason), (true, Reason::AdminToken));
    let d = decide(
        true,
        Ceiling::Zones(None),
        ZoneMode::Rebac,
        &none,
        "x",
        &p,
        Op::Read,
    );
    assert_eq!((d.allowed, d.reason), (false, Reason::Ceiling));
    let d = decide(
        true,
        Ceiling::Zones(Some(ro)),
        ZoneMode::Open,
        &none,
        "x",
        &p,
        Op::Write,
    );
    assert_eq!((d.allowed, d.reason), (false, Reason::Ceiling));
    assert!(!visible(
        true,
        Ceiling::Zones(None),
        ZoneMode::Open,
        &none,
        "x",
        &p
    ));
    assert!(visible(
        true,
        Ceiling::NoZones,
        ZoneMode::Rebac,
        &none,
        "x",
        &p
    ));

    // A zone the token does not list: nothing passes, not even namespace admin.
    for g in [&alice, &root] {
        for mode in [ZoneMode::Open, ZoneMode::Rebac] {
            let d = run(g, Ceiling::Zones(None), mode, "eng", Op::Read);
            assert!(!d.allowed);
            assert_eq!(d.reason, Reason::Ceiling);
            assert!(!visible(false, Ceiling::Zones(None), mode, g, "eng", &p));
        }
    }
    // A read-only zone grant stays read-only whatever the tuples say.
    for g in [&alice, &root] {
        let d = run(
            g,
            Ceiling::Zones(Some(ro)),
            ZoneMode::Rebac,
            "eng",
            Op::Write,
        );
        assert_eq!((d.allowed, d.reason), (false, Reason::Ceiling));
        let d = run(
            g,
            Ceiling::Zones(Some(ro)),
            ZoneMode::Open,
            "eng",
            Op::Write,
        );
        assert_eq!((d.allowed, d.reason), (false, Reason::Ceiling));
    }
    // Namespace admin within the ceiling, with its chain.
    let d = run(
        &root,
        Ceiling::Zones(Some(rw)),
        ZoneMode::Rebac,
        "eng",
        Op::Write,
    );
    assert_eq!(d.reason, Reason::NamespaceAdmin);
    assert_eq!(d.because.len(), 2);
    let d = run(&root, Ceiling::NoZones, ZoneMode::Rebac, "any", Op::Write);
    assert_eq!((d.allowed, d.reason), (true, Reason::NamespaceAdmin));

    // Open zone: a listed zone grant suffices; a token listing no zones needs tuples.
    let nobody = Grants::default();
    let d = run(
        &nobody,
        Ceiling::Zones(Some(rw)),
        ZoneMode::Open,
        "eng",
        Op::Write,
    );
    assert_eq!((d.allowed, d.reason), (true, Reason::ZoneGrant));
    let d = run(&nobody, Ceiling::NoZones, ZoneMode::Open, "eng", Op::Read);
    assert_eq!((d.allowed, d.reason), (false, Reason::NoGrant));
    let d = run(&alice, Ceiling::NoZones, ZoneMode::Open, "ops", Op::Write);
    assert_eq!((d.allowed, d.reason), (true, Reason::ZoneRole));

    // Rebac zone: the zone grant is necessary, not sufficient.
    let d = run(
        &nobody,
        Ceiling::Zones(Some(rw)),
        ZoneMode::Rebac,
        "eng",
        Op::Read,
    );
    assert_eq!((d.allowed, d.reason), (false, Reason::NoGrant));
    let d = run(
        &alice,
        Ceiling::Zones(Some(rw)),
        ZoneMode::Rebac,
        "eng",
        Op::Write,
    );
    assert_eq!((d.allowed, d.reason), (true, Reason::PathTuple));
    let d = run(&alice, Ceiling::NoZones, ZoneMode::Rebac, "eng", Op::Write);
    assert!(d.allowed);
    assert!(!visible(
        false,
        Ceiling::Zones(Some(rw)),
        ZoneMode::Rebac,
        &nobody,
        "eng",
        &p
    ));
    assert!(visible(
        false,
        Ceiling::Zones(Some(rw)),
        ZoneMode::Open,
        &nobody,
        "eng",
        &p
    ));
    // A write-only grant lists nothing.
    let wo = Access {
        read: false,
        write: true,
    };
    assert!(!visible(
        false,
        Ceiling::Zones(Some(wo)),
        ZoneMode::Open,
        &alice,
        "eng",
        &p
    ));
    assert_eq!(
        Ceiling::from_grant(true, Some((true, false))),
        Ceiling::Zones(Some(ro))
    );
    assert_eq!(Ceiling::from_grant(false, None), Ceiling::NoZones);
    assert_eq!("rebac".parse::<ZoneMode>().expect("mode"), ZoneMode::Rebac);
    assert!("closed".parse::<ZoneMode>().is_err());
}

#[test]
fn group_cycles_terminate_and_still_grant() {
    let tuples = vec![
        tuple("user:alice", "member", "group:a"),
        tuple("group:a#member", "member", "group:b"),
        tuple("group:b#member", "member", "group:c"),
        tuple("group:c#member", "member", "group:a"),
        tuple("group:b#member", "member", "group:b"),
        tuple("group:c#member", "can_read", "file:/zone/eng/docs"),
    ];
    let set = SubjectSet::build(&[user("alice")], &tuples, now()).expect("closure");
    assert_eq!(set.groups().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(set.depth("c"), Some(3));
    let g = Grants::compile(&set, &tuples, now());
    let d = g.check("eng", &path("docs/x"), Op::Read);
    assert!(d.allowed);
    assert_eq!(d.because.len(), 4, "{:?}", d.because);
    let object = ObjectRef::parse("file:/zone/eng/docs/x").expect("object");
    let r = check(&tuples, &user("alice"), Relation::CanRead, &object, now());
    assert_eq!(r.because, d.because);
    // A group's members as the subject: in every group of the cycle, itself included.
    for grp in ["a", "b", "c"] {
        let r = check(
            &tuples,
            &SubjectRef::GroupMember("b".into()),
            Relation::Member,
            &ObjectRef::Group(grp.into()),
            now(),
        );
        assert!(r.allowed, "{grp}");
    }
}

#[test]
fn expired_tuples_count_for_nothing_and_bound_the_cache() {
    let soon = now() + Duration::minutes(5);
    let later = now() + Duration::hours(1);
    let mut member = tuple("user:alice", "member", "group:eng");
    member.expires_at = Some(later);
    let mut grant = tuple("group:eng", "can_read", "file:/zone/eng/a");
    grant.expires_at = Some(soon);
    let mut gone = tuple("user:alice", "can_write", "file:/zone/eng/a");
    gone.expires_at = Some(now());
    let mut gone_member = tuple("user:alice", "member", "group:old");
    gone_member.expires_at = Some(now() - Duration::seconds(1));
    let tuples = vec![
        member,
        grant,
        gone,
        gone_member,
        tuple("group:old", "admin", "namespace:default"),
    ];
    let g = compile(&[user("alice")], &tuples);
    assert!(g.check("eng", &path("a"), Op::Read).allowed);
    assert!(
        !g.check("eng", &path("a"), Op::Write).allowed,
        "expires_at == now is expired"
    );
    assert!(
        !g.is_namespace_admin(),
        "an expired membership grants nothing"
    );
    assert_eq!(g.valid_until(), Some(soon));
    assert!(g.is_fresh(now()));
    assert!(!g.is_fresh(soon));
    assert_eq!(g.subject_set().valid_until(), Some(later));
    let d = g.check("eng", &path("a"), Op::Read);
    assert_eq!(
        d.because[1].expires_at,
        Some(soon),
        "the explanation shows the expiry"
    );

    // Past the expiry, a rebuild and the reference both deny.
    let set = SubjectSet::build(&[user("alice")], &tuples, soon).expect("closure");
    let g2 = Grants::compile(&set, &tuples, soon);
    assert!(!g2.check("eng", &path("a"), Op::Read).allowed);
    let object = ObjectRef::parse("file:/zone/eng/a").expect("object");
    assert!(!check(&tuples, &user("alice"), Relation::CanRead, &object, soon).allowed);
    assert!(check(&tuples, &user("alice"), Relation::CanRead, &object, now()).allowed);

    // Two grants of the same folder: the longer-lived one is kept for the explanation.
    let mut short = tuple("user:bob", "can_read", "file:/zone/eng/b");
    short.expires_at = Some(soon);
    let long = tuple("group:eng#member", "can_read", "file:/zone/eng/b");
    let both = vec![tuples[0].clone(), short, long.clone()];
    let g = compile(&[user("alice"), user("bob")], &both);
    let d = g.check("eng", &path("b/c"), Op::Read);
    assert_eq!(d.because.last(), Some(&long));
}

#[test]
fn explanations_walk_nested_groups() {
    let tuples = vec![
        tuple("user:alice", "member", "group:g1"),
        tuple("group:g1", "member", "group:g2"),
        tuple("group:g2", "member", "group:g3"),
        tuple("group:g3", "writer", "zone:eng"),
    ];
    let g = compile(&[user("alice")], &tuples);
    let d = g.check("eng", &path("x"), Op::Write);
    assert_eq!(d.reason, Reason::ZoneRole);
    assert_eq!(
        d.because,
        vec![
            tuple("user:alice", "member", "group:g1"),
            tuple("group:g1#member", "member", "group:g2"),
            tuple("group:g2#member", "member", "group:g3"),
            tuple("group:g3#member", "writer", "zone:eng"),
        ]
    );
    assert_eq!(g.subject_set().path_to("g3"), d.because[..3].to_vec());
    let r = check(
        &tuples,
        &user("alice"),
        Relation::Member,
        &ObjectRef::Group("g3".into()),
        now(),
    );
    assert_eq!((r.allowed, r.reason), (true, Reason::Membership));
    assert_eq!(r.because, d.because[..3].to_vec());
}

#[test]
fn a_token_and_its_subject_are_one_identity() {
    let key = "0b8e2a4c-5f7d-4e1a-9c3b-2d6f8a1e4b7c";
    let token = SubjectRef::Token(key.into());
    let tuples = vec![
        tuple(&format!("token:{key}"), "can_read", "file:/zone/eng/pinned"),
        tuple("user:alice", "can_read", "file:/zone/eng/mine"),
    ];
    let g = compile(&[token.clone(), user("alice")], &tuples);
    assert!(g.check("eng", &path("pinned"), Op::Read).allowed);
    assert!(g.check("eng", &path("mine"), Op::Read).allowed);
    let only_token = compile(&[token], &tuples);
    assert!(!only_token.check("eng", &path("mine"), Op::Read).allowed);
}

#[test]
fn expand_lists_who_has_it_and_why() {
    let tuples = vec![
        tuple("user:alice", "member", "group:eng"),
        tuple("group:eng", "member", "group:all"),
        tuple("user:bob", "member", "group:all"),
        tuple("group:all", "can_read", "file:/zone/eng/docs"),
        tuple("user:carol", "reader", "zone:eng"),
        tuple("user:dave", "can_write", "file:/zone/eng/docs/d"),
        tuple("user:erin", "can_read", "file:/zone/ops/docs"),
    ];
    let object = ObjectRef::parse("file:/zone/eng/docs/d").expect("object");
    let who = expand(&tuples, Relation::CanRead, &object, now());
    let names: Vec<String> = who.iter().map(|(s, _)| s.to_string()).collect();
    for want in [
        "group:all#member",
        "user:carol",
        "user:dave",
        "group:eng#member",
        "user:bob",
        "user:alice",
    ] {
        assert!(names.contains(&want.to_owned()), "{want} in {names:?}");
    }
    assert_eq!(names.len(), 6, "{names:?}");
    let (_, alice) = who
        .iter()
        .find(|(s, _)| *s == user("alice"))
        .expect("alice");
    assert_eq!(
        alice,
        &vec![
            tuple("user:alice", "member", "group:eng"),
            tuple("group:eng", "member", "group:all"),
            tuple("group:all", "can_read", "file:/zone/eng/docs"),
        ]
    );
    let members = expand(
        &tuples,
        Relation::Member,
        &ObjectRef::Group("all".into()),
        now(),
    );
    let names: Vec<String> = members.iter().map(|(s, _)| s.to_string()).collect();
    assert_eq!(names, ["group:eng#member", "user:bob", "user:alice"]);
    assert!(
        expand(
            &tuples,
            Relation::Member,
            &ObjectRef::Zone("eng".into()),
            now()
        )
        .is_empty()
    );
}
