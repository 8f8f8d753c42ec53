//! Store behaviour, one test body run against Postgres and SQLite.

use chrono::{Duration, Utc};
use nexus_wire::spec::{Permission, SubjectType, ZoneGrant};
use rpc_server::db::{NewToken, Store, StoreError};
use rpc_server::testing::{BACKENDS, TestDb};
use uuid::Uuid;

fn new_token(name: &str, zones: &[(&str, Permission)]) -> NewToken {
    let mut digest = [0u8; 32];
    digest[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    NewToken {
        key_id: Uuid::new_v4(),
        digest,
        name: name.into(),
        user_id: format!("user-{name}"),
        subject_type: SubjectType::Agent,
        is_admin: false,
        rate_limit: Some("10/s".into()),
        created_at: Utc::now(),
        expires_at: Some(Utc::now() + Duration::days(1)),
        zones: zones
            .iter()
            .map(|(z, p)| ZoneGrant {
                zone_id: (*z).into(),
                permission: *p,
            })
            .collect(),
        permissions: None,
        oauth: None,
    }
}

async fn exercise(store: &Store) {
    let now = Utc::now();
    store.create_zone("eng", now).await.expect("create eng");
    store.create_zone("ops", now).await.expect("create ops");
    assert!(matches!(
        store.create_zone("eng", now).await,
        Err(StoreError::ZoneExists(_))
    ));
    assert_eq!(store.active_zones().await.expect("zones"), ["eng", "ops"]);

    let t = new_token(
        "alice",
        &[("eng", Permission::ReadWrite), ("ops", Permission::Read)],
    );
    store.insert_token(&t).await.expect("insert");
    // Name unique among non-revoked tokens: enforced by the database.
    let dup = new_token("alice", &[("eng", Permission::Read)]);
    assert!(matches!(
        store.insert_token(&dup).await,
        Err(StoreError::DuplicateName(_))
    ));
    // Grants must name active zones, and a failed insert leaves nothing behind.
    let ghost = new_token("ghost", &[("nope", Permission::Read)]);
    assert!(matches!(
        store.insert_token(&ghost).await,
        Err(StoreError::ZoneNotActive(_))
    ));
    assert!(
        store
            .find_token_by_digest(&ghost.digest)
            .await
            .expect("lookup")
            .is_none()
    );

    let found = store
        .find_token_by_digest(&t.digest)
        .await
        .expect("lookup")
        .expect("present");
    assert_eq!(found.key_id, t.key_id);
    assert_eq!(found.name, "alice");
    assert_eq!(found.subject_type, SubjectType::Agent);
    assert_eq!(found.zones.len(), 2);
    assert!(found.zones_active);
    assert_eq!(found.rate_limit.as_deref(), Some("10/s"));
    assert!(found.expires_at.is_some());
    assert!(
        store
            .find_token_by_digest(&[9u8; 32])
            .await
            .expect("lookup")
            .is_none()
    );

    // Zone deletion marks holders' grants inactive; restoring brings them back.
    store.delete_zone("ops", Utc::now()).await.expect("delete");
    assert!(matches!(
        store.delete_zone("ops", Utc::now()).await,
        Err(StoreError::NotFound)
    ));
    let found = store
        .find_token_by_digest(&t.digest)
        .await
        .expect("lookup")
        .expect("present");
    assert!(!found.zones_active);
    assert_eq!(store.list_zones(false).await.expect("list").len(), 1);
    assert_eq!(store.list_zones(true).await.expect("list").len(), 2);
    assert!(matches!(
        store.create_zone("ops", Utc::now()).await,
        Err(StoreError::ZoneDeleted(_))
    ));
    assert_eq!(
        store
            .restore_zone("ops", Utc::now())
            .await
            .expect("restore"),
        1
    );
    assert!(
        store
            .find_token_by_digest(&t.digest)
            .await
            .expect("lookup")
            .expect("present")
            .zones_active
    );

    // Grants: upsert changes a permission, remove drops one.
    store
        .upsert_token_zones(
            t.key_id,
            &[ZoneGrant {
                zone_id: "ops".into(),
                permission: Permission::ReadWrite,
            }],
        )
        .await
        .expect("upsert");
    assert_eq!(
        store
            .remove_token_zones(t.key_id, &["eng".into()])
            .await
            .expect("remove"),
        1
    );
    let found = store
        .find_token_by_digest(&t.digest)
        .await
        .expect("lookup")
        .expect("present");
    assert_eq!(
        found.zones,
        vec![ZoneGrant {
            zone_id: "ops".into(),
            permission: Permission::ReadWrite
        }]
    );

    // last_used_at is written in batches and never moves backwards.
    let later = Utc::now();
    store
        .touch_last_used(&[(t.key_id, later)])
        .await
        .expect("touch");
    store
        .touch_last_used(&[(t.key_id, later - Duration::hours(1))])
        .await
        .expect("touch");
    let rec = store
        .find_token_by_digest(&t.digest)
        .await
        .expect("lookup")
        .expect("present");
    let seen = rec.last_used_at.expect("last used");
    assert!(
        (seen - later).num_milliseconds().abs() < 5,
        "{seen} vs {later}"
    );

    // Revocation is soft, frees the name, and happens once.
    store
        .revoke_token(t.key_id, Utc::now())
        .await
        .expect("revoke");
    assert!(matches!(
        store.revoke_token(t.key_id, Utc::now()).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .find_token_by_digest(&t.digest)
            .await
            .expect("lookup")
            .expect("kept")
            .revoked_at
            .is_some()
    );
    store
        .insert_token(&new_token("alice", &[("eng", Permission::Read)]))
        .await
        .expect("name reusable");
    assert_eq!(store.list_tokens(false).await.expect("list").len(), 1);
    assert_eq!(store.list_tokens(true).await.expect("list").len(), 2);
    let zones = store.list_zones(false).await.expect("zones");
    assert_eq!(
        zones
            .iter()
            .find(|z| z.zone_id == "eng")
            .expect("eng")
            .tokens,
        1
    );
}

#[tokio::test]
async fn store_behaves_the_same_on_both_backends() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        assert_eq!(db.store.backend(), backend);
        exercise(&db.store).await;
    }
}
