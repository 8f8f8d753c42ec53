//! The OAuth authorization server end to end over HTTP (SPEC §11): registration, the login
//! and consent pages, the code redeemed with PKCE for a hub token of kind `oauth` that works
//! within the consent, refresh rotation with reuse detection, and the attacks of the issue:
//! PKCE missing, wrong or `plain`, code reuse, redirect URI mismatch and open redirects,
//! another resource, CSRF on both forms, framing headers, a revoked client, and a revoked
//! token refused by every node at once.

use nexus_providers::config::AuthType;
use rpc_server::Application;
use rpc_server::auth::InvalidationBus;
use rpc_server::auth::local::LocalSettings;
use rpc_server::config::{AuthChain, OAuthSettings};
use rpc_server::db::Backend;
use rpc_server::testing::{TestDb, TestOptions, config, poll_until};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::Duration;

const ROOT_PW: &str = "root-password-for-oauth-tests";
const ALICE_PW: &str = "alice-password-for-oauth-tests";
const ISSUER: &str = "http://hub.test";
const RESOURCE: &str = "http://hub.test/mcp";
const REDIRECT: &str = "http://127.0.0.1:33418/callback";
const VERIFIER: &str = "a-verifier-of-enough-length-0123456789-abcdefghijklmnop";

struct Hub {
    base: String,
    control: rpc_server::control::Control,
}

async fn hub_on(db: &TestDb, dcr: bool) -> Hub {
    let mut chain = AuthChain {
        types: vec![AuthType::Database, AuthType::Local],
        ..Default::default()
    };
    chain.local = LocalSettings {
        root_password: Some(SecretString::from(ROOT_PW.to_owned())),
        ..Default::default()
    };
    let opts = TestOptions {
        auth_chain: chain,
        ..TestOptions::unthrottled()
    };
    let mut cfg = config(&db.url, db.dir.path(), &opts);
    cfg.public_url = Some("http://rpc.test".into());
    cfg.oauth = Some(OAuthSettings::new(ISSUER, dcr).expect("issuer"));
    // Each sign-in of a test comes from its own address (X-Forwarded-For), so that the
    // login throttle (5 a minute per user and address) does not refuse a busy test.
    cfg.trusted_proxies =
        nexus_wire::forwarded::parse_trusted(&["127.0.0.1".into()]).expect("valid");
    let app = Application::build_with_bus(cfg, InvalidationBus::new())
        .await
        .expect("server");
    let control = app.state().control.clone().expect("control");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    Hub { base, control }
}

/// A hub with zones eng and ops and user alice (READ, WRITE; eng:rw, ops:r).
async fn hub(db: &TestDb) -> Hub {
    let h = hub_on(db, true).await;
    for z in ["eng", "ops"] {
        let _ = h.control.create_zone(z).await;
    }
    let root = post_json(
        &h.base,
        "/auth/login",
        None,
        json!({"username": "root", "password": ROOT_PW}),
    )
    .await
    .1["token"]
        .as_str()
        .expect("root login")
        .to_owned();
    let (s, v) = post_json(
        &h.base,
        "/auth/users",
        Some(&root),
        json!({"username": "alice", "password": ALICE_PW, "permissions": ["READ", "WRITE"], "zones": "eng:rw,ops:r"}),
    )
    .await;
    assert!(s == 201 || s == 409, "create alice: {s} {v}");
    h
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn post_json(base: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut r = http().post(format!("{base}{path}")).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.expect("send");
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

async fn register(base: &str, uris: &[&str]) -> (u16, Value) {
    post_json(
        base,
        "/oauth/register",
        None,
        json!({"client_name": "Test Client", "redirect_uris": uris, "token_endpoint_auth_method": "none"}),
    )
    .await
}

async fn client_id(base: &str) -> String {
    let (s, v) = register(base, &[REDIRECT]).await;
    assert_eq!(s, 201, "{v}");
    v["client_id"].as_str().expect("client_id").to_owned()
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, k: &str) -> String {
        self.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    /// The `name=value` of the Set-Cookie, if any.
    fn cookie(&self) -> Option<String> {
        let c = self.header("set-cookie");
        c.split(';')
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// The value of the hidden input `name`.
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').expect("closing quote");
        self.body[start..start + end].to_owned()
    }

    /// The query parameters of the redirect.
    fn location_params(&self) -> Vec<(String, String)> {
        let loc = self.header("location");
        let url = url::Url::parse(&loc)
            .unwrap_or_else(|_| panic!("a redirect, got {} {}", self.status, self.body));
        url.query_pairs().into_owned().collect()
    }

    fn param(&self, k: &str) -> Option<String> {
        self.location_params()
            .into_iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v)
    }
}

fn encode(form: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        s.append_pair(k, v);
    }
    s.finish()
}

async fn answer(r: reqwest::RequestBuilder) -> Answer {
    let resp = r.send().await.expect("send");
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap_or_default(),
    }
}

fn authorize_query(client: &str, redirect: &str, extra: &[(&str, &str)]) -> String {
    let challenge = nexus_oauth::pkce::challenge_of(VERIFIER);
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", client)
        .append_pair("redirect_uri", redirect)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "st-123")
        .append_pair("resource", RESOURCE);
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    q.finish()
}

async fn authorize(base: &str, query: &str, cookie: Option<&str>) -> Answer {
    let mut r = http().get(format!("{base}/oauth/authorize?{query}"));
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    answer(r).await
}

async fn post_form(base: &str, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Answer {
    let mut r = http()
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(form));
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    answer(r).await
}

/// Login page → consent page for `user`; returns (cookie, consent page).
async fn to_consent(
    base: &str,
    client: &str,
    user: &str,
    pw: &str,
    scope: Option<&str>,
) -> (String, Answer) {
    let extra: Vec<(&str, &str)> = scope.map(|s| vec![("scope", s)]).unwrap_or_default();
    let page = authorize(base, &authorize_query(client, REDIRECT, &extra), None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let cookie = page.cookie().expect("a CSRF cookie");
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let consent = answer(
        http()
            .post(format!("{base}/oauth/authorize/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &cookie)
            .header(
                "x-forwarded-for",
                format!("10.9.{}.{}", n / 250, n % 250 + 1),
            )
            .body(encode(&[
                ("request", &page.hidden("request")),
                ("csrf", &page.hidden("csrf")),
                ("username", user),
                ("password", pw),
            ])),
    )
    .await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    (cookie, consent)
}

/// Consent form → the redirect.
async fn decide(base: &str, cookie: &str, consent: &Answer, fields: &[(&str, &str)]) -> Answer {
    let grant = consent.hidden("grant");
    let csrf = consent.hidden("csrf");
    let mut form: Vec<(&str, &str)> = vec![("grant", &grant), ("csrf", &csrf)];
    form.extend_from_slice(fields);
    post_form(base, "/oauth/authorize/consent", Some(cookie), &form).await
}

async fn code_for(base: &str, client: &str, fields: &[(&str, &str)]) -> String {
    let (cookie, consent) = to_consent(base, client, "alice", ALICE_PW, None).await;
    let back = decide(base, &cookie, &consent, fields).await;
    assert_eq!(back.status, 303, "{}", back.body);
    assert_eq!(back.param("state").as_deref(), Some("st-123"));
    assert_eq!(back.param("iss").as_deref(), Some(ISSUER), "RFC 9207 iss");
    back.param("code")
        .unwrap_or_else(|| panic!("a code: {:?}", back.location_params()))
}

async fn token(base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = http()
        .post(format!("{base}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(form))
        .send()
        .await
        .expect("send");
    let s = resp.status().as_u16();
    assert_eq!(
        resp.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    (s, resp.json().await.unwrap_or(Value::Null))
}

async fn redeem(base: &str, client: &str, code: &str) -> (u16, Value) {
    token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", client),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("resource", RESOURCE),
        ],
    )
    .await
}

/// `whoami` with `token`: Ok(result) or Err(HTTP status or JSON-RPC code).
async fn rpc(base: &str, token: &str, method: &str, params: Value) -> Result<Value, i64> {
    let (s, v) = post_json(
        base,
        &format!("/api/nfs/{method}"),
        Some(token),
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
    )
    .await;
    if s != 200 {
        return Err(i64::from(s));
    }
    match v.get("result") {
        Some(r) => Ok(r.clone()),
        None => Err(v["error"]["code"].as_i64().unwrap_or(0)),
    }
}

const EVERYTHING: &[(&str, &str)] = &[
    ("zone", "eng"),
    ("zone", "ops"),
    ("perm", "read"),
    ("perm", "write"),
    ("decision", "allow"),
];

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
        let (s, t2) = token(
            base,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &r1),
                ("client_id", &client),
            ],
        )
        .await;
        assert_eq!(s, 200, "{t2}");
        let access2 = t2["access_token"].as_str().expect("access2").to_owned();
        assert_ne!(access2, access);
        rpc(base, &access2, "whoami", json!({}))
            .await
            .expect("the new token works");
        let (s, e) = token(
            base,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &r1),
                ("client_id", &client),
            ],
        )
        .await;
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
        let (s, _) = token(
            base,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", r2),
                ("client_id", &client),
            ],
        )
        .await;
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
    let (s, _) = token(
        base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client),
        ],
    )
    .await;
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
    let (s, e) = token(
        &b.base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &client),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
}
