//! The OAuth authorization server's test client (SPEC §11): a hub with the local provider
//! and OAuth on, and the browser's and the client's steps (authorize, login, consent,
//! token) over real HTTP, shared by the OAuth tests.

use super::{TestDb, TestOptions, config};
use crate::Application;
use crate::auth::InvalidationBus;
use crate::auth::local::LocalSettings;
use crate::config::{AuthChain, OAuthSettings};
use nexus_providers::config::AuthType;
use secrecy::SecretString;
use serde_json::{Value, json};

pub const ROOT_PW: &str = "root-password-for-oauth-tests";
pub const ALICE_PW: &str = "alice-password-for-oauth-tests";
pub const ISSUER: &str = "http://hub.test";
pub const RESOURCE: &str = "http://hub.test/mcp";
pub const REDIRECT: &str = "http://127.0.0.1:33418/callback";
pub const VERIFIER: &str = "a-verifier-of-enough-length-0123456789-abcdefghijklmnop";

#[derive(Debug)]
pub struct Hub {
    pub base: String,
    pub control: crate::control::Control,
}

pub async fn hub_on(db: &TestDb, dcr: bool) -> Hub {
    hub_configured(db, OAuthSettings::new(ISSUER, dcr).expect("issuer")).await
}

/// A hub under `settings` (their issuer should be [`ISSUER`]).
pub async fn hub_configured(db: &TestDb, settings: OAuthSettings) -> Hub {
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
    cfg.oauth = Some(settings);
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
pub async fn hub(db: &TestDb) -> Hub {
    hub_with(db, OAuthSettings::new(ISSUER, true).expect("issuer")).await
}

/// [`hub`] under `settings`.
pub async fn hub_with(db: &TestDb, settings: OAuthSettings) -> Hub {
    let h = hub_configured(db, settings).await;
    for z in ["eng", "ops"] {
        let _ = h.control.create_zone(z).await;
    }
    let root = root_token(&h.base).await;
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

/// A login token of the hub's root user.
pub async fn root_token(base: &str) -> String {
    post_json(
        base,
        "/auth/login",
        None,
        json!({"username": "root", "password": ROOT_PW}),
    )
    .await
    .1["token"]
        .as_str()
        .expect("root login")
        .to_owned()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub async fn post_json(base: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut r = http().post(format!("{base}{path}")).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.expect("send");
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

pub async fn register(base: &str, uris: &[&str]) -> (u16, Value) {
    post_json(
        base,
        "/oauth/register",
        None,
        json!({"client_name": "Test Client", "redirect_uris": uris, "token_endpoint_auth_method": "none"}),
    )
    .await
}

pub async fn client_id(base: &str) -> String {
    let (s, v) = register(base, &[REDIRECT]).await;
    assert_eq!(s, 201, "{v}");
    v["client_id"].as_str().expect("client_id").to_owned()
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, k: &str) -> String {
        self.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    /// The `name=value` of the Set-Cookie, if any.
    pub fn cookie(&self) -> Option<String> {
        let c = self.header("set-cookie");
        c.split(';')
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// The `name=value` of the Set-Cookie named `name` (an answer may set several).
    pub fn cookie_named(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The value of the hidden input `name`, as the browser would send it back.
    pub fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').expect("closing quote");
        self.body[start..start + end].replace("&amp;", "&")
    }

    /// The query parameters of the redirect.
    pub fn location_params(&self) -> Vec<(String, String)> {
        let loc = self.header("location");
        let url = url::Url::parse(&loc)
            .unwrap_or_else(|_| panic!("a redirect, got {} {}", self.status, self.body));
        url.query_pairs().into_owned().collect()
    }

    pub fn param(&self, k: &str) -> Option<String> {
        self.location_params()
            .into_iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v)
    }
}

pub fn encode(form: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        s.append_pair(k, v);
    }
    s.finish()
}

pub async fn answer(r: reqwest::RequestBuilder) -> Answer {
    let resp = r.send().await.expect("send");
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap_or_default(),
    }
}

pub fn authorize_query(client: &str, redirect: &str, extra: &[(&str, &str)]) -> String {
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

pub async fn authorize(base: &str, query: &str, cookie: Option<&str>) -> Answer {
    let mut r = http().get(format!("{base}/oauth/authorize?{query}"));
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    answer(r).await
}

pub async fn post_form(
    base: &str,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> Answer {
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
pub async fn to_consent(
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
pub async fn decide(base: &str, cookie: &str, consent: &Answer, fields: &[(&str, &str)]) -> Answer {
    let grant = consent.hidden("grant");
    let csrf = consent.hidden("csrf");
    let mut form: Vec<(&str, &str)> = vec![("grant", &grant), ("csrf", &csrf)];
    form.extend_from_slice(fields);
    post_form(base, "/oauth/authorize/consent", Some(cookie), &form).await
}

pub async fn code_for(base: &str, client: &str, fields: &[(&str, &str)]) -> String {
    let (cookie, consent) = to_consent(base, client, "alice", ALICE_PW, None).await;
    let back = decide(base, &cookie, &consent, fields).await;
    assert_eq!(back.status, 303, "{}", back.body);
    assert_eq!(back.param("state").as_deref(), Some("st-123"));
    assert_eq!(back.param("iss").as_deref(), Some(ISSUER), "RFC 9207 iss");
    back.param("code")
        .unwrap_or_else(|| panic!("a code: {:?}", back.location_params()))
}

pub async fn token(base: &str, form: &[(&str, &str)]) -> (u16, Value) {
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

pub async fn redeem(base: &str, client: &str, code: &str) -> (u16, Value) {
    redeem_for(base, client, code, REDIRECT).await
}

/// The code redeemed with [`VERIFIER`] for a client that asked to come back to `redirect`.
pub async fn redeem_for(base: &str, client: &str, code: &str, redirect: &str) -> (u16, Value) {
    token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", client),
            ("redirect_uri", redirect),
            ("code_verifier", VERIFIER),
            ("resource", RESOURCE),
        ],
    )
    .await
}

/// A `refresh_token` grant of `client`.
pub async fn refresh_grant(base: &str, client: &str, refresh_token: &str) -> (u16, Value) {
    token(
        base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client),
        ],
    )
    .await
}

/// `whoami` with `token`: Ok(result) or Err(HTTP status or JSON-RPC code).
pub async fn rpc(base: &str, token: &str, method: &str, params: Value) -> Result<Value, i64> {
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

pub const EVERYTHING: &[(&str, &str)] = &[
    ("zone", "eng"),
    ("zone", "ops"),
    ("perm", "read"),
    ("perm", "write"),
    ("decision", "allow"),
];
