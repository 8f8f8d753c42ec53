//! The frontend's door (SPEC §2, §5), over raw HTTP: every bad token on every verb is a 401
//! with an RFC 9728 challenge and nothing is executed; legacy sessions belong to the token
//! that opened them; a token revoked mid-session is refused on its next request, in both
//! lifecycles; foreign Host headers are refused even with a valid token; a large body is
//! read only for a verified token; /health and /metrics need no token.

use crate::common;

use chrono::{Duration as ChronoDuration, Utc};
use common::mcp::{LEGACY, bearer, message, request, send, session_call_body, stateless_call_body};
use common::{ERAS, Hub, STEP, connect, expect_json, http, try_call};
use nexus_wire::spec::{Permission, SubjectType, ZoneGrant};
use reqwest::{Method, RequestBuilder, Response};
use rpc_server::auth::{PlainToken, TokenHasher};
use rpc_server::db::NewToken;
use rpc_server::testing::test_secret;
use serde_json::{Value, json};

/// The client name in the bodies these tests send.
const CLIENT: &str = "mcp-auth-test";

fn initialize_body() -> Value {
    common::mcp::initialize_body(CLIENT)
}

/// A self-contained 2026-07-28 (stateless) `tools/call` writing `path`.
fn stateless_write_body(path: &str) -> Value {
    stateless_call_body(
        CLIENT,
        "nexus_write_file",
        json!({"path": path, "content": "pwned"}),
    )
}

/// A request to `/mcp` with MCP's headers. `auth` is the raw Authorization value, if any.
fn mcp_req(hub: &Hub, method: Method, auth: Option<&str>) -> RequestBuilder {
    request(hub.mcp_url(), method, auth)
}

fn post(hub: &Hub, auth: Option<&str>, body: &Value) -> RequestBuilder {
    common::mcp::post(hub.mcp_url(), auth, body)
}

/// An already-expired token, inserted directly (the control plane cannot mint one).
async fn expired_token(hub: &Hub) -> String {
    let raw = PlainToken::generate();
    let hasher = TokenHasher::new(&test_secret()).expect("secret");
    hub.app
        .db
        .store
        .insert_token(&NewToken {
            key_id: uuid::Uuid::new_v4(),
            digest: hasher.digest(raw.expose()).0,
            name: "expired".into(),
            user_id: "expired".into(),
            subject_type: SubjectType::Agent,
            is_admin: false,
            rate_limit: None,
            created_at: Utc::now() - ChronoDuration::hours(2),
            expires_at: Some(Utc::now() - ChronoDuration::hours(1)),
            zones: vec![ZoneGrant {
                zone_id: "eng".into(),
                permission: Permission::ReadWrite,
            }],
            permissions: None,
            oauth: None,
        })
        .await
        .expect("insert expired token");
    raw.expose().to_owned()
}

/// 401 with `WWW-Authenticate: Bearer resource_metadata="…/.well-known/oauth-protected-resource"`;
/// returns the metadata URL.
#[track_caller]
fn assert_challenge(what: &str, resp: &Response) -> String {
    assert_eq!(resp.status().as_u16(), 401, "{what}: status");
    let h = resp
        .headers()
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"))
        .to_str()
        .expect("ASCII header");
    let url = h
        .strip_prefix("Bearer resource_metadata=\"")
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("{what}: WWW-Authenticate {h:?}"));
    assert!(
        url.ends_with("/.well-known/oauth-protected-resource"),
        "{what}: WWW-Authenticate {h:?}"
    );
    assert!(
        h.ends_with("/.well-known/oauth-protected-resource\", scope=\"files:read files:write\""),
        "{what}: {h:?}"
    );
    url.to_owned()
}

/// One refusal as the caller sees it: `WWW-Authenticate`, content type and body bytes.
type Refusal = (String, String, Vec<u8>);

/// Checks the 401 challenge of `resp` (see [`assert_challenge`]) and keeps the whole refusal
/// for comparison with the others.
async fn refusal(what: &str, resp: Response, seen: &mut Vec<(String, Refusal)>) {
    assert_challenge(what, &resp);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (www, ctype) = (header("www-authenticate"), header("content-type"));
    let body = resp.bytes().await.expect("401 body").to_vec();
    seen.push((what.to_owned(), (www, ctype, body)));
}

/// Opens a legacy session with `token`; returns its id.
async fn open_session(hub: &Hub, token: &str) -> String {
    let (sid, init) = common::mcp::open_session(hub.mcp_url(), &bearer(token), CLIENT).await;
    assert!(init["result"]["protocolVersion"].is_string(), "{init}");
    sid
}

/// A tools/call in session `sid` as `token`.
async fn session_call(hub: &Hub, token: &str, sid: &str, tool: &str, args: Value) -> Response {
    send(
        post(
            hub,
            Some(&format!("Bearer {token}")),
            &session_call_body(tool, args),
        )
        .header("mcp-session-id", sid),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_tokens_get_401_with_a_challenge_and_nothing_runs() {
    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    let owner = hub.token("owner", Some("eng:rw"), false).await;
    let sid = open_session(&hub, &owner).await;

    let expired = expired_token(&hub).await;
    let revoked = hub.token("revoked", Some("eng:rw"), false).await;
    hub.app
        .control
        .revoke_token("revoked")
        .await
        .expect("revoke");
    let unknown = format!("sk-{}", "A1b2-C3d4_".repeat(5).get(..43).expect("43 chars"));
    assert_eq!(unknown.len(), 46);

    // The raw stateless write is well-formed: with a valid token it writes.
    let resp = send(post(
        &hub,
        Some(&format!("Bearer {owner}")),
        &stateless_write_body("/control.txt"),
    ))
    .await;
    assert_eq!(resp.status().as_u16(), 200, "control write");
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let m = message(resp).await;
    assert!(
        m["result"]["content"].is_array() && m["result"]["isError"] != true,
        "control write: {m}"
    );
    assert!(
        ctype.starts_with("application/json"),
        "stateless tools/call answers JSON here (json_response), got {ctype}"
    );
    assert!(hub.has_file("eng", "control.txt").await);
    let before = hub.stored_files().await;

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("empty bearer", Some("Bearer ".into())),
        ("basic", Some("Basic x".into())),
        ("malformed", Some("Bearer sk-short".into())),
        ("unknown", Some(format!("Bearer {unknown}"))),
        ("expired", Some(format!("Bearer {expired}"))),
        ("revoked", Some(format!("Bearer {revoked}"))),
    ];
    let mut refusals = Vec::new();
    for (case, auth) in &cases {
        let auth = auth.as_deref();
        let r = send(post(&hub, auth, &initialize_body())).await;
        assert!(
            r.headers().get("mcp-session-id").is_none(),
            "{case}: no session"
        );
        refusal(&format!("{case}: POST initialize"), r, &mut refusals).await;

        let path = format!("/pwned-{}.txt", case.replace(' ', "-"));
        let r = send(post(&hub, auth, &stateless_write_body(&path))).await;
        refusal(&format!("{case}: POST tools/call"), r, &mut refusals).await;

        // Same call inside the owner's session: still refused, still nothing done.
        let r = send(
            post(
                &hub,
                auth,
                &session_call_body(
                    "nexus_write_file",
                    json!({"path": path, "content": "pwned"}),
                ),
            )
            .header("mcp-session-id", &sid),
        )
        .await;
        refusal(
            &format!("{case}: POST tools/call in a session"),
            r,
            &mut refusals,
        )
        .await;

        let r = send(mcp_req(&hub, Method::GET, auth).header("mcp-session-id", &sid)).await;
        refusal(&format!("{case}: GET"), r, &mut refusals).await;

        let r = send(mcp_req(&hub, Method::DELETE, auth).header("mcp-session-id", &sid)).await;
        refusal(&format!("{case}: DELETE"), r, &mut refusals).await;

        // The X-Nexus-API-Key header is held to the same standard.
        if let Some(t) = auth.and_then(|a| a.strip_prefix("Bearer ")) {
            let r =
                send(post(&hub, None, &stateless_write_body(&path)).header("x-nexus-api-key", t))
                    .await;
            refusal(&format!("{case}: X-Nexus-API-Key"), r, &mut refusals).await;
            let r =
                send(post(&hub, None, &stateless_write_body(&path)).header("x-api-key", t)).await;
            refusal(&format!("{case}: X-API-Key"), r, &mut refusals).await;
        }
    }
    assert_eq!(
        hub.stored_files().await,
        before,
        "a refused request executed something"
    );

    // Every refusal is the same 401: challenge, content type and body, byte for byte, so
    // nothing tells a missing token from an unknown, expired or revoked one.
    let (first_case, first) = &refusals[0];
    for (case, r) in &refusals[1..] {
        assert_eq!(
            r, first,
            "{case} refused differently from {first_case} (WWW-Authenticate, content type, body)"
        );
    }
    let body = String::from_utf8_lossy(&first.2);
    for (_, auth) in &cases {
        if let Some(t) = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")) {
            assert!(t.is_empty() || !body.contains(t), "token echoed: {body}");
        }
    }

    // The challenge points at a served RFC 9728 document about /mcp.
    let metadata_url = first
        .0
        .strip_prefix("Bearer resource_metadata=\"")
        .and_then(|rest| rest.strip_suffix("\", scope=\"files:read files:write\""))
        .expect("challenge shape checked above");
    assert_eq!(
        metadata_url,
        format!("{}/.well-known/oauth-protected-resource", hub.fe.base)
    );
    let resp = send(http().get(metadata_url)).await;
    assert_eq!(resp.status().as_u16(), 200);
    let doc: Value = resp.json().await.expect("metadata JSON");
    assert!(
        doc["resource"]
            .as_str()
            .is_some_and(|r| r.ends_with("/mcp")),
        "{doc}"
    );

    // The bad DELETEs did not end the owner's session.
    let r = session_call(&hub, &owner, &sid, "nexus_whoami", json!({})).await;
    assert_eq!(r.status().as_u16(), 200, "owner's session survives");
    let m = message(r).await;
    assert!(
        m["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("owner")),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_belongs_to_the_token_that_opened_it() {
    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    hub.app.zone("ops").await;
    let a = hub.token("alice", Some("eng:rw"), false).await;
    let b = hub.token("bob", Some("ops:rw"), false).await;
    let sid = open_session(&hub, &a).await;

    let r = session_call(&hub, &a, &sid, "nexus_whoami", json!({})).await;
    assert_eq!(r.status().as_u16(), 200, "the owner uses its session");

    // A foreign session is answered exactly like a session that does not exist (404, same
    // body), so another token learns nothing about it, not even that it is there.
    let unknown_sid = uuid::Uuid::new_v4().simple().to_string();
    let r = session_call(&hub, &b, &unknown_sid, "nexus_whoami", json!({})).await;
    assert_eq!(r.status().as_u16(), 404, "an unknown session");
    let not_found = r.bytes().await.expect("body");

    let r = session_call(
        &hub,
        &b,
        &sid,
        "nexus_write_file",
        json!({"path": "/hijack.txt", "content": "x"}),
    )
    .await;
    let status = r.status().as_u16();
    let body = r.bytes().await.expect("body");
    assert_eq!(
        (status, &body),
        (404, &not_found),
        "another valid token used the session: {}",
        String::from_utf8_lossy(&body)
    );
    let r = session_call(&hub, &b, &sid, "nexus_whoami", json!({})).await;
    assert_eq!(r.status().as_u16(), 404, "whoami in a foreign session");
    assert_eq!(r.bytes().await.expect("body"), not_found);

    for method in [Method::GET, Method::DELETE] {
        let r = send(
            mcp_req(&hub, method.clone(), Some(&format!("Bearer {b}")))
                .header("mcp-session-id", &sid)
                .header("mcp-protocol-version", LEGACY),
        )
        .await;
        assert_eq!(r.status().as_u16(), 404, "{method} of a foreign session");
        assert_eq!(r.bytes().await.expect("body"), not_found, "{method}");
    }

    assert_eq!(
        hub.stored_files().await,
        Vec::<String>::new(),
        "nothing written"
    );
    let r = session_call(&hub, &a, &sid, "nexus_whoami", json!({})).await;
    assert_eq!(r.status().as_u16(), 200, "the owner's session is intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_revoked_mid_session_is_refused_next_request() {
    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    for era in ERAS {
        let name = format!("doomed-{}", era.name());
        let tok = hub.token(&name, Some("eng:rw"), false).await;
        let c = connect(hub.mcp_url(), &tok, era).await;
        let w = expect_json(
            &format!("{name}: whoami"),
            try_call(&c, "nexus_whoami", json!({})).await,
        );
        assert_eq!(w["name"], name.as_str());

        hub.app.control.revoke_token(&name).await.expect("revoke");

        let err = try_call(
            &c,
            "nexus_write_file",
            json!({"path": format!("/{name}.txt"), "content": "x"}),
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("{name}: a revoked token's call succeeded"));
        let challenge = err
            .auth_challenge()
            .unwrap_or_else(|| panic!("{name}: refused without a 401 challenge: {err}"));
        assert!(challenge.contains("resource_metadata="), "{challenge}");
        assert!(!hub.has_file("eng", &format!("{name}.txt")).await);
        let _ = c.cancel().await;
    }

    // The same, watched on the wire: a session's next request after revocation is a 401.
    let tok = hub.token("doomed-raw", Some("eng:rw"), false).await;
    let sid = open_session(&hub, &tok).await;
    let r = session_call(&hub, &tok, &sid, "nexus_whoami", json!({})).await;
    assert_eq!(r.status().as_u16(), 200);
    hub.app
        .control
        .revoke_token("doomed-raw")
        .await
        .expect("revoke");
    let r = session_call(&hub, &tok, &sid, "nexus_whoami", json!({})).await;
    assert_challenge("revoked mid-session (raw)", &r);
    let r = send(post(
        &hub,
        Some(&format!("Bearer {tok}")),
        &stateless_write_body("/raw.txt"),
    ))
    .await;
    assert_challenge("revoked, stateless (raw)", &r);
    assert!(!hub.has_file("eng", "raw.txt").await);
}

/// `X-API-Key` (seed `002`) carries the caller's token through the frontend as the other
/// headers do; two headers naming two different tokens are refused and run nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn x_api_key_works_through_the_frontend() {
    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    let tok = hub.token("xapikey", Some("eng:rw"), false).await;
    let other = hub.token("other", Some("eng:rw"), false).await;
    let body = stateless_call_body(
        CLIENT,
        "nexus_write_file",
        json!({"path": "/via-x-api-key.txt", "content": "hello"}),
    );
    let r = send(post(&hub, None, &body).header("x-api-key", &tok)).await;
    assert_eq!(r.status().as_u16(), 200, "X-API-Key through /mcp");
    let v: Value = r.json().await.expect("JSON");
    assert!(v["result"]["isError"] != json!(true), "{v}");
    assert_eq!(
        hub.stored_text("eng", "via-x-api-key.txt").await.as_deref(),
        Some("hello")
    );
    let r = send(post(&hub, None, &initialize_body()).header("x-api-key", &tok)).await;
    assert_eq!(r.status().as_u16(), 200, "initialize with X-API-Key");

    let twice = stateless_write_body("/two-credentials.txt");
    let r =
        send(post(&hub, Some(&format!("Bearer {other}")), &twice).header("x-api-key", &tok)).await;
    assert_challenge("Authorization and X-API-Key disagree", &r);
    let r = send(
        post(&hub, None, &twice)
            .header("x-nexus-api-key", &other)
            .header("x-api-key", &tok),
    )
    .await;
    assert_challenge("X-Nexus-API-Key and X-API-Key disagree", &r);
    assert!(!hub.has_file("eng", "two-credentials.txt").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn foreign_host_is_refused_and_health_and_metrics_are_open() {
    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    let tok = hub.token("valid", Some("eng:rw"), false).await;
    let auth = format!("Bearer {tok}");

    let r = send(post(&hub, Some(&auth), &initialize_body())).await;
    assert_eq!(r.status().as_u16(), 200, "valid token, right host");

    for host in ["evil.com", &format!("evil.com:{}", hub.fe.port)] {
        let r = send(post(&hub, Some(&auth), &initialize_body()).header("host", host)).await;
        assert_eq!(r.status().as_u16(), 403, "Host {host}");
        let r =
            send(post(&hub, Some(&auth), &stateless_write_body("/evil.txt")).header("host", host))
                .await;
        assert_eq!(r.status().as_u16(), 403, "Host {host}: tools/call");
    }
    assert!(!hub.has_file("eng", "evil.txt").await);

    let r = send(http().get(format!("{}/health", hub.fe.base))).await;
    assert_eq!(r.status().as_u16(), 200, "/health without a token");
    let h: Value = r.json().await.expect("health JSON");
    assert_eq!(h["status"], "ok", "{h}");

    let r = send(http().get(format!("{}/metrics", hub.fe.base))).await;
    assert_eq!(r.status().as_u16(), 200, "/metrics without a token");
    let m = r.text().await.expect("metrics text");
    assert!(m.contains("nexus_mcp_requests_total"), "{m}");
}

/// A large body is only read for a verified token: an unknown (but well-formed) token that
/// announces a large body gets its 401 while the body is still unsent, so nobody can make
/// the frontend buffer bodies with a made-up token. A real token's large declared body is
/// waited for as usual: the answer that comes is the one to the body sent afterwards.
/// Neither half measures time: [`STEP`] only bounds a hang.
#[tokio::test]
async fn a_large_body_waits_for_a_verified_token() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    let good = hub.token("big-writer", Some("eng:rw"), false).await;
    let unknown = format!("sk-{}", "A1b2-C3d4_".repeat(5).get(..43).expect("43 chars"));
    let addr = hub
        .mcp_url()
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned();
    // A real initialize, padded with JSON whitespace to well over 64 KiB.
    let mut body = initialize_body().to_string();
    body.push_str(&" ".repeat(256 << 10));
    let head = |token: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
    };
    async fn read_answer(s: &mut tokio::net::TcpStream, what: &str) -> String {
        let mut buf = Vec::new();
        tokio::time::timeout(STEP, s.read_to_end(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer"))
            .expect("read");
        String::from_utf8_lossy(&buf).into_owned()
    }

    // Head only, body never sent: the answer must come without it.
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    s.write_all(head(&unknown).as_bytes()).await.expect("head");
    let answer = read_answer(&mut s, "unknown token, body unsent").await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    // The same head with a valid token, then the body: the answer is the initialize result,
    // so the server waited for the body rather than answering the head.
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    s.write_all(head(&good).as_bytes()).await.expect("head");
    s.write_all(body.as_bytes()).await.expect("body");
    let answer = read_answer(&mut s, "verified token, body sent after the head").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("\"protocolVersion\"") && answer.contains("\"id\":1"),
        "not the answer to the body's initialize: {answer}"
    );
}
