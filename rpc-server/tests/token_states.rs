//! Every token state as a caller sees it over HTTP, on both backends: which states are
//! accepted, and that every refusal is the same 401 (status, `WWW-Authenticate`, body bytes).

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use nexus_wire::spec::{Permission, SubjectType, ZoneGrant};
use reqwest::header::HeaderValue;
use rpc_server::auth::{PlainToken, TokenHasher};
use rpc_server::db::{Backend, NewToken};
use rpc_server::testing::{BACKENDS, TestApp, TestOptions, test_secret};
use serde_json::{Value, json};
use uuid::Uuid;

/// Header names and raw values of one request.
type Headers = Vec<(&'static str, Vec<u8>)>;

const WHOAMI_BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"whoami","params":{}}"#;

#[derive(Debug)]
struct Reply {
    status: u16,
    www_authenticate: Option<String>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// POSTs `whoami` with exactly the given headers (raw bytes, so non-ASCII can be sent).
async fn whoami_with(app: &TestApp, headers: &[(&str, &[u8])]) -> Reply {
    let mut req = app
        .client
        .post(format!("{}/api/nfs/whoami", app.base))
        .header("content-type", "application/json")
        .body(WHOAMI_BODY);
    for (name, value) in headers {
        req = req.header(*name, HeaderValue::from_bytes(value).expect("header value"));
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let www_authenticate = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii header").to_owned());
    let body = resp.bytes().await.expect("body").to_vec();
    Reply {
        status,
        www_authenticate,
        body,
    }
}

async fn whoami_bearer(app: &TestApp, token: &str) -> Reply {
    whoami_with(
        app,
        &[("authorization", format!("Bearer {token}").as_bytes())],
    )
    .await
}

/// The `whoami` result of an accepted token.
async fn whoami_ok(app: &TestApp, token: &str) -> Value {
    let r = whoami_bearer(app, token).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert!(v.get("error").is_none(), "{v}");
    v["result"].clone()
}

/// Inserts a token directly into the store (bypassing the control plane, which cannot mint
/// an already-expired token) and returns the raw token.
async fn insert_direct(app: &TestApp, name: &str, expires_at: DateTime<Utc>) -> String {
    let raw = PlainToken::generate();
    let hasher = TokenHasher::new(&test_secret()).expect("secret");
    app.db
        .store
        .insert_token(&NewToken {
            key_id: Uuid::new_v4(),
            digest: hasher.digest(raw.expose()).0,
            name: name.into(),
            user_id: format!("user-{name}"),
            subject_type: SubjectType::Agent,
            is_admin: false,
            rate_limit: None,
            created_at: Utc::now() - ChronoDuration::hours(2),
            expires_at: Some(expires_at),
            zones: vec![ZoneGrant {
                zone_id: "eng".into(),
                permission: Permission::ReadWrite,
            }],
            permissions: None,
            oauth: None,
        })
        .await
        .expect("insert token");
    raw.expose().to_owned()
}

fn zone_names(whoami: &Value) -> Vec<String> {
    let mut z: Vec<String> = whoami["zones"]
        .as_array()
        .expect("zones array")
        .iter()
        .map(|z| z["zone"].as_str().expect("zone name").to_owned())
        .collect();
    z.sort();
    z
}

async fn exercise(backend: Backend) {
    let app = TestApp::spawn_with(backend, TestOptions::unthrottled()).await;
    for z in ["eng", "ops", "tmpz"] {
        app.zone(z).await;
    }
    let single = app.mint("single", Some("eng:rw"), false).await;
    let multi = app.mint("multi", Some("eng:rw,ops:r"), false).await;
    let admin = app.mint("root", None, true).await;
    let doomed = app.mint("doomed", Some("eng:rw"), false).await;
    let zoned_out = app.mint("zoned-out", Some("eng:rw,tmpz:rw"), false).await;
    let expired = insert_direct(&app, "expired", Utc::now() - ChronoDuration::hours(1)).await;
    // The same insertion path with a future expiry works, so the refusal below is the expiry.
    let not_yet = insert_direct(&app, "not-yet", Utc::now() + ChronoDuration::hours(1)).await;

    // ---- accepted states

    let w = whoami_ok(&app, &single.token).await;
    assert_eq!(w["key_id"], json!(single.key_id), "{w}");
    assert_eq!(w["name"], json!("single"));
    assert_eq!(w["is_admin"], json!(false));
    assert_eq!(w["path_mode"], json!("single"));
    assert_eq!(w["zones"], json!([{"zone": "eng", "permission": "rw"}]));

    let w = whoami_ok(&app, &multi.token).await;
    assert_eq!(w["key_id"], json!(multi.key_id), "{w}");
    assert_eq!(w["path_mode"], json!("multi"));
    assert_eq!(
        w["zones"],
        json!([{"zone": "eng", "permission": "rw"}, {"zone": "ops", "permission": "r"}])
    );

    let w = whoami_ok(&app, &admin.token).await;
    assert_eq!(w["is_admin"], json!(true), "{w}");
    assert_eq!(w["path_mode"], json!("multi"));
    assert_eq!(zone_names(&w), ["eng", "ops", "tmpz"]);
    assert!(
        w["zones"]
            .as_array()
            .expect("zones")
            .iter()
            .all(|z| z["permission"] == json!("rw")),
        "{w}"
    );

    let w = whoami_ok(&app, &not_yet).await;
    assert_eq!(w["name"], json!("not-yet"));

    // X-Nexus-API-Key works on its own, and alongside the same token in Authorization.
    let r = whoami_with(&app, &[("x-nexus-api-key", multi.token.as_bytes())]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"]["key_id"], json!(multi.key_id));
    let bearer = format!("Bearer {}", multi.token);
    let r = whoami_with(
        &app,
        &[
            ("authorization", bearer.as_bytes()),
            ("x-nexus-api-key", multi.token.as_bytes()),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"]["key_id"], json!(multi.key_id));
    // The scheme is case-insensitive.
    let lower = format!("bearer {}", single.token);
    let r = whoami_with(&app, &[("authorization", lower.as_bytes())]).await;
    assert_eq!(r.status, 200);

    // Used once, so the refusals below also prove that cached identities are dropped.
    assert_eq!(whoami_bearer(&app, &doomed.token).await.status, 200);
    assert_eq!(whoami_bearer(&app, &zoned_out.token).await.status, 200);

    // ---- state changes

    app.control
        .revoke_token(&doomed.key_id)
        .await
        .expect("revoke");
    app.control.delete_zone("tmpz").await.expect("delete zone");

    // A zoneless admin sees every *active* zone, at once.
    let w = whoami_ok(&app, &admin.token).await;
    assert_eq!(zone_names(&w), ["eng", "ops"]);

    // ---- refused states

    let unknown = PlainToken::generate().expose().to_owned();
    let too_long = format!("{}x", single.token);
    let bad_char = format!("{}!", &single.token[..single.token.len() - 1]);
    let upper_prefix = format!("SK-{}", &single.token[3..]);
    let non_ascii = "sk-ÄÖÜäöüßÄÖÜäöüßÄÖÜäöüßÄÖÜäöüßÄÖÜäöüßÄÖÜ".to_owned();
    let spaced = format!("{} {}", &single.token[..20], &single.token[20..]);
    let huge = format!("sk-{}", "a".repeat(600));
    let basic = format!("Basic {}", single.token);
    let token_scheme = format!("Token {}", single.token);
    let auth_of = |t: &str| format!("Bearer {t}");

    let cases: Vec<(&str, Headers)> = vec![
        (
            "unknown",
            vec![("authorization", auth_of(&unknown).into_bytes())],
        ),
        (
            "unknown via api key",
            vec![("x-nexus-api-key", unknown.clone().into_bytes())],
        ),
        (
            "malformed sk-short",
            vec![("authorization", b"Bearer sk-short".to_vec())],
        ),
        (
            "malformed too long",
            vec![("authorization", auth_of(&too_long).into_bytes())],
        ),
        (
            "malformed bad char",
            vec![("authorization", auth_of(&bad_char).into_bytes())],
        ),
        (
            "malformed SK- prefix",
            vec![("authorization", auth_of(&upper_prefix).into_bytes())],
        ),
        (
            "malformed non-ASCII",
            vec![("authorization", auth_of(&non_ascii).into_bytes())],
        ),
        (
            "malformed non-ASCII api key",
            vec![("x-nexus-api-key", non_ascii.clone().into_bytes())],
        ),
        (
            "malformed inner space",
            vec![("authorization", auth_of(&spaced).into_bytes())],
        ),
        (
            "malformed 600 bytes",
            vec![("authorization", auth_of(&huge).into_bytes())],
        ),
        ("empty authorization", vec![("authorization", Vec::new())]),
        ("empty bearer", vec![("authorization", b"Bearer ".to_vec())]),
        ("bare scheme", vec![("authorization", b"Bearer".to_vec())]),
        ("empty api key", vec![("x-nexus-api-key", Vec::new())]),
        ("missing header", vec![]),
        (
            "wrong scheme Basic",
            vec![("authorization", basic.clone().into_bytes())],
        ),
        (
            "wrong scheme Token",
            vec![("authorization", token_scheme.into_bytes())],
        ),
        (
            "no scheme",
            vec![("authorization", single.token.clone().into_bytes())],
        ),
        (
            "two different valid tokens",
            vec![
                ("authorization", auth_of(&single.token).into_bytes()),
                ("x-nexus-api-key", multi.token.clone().into_bytes()),
            ],
        ),
        (
            "valid bearer, empty api key",
            vec![
                ("authorization", auth_of(&single.token).into_bytes()),
                ("x-nexus-api-key", Vec::new()),
            ],
        ),
        (
            "expired",
            vec![("authorization", auth_of(&expired).into_bytes())],
        ),
        (
            "expired via api key",
            vec![("x-nexus-api-key", expired.clone().into_bytes())],
        ),
        (
            "revoked",
            vec![("authorization", auth_of(&doomed.token).into_bytes())],
        ),
        (
            "zone deleted",
            vec![("authorization", auth_of(&zoned_out.token).into_bytes())],
        ),
    ];

    // (WWW-Authenticate, body): both must be the same for every refusal.
    let mut reference: Option<(Option<String>, Vec<u8>)> = None;
    for (label, headers) in &cases {
        let hs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        // Twice: the second answer may come from the negative cache and must not differ.
        for attempt in 0..2 {
            let r = whoami_with(&app, &hs).await;
            let body = String::from_utf8_lossy(&r.body).into_owned();
            assert_eq!(
                r.status, 401,
                "{backend:?} {label} (attempt {attempt}): {body}"
            );
            let www = r.www_authenticate.as_deref().unwrap_or("");
            assert!(
                www.starts_with("Bearer"),
                "{backend:?} {label}: WWW-Authenticate {www:?}"
            );
            assert_eq!(
                r.json()["error"]["code"],
                json!("unauthorized"),
                "{backend:?} {label}: {body}"
            );
            for secret in [&single.token, &multi.token, &doomed.token, &expired] {
                assert!(!body.contains(secret.as_str()), "{label}: token echoed");
            }
            match &reference {
                None => reference = Some((r.www_authenticate.clone(), r.body.clone())),
                Some((first_www, first_body)) => {
                    assert_eq!(
                        first_www, &r.www_authenticate,
                        "{backend:?} {label}: WWW-Authenticate differs from the other refusals"
                    );
                    assert_eq!(
                        first_body, &r.body,
                        "{backend:?} {label}: body differs from the other refusals"
                    );
                }
            }
        }
    }

    // Refusing a request that named two tokens caches nothing against either of them, and
    // the deletion of tmpz did not touch a token that does not hold it.
    assert_eq!(whoami_bearer(&app, &single.token).await.status, 200);
    assert_eq!(whoami_bearer(&app, &multi.token).await.status, 200);
    // A token holding a deleted zone comes back when the zone is restored.
    app.control
        .restore_zone("tmpz")
        .await
        .expect("restore zone");
    assert_eq!(whoami_bearer(&app, &zoned_out.token).await.status, 200);
    // Revocation is final.
    assert_eq!(whoami_bearer(&app, &doomed.token).await.status, 401);
}

#[tokio::test]
async fn token_states_are_answered_alike_on_both_backends() {
    for backend in BACKENDS {
        exercise(backend).await;
    }
}

const CACHE_HITS: &str = "nexus_auth_cache_requests_total{result=\"hit\"}";
const LOOKUPS: &str = "nexus_db_query_duration_seconds_count{op=\"find_token\"}";

/// No wall-clock bound on the machine: the token must be verified (and cached) before its
/// expiry, so the window doubles until a first call fits in it; then the test waits for
/// the expiry itself (the clock the server compares against) and checks the refusal came
/// from the cached entry, not from a new lookup.
#[tokio::test]
async fn a_cached_identity_still_expires_on_time() {
    let app = TestApp::spawn(Backend::Postgres).await;
    app.zone("eng").await;
    let mut window = ChronoDuration::seconds(1);
    let (token, expires_at) = loop {
        let expires_at = Utc::now() + window;
        let name = format!("short-{}", window.num_seconds());
        // The insert's own announcement must not empty the cache after the warm-up below.
        let t = app.settled(insert_direct(&app, &name, expires_at)).await;
        let r = whoami_bearer(&app, &t).await;
        if r.status == 200 {
            break (t, expires_at);
        }
        // A refusal is right only once the expiry has passed (this machine was slow).
        assert!(
            Utc::now() >= expires_at,
            "refused before its expiry: {}",
            String::from_utf8_lossy(&r.body)
        );
        window = window * 2;
        assert!(
            window <= ChronoDuration::seconds(64),
            "no first call completed within 32 s of minting"
        );
    };
    let hits = app.metric(CACHE_HITS).await;
    let lookups = app.metric(LOOKUPS).await;
    // Cached now (60 s TTL), but the token's own expiry comes first. 50 ms past it covers
    // the rounding of the stored timestamp.
    let left = (expires_at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + std::time::Duration::from_millis(50)).await;
    let r = whoami_bearer(&app, &token).await;
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        app.metric(CACHE_HITS).await,
        hits + 1,
        "answered from the cache"
    );
    assert_eq!(app.metric(LOOKUPS).await, lookups, "no lookup was needed");
}
