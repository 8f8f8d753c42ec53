//! Zone permissions (`r`, `w`, `rw`), admin-only methods, and the JSON-RPC protocol errors.

use rpc_server::db::Backend;
use rpc_server::testing::{TestApp, TestOptions, code};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn message(r: &Result<Value, Value>) -> String {
    r.as_ref().expect_err("an error")["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

#[tokio::test]
async fn a_read_only_zone_refuses_every_mutation_and_serves_reads() {
    let app = TestApp::spawn(Backend::Postgres).await;
    for z in ["docs", "eng", "drop"] {
        app.zone(z).await;
    }
    let admin = app.mint("root", None, true).await;
    app.write_files(
        &admin.token,
        &[
            ("/zone/docs/guide.md", "# Guide\nread me\n"),
            ("/zone/docs/sub/inner.md", "inner\n"),
            ("/zone/docs/empty/.keep", "k"),
        ],
    )
    .await;
    let reader = app.mint("reader", Some("docs:r"), false).await;
    let t = &reader.token;

    let mutations = [
        ("write", json!({"path": "/guide.md", "content": "defaced"})),
        ("write", json!({"path": "/new.md", "content": "new"})),
        (
            "edit",
            json!({"path": "/guide.md", "edits": [{"old_str": "Guide", "new_str": "Gone"}]}),
        ),
        ("delete", json!({"path": "/guide.md"})),
        ("mkdir", json!({"path": "/newdir"})),
        ("rmdir", json!({"path": "/sub", "recursive": true})),
        ("rmdir", json!({"path": "/empty", "recursive": true})),
        (
            "rename",
            json!({"old_path": "/guide.md", "new_path": "/moved.md"}),
        ),
    ];
    for (method, params) in &mutations {
        let r = app.rpc(t, method, params.clone()).await;
        assert_eq!(code(&r), -32003, "{method} {params}: {r:?}");
        let m = message(&r);
        assert!(
            m.contains("docs"),
            "{method}: message must name the zone: {m}"
        );
    }

    // Reads work, and nothing changed.
    let r = app
        .rpc(t, "read", json!({"path": "/guide.md"}))
        .await
        .expect("read");
    assert_eq!(r["content"], json!("# Guide\nread me\n"));
    let r = app
        .rpc(t, "stat", json!({"path": "/sub/inner.md"}))
        .await
        .expect("stat");
    assert_eq!(r["exists"], json!(true));
    let r = app
        .rpc(t, "list", json!({"path": "/"}))
        .await
        .expect("list");
    let names: Vec<&str> = r["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["empty", "guide.md", "sub"]);
    let r = app
        .rpc(t, "glob", json!({"pattern": "**/*.md"}))
        .await
        .expect("glob");
    assert_eq!(r["items"], json!(["/guide.md", "/sub/inner.md"]));
    let r = app
        .rpc(t, "grep", json!({"pattern": "read"}))
        .await
        .expect("grep");
    assert_eq!(r["total"], json!(1), "{r}");
    let r = app
        .rpc(t, "stat", json!({"path": "/new.md"}))
        .await
        .expect("stat");
    assert_eq!(r["exists"], json!(false));

    // A multi-zone token: moving between a writable and a read-only zone is refused both
    // ways, naming the read-only zone.
    let mixed = app.mint("mixed", Some("eng:rw,docs:r"), false).await;
    app.rpc(
        &mixed.token,
        "write",
        json!({"path": "/zone/eng/a.md", "content": "a"}),
    )
    .await
    .expect("write eng");
    for (old, new) in [
        ("/zone/eng/a.md", "/zone/docs/a.md"),
        ("/zone/docs/guide.md", "/zone/eng/guide.md"),
    ] {
        let r = app
            .rpc(
                &mixed.token,
                "rename",
                json!({"old_path": old, "new_path": new}),
            )
            .await;
        assert_eq!(code(&r), -32003, "{old} -> {new}: {r:?}");
        assert!(message(&r).contains("'docs'"), "{}", message(&r));
    }
    let r = app
        .rpc(
            &mixed.token,
            "write",
            json!({"path": "/zone/docs/x.md", "content": "x"}),
        )
        .await;
    assert_eq!(code(&r), -32003);
    assert!(message(&r).contains("docs"));
    app.rpc(&mixed.token, "read", json!({"path": "/zone/eng/a.md"}))
        .await
        .expect("source kept");

    // A write-only zone: writes work, reads (and edits, which read) are refused.
    let dropper = app.mint("dropper", Some("drop:w"), false).await;
    let w = app
        .rpc(
            &dropper.token,
            "write",
            json!({"path": "/in.txt", "content": "dropped"}),
        )
        .await
        .expect("write-only write");
    assert_eq!(w["size"], json!(7));
    for (method, params) in [
        ("read", json!({"path": "/in.txt"})),
        (
            "edit",
            json!({"path": "/in.txt", "edits": [{"old_str": "d", "new_str": "x", "replace_all": true}]}),
        ),
        ("grep", json!({"pattern": ".", "path": "/"})),
    ] {
        let r = app.rpc(&dropper.token, method, params).await;
        assert_eq!(code(&r), -32003, "{method}: {r:?}");
        assert!(message(&r).contains("drop"), "{}", message(&r));
    }
    let r = app
        .rpc(&admin.token, "read", json!({"path": "/zone/drop/in.txt"}))
        .await
        .expect("admin reads the drop zone");
    assert_eq!(r["content"], json!("dropped"));
}

#[tokio::test]
async fn admin_methods_need_an_admin_token() {
    let app = TestApp::spawn(Backend::Postgres).await;
    app.zone("eng").await;
    let user = app.mint("user", Some("eng:rw"), false).await;
    let admin = app.mint("root", None, true).await;

    let calls = [
        (
            "hub_admin_token_create",
            json!({"name": "sneaky", "zones": "eng:rw", "admin": true}),
        ),
        ("hub_admin_token_list", json!({})),
        ("hub_admin_token_revoke", json!({"identifier": "root"})),
        ("hub_admin_zone_create", json!({"name": "sneaky-zone"})),
        ("hub_admin_zone_list", json!({})),
        ("hub_admin_zone_delete", json!({"name": "eng"})),
        ("hub_admin_status", json!({})),
        ("hub_admin_oauth_client_list", json!({})),
        (
            "hub_admin_oauth_client_revoke",
            json!({"client_id": "dcr-any"}),
        ),
    ];
    for (method, params) in &calls {
        let r = app.rpc(&user.token, method, params.clone()).await;
        assert_eq!(code(&r), -32003, "{method}: {r:?}");
        assert!(message(&r).contains(method), "{}", message(&r));
    }
    // None of the refused calls did anything.
    let names: Vec<String> = app
        .control
        .list_tokens(true)
        .await
        .expect("tokens")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["user", "root"]);
    let zones = app.control.list_zones(true).await.expect("zones");
    assert_eq!(zones.len(), 1);
    assert_eq!(zones[0].status, "active");
    assert_eq!(
        app.rpc_raw(Some(&admin.token), "whoami", json!({})).await.0,
        200
    );

    // The same calls work for an admin, with the CLI's --json shapes.
    let z = app
        .rpc(
            &admin.token,
            "hub_admin_zone_create",
            json!({"name": "newz"}),
        )
        .await
        .expect("zone create");
    assert_eq!(z["zone_id"], json!("newz"));
    assert_eq!(z["status"], json!("active"));
    let zl = app
        .rpc(&admin.token, "hub_admin_zone_list", json!({}))
        .await
        .expect("zone list");
    let ids: Vec<&str> = zl
        .as_array()
        .expect("zone list array")
        .iter()
        .map(|z| z["zone_id"].as_str().expect("zone_id"))
        .collect();
    assert_eq!(ids, ["eng", "newz"]);

    let c = app
        .rpc(
            &admin.token,
            "hub_admin_token_create",
            json!({"name": "minted", "zones": "newz:r,eng"}),
        )
        .await
        .expect("token create");
    let key_id = c["key_id"].as_str().expect("key_id");
    assert!(uuid::Uuid::parse_str(key_id).is_ok(), "{key_id}");
    let raw = c["token"].as_str().expect("token").to_owned();
    assert!(raw.starts_with("sk-") && raw.len() >= 3 + 22, "{raw}");
    assert_eq!(c["name"], json!("minted"));
    assert_eq!(c["admin"], json!(false));
    assert_eq!(
        c["zones"],
        json!([
            {"zone_id": "eng", "permission": "rw"},
            {"zone_id": "newz", "permission": "r"}
        ])
    );
    let w = app
        .rpc(&raw, "whoami", json!({}))
        .await
        .expect("minted token works");
    assert_eq!(w["key_id"], json!(key_id));

    let tl = app
        .rpc(&admin.token, "hub_admin_token_list", json!({}))
        .await
        .expect("token list");
    assert!(
        !tl.to_string().contains(&raw),
        "a listing must never show a token"
    );
    let minted = tl
        .as_array()
        .expect("token list array")
        .iter()
        .find(|t| t["name"] == json!("minted"))
        .expect("minted listed");
    assert_eq!(minted["key_id"], json!(key_id));
    assert_eq!(minted["status"], json!("active"));
    assert!(minted.get("token").is_none(), "{minted}");

    let rv = app
        .rpc(
            &admin.token,
            "hub_admin_token_revoke",
            json!({"identifier": "minted"}),
        )
        .await
        .expect("revoke");
    assert_eq!(rv["status"], json!("revoked"));
    assert_eq!(rv["key_id"], json!(key_id));
    assert_eq!(app.rpc_raw(Some(&raw), "whoami", json!({})).await.0, 401);
    let r = app
        .rpc(
            &admin.token,
            "hub_admin_token_revoke",
            json!({"identifier": "minted"}),
        )
        .await;
    assert_eq!(code(&r), -32602, "revoking twice must fail: {r:?}");
    assert_eq!(
        r.as_ref().expect_err("an error")["data"]["reason"],
        json!("not_found"),
        "{r:?}"
    );

    let zd = app
        .rpc(
            &admin.token,
            "hub_admin_zone_delete",
            json!({"name": "newz"}),
        )
        .await
        .expect("zone delete");
    assert_eq!(zd["zone_id"], json!("newz"));
    assert_eq!(zd["status"], json!("deleted"));

    let st = app
        .rpc(&admin.token, "hub_admin_status", json!({}))
        .await
        .expect("status");
    assert_eq!(st["database"], json!("ok"), "{st}");
    assert_eq!(st["postgres"], json!("ok"), "{st}");
    assert_eq!(st["tokens"]["active"], json!(2), "{st}");
    assert_eq!(st["tokens"]["revoked"], json!(1), "{st}");
    assert_eq!(st["tokens"]["expired"], json!(0), "{st}");
    for key in ["endpoint", "profile", "redis", "connections", "qps_5m"] {
        assert!(st.get(key).is_some(), "status lacks {key}: {st}");
    }
}

/// POSTs raw bytes to `/api/nfs/{method}` with a token.
async fn post_raw(app: &TestApp, token: Option<&str>, method: &str, body: &[u8]) -> (u16, Value) {
    let mut req = app
        .client
        .post(format!("{}/api/nfs/{method}", app.base))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, v)
}

#[tokio::test]
async fn json_rpc_protocol_errors() {
    let app = TestApp::spawn_with(
        Backend::Postgres,
        TestOptions {
            max_file_bytes: 16 * 1024,
            ..Default::default()
        },
    )
    .await;
    app.zone("eng").await;
    let t = app.mint("proto", Some("eng:rw"), false).await;
    let tok = Some(t.token.as_str());

    let cases: Vec<(&str, &[u8], i64)> = vec![
        ("read", b"{\"jsonrpc\":", -32700),
        ("read", b"not json at all", -32700),
        ("read", b"", -32700),
        ("read", b"[1, 2]", -32600),
        (
            "read",
            br#"[{"jsonrpc":"2.0","id":1,"method":"read","params":{"path":"/a"}}]"#,
            -32600,
        ),
        ("read", b"\"a string\"", -32600),
        ("read", b"42", -32600),
        (
            "read",
            br#"{"jsonrpc":"1.0","id":1,"method":"read","params":{"path":"/a"}}"#,
            -32600,
        ),
        (
            "read",
            br#"{"id":1,"method":"read","params":{"path":"/a"}}"#,
            -32600,
        ),
        (
            "read",
            br#"{"jsonrpc":2.0,"id":1,"method":"read","params":{"path":"/a"}}"#,
            -32600,
        ),
        (
            "read",
            br#"{"jsonrpc":"2.0","id":1,"method":"write","params":{"path":"/mismatch.txt","content":"x"}}"#,
            -32600,
        ),
        (
            "no_such_method",
            br#"{"jsonrpc":"2.0","id":1,"method":"no_such_method","params":{}}"#,
            -32601,
        ),
        (
            "read",
            br#"{"jsonrpc":"2.0","id":1,"method":"read","params":{"path":5}}"#,
            -32602,
        ),
        (
            "list",
            br#"{"jsonrpc":"2.0","id":1,"method":"list","params":{"path":"/","limit":"ten"}}"#,
            -32602,
        ),
        (
            "write",
            br#"{"jsonrpc":"2.0","id":1,"method":"write","params":{"path":"/x","content":["a"]}}"#,
            -32602,
        ),
        (
            "read",
            br#"{"jsonrpc":"2.0","id":1,"method":"read","params":{"path":"/a","bogus":1}}"#,
            -32602,
        ),
        (
            "whoami",
            br#"{"jsonrpc":"2.0","id":1,"method":"whoami","params":{"verbose":true}}"#,
            -32602,
        ),
        (
            "read",
            br#"{"jsonrpc":"2.0","id":1,"method":"read","params":["/a"]}"#,
            -32602,
        ),
        (
            "read",
            br#"{"jsonrpc":"2.0","id":1,"method":"read","params":{}}"#,
            -32602,
        ),
    ];
    for (method, body, want) in &cases {
        let (status, v) = post_raw(&app, tok, method, body).await;
        let shown = String::from_utf8_lossy(body);
        assert_eq!(status, 200, "{method} {shown}: {v}");
        assert_eq!(v["jsonrpc"], json!("2.0"), "{shown}: {v}");
        assert_eq!(v["error"]["code"], json!(want), "{method} {shown}: {v}");
        assert!(v.get("result").is_none(), "{v}");
    }
    // The method mismatch did not write anything.
    let r = app
        .rpc(&t.token, "stat", json!({"path": "/mismatch.txt"}))
        .await
        .expect("stat");
    assert_eq!(r["exists"], json!(false));

    // The request id is echoed, on success and on error.
    let (_, v) = post_raw(
        &app,
        tok,
        "whoami",
        br#"{"jsonrpc":"2.0","id":"req-7","params":{}}"#,
    )
    .await;
    assert_eq!(v["id"], json!("req-7"));
    assert!(v["result"].is_object(), "{v}");
    let (_, v) = post_raw(
        &app,
        tok,
        "nope",
        br#"{"jsonrpc":"2.0","id":99,"method":"nope"}"#,
    )
    .await;
    assert_eq!(v["id"], json!(99));
    assert_eq!(v["error"]["code"], json!(-32601));

    // Authentication comes before parsing: junk from an unauthenticated caller is a 401.
    let (status, v) = post_raw(&app, None, "read", b"{\"jsonrpc\":").await;
    assert_eq!(status, 401, "{v}");

    // A body over the limit (2 x 16 KiB + 64 KiB here): 413 with a JSON body.
    let content = "x".repeat(200 * 1024);
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "write",
        "params": {"path": "/big.txt", "content": content}})
    .to_string();
    let (status, v) = post_raw(&app, tok, "write", big.as_bytes()).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["code"], json!("payload_too_large"), "{v}");
    // The same without a Content-Length (chunked): still 413, as JSON.
    let (status, body) = chunked_post(&app, &t.token, "write", big.as_bytes()).await;
    assert_eq!(status, 413, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON 413 body");
    assert_eq!(v["error"]["code"], json!("payload_too_large"), "{v}");
    let r = app
        .rpc(&t.token, "stat", json!({"path": "/big.txt"}))
        .await
        .expect("stat");
    assert_eq!(r["exists"], json!(false));

    // Only POST: GET is 405 (with Allow: POST) and an unknown endpoint is 404, as JSON.
    let resp = app
        .client
        .get(format!("{}/api/nfs/read", app.base))
        .bearer_auth(&t.token)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(
        resp.headers()
            .get("allow")
            .map(|v| v.to_str().expect("ascii")),
        Some("POST")
    );
    let v: Value = resp.json().await.expect("JSON 405 body");
    assert_eq!(v["error"]["code"], json!("method_not_allowed"));
    let resp = app
        .client
        .post(format!("{}/api/other/read", app.base))
        .bearer_auth(&t.token)
        .send()
        .await
        .expect("POST elsewhere");
    assert_eq!(resp.status().as_u16(), 404);
}

/// Sends a chunked POST over a raw connection; returns the status and the (de-chunked,
/// if need be) response body.
async fn chunked_post(app: &TestApp, token: &str, method: &str, body: &[u8]) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let head = format!(
        "POST /api/nfs/{method} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("head");
    // Write in chunks; the server may answer (and stop reading) before the end.
    for chunk in body.chunks(16 * 1024) {
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(chunk);
        framed.extend_from_slice(b"\r\n");
        if s.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp).await;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("HTTP response");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .expect("status")
        .parse()
        .expect("numeric status");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((len, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(len.trim(), 16).expect("chunk length");
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        out
    } else {
        rest.to_owned()
    };
    (status, body)
}
