//! Client ID Metadata Documents end to end (SPEC §11): an https `client_id` whose document a
//! test server serves on 127.0.0.1 under a CA of the test signs a user in through the whole
//! flow; the SSRF guard refuses loopback, link-local and `localhost` targets, plain http,
//! redirects (to the cloud metadata address and to loopback), oversized and endless
//! documents, a server that stalls, and documents that lie about themselves; documents and
//! refusals are kept (the test server counts its requests); a revoked client stays refused
//! while its document is still served.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rpc_server::config::{CimdSettings, OAuthSettings};
use rpc_server::db::Backend;
use rpc_server::testing::TestDb;
use rpc_server::testing::oauth::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A CA of the test (its certificate in a file, for `NEXUS_OAUTH_CIMD_CA_FILE`) and a
/// server certificate from it for 127.0.0.1 and localhost.
struct Pki {
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
    server: Arc<rustls::ServerConfig>,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "metadata documents test CA");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("ca key");
    let ca = p.self_signed(&ca_key).expect("ca cert");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write ca");
    let issuer = Issuer::new(p, ca_key);
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("leaf params");
    let key = KeyPair::generate().expect("leaf key");
    let cert = leaf.signed_by(&key, &issuer).expect("sign leaf");
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key"),
    )
    .expect("server config");
    Pki {
        _dir: dir,
        ca_file,
        server: Arc::new(server),
    }
}

/// An https server of client metadata documents on 127.0.0.1, good and hostile by path;
/// it counts the requests per path and the bytes of the endless document it sent.
struct DocServer {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    endless_sent: Arc<AtomicU64>,
}

const HUGE_BYTES: u64 = 100 * 1024 * 1024;

impl DocServer {
    async fn start(tls: Arc<rustls::ServerConfig>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let endless_sent = Arc::new(AtomicU64::new(0));
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let (h, e) = (hits.clone(), endless_sent.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, h, e) = (acceptor.clone(), h.clone(), e.clone());
                tokio::spawn(async move {
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let _ =
                        tokio::time::timeout(Duration::from_secs(15), serve_one(tls, port, &h, &e))
                            .await;
                });
            }
        });
        Self {
            port,
            hits,
            endless_sent,
        }
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.port)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("hits")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    fn total_hits(&self) -> usize {
        self.hits.lock().expect("hits").values().sum()
    }
}

fn document(client_id: &str, name: &str) -> String {
    json!({
        "client_id": client_id,
        "client_name": name,
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
    .to_string()
}

async fn serve_one<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    port: u16,
    hits: &Mutex<HashMap<String, usize>>,
    endless_sent: &AtomicU64,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 8192 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    *hits.lock().expect("hits").entry(path.clone()).or_default() += 1;
    let host_header = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("host: ")
                .or_else(|| l.strip_prefix("Host: "))
        })
        .unwrap_or_default()
        .trim()
        .to_owned();
    let me = format!("https://{host_header}{path}");
    let reply = |status: &str, ctype: &str, extra: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
            body.len()
        )
    };
    let out = match path.as_str() {
        "/client.json" | "/revoked.json" => reply(
            "200 OK",
            "application/json",
            "cache-control: max-age=600\r\n",
            &document(&me, "Metadata Client"),
        ),
        "/redirect-metadata.json" => reply(
            "302 Found",
            "text/plain",
            "location: http://169.254.169.254/latest/meta-data/\r\n",
            "",
        ),
        "/redirect-loopback.json" => reply(
            "307 Temporary Redirect",
            "text/plain",
            &format!("location: https://127.0.0.1:{port}/client.json\r\n"),
            "",
        ),
        "/big.json" => {
            // A valid document padded to 6 KiB.
            let doc = json!({
                "client_id": me, "client_name": "Big", "redirect_uris": [REDIRECT],
                "client_uri": "x".repeat(6 * 1024),
            });
            reply("200 OK", "application/json", "", &doc.to_string())
        }
        "/mismatch.json" => reply(
            "200 OK",
            "application/json",
            "",
            &document(&format!("https://127.0.0.1:{port}/client.json"), "Liar"),
        ),
        "/html.json" => reply("200 OK", "text/html", "", "<html><body>hello</body></html>"),
        "/notjson.json" => reply("200 OK", "application/json", "", "{ this is not json"),
        "/secret.json" => {
            let mut doc: serde_json::Value =
                serde_json::from_str(&document(&me, "Confidential")).expect("doc");
            doc["client_secret"] = json!("s3cret");
            reply("200 OK", "application/json", "", &doc.to_string())
        }
        "/huge.json" => {
            // 100 MB, chunked (no length announced), written until the reader hangs up.
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = format!("4000\r\n{}\r\n", " ".repeat(0x4000));
            let mut sent = 0u64;
            while sent < HUGE_BYTES {
                if s.write_all(chunk.as_bytes()).await.is_err() || s.flush().await.is_err() {
                    break;
                }
                sent += 0x4000;
                endless_sent.store(sent, Ordering::Relaxed);
            }
            return;
        }
        "/stall.json" => {
            // Headers, then nothing for longer than the hub waits.
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 200\r\nconnection: close\r\n\r\n{";
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.flush().await;
            tokio::time::sleep(Duration::from_secs(10)).await;
            return;
        }
        _ => reply("404 Not Found", "text/plain", "", "no"),
    };
    let _ = s.write_all(out.as_bytes()).await;
    let _ = s.flush().await;
    let _ = s.shutdown().await;
}

fn settings(ca: &std::path::Path, allow_private: bool) -> OAuthSettings {
    let mut o = OAuthSettings::new(ISSUER, true).expect("issuer");
    o.cimd = CimdSettings {
        enabled: true,
        allow_hosts: Vec::new(),
        allow_private,
        ca_file: Some(ca.to_path_buf()),
    };
    o
}

/// `/oauth/authorize` for `client` with the test redirect URI: the refusal page.
async fn refused(base: &str, client: &str) -> Answer {
    let a = authorize(base, &authorize_query(client, REDIRECT, &[]), None).await;
    assert!(
        a.header("location").is_empty(),
        "{client}: never a redirect"
    );
    a
}

fn assert_page(a: &Answer, status: u16, words: &str, what: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.body);
    assert!(
        a.body.contains(words),
        "{what}: {words:?} not in {}",
        a.body
    );
}

#[tokio::test]
async fn a_metadata_document_client_signs_in_end_to_end_and_is_kept() {
    let pki = pki();
    let docs = DocServer::start(pki.server.clone()).await;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDb::new(backend).await;
        let h = hub_with(&db, settings(&pki.ca_file, true)).await;
        let base = &h.base;
        let meta: serde_json::Value = http()
            .get(format!("{base}/.well-known/oauth-authorization-server"))
            .send()
            .await
            .expect("metadata")
            .json()
            .await
            .expect("json");
        assert_eq!(meta["client_id_metadata_document_supported"], true);

        let client = docs.url("localhost", "/client.json");
        let before = docs.hits("/client.json");
        let (cookie, consent) = to_consent(base, &client, "alice", ALICE_PW, None).await;
        assert!(
            consent.body.contains("Metadata Client"),
            "the document's name on the consent page"
        );
        let back = decide(base, &cookie, &consent, EVERYTHING).await;
        assert_eq!(back.status, 303, "{}", back.body);
        let code = back.param("code").expect("code");
        let (s, t) = redeem(base, &client, &code).await;
        assert_eq!(s, 200, "{t}");
        let access = t["access_token"].as_str().expect("access").to_owned();
        let who = rpc(base, &access, "whoami", json!({}))
            .await
            .expect("whoami");
        assert_eq!(who["user_id"], "alice");
        // authorize, login, consent and token: one fetch, the rest from the cache.
        assert_eq!(docs.hits("/client.json") - before, 1);
        let again = authorize(base, &authorize_query(&client, REDIRECT, &[]), None).await;
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(
            docs.hits("/client.json") - before,
            1,
            "kept, not fetched again"
        );

        // A refresh rotates for it as for a registered client.
        let (s, r) =
            refresh_grant(base, &client, t["refresh_token"].as_str().expect("refresh")).await;
        assert_eq!(s, 200, "{r}");

        // Listed as a metadata-document client, its token bound to the URL.
        let clients = h
            .control
            .store()
            .oauth_clients(chrono::Utc::now())
            .await
            .expect("clients");
        let (row, live) = clients
            .iter()
            .find(|(c, _)| c.client_id == client)
            .expect("the client is listed");
        assert_eq!(row.kind, "cimd");
        assert_eq!(row.client_name, "Metadata Client");
        assert_eq!(row.redirect_uri_list(), vec![REDIRECT.to_owned()]);
        assert!(*live >= 1, "live tokens: {live}");
        // `hub token list` shows the tokens with the URL as their client.
        let listed = h.control.list_tokens(false).await.expect("tokens");
        assert!(
            listed
                .iter()
                .any(|t| t.oauth_client.as_deref() == Some(client.as_str())),
            "an oauth token of {client}"
        );

        // A redirect URI the document does not list is refused, on the page.
        let other = authorize(
            base,
            &authorize_query(&client, "http://127.0.0.1:33418/elsewhere", &[]),
            None,
        )
        .await;
        assert_page(
            &other,
            400,
            "not one this application registered",
            "other redirect",
        );
        assert!(other.header("location").is_empty());
    }
}

#[tokio::test]
async fn private_and_link_local_targets_and_plain_http_are_refused() {
    let pki = pki();
    let docs = DocServer::start(pki.server.clone()).await;
    let db = TestDb::new(Backend::Sqlite).await;
    let h = hub_with(&db, settings(&pki.ca_file, false)).await;
    let base = &h.base;
    let p = docs.port;
    for (client, words) in [
        (docs.url("127.0.0.1", "/client.json"), "a loopback address"),
        (
            "https://169.254.169.254/latest/client.json".to_owned(),
            "link-local (cloud metadata)",
        ),
        (docs.url("localhost", "/client.json"), "a loopback address"),
        (docs.url("[::1]", "/client.json"), "a loopback address"),
        (
            docs.url("[::ffff:7f00:1]", "/client.json"),
            "a loopback address",
        ),
        (
            "https://[::ffff:a9fe:a9fe]/client.json".to_owned(),
            "link-local",
        ),
        (
            "https://10.0.0.8/client.json".to_owned(),
            "private (RFC 1918)",
        ),
        ("https://0.0.0.0/client.json".to_owned(), "unspecified"),
        (format!("http://127.0.0.1:{p}/client.json"), "must be https"),
        (format!("https://127.0.0.1:{p}/"), "has a path"),
        (
            format!("https://127.0.0.1:{p}/a/../client.json"),
            "no . or .. path segments",
        ),
        (
            format!("https://u:pw@127.0.0.1:{p}/client.json"),
            "no user info",
        ),
    ] {
        let a = refused(base, &client).await;
        assert_page(&a, 400, words, &client);
    }
    assert_eq!(docs.total_hits(), 0, "nothing was fetched");
}

#[tokio::test]
async fn hostile_documents_and_servers_are_refused_and_refusals_are_kept() {
    let pki = pki();
    let docs = DocServer::start(pki.server.clone()).await;
    let db = TestDb::new(Backend::Postgres).await;
    let h = hub_with(&db, settings(&pki.ca_file, true)).await;
    let base = &h.base;
    for (path, words) in [
        ("/redirect-metadata.json", "redirects are not followed"),
        ("/redirect-loopback.json", "redirects are not followed"),
        ("/big.json", "larger than 5 KiB"),
        ("/huge.json", "larger than 5 KiB"),
        ("/stall.json", "did not arrive within 3 s"),
        ("/mismatch.json", "differs from its URL"),
        ("/html.json", "not served as JSON"),
        ("/notjson.json", "is not JSON"),
        ("/secret.json", "no client_secret"),
        ("/missing.json", "answered HTTP 404"),
    ] {
        let client = docs.url("127.0.0.1", path);
        let a = refused(base, &client).await;
        assert_page(&a, 400, words, path);
        assert_eq!(docs.hits(path), 1, "{path}");
    }
    // Only what was needed of the endless document was read.
    assert!(
        docs.endless_sent.load(Ordering::Relaxed) < HUGE_BYTES,
        "the 100 MB document was read to its end"
    );
    // Redirects were not followed: the loopback target was never asked for.
    assert_eq!(docs.hits("/client.json"), 0);

    // Refusals are kept: asked again, nothing is fetched, and the page says the same.
    for (path, words) in [
        ("/notjson.json", "is not JSON"),
        ("/mismatch.json", "differs from its URL"),
        ("/stall.json", "did not arrive within 3 s"),
    ] {
        let a = refused(base, &docs.url("127.0.0.1", path)).await;
        assert_page(&a, 400, words, path);
        assert_eq!(docs.hits(path), 1, "{path} not fetched again");
    }
}

#[tokio::test]
async fn a_revoked_metadata_client_stays_refused_while_its_document_is_served() {
    let pki = pki();
    let docs = DocServer::start(pki.server.clone()).await;
    let db = TestDb::new(Backend::Postgres).await;
    let h = hub_with(&db, settings(&pki.ca_file, true)).await;
    let base = &h.base;
    let client = docs.url("127.0.0.1", "/revoked.json");
    let code = code_for(base, &client, EVERYTHING).await;
    let (s, t) = redeem(base, &client, &code).await;
    assert_eq!(s, 200, "{t}");
    let access = t["access_token"].as_str().expect("access").to_owned();
    let refresh = t["refresh_token"].as_str().expect("refresh").to_owned();
    let revoked = h
        .control
        .store()
        .oauth_revoke_client(&client, chrono::Utc::now())
        .await
        .expect("revoke");
    h.control.publish_tokens(&revoked);
    assert_eq!(rpc(base, &access, "whoami", json!({})).await, Err(401));
    let fetched = docs.hits("/revoked.json");
    let a = refused(base, &client).await;
    assert_page(&a, 400, "revoked", "revoked client");
    let (s, _) = refresh_grant(base, &client, &refresh).await;
    assert_eq!(s, 400);
    // The document is still served; a fresh fetch could not revive the client.
    assert_eq!(
        docs.hits("/revoked.json"),
        fetched,
        "no fetch for a revoked client"
    );
    let row = h
        .control
        .store()
        .oauth_client(&client)
        .await
        .expect("row")
        .expect("kept");
    assert!(row.revoked_at.is_some());

    // A URL blocked before its first use (`oauth clients revoke <url>`) is never fetched.
    let unseen = docs.url("localhost", "/client.json");
    assert!(
        h.control
            .store()
            .oauth_block_client(&unseen, chrono::Utc::now())
            .await
            .expect("block")
    );
    assert!(
        !h.control
            .store()
            .oauth_block_client(&client, chrono::Utc::now())
            .await
            .expect("block"),
        "a known client is left to revocation"
    );
    let a = refused(base, &unseen).await;
    assert_page(&a, 400, "revoked", "blocked before use");
    assert_eq!(docs.hits("/client.json"), 0, "never fetched");
}

#[tokio::test]
async fn documents_can_be_turned_off_or_limited_to_listed_hosts() {
    let pki = pki();
    let docs = DocServer::start(pki.server.clone()).await;
    let db = TestDb::new(Backend::Sqlite).await;
    let mut off = settings(&pki.ca_file, true);
    off.cimd.enabled = false;
    let h = hub_with(&db, off).await;
    let meta: serde_json::Value = http()
        .get(format!("{}/.well-known/oauth-authorization-server", h.base))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert_eq!(meta["client_id_metadata_document_supported"], false);
    let a = refused(&h.base, &docs.url("127.0.0.1", "/client.json")).await;
    assert_page(&a, 400, "not registered", "off");

    let db = TestDb::new(Backend::Sqlite).await;
    let mut listed = settings(&pki.ca_file, true);
    listed.cimd.allow_hosts = vec!["*.clients.example".into(), "app.example".into()];
    let h = hub_with(&db, listed).await;
    let a = refused(&h.base, &docs.url("127.0.0.1", "/client.json")).await;
    assert_page(
        &a,
        400,
        "does not accept clients from 127.0.0.1",
        "not listed",
    );
    assert_eq!(docs.total_hits(), 0, "nothing was fetched");
}

#[tokio::test]
async fn fetches_from_one_host_are_rate_limited() {
    let pki = pki();
    let docs = DocServer::start(pki.server.clone()).await;
    let db = TestDb::new(Backend::Sqlite).await;
    let h = hub_with(&db, settings(&pki.ca_file, true)).await;
    // Each new URL costs a fetch (a 404 here); past the host's budget the hub stops asking.
    let mut limited = None;
    for i in 0..40 {
        let a = refused(&h.base, &docs.url("127.0.0.1", &format!("/scan-{i}.json"))).await;
        if a.status == 503 {
            limited = Some(i);
            break;
        }
        assert_page(&a, 400, "answered HTTP 404", "a missing document");
    }
    let limited = limited.expect("the host's fetches were limited");
    assert_eq!(docs.total_hits(), limited, "no fetch once limited");
    // Another host is not held up by it.
    let a = refused(&h.base, &docs.url("localhost", "/scan-0.json")).await;
    assert_page(&a, 400, "answered HTTP 404", "another host");
}
