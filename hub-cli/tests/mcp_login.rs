//! An agent logs in with a password and works through MCP (SPEC §10), all through the
//! frontend's public port: a real nexusd (`--auth-type database,local`, the root password
//! from `NEXUS_ROOT_PASSWORD`, the frontend a trusted proxy) behind a real frontend.
//! `POST /auth/login` → `GET /auth/me` → root creates a user with zone `eng` → the user's
//! login JWT drives the rmcp client and the official Python SDK at `/mcp` (tools, write,
//! read back, the file really in the zone) → refresh rotates → logout, after which the
//! same JWT is a 401 with the challenge. Login throttling counts the real client address
//! the frontend forwards, not the frontend's. Hostile credentials get clear 400/401/431
//! from both servers, which keep serving.

use crate::common;

use base64::Engine as _;
use common::auth::{
    Stack, challenge, frontend_port, get_json, mcp_status, post_json, python_sdk, rmcp_round_trip,
};
use common::http;
use serde_json::{Value, json};

const ROOT_PW: &str = "root-password-for-e2e";
const ADA_PW: &str = "ada-password-for-e2e";

/// nexusd with local logins whose issuer is the frontend's URL; both trust 127.0.0.1 as
/// a proxy (the frontend as if behind a load balancer on the host: the tests stand for
/// clients at other addresses with `X-Forwarded-For`).
async fn stack() -> Stack {
    let port = frontend_port();
    let rpc_env = [
        ("NEXUS_AUTH_TYPE", "database,local".to_owned()),
        ("NEXUS_ROOT_PASSWORD", ROOT_PW.to_owned()),
        ("NEXUS_TRUSTED_PROXIES", "127.0.0.1".to_owned()),
        ("NEXUS_URL", format!("http://127.0.0.1:{port}")),
    ];
    let fe_env = [("NEXUS_MCP_TRUSTED_PROXIES", "127.0.0.1".to_owned())];
    let s = Stack::start(port, &rpc_env, &fe_env).await;
    common::control(&s.db.store)
        .create_zone("eng")
        .await
        .expect("zone");
    s
}

async fn login(fe: &str, user: &str, pw: &str, from: Option<&str>) -> (u16, Value) {
    let mut r = http()
        .post(format!("{fe}/auth/login"))
        .json(&json!({"username": user, "password": pw}));
    if let Some(ip) = from {
        r = r.header("x-forwarded-for", ip);
    }
    let resp = r.send().await.expect("login");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("no {k} in {v}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_logs_in_through_the_frontend_and_works_over_mcp() {
    let hub = stack().await;
    let fe = hub.fe.as_str();

    let (st, root) = login(fe, "root", ROOT_PW, None).await;
    assert_eq!(st, 200, "{root}");
    assert_eq!(s(&root, "token_type"), "Bearer");
    let root_jwt = s(&root, "token");
    let (st, me) = get_json(&format!("{fe}/auth/me"), &root_jwt).await;
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["user_id"], "root");
    assert!(
        me["permissions"]
            .as_array()
            .is_some_and(|p| p.contains(&json!("SUPER"))),
        "{me}"
    );

    // Root creates the agent's user, its one zone `eng` read-write (user zones, SPEC §10).
    let (st, v) = post_json(
        &format!("{fe}/auth/users"),
        Some(&root_jwt),
        &json!({"username": "ada", "password": ADA_PW, "permissions": ["READ", "WRITE"], "zones": "eng:rw"}),
    )
    .await;
    assert_eq!(st, 201, "{v}");

    let (st, ada) = login(fe, "ada", ADA_PW, None).await;
    assert_eq!(st, 200, "{ada}");
    let jwt = s(&ada, "token");
    assert_eq!(jwt.split('.').count(), 3, "a JWT");
    let (_, me) = get_json(&format!("{fe}/auth/me"), &jwt).await;
    assert_eq!(me["user_id"], "ada", "{me}");

    // The login JWT at /mcp: rmcp and the Python SDK write and read in the user's zone.
    let written = rmcp_round_trip(&hub.mcp, &jwt, "", "ada").await;
    python_sdk(&hub.mcp, &jwt, "").await;
    let stored = hub.stored_in("eng").await;
    for w in &written {
        assert!(stored.contains(w), "{w} not in {stored:?}");
    }
    for era in ["initialize", "discover"] {
        assert!(
            stored
                .iter()
                .any(|p| p.starts_with(&format!("python-sdk/{era}-"))),
            "{era}: {stored:?}"
        );
    }

    // Refresh through the frontend: a new pair, the new JWT works, the old refresh is dead.
    let (st, next) = post_json(
        &format!("{fe}/auth/refresh"),
        None,
        &json!({"refresh_token": s(&ada, "refresh_token")}),
    )
    .await;
    assert_eq!(st, 200, "{next}");
    let jwt2 = s(&next, "token");
    assert_ne!(jwt2, jwt);
    assert_eq!(mcp_status(&hub.mcp, &jwt2).await.0, 200);
    let (st, _) = post_json(
        &format!("{fe}/auth/refresh"),
        None,
        &json!({"refresh_token": s(&next, "refresh_token")}),
    )
    .await;
    assert_eq!(st, 200, "the newest refresh token rotates once more");

    // Logout through the frontend: the same JWT is refused at /mcp, with the challenge.
    let (_, fresh) = login(fe, "ada", ADA_PW, None).await;
    let jwt3 = s(&fresh, "token");
    assert_eq!(mcp_status(&hub.mcp, &jwt3).await.0, 200, "cached as valid");
    let (st, v) = post_json(&format!("{fe}/auth/logout"), Some(&jwt3), &json!({})).await;
    assert_eq!((st, &v), (200, &json!({"logged_out": true})));
    assert_eq!(
        mcp_status(&hub.mcp, &jwt3).await,
        (401, challenge(fe)),
        "logged out"
    );
    assert!(
        common::auth::try_list(&hub.mcp, &jwt3).await.is_err(),
        "an rmcp client cannot start with a logged-out JWT"
    );
    let (st, _) = post_json(
        &format!("{fe}/auth/refresh"),
        None,
        &json!({"refresh_token": s(&fresh, "refresh_token")}),
    )
    .await;
    assert_eq!(st, 401, "logout revoked the refresh family");

    // Throttling counts the client address the frontend forwards: an attacker at one
    // address is throttled; the real user at another logs in.
    let mut throttled = false;
    for _ in 0..10 {
        let (st, v) = login(fe, "root", "guess", Some("203.0.113.7")).await;
        assert!(st == 401 || st == 429, "{st} {v}");
        if st == 429 {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "the attacker's address is throttled");
    let (st, v) = login(fe, "root", ROOT_PW, Some("198.51.100.9")).await;
    assert_eq!(st, 200, "the real user logs in from another address: {v}");
    let (st, _) = login(fe, "root", ROOT_PW, Some("203.0.113.7")).await;
    assert_eq!(
        st, 429,
        "the attacker's address stays throttled, right password or not"
    );
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Status of `POST url` with raw `Authorization` bytes (an rpc call or an MCP initialize).
async fn with_auth_bytes(url: &str, auth: &[u8], body: &Value) -> Result<u16, String> {
    let value = reqwest::header::HeaderValue::from_bytes(auth).map_err(|e| e.to_string())?;
    http()
        .post(url)
        .header("authorization", value)
        .header("accept", common::mcp::ACCEPT)
        .header("mcp-protocol-version", common::mcp::LEGACY)
        .json(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

async fn raw_body(url: &str, body: &[u8]) -> u16 {
    http()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_credentials_get_clear_refusals_and_the_servers_keep_serving() {
    let hub = stack().await;
    let fe = hub.fe.as_str();
    let whoami = format!("{}/api/nfs/whoami", hub.rpc);
    let rpc_body = json!({"jsonrpc": "2.0", "id": 1, "method": "whoami", "params": {}});
    let mcp_body = common::mcp::initialize_body("hostile");
    let (_, root) = login(fe, "root", ROOT_PW, None).await;
    let good = s(&root, "token");

    // A JSON bomb in the header and the claims, within the login-token size bound: the
    // parser's depth limit refuses it, never a stack overflow.
    let bomb = |depth: usize| {
        format!(
            r#"{{"alg":"EdDSA","x":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    let bomb_jwt = format!(
        "{}.{}.{}",
        b64(bomb(1_200).as_bytes()),
        b64(bomb(1_200).as_bytes()),
        b64(b"sig")
    );
    assert!(
        bomb_jwt.len() < 8 * 1024,
        "under the token bound: parsed, not cut"
    );
    let oversized = format!(
        "{}.{}.{}",
        b64(br#"{"alg":"EdDSA"}"#),
        "a".repeat(20 * 1024),
        b64(b"sig")
    );
    let mut not_utf8 = b"Bearer eyJhbGciOiJFZERTQSJ9.".to_vec();
    not_utf8.extend_from_slice(&[0xff, 0xfe, 0x80, 0xc3]);
    not_utf8.extend_from_slice(b".c2ln");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "oversized JWT (20 KiB)",
            format!("Bearer {oversized}").into_bytes(),
        ),
        ("JSON bomb JWT", format!("Bearer {bomb_jwt}").into_bytes()),
        ("non-UTF-8 Authorization", not_utf8),
    ];
    for (what, auth) in &cases {
        assert_eq!(
            with_auth_bytes(&whoami, auth, &rpc_body).await,
            Ok(401),
            "nexusd: {what}"
        );
        assert_eq!(
            with_auth_bytes(&hub.mcp, auth, &mcp_body).await,
            Ok(401),
            "frontend: {what}"
        );
    }

    // The head cap (64 KiB, `nexus_serve::MAX_HEAD_BYTES`) is why a 10 MB claim cannot
    // even arrive: a 70 KiB Authorization is 431 before any auth code runs; a 1 MB one
    // is 431 or the connection closed under the client, never served.
    let big = format!("Bearer {}", "a".repeat(70 * 1024)).into_bytes();
    assert_eq!(
        with_auth_bytes(&whoami, &big, &rpc_body).await,
        Ok(431),
        "nexusd"
    );
    assert_eq!(
        with_auth_bytes(&hub.mcp, &big, &mcp_body).await,
        Ok(431),
        "frontend"
    );
    let huge = format!("Bearer {}", "a".repeat(1024 * 1024)).into_bytes();
    for url in [&whoami, &hub.mcp] {
        let r = with_auth_bytes(url, &huge, &rpc_body).await;
        assert!(matches!(r, Ok(431) | Err(_)), "{url}: {r:?}");
    }

    // Non-UTF-8 bytes in a login body: 400 from nexusd and through the frontend.
    let body = b"{\"username\":\"r\xffoot\",\"password\":\"p\xfe\"}";
    assert_eq!(
        raw_body(&format!("{}/auth/login", hub.rpc), body).await,
        400
    );
    assert_eq!(raw_body(&format!("{fe}/auth/login"), body).await, 400);

    // Both keep serving: a good login JWT works at nexusd and over MCP, and logins go on.
    assert_eq!(
        with_auth_bytes(&whoami, format!("Bearer {good}").as_bytes(), &rpc_body).await,
        Ok(200)
    );
    assert_eq!(mcp_status(&hub.mcp, &good).await.0, 200);
    assert_eq!(login(fe, "root", ROOT_PW, None).await.0, 200);
}
