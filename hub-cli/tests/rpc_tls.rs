//! TLS on the internal hop, frontend → nexusd (SPEC §12): certificates from a CA made in
//! the test, nexusd serving HTTPS in this process, and `nexus mcp serve` processes with an
//! https:// `--url`. An MCP `tools/call` goes through; a frontend that does not trust the
//! server's CA gets a 503 and says why in its log; nexusd with `--tls-client-ca` takes only
//! frontends presenting a certificate from that CA; bad settings stop startup, naming the
//! variable.

use crate::common;

use common::mcp::{bearer, message, post, send, stateless_call_body};
use common::procs::{Proc, free_port, mcp_serve_cmd, run_nexus, wait_healthy};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rpc_server::auth::InvalidationBus;
use rpc_server::db::Backend;
use rpc_server::testing::{TestDb, TestOptions};
use serde_json::json;
use std::path::{Path, PathBuf};

/// A certificate authority of the test, its certificate written to `<dir>/<name>-ca.pem`.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("ca key");
        let cert = p.self_signed(&key).expect("ca cert");
        let pem = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&pem, cert.pem()).expect("write ca");
        Self {
            issuer: Issuer::new(p, key),
            pem,
        }
    }

    /// A leaf certificate for `names`, for a server or a client; returns (cert, key) files.
    fn issue(&self, dir: &Path, file: &str, names: &[&str], client: bool) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut p = CertificateParams::new(names).expect("leaf params");
        p.distinguished_name.push(DnType::CommonName, file);
        p.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().expect("leaf key");
        let cert = p.signed_by(&key, &self.issuer).expect("sign leaf");
        let (c, k) = (
            dir.join(format!("{file}.pem")),
            dir.join(format!("{file}-key.pem")),
        );
        std::fs::write(&c, cert.pem()).expect("write cert");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        (c, k)
    }
}

/// Everything the tests need: two CAs, a server certificate for 127.0.0.1 and localhost
/// from `hub`, a client certificate from each CA.
struct Pki {
    dir: tempfile::TempDir,
    hub: Ca,
    other: Ca,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
    stranger: (PathBuf, PathBuf),
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Ca::new(dir.path(), "hub");
    let other = Ca::new(dir.path(), "other");
    let server = hub.issue(dir.path(), "nexusd", &["127.0.0.1", "localhost"], false);
    let client = hub.issue(dir.path(), "frontend", &["frontend.internal"], true);
    let stranger = other.issue(dir.path(), "stranger", &["frontend.internal"], true);
    Pki {
        dir,
        hub,
        other,
        server,
        client,
        stranger,
    }
}

/// nexusd on HTTPS (client certificates required from `client_ca`, if given), with zone
/// `eng` and a token for it. Returns its https:// base URL, the token, and what must live
/// as long as it does.
async fn nexusd(
    pki: &Pki,
    client_ca: Option<&Path>,
) -> (String, String, (TestDb, tempfile::TempDir)) {
    let db = TestDb::new(Backend::Sqlite).await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut cfg = rpc_server::testing::config(&db.url, data.path(), &TestOptions::default());
    cfg.tls = Some(pki.server.clone());
    cfg.tls_client_ca = client_ca.map(Path::to_path_buf);
    let app = rpc_server::Application::build_with_bus(cfg, InvalidationBus::new())
        .await
        .expect("nexusd with TLS");
    let base = format!("https://127.0.0.1:{}", app.port());
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
    (base, token, (db, data))
}

/// `nexus mcp serve --url <rpc>` with `flags`, once it listens (its /health may say the
/// rpc-server is unreachable: that is what some tests look at). Returns it and its /mcp URL.
async fn frontend(pki: &Pki, name: &'static str, rpc: &str, flags: &[&Path]) -> (Proc, String) {
    let port = free_port();
    let mut cmd = mcp_serve_cmd(rpc, port);
    cmd.env("NEXUS_MCP_ALLOWED_HOSTS", "127.0.0.1")
        .env("NEXUS_AUDIT_STDOUT", "false");
    for pair in flags.chunks(2) {
        cmd.arg(pair[0]).arg(pair[1]);
    }
    let mut p = Proc::spawn(name, cmd, pki.dir.path());
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&format!("{base}/metrics"), &mut p).await;
    (p, format!("{base}/mcp"))
}

/// What a `tools/call` came to: the JSON-RPC message of a 200, or the status and body of
/// anything else.
#[derive(Debug)]
enum Outcome {
    Answer(serde_json::Value),
    Refused(u16, String),
}

/// A stateless `tools/call` of `nexus_write_file`.
async fn write(mcp: &str, token: &str, path: &str) -> Outcome {
    let body = stateless_call_body(
        "tls-test",
        "nexus_write_file",
        json!({"path": path, "content": "over the internal TLS hop"}),
    );
    let resp = send(post(mcp, Some(&bearer(token)), &body)).await;
    match resp.status().as_u16() {
        200 => Outcome::Answer(message(resp).await),
        s => Outcome::Refused(s, resp.text().await.unwrap_or_default()),
    }
}

fn assert_written(what: &str, o: &Outcome) {
    let Outcome::Answer(msg) = o else {
        panic!("{what}: {o:?}")
    };
    assert_eq!(msg["result"]["isError"], json!(false), "{what}: {msg}");
}

/// Refused at the gateway with 503 "retry shortly": not a hang, not a 500.
fn assert_unavailable(what: &str, o: &Outcome) {
    let Outcome::Refused(503, body) = o else {
        panic!("{what}: {o:?}")
    };
    assert!(body.contains("retry shortly"), "{what}: {body}");
}

/// The log says `needle` and quotes no PEM.
fn assert_logged(p: &Proc, needle: &str) {
    let log = p.log_text();
    assert!(
        log.contains(needle),
        "{} log lacks {needle:?}:\n{log}",
        p.name
    );
    assert!(
        !log.contains("BEGIN"),
        "{} log quotes a PEM:\n{log}",
        p.name
    );
}

fn flag(s: &'static str) -> &'static Path {
    Path::new(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_call_over_tls_and_a_wrong_ca_is_a_clear_503() {
    let pki = pki();
    let (rpc, token, _db) = nexusd(&pki, None).await;

    let (fe, mcp) = frontend(&pki, "trusting", &rpc, &[flag("--rpc-ca"), &pki.hub.pem]).await;
    assert_written("through TLS", &write(&mcp, &token, "/tls.md").await);
    let health = common::http()
        .get(mcp.replace("/mcp", "/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(
        health.status().as_u16(),
        200,
        "the rpc-server is reachable over TLS"
    );
    let read = stateless_call_body("tls-test", "nexus_read_file", json!({"path": "/tls.md"}));
    let msg = message(send(post(&mcp, Some(&bearer(&token)), &read)).await).await;
    assert!(
        msg.to_string().contains("over the internal TLS hop"),
        "{msg}"
    );
    drop(fe);

    // Trusting only another CA: the server's certificate does not verify.
    let (fe, mcp) = frontend(
        &pki,
        "distrusting",
        &rpc,
        &[flag("--rpc-ca"), &pki.other.pem],
    )
    .await;
    assert_unavailable("wrong CA", &write(&mcp, &token, "/no.md").await);
    assert_logged(
        &fe,
        "TLS verification of the rpc-server's certificate failed",
    );
    assert_logged(&fe, "UnknownIssuer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexusd_with_a_client_ca_takes_only_certificates_from_it() {
    let pki = pki();
    let (rpc, token, _db) = nexusd(&pki, Some(&pki.hub.pem)).await;
    let ca = [flag("--rpc-ca"), pki.hub.pem.as_path()];

    let (fe, mcp) = frontend(&pki, "no-cert", &rpc, &ca).await;
    assert_unavailable("no client certificate", &write(&mcp, &token, "/a.md").await);
    assert_logged(&fe, "the rpc-server refused the TLS connection");
    drop(fe);

    let (cert, key) = &pki.stranger;
    let flags = [
        ca[0],
        ca[1],
        flag("--rpc-cert"),
        cert,
        flag("--rpc-key"),
        key,
    ];
    let (fe, mcp) = frontend(&pki, "stranger", &rpc, &flags).await;
    assert_unavailable(
        "a certificate from another CA",
        &write(&mcp, &token, "/b.md").await,
    );
    assert_logged(&fe, "the rpc-server refused the TLS connection");
    drop(fe);

    let (cert, key) = &pki.client;
    let flags = [
        ca[0],
        ca[1],
        flag("--rpc-cert"),
        cert,
        flag("--rpc-key"),
        key,
    ];
    let (_fe, mcp) = frontend(&pki, "member", &rpc, &flags).await;
    assert_written(
        "the hub's client certificate",
        &write(&mcp, &token, "/c.md").await,
    );
}

/// `nexus mcp serve` with `args`: it must exit with an error saying `needle` (and no PEM).
async fn refuses_to_start(args: &[&str], needle: &str) {
    let mut argv = vec!["mcp", "serve", "--port", "0"];
    argv.extend_from_slice(args);
    let (code, _, err) = run_nexus(&argv, &[]).await;
    assert_ne!(code, 0, "{args:?} started");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(!err.contains("BEGIN"), "{args:?} quotes a PEM: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_settings_stop_startup_naming_the_variable() {
    let pki = pki();
    let s = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    let (cert, key) = (s(&pki.client.0), s(&pki.client.1));
    let ca = s(&pki.hub.pem);
    let url = "https://127.0.0.1:1";

    refuses_to_start(&["--url", url, "--rpc-cert", &cert], "NEXUS_MCP_RPC_KEY").await;
    refuses_to_start(&["--url", url, "--rpc-key", &key], "NEXUS_MCP_RPC_CERT").await;
    let missing = s(&pki.dir.path().join("missing.pem"));
    refuses_to_start(&["--url", url, "--rpc-ca", &missing], "NEXUS_MCP_RPC_CA").await;
    // A key where the CA bundle should be: named, not quoted.
    refuses_to_start(&["--url", url, "--rpc-ca", &key], "NEXUS_MCP_RPC_CA").await;
    // A certificate where its key should be.
    refuses_to_start(
        &["--url", url, "--rpc-cert", &cert, "--rpc-key", &cert],
        "NEXUS_MCP_RPC_KEY",
    )
    .await;
    // TLS settings with a plain URL are a mistake, not something to ignore.
    refuses_to_start(
        &["--url", "http://127.0.0.1:1", "--rpc-ca", &ca],
        "NEXUS_MCP_RPC_CA",
    )
    .await;

    // nexusd: an unreadable client CA stops it too.
    let db = TestDb::new(Backend::Sqlite).await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut cfg = rpc_server::testing::config(&db.url, data.path(), &TestOptions::default());
    cfg.tls = Some(pki.server.clone());
    cfg.tls_client_ca = Some(pki.dir.path().join("missing.pem"));
    let err = rpc_server::Application::build_with_bus(cfg, InvalidationBus::new())
        .await
        .expect_err("an unreadable client CA must stop nexusd");
    assert!(
        format!("{err:#}").contains("NEXUS_TLS_CLIENT_CA"),
        "{err:#}"
    );
    // And its flag without TLS at all.
    let data = s(data.path());
    let argv = [
        "serve",
        "--api-key",
        "k",
        "--port",
        "0",
        "--data-dir",
        &data,
    ];
    let (code, _, err) = run_nexus(&[&argv[..], &["--tls-client-ca", &ca]].concat(), &[]).await;
    assert_ne!(code, 0, "--tls-client-ca without TLS started");
    assert!(err.contains("NEXUS_TLS_CLIENT_CA"), "{err}");
}

/// `nexus hub config check` shows the hop's TLS settings where they came from, and reads
/// the files as the frontend would: a bad one is the error, named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_shows_the_rpc_tls_settings() {
    use std::os::unix::fs::PermissionsExt;
    let pki = pki();
    let s = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    let (ca, cert, key) = (s(&pki.hub.pem), s(&pki.client.0), s(&pki.client.1));
    let file = pki.dir.path().join("nexus-hub.toml");
    let write_config = |ca: &str| {
        std::fs::write(
            &file,
            format!(
                "[rpc]\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_client_ca = \"{ca}\"\n\
                 [mcp]\nurl = \"https://nexusd:2026\"\nrpc_ca = \"{ca}\"\n\
                 rpc_cert = \"{cert}\"\nrpc_key = \"{key}\"\n",
                s(&pki.server.0),
                s(&pki.server.1),
            ),
        )
        .expect("write config");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    };
    let path = s(&file);
    let argv = ["--config", path.as_str(), "hub", "config", "check"];

    write_config(&ca);
    let (code, out, err) = run_nexus(&argv, &[]).await;
    assert_eq!(code, 0, "{err}");
    for line in [
        format!("tls_client_ca = {ca:?}  # file"),
        "url = \"https://nexusd:2026\"  # file".to_owned(),
        format!("rpc_ca = {ca:?}  # file"),
        format!("rpc_cert = {cert:?}  # file"),
        format!("rpc_key = {key:?}  # file"),
    ] {
        assert!(out.contains(&line), "{line}: {out}");
    }
    assert!(!out.contains("BEGIN"), "{out}");

    write_config(&s(&pki.dir.path().join("missing.pem")));
    let (code, _, err) = run_nexus(&argv, &[]).await;
    assert_ne!(code, 0, "a missing CA file passed the check");
    assert!(err.contains("NEXUS_MCP_RPC_CA"), "{err}");
}
