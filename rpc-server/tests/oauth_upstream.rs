//! Sign-in through an upstream OpenID provider on the hub's OAuth pages (SPEC §11), end to
//! end over HTTP against a real one (npm `oidc-provider`, `tests/oidc/idp.mjs`, its
//! development sign-in and consent pages): a hub with no local users offers "Continue with
//! …", the IdP signs alice in, her ID token's claims give her subject and zones, the hub's
//! consent page follows and the code becomes a hub token of kind `oauth` for her subject
//! that refreshes and dies with the subject's disabling. And the attacks: a changed or
//! foreign state, a callback replayed or opened in another browser, the IdP's
//! `access_denied`, an ID token with another audience, nonce or issuer, the wrong `iss`
//! in the callback, and the continue form without its CSRF token. A public client at the
//! IdP (PKCE alone) signs in too, and `oauth.login` is audited with the provider.

use nexus_providers::config::{AuthFile, AuthType, OidcLogin};
use rpc_server::Application;
use rpc_server::auth::InvalidationBus;
use rpc_server::config::{AuthChain, OAuthSettings};
use rpc_server::db::{Backend, NewSubject};
use rpc_server::testing::idp::{Idp, idp_available};
use rpc_server::testing::oauth::{
    Answer, ISSUER, RESOURCE, VERIFIER, answer, encode, http, redeem_for, refresh_grant, rpc,
};
use rpc_server::testing::{TestDb, TestOptions, config};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;

const CALLBACK: &str = "http://hub.test/oauth/upstream/callback";
const REDIRECT: &str = "http://127.0.0.1:33419/callback";

struct Hub {
    base: String,
    control: rpc_server::control::Control,
    _keys: tempfile::TempDir,
}

/// The IdP, its logins sent back to the hub's callback, and a fresh database; the
/// tempdir holds the IdP's files.
async fn idp_and_db(backend: Backend) -> (tempfile::TempDir, Idp, TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let idp = Idp::fresh(&dir, "idp", &["--login-redirect", CALLBACK]).await;
    (dir, idp, TestDb::new(backend).await)
}

/// A hub whose only sign-in is the IdP (as the hub's confidential client `hub-login`,
/// its secret in a 0600 file; or the public client `hub-login-public`).
async fn hub(db: &TestDb, idp: &Idp, public: bool) -> Hub {
    hub_with(db, idp, public, None, None).await
}

/// As [`hub`], publishing audit events on `redis` when given, with `login.session` when
/// given.
async fn hub_with(
    db: &TestDb,
    idp: &Idp,
    public: bool,
    redis: Option<String>,
    session: Option<&str>,
) -> Hub {
    let keys = tempfile::tempdir().expect("tempdir");
    let secret_file = keys.path().join("idp-secret");
    std::fs::write(&secret_file, "hub-login-secret\n").expect("secret");
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut oidc = idp.config();
    oidc.login = Some(OidcLogin {
        client_id: if public {
            "hub-login-public".into()
        } else {
            "hub-login".into()
        },
        client_secret_file: (!public).then_some(secret_file),
        client_secret_env: None,
        scopes: None,
        display_name: Some("Test IdP".into()),
        session: session.map(str::to_owned),
    });
    let chain = AuthChain {
        types: vec![AuthType::Database, AuthType::Oidc],
        file: AuthFile {
            oidc: Some(oidc),
            ..Default::default()
        },
        ..Default::default()
    };
    let opts = TestOptions {
        auth_chain: chain,
        redis_url: redis,
        ..TestOptions::unthrottled()
    };
    let mut cfg = config(&db.url, db.dir.path(), &opts);
    cfg.oauth = Some(OAuthSettings::new(ISSUER, true).expect("issuer"));
    let app = Application::build_with_bus(cfg, InvalidationBus::new())
        .await
        .expect("a hub with only OIDC sign-in starts");
    let control = app.state().control.clone().expect("control");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    for z in ["eng", "ops"] {
        let _ = control.create_zone(z).await;
    }
    Hub {
        base,
        control,
        _keys: keys,
    }
}

async fn post_form(url: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Answer {
    let mut r = http()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(form));
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    answer(r).await
}

async fn register(base: &str) -> String {
    let v: Value = http()
        .post(format!("{base}/oauth/register"))
        .json(&json!({"client_name": "Upstream Test Client", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    v["client_id"].as_str().expect("client_id").to_owned()
}

/// The hub's login page for a fresh authorization request: (page, its CSRF cookie).
async fn login_page(base: &str, client: &str) -> (Answer, String) {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", client)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", &nexus_oauth::pkce::challenge_of(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "client-state")
        .append_pair("resource", RESOURCE);
    let page = answer(http().get(format!("{base}/oauth/authorize?{}", q.finish()))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let cookie = page.cookie_named("nexus_oauth").expect("a CSRF cookie");
    (page, cookie)
}

/// "Continue with …": the 303 to the IdP and the browser-binding cookie.
async fn continue_with(base: &str, page: &Answer, cookie: &str) -> (String, String) {
    let away = post_form(
        &format!("{base}/oauth/authorize/upstream"),
        Some(cookie),
        &[
            ("request", &page.hidden("request")),
            ("csrf", &page.hidden("csrf")),
            ("provider", "oidc"),
        ],
    )
    .await;
    assert_eq!(away.status, 303, "{}", away.body);
    let binding = away
        .cookie_named("nexus_oauth_upstream")
        .expect("a binding cookie");
    let set = away.header("set-cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    (away.header("location"), binding)
}

/// Drives the IdP's own pages as a browser would (its cookies kept by name and path, sent
/// where their path allows): signs in as `login` and consents, or aborts at the sign-in
/// page. Returns the URL the IdP sends the browser back to (the hub's callback).
async fn at_the_idp(start: &str, login: &str, abort: bool) -> String {
    let mut jar: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut url = start.to_owned();
    let mut post: Option<Vec<(String, String)>> = None;
    for _ in 0..20 {
        if url.starts_with(CALLBACK) {
            return url;
        }
        let path = url::Url::parse(&url).expect("url").path().to_owned();
        let cookies = jar
            .iter()
            .filter(|((_, p), _)| path.starts_with(p.as_str()))
            .map(|((k, _), v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut r = match post.take() {
            Some(form) => {
                let pairs: Vec<(&str, &str)> =
                    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                http()
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(encode(&pairs))
            }
            None => http().get(&url),
        };
        if !cookies.is_empty() {
            r = r.header("cookie", cookies);
        }
        let a = answer(r).await;
        for c in a.headers.get_all("set-cookie") {
            let c = c.to_str().expect("ascii");
            let mut parts = c.split(';');
            let Some((k, v)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let p = parts
                .filter_map(|a| a.trim().split_once('='))
                .find(|(n, _)| n.eq_ignore_ascii_case("path"))
                .map_or("/".to_owned(), |(_, p)| p.to_owned());
            if v.is_empty() {
                jar.remove(&(k.to_owned(), p));
            } else {
                jar.insert((k.to_owned(), p), v.to_owned());
            }
        }
        let here = url::Url::parse(&url).expect("url");
        if (300..400).contains(&a.status) {
            url = here.join(&a.header("location")).expect("location").into();
            continue;
        }
        assert_eq!(a.status, 200, "the IdP at {url}: {}", a.body);
        let attr = |marker: &str| {
            let start = a.body.find(marker).map(|i| i + marker.len())?;
            let end = a.body[start..].find('"')?;
            Some(a.body[start..start + end].replace("&amp;", "&"))
        };
        if abort {
            let href = attr("href=\"").expect("the abort link");
            url = here.join(&href).expect("abort").into();
            continue;
        }
        let action = attr("action=\"").expect("a form");
        url = here.join(&action).expect("action").into();
        post = Some(if a.body.contains("name=\"login\"") {
            vec![
                ("prompt".into(), "login".into()),
                ("login".into(), login.into()),
                ("password".into(), "any".into()),
            ]
        } else {
            vec![("prompt".into(), "consent".into())]
        });
    }
    panic!("the IdP never sent the browser back (last at {url})");
}

/// The IdP's answer delivered to the hub: the callback on the hub's real address.
async fn callback(base: &str, back: &str, binding: Option<&str>) -> Answer {
    let url = back.replacen(ISSUER, base, 1);
    let mut r = http().get(url);
    if let Some(b) = binding {
        r = r.header("cookie", b);
    }
    answer(r).await
}

/// Login page → IdP → the hub's consent page, as `login`.
async fn to_consent(base: &str, client: &str, login: &str) -> (Answer, String) {
    let (page, cookie) = login_page(base, client).await;
    let (to_idp, binding) = continue_with(base, &page, &cookie).await;
    let back = at_the_idp(&to_idp, login, false).await;
    let consent = callback(base, &back, Some(&binding)).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let cookie = consent
        .cookie_named("nexus_oauth")
        .expect("a fresh CSRF cookie for the consent form");
    (consent, cookie)
}

async fn whoami(base: &str, token: &str) -> Result<Value, u16> {
    let resp = http()
        .post(format!("{base}/api/nfs/whoami"))
        .bearer_auth(token)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "whoami", "params": {}}))
        .send()
        .await
        .expect("send");
    let s = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    match (s, v.get("result")) {
        (200, Some(r)) => Ok(r.clone()),
        _ => Err(s),
    }
}

/// An error page: shown here, never a redirect anywhere.
fn refused(a: &Answer, status: u16, says: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert!(a.header("location").is_empty(), "no redirect");
    assert!(a.body.contains(says), "{says:?} in {}", a.body);
    assert_eq!(a.header("x-frame-options"), "DENY");
}

#[tokio::test]
async fn an_oidc_sign_in_gets_a_hub_token_for_its_subject_on_both_databases() {
    if !idp_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let idp = Idp::fresh(&dir, "idp", &["--login-redirect", CALLBACK]).await;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDb::new(backend).await;
        let h = hub(&db, &idp, false).await;
        let base = &h.base;
        let client = register(base).await;

        // Only the IdP signs people in here: a button, no password form.
        let (page, _) = login_page(base, &client).await;
        assert!(
            page.body.contains("Continue with Test IdP"),
            "{}",
            page.body
        );
        assert!(!page.body.contains("type=\"password\""));
        // The continue form is answered by a redirect to the IdP: the CSP allows it.
        let csp = page.header("content-security-policy");
        assert!(
            csp.contains(&format!("form-action 'self' {}", idp.url)),
            "{csp}"
        );
        // The password form is off.
        let off = post_form(
            &format!("{base}/oauth/authorize/login"),
            page.cookie_named("nexus_oauth").as_deref(),
            &[
                ("request", &page.hidden("request")),
                ("csrf", &page.hidden("csrf")),
                ("username", "alice"),
                ("password", "x"),
            ],
        )
        .await;
        refused(&off, 404, "Password sign-in is off");

        // alice signs in at the IdP; her claims give group eng and zone eng:rw.
        let (consent, cookie) = to_consent(base, &client, "alice").await;
        assert!(
            consent
                .body
                .contains("Signed in as <strong>alice</strong> through Test IdP"),
            "{}",
            consent.body
        );
        assert!(consent.body.contains("value=\"eng\""), "{}", consent.body);
        assert!(!consent.body.contains("value=\"ops\""), "only her zones");
        assert!(!consent.body.contains("value=\"admin\""), "not an admin");
        let back = allow(
            base,
            &cookie,
            &consent,
            &[
                ("zone", "eng"),
                ("perm", "read"),
                ("perm", "write"),
                ("decision", "allow"),
            ],
        )
        .await;
        assert_eq!(back.status, 303, "{}", back.body);
        assert!(back.header("location").starts_with(REDIRECT));
        assert_eq!(back.param("state").as_deref(), Some("client-state"));
        assert_eq!(back.param("iss").as_deref(), Some(ISSUER));
        let code = back.param("code").expect("a code");
        let (s, t) = redeem(base, &client, &code).await;
        assert_eq!(s, 200, "{t}");
        let access = t["access_token"].as_str().expect("access").to_owned();
        let who = whoami(base, &access).await.expect("the token works");
        assert_eq!(who["user_id"], "alice", "{who}");
        assert_eq!(who["zones"], json!([{"zone": "eng", "permission": "rw"}]));
        // A hub token of kind oauth, listed and revocable like any other.
        let listed = h.control.store().list_tokens(true).await.expect("tokens");
        let mine = listed
            .iter()
            .find(|r| r.user_id == "alice")
            .expect("alice's token is listed");
        assert_eq!(mine.kind, "oauth");
        assert_eq!(mine.oauth_client_id.as_deref(), Some(client.as_str()));

        // The refresh token rotates without the IdP.
        let refresh = t["refresh_token"].as_str().expect("refresh").to_owned();
        let (s, r) = refresh_grant(base, &client, &refresh).await;
        assert_eq!(s, 200, "{r}");
        let access2 = r["access_token"].as_str().expect("access").to_owned();
        assert_eq!(
            whoami(base, &access2).await.expect("works")["user_id"],
            "alice"
        );

        // Disabling the subject (no local user needed) ends its tokens and refreshes.
        let store = h.control.store();
        store
            .create_subject(
                &NewSubject {
                    subject_id: "alice".into(),
                    subject_type: nexus_wire::spec::SubjectType::User,
                    display_name: "Alice".into(),
                    tenant_id: None,
                    owner_id: None,
                    created_at: chrono::Utc::now(),
                },
                None,
                true,
            )
            .await
            .expect("subject");
        store
            .set_subject_disabled("alice", Some(chrono::Utc::now()))
            .await
            .expect("disable");
        h.control.publish_subject("alice");
        let (s, r) = refresh_grant(base, &client, r["refresh_token"].as_str().expect("next")).await;
        assert_eq!(s, 400, "{r}");
        assert_eq!(r["error"], "invalid_grant");
        // Nor can the subject sign in again.
        let (page, cookie) = login_page(base, &client).await;
        let (to_idp, binding) = continue_with(base, &page, &cookie).await;
        let back = at_the_idp(&to_idp, "alice", false).await;
        refused(
            &callback(base, &back, Some(&binding)).await,
            403,
            "disabled",
        );

        // An admin by group (hub-admins) without a zones claim is offered every zone.
        let (consent, _) = to_consent(base, &client, "boss").await;
        assert!(
            consent.body.contains("value=\"eng\"") && consent.body.contains("value=\"ops\""),
            "{}",
            consent.body
        );
    }
}

#[tokio::test]
async fn state_nonce_audience_issuer_replay_and_idp_errors_are_refused() {
    if !idp_available() {
        return;
    }
    let (_dir, idp, db) = idp_and_db(Backend::Postgres).await;
    let h = hub(&db, &idp, false).await;
    let base = &h.base;
    let client = register(base).await;
    let tamper = |claims: Value| {
        let url = format!("{}/test/tamper", idp.url);
        async move {
            http()
                .post(url)
                .json(&json!({ "claims": claims }))
                .send()
                .await
                .expect("tamper");
        }
    };

    // The continue form needs its CSRF token and cookie, like the password form.
    let (page, cookie) = login_page(base, &client).await;
    let forged = post_form(
        &format!("{base}/oauth/authorize/upstream"),
        None,
        &[
            ("request", &page.hidden("request")),
            ("csrf", &page.hidden("csrf")),
            ("provider", "oidc"),
        ],
    )
    .await;
    refused(&forged, 403, "Form refused");
    let unknown = post_form(
        &format!("{base}/oauth/authorize/upstream"),
        Some(&cookie),
        &[
            ("request", &page.hidden("request")),
            ("csrf", &page.hidden("csrf")),
            ("provider", "elsewhere"),
        ],
    )
    .await;
    refused(&unknown, 400, "Unknown identity provider");

    // The state sent to the IdP holds no verifier in clear, and a changed one is refused.
    let (to_idp, binding) = continue_with(base, &page, &cookie).await;
    let sent: BTreeMap<String, String> = url::Url::parse(&to_idp)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(sent["code_challenge_method"], "S256");
    assert_eq!(sent["redirect_uri"], CALLBACK);
    assert!(sent["scope"].starts_with("openid"));
    assert!(!sent["nonce"].is_empty());
    let back = at_the_idp(&to_idp, "alice", false).await;
    let state = url::Url::parse(&back)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    assert_eq!(state, sent["state"], "the IdP echoes the state");
    let mut bytes = state.clone().into_bytes();
    bytes[30] = if bytes[30] == b'A' { b'B' } else { b'A' };
    let changed = back.replace(&state, std::str::from_utf8(&bytes).expect("ascii"));
    refused(
        &callback(base, &changed, Some(&binding)).await,
        400,
        "was changed, or expired",
    );
    // In another browser (no binding cookie, or another one): refused.
    refused(&callback(base, &back, None).await, 403, "Form refused");
    refused(
        &callback(base, &back, Some("nexus_oauth_upstream=someone-else")).await,
        403,
        "Form refused",
    );
    // The genuine answer works once; replayed, it is refused.
    let first = callback(base, &back, Some(&binding)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    refused(
        &callback(base, &back, Some(&binding)).await,
        400,
        "already completed",
    );

    // A callback whose iss names another issuer.
    let (page, cookie) = login_page(base, &client).await;
    let (to_idp, binding) = continue_with(base, &page, &cookie).await;
    let back = at_the_idp(&to_idp, "alice", false).await;
    let mut u = url::Url::parse(&back).expect("url");
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != "iss")
        .chain([("iss".to_owned(), "http://127.0.0.1:1".to_owned())])
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    refused(
        &callback(base, u.as_str(), Some(&binding)).await,
        400,
        "another identity provider",
    );

    // The user refuses at the IdP: its access_denied is shown, not sent to the client.
    let (page, cookie) = login_page(base, &client).await;
    let (to_idp, binding) = continue_with(base, &page, &cookie).await;
    let back = at_the_idp(&to_idp, "alice", true).await;
    assert!(back.contains("error=access_denied"), "{back}");
    refused(
        &callback(base, &back, Some(&binding)).await,
        403,
        "access_denied",
    );

    // ID tokens from the IdP's token endpoint with another audience, nonce or issuer.
    for (claims, says) in [
        (json!({"aud": "someone-else"}), "audience"),
        (json!({"nonce": "not-the-one-sent"}), "nonce"),
        (json!({"nonce": null}), "nonce"),
        (json!({"iss": "http://127.0.0.1:1"}), "issuer"),
        (json!({"exp": 1_000_000}), "expired"),
    ] {
        let (page, cookie) = login_page(base, &client).await;
        let (to_idp, binding) = continue_with(base, &page, &cookie).await;
        let back = at_the_idp(&to_idp, "alice", false).await;
        tamper(claims.clone()).await;
        let got = callback(base, &back, Some(&binding)).await;
        tamper(json!({})).await;
        refused(&got, 403, says);
        assert!(
            got.body.contains("ID token was refused"),
            "{claims}: {}",
            got.body
        );
    }
    // And after all that the flow still works (nothing was left half-done).
    let (consent, _) = to_consent(base, &client, "alice").await;
    assert!(consent.body.contains("value=\"eng\""));
}

#[tokio::test]
async fn a_public_client_at_the_idp_signs_in_with_pkce_alone_and_is_audited() {
    use futures_util::StreamExt as _;
    if !idp_available() {
        return;
    }
    let (_dir, idp, db) = idp_and_db(Backend::Sqlite).await;
    let redis = rpc_server::testing::redis_url();
    let h = hub_with(&db, &idp, true, Some(redis.clone()), None).await;
    let wait = std::time::Duration::from_secs(10);
    let client = redis::Client::open(redis).expect("redis url");
    let mut ps = tokio::time::timeout(wait, client.get_async_pubsub())
        .await
        .expect("connect to Redis hung")
        .expect("connect to Redis");
    ps.subscribe(nexus_wire::stats::ADMIN_AUDIT_CHANNEL)
        .await
        .expect("SUBSCRIBE");
    let mut messages = ps.into_on_message();

    let client_id = register(&h.base).await;
    let (consent, _) = to_consent(&h.base, &client_id, "alice").await;
    assert!(consent.body.contains("Signed in as <strong>alice</strong>"));
    // `oauth.login` names the provider and the subject; no secret of the flow is in it.
    loop {
        let msg = tokio::time::timeout(wait, messages.next())
            .await
            .expect("no oauth.login event in time")
            .expect("subscription ended");
        let raw: String = msg.get_payload().expect("text payload");
        assert!(!raw.contains("hub-login-secret"), "{raw}");
        let v: Value = serde_json::from_str(&raw).expect("JSON");
        if v["event"] == "oauth.login" {
            assert_eq!(v["subject_id"], "alice", "{raw}");
            assert_eq!(v["detail"]["provider"], "oidc", "{raw}");
            assert_eq!(v["detail"]["client_id"], client_id.as_str(), "{raw}");
            break;
        }
    }
}

/// The consent form sent with `fields` (the decision among them).
async fn allow(base: &str, cookie: &str, consent: &Answer, fields: &[(&str, &str)]) -> Answer {
    let (grant, csrf) = (consent.hidden("grant"), consent.hidden("csrf"));
    let mut form = vec![("grant", grant.as_str()), ("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    post_form(
        &format!("{base}/oauth/authorize/consent"),
        Some(cookie),
        &form,
    )
    .await
}

/// The code redeemed at the token endpoint with this file's redirect URI.
async fn redeem(base: &str, client: &str, code: &str) -> (u16, Value) {
    redeem_for(base, client, code, REDIRECT).await
}

/// A tuple written as the operator would (`nexus hub rebac create`).
async fn grant(h: &Hub, subject: &str, relation: &str, object: &str) {
    h.control
        .rebac_create(
            &rpc_server::control::Caller::local(),
            nexus_wire::methods::RebacTupleParams {
                subject: subject.into(),
                relation: relation.into(),
                object: object.into(),
                ..Default::default()
            },
        )
        .await
        .expect("tuple");
}

#[tokio::test]
async fn the_groups_an_idp_asserts_travel_with_the_oauth_grant() {
    if !idp_available() {
        return;
    }
    let (_dir, idp, db) = idp_and_db(Backend::Postgres).await;
    let h = hub(&db, &idp, false).await;
    let base = &h.base;
    // eng decides by roles; its writers are the IdP's group eng-team. carol is not a
    // registered subject and her claims list no zone: her groups are all she has.
    h.control
        .set_zone_access("eng", "rebac")
        .await
        .expect("rebac mode");
    grant(&h, "group:eng-team#member", "writer", "zone:eng").await;
    let client = register(base).await;

    let (consent, cookie) = to_consent(base, &client, "carol").await;
    assert!(consent.body.contains("id=\"roles\""), "{}", consent.body);
    assert!(
        consent.body.contains("As a member of: eng-team, readers."),
        "{}",
        consent.body
    );
    assert!(!consent.body.contains("name=\"zone\""), "no zone to pick");
    let back = allow(
        base,
        &cookie,
        &consent,
        &[("perm", "read"), ("perm", "write"), ("decision", "allow")],
    )
    .await;
    assert_eq!(back.status, 303, "{}", back.body);
    let code = back.param("code").expect("a code");
    let (s, t) = redeem(base, &client, &code).await;
    assert_eq!(s, 200, "{t}");
    let access = t["access_token"].as_str().expect("access").to_owned();
    let who = whoami(base, &access).await.expect("the token works");
    assert_eq!(who["user_id"], "carol");
    // The token lists no zone; whoami shows what her groups' roles give now.
    assert_eq!(who["groups"], json!(["eng-team", "readers"]), "{who}");
    assert_eq!(who["zones"], json!([{"zone": "eng", "permission": "rw"}]));
    let listed = h.control.store().list_tokens(false).await.expect("tokens");
    let rec = listed
        .iter()
        .find(|r| r.user_id == "carol")
        .expect("listed");
    assert!(rec.zones.is_empty(), "{rec:?}");
    assert_eq!(rec.oauth_groups, "eng-team,readers");

    // Through eng-team she writes in eng; ops she cannot even read.
    rpc(
        base,
        &access,
        "write",
        json!({"path": "/zone/eng/c.txt", "content": "c"}),
    )
    .await
    .expect("eng-team writes in eng");
    assert!(
        rpc(base, &access, "read", json!({"path": "/zone/ops/x.txt"}))
            .await
            .is_err(),
        "no role in ops"
    );
    // The groups survive a refresh, without asking the IdP.
    let (s, r) = refresh_grant(base, &client, t["refresh_token"].as_str().expect("refresh")).await;
    assert_eq!(s, 200, "{r}");
    let access2 = r["access_token"].as_str().expect("access").to_owned();
    rpc(base, &access2, "read", json!({"path": "/zone/eng/c.txt"}))
        .await
        .expect("still eng-team after a refresh");
    // The operator takes the group's role away: refused at once, nothing to wait for.
    h.control
        .rebac_delete(
            &rpc_server::control::Caller::local(),
            nexus_wire::methods::RebacTupleParams {
                subject: "group:eng-team#member".into(),
                relation: "writer".into(),
                object: "zone:eng".into(),
                ..Default::default()
            },
        )
        .await
        .expect("delete");
    assert!(
        rpc(base, &access2, "read", json!({"path": "/zone/eng/c.txt"}))
            .await
            .is_err(),
        "the group's role is gone"
    );
    // The readers group gets eng by a role: the same token reads again, and only reads.
    grant(&h, "group:readers#member", "reader", "zone:eng").await;
    rpc(base, &access2, "read", json!({"path": "/zone/eng/c.txt"}))
        .await
        .expect("readers read");
    assert!(
        rpc(
            base,
            &access2,
            "write",
            json!({"path": "/zone/eng/c.txt", "content": "d"})
        )
        .await
        .is_err(),
        "readers do not write"
    );

    // Someone with neither zones, groups nor a registered subject holds nothing to consent to.
    let (consent, _) = to_consent(base, &client, "nobody").await;
    assert!(
        consent.body.contains("You hold no zone"),
        "{}",
        consent.body
    );
}

#[tokio::test]
async fn an_upstream_sign_in_lasts_its_login_session() {
    if !idp_available() {
        return;
    }
    let (_dir, idp, db) = idp_and_db(Backend::Sqlite).await;
    let h = hub_with(&db, &idp, false, None, Some("3s")).await;
    let base = &h.base;
    let client = register(base).await;
    let (consent, cookie) = to_consent(base, &client, "alice").await;
    let back = allow(
        base,
        &cookie,
        &consent,
        &[("zone", "eng"), ("perm", "read"), ("decision", "allow")],
    )
    .await;
    let (s, t) = redeem(base, &client, &back.param("code").expect("a code")).await;
    assert_eq!(s, 200, "{t}");
    // The access token ends with the session, not after the usual hour.
    let expires_in = t["expires_in"].as_i64().expect("expires_in");
    assert!((1..=3).contains(&expires_in), "{t}");
    let (s, r) = refresh_grant(base, &client, t["refresh_token"].as_str().expect("refresh")).await;
    assert_eq!(s, 200, "within the session a refresh works: {r}");
    // Past it, the refresh token is dead: the user signs in at the IdP again.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let (s, e) = refresh_grant(base, &client, r["refresh_token"].as_str().expect("refresh")).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    assert_eq!(
        whoami(base, r["access_token"].as_str().expect("access")).await,
        Err(401),
        "its access token ended with it"
    );
}
