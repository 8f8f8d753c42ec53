//! Subjects and relationship tuples in the store and the control plane, one test body run
//! against Postgres and SQLite: validation (nothing written on bad input), the revision
//! bump, the database's change announcements, the bounded closure query, and what deleting
//! or disabling a subject does.

use chrono::{Duration, Utc};
use nexus_authz::closure::{MAX_GROUP_DEPTH, SubjectSet};
use nexus_authz::model::{ObjectRef, Relation, SubjectRef, Tuple};
use nexus_wire::methods::*;
use rpc_server::auth::db_notify::ChangeWatch;
use rpc_server::auth::invalidation::Recorder;
use rpc_server::auth::{Invalidation, InvalidationBus, TokenHasher};
use rpc_server::control::{Caller, Control, ControlError};
use rpc_server::db::{MAX_CLOSURE_EDGES, MAX_TUPLES_PER_IDENTITY, Store, StoreError, TupleFilter};
use rpc_server::testing::{BACKENDS, TestDb, test_secret};
use std::sync::Arc;

fn user(id: &str) -> SubjectRef {
    SubjectRef::User(id.into())
}
fn group(g: &str) -> SubjectRef {
    SubjectRef::GroupMember(g.into())
}
fn obj(o: &str) -> ObjectRef {
    ObjectRef::parse(o).expect("object")
}
fn tuple(s: SubjectRef, r: Relation, o: &str) -> Tuple {
    Tuple::new(s, r, obj(o))
}
fn params(subject: &str, relation: &str, object: &str) -> RebacTupleParams {
    RebacTupleParams {
        subject: subject.into(),
        relation: relation.into(),
        object: object.into(),
        ..Default::default()
    }
}

async fn count_tuples(store: &Store) -> usize {
    store
        .list_tuples(&TupleFilter::default())
        .await
        .expect("list")
        .len()
}

/// Inserts `n` rows with raw SQL (fast on both dialects); `$i` in the templates is the row
/// number.
async fn bulk_member_edges(store: &Store, n: usize, subject: &str, object: &str) {
    // Postgres resolves a bare literal in a SELECT list to text, which no timestamp column takes.
    let created = match store.backend() {
        rpc_server::db::Backend::Postgres => "TIMESTAMPTZ '2026-01-01T00:00:00+00:00'",
        rpc_server::db::Backend::Sqlite => "'2026-01-01T00:00:00+00:00'",
    };
    let sql = format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
         INSERT INTO rebac_tuples (zone_id, object_type, object_id, relation, subject_type, \
           subject_id, subject_relation, expires_at, created_at, created_by) \
         SELECT NULL, 'group', {object}, 'member', {subject}, \
           {created}, 'test' FROM n",
        last = n - 1,
    );
    store.execute_raw(&sql).await.expect("bulk insert");
}

async fn exercise(db: &TestDb) {
    let store = &db.store;
    // The closure query's estimates would otherwise make Postgres JIT-compile it, costing
    // far more than running it.
    if let Some(jit) = store.pg_setting("jit").await.expect("setting") {
        assert_eq!(jit, "off");
    }
    let bus = InvalidationBus::new();
    let seen = Arc::new(Recorder::default());
    bus.subscribe(seen.clone());
    let hasher = Arc::new(TokenHasher::new(&test_secret()).expect("secret"));
    let c = Control::new(store.clone(), hasher, bus, None);
    let admin = Caller::local();
    c.create_zone("eng").await.expect("zone");
    c.create_zone("ops").await.expect("zone");

    // ---- subjects ----
    let rev0 = store.rebac_revision().await.expect("rev");
    let mut watch = ChangeWatch::start(&db.url).await.expect("watch");
    let alice = c
        .create_user(
            &admin,
            AdminCreateUserParams {
                subject_id: "alice".into(),
                name: Some("Alice Johnson".into()),
                zones: Some("eng:rw".into()),
                ..Default::default()
            },
        )
        .await
        .expect("create alice");
    assert_eq!(alice.user.tenant_id, "default");
    assert_eq!(alice.user.tokens, 1);
    let key = alice.key.as_ref().expect("key minted");
    assert!(key.token.starts_with("sk-"));
    assert_eq!(key.user_id, "alice");
    assert!(store.rebac_revision().await.expect("rev") > rev0);
    // The database announces the new subject to every running server.
    assert!(
        watch
            .confirm(
                &[Invalidation::Subject {
                    subject_id: "alice".into()
                }],
                std::time::Duration::from_secs(5)
            )
            .await,
        "subject creation announced by the database"
    );
    assert!(seen.take().contains(&Invalidation::Subject {
        subject_id: "alice".into()
    }));

    // A key's token is bound to the subject: the verification lookup finds it.
    let digest = TokenHasher::new(&test_secret())
        .expect("secret")
        .digest(&key.token)
        .0;
    let rec = store
        .find_token_by_digest(&digest)
        .await
        .expect("lookup")
        .expect("present");
    assert_eq!(rec.user_id, "alice");
    assert!(rec.subject.is_some(), "token bound to its subject");

    c.create_user(
        &admin,
        AdminCreateUserParams {
            subject_id: "bob".into(),
            tenant_id: Some("acme-corp".into()),
            no_key: true,
            ..Default::default()
        },
    )
    .await
    .expect("bob without key");
    let bot = c
        .create_agent_key(
            &admin,
            AdminCreateAgentKeyParams {
                agent_id: "analyzer-bot".into(),
                name: Some("Analyzer Bot v2.0".into()),
                owner: Some("alice".into()),
                ..Default::default()
            },
        )
        .await
        .expect("agent key");
    assert_eq!(bot.user.subject_type, nexus_wire::spec::SubjectType::Agent);
    assert_eq!(bot.user.owner_id.as_deref(), Some("alice"));
    // A second key for the same agent keeps the agent and names the key apart.
    let bot2 = c
        .create_agent_key(
            &admin,
            AdminCreateAgentKeyParams {
                agent_id: "analyzer-bot".into(),
                ..Default::default()
            },
        )
        .await
        .expect("second agent key");
    assert_eq!(bot2.user.tokens, 2);
    assert_ne!(
        bot2.key.as_ref().map(|k| &k.name),
        bot.key.as_ref().map(|k| &k.name)
    );

    // Hostile subjects: clear errors, nothing written.
    let before_users = c.list_users(None).await.expect("list").len();
    let before_tokens = store.list_tokens(true).await.expect("tokens").len();
    let rev = store.rebac_revision().await.expect("rev");
    for bad in [
        "Alice",
        "",
        "a/b",
        "../x",
        "a b",
        "a\0b",
        "-lead",
        &"x".repeat(129),
    ] {
        let e = c
            .create_user(
                &admin,
                AdminCreateUserParams {
                    subject_id: bad.into(),
                    ..Default::default()
                },
            )
            .await
            .expect_err(bad);
        assert!(matches!(e, ControlError::Invalid(_)), "{bad:?}: {e:?}");
    }
    // Duplicate subject: refused, and its would-be key is not minted either.
    let e = c
        .create_user(
            &admin,
            AdminCreateUserParams {
                subject_id: "alice".into(),
                ..Default::default()
            },
        )
        .await
        .expect_err("duplicate");
    assert!(matches!(e, ControlError::Conflict(_)), "{e:?}");
    // An owner must be a registered user; zones must exist.
    for (owner, zones) in [
        (Some("analyzer-bot"), None),
        (Some("nobody"), None),
        (None, Some("nope:rw")),
    ] {
        let e = c
            .create_agent_key(
                &admin,
                AdminCreateAgentKeyParams {
                    agent_id: "x-bot".into(),
                    owner: owner.map(Into::into),
                    zones: zones.map(Into::into),
                    ..Default::default()
                },
            )
            .await
            .expect_err("bad owner or zone");
        assert!(
            matches!(e, ControlError::Invalid(_) | ControlError::NotFound(_)),
            "{e:?}"
        );
    }
    // The store refuses what the control plane would, should anything bypass it.
    assert!(
        store
            .execute_raw(
                "INSERT INTO subjects (subject_id, subject_type, created_at) \
                 VALUES ('Bad/Name', 'user', '2026-01-01T00:00:00+00:00')"
            )
            .await
            .is_err()
    );
    assert_eq!(c.list_users(None).await.expect("list").len(), before_users);
    assert_eq!(
        store.list_tokens(true).await.expect("tokens").len(),
        before_tokens
    );
    assert_eq!(store.rebac_revision().await.expect("rev"), rev);
    let agents = c
        .list_users(Some(nexus_wire::spec::SubjectType::Agent))
        .await
        .expect("agents");
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].display_name, "Analyzer Bot v2.0");

    // ---- tuples ----
    let mut watch = ChangeWatch::start(&db.url).await.expect("watch");
    let rev = store.rebac_revision().await.expect("rev");
    for (s, r, o) in [
        ("user:alice", "can_read", "file:/zone/eng/workspace"),
        (
            "user:alice",
            "can_write",
            "file:/zone/eng/workspace/alice-files",
        ),
        ("user:alice", "member", "group:engineering"),
        // The seed writes a group subject without #member.
        (
            "group:engineering",
            "can_read",
            "file:/zone/eng/shared/engineering",
        ),
        ("group:engineering#member", "reader", "zone:ops"),
        ("agent:analyzer-bot", "member", "group:engineering"),
    ] {
        c.rebac_create(&admin, params(s, r, o))
            .await
            .unwrap_or_else(|e| panic!("{s} {r} {o}: {e}"));
    }
    assert_eq!(store.rebac_revision().await.expect("rev"), rev + 6);
    assert!(
        watch
            .confirm(&[Invalidation::Rebac], std::time::Duration::from_secs(5))
            .await,
        "tuple writes announced by the database"
    );
    // --zone reads file:/workspace as file:/zone/eng/workspace.
    let with_zone = RebacTupleParams {
        zone: Some("eng".into()),
        ..params("user:bob", "can_read", "file:/workspace")
    };
    let t = c.rebac_create(&admin, with_zone).await.expect("zone form");
    assert_eq!(t.object, "file:/zone/eng/workspace");
    assert_eq!(t.created_by.as_deref(), Some("local"));

    // Hostile tuples: clear errors, nothing written, no revision bump.
    let n = count_tuples(store).await;
    let rev = store.rebac_revision().await.expect("rev");
    for (s, r, o) in [
        ("user:alice", "can_read", "file:/zone/eng/workspace"), // duplicate
        ("user:alice", "owner", "file:/zone/eng/x"),            // unknown relation
        ("user:alice", "can_read", "folder:/zone/eng/x"),       // unknown object type
        ("robot:alice", "can_read", "file:/zone/eng/x"),        // unknown subject type
        ("user:alice", "member", "zone:eng"),                   // relation not on type
        ("user:alice", "can_read", "group:engineering"),
        ("user:alice", "can_read", "file:/zone/eng/../ops/x"),
        ("user:alice", "can_read", "file:/zone/eng/a\0b"),
        ("user:alice", "can_read", "file:/zone/eng/a%2Fb"),
        ("user:alice", "can_read", "file:/zone/eng/a\\b"),
        ("user:alice", "can_read", "file:/workspace"), // not hub-wide, no --zone
        ("user:alice", "can_read", "file:/zone/Eng/x"),
        ("user:alice", "can_read", "file:/zone/nope/x"), // no such zone
        ("user:alice", "reader", "zone:nope"),
        ("user:nobody", "can_read", "file:/zone/eng/x"), // unregistered subject
        ("user:analyzer-bot", "can_read", "file:/zone/eng/x"), // wrong subject type
        (
            "token:00000000-0000-0000-0000-000000000000",
            "reader",
            "zone:eng",
        ),
        ("user:Alice", "reader", "zone:eng"),
        ("group:eng#owner", "reader", "zone:eng"),
        ("user:alice", "admin", "namespace:other"),
    ] {
        let e = c
            .rebac_create(&admin, params(s, r, o))
            .await
            .expect_err(&format!("{s} {r} {o:?}"));
        assert!(
            matches!(
                e,
                ControlError::Invalid(_) | ControlError::Conflict(_) | ControlError::NotFound(_)
            ),
            "{s} {r} {o:?}: {e:?}"
        );
    }
    let e = c
        .rebac_create(
            &admin,
            RebacTupleParams {
                expires: Some("forever".into()),
                ..params("user:bob", "reader", "zone:eng")
            },
        )
        .await
        .expect_err("bad expiry");
    assert!(matches!(e, ControlError::Invalid(_)), "{e:?}");
    assert_eq!(count_tuples(store).await, n);
    assert_eq!(store.rebac_revision().await.expect("rev"), rev);

    // The store itself refuses an invalid tuple and an expired one.
    let bad = Tuple::new(user("alice"), Relation::Member, obj("zone:eng"));
    assert!(matches!(
        store.create_tuple(&bad, None, Utc::now()).await,
        Err(StoreError::Invalid(_))
    ));
    let mut past = tuple(user("alice"), Relation::Reader, "zone:eng");
    past.expires_at = Some(Utc::now() - Duration::seconds(1));
    assert!(matches!(
        store.create_tuple(&past, None, Utc::now()).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(count_tuples(store).await, n);

    // Listing by subject, object and relation.
    let alice_tuples = c
        .rebac_list(
            &admin,
            RebacListParams {
                subject: Some("user:alice".into()),
                ..Default::default()
            },
        )
        .await
        .expect("list");
    let mut shown: Vec<(String, String)> = alice_tuples
        .tuples
        .iter()
        .map(|t| (t.relation.clone(), t.object.clone()))
        .collect();
    shown.sort();
    assert_eq!(
        shown,
        [
            ("can_read".into(), "file:/zone/eng/workspace".into()),
            (
                "can_write".into(),
                "file:/zone/eng/workspace/alice-files".into()
            ),
            ("member".into(), "group:engineering".into()),
        ]
    );
    let on_eng = c
        .rebac_list(
            &admin,
            RebacListParams {
                zone: Some("eng".into()),
                relation: Some("can_read".into()),
                ..Default::default()
            },
        )
        .await
        .expect("list by zone");
    assert_eq!(on_eng.tuples.len(), 3);

    // ---- closure and compile inputs ----
    let now = Utc::now();
    let base = [SubjectRef::Token(key.key_id.clone()), user("alice")];
    let edges = store.closure_edges(&base, now).await.expect("closure");
    assert_eq!(edges.len(), 1, "{edges:?}");
    let set = SubjectSet::build(&base, &edges, now).expect("set");
    assert_eq!(set.groups().collect::<Vec<_>>(), ["engineering"]);
    let mut subjects = base.to_vec();
    subjects.push(group("engineering"));
    let mut got: Vec<String> = store
        .tuples_for(&subjects, now)
        .await
        .expect("tuples")
        .iter()
        .map(ToString::to_string)
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "group:engineering#member can_read file:/zone/eng/shared/engineering",
            "group:engineering#member reader zone:ops",
            "user:alice can_read file:/zone/eng/workspace",
            "user:alice can_write file:/zone/eng/workspace/alice-files",
        ]
    );

    // check and expand through the control plane, with the deciding chain.
    let d = c
        .rebac_check(
            &admin,
            RebacCheckParams {
                subject: "user:alice".into(),
                relation: "can_read".into(),
                object: "file:/zone/eng/shared/engineering/doc.md".into(),
                explain: true,
                ..Default::default()
            },
        )
        .await
        .expect("check");
    assert!(d.allowed, "{d:?}");
    assert!(d.because.iter().any(|t| t.relation == "member"), "{d:?}");
    let d = c
        .rebac_check(
            &admin,
            RebacCheckParams {
                subject: "user:alice".into(),
                relation: "can_write".into(),
                object: "file:/zone/eng/workspace".into(),
                ..Default::default()
            },
        )
        .await
        .expect("check");
    assert!(!d.allowed, "{d:?}");
    let who = c
        .rebac_expand(
            &admin,
            RebacExpandParams {
                relation: "reader".into(),
                object: "zone:ops".into(),
                zone: None,
            },
        )
        .await
        .expect("expand");
    let mut names: Vec<&str> = who.subjects.iter().map(|e| e.subject.as_str()).collect();
    names.sort();
    assert!(names.contains(&"user:alice"), "{names:?}");
    assert!(names.contains(&"agent:analyzer-bot"), "{names:?}");

    // Cycles terminate: engineering ⊂ platform ⊂ engineering.
    for (s, o) in [
        ("group:engineering", "group:platform"),
        ("group:platform", "group:engineering"),
    ] {
        c.rebac_create(&admin, params(s, "member", o))
            .await
            .expect("cycle edge");
    }
    let edges = store.closure_edges(&base, now).await.expect("closure");
    assert_eq!(edges.len(), 3, "{edges:?}");
    let set = SubjectSet::build(&base, &edges, Utc::now()).expect("set");
    let mut groups: Vec<&str> = set.groups().collect();
    groups.sort();
    assert_eq!(groups, ["engineering", "platform"]);

    // A 10,000-deep chain: the query stops at the depth bound.
    bulk_member_edges(
        store,
        10_000,
        "CASE WHEN i = 0 THEN 'user' ELSE 'group' END, \
         CASE WHEN i = 0 THEN 'bob' ELSE 'deep' || (i - 1) END, \
         CASE WHEN i = 0 THEN '' ELSE 'member' END, CAST(NULL AS TIMESTAMPTZ)",
        "'deep' || i",
    )
    .await;
    let deep = [user("bob")];
    let edges = store.closure_edges(&deep, now).await.expect("deep closure");
    assert!(
        edges.len() <= MAX_GROUP_DEPTH + 1,
        "{} edges for a chain bounded at depth {MAX_GROUP_DEPTH}",
        edges.len()
    );
    let set = SubjectSet::build(&deep, &edges, now).expect("set");
    assert!(set.groups().count() <= MAX_GROUP_DEPTH);
    assert!(set.groups().any(|g| g == "deep0"));
    assert!(
        !set.groups().any(|g| g == "deep9999"),
        "memberships past the depth bound are not reached"
    );

    // A subject in more groups than the closure may hold: refused, never truncated.
    bulk_member_edges(
        store,
        MAX_CLOSURE_EDGES + 1,
        "'service', 'wide', '', CAST(NULL AS TIMESTAMPTZ)",
        "'wide' || i",
    )
    .await;
    store
        .execute_raw(
            "INSERT INTO subjects (subject_id, subject_type, created_at) \
             VALUES ('wide', 'service', '2026-01-01T00:00:00+00:00')",
        )
        .await
        .expect("wide subject");
    assert!(matches!(
        store
            .closure_edges(&[SubjectRef::Service("wide".into())], now)
            .await,
        Err(StoreError::TooManyGroups)
    ));

    // More tuples than one identity's grants may be compiled from: refused, never
    // truncated (a truncated set could drop a tuple that matters to a listing's filter).
    let created = match store.backend() {
        rpc_server::db::Backend::Postgres => "TIMESTAMPTZ '2026-01-01T00:00:00+00:00'",
        rpc_server::db::Backend::Sqlite => "'2026-01-01T00:00:00+00:00'",
    };
    store
        .execute_raw(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
             INSERT INTO rebac_tuples (zone_id, object_type, object_id, relation, subject_type, \
               subject_id, subject_relation, expires_at, created_at) \
             SELECT 'eng', 'file', '/zone/eng/f' || i, 'can_read', 'service', 'wide', '', \
               CAST(NULL AS TIMESTAMPTZ), {created} FROM n",
            last = MAX_TUPLES_PER_IDENTITY,
        ))
        .await
        .expect("bulk tuples");
    assert!(matches!(
        store
            .tuples_for(&[SubjectRef::Service("wide".into())], now)
            .await,
        Err(StoreError::TooManyTuples)
    ));

    // Expired tuples count for nothing.
    store
        .execute_raw(
            "INSERT INTO rebac_tuples (zone_id, object_type, object_id, relation, subject_type, \
             subject_id, subject_relation, expires_at, created_at) VALUES \
             (NULL, 'group', 'old', 'member', 'user', 'alice', '', \
              '2020-01-01T00:00:00+00:00', '2019-01-01T00:00:00+00:00'), \
             ('eng', 'file', '/zone/eng/old', 'can_read', 'user', 'alice', '', \
              '2020-01-01T00:00:00+00:00', '2019-01-01T00:00:00+00:00')",
        )
        .await
        .expect("expired rows");
    let edges = store
        .closure_edges(&base, Utc::now())
        .await
        .expect("closure");
    assert!(!edges.iter().any(|t| t.object == obj("group:old")));
    let tuples = store.tuples_for(&base, Utc::now()).await.expect("tuples");
    assert!(!tuples.iter().any(|t| t.object == obj("file:/zone/eng/old")));
    // A live expiring tuple is returned with its expiry.
    let soon = c
        .rebac_create(
            &admin,
            RebacTupleParams {
                expires: Some("7d".into()),
                ..params("user:alice", "writer", "zone:ops")
            },
        )
        .await
        .expect("expiring");
    assert!(soon.expires_at.is_some());

    // ---- delete and disable ----
    let rev = store.rebac_revision().await.expect("rev");
    c.rebac_delete(&admin, params("user:alice", "writer", "zone:ops"))
        .await
        .expect("delete tuple");
    assert!(store.rebac_revision().await.expect("rev") > rev);
    let rev = store.rebac_revision().await.expect("rev");
    let e = c
        .rebac_delete(&admin, params("user:alice", "writer", "zone:ops"))
        .await
        .expect_err("gone");
    assert!(matches!(e, ControlError::NotFound(_)), "{e:?}");
    assert_eq!(store.rebac_revision().await.expect("rev"), rev);

    let off = c
        .set_user_state(&admin, "alice", true)
        .await
        .expect("disable");
    assert_eq!(off.status, "disabled");
    let rec = store
        .find_token_by_digest(&digest)
        .await
        .expect("lookup")
        .expect("present");
    assert!(rec.subject.expect("bound").disabled_at.is_some());
    assert!(rec.revoked_at.is_none(), "disabling keeps the tokens");
    let on = c
        .set_user_state(&admin, "alice", false)
        .await
        .expect("enable");
    assert_eq!(on.status, "active");

    let mut watch = ChangeWatch::start(&db.url).await.expect("watch");
    let gone = c.delete_user(&admin, "alice").await.expect("delete alice");
    assert_eq!(gone.tokens_revoked, 1);
    assert!(gone.tuples_removed >= 4, "{gone:?}");
    let key_id: uuid::Uuid = key.key_id.parse().expect("uuid");
    assert!(
        watch
            .confirm(
                &[
                    Invalidation::Token { key_id },
                    Invalidation::Subject {
                        subject_id: "alice".into()
                    }
                ],
                std::time::Duration::from_secs(5)
            )
            .await
    );
    let rec = store
        .find_token_by_digest(&digest)
        .await
        .expect("lookup")
        .expect("kept");
    assert!(rec.revoked_at.is_some(), "deleting revokes the tokens");
    // The agent it owned loses its owner, not its existence.
    let bot = store
        .get_subject("analyzer-bot")
        .await
        .expect("get")
        .expect("bot stays");
    assert_eq!(bot.owner_id, None);
    // Re-created under the same name, alice inherits nothing.
    c.create_user(
        &admin,
        AdminCreateUserParams {
            subject_id: "alice".into(),
            no_key: true,
            ..Default::default()
        },
    )
    .await
    .expect("re-create");
    let again = store
        .list_tuples(&TupleFilter {
            subject: Some(user("alice")),
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(again.is_empty(), "{again:?}");
    let e = c.delete_user(&admin, "ghost").await.expect_err("ghost");
    assert!(matches!(e, ControlError::NotFound(_)), "{e:?}");

    let (subjects, tuples) = store.rebac_counts().await.expect("counts");
    assert_eq!(subjects, 4);
    assert!(tuples > (MAX_CLOSURE_EDGES + MAX_TUPLES_PER_IDENTITY) as u64);
}

#[tokio::test]
async fn subjects_and_tuples_behave_the_same_on_both_backends() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        exercise(&db).await;
    }
}

const DENIED: i64 = -32003;
const INVALID: i64 = -32602;

/// Over RPC: admin methods need an admin token; a zone admin manages tuples in its zone and
/// nowhere else, and never past its token's zones; bad input is -32602 and writes nothing.
async fn rpc_authorization(app: &rpc_server::testing::TestApp) {
    use rpc_server::testing::code;
    use serde_json::json;
    app.zone("eng").await;
    app.zone("ops").await;
    let root = app.mint("root", None, true).await.token;
    let carol = app
        .rpc(
            &root,
            "admin_create_user",
            json!({"subject_id": "carol", "name": "Carol", "zones": "eng:rw"}),
        )
        .await
        .expect("create carol");
    let carol = carol["key"]["token"].as_str().expect("key").to_owned();
    app.rpc(
        &root,
        "admin_create_user",
        json!({"subject_id": "dave", "no_key": true}),
    )
    .await
    .expect("create dave");
    for (o, r) in [("zone:eng", "admin"), ("zone:ops", "admin")] {
        app.rpc(
            &root,
            "rebac_create",
            json!({"subject": "user:carol", "relation": r, "object": o}),
        )
        .await
        .expect("carol zone admin");
    }
    let tuple = |o: &str| json!({"subject": "user:dave", "relation": "can_read", "object": o});

    // Inside its zone, a zone admin manages tuples.
    app.rpc(&carol, "rebac_create", tuple("file:/zone/eng/x"))
        .await
        .expect("zone admin writes in its zone");
    let listed = app
        .rpc(&carol, "rebac_list_tuples", json!({"zone": "eng"}))
        .await
        .expect("zone admin lists its zone");
    assert!(
        listed["tuples"]
            .as_array()
            .expect("tuples")
            .iter()
            .all(|t| t["object"]
                .as_str()
                .is_some_and(|o| o.ends_with(":eng") || o.starts_with("file:/zone/eng/"))),
        "{listed}"
    );
    let checked = app
        .rpc(
            &carol,
            "rebac_check",
            json!({"subject": "user:dave", "relation": "can_read",
                   "object": "file:/zone/eng/x/y", "explain": true}),
        )
        .await
        .expect("check");
    assert_eq!(checked["allowed"], true, "{checked}");
    assert!(!checked["because"].as_array().expect("because").is_empty());

    // Outside: another zone (admin there by tuple, but past the token's zones), groups, the
    // namespace, hub-wide listings and every admin_* method are refused.
    let before = app.db.store.rebac_revision().await.expect("rev");
    for (method, params) in [
        ("rebac_create", tuple("file:/zone/ops/x")),
        (
            "rebac_create",
            json!({"subject": "user:dave", "relation": "member", "object": "group:g"}),
        ),
        (
            "rebac_create",
            json!({"subject": "user:carol", "relation": "admin", "object": "namespace:default"}),
        ),
        ("rebac_delete", tuple("file:/zone/ops/x")),
        ("rebac_list_tuples", json!({})),
        ("rebac_list_tuples", json!({"subject": "user:dave"})),
        (
            "rebac_expand",
            json!({"relation": "reader", "object": "zone:ops"}),
        ),
        ("admin_create_user", json!({"subject_id": "eve"})),
        ("admin_list_users", json!({})),
        (
            "admin_set_user_state",
            json!({"subject_id": "dave", "disabled": true}),
        ),
        ("admin_delete_user", json!({"subject_id": "dave"})),
        ("admin_create_agent_key", json!({"agent_id": "bot"})),
    ] {
        let r = app.rpc(&carol, method, params.clone()).await;
        assert_eq!(code(&r), DENIED, "{method} {params}: {r:?}");
    }
    assert_eq!(app.db.store.rebac_revision().await.expect("rev"), before);

    // The same zone admin through a read-only key of its zone may look, not change.
    let ro = app
        .rpc(
            &root,
            "hub_admin_token_create",
            json!({"name": "carol-ro", "zones": "eng:r", "user_id": "carol"}),
        )
        .await
        .expect("read-only key for carol");
    let ro = ro["token"].as_str().expect("token").to_owned();
    app.rpc(&ro, "rebac_list_tuples", json!({"zone": "eng"}))
        .await
        .expect("a read-only zone admin key lists");
    for method in ["rebac_create", "rebac_delete"] {
        let r = app.rpc(&ro, method, tuple("file:/zone/eng/x")).await;
        assert_eq!(code(&r), DENIED, "{method} with a read-only key: {r:?}");
    }
    assert_eq!(app.db.store.rebac_revision().await.expect("rev"), before);

    // Hostile input over RPC: -32602, nothing written.
    for (method, params) in [
        (
            "rebac_create",
            json!({"subject": "user:dave", "relation": "owner", "object": "zone:eng"}),
        ),
        (
            "rebac_create",
            json!({"subject": "user:dave", "relation": "can_read", "object": "file:/zone/eng/%2e%2e/x"}),
        ),
        (
            "rebac_create",
            json!({"subject": "user:dave", "relation": "can_read", "object": "zone:eng", "extra": 1}),
        ),
        ("admin_create_user", json!({"subject_id": "Bad Name"})),
        (
            "admin_create_user",
            json!({"subject_id": "frank", "subject_type": "robot"}),
        ),
        (
            "rebac_check",
            json!({"subject": "user:dave", "relation": "member", "object": "zone:eng"}),
        ),
    ] {
        let r = app.rpc(&root, method, params.clone()).await;
        assert_eq!(code(&r), INVALID, "{method} {params}: {r:?}");
    }
    assert_eq!(app.db.store.rebac_revision().await.expect("rev"), before);
}

#[tokio::test]
async fn rebac_rpc_authorization_on_both_backends() {
    for backend in BACKENDS {
        let app = rpc_server::testing::TestApp::spawn(backend).await;
        rpc_authorization(&app).await;
        app.stop().await;
    }
}

/// With Redis configured, every change is published on `nexus:audit:admin`: the event, the
/// caller's key id and what changed, never a token.
#[tokio::test]
async fn changes_are_audited_on_redis_without_tokens() {
    use futures_util::StreamExt;
    use serde_json::{Value, json};
    let wait = std::time::Duration::from_secs(10);
    let app = rpc_server::testing::TestApp::spawn_with(
        rpc_server::db::Backend::Sqlite,
        rpc_server::testing::TestOptions {
            redis_url: Some(rpc_server::testing::redis_url()),
            ..Default::default()
        },
    )
    .await;
    let client = redis::Client::open(rpc_server::testing::redis_url()).expect("redis url");
    let mut ps = tokio::time::timeout(wait, client.get_async_pubsub())
        .await
        .expect("connect to Redis hung")
        .expect("connect to Redis");
    ps.subscribe(nexus_wire::stats::ADMIN_AUDIT_CHANNEL)
        .await
        .expect("SUBSCRIBE");
    let mut messages = ps.into_on_message();
    app.zone("eng").await;
    let root = app.mint("root", None, true).await;
    let created = app
        .rpc(
            &root.token,
            "admin_create_user",
            json!({"subject_id": "alice", "zones": "eng:r"}),
        )
        .await
        .expect("create alice");
    let alice_token = created["key"]["token"].as_str().expect("token").to_owned();
    app.rpc(
        &root.token,
        "rebac_create",
        json!({"subject": "user:alice", "relation": "can_read", "object": "file:/zone/eng/w"}),
    )
    .await
    .expect("tuple");
    app.rpc(
        &root.token,
        "admin_delete_user",
        json!({"subject_id": "alice"}),
    )
    .await
    .expect("delete");
    let mut events = Vec::new();
    while events.len() < 3 {
        let msg = tokio::time::timeout(wait, messages.next())
            .await
            .expect("no audit event in time")
            .expect("subscription ended");
        let raw: String = msg.get_payload().expect("text payload");
        assert!(
            !raw.contains(&alice_token),
            "a token in an audit event: {raw}"
        );
        assert!(
            !raw.contains(&root.token),
            "a token in an audit event: {raw}"
        );
        let v: Value = serde_json::from_str(&raw).expect("JSON");
        assert_eq!(v["key_id"], root.key_id.as_str(), "{raw}");
        events.push(v["event"].as_str().expect("event").to_owned());
    }
    // In the order the changes were made.
    assert_eq!(
        events,
        ["admin.user.create", "rebac.create", "admin.user.delete"]
    );
    app.stop().await;
}

/// Upgrading an existing embedded database: its tokens keep working, and the change log
/// (rebuilt to take the new kinds) keeps its sequence, so a server that was watching it
/// before the upgrade still sees every change made after.
#[tokio::test]
async fn sqlite_upgrade_keeps_tokens_and_the_change_log_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("nexus.db").display());
    let key_id = uuid::Uuid::new_v4();
    let mut digest = [0u8; 32];
    digest[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    // The schema as it was before subjects and tuples.
    let old = tempfile::tempdir().expect("tempdir");
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    for name in [
        "20261122000001_tokens_and_zones.sql",
        "20261201000001_invalidation_notify.sql",
    ] {
        std::fs::copy(all.join(name), old.path().join(name)).expect("copy migration");
    }
    {
        use std::str::FromStr;
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
            .expect("url")
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.expect("pool");
        sqlx::migrate::Migrator::new(old.path())
            .await
            .expect("old migrations")
            .run(&pool)
            .await
            .expect("old schema");
        // A zone and a token written on the old schema.
        let now = Utc::now();
        sqlx::query("INSERT INTO zones (zone_id, created_at) VALUES ('eng', $1)")
            .bind(now)
            .execute(&pool)
            .await
            .expect("zone");
        sqlx::query(
            "INSERT INTO api_tokens (key_id, token_hash, name, user_id, subject_type, created_at) \
             VALUES ($1, $2, 'legacy', 'legacy-user', 'user', $3)",
        )
        .bind(key_id)
        .bind(&digest[..])
        .bind(now)
        .execute(&pool)
        .await
        .expect("token");
        sqlx::query(
            "INSERT INTO token_zones (key_id, zone_id, permission) VALUES ($1, 'eng', 'rw')",
        )
        .bind(key_id)
        .execute(&pool)
        .await
        .expect("grant");
        pool.close().await;
    }
    let store = Store::connect(&url).await.expect("connect");
    // A server watching the old change log, at its last row.
    let mut watch = ChangeWatch::start(&url).await.expect("watch");

    store.migrate().await.expect("upgrade");

    let rec = store
        .find_token_by_digest(&digest)
        .await
        .expect("lookup")
        .expect("the token survives the upgrade");
    assert_eq!(rec.user_id, "legacy-user");
    assert!(rec.zones_active && rec.revoked_at.is_none());
    assert!(
        rec.subject.is_none(),
        "a user_id naming no subject stays unbound"
    );
    let t = Tuple::new(
        SubjectRef::Token(key_id.to_string()),
        Relation::Reader,
        obj("zone:eng"),
    );
    store
        .create_tuple(&t, None, Utc::now())
        .await
        .expect("tuple");
    store
        .revoke_token(key_id, Utc::now())
        .await
        .expect("revoke");
    assert!(
        watch
            .confirm(
                &[Invalidation::Rebac, Invalidation::Token { key_id }],
                std::time::Duration::from_secs(5)
            )
            .await,
        "changes after the upgrade are numbered after the ones before it"
    );
}
