use super::*;
use crate::model::{Error, normalise_path};
use crate::{Decision, Reason};
use proptest::prelude::*;

#[test]
fn relations_round_trip_and_unknown_ones_are_refused() {
    for r in Relation::ALL {
        assert_eq!(r.to_string().parse::<Relation>(), Ok(r));
    }
    for bad in ["", "viewer", "CAN_READ", "can_read ", "owner", "member\0"] {
        let err = bad.parse::<Relation>().expect_err(bad);
        assert!(matches!(err, Error::UnknownRelation(_)), "{bad:?}: {err}");
        assert!(err.to_string().contains("unknown relation"), "{err}");
    }
}

#[test]
fn objects_round_trip_in_their_canonical_form() {
    for (text, canonical) in [
        ("group:engineering", "group:engineering"),
        ("zone:eng", "zone:eng"),
        ("namespace:default", "namespace:default"),
        ("file:/zone/eng/workspace", "file:/zone/eng/workspace"),
        ("file:/zone/eng/workspace/", "file:/zone/eng/workspace"),
        ("file:/zone/eng//a/./b", "file:/zone/eng/a/b"),
        ("file:/zone/eng", "file:/zone/eng"),
        ("file:/zone/eng/", "file:/zone/eng"),
        (
            "file:/zone/eng/with space/ünï",
            "file:/zone/eng/with space/ünï",
        ),
    ] {
        let o = ObjectRef::parse(text).expect(text);
        assert_eq!(o.to_string(), canonical);
        assert_eq!(ObjectRef::parse(canonical).expect(canonical), o);
        o.validate().expect("parsed objects are valid");
    }
    assert_eq!(
        ObjectRef::parse("file:/zone/eng").expect("root"),
        ObjectRef::File {
            zone: "eng".into(),
            path: vec![]
        }
    );
}

#[test]
fn hostile_objects_get_clear_errors() {
    let cases: &[(&str, &str)] = &[
        ("file:/zone/eng/a/../b", "'..'"),
        ("file:/zone/eng/..", "'..'"),
        ("file:/zone/../etc", "'..'"),
        ("file:/zone/eng/a\0b", "NUL"),
        ("file:/zone/eng/a\nb", "control"),
        ("file:/zone/eng/a\\b", "backslash"),
        ("file:/zone/eng/%2e%2e/x", "percent-encoded"),
        ("file:/zone/eng/a%2Fb", "percent-encoded"),
        ("file:/zone/eng/a%5cb", "percent-encoded"),
        ("file:/zone/eng/a%00", "percent-encoded"),
        ("file:/zone/eng/.nexus-tmp-1", "reserved"),
        ("file:/workspace", "file:/zone/<zone>/<path>"),
        ("file:zone/eng/x", "file:/zone/<zone>/<path>"),
        ("file:/zone", "names no zone"),
        ("file:/zone/", "names no zone"),
        ("file:/zone/Eng/x", "zone name"),
        ("file:/zone/-eng/x", "zone name"),
        ("zone:ENG", "zone name"),
        ("zone:", "zone name"),
        ("zone:a.b", "zone name"),
        ("group:Eng", "group name"),
        ("group:", "group name"),
        ("group:.x", "group name"),
        ("group:a b", "group name"),
        ("group:é", "group name"),
        ("namespace:other", "only namespace"),
        ("folder:/zone/eng/x", "unknown object type"),
        ("user:alice", "unknown object type"),
        ("engineering", "not of the form"),
        ("", "not of the form"),
    ];
    for (text, needle) in cases {
        let err = ObjectRef::parse(text).expect_err(text);
        assert!(
            err.to_string().contains(needle),
            "{text:?}: '{err}' lacks {needle:?}"
        );
        // Messages never carry raw control characters from the input.
        assert!(!err.to_string().chars().any(char::is_control), "{err:?}");
    }
    let long_group = format!("group:{}", "a".repeat(129));
    assert!(ObjectRef::parse(&long_group).is_err());
    assert!(ObjectRef::parse(&format!("group:{}", "a".repeat(128))).is_ok());
    assert!(ObjectRef::parse(&format!("zone:{}", "a".repeat(64))).is_err());
    assert!(ObjectRef::parse(&format!("zone:{}", "a".repeat(63))).is_ok());
    let long_name = format!("file:/zone/eng/{}", "a".repeat(256));
    assert!(ObjectRef::parse(&long_name).is_err());
    let deep = format!("file:/zone/eng/{}", "a/".repeat(65));
    assert!(ObjectRef::parse(&deep).is_err());
    let ok_deep = format!("file:/zone/eng/{}", "a/".repeat(64));
    assert!(ObjectRef::parse(&ok_deep).is_ok());
    let long_path = format!("file:/zone/eng/{}", vec!["c".repeat(200); 21].join("/"));
    assert!(ObjectRef::parse(&long_path).is_err(), "over 4096 bytes");
}

#[test]
fn zone_relative_file_objects() {
    let o = ObjectRef::parse_in_zone("file:/workspace", "eng").expect("ok");
    assert_eq!(o.to_string(), "file:/zone/eng/workspace");
    let root = ObjectRef::parse_in_zone("file:/", "eng").expect("ok");
    assert_eq!(root.to_string(), "file:/zone/eng");
    // Other objects are unaffected by the zone.
    assert_eq!(
        ObjectRef::parse_in_zone("group:engineering", "eng").expect("ok"),
        ObjectRef::Group("engineering".into())
    );
    for bad in [
        "file:/zone/eng/workspace",
        "file:workspace",
        "file:/a/../b",
        "file:/a\0",
    ] {
        assert!(ObjectRef::parse_in_zone(bad, "eng").is_err(), "{bad:?}");
    }
    assert!(ObjectRef::parse_in_zone("file:/workspace", "Bad Zone").is_err());
}

#[test]
fn subjects_parse_and_hostile_ones_are_refused() {
    let key = "0b8e2a4c-5f7d-4e1a-9c3b-2d6f8a1e4b7c";
    for (text, canonical) in [
        ("user:alice", "user:alice".to_owned()),
        ("agent:analyzer-bot", "agent:analyzer-bot".to_owned()),
        (
            "service:ci.runner@acme",
            "service:ci.runner@acme".to_owned(),
        ),
        (&format!("token:{key}"), format!("token:{key}")),
        (
            "group:engineering#member",
            "group:engineering#member".to_owned(),
        ),
        // The seed's spelling of a group subject.
        ("group:engineering", "group:engineering#member".to_owned()),
    ] {
        let s = SubjectRef::parse(text).expect(text);
        assert_eq!(s.to_string(), canonical);
        assert_eq!(SubjectRef::parse(&canonical).expect("canonical"), s);
    }
    for bad in [
        "user:Alice",
        "user:",
        "user:-x",
        "user:a b",
        "user:a/b",
        "user:a\0",
        "robot:x",
        "alice",
        "token:not-a-uuid",
        "token:0B8E2A4C-5F7D-4E1A-9C3B-2D6F8A1E4B7C",
        "group:eng#admin",
        "group:eng#",
        "group:#member",
        "zone:eng",
    ] {
        let err = SubjectRef::parse(bad).expect_err(bad);
        assert!(!err.to_string().is_empty());
    }
    assert!(SubjectRef::parse(&format!("user:{}", "a".repeat(129))).is_err());
}

#[test]
fn relations_only_apply_to_their_object_types() {
    let ok = [
        ("user:alice", "member", "group:eng"),
        ("user:alice", "reader", "zone:eng"),
        ("user:alice", "writer", "zone:eng"),
        ("user:alice", "admin", "zone:eng"),
        ("user:alice", "can_read", "file:/zone/eng/a"),
        ("user:alice", "can_write", "file:/zone/eng"),
        ("group:eng#member", "admin", "namespace:default"),
        ("group:a#member", "member", "group:b"),
    ];
    for (s, r, o) in ok {
        tuple(s, r, o);
    }
    let bad = [
        ("member", "zone:eng"),
        ("member", "file:/zone/eng/a"),
        ("member", "namespace:default"),
        ("can_read", "group:eng"),
        ("can_write", "zone:eng"),
        ("reader", "file:/zone/eng/a"),
        ("admin", "file:/zone/eng/a"),
        ("reader", "namespace:default"),
        ("admin", "group:eng"),
    ];
    for (r, o) in bad {
        let t = Tuple::new(
            SubjectRef::User("alice".into()),
            r.parse().expect("relation"),
            ObjectRef::parse(o).expect("object"),
        );
        let err = t.validate().expect_err(r);
        assert!(
            matches!(err, Error::RelationNotOnType { .. }),
            "{r} {o}: {err}"
        );
        assert!(err.to_string().contains("does not apply"), "{err}");
    }
}

#[test]
fn values_built_by_hand_are_validated_too() {
    let bad_objects = [
        ObjectRef::File {
            zone: "eng".into(),
            path: vec!["..".into()],
        },
        ObjectRef::File {
            zone: "eng".into(),
            path: vec!["a/b".into()],
        },
        ObjectRef::File {
            zone: "eng".into(),
            path: vec![String::new()],
        },
        ObjectRef::File {
            zone: "eng".into(),
            path: vec!["a\0".into()],
        },
        ObjectRef::File {
            zone: "ENG".into(),
            path: vec![],
        },
        ObjectRef::Namespace("x".into()),
        ObjectRef::Group("A".into()),
    ];
    for o in bad_objects {
        let t = Tuple::new(SubjectRef::User("alice".into()), Relation::CanRead, o);
        assert!(t.validate().is_err(), "{t:?}");
    }
    let t = Tuple::new(
        SubjectRef::Token("x".into()),
        Relation::Member,
        ObjectRef::Group("g".into()),
    );
    assert!(t.validate().is_err());
}

#[test]
fn tuples_and_decisions_serialise_as_text() {
    let mut t = tuple("group:eng#member", "can_read", "file:/zone/eng/workspace");
    let json = serde_json::to_value(&t).expect("json");
    assert_eq!(
        json,
        serde_json::json!({"subject": "group:eng#member", "relation": "can_read",
            "object": "file:/zone/eng/workspace"})
    );
    t.expires_at = Some(now());
    let back: Tuple =
        serde_json::from_str(&serde_json::to_string(&t).expect("json")).expect("parse");
    assert_eq!(back, t);
    let bad = r#"{"subject":"user:a","relation":"can_read","object":"file:/zone/e/../x"}"#;
    assert!(serde_json::from_str::<Tuple>(bad).is_err());
    let d = Decision::allow(Reason::PathTuple, vec![t]);
    let json = serde_json::to_value(&d).expect("json");
    assert_eq!(json["allowed"], true);
    assert_eq!(json["reason"], "path_tuple");
    assert_eq!(json["because"][0]["object"], "file:/zone/eng/workspace");
}

#[test]
fn normalise_path_matches_the_file_service_rules() {
    assert_eq!(normalise_path("/a//b/./c/").expect("ok"), ["a", "b", "c"]);
    assert!(normalise_path("").expect("ok").is_empty());
    assert!(normalise_path("/").expect("ok").is_empty());
}

proptest! {
    /// Whatever the text, the parsers answer; what they accept prints back to itself.
    #[test]
    fn parsers_never_panic(s in "\\PC{0,40}|(file|group|zone|user|token|namespace):[\\x00-\\x7f%./\\\\#]{0,30}") {
        if let Ok(o) = ObjectRef::parse(&s) {
            prop_assert!(o.validate().is_ok());
            prop_assert_eq!(ObjectRef::parse(&o.to_string()).ok(), Some(o));
        }
        if let Ok(o) = ObjectRef::parse_in_zone(&s, "eng") {
            prop_assert!(o.validate().is_ok());
        }
        if let Ok(sub) = SubjectRef::parse(&s) {
            prop_assert!(sub.validate().is_ok());
            prop_assert_eq!(SubjectRef::parse(&sub.to_string()).ok(), Some(sub));
        }
        let _ = s.parse::<Relation>();
    }
}
