//! What each kind of credential costs to verify (SPEC §10), as one `whoami` through the
//! rpc-server's whole router in process (every layer, no socket):
//! - cache hits of a static key, a login token (local) and an OIDC access token, against
//!   the baseline of a database key's cache hit measured in the same run;
//! - cache misses (identity cache TTL 0): a database key (one indexed lookup), and a JWT,
//!   whose signature is checked before its session or subject is looked up;
//! - logins (argon2id with the crate's defaults): the cost of one, and the throughput the
//!   defaults allow with many at once (two hashes at a time, whatever the demand).
//!
//! Usage: auth_kinds [--quick]   (needs NEXUS_TEST_DATABASE_URL, see bench/run; the OIDC
//! figure needs node and `npm ci --prefix tests/oidc`, and is skipped without them)

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use nexus_bench::{Sample, measure, report, summarize};
use nexus_providers::config::{AuthFile, AuthType, StaticConfig, StaticKey};
use rpc_server::auth::local::LocalSettings;
use rpc_server::config::AuthChain;
use rpc_server::db::Backend;
use rpc_server::testing::idp::{Idp, idp_available};
use rpc_server::testing::{TestApp, TestOptions, sha256_hex};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const ROOT_PASSWORD: &str = "bench-root-password-0123456789";
const STATIC_KEY: &str = "sk-bench-static-key-0123456789abcdef";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (hits, misses, logins) = if quick {
        (5_000, 500, 12)
    } else {
        (50_000, 5_000, 60)
    };
    let dir = tempfile::tempdir()?;
    let idp = if idp_available() {
        Some(Idp::fresh(&dir, "bench", &[]).await)
    } else {
        eprintln!("auth_kinds: node or tests/oidc/node_modules missing: no OIDC figures");
        None
    };

    let cached = server(&dir, idp.as_ref(), Duration::from_secs(3600)).await?;
    let uncached = server(&dir, idp.as_ref(), Duration::ZERO).await?;
    let db_key = cached.mint("bench", Some("eng:rw"), false).await.token;
    let db_key_miss = uncached.mint("bench", Some("eng:rw"), false).await.token;
    let jwt = login(&cached, 0).await;
    let jwt_miss = login(&uncached, 0).await;
    let oidc = match &idp {
        Some(i) => Some(i.token("hub-test").await),
        None => None,
    };

    println!("-- cache hits (identity cache on)");
    let base = whoami_loop(&cached, "database key, cache hit", &db_key, hits).await;
    let mut rows = vec![
        whoami_loop(&cached, "static key, cache hit", STATIC_KEY, hits).await,
        whoami_loop(&cached, "login token (local), cache hit", &jwt, hits).await,
    ];
    if let Some(t) = &oidc {
        rows.push(whoami_loop(&cached, "OIDC access token, cache hit", t, hits).await);
    }
    report(&base, &rows.iter().collect::<Vec<_>>());

    println!("\n-- cache misses (identity cache TTL 0)");
    let base = whoami_loop(&uncached, "database key, cache miss", &db_key_miss, misses).await;
    let mut rows = vec![
        whoami_loop(
            &uncached,
            "login token (local), cache miss",
            &jwt_miss,
            misses,
        )
        .await,
    ];
    if let Some(t) = &oidc {
        rows.push(whoami_loop(&uncached, "OIDC access token, cache miss", t, misses).await);
    }
    report(&base, &rows.iter().collect::<Vec<_>>());

    println!("\n-- logins (argon2id, crate defaults: 19 MiB, t=2, p=1)");
    let one = measure("login, one at a time", 2, logins, || async {
        login(&cached, rand_addr()).await;
    })
    .await;
    let burst = concurrent_logins(&cached, logins * 2, 8).await;
    report(&one, &[&burst]);
    let per_sec = |s: &Sample| 1.0 / s.mean.as_secs_f64();
    println!(
        "login throughput: {:.1}/s one at a time, {:.1}/s with 8 at once ({} cores)",
        per_sec(&one),
        per_sec(&burst),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    Ok(())
}

/// A hub whose chain holds every provider: database keys, the static key, the local issuer
/// (root logs in) and, when an IdP runs, its OIDC tokens.
async fn server(
    dir: &tempfile::TempDir,
    idp: Option<&Idp>,
    cache_ttl: Duration,
) -> anyhow::Result<TestApp> {
    let mut types = vec![AuthType::Database, AuthType::Static, AuthType::Local];
    let mut file = AuthFile {
        static_keys: Some(StaticConfig {
            api_keys: [(
                format!("sha256:{}", sha256_hex(STATIC_KEY.as_bytes())),
                StaticKey {
                    user_id: "bench-static".into(),
                    tenant_id: None,
                    is_admin: false,
                    metadata: None,
                    subject_type: None,
                    zones: Some(nexus_providers::config::ZonesSpec::Text("eng:rw".into())),
                    permissions: None,
                    expires_at: None,
                    rate_limit: None,
                },
            )]
            .into(),
        }),
        ..Default::default()
    };
    if let Some(i) = idp {
        types.push(AuthType::Oidc);
        file.oidc = Some(i.config());
    }
    // The static provider reads its keys from a file (mode 0600), as in production.
    let path = dir
        .path()
        .join(format!("auth-{}.yaml", cache_ttl.as_secs()));
    write_auth_file(&path, &file)?;
    let chain = AuthChain {
        types: types.clone(),
        file: AuthFile::from_yaml(&std::fs::read_to_string(&path)?, &types)?,
        path: Some(path),
        local: LocalSettings {
            root_password: Some(SecretString::from(ROOT_PASSWORD.to_owned())),
            ..Default::default()
        },
        ..Default::default()
    };
    let app = TestApp::spawn_with(
        Backend::Postgres,
        TestOptions {
            auth_cache_ttl: cache_ttl,
            auth_chain: chain,
            ..TestOptions::unthrottled()
        },
    )
    .await;
    app.zone("eng").await;
    Ok(app)
}

fn write_auth_file(path: &std::path::Path, file: &AuthFile) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut text = String::from("static:\n  api_keys:\n");
    for (k, v) in &file.static_keys.as_ref().expect("static").api_keys {
        let zones = v.zones.as_ref().map(|z| z.to_cli()).unwrap_or_default();
        text += &format!(
            "    \"{k}\": {{user_id: {}, zones: \"{zones}\"}}\n",
            v.user_id
        );
    }
    if let Some(o) = &file.oidc {
        text += &format!(
            "oidc:\n  issuer: \"{}\"\n  audience: {}\n",
            o.issuer,
            serde_json::to_string(&o.audience.to_vec())?
        );
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// One `whoami` through the router, in process.
async fn whoami(app: &TestApp, token: &str) -> StatusCode {
    let req = Request::post(nexus_wire::rpc_path(nexus_wire::Method::Whoami))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"jsonrpc":"2.0","id":1,"method":"whoami","params":{}}"#,
        ))
        .expect("request");
    app.oneshot(req).await.0
}

async fn whoami_loop(app: &TestApp, name: &str, token: &str, iters: usize) -> Sample {
    assert_eq!(whoami(app, token).await, StatusCode::OK, "{name}: refused");
    measure(name, iters / 10 + 1, iters, || async {
        assert_eq!(whoami(app, token).await, StatusCode::OK);
    })
    .await
}

/// Root's login token, the request as if from `127.0.0.<addr>` (the login throttle is per
/// address and username; the address is only a value here, nothing is sent to it).
async fn login(app: &TestApp, addr: u8) -> String {
    let mut req = Request::post("/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"username": "root", "password": ROOT_PASSWORD}).to_string(),
        ))
        .expect("request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 1, addr], 40000))));
    let (status, _, body) = app.oneshot(req).await;
    assert_eq!(status, StatusCode::OK, "login: {body:?}");
    let v: Value = serde_json::from_slice(&body).expect("json");
    v["token"].as_str().expect("token").to_owned()
}

/// A fresh address for each login of a loop, so the per-address throttle never bites.
fn rand_addr() -> u8 {
    use std::sync::atomic::{AtomicU8, Ordering};
    static NEXT: AtomicU8 = AtomicU8::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `total` logins, `at_once` in flight; the sample's mean is wall time per login.
async fn concurrent_logins(app: &TestApp, total: usize, at_once: usize) -> Sample {
    let start = Instant::now();
    let mut times = Vec::with_capacity(total);
    let mut next = 0;
    while next < total {
        let n = at_once.min(total - next);
        let batch = (0..n).map(|_| async move {
            let t = Instant::now();
            login(app, rand_addr()).await;
            t.elapsed()
        });
        times.extend(futures_util::future::join_all(batch).await);
        next += n;
    }
    // Its mean is the wall time over the count: one over the throughput.
    summarize("login, 8 at once (latency each)", times, start.elapsed())
}
