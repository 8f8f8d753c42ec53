//! The local provider end to end (SPEC §10): root bootstrap, login → call → refresh →
//! reuse revokes the family → logout refused on another nexusd at once, login throttling,
//! permissions of keys and users, bcrypt re-hash, key rotation, hostile input.

use nexus_providers::config::{AuthType, LocalConfig, LocalUser};
use rpc_server::Application;
use rpc_server::auth::InvalidationBus;
use rpc_server::auth::local::LocalSettings;
use rpc_server::config::AuthChain;
use rpc_server::db::Backend;
use rpc_server::testing::{TestDb, TestOptions, config};
use secrecy::SecretString;
use serde_json::{Value, json};

const ROOT_PW: &str = "root-password-for-tests";

fn chain(root_password: Option<&str>, file: Option<LocalConfig>) -> AuthChain {
    let mut c = AuthChain {
        types: vec![AuthType::Database, AuthType::Local],
        ..Default::default()
    };
    c.file.local = file;
    c.local = LocalSettings {
        root_password: root_password.map(|p| SecretString::from(p.to_owned())),
        ..Default::default()
    };
    c
}

async fn server_on(db: &TestDb, auth: AuthChain, trusted: bool) -> String {
    let opts = TestOptions {
        auth_chain: auth,
        ..TestOptions::unthrottled()
    };
    let mut cfg = config(&db.url, db.dir.path(), &opts);
    cfg.public_url = Some("http://hub.test".into());
    if trusted {
        cfg.trusted_proxies =
            nexus_wire::forwarded::parse_trusted(&["127.0.0.1".into()]).expect("valid");
    }
    let app = Application::build_with_bus(cfg, InvalidationBus::new())
        .await
        .expect("server");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    base
}

async fn post(base: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    post_from(base, path, token, body, None).await
}

async fn post_from(
    base: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
    xff: Option<&str>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(x) = xff {
        r = r.header("x-forwarded-for", x);
    }
    let resp = r.send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn login(base: &str, user: &str, pw: &str) -> (u16, Value) {
    post(
        base,
        "/auth/login",
        None,
        json!({"username": user, "password": pw}),
    )
    .await
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_owned()
}

/// Calls an rpc method; Ok(result) or Err(status or JSON-RPC error code).
async fn rpc(base: &str, token: &str, method: &str, params: Value) -> Result<Value, i64> {
    let (status, v) = post(
        base,
        &format!("/api/nfs/{method}"),
        Some(token),
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
    )
    .await;
    if status != 200 {
        return Err(i64::from(status));
    }
    match v.get("result") {
        Some(r) => Ok(r.clone()),
        None => Err(v["error"]["code"].as_i64().unwrap_or(0)),
    }
}

#[tokio::test]
async fn login_call_refresh_reuse_and_logout_reach_another_nexusd() {
    let db = TestDb::new(Backend::Postgres).await;
    let a = server_on(&db, chain(Some(ROOT_PW), None), false).await;
    let b = server_on(&db, chain(Some(ROOT_PW), None), false).await;

    let (st, t1) = login(&a, "root", ROOT_PW).await;
    assert_eq!(st, 200, "{t1}");
    assert_eq!(s(&t1, "token_type"), "Bearer");
    let who = rpc(&b, &s(&t1, "token"), "whoami", json!({}))
        .await
        .expect("whoami on B");
    assert_eq!(who["user_id"], "root");

    // Rotation: a new pair; the old refresh token is dead; presenting it again revokes
    // the whole family, the new refresh token and its access token included.
    let (st, t2) = post(
        &a,
        "/auth/refresh",
        None,
        json!({"refresh_token": s(&t1, "refresh_token")}),
    )
    .await;
    assert_eq!(st, 200, "{t2}");
    assert_ne!(s(&t2, "refresh_token"), s(&t1, "refresh_token"));
    rpc(&b, &s(&t2, "token"), "whoami", json!({}))
        .await
        .expect("new token works");
    let (st, _) = post(
        &a,
        "/auth/refresh",
        None,
        json!({"refresh_token": s(&t1, "refresh_token")}),
    )
    .await;
    assert_eq!(
        st, 401,
        "the rotated refresh token is dead (and its reuse revokes the family)"
    );
    let (st, _) = post(
        &b,
        "/auth/refresh",
        None,
        json!({"refresh_token": s(&t2, "refresh_token")}),
    )
    .await;
    assert_eq!(
        st, 401,
        "the family is revoked: the newest refresh token died too"
    );
    assert_eq!(
        rpc(&a, &s(&t2, "token"), "whoami", json!({})).await,
        Err(401)
    );

    // Logout on A refuses the access token on B, which had it cached.
    let (_, t3) = login(&a, "root", ROOT_PW).await;
    let tok = s(&t3, "token");
    rpc(&b, &tok, "whoami", json!({}))
        .await
        .expect("cached on B");
    let (st, _) = post(&a, "/auth/logout", Some(&tok), json!({})).await;
    assert_eq!(st, 200);
    let mut refused = false;
    for _ in 0..100 {
        if rpc(&b, &tok, "whoami", json!({})).await == Err(401) {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refused, "B refuses the logged-out token within 2 s");
    let (st, _) = post(
        &a,
        "/auth/refresh",
        None,
        json!({"refresh_token": s(&t3, "refresh_token")}),
    )
    .await;
    assert_eq!(st, 401, "logout revoked the refresh family");
}

#[tokio::test]
async fn root_without_a_password_gets_a_generated_one_stored_only_hashed() {
    let db = TestDb::new(Backend::Sqlite).await;
    let base = server_on(&db, chain(None, None), false).await;
    let u = db
        .store
        .find_local_user("root")
        .await
        .expect("query")
        .expect("root exists");
    assert!(
        u.password_hash.starts_with("$argon2id$"),
        "only a hash is stored"
    );
    assert_eq!(
        login(&base, "root", "root").await.0,
        401,
        "never a default password"
    );
}

#[tokio::test]
async fn disable_root_after_setup_once_another_admin_exists() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut c = chain(Some(ROOT_PW), None);
    c.local.disable_root_after_setup = true;
    let base = server_on(&db, c, false).await;
    let (_, t) = login(&base, "root", ROOT_PW).await;
    let (st, v) = post(&base, "/auth/users", Some(&s(&t, "token")),
        json!({"username": "ada", "password": "ada-password", "permissions": ["READ", "WRITE", "ADMIN"]})).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        login(&base, "root", ROOT_PW).await.0,
        401,
        "root is disabled"
    );
    assert_eq!(login(&base, "ada", "ada-password").await.0, 200);
}

#[tokio::test]
async fn brute_force_is_throttled_without_locking_out_the_user_elsewhere() {
    let db = TestDb::new(Backend::Sqlite).await;
    let base = server_on(&db, chain(Some(ROOT_PW), None), true).await;
    let mut throttled = false;
    for _ in 0..10 {
        let (st, _) = post_from(
            &base,
            "/auth/login",
            None,
            json!({"username": "root", "password": "guess"}),
            Some("203.0.113.7"),
        )
        .await;
        assert!(st == 401 || st == 429, "{st}");
        if st == 429 {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "the attacker's address is throttled");
    let (st, _) = post_from(
        &base,
        "/auth/login",
        None,
        json!({"username": "root", "password": ROOT_PW}),
        Some("198.51.100.9"),
    )
    .await;
    assert_eq!(st, 200, "the real user logs in from another address");
}

#[tokio::test]
async fn keys_never_exceed_their_owner_and_read_keys_cannot_write() {
    let db = TestDb::new(Backend::Sqlite).await;
    let base = server_on(&db, chain(Some(ROOT_PW), None), false).await;
    let (_, t) = login(&base, "root", ROOT_PW).await;
    let root = s(&t, "token");
    rpc(
        &base,
        &root,
        "hub_admin_zone_create",
        json!({"name": "eng"}),
    )
    .await
    .expect("zone");
    let (st, v) = post(&base, "/auth/users", Some(&root),
        json!({"username": "alice", "password": "alice-password", "permissions": ["READ", "WRITE"], "zones": "eng:rw"})).await;
    assert_eq!(st, 201, "{v}");
    let (_, t) = login(&base, "alice", "alice-password").await;
    let alice = s(&t, "token");
    rpc(
        &base,
        &alice,
        "write",
        json!({"path": "/zone/eng/a.txt", "content": "x"}),
    )
    .await
    .or(rpc(
        &base,
        &alice,
        "write",
        json!({"path": "/a.txt", "content": "x"}),
    )
    .await)
    .expect("alice writes");

    let (st, k) = post(
        &base,
        "/auth/api-keys",
        Some(&alice),
        json!({"name": "ro", "permissions": ["READ"]}),
    )
    .await;
    assert_eq!(st, 200, "{k}");
    let key = s(&k, "key");
    assert_eq!(k["permissions"], json!(["READ"]));
    rpc(&base, &key, "read", json!({"path": "/a.txt"}))
        .await
        .or(rpc(&base, &key, "read", json!({"path": "/zone/eng/a.txt"})).await)
        .expect("a READ key reads");
    let w = rpc(
        &base,
        &key,
        "write",
        json!({"path": "/b.txt", "content": "y"}),
    )
    .await;
    assert_eq!(w, Err(-32003), "a READ key cannot write");

    let (st, _) = post(
        &base,
        "/auth/api-keys",
        Some(&alice),
        json!({"name": "adm", "permissions": ["ADMIN"]}),
    )
    .await;
    assert_eq!(st, 403, "above the owner's permissions");
    rpc(
        &base,
        &root,
        "hub_admin_zone_create",
        json!({"name": "ops"}),
    )
    .await
    .expect("zone");
    let (st, _) = post(
        &base,
        "/auth/api-keys",
        Some(&alice),
        json!({"name": "ops", "zones": "ops:rw"}),
    )
    .await;
    assert_eq!(st, 403, "a zone the owner does not hold");
    let (st, _) = post(
        &base,
        "/auth/users",
        Some(&alice),
        json!({"username": "eve", "password": "eve-password"}),
    )
    .await;
    assert_eq!(st, 403, "WRITE cannot manage users");
}

#[tokio::test]
async fn admin_cannot_do_super_things() {
    let db = TestDb::new(Backend::Sqlite).await;
    let base = server_on(&db, chain(Some(ROOT_PW), None), false).await;
    let (_, t) = login(&base, "root", ROOT_PW).await;
    let root = s(&t, "token");
    let (st, _) = post(
        &base,
        "/auth/users",
        Some(&root),
        json!({"username": "bob", "password": "bob-password", "permissions": ["ADMIN"]}),
    )
    .await;
    assert_eq!(st, 201);
    let (_, t) = login(&base, "bob", "bob-password").await;
    let bob = s(&t, "token");
    let (st, _) = post(
        &base,
        "/auth/users",
        Some(&bob),
        json!({"username": "carol", "password": "carol-password", "permissions": ["READ"]}),
    )
    .await;
    assert_eq!(st, 201, "ADMIN manages users");
    let (st, _) = post(
        &base,
        "/auth/users/carol/permissions",
        Some(&bob),
        json!({"permissions": ["ADMIN"]}),
    )
    .await;
    assert_eq!(st, 403, "granting ADMIN needs SUPER");
    let (st, _) = post(&base, "/auth/keys/rotate", Some(&bob), json!({})).await;
    assert_eq!(st, 403, "rotating signing keys needs SUPER");
    let r = reqwest::Client::new()
        .delete(format!("{base}/auth/users/root"))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 403, "deleting an admin needs SUPER");
    // SUPER stays root's: root can neither hand it out nor drop its own.
    for (user, perms) in [
        ("carol", json!(["READ", "SUPER"])),
        ("root", json!(["READ", "WRITE", "ADMIN"])),
    ] {
        let (st, _) = post(
            &base,
            &format!("/auth/users/{user}/permissions"),
            Some(&root),
            json!({ "permissions": perms }),
        )
        .await;
        assert_eq!(st, 400, "{user} {perms}");
    }
    let me: Value = reqwest::Client::new()
        .get(format!("{base}/auth/me"))
        .bearer_auth(&root)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert!(me["permissions"].to_string().contains("SUPER"), "{me}");
}

#[tokio::test]
async fn bcrypt_from_the_auth_file_logs_in_and_is_rehashed() {
    let db = TestDb::new(Backend::Sqlite).await;
    let hash = bcrypt::hash("seed-password", 4).expect("bcrypt");
    let file = LocalConfig {
        users: [(
            "dana".to_owned(),
            LocalUser {
                password_hash: hash,
                subject_type: None,
                subject_id: None,
                tenant_id: None,
                is_admin: false,
                permissions: Some(vec!["READ".into()]),
                zones: None,
            },
        )]
        .into(),
        ..Default::default()
    };
    let base = server_on(&db, chain(Some(ROOT_PW), Some(file)), false).await;
    assert_eq!(login(&base, "dana", "seed-password").await.0, 200);
    let u = db
        .store
        .find_local_user("dana")
        .await
        .expect("query")
        .expect("dana");
    assert!(
        u.password_hash.starts_with("$argon2id$"),
        "re-hashed: {}",
        &u.password_hash[..10]
    );
    assert_eq!(
        login(&base, "dana", "seed-password").await.0,
        200,
        "the new hash verifies"
    );
}

#[tokio::test]
async fn rotated_keys_keep_old_tokens_working_and_sign_new_ones() {
    let db = TestDb::new(Backend::Sqlite).await;
    let base = server_on(&db, chain(Some(ROOT_PW), None), false).await;
    let (_, t) = login(&base, "root", ROOT_PW).await;
    let old = s(&t, "token");
    let kid = |tok: &str| {
        jsonwebtoken::decode_header(tok)
            .expect("header")
            .kid
            .expect("kid")
    };
    let (st, v) = post(&base, "/auth/keys/rotate", Some(&old), json!({})).await;
    assert_eq!(st, 200, "{v}");
    assert_ne!(s(&v, "kid"), kid(&old));
    rpc(&base, &old, "whoami", json!({}))
        .await
        .expect("the old key still verifies");
    let (_, t) = login(&base, "root", ROOT_PW).await;
    assert_eq!(
        kid(&s(&t, "token")),
        s(&v, "kid"),
        "new tokens carry the new kid"
    );
}

#[tokio::test]
async fn hostile_usernames_and_passwords_are_400() {
    let db = TestDb::new(Backend::Sqlite).await;
    let base = server_on(&db, chain(Some(ROOT_PW), None), false).await;
    let long = "u".repeat(129);
    assert_eq!(login(&base, &long, "x").await.0, 400);
    assert_eq!(login(&base, "root", &"p".repeat(1025)).await.0, 400);
    assert_eq!(login(&base, "", "x").await.0, 400);
    // Not UTF-8: the JSON cannot even be read.
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/login"))
        .header("content-type", "application/json")
        .body(b"{\"username\":\"\xff\xfe\",\"password\":\"x\"}".to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 400);
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/login"))
        .body(vec![b'a'; 64 * 1024])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 413, "bounded body");
}

/// A token pair or a new key is never kept by a cache between the hub and the caller
/// (RFC 6749 §5.1).
#[tokio::test]
async fn answers_carrying_credentials_are_not_stored() {
    let db = TestDb::new(Backend::Sqlite).await;
    let base = server_on(&db, chain(Some(ROOT_PW), None), false).await;
    let c = reqwest::Client::new();
    let login = c
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": "root", "password": ROOT_PW}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 200);
    assert_eq!(login.headers()["cache-control"], "no-store");
    let pair: Value = login.json().await.expect("json");
    let refresh = c
        .post(format!("{base}/auth/refresh"))
        .json(&json!({"refresh_token": pair["refresh_token"]}))
        .send()
        .await
        .expect("refresh");
    assert_eq!(refresh.status(), 200);
    assert_eq!(refresh.headers()["cache-control"], "no-store");
    let pair: Value = refresh.json().await.expect("json");
    let key = c
        .post(format!("{base}/auth/api-keys"))
        .bearer_auth(pair["token"].as_str().expect("token"))
        .json(&json!({"name": "k", "permissions": ["READ", "WRITE", "ADMIN"]}))
        .send()
        .await
        .expect("key");
    let (status, cache) = (key.status(), key.headers().get("cache-control").cloned());
    assert_eq!(status, 200, "{:?}", key.text().await);
    assert_eq!(cache.expect("cache-control"), "no-store");
}
