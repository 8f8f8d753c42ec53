//! Built-in TLS on both servers: a generated certificate, the rpc-server and the frontend
//! serving HTTPS, real calls through them with curl trusting that certificate, and plain
//! HTTP refused on the TLS ports.

use rpc_server::auth::InvalidationBus;
use rpc_server::db::Backend;
use rpc_server::testing::{TestDb, TestOptions};
use std::path::Path;
use std::process::Command;

fn tool(name: &str, version_arg: &str, package: &str) {
    let ok = Command::new(name)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`{name}` is needed for this test: apt-get install {package}"
    );
}

fn make_cert(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// curl over HTTPS trusting `ca`; returns (HTTP status, body).
fn curl(ca: &Path, url: &str, extra: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca)
        .args(extra)
        .arg(url)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "000"));
    (code.to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_servers_serve_https() {
    tool("openssl", "version", "openssl");
    tool("curl", "--version", "curl");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = make_cert(dir.path());

    let db = TestDb::new(Backend::Sqlite).await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut cfg = rpc_server::testing::config(&db.url, data.path(), &TestOptions::default());
    cfg.tls = Some((cert.clone(), key.clone()));
    let app = rpc_server::Application::build_with_bus(cfg, InvalidationBus::new())
        .await
        .expect("rpc-server with TLS");
    let rpc_port = app.port();
    let control = app.state().control.clone().expect("control plane");
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    control.create_zone("eng").await.expect("zone");
    let token = control
        .create_token(nexus_wire::methods::TokenCreateParams {
            name: "tls".into(),
            zone: Some("eng".into()),
            ..Default::default()
        })
        .await
        .expect("mint")
        .token;

    // A plain-HTTP rpc-server for the frontend's private hop, on the same database.
    let plain_dir = tempfile::tempdir().expect("tempdir");
    let plain = rpc_server::Application::build_with_bus(
        rpc_server::testing::config(&db.url, plain_dir.path(), &TestOptions::default()),
        InvalidationBus::new(),
    )
    .await
    .expect("plain rpc-server");
    let plain_url = format!("http://127.0.0.1:{}", plain.port());
    tokio::spawn(plain.run_until_stopped(std::future::pending()));
    let mut fe_cfg = mcp_frontend::FrontendConfig::local(&plain_url, 0);
    fe_cfg.tls = Some((cert.clone(), key.clone()));
    let fe = mcp_frontend::Frontend::build(fe_cfg)
        .await
        .expect("frontend with TLS");
    let fe_port = fe.port();
    tokio::spawn(fe.run_until_stopped(std::future::pending()));

    let ca = cert.clone();
    let token2 = token.clone();
    tokio::task::spawn_blocking(move || {
        let rpc = format!("https://127.0.0.1:{rpc_port}");
        let (code, body) = curl(&ca, &format!("{rpc}/health"), &[]);
        assert_eq!(code, "200", "{body}");
        let auth = format!("Authorization: Bearer {token2}");
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"write","params":{"path":"/tls.txt","content":"over tls"}}"#;
        let (code, body) = curl(&ca, &format!("{rpc}/api/nfs/write"), &["-H", &auth, "-d", call]);
        assert_eq!(code, "200", "{body}");
        assert!(body.contains("\"content_id\""), "{body}");
        // A refusal is sent before the body is read; over HTTP/2 that resets the upload, which
        // curl reports inconsistently, so the refusals are checked over HTTP/1.1.
        let (code, _) = curl(&ca, &format!("{rpc}/api/nfs/whoami"), &["--http1.1", "-d", "{}"]);
        assert_eq!(code, "401", "no token over TLS is still 401");

        let mcp = format!("https://localhost:{fe_port}");
        let (code, body) = curl(&ca, &format!("{mcp}/health"), &[]);
        assert_eq!(code, "200", "{body}");
        let (code, _) = curl(&ca, &format!("{mcp}/mcp"), &["--http1.1", "-X", "POST", "-d", "{}"]);
        assert_eq!(code, "401", "the bearer layer answers over TLS");

        // Plain HTTP on a TLS port gets no HTTP answer.
        for port in [rpc_port, fe_port] {
            let out = Command::new("curl")
                .args(["-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("http://127.0.0.1:{port}/health"))
                .output()
                .expect("run curl");
            assert_ne!(String::from_utf8_lossy(&out.stdout), "200", "port {port} answered plain HTTP");
        }
        // An untrusted certificate is refused by a verifying client.
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("https://127.0.0.1:{rpc_port}/health"))
            .output()
            .expect("run curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "000");
    })
    .await
    .expect("curl checks");
    assert_eq!(
        rpc_server::testing::stored_file(&db.store, data.path(), "eng", "tls.txt")
            .await
            .as_deref(),
        Some(&b"over tls"[..])
    );
}
