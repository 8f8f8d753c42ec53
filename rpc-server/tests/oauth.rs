//! The OAuth authorization server end to end over HTTP (SPEC §11): registration, the login
//! and consent pages, the code redeemed with PKCE for a hub token of kind `oauth` that works
//! within the consent, refresh rotation with reuse detection, and the attacks of the issue:
//! PKCE missing, wrong or `plain`, code reuse, redirect URI mismatch and open redirects,
//! another resource, CSRF on both forms, framing headers, a revoked client, and a revoked
//! token refused by every node at once.

use rpc_server::db::Backend;
use rpc_server::testing::oauth::*;
use rpc_server::testing::{TestDb, poll_until};
use serde_json::{Value, json};
use std::time::Duration;

/// The JSON-RPC code of a permission error.
const DENIED: i64 = -32003;

#[tokio::test]
async fn the_flow_issues_a_narrowed_hub_token_that_rotates_on_both_databases() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDb::new(backend).await;
        let h = hub(&db).await;
        let base = &h.base;

        let meta: Value = http()
            .get(format!("{base}/.well-known/oauth-authorization-server"))
            .send()
            .await
            .expect("metadata")
            .json()
            .await
            .expect("json");
        assert_eq!(meta["issuer"], ISSUER);
        assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
        assert_eq!(
            meta["registration_endpoint"],
            format!("{ISSUER}/oauth/register")
        );
        let oidc: Value = http()
            .get(format!("{base}/.well-known/openid-configuration"))
            .send()
            .await
            .expect("discovery")
            .json()
            .await
            .expect("json");
        assert_eq!(oidc["token_endpoint"], format!("{ISSUER}/oauth/token"));
        let providers: Value = http()
            .get(format!("{base}/auth/providers"))
            .send()
            .await
            .expect("providers")
            .json()
            .await
            .expect("json");
        assert_eq!(providers["oauth_issuer"], ISSUER);

        let client = client_id(base).await;
        // The consent page shows the client, the user and the zones alice holds.
        let (cookie, consent) = to_consent(base, &client, "alice", ALICE_PW, None).await;
        assert!(consent.body.contains("Test Client") && consent.body.contains("alice"));
        assert!(consent.body.contains("value=\"eng\"") && consent.body.contains("value=\"ops\""));
        // Narrowed: eng only, read only.
        let back = decide(
            base,
            &cookie,
            &consent,
            &[("zone", "eng"), ("perm", "read"), ("decision", "allow")],
        )
        .await;
        assert_eq!(back.status, 303, "{}", back.body);
        assert!(back.header("location").starts_with(REDIRECT));
        let code = back.param("code").expect("code");
        assert!(code.starts_with("nxc-"));

        let (s, t) = redeem(base, &client, &code).await;
        assert_eq!(s, 200, "{t}");
        assert_eq!(t["token_type"], "Bearer");
        assert_eq!(t["scope"], "files:read");
        let access = t["access_token"].as_str().expect("access").to_owned();
        assert!(access.starts_with("sk-"), "a hub token");
        let who = rpc(base, &access, "whoami", json!({}))
            .await
            .expect("whoami");
        assert_eq!(who["user_id"], "alice");
        assert_eq!(
            who["zones"],
            json!([{"zone": "eng", "permission": "r"}]),
            "{who}"
        );
        assert!(
            rpc(
                base,
                &access,
                "write",
                json!({"path": "/a.txt", "content": "x"})
            )
            .await
            .is_err(),
            "read-only consent: writes refused"
        );

        // The operator sees it as a token of kind oauth with its client.
        let listed = h.control.store().list_tokens(false).await.expect("list");
        let rec = listed
            .iter()
            .find(|r| r.user_id == "alice")
            .expect("alice's token");
        assert_eq!(rec.kind, "oauth");
        assert_eq!(rec.oauth_client_id.as_deref(), Some(client.as_str()));
        assert!(rec.name.starts_with("oauth:test-client:"), "{}", rec.name);

        // Rotation: a new pair; the old refresh token presented again revokes the family.
        let r1 = t["refresh_token"].as_str().expect("refresh").to_owned();
        let (s, t2) = refresh_grant(base, &client, &r1).await;
        assert_eq!(s, 200, "{t2}");
        let access2 = t2["access_token"].as_str().expect("access2").to_owned();
        assert_ne!(access2, access);
        rpc(base, &access2, "whoami", json!({}))
            .await
            .expect("the new token works");
        let (s, e) = refresh_grant(base, &client, &r1).await;
        assert_eq!(
            (s, e["error"].as_str()),
            (400, Some("invalid_grant")),
            "{e}"
        );
        assert_eq!(
            rpc(base, &access2, "whoami", json!({})).await,
            Err(401),
            "family revoked"
        );
        assert_eq!(
            rpc(base, &access, "whoami", json!({})).await,
            Err(401),
            "family revoked"
        );
        let r2 = t2["refresh_token"].as_str().expect("refresh2");
        let (s, _) = refresh_grant(base, &client, r2).await;
        assert_eq!(
            s, 400,
            "the newest refresh token of a revoked family is dead too"
        );

        // Deny: the client hears access_denied, nothing is issued.
        let (cookie, consent) = to_consent(base, &client, "alice", ALICE_PW, None).await;
        let back = decide(base, &cookie, &consent, &[("decision", "deny")]).await;
        assert_eq!(back.param("error").as_deref(), Some("access_denied"));
        assert!(back.param("code").is_none());
    }
}

#[tokio::test]
async fn pkce_code_redirect_and_resource_attacks_are_refused() {
    let db = TestDb::new(Backend::Postgres).await;
    let h = hub(&db).await;
    let base = &h.base;
    let client = client_id(base).await;

    // `plain` and a missing challenge: refused back to the (registered) redirect URI.
    let mut q = authorize_query(&client, REDIRECT, &[])
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let a = authorize(base, &q, None).await;
    assert_eq!(a.status, 303);
    assert_eq!(a.param("error").as_deref(), Some("invalid_request"));
    assert_eq!(a.param("iss").as_deref(), Some(ISSUER));
    q = authorize_query(&client, REDIRECT, &[]);
    let no_challenge: String = q
        .split('&')
        .filter(|p| !p.starts_with("code_challenge="))
        .collect::<Vec<_>>()
        .join("&");
    assert_eq!(
        authorize(base, &no_challenge, None)
            .await
            .param("error")
            .as_deref(),
        Some("invalid_request")
    );
    // Another resource: invalid_target.
    let other =
        authorize_query(&client, REDIRECT, &[]).replace("hub.test%2Fmcp", "evil.test%2Fmcp");
    assert_eq!(
        authorize(base, &other, None)
            .await
            .param("error")
            .as_deref(),
        Some("invalid_target")
    );

    // Open redirect: an unregistered URI, an unknown client, never a redirect.
    for (c, r) in [
        (client.as_str(), "https://evil.example/callback"),
        (client.as_str(), "http://127.0.0.1:33418/other"),
        ("dcr-unknown", REDIRECT),
    ] {
        let a = authorize(base, &authorize_query(c, r, &[]), None).await;
        assert_eq!(a.status, 400, "{c} {r}");
        assert!(a.header("location").is_empty(), "no redirect to {r}");
        assert_eq!(a.header("x-frame-options"), "DENY");
    }
    // A loopback redirect may come back on another port (RFC 8252), nothing else changes.
    let a = authorize(
        base,
        &authorize_query(&client, "http://127.0.0.1:40001/callback", &[]),
        None,
    )
    .await;
    assert_eq!(a.status, 200);

    // Wrong and missing verifier: refused; the code is spent either way.
    let code = code_for(base, &client, EVERYTHING).await;
    let wrong = format!("{VERIFIER}x");
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", client.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", wrong.as_str()),
        ("resource", RESOURCE),
    ];
    let (s, e) = token(base, &form).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    form[4].1 = VERIFIER;
    let (s, e) = token(base, &form).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "a spent code: {e}"
    );
    let code = code_for(base, &client, EVERYTHING).await;
    let no_verifier: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("client_id", &client),
        ("redirect_uri", REDIRECT),
        ("resource", RESOURCE),
    ];
    let (s, e) = token(base, &no_verifier).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );

    // Redirect URI and resource must be the request's.
    for (k, v, err) in [
        (
            "redirect_uri",
            "http://127.0.0.1:40001/callback",
            "invalid_grant",
        ),
        ("resource", "http://other.test/mcp", "invalid_target"),
    ] {
        let code = code_for(base, &client, EVERYTHING).await;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", client.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("resource", RESOURCE),
        ];
        for f in &mut form {
            if f.0 == k {
                f.1 = v;
            }
        }
        let (s, e) = token(base, &form).await;
        assert_eq!((s, e["error"].as_str()), (400, Some(err)), "{k}: {e}");
    }
    // Another client's code.
    let other_client = client_id(base).await;
    let code = code_for(base, &client, EVERYTHING).await;
    let (s, e) = redeem(base, &other_client, &code).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );

    // Code reuse: refused, and the token the first redemption got is revoked.
    let code = code_for(base, &client, EVERYTHING).await;
    let (s, t) = redeem(base, &client, &code).await;
    assert_eq!(s, 200, "{t}");
    let access = t["access_token"].as_str().expect("access").to_owned();
    assert_eq!(
        rpc(base, &access, "whoami", json!({}))
            .await
            .expect("works")["zones"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let (s, e) = redeem(base, &client, &code).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    assert_eq!(rpc(base, &access, "whoami", json!({})).await, Err(401));

    // Garbage codes and grant types.
    let (s, e) = redeem(base, &client, "nxc-nope").await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
    let (s, e) = token(base, &[("grant_type", "password"), ("username", "alice")]).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
}

#[tokio::test]
async fn forms_need_their_csrf_token_and_pages_refuse_framing() {
    let db = TestDb::new(Backend::Sqlite).await;
    let h = hub(&db).await;
    let base = &h.base;
    let client = client_id(base).await;
    let page = authorize(base, &authorize_query(&client, REDIRECT, &[]), None).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("x-frame-options"), "DENY");
    let csp = page.header("content-security-policy");
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(!page.body.contains("<script"), "no JavaScript");
    let set = page.header("set-cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = page.cookie().expect("cookie");
    let request = page.hidden("request");
    let csrf = page.hidden("csrf");
    let login = |cookie: Option<String>, csrf: String| {
        let request = request.clone();
        async move {
            post_form(
                base,
                "/oauth/authorize/login",
                cookie.as_deref(),
                &[
                    ("request", &request),
                    ("csrf", &csrf),
                    ("username", "alice"),
                    ("password", ALICE_PW),
                ],
            )
            .await
        }
    };
    // A cross-site form: no cookie; the victim's cookie with an attacker's token; a token
    // made for another cookie.
    assert_eq!(login(None, csrf.clone()).await.status, 403);
    assert_eq!(
        login(Some(cookie.clone()), "forged".into()).await.status,
        403
    );
    assert_eq!(
        login(Some("nexus_oauth=someone-else".into()), csrf.clone())
            .await
            .status,
        403
    );
    // A wrong password: the login page again, 401, no consent.
    let wrong = post_form(
        base,
        "/oauth/authorize/login",
        Some(&cookie),
        &[
            ("request", &request),
            ("csrf", &csrf),
            ("username", "alice"),
            ("password", "nope-nope"),
        ],
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.body.contains("Wrong username or password") && !wrong.body.contains("name=\"grant\"")
    );

    // The consent form: the attacker's session's form posted with the victim's cookie.
    let consent = login(Some(cookie.clone()), csrf.clone()).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert_eq!(consent.header("x-frame-options"), "DENY");
    assert!(
        consent
            .header("content-security-policy")
            .contains("form-action 'self' http://127.0.0.1:33418")
    );
    let grant = consent.hidden("grant");
    let other = authorize(base, &authorize_query(&client, REDIRECT, &[]), None)
        .await
        .cookie()
        .expect("cookie");
    let forged = post_form(
        base,
        "/oauth/authorize/consent",
        Some(&other),
        &[
            ("grant", &grant),
            ("csrf", &consent.hidden("csrf")),
            ("zone", "eng"),
            ("perm", "read"),
            ("decision", "allow"),
        ],
    )
    .await;
    assert_eq!(forged.status, 403);
    assert!(forged.header("location").is_empty());
    // The login form's token does not open the consent form.
    let swapped = post_form(
        base,
        "/oauth/authorize/consent",
        Some(&cookie),
        &[("grant", &grant), ("csrf", &csrf), ("decision", "allow")],
    )
    .await;
    assert_eq!(swapped.status, 403);
    // A tampered grant is refused.
    let tampered = format!("A{}", &grant[1..]);
    let t = post_form(
        base,
        "/oauth/authorize/consent",
        Some(&cookie),
        &[
            ("grant", &tampered),
            ("csrf", &consent.hidden("csrf")),
            ("decision", "allow"),
        ],
    )
    .await;
    assert_eq!(t.status, 403);
    // Widening the consent past the user's rights grants nothing more: ops stays read-only
    // and an unknown zone is dropped.
    let back = decide(
        base,
        &cookie,
        &consent,
        &[
            ("zone", "ops"),
            ("zone", "secret"),
            ("perm", "write"),
            ("perm", "admin"),
            ("perm", "read"),
            ("decision", "allow"),
        ],
    )
    .await;
    let code = back.param("code").expect("code");
    let (s, t) = redeem(base, &client, &code).await;
    assert_eq!(s, 200, "{t}");
    let who = rpc(
        base,
        t["access_token"].as_str().expect("access"),
        "whoami",
        json!({}),
    )
    .await
    .expect("whoami");
    assert_eq!(who["zones"], json!([{"zone": "ops", "permission": "r"}]));
    assert_eq!(who["is_admin"], false);
}

#[tokio::test]
async fn registration_rules_and_a_revoked_client() {
    let db = TestDb::new(Backend::Postgres).await;
    let h = hub(&db).await;
    let base = &h.base;
    for bad in [
        json!({"redirect_uris": ["http://evil.example/cb"]}),
        json!({"redirect_uris": []}),
        json!({"redirect_uris": ["https://a.example/cb#x"]}),
        json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["client_credentials"]}),
    ] {
        let (s, e) = post_json(base, "/oauth/register", None, bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {e}");
        assert!(
            e["error"]
                .as_str()
                .is_some_and(|c| c.starts_with("invalid_")),
            "{e}"
        );
    }
    let (s, v) = register(base, &[REDIRECT, "https://app.example/cb"]).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["token_endpoint_auth_method"], "none");

    let client = client_id(base).await;
    let code = code_for(base, &client, EVERYTHING).await;
    let (_, t) = redeem(base, &client, &code).await;
    let access = t["access_token"].as_str().expect("access").to_owned();
    let refresh = t["refresh_token"].as_str().expect("refresh").to_owned();
    rpc(base, &access, "whoami", json!({}))
        .await
        .expect("works");
    // Revoking the client revokes its tokens and closes its logins and refreshes.
    let revoked = h
        .control
        .store()
        .oauth_revoke_client(&client, chrono::Utc::now())
        .await
        .expect("revoke");
    h.control.publish_tokens(&revoked);
    assert_eq!(revoked.len(), 1);
    assert_eq!(rpc(base, &access, "whoami", json!({})).await, Err(401));
    let a = authorize(base, &authorize_query(&client, REDIRECT, &[]), None).await;
    assert_eq!(a.status, 400);
    assert!(a.header("location").is_empty());
    let (s, _) = refresh_grant(base, &client, &refresh).await;
    assert_eq!(s, 400);

    // RFC 7009: revoking a refresh token kills its family.
    let client = client_id(base).await;
    let code = code_for(base, &client, EVERYTHING).await;
    let (_, t) = redeem(base, &client, &code).await;
    let access = t["access_token"].as_str().expect("access").to_owned();
    let r = post_form(
        base,
        "/oauth/revoke",
        None,
        &[("token", t["refresh_token"].as_str().expect("refresh"))],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(rpc(base, &access, "whoami", json!({})).await, Err(401));
}

#[tokio::test]
async fn registration_can_be_turned_off() {
    let db = TestDb::new(Backend::Sqlite).await;
    let h = hub_on(&db, false).await;
    let (s, _) = register(&h.base, &[REDIRECT]).await;
    assert_eq!(s, 404);
    let meta: Value = http()
        .get(format!("{}/.well-known/oauth-authorization-server", h.base))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert!(meta.get("registration_endpoint").is_none(), "{meta}");
}

#[tokio::test]
async fn a_revoked_oauth_token_is_refused_by_every_node_at_once() {
    let db = TestDb::new(Backend::Postgres).await;
    let a = hub(&db).await;
    let b = hub_on(&db, true).await;
    let client = client_id(&a.base).await;
    let code = code_for(&a.base, &client, EVERYTHING).await;
    // Redeemed on the other node: every node shares the codes.
    let (s, t) = redeem(&b.base, &client, &code).await;
    assert_eq!(s, 200, "{t}");
    let access = t["access_token"].as_str().expect("access").to_owned();
    // Both nodes have the identity cached.
    rpc(&a.base, &access, "whoami", json!({})).await.expect("A");
    rpc(&b.base, &access, "whoami", json!({})).await.expect("B");
    // The operator's revoke (`nexus hub token revoke`) on A.
    let rec = a
        .control
        .store()
        .list_tokens(false)
        .await
        .expect("list")
        .into_iter()
        .find(|r| r.kind == "oauth")
        .expect("the oauth token");
    a.control
        .revoke_token(&rec.key_id.to_string())
        .await
        .expect("revoke");
    assert_eq!(
        rpc(&a.base, &access, "whoami", json!({})).await,
        Err(401),
        "A at once"
    );
    // B hears the database's announcement, well within the cache TTL.
    poll_until(
        Duration::from_secs(5),
        "B refuses the revoked token",
        || async { rpc(&b.base, &access, "whoami", json!({})).await == Err(401) },
    )
    .await;
    // The grant ended with it: its refresh token mints nothing (Claude Code would
    // otherwise refresh straight back in).
    let refresh = t["refresh_token"].as_str().expect("refresh");
    let (s, e) = refresh_grant(&b.base, &client, refresh).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
}

#[tokio::test]
async fn a_user_without_zones_connects_with_what_their_roles_allow() {
    let db = TestDb::new(Backend::Postgres).await;
    let h = hub(&db).await;
    let base = &h.base;
    let root = root_token(base).await;
    // bob may read and write, and holds no zone: his roles decide, as for his login token.
    let (s, v) = post_json(
        base,
        "/auth/users",
        Some(&root),
        json!({"username": "bob", "password": "bob-password-for-oauth-tests", "permissions": ["READ", "WRITE"]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let alice_client = client_id(base).await;
    // alice writes a file in eng while it is open; then eng goes to roles.
    let alice = code_for(base, &alice_client, EVERYTHING).await;
    let (_, at) = redeem(base, &alice_client, &alice).await;
    let alice = at["access_token"].as_str().expect("alice").to_owned();
    rpc(
        base,
        &alice,
        "write",
        json!({"path": "/zone/eng/plan.md", "content": "plan"}),
    )
    .await
    .expect("alice writes");
    h.control
        .set_zone_access("eng", "rebac")
        .await
        .expect("rebac mode");
    let caller = rpc_server::control::Caller::local();
    let tuple =
        |subject: &str, relation: &str, object: &str| nexus_wire::methods::RebacTupleParams {
            subject: subject.into(),
            relation: relation.into(),
            object: object.into(),
            ..Default::default()
        };
    h.control
        .rebac_create(&caller, tuple("user:bob", "member", "group:eng-team"))
        .await
        .expect("member");
    h.control
        .rebac_create(
            &caller,
            tuple("group:eng-team#member", "writer", "zone:eng"),
        )
        .await
        .expect("role");

    let client = client_id(base).await;
    let (cookie, consent) =
        to_consent(base, &client, "bob", "bob-password-for-oauth-tests", None).await;
    assert!(consent.body.contains("id=\"roles\""), "{}", consent.body);
    assert!(!consent.body.contains("name=\"zone\""), "no zone to pick");
    // Consented to reading only.
    let back = decide(
        base,
        &cookie,
        &consent,
        &[("perm", "read"), ("decision", "allow")],
    )
    .await;
    assert_eq!(back.status, 303, "{}", back.body);
    let (s, t) = redeem(base, &client, &back.param("code").expect("code")).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["scope"], "files:read");
    let access = t["access_token"].as_str().expect("access").to_owned();
    let who = rpc(base, &access, "whoami", json!({}))
        .await
        .expect("whoami");
    assert_eq!(who["user_id"], "bob");
    // The token lists no zone: whoami shows what his roles give now.
    assert_eq!(who["zones"], json!([{"zone": "eng", "permission": "rw"}]));
    let listed = h.control.store().list_tokens(false).await.expect("tokens");
    let rec = listed.iter().find(|r| r.user_id == "bob").expect("listed");
    assert!(
        rec.zones.is_empty() && rec.oauth_groups.is_empty(),
        "{rec:?}"
    );

    let read = rpc(base, &access, "read", json!({"path": "/zone/eng/plan.md"}))
        .await
        .expect("bob reads through eng-team");
    assert!(read.to_string().contains("plan"), "{read}");
    // Within the consent: a writer by role, but the token was given reading only.
    assert!(
        rpc(
            base,
            &access,
            "write",
            json!({"path": "/zone/eng/b.md", "content": "b"})
        )
        .await
        .is_err(),
        "read-only consent"
    );
    // ops gives him no role.
    assert_eq!(
        rpc(base, &access, "read", json!({"path": "/zone/ops/x.md"})).await,
        Err(DENIED),
        "nothing in ops"
    );
    // Out of the group: refused at the next request.
    h.control
        .rebac_delete(&caller, tuple("user:bob", "member", "group:eng-team"))
        .await
        .expect("out");
    assert_eq!(
        rpc(base, &access, "read", json!({"path": "/zone/eng/plan.md"})).await,
        Err(DENIED),
        "no longer in eng-team"
    );
    // The refresh keeps the grant zoneless: still his roles, nothing more.
    let (s, r) = refresh_grant(base, &client, t["refresh_token"].as_str().expect("r")).await;
    assert_eq!(s, 200, "{r}");
    let who = rpc(
        base,
        r["access_token"].as_str().expect("a"),
        "whoami",
        json!({}),
    )
    .await
    .expect("whoami");
    assert_eq!(who["zones"], json!([]), "no role left: {who}");
}
