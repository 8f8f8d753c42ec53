//! OIDC access tokens against a real OpenID provider (SPEC §10): npm `oidc-provider`
//! (`tests/oidc/idp.mjs`) run by Node on 127.0.0.1, issuing RFC 9068 `at+jwt` tokens with
//! the client-credentials grant and a resource indicator, verified by a real nexusd.
//!
//! Valid tokens act as the mapped subject with its claimed groups; every hostile or wrong
//! token gets the one 401 body; the JWKS rules (one refetch for an unknown kid at most once
//! a minute, rotation, the last good keys while the IdP is down, a huge key set bounded)
//! are observed from outside, counting fetches at the IdP.
//!
//! Needs `node` and `tests/oidc/node_modules` (`npm ci --prefix tests/oidc`): without them
//! the tests say so and pass, except in CI (`CI` set), where that is a failure.

use chrono::Utc;
use nexus_authz::model::{ObjectRef, Relation, SubjectRef, Tuple};
use nexus_providers::config::{AuthFile, AuthType, MultiOidcConfig};
use nexus_wire::spec::SubjectType;
use rpc_server::auth::invalidation::Invalidation;
use rpc_server::config::AuthChain;
use rpc_server::db::{Backend, NewSubject};
use rpc_server::testing::idp::{AUD, Idp, idp_available};
use rpc_server::testing::{BACKENDS, TestApp, TestOptions, code};
use serde_json::{Value, json};

const DENIED: i64 = -32003;

fn single(idp: &Idp) -> TestOptions {
    TestOptions {
        auth_chain: AuthChain {
            types: vec![AuthType::Database, AuthType::Oidc],
            file: AuthFile {
                oidc: Some(idp.config()),
                ..Default::default()
            },
            path: None,
            local: Default::default(),
            config_file: None,
        },
        ..TestOptions::unthrottled()
    }
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

async fn whoami(app: &TestApp, token: &str) -> (u16, Value) {
    app.rpc_raw(Some(token), "whoami", json!({})).await
}

fn tuple(subject: &str, relation: &str, object: &str) -> Tuple {
    Tuple::new(
        SubjectRef::parse(subject).expect("subject"),
        relation.parse::<Relation>().expect("relation"),
        ObjectRef::parse(object).expect("object"),
    )
}

/// A valid token acts as its subject with its groups: `groups: [eng]` reads a rebac zone
/// granted to `group:eng#member`, a token without the group does not, a zones claim is a
/// ceiling, and a registered subject named by the token binds it; disabling that subject
/// refuses its still-valid token at once. Postgres and SQLite.
#[tokio::test]
async fn tokens_act_as_their_subject_with_their_groups() {
    if !idp_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let idp = Idp::fresh(&dir, "a", &[]).await;
    for backend in BACKENDS {
        let app = TestApp::spawn_with(backend, single(&idp)).await;
        app.control
            .create_zone_with_access("eng", "rebac")
            .await
            .expect("zone");
        let admin = app.mint("root", None, true).await.token;
        app.write_files(&admin, &[("/zone/eng/plan.txt", "ship it")])
            .await;
        app.db
            .store
            .create_tuple(
                &tuple("group:eng#member", "reader", "zone:eng"),
                None,
                Utc::now(),
            )
            .await
            .expect("tuple");
        app.bus.publish(Invalidation::Rebac);

        let eng = idp.token("eng-bot").await;
        let (status, me) = whoami(&app, &eng).await;
        assert_eq!(status, 200, "{backend:?}: {me}");
        assert_eq!(me["result"]["user_id"], "eng-bot");
        let read = app
            .rpc(&eng, "read", json!({"path": "/zone/eng/plan.txt"}))
            .await;
        assert_eq!(
            read.expect("eng reads")["content"],
            "ship it",
            "{backend:?}"
        );
        let write = app
            .rpc(
                &eng,
                "write",
                json!({"path": "/zone/eng/x.txt", "content": "x"}),
            )
            .await;
        assert_eq!(code(&write), DENIED, "reader only");

        let plain = idp.token("hub-test").await;
        assert_eq!(whoami(&app, &plain).await.0, 200);
        let r = app
            .rpc(&plain, "read", json!({"path": "/zone/eng/plan.txt"}))
            .await;
        assert!(r.is_err(), "no group, no access: {r:?}");

        // ops-bot's zones claim `eng:r` is its ceiling: eng readable (open mode here), and
        // as its one zone, addressed without the /zone prefix like any one-zone token.
        app.control
            .set_zone_access("eng", "open")
            .await
            .expect("open");
        let ops = idp.token("ops-bot").await;
        let r = app.rpc(&ops, "read", json!({"path": "/plan.txt"})).await;
        assert_eq!(
            r.unwrap_or_else(|e| panic!("ops reads: {e}"))["content"],
            "ship it"
        );
        let w = app
            .rpc(&ops, "write", json!({"path": "/y.txt", "content": "y"}))
            .await;
        assert!(w.is_err(), "read-only zone claim: {w:?}");

        // A registered subject binds the token; disabling it refuses the token at once.
        app.db
            .store
            .create_subject(
                &NewSubject {
                    subject_id: "eng-bot".into(),
                    subject_type: SubjectType::Service,
                    display_name: "Eng bot".into(),
                    tenant_id: None,
                    owner_id: None,
                    created_at: Utc::now(),
                },
                None,
                false,
            )
            .await
            .expect("subject");
        app.bus.publish(Invalidation::Subject {
            subject_id: "eng-bot".into(),
        });
        let (status, me) = whoami(&app, &eng).await;
        assert_eq!(status, 200);
        assert_eq!(me["result"]["subject"]["id"], "eng-bot", "{me}");
        let (_, unknown_body) = whoami(&app, "sk-nobody-at-all").await;
        app.db
            .store
            .set_subject_disabled("eng-bot", Some(Utc::now()))
            .await
            .expect("disable");
        app.bus.publish(Invalidation::Subject {
            subject_id: "eng-bot".into(),
        });
        let (status, body) = whoami(&app, &eng).await;
        assert_eq!((status, &body), (401, &unknown_body), "{backend:?}");
        app.db
            .store
            .set_subject_disabled("eng-bot", None)
            .await
            .expect("enable");
        app.bus.publish(Invalidation::Subject {
            subject_id: "eng-bot".into(),
        });
        // The refusal was cached briefly; a new token of the subject works at once.
        let again = idp.token("eng-bot").await;
        assert_eq!(whoami(&app, &again).await.0, 200);
        drop(app);
    }
}

/// Every wrong token gets the same 401 body: wrong audience, an issuer not configured (a
/// forged `iss`, and a real second IdP), expired, `alg: none`, HS256 signed with the public
/// key, an ID token, a bad signature, a not-yet-valid token, no subject; an unknown kid
/// costs one JWKS refetch, and a flood of them none more.
#[tokio::test]
async fn wrong_tokens_get_the_one_401() {
    if !idp_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let idp = Idp::fresh(&dir, "a", &[]).await;
    let other = Idp::fresh(&dir, "b", &[]).await;
    let app = TestApp::spawn_with(Backend::Sqlite, single(&idp)).await;
    // The test's own look at the keys is one fetch too: counts below are after it.
    let jwk = idp.public_jwk().await;
    let good = idp.token("hub-test").await;
    assert_eq!(whoami(&app, &good).await.0, 200);
    assert_eq!(idp.jwks_fetches().await, 2, "discovery, then one fetch");
    let (status, baseline) = whoami(&app, "sk-not-a-real-key").await;
    assert_eq!(status, 401);

    let now = Utc::now().timestamp();
    let kid = jwk["kid"].as_str().expect("kid").to_owned();
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some(kid.clone()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &json!({"iss": idp.url, "aud": AUD, "sub": "hub-test", "exp": now + 300}),
        &jsonwebtoken::EncodingKey::from_secret(jwk.to_string().as_bytes()).expect("hmac key"),
    )
    .expect("hs256");
    let none = format!(
        "{}.{}.c2ln",
        b64(&format!(r#"{{"alg":"none","kid":"{kid}"}}"#)),
        b64(&format!(
            r#"{{"iss":"{}","aud":"{AUD}","sub":"hub-test","exp":{}}}"#,
            idp.url,
            now + 300
        ))
    );
    let mut tampered = good.clone();
    tampered.truncate(tampered.len() - 4);
    tampered.push_str("AAAA");
    let cases = vec![
        (
            "wrong audience",
            idp.sign(json!({"aud": "http://elsewhere/mcp"}), json!({}))
                .await,
        ),
        (
            "forged issuer",
            idp.sign(json!({"iss": "http://127.0.0.1:1"}), json!({}))
                .await,
        ),
        (
            "second issuer, not configured",
            other.token("hub-test").await,
        ),
        (
            "expired",
            idp.sign(json!({"exp": now - 3600, "iat": now - 4000}), json!({}))
                .await,
        ),
        ("no exp", idp.sign(json!({"exp": null}), json!({})).await),
        (
            "not yet valid",
            idp.sign(json!({"nbf": now + 3600}), json!({})).await,
        ),
        ("alg none", none),
        ("HS256 with the public key", hs256),
        (
            "ID token",
            idp.sign(json!({"nonce": "n", "at_hash": "h"}), json!({"typ": "JWT"}))
                .await,
        ),
        (
            "ID token typ",
            idp.sign(json!({}), json!({"typ": "id_token+jwt"})).await,
        ),
        ("bad signature", tampered),
        (
            "subject not a subject id",
            idp.sign(json!({"sub": "Not Valid!"}), json!({})).await,
        ),
        (
            "oversized",
            format!("{}.{}.c2ln", b64("{}"), "a".repeat(20_000)),
        ),
    ];
    for (what, token) in &cases {
        let (status, body) = whoami(&app, token).await;
        assert_eq!((status, &body), (401, &baseline), "{what}");
    }
    assert_eq!(idp.jwks_fetches().await, 2, "none of those fetched keys");

    // A kid never seen: one refetch, then 401; a flood of them: no more fetches.
    let unknown = idp.sign(json!({}), json!({"kid": "never-seen"})).await;
    assert_eq!(whoami(&app, &unknown).await, (401, baseline.clone()));
    assert_eq!(idp.jwks_fetches().await, 3, "exactly one refetch");
    for n in 0..30 {
        let t = idp
            .sign(
                json!({"jti": format!("j{n}")}),
                json!({"kid": format!("bogus-{n}")}),
            )
            .await;
        assert_eq!(whoami(&app, &t).await.0, 401);
    }
    assert_eq!(idp.jwks_fetches().await, 3, "at most one fetch a minute");
    assert!(
        app.metric(r#"nexus_oidc_refusals_total{reason="unknown_kid"}"#)
            .await
            >= 31
    );
    assert!(
        app.metric(r#"nexus_oidc_refusals_total{reason="audience"}"#)
            .await
            >= 1
    );
    assert!(
        app.metric(r#"nexus_oidc_jwks_fetches_total{outcome="ok"}"#)
            .await
            >= 2
    );
    // Valid tokens still work.
    assert_eq!(whoami(&app, &idp.token("eng-bot").await).await.0, 200);
}

/// Key rotation ([k2, k1] after a restart: a k2 token is accepted after exactly one
/// refetch, k1 tokens still are), then the IdP stopped: tokens of cached keys keep working,
/// a new kid is refused.
#[tokio::test]
async fn rotation_and_an_idp_outage() {
    if !idp_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let idp = Idp::fresh(&dir, "rot", &["--key-type", "rsa"]).await;
    let app = TestApp::spawn_with(Backend::Sqlite, single(&idp)).await;
    assert_eq!(whoami(&app, &idp.token("hub-test").await).await.0, 200);
    let k1_later = idp.token("eng-bot").await;
    let k1_during_outage = idp.token("ops-bot").await;

    let idp = idp.restart(&["--key-type", "rsa", "--rotate"]).await;
    let k2 = idp.token("hub-test").await;
    assert_eq!(
        whoami(&app, &k2).await.0,
        200,
        "the new key, found by a refetch"
    );
    assert_eq!(idp.jwks_fetches().await, 1, "exactly one refetch");
    assert_eq!(whoami(&app, &k1_later).await.0, 200, "k1 still published");
    let k2_during_outage = idp.token("eng-bot").await;
    let unknown = idp
        .sign(json!({}), json!({"kid": "rotated-in-later"}))
        .await;
    idp.stop().await;

    assert_eq!(whoami(&app, &k1_during_outage).await.0, 200, "cached keys");
    assert_eq!(whoami(&app, &k2_during_outage).await.0, 200, "cached keys");
    assert_eq!(whoami(&app, &unknown).await.0, 401, "a new kid is refused");
}

/// Two issuers at once (multi-oidc): each one's tokens are accepted, as distinct callers
/// even for the same subject name; a third issuer's are not.
#[tokio::test]
async fn multi_oidc_accepts_each_configured_issuer() {
    if !idp_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Idp::fresh(&dir, "a", &["--key-type", "ed25519"]).await;
    let b = Idp::fresh(&dir, "b", &["--key-type", "rsa"]).await;
    let c = Idp::fresh(&dir, "c", &[]).await;
    let opts = TestOptions {
        auth_chain: AuthChain {
            types: vec![AuthType::Database, AuthType::MultiOidc],
            file: AuthFile {
                multi_oidc: Some(MultiOidcConfig {
                    providers: [
                        ("corp".to_owned(), a.config()),
                        ("partner".to_owned(), b.config()),
                    ]
                    .into_iter()
                    .collect(),
                }),
                ..Default::default()
            },
            path: None,
            local: Default::default(),
            config_file: None,
        },
        ..TestOptions::unthrottled()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, opts).await;
    let (sa, ma) = whoami(&app, &a.token("hub-test").await).await;
    let (sb, mb) = whoami(&app, &b.token("hub-test").await).await;
    assert_eq!((sa, sb), (200, 200), "{ma} {mb}");
    assert_eq!(ma["result"]["user_id"], mb["result"]["user_id"]);
    assert_ne!(
        ma["result"]["key_id"], mb["result"]["key_id"],
        "one caller per (issuer, subject)"
    );
    assert_eq!(whoami(&app, &c.token("hub-test").await).await.0, 401);
    let token = a.token("eng-bot").await;
    let (_, again) = whoami(&app, &token).await;
    assert_eq!(
        whoami(&app, &a.token("eng-bot").await).await.1["result"]["key_id"],
        again["result"]["key_id"],
        "stable across tokens"
    );
}

/// A JWKS of 10,000 keys: over the body bound, refused as unusable (503, never a 401 the
/// hub cannot stand behind), counted as too large; 5,000 keys fit the bound and are cut to
/// the first 100, the real key among them.
#[tokio::test]
async fn huge_key_sets_are_bounded() {
    if !idp_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let huge = Idp::fresh(&dir, "huge", &["--pad-jwks", "10000"]).await;
    let app = TestApp::spawn_with(Backend::Sqlite, single(&huge)).await;
    assert_eq!(whoami(&app, &huge.token("hub-test").await).await.0, 503);
    assert_eq!(
        app.metric(r#"nexus_oidc_jwks_fetches_total{outcome="too_large"}"#)
            .await,
        1
    );
    drop(app);
    let big = Idp::fresh(&dir, "big", &["--pad-jwks", "5000"]).await;
    let app = TestApp::spawn_with(Backend::Sqlite, single(&big)).await;
    assert_eq!(whoami(&app, &big.token("hub-test").await).await.0, 200);
}
