//! Sealed MCP sessions (SPEC §12): a legacy session opened on one frontend replica is served
//! by any other with the same `NEXUS_MCP_SESSION_SECRET`, in front of one nexusd; an id that
//! is tampered, truncated, expired, sealed under a foreign secret or used by another token is
//! 404 `session_not_found`, the same answer as an unknown id; a rotation keeps old ids open;
//! and the official Python SDK holds a whole session through an HAProxy round robin (no
//! stickiness) over two frontends.

use crate::common;

use common::mcp::{bearer, message, open_session, post, send, session_call_body};
use common::{FrontendHandle, spawn_frontend_with};
use mcp_frontend::sessions::SessionSecret;
use rpc_server::db::Backend;
use rpc_server::testing::TestApp;
use serde_json::{Value, json};
use std::time::Duration;

fn secret(byte: u8) -> SessionSecret {
    SessionSecret::parse(&format!("{byte:02x}").repeat(32)).expect("secret")
}

/// A frontend in front of `app` sealing with `current`, also opening ids of `previous`.
async fn frontend(
    app: &TestApp,
    current: u8,
    previous: &[u8],
    lifetime: Option<Duration>,
) -> FrontendHandle {
    spawn_frontend_with(&app.base, |c| {
        c.sessions.secret = Some(secret(current));
        c.sessions.previous = previous.iter().map(|b| secret(*b)).collect();
        if let Some(l) = lifetime {
            c.sessions.lifetime = l;
        }
    })
    .await
}

/// `body` in session `sid` on `fe` with `token`: the status and the body's JSON.
async fn in_session(fe: &FrontendHandle, token: &str, sid: &str, body: &Value) -> (u16, Value) {
    let r = send(post(&fe.mcp_url, Some(&bearer(token)), body).header("mcp-session-id", sid)).await;
    let status = r.status().as_u16();
    (status, message(r).await)
}

fn list_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"})
}

/// The text of a tool result (its first content block).
fn tool_text(v: &Value) -> &str {
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

async fn app_with_zone() -> TestApp {
    let app = TestApp::spawn(Backend::Postgres).await;
    app.zone("eng").await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_opened_on_one_frontend_is_served_by_another_with_the_same_secret() {
    let app = app_with_zone().await;
    let token = app.mint("agent", Some("eng:rw"), false).await.token;
    let a = frontend(&app, 1, &[], None).await;
    let b = frontend(&app, 1, &[], None).await;
    let foreign = frontend(&app, 2, &[], None).await;

    let (sid, init) = open_session(&a.mcp_url, &bearer(&token), "replica-test").await;
    assert!(init["result"]["serverInfo"]["name"].is_string(), "{init}");

    // B never saw this session: it rebuilds it from the id and serves it.
    let (status, list) = in_session(&b, &token, &sid, &list_body()).await;
    assert_eq!(status, 200, "{list}");
    let tools = list["result"]["tools"].as_array().expect("tools");
    assert!(
        tools.iter().any(|t| t["name"] == "nexus_write_file"),
        "{list}"
    );

    let write = session_call_body(
        "nexus_write_file",
        json!({"path": "/replicas.md", "content": "written through B"}),
    );
    let (status, w) = in_session(&b, &token, &sid, &write).await;
    assert_eq!(status, 200, "{w}");
    assert_ne!(w["result"]["isError"], true, "{w}");
    // And back and forth: both replicas keep serving the one session.
    let read = session_call_body("nexus_read_file", json!({"path": "/replicas.md"}));
    for fe in [&a, &b, &a] {
        let (status, r) = in_session(fe, &token, &sid, &read).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(tool_text(&r), "written through B", "{r}");
    }
    assert_eq!(
        app.stored("eng", "replicas.md").await.as_deref(),
        Some(&b"written through B"[..])
    );

    // A frontend with another secret cannot open the id: as unknown as any other.
    let (status, body) = in_session(&foreign, &token, &sid, &list_body()).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "session_not_found", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_session_ids_are_not_found_exactly_like_unknown_ones() {
    let app = app_with_zone().await;
    let x = app.mint("x", Some("eng:rw"), false).await.token;
    let y = app.mint("y", Some("eng:rw"), false).await.token;
    let fe = frontend(&app, 7, &[], None).await;
    let (sid, _) = open_session(&fe.mcp_url, &bearer(&x), "bad-ids").await;
    let (status, _) = in_session(&fe, &x, &sid, &list_body()).await;
    assert_eq!(status, 200, "the owner uses its session");

    let (status, unknown) = in_session(&fe, &x, "no-such-session", &list_body()).await;
    assert_eq!(status, 404);
    assert_eq!(unknown["error"]["code"], "session_not_found", "{unknown}");

    // One character changed anywhere (version, nonce, ciphertext, tag) breaks the seal.
    let flip = |i: usize| {
        let mut b = sid.clone().into_bytes();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).expect("ascii")
    };
    let mut bad: Vec<(String, String, &str)> = [0, 3, sid.len() / 2, sid.len() - 2]
        .into_iter()
        .map(|i| (format!("flipped at {i}"), flip(i), x.as_str()))
        .collect();
    bad.push(("truncated".into(), sid[..sid.len() - 6].to_owned(), &x));
    bad.push((
        "truncated to half".into(),
        sid[..sid.len() / 2].to_owned(),
        &x,
    ));
    bad.push(("another token".into(), sid.clone(), &y));
    bad.push(("empty".into(), String::new(), &x));
    bad.push((
        "a uuid".into(),
        "6f1c9b52-8d4e-4a53-9a51-0c2f3c6f9d10".into(),
        &x,
    ));
    for (what, id, token) in &bad {
        let (status, body) = in_session(&fe, token, id, &list_body()).await;
        assert_eq!((status, &body), (404, &unknown), "{what}");
        let call = session_call_body("nexus_write_file", json!({"path": "/x.md", "content": "x"}));
        let (status, body) = in_session(&fe, token, id, &call).await;
        assert_eq!((status, &body), (404, &unknown), "{what}: a tool call");
    }
    // Not even text: still just no such session.
    let r = send(post(&fe.mcp_url, Some(&bearer(&x)), &list_body()).header(
        "mcp-session-id",
        reqwest::header::HeaderValue::from_bytes(b"\xff\xfe-session").expect("obs-text"),
    ))
    .await;
    let status = r.status().as_u16();
    assert_eq!((status, &message(r).await), (404, &unknown), "non-ASCII id");
    assert!(
        app.stored("eng", "x.md").await.is_none(),
        "nothing was written through a bad id"
    );
    // The owner's session is untouched by all of that.
    let (status, _) = in_session(&fe, &x, &sid, &list_body()).await;
    assert_eq!(status, 200);

    // An expired id is refused too, even by the replica that still holds the session.
    let short = frontend(&app, 7, &[], Some(Duration::from_secs(1))).await;
    let (old, _) = open_session(&short.mcp_url, &bearer(&x), "expiring").await;
    let (status, _) = in_session(&short, &x, &old, &list_body()).await;
    assert_eq!(status, 200, "fresh");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for fe in [&short, &fe] {
        let (status, body) = in_session(fe, &x, &old, &list_body()).await;
        assert_eq!((status, &body), (404, &unknown), "expired");
    }

    // DELETE ends the session on the replica that received it: its id no longer opens there.
    let r = send(
        common::mcp::request(&fe.mcp_url, reqwest::Method::DELETE, Some(&bearer(&x)))
            .header("mcp-session-id", &sid)
            .header("mcp-protocol-version", common::mcp::LEGACY),
    )
    .await;
    // 204: the official Python SDK takes anything but 200 or 204 for a failed termination.
    assert_eq!(r.status().as_u16(), 204, "DELETE: {}", r.status());
    let (status, body) = in_session(&fe, &x, &sid, &list_body()).await;
    assert_eq!((status, &body), (404, &unknown), "after DELETE");
}

/// A replica counts the sessions it rebuilds against its own caps.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_caps_the_sessions_it_rebuilds() {
    let app = app_with_zone().await;
    let token = app.mint("capped", Some("eng:rw"), false).await.token;
    let a = frontend(&app, 6, &[], None).await;
    let b = spawn_frontend_with(&app.base, |c| {
        c.sessions.secret = Some(secret(6));
        c.limits.sessions_per_key = 1;
    })
    .await;
    let (s1, _) = open_session(&a.mcp_url, &bearer(&token), "one").await;
    let (s2, _) = open_session(&a.mcp_url, &bearer(&token), "two").await;
    let (status, _) = in_session(&b, &token, &s1, &list_body()).await;
    assert_eq!(status, 200, "the first rebuilt session takes B's one place");
    let (status, body) = in_session(&b, &token, &s2, &list_body()).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_sessions", "{body}");
    // A is not capped that low: both keep working there.
    for sid in [&s1, &s2] {
        let (status, _) = in_session(&a, &token, sid, &list_body()).await;
        assert_eq!(status, 200);
    }
}

/// With `--require-bearer false`, a session opened without a token is sealed with no key id:
/// a token cannot take it over, and a token's session cannot be used without the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_with_and_without_a_token_do_not_mix() {
    let app = app_with_zone().await;
    let x = app.mint("x", Some("eng:rw"), false).await.token;
    let fe = spawn_frontend_with(&app.base, |c| {
        c.require_bearer = false;
        c.sessions.secret = Some(secret(5));
    })
    .await;
    let r = send(post(
        &fe.mcp_url,
        None,
        &common::mcp::initialize_body("anonymous"),
    ))
    .await;
    assert_eq!(r.status().as_u16(), 200);
    let anonymous = r
        .headers()
        .get("mcp-session-id")
        .expect("a session")
        .to_str()
        .expect("ascii")
        .to_owned();
    let in_anonymous = |sid: String| {
        let url = fe.mcp_url.clone();
        async move {
            let r = send(post(&url, None, &list_body()).header("mcp-session-id", sid)).await;
            let status = r.status().as_u16();
            (status, message(r).await)
        }
    };
    let (status, body) = in_anonymous(anonymous.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = in_session(&fe, &x, &anonymous, &list_body()).await;
    assert_eq!(status, 404, "a token in a token-less session: {body}");
    assert_eq!(body["error"]["code"], "session_not_found");

    let (owned, _) = open_session(&fe.mcp_url, &bearer(&x), "owned").await;
    let (status, body) = in_anonymous(owned).await;
    assert_eq!(status, 404, "no token in a token's session: {body}");
    assert_eq!(body["error"]["code"], "session_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_secret_rotation_keeps_old_ids_and_seals_new_ones_with_the_new_secret() {
    let app = app_with_zone().await;
    let token = app.mint("rot", Some("eng:rw"), false).await.token;
    let old = frontend(&app, 1, &[], None).await;
    let rotated = frontend(&app, 2, &[1], None).await;
    let (sid1, _) = open_session(&old.mcp_url, &bearer(&token), "rotation").await;
    let (status, body) = in_session(&rotated, &token, &sid1, &list_body()).await;
    assert_eq!(status, 200, "an id of the previous secret: {body}");

    let (sid2, _) = open_session(&rotated.mcp_url, &bearer(&token), "rotation").await;
    let (status, body) = in_session(&old, &token, &sid2, &list_body()).await;
    assert_eq!(
        status, 404,
        "sealed with the new secret, unknown to the old: {body}"
    );
    assert_eq!(body["error"]["code"], "session_not_found");
    // Once every replica has the new secret, the old one can go: new ids still open.
    let current_only = frontend(&app, 2, &[], None).await;
    let (status, _) = in_session(&current_only, &token, &sid2, &list_body()).await;
    assert_eq!(status, 200);
}

/// `nexus_mcp_requests_total` samples of `fe` for `method`, summed.
async fn requests(fe: &FrontendHandle, method: &str) -> f64 {
    let text = common::http()
        .get(format!("{}/metrics", fe.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    let label = format!("rpc_method=\"{method}\"");
    text.lines()
        .filter(|l| l.starts_with("nexus_mcp_requests_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_python_sdk_keeps_its_session_through_a_round_robin_over_two_frontends() {
    let app = app_with_zone().await;
    let token = app.mint("python-lb", Some("eng:rw"), false).await.token;
    let a = frontend(&app, 3, &[], None).await;
    let b = frontend(&app, 3, &[], None).await;

    // HAProxy, every request to the next frontend in turn, nothing sticky.
    let dir = tempfile::tempdir().expect("tempdir");
    let (_haproxy, port) = common::procs::haproxy(dir.path(), &[a.port, b.port], "").await;

    let url = format!("http://127.0.0.1:{port}/mcp");
    // initialize, tools/list and three tool calls in one session (and the stateless era).
    let stdout = common::auth::python_sdk(&url, &token, "").await;
    assert!(stdout.contains("ok: initialize"), "{stdout}");
    // Both frontends served tool calls: the session really moved between them.
    for (name, fe) in [("a", &a), ("b", &b)] {
        assert!(
            requests(fe, "tools/call").await > 0.0,
            "frontend {name} served no tool call"
        );
    }
}

/// The secret rotation of SPEC §12 without a restart: two replicas read one secret file and
/// the cluster bus (Redis); `nexus hub session-secret rotate` writes a new secret first in
/// the file and announces it; both replicas seal with it at once (their timer is an hour, so
/// only the announcement explains it), and ids sealed before keep opening. `--keep 0` then
/// ends those: a leaked secret is dropped on every replica by one command.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotation_announced_on_the_bus_moves_every_replica_without_a_restart() {
    use mcp_frontend::sessions::SecretFile;
    let app = app_with_zone().await;
    let token = app.mint("rotating", Some("eng:rw"), false).await.token;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mcp-session.secret");
    SecretFile {
        current: secret(1),
        earlier: Vec::new(),
    }
    .write(&file)
    .expect("write the secret file");
    let bus_url = rpc_server::testing::redis_url();
    let replica = |name: &'static str| {
        let (file, bus_url) = (file.clone(), bus_url.clone());
        spawn_frontend_with(&app.base, move |c| {
            c.sessions.file = Some(file);
            c.sessions.reload_every = Duration::from_secs(3600);
            c.bus = Some(
                mcp_frontend::config::BusSettings::new(
                    bus_url.into(),
                    None,
                    None,
                    Some(name.to_owned()),
                )
                .expect("bus settings"),
            );
        })
    };
    let a = replica("frontend-rotation-a").await;
    let b = replica("frontend-rotation-b").await;
    // Holds the first secret only, so it tells which secret a replica seals with.
    let first_only = frontend(&app, 1, &[], None).await;
    let auth = bearer(&token);
    let (old_sid, _) = open_session(&a.mcp_url, &auth, "before-rotation").await;
    for fe in [&b, &first_only] {
        let (status, r) = in_session(fe, &token, &old_sid, &list_body()).await;
        assert_eq!(status, 200, "sealed with the first secret: {r}");
    }

    let rotate = |keep: &'static str| {
        let (file, bus_url) = (file.clone(), bus_url.clone());
        async move {
            let file = file.display().to_string();
            common::procs::run_nexus(
                &[
                    "hub",
                    "session-secret",
                    "rotate",
                    "--file",
                    &file,
                    "--keep",
                    keep,
                ],
                &[("NEXUS_BUS_URL".to_owned(), bus_url)],
            )
            .await
        }
    };
    let (code, out, err) = rotate("1").await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("announced on the cluster bus"), "{out}");
    let held = SecretFile::read(&file).expect("the rotated file");
    assert_eq!(held.earlier.len(), 1, "the replaced secret stays, second");
    for s in [&held.current, &held.earlier[0]] {
        let hex = s.file_text(&[]);
        assert!(!out.contains(hex.trim()) && !err.contains(hex.trim()));
    }

    // Each replica seals with the new secret as soon as it heard: its new ids no longer
    // open where only the first secret is known, and open on the other replica.
    for (fe, other) in [(&a, &b), (&b, &a)] {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let sid = loop {
            let (sid, _) = open_session(&fe.mcp_url, &auth, "after-rotation").await;
            let (status, _) = in_session(&first_only, &token, &sid, &list_body()).await;
            if status == 404 {
                break sid;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "a replica still seals with the replaced secret 10 s after the announcement"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let (status, r) = in_session(other, &token, &sid, &list_body()).await;
        assert_eq!(
            status, 200,
            "the other replica opens the new secret's ids: {r}"
        );
    }
    for fe in [&a, &b] {
        let (status, r) = in_session(fe, &token, &old_sid, &list_body()).await;
        assert_eq!(
            status, 200,
            "an id of the replaced secret keeps opening: {r}"
        );
    }

    // The replaced secret dropped: its ids end on every replica.
    let (code, out, err) = rotate("0").await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(SecretFile::read(&file).expect("file").earlier.is_empty());
    for fe in [&a, &b] {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = in_session(fe, &token, &old_sid, &list_body()).await;
            if status == 404 {
                assert_eq!(body["error"]["code"], "session_not_found", "{body}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "an id of the dropped secret still opens 10 s after the announcement"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
