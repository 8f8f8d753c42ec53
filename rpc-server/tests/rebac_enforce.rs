//! ReBAC enforcement in every file method (SPEC §9): the token's zones are a ceiling that no
//! tuple, group or namespace role passes; `open` zones keep today's behaviour, `rebac`
//! zones need a zone role or a path tuple; folders are inherited, groups nest, tuples
//! expire; list/glob/grep never show what the caller may not read; changes and disabled
//! subjects take effect on the next request, in this process and in another nexusd.

use crate::own_redis;

use chrono::{Duration as ChronoDuration, Utc};
use nexus_authz::model::{ObjectRef, Relation, SubjectRef, Tuple};
use nexus_wire::methods::TokenCreateParams;
use nexus_wire::spec::{SubjectType, ZoneGrant};
use rpc_server::auth::invalidation::Invalidation;
use rpc_server::auth::{PlainToken, TokenHasher};
use rpc_server::db::{Backend, NewSubject, NewToken, Store};
use rpc_server::testing::{BACKENDS, TestApp, TestDb, TestOptions, code, poll_until, test_secret};
use serde_json::{Value, json};
use std::time::Duration;

const DENIED: i64 = -32003;

/// Registers a subject (no token).
async fn subject(app: &TestApp, id: &str, kind: SubjectType) {
    app.db
        .store
        .create_subject(
            &NewSubject {
                subject_id: id.into(),
                subject_type: kind,
                display_name: id.into(),
                tenant_id: Some("acme".into()),
                owner_id: None,
                created_at: Utc::now(),
            },
            None,
            false,
        )
        .await
        .expect("create subject");
}

/// A token bound to the registered subject `id`: `zones` as `eng:r,ops:rw`, or none at all
/// (its access is then its grants alone). Returns the raw token and its key id.
async fn bound_token(app: &TestApp, id: &str, name: &str, zones: Option<&str>) -> (String, String) {
    match zones {
        Some(z) => {
            let t = app
                .control
                .create_token(TokenCreateParams {
                    name: name.into(),
                    zones: Some(z.into()),
                    user_id: Some(id.into()),
                    ..Default::default()
                })
                .await
                .expect("mint");
            (t.token, t.key_id)
        }
        None => {
            let token = PlainToken::generate();
            let hasher = TokenHasher::new(&test_secret()).expect("secret");
            let rec = app
                .db
                .store
                .get_subject(id)
                .await
                .expect("get")
                .expect("subject");
            let key_id = uuid::Uuid::new_v4();
            let nt = NewToken {
                key_id,
                digest: hasher.digest(token.expose()).0,
                name: name.into(),
                user_id: id.into(),
                subject_type: rec.subject_type,
                is_admin: false,
                rate_limit: None,
                created_at: Utc::now(),
                expires_at: None,
                zones: Vec::<ZoneGrant>::new(),
                permissions: None,
                oauth: None,
            };
            let s = NewSubject {
                subject_id: id.into(),
                subject_type: rec.subject_type,
                display_name: rec.display_name,
                tenant_id: rec.tenant_id,
                owner_id: None,
                created_at: Utc::now(),
            };
            app.db
                .store
                .create_subject(&s, Some(&nt), true)
                .await
                .expect("mint a zoneless subject token");
            (token.expose().to_owned(), key_id.to_string())
        }
    }
}

fn tuple(subject: &str, relation: &str, object: &str) -> Tuple {
    Tuple::new(
        SubjectRef::parse(subject).expect("subject"),
        relation.parse::<Relation>().expect("relation"),
        ObjectRef::parse(object).expect("object"),
    )
}

/// Writes a tuple and announces it as the control plane does.
async fn grant(app: &TestApp, t: Tuple) {
    app.db
        .store
        .create_tuple(&t, None, Utc::now())
        .await
        .unwrap_or_else(|e| panic!("create {t}: {e}"));
    app.bus.publish(Invalidation::Rebac);
}

async fn ungrant(app: &TestApp, t: &Tuple) {
    app.db
        .store
        .delete_tuple(&t.subject, t.relation, &t.object)
        .await
        .expect("delete tuple");
    app.bus.publish(Invalidation::Rebac);
}

async fn set_mode(app: &TestApp, zone: &str, mode: &str) {
    app.db
        .store
        .execute_raw(&format!(
            "UPDATE zones SET access_mode = '{mode}' WHERE zone_id = '{zone}'"
        ))
        .await
        .expect("set access mode");
    app.bus.publish(Invalidation::Zone {
        zone_id: zone.into(),
    });
}

async fn read(app: &TestApp, token: &str, path: &str) -> Result<Value, Value> {
    app.rpc(token, "read", json!({ "path": path })).await
}

async fn write(app: &TestApp, token: &str, path: &str) -> Result<Value, Value> {
    app.rpc(token, "write", json!({ "path": path, "content": "x" }))
        .await
}

fn paths(v: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            if key.is_empty() {
                i.as_str().expect("path").to_owned()
            } else {
                i[key].as_str().expect("path").to_owned()
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The #4752 lesson: grants never widen a token beyond its zones. A token listing `eng:r`
/// and `scratch:rw` gets nothing in `ops` and no write in `eng`, whatever its subject's
/// tuples, groups, zone roles or namespace role say.
#[tokio::test]
async fn no_tuple_group_or_namespace_role_passes_the_tokens_zones() {
    for backend in BACKENDS {
        let app = TestApp::spawn(backend).await;
        for z in ["eng", "ops", "scratch"] {
            app.zone(z).await;
        }
        let admin = app.mint("root", None, true).await.token;
        app.write_files(
            &admin,
            &[("/zone/eng/docs/a.txt", "a"), ("/zone/ops/b.txt", "b")],
        )
        .await;
        subject(&app, "alice", SubjectType::User).await;
        let (alice, _) = bound_token(&app, "alice", "alice-key", Some("eng:r,scratch:rw")).await;
        grant(&app, tuple("user:alice", "member", "group:team")).await;
        grant(&app, tuple("group:team#member", "writer", "zone:ops")).await;
        grant(&app, tuple("user:alice", "can_write", "file:/zone/ops")).await;
        grant(&app, tuple("group:team#member", "admin", "zone:eng")).await;
        grant(
            &app,
            tuple("user:alice", "can_write", "file:/zone/eng/docs"),
        )
        .await;
        grant(&app, tuple("user:alice", "admin", "namespace:default")).await;
        for mode in ["open", "rebac"] {
            set_mode(&app, "eng", mode).await;
            set_mode(&app, "ops", mode).await;
            assert_eq!(
                code(&read(&app, &alice, "/zone/ops/b.txt").await),
                DENIED,
                "{backend:?} {mode}"
            );
            assert_eq!(code(&write(&app, &alice, "/zone/ops/c.txt").await), DENIED);
            // Read-only stays read-only.
            let w = write(&app, &alice, "/zone/eng/docs/new.txt").await;
            assert_eq!(code(&w), DENIED, "{backend:?} {mode}: {w:?}");
            let e = app
                .rpc(
                    &alice,
                    "edit",
                    json!({"path": "/zone/eng/docs/a.txt", "edits": [{"old_str": "a", "new_str": "b"}]}),
                )
                .await;
            assert_eq!(code(&e), DENIED);
            for m in [
                ("delete", json!({"path": "/zone/eng/docs/a.txt"})),
                ("mkdir", json!({"path": "/zone/eng/docs/d"})),
                (
                    "rmdir",
                    json!({"path": "/zone/eng/docs", "recursive": true}),
                ),
                (
                    "rename",
                    json!({"old_path": "/zone/eng/docs/a.txt", "new_path": "/zone/scratch/a.txt"}),
                ),
            ] {
                assert_eq!(
                    code(&app.rpc(&alice, m.0, m.1.clone()).await),
                    DENIED,
                    "{} {mode}",
                    m.0
                );
            }
            // Within the ceiling the namespace role reads everything.
            assert_eq!(
                read(&app, &alice, "/zone/eng/docs/a.txt")
                    .await
                    .expect("read")["content"],
                "a"
            );
            // Search results never reach into the unlisted zone.
            let g = app
                .rpc(&alice, "glob", json!({"pattern": "**"}))
                .await
                .expect("glob");
            assert!(
                paths(&g, "").iter().all(|p| !p.starts_with("/zone/ops")),
                "{g}"
            );
        }
        // Nothing was written anywhere.
        let all = app
            .rpc(&admin, "glob", json!({"pattern": "**/*.txt"}))
            .await
            .expect("glob");
        assert_eq!(paths(&all, ""), ["/zone/eng/docs/a.txt", "/zone/ops/b.txt"]);
    }
}

/// `open` (the default): the token's zone grant suffices. `rebac`: the same token needs a
/// zone role or a path tuple, `can_read` only reads and `can_write` writes, on the whole
/// folder below the tuple's path and nothing beside it.
#[tokio::test]
async fn open_zones_take_the_grant_rebac_zones_take_tuples_on_folders() {
    for backend in BACKENDS {
        let app = TestApp::spawn(backend).await;
        app.zone("eng").await;
        let admin = app.mint("root", None, true).await.token;
        app.write_files(
            &admin,
            &[
                ("/zone/eng/secret.txt", "s"),
                ("/zone/eng/shared/doc.txt", "d"),
                ("/zone/eng/sharedx.txt", "x"),
            ],
        )
        .await;
        subject(&app, "bob", SubjectType::User).await;
        let (bob, _) = bound_token(&app, "bob", "bob-key", Some("eng:rw")).await;
        // A token bound to no subject speaks only for itself.
        let plain = app.mint("plain", Some("eng:rw"), false).await;
        assert!(read(&app, &bob, "/secret.txt").await.is_ok());
        assert!(write(&app, &bob, "/bob.txt").await.is_ok());

        set_mode(&app, "eng", "rebac").await;
        assert_eq!(
            code(&read(&app, &bob, "/secret.txt").await),
            DENIED,
            "{backend:?}"
        );
        assert_eq!(code(&read(&app, &plain.token, "/secret.txt").await), DENIED);
        grant(&app, tuple("user:bob", "can_read", "file:/zone/eng/shared")).await;
        assert_eq!(
            read(&app, &bob, "/shared/doc.txt")
                .await
                .expect("inherited")["content"],
            "d"
        );
        assert_eq!(
            code(&read(&app, &bob, "/sharedx.txt").await),
            DENIED,
            "a prefix is a folder, not text"
        );
        assert_eq!(
            code(&write(&app, &bob, "/shared/new.txt").await),
            DENIED,
            "can_read does not write"
        );
        grant(
            &app,
            tuple("user:bob", "can_write", "file:/zone/eng/shared/bob"),
        )
        .await;
        assert!(write(&app, &bob, "/shared/bob/deep/new.txt").await.is_ok());
        assert!(
            read(&app, &bob, "/shared/bob/deep/new.txt").await.is_ok(),
            "can_write reads"
        );
        assert_eq!(
            code(
                &app.rpc(&bob, "delete", json!({"path": "/shared/doc.txt"}))
                    .await
            ),
            DENIED
        );
        // A token tuple pins one key.
        grant(
            &app,
            tuple(&format!("token:{}", plain.key_id), "reader", "zone:eng"),
        )
        .await;
        assert!(read(&app, &plain.token, "/secret.txt").await.is_ok());
        assert_eq!(
            code(&write(&app, &plain.token, "/p.txt").await),
            DENIED,
            "reader does not write"
        );
        assert_eq!(
            code(&read(&app, &bob, "/secret.txt").await),
            DENIED,
            "another key is not that token"
        );
        // Admin tokens see everything.
        assert!(read(&app, &admin, "/zone/eng/secret.txt").await.is_ok());
        // Back to open: the grant suffices again.
        set_mode(&app, "eng", "open").await;
        assert!(read(&app, &bob, "/secret.txt").await.is_ok());
        // Decisions and compiles are counted, with bounded labels.
        let m = app
            .client
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .expect("metrics");
        let m = m.text().await.expect("metrics text");
        for line in [
            r#"nexus_rebac_checks_total{op="read",outcome="denied"}"#,
            r#"nexus_rebac_checks_total{op="write",outcome="allowed"}"#,
            r#"nexus_rebac_grant_compiles_total{result="compiled"}"#,
            r#"nexus_rebac_grant_compiles_total{result="hit"}"#,
        ] {
            assert!(m.contains(line), "{line} missing from /metrics");
        }
    }
}

/// Membership nests (a group in a group in a group), cycles are harmless, and a zoneless
/// subject-bound token sees exactly the zones its grants reach into; `whoami` names its
/// subject, its groups and the zones' modes.
#[tokio::test]
async fn nested_groups_and_a_zoneless_subject_token() {
    for backend in BACKENDS {
        let app = TestApp::spawn(backend).await;
        for z in ["eng", "ops"] {
            app.zone(z).await;
        }
        let admin = app.mint("root", None, true).await.token;
        app.write_files(
            &admin,
            &[("/zone/eng/proj/deep/x.txt", "x"), ("/zone/ops/o.txt", "o")],
        )
        .await;
        set_mode(&app, "eng", "rebac").await;
        subject(&app, "carol", SubjectType::Agent).await;
        let (carol, _) = bound_token(&app, "carol", "carol-key", None).await;
        // Nothing granted yet: no zone at all.
        let w = app.rpc(&carol, "whoami", json!({})).await.expect("whoami");
        assert_eq!(w["zones"], json!([]), "{w}");
        assert_eq!(
            code(&read(&app, &carol, "/zone/eng/proj/deep/x.txt").await),
            DENIED
        );

        grant(&app, tuple("agent:carol", "member", "group:a")).await;
        grant(&app, tuple("group:a#member", "member", "group:b")).await;
        grant(&app, tuple("group:b#member", "member", "group:c")).await;
        grant(&app, tuple("group:c#member", "member", "group:a")).await;
        grant(
            &app,
            tuple("group:c#member", "can_read", "file:/zone/eng/proj"),
        )
        .await;
        assert_eq!(
            read(&app, &carol, "/zone/eng/proj/deep/x.txt")
                .await
                .expect("via c")["content"],
            "x"
        );
        assert_eq!(
            code(&write(&app, &carol, "/zone/eng/proj/y.txt").await),
            DENIED
        );
        // ops is open, but a zoneless token holds no grant there: tuples decide.
        assert_eq!(code(&read(&app, &carol, "/zone/ops/o.txt").await), DENIED);
        let w = app.rpc(&carol, "whoami", json!({})).await.expect("whoami");
        assert_eq!(
            w["subject"],
            json!({"id": "carol", "type": "agent", "tenant": "acme"}),
            "{w}"
        );
        assert_eq!(w["groups"], json!(["a", "b", "c"]));
        assert_eq!(w["zones"], json!([{"zone": "eng", "permission": "rw"}]));
        assert_eq!(w["zone_access"], json!({"eng": "rebac"}));
        let root = app
            .rpc(&carol, "list", json!({"path": "/"}))
            .await
            .expect("list /");
        assert_eq!(paths(&root, "path"), ["/zone/eng"]);

        grant(&app, tuple("group:b#member", "writer", "zone:ops")).await;
        assert!(write(&app, &carol, "/zone/ops/new.txt").await.is_ok());
        let w = app.rpc(&carol, "whoami", json!({})).await.expect("whoami");
        assert_eq!(w["zone_access"], json!({"eng": "rebac", "ops": "open"}));

        // Namespace admin: every zone, everything in it.
        subject(&app, "ops-lead", SubjectType::User).await;
        let (lead, _) = bound_token(&app, "ops-lead", "lead-key", None).await;
        grant(&app, tuple("user:ops-lead", "admin", "namespace:default")).await;
        assert!(read(&app, &lead, "/zone/eng/proj/deep/x.txt").await.is_ok());
        assert!(write(&app, &lead, "/zone/eng/lead.txt").await.is_ok());
        let root = app
            .rpc(&lead, "list", json!({"path": "/"}))
            .await
            .expect("list /");
        assert_eq!(paths(&root, "path"), ["/zone/eng", "/zone/ops"]);
    }
}

/// A tuple with an expiry counts until then and for nothing after, with no change
/// announced: the compiled grants remember their earliest expiry and are rebuilt.
#[tokio::test]
async fn an_expired_tuple_counts_for_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.zone("eng").await;
    let admin = app.mint("root", None, true).await.token;
    app.write_files(&admin, &[("/zone/eng/t/x.txt", "x")]).await;
    set_mode(&app, "eng", "rebac").await;
    subject(&app, "dave", SubjectType::User).await;
    let (dave, _) = bound_token(&app, "dave", "dave-key", Some("eng:rw")).await;
    grant(&app, tuple("user:dave", "member", "group:temp")).await;
    let expires = Utc::now() + ChronoDuration::seconds(2);
    let mut t = tuple("group:temp#member", "can_read", "file:/zone/eng/t");
    t.expires_at = Some(expires);
    grant(&app, t).await;
    assert!(
        read(&app, &dave, "/t/x.txt").await.is_ok(),
        "before the expiry"
    );
    // Past the expiry (plus a margin for clock granularity): nothing was announced.
    let wait = (expires - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(200);
    tokio::time::sleep(wait).await;
    assert_eq!(
        code(&read(&app, &dave, "/t/x.txt").await),
        DENIED,
        "after the expiry"
    );
}

/// In a rebac zone, list shows only the way to what the caller may read and what it may
/// read; glob and grep show only what it may read; nothing else is named, even by stat.
#[tokio::test]
async fn list_glob_and_grep_never_show_an_unreadable_path() {
    for backend in BACKENDS {
        let app = TestApp::spawn(backend).await;
        app.zone("eng").await;
        let admin = app.mint("root", None, true).await.token;
        app.write_files(
            &admin,
            &[
                ("/zone/eng/a/secret.txt", "needle secret"),
                ("/zone/eng/a/b/ok.txt", "needle ok"),
                ("/zone/eng/a/bb/no.txt", "needle no"),
                ("/zone/eng/c/no.txt", "needle c"),
                ("/zone/eng/top.txt", "needle top"),
            ],
        )
        .await;
        set_mode(&app, "eng", "rebac").await;
        subject(&app, "erin", SubjectType::User).await;
        let (erin, _) = bound_token(&app, "erin", "erin-key", Some("eng:r")).await;
        grant(&app, tuple("user:erin", "can_read", "file:/zone/eng/a/b")).await;

        let l = app
            .rpc(&erin, "list", json!({"path": "/"}))
            .await
            .expect("list /");
        assert_eq!(paths(&l, "path"), ["/a"], "{backend:?}");
        let l = app
            .rpc(&erin, "list", json!({"path": "/a"}))
            .await
            .expect("list /a");
        assert_eq!(paths(&l, "path"), ["/a/b"]);
        let l = app
            .rpc(&erin, "list", json!({"path": "/", "recursive": true}))
            .await
            .expect("list -r");
        assert_eq!(paths(&l, "path"), ["/a", "/a/b", "/a/b/ok.txt"]);
        assert_eq!(l["total"], 3);
        let g = app
            .rpc(&erin, "glob", json!({"pattern": "**"}))
            .await
            .expect("glob");
        assert_eq!(paths(&g, ""), ["/a/b", "/a/b/ok.txt"]);
        let g = app
            .rpc(&erin, "glob", json!({"pattern": "**/*.txt", "path": "/a"}))
            .await
            .expect("glob /a");
        assert_eq!(paths(&g, ""), ["/a/b/ok.txt"]);
        let g = app
            .rpc(&erin, "grep", json!({"pattern": "needle"}))
            .await
            .expect("grep");
        assert_eq!(paths(&g, "path"), ["/a/b/ok.txt"], "{g}");
        let g = app
            .rpc(
                &erin,
                "grep",
                json!({"pattern": "needle", "path": "/a/secret.txt"}),
            )
            .await;
        assert_eq!(code(&g), DENIED);
        assert_eq!(
            code(&app.rpc(&erin, "list", json!({"path": "/c"})).await),
            DENIED
        );
        assert_eq!(code(&read(&app, &erin, "/a/secret.txt").await), DENIED);
        assert_eq!(
            code(
                &app.rpc(&erin, "stat", json!({"path": "/a/secret.txt"}))
                    .await
            ),
            DENIED
        );
        assert_eq!(
            code(&app.rpc(&erin, "stat", json!({"path": "/c"})).await),
            DENIED
        );
        let st = app
            .rpc(&erin, "stat", json!({"path": "/a"}))
            .await
            .expect("stat the way");
        assert_eq!(st["is_dir"], true);
        // An admin token still sees everything.
        let all = app
            .rpc(
                &admin,
                "glob",
                json!({"pattern": "**/*.txt", "path": "/zone/eng"}),
            )
            .await
            .expect("glob");
        assert_eq!(paths(&all, "").len(), 5);
    }
}

/// A deleted tuple is refused on the very next request in the process that deleted it.
#[tokio::test]
async fn a_deleted_tuple_is_refused_on_the_next_request() {
    for backend in BACKENDS {
        let app = TestApp::spawn(backend).await;
        app.zone("eng").await;
        let admin = app.mint("root", None, true).await.token;
        app.write_files(&admin, &[("/zone/eng/w/x.txt", "x")]).await;
        set_mode(&app, "eng", "rebac").await;
        subject(&app, "frank", SubjectType::User).await;
        let (frank, _) = bound_token(&app, "frank", "frank-key", Some("eng:rw")).await;
        let t = tuple("user:frank", "can_read", "file:/zone/eng/w");
        grant(&app, t.clone()).await;
        // Twice: the second decision comes from the compiled grants in the cache.
        assert!(read(&app, &frank, "/w/x.txt").await.is_ok());
        assert!(read(&app, &frank, "/w/x.txt").await.is_ok());
        ungrant(&app, &t).await;
        assert_eq!(
            code(&read(&app, &frank, "/w/x.txt").await),
            DENIED,
            "{backend:?}"
        );
    }
}

/// Disabling a user refuses every token bound to it (401, as a revoked token), and enabling
/// it brings them back; another subject's token is untouched.
#[tokio::test]
async fn disabling_a_user_refuses_all_its_tokens() {
    for backend in BACKENDS {
        let app = TestApp::spawn(backend).await;
        app.zone("eng").await;
        subject(&app, "gina", SubjectType::User).await;
        subject(&app, "hank", SubjectType::User).await;
        let (k1, _) = bound_token(&app, "gina", "gina-1", Some("eng:rw")).await;
        let (k2, _) = bound_token(&app, "gina", "gina-2", None).await;
        let (other, _) = bound_token(&app, "hank", "hank-1", Some("eng:rw")).await;
        let revoked = app.mint("gone", Some("eng:rw"), false).await;
        app.control.revoke_token("gone").await.expect("revoke");
        let (_, revoked_body) = app.rpc_raw(Some(&revoked.token), "whoami", json!({})).await;
        for k in [&k1, &k2, &other] {
            assert_eq!(app.rpc_raw(Some(k), "whoami", json!({})).await.0, 200);
        }
        app.db
            .store
            .set_subject_disabled("gina", Some(Utc::now()))
            .await
            .expect("disable");
        app.bus.publish(Invalidation::Subject {
            subject_id: "gina".into(),
        });
        for k in [&k1, &k2] {
            let (status, body) = app.rpc_raw(Some(k), "whoami", json!({})).await;
            assert_eq!(status, 401, "{backend:?}");
            assert_eq!(body, revoked_body, "the same answer as a revoked token");
        }
        assert_eq!(app.rpc_raw(Some(&other), "whoami", json!({})).await.0, 200);
        app.db
            .store
            .set_subject_disabled("gina", None)
            .await
            .expect("enable");
        app.bus.publish(Invalidation::Subject {
            subject_id: "gina".into(),
        });
        assert_eq!(app.rpc_raw(Some(&k1), "whoami", json!({})).await.0, 200);
    }
}

/// Another nexusd on `a`'s database: its own identity cache, bus and data dir.
async fn second_node(a: &TestApp, o: TestOptions) -> TestApp {
    let db = TestDb {
        url: a.db.url.clone(),
        store: Store::connect(&a.db.url).await.expect("connect"),
        dir: tempfile::tempdir().expect("tempdir"),
    };
    TestApp::start(db, tempfile::tempdir().expect("tempdir"), o).await
}

/// Waits (at most `within`) until `token` may read `path` on `app`.
async fn until_reads(app: &TestApp, token: &str, path: &str, within: Duration) {
    let until = tokio::time::Instant::now() + within;
    while let Err(e) = read(app, token, path).await {
        assert!(
            tokio::time::Instant::now() < until,
            "{path} never became readable: {e}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Another nexusd on the same Postgres, with no bus or Redis between them, learns of a
/// tuple deleted and a user disabled through the database's own notifications, well within
/// its identity cache TTL (it is never told otherwise).
#[tokio::test]
async fn another_nexusd_refuses_a_deleted_tuple_and_a_disabled_user() {
    let ttl = Duration::from_secs(60);
    let o = TestOptions {
        auth_cache_ttl: ttl,
        ..TestOptions::unthrottled()
    };
    let a = TestApp::spawn_with(Backend::Postgres, o.clone()).await;
    let b = second_node(&a, o).await;
    a.zone("eng").await;
    let admin = a.mint("root", None, true).await.token;
    // Files are each node's own: the same file on both.
    a.write_files(&admin, &[("/zone/eng/w/x.txt", "x")]).await;
    b.write_files(&admin, &[("/zone/eng/w/x.txt", "x")]).await;
    set_mode(&a, "eng", "rebac").await;
    subject(&a, "ivy", SubjectType::User).await;
    let (ivy, _) = bound_token(&a, "ivy", "ivy-key", Some("eng:rw")).await;
    let t = tuple("user:ivy", "can_read", "file:/zone/eng/w");
    grant(&a, t.clone()).await;
    // b learns of the mode change and the tuple the same way; wait for both (bounded).
    until_reads(&b, &ivy, "/w/x.txt", ttl / 2).await;
    // Cached on b now.
    assert!(read(&b, &ivy, "/w/x.txt").await.is_ok());
    ungrant(&a, &t).await;
    // Half the TTL: a refusal by then came from the notification, not the TTL backstop.
    let until = tokio::time::Instant::now() + ttl / 2;
    loop {
        match read(&b, &ivy, "/w/x.txt").await {
            Err(e) if e["code"] == DENIED => break,
            other => assert!(tokio::time::Instant::now() < until, "still {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Disabling ivy on a's side refuses her token on b.
    assert_eq!(b.rpc_raw(Some(&ivy), "whoami", json!({})).await.0, 200);
    a.db.store
        .set_subject_disabled("ivy", Some(Utc::now()))
        .await
        .expect("disable");
    within_half_ttl(ttl, "b still accepts a disabled user", || async {
        b.rpc_raw(Some(&ivy), "whoami", json!({})).await.0 == 401
    })
    .await;
    drop(b);
}

/// Many first calls of one identity after a change compile its grants once, not once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_calls_compile_once() {
    let app = TestApp::spawn_with(Backend::Sqlite, TestOptions::unthrottled()).await;
    // Changes reach the server only through the bus here, at known points: the database's
    // own (later) announcements would make it compile again.
    for t in [
        "token_update",
        "token_delete",
        "grants_insert",
        "grants_update",
        "grants_delete",
        "zones_insert",
        "zones_update",
        "zones_delete",
        "rebac_revision",
        "subjects_insert",
        "subjects_update",
        "subjects_delete",
    ] {
        app.db
            .store
            .execute_raw(&format!("DROP TRIGGER nexus_invalidate_{t}"))
            .await
            .expect("drop trigger");
    }
    app.zone("eng").await;
    let admin = app.mint("root", None, true).await.token;
    app.write_files(&admin, &[("/zone/eng/w/x.txt", "x")]).await;
    set_mode(&app, "eng", "rebac").await;
    subject(&app, "jo", SubjectType::User).await;
    let (jo, _) = bound_token(&app, "jo", "jo-key", Some("eng:rw")).await;
    grant(&app, tuple("user:jo", "can_read", "file:/zone/eng/w")).await;
    // The identity is cached; its grants are made stale by one more change.
    assert!(read(&app, &jo, "/w/x.txt").await.is_ok());
    grant(&app, tuple("user:jo", "member", "group:g")).await;
    let compiled = r#"nexus_rebac_grant_compiles_total{result="compiled"}"#;
    let before = app.metric(compiled).await;
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let (base, jo) = (app.base.clone(), jo.clone());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(format!("{base}/api/nfs/read"))
                    .bearer_auth(jo)
                    .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "read", "params": {"path": "/w/x.txt"}}))
                    .send()
                    .await
                    .expect("read")
                    .json::<Value>()
                    .await
                    .expect("JSON")
            })
        })
        .collect();
    for c in calls {
        let v = c.await.expect("task");
        assert_eq!(v["result"]["content"], "x", "{v}");
    }
    assert_eq!(app.metric(compiled).await - before, 1);
}

/// Polls `f` until it is true, for at most half the identity cache TTL: a change seen by
/// then came from a broadcast, not the TTL backstop.
async fn within_half_ttl<F, Fut>(ttl: Duration, what: &str, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    poll_until(ttl / 2, what, f).await;
}

/// The Redis path alone (the database announces nothing: its triggers are dropped): a
/// tuple deleted and a user disabled through one nexusd are refused by another.
#[tokio::test]
async fn through_redis_another_nexusd_refuses_a_deleted_tuple_and_a_disabled_user() {
    let redis = own_redis::OwnRedis::start().await;
    let ttl = Duration::from_secs(60);
    let o = TestOptions {
        auth_cache_ttl: ttl,
        redis_url: Some(redis.url()),
        ..TestOptions::unthrottled()
    };
    let a = TestApp::spawn_with(Backend::Postgres, o.clone()).await;
    a.db.store
        .execute_raw(
            "DROP TRIGGER nexus_invalidate_token_update ON api_tokens; \
             DROP TRIGGER nexus_invalidate_token_delete ON api_tokens; \
             DROP TRIGGER nexus_invalidate_grants ON token_zones; \
             DROP TRIGGER nexus_invalidate_zones ON zones; \
             DROP TRIGGER nexus_invalidate_rebac ON rebac_tuples; \
             DROP TRIGGER nexus_invalidate_subjects ON subjects;",
        )
        .await
        .expect("drop triggers");
    let b = second_node(&a, o).await;
    a.wait_redis_up().await;
    b.wait_redis_up().await;
    a.zone("eng").await;
    let admin = a.mint("root", None, true).await.token;
    a.write_files(&admin, &[("/zone/eng/w/x.txt", "x")]).await;
    b.write_files(&admin, &[("/zone/eng/w/x.txt", "x")]).await;
    set_mode(&a, "eng", "rebac").await;
    subject(&a, "kim", SubjectType::User).await;
    let (kim, _) = bound_token(&a, "kim", "kim-key", Some("eng:rw")).await;
    let t = tuple("user:kim", "can_read", "file:/zone/eng/w");
    grant(&a, t.clone()).await;
    within_half_ttl(ttl, "b never saw the grant", || async {
        read(&b, &kim, "/w/x.txt").await.is_ok()
    })
    .await;
    ungrant(&a, &t).await;
    within_half_ttl(ttl, "b still allows a deleted tuple", || async {
        read(&b, &kim, "/w/x.txt")
            .await
            .is_err_and(|e| e["code"] == DENIED)
    })
    .await;
    a.db.store
        .set_subject_disabled("kim", Some(Utc::now()))
        .await
        .expect("disable");
    a.bus.publish(Invalidation::Subject {
        subject_id: "kim".into(),
    });
    within_half_ttl(ttl, "b still accepts a disabled user", || async {
        b.rpc_raw(Some(&kim), "whoami", json!({})).await.0 == 401
    })
    .await;
    drop(b);
}

/// The bus a tuple-deletion test cuts: a server of the test's own, killed and started
/// again (its data kept).
enum OwnBus {
    Redis(own_redis::OwnRedis),
    Nats(nexus_bus::testing::NatsServer),
}

impl OwnBus {
    async fn start(nats: bool) -> Self {
        if nats {
            let (port, monitor) = (
                rpc_server::testing::free_port(),
                rpc_server::testing::free_port(),
            );
            Self::Nats(nexus_bus::testing::NatsServer::start(port, monitor, "").await)
        } else {
            Self::Redis(own_redis::OwnRedis::start().await)
        }
    }

    /// Test options whose bus is this one (Redis also keeps the limits).
    fn options(&self, ttl: Duration) -> TestOptions {
        let base = TestOptions {
            auth_cache_ttl: ttl,
            ..TestOptions::unthrottled()
        };
        match self {
            Self::Redis(r) => TestOptions {
                redis_url: Some(r.url()),
                ..base
            },
            Self::Nats(n) => TestOptions {
                bus: rpc_server::config::BusSettings::from_args(
                    Some(&n.url().into()),
                    None,
                    1,
                    None,
                ),
                ..base
            },
        }
    }

    fn kill(&mut self) {
        match self {
            Self::Redis(r) => r.kill(),
            Self::Nats(n) => n.kill(),
        }
    }

    async fn start_again(&mut self) {
        match self {
            Self::Redis(r) => r.restart().await,
            Self::Nats(n) => n.start_again().await,
        }
    }
}

/// Two nexusd whose database announces nothing (triggers dropped): the cluster bus is the
/// only path between them. A tuple deleted on one while the bus server is down reaches the
/// other once it is back (the publisher retries, the reader resumes from its position),
/// long before the identity cache's TTL: on a Redis Stream and on NATS JetStream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tuple_deleted_while_the_bus_was_down_reaches_the_other_nexusd_when_it_is_back() {
    for nats in [false, true] {
        tuple_deletion_outlives_a_bus_outage(nats).await;
    }
}

async fn tuple_deletion_outlives_a_bus_outage(nats: bool) {
    let kind = if nats { "NATS" } else { "Redis" };
    let mut bus = OwnBus::start(nats).await;
    let ttl = Duration::from_secs(300);
    let o = bus.options(ttl);
    let a = TestApp::spawn_with(Backend::Postgres, o.clone()).await;
    a.db.without_notify_triggers().await;
    a.db.store
        .execute_raw("DROP TRIGGER nexus_invalidate_rebac ON rebac_tuples")
        .await
        .expect("drop the tuple notification trigger");
    let b = second_node(&a, o).await;
    a.zone("eng").await;
    let admin = a.mint("root", None, true).await.token;
    a.write_files(&admin, &[("/zone/eng/w/x.txt", "x")]).await;
    set_mode(&a, "eng", "rebac").await;
    subject(&a, "ivy", SubjectType::User).await;
    let (ivy, _) = bound_token(&a, "ivy", "ivy-key", Some("eng:rw")).await;
    let t = tuple("user:ivy", "can_read", "file:/zone/eng/w");
    grant(&a, t.clone()).await;
    // b learns of the mode change and the tuple over the bus (bounded wait), then caches.
    until_reads(&b, &ivy, "/w/x.txt", Duration::from_secs(10)).await;
    assert!(read(&b, &ivy, "/w/x.txt").await.is_ok());

    bus.kill();
    ungrant(&a, &t).await;
    // Nothing can tell b now: it still serves its cached grants.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        read(&b, &ivy, "/w/x.txt").await.is_ok(),
        "{kind}: b learned of the deletion with the bus down: the test's only path is not the bus"
    );
    bus.start_again().await;
    let back = tokio::time::Instant::now();
    loop {
        match read(&b, &ivy, "/w/x.txt").await {
            Err(e) if e["code"] == DENIED => break,
            other => assert!(
                back.elapsed() < Duration::from_secs(30),
                "{kind}: b still reads with the tuple deleted {:?} after the bus came back: {other:?}",
                back.elapsed()
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "{kind}: b refused {:?} after the bus came back (cache TTL {ttl:?})",
        back.elapsed()
    );
}
