//! Postgres stops under load and comes back (SPEC §2, §4): the hub never calls a token
//! invalid because it cannot reach the database.
//!
//! An rpc-server with a short identity-cache TTL on a Postgres cluster of this test's own,
//! a frontend in front, and rmcp clients in both lifecycles calling tools with token A.
//! With Postgres stopped:
//! (a) A, cached before the outage, keeps working while its entry is within the TTL for
//!     what needs only its identity (`nexus_whoami`); its file calls, whose namespace is in
//!     the database, get "unavailable, retry" — never 401, never an internal error;
//! (b) B, minted before the outage but never used, gets HTTP 503 with `Retry-After`, never
//!     401, from the rpc-server and from the frontend (raw MCP requests and an rmcp client);
//! (c) once A's entry is past the TTL, A gets 503 too, and no call ever sees a 401;
//! (d) none of those failures lands in the negative cache;
//! (e) Postgres restarted on the same port: without restarting the hub, A, B and the
//!     running clients work again, a new token can be minted, and revocation takes effect.
//!
//! The shared test Postgres is never stopped.

use crate::common;
use crate::own_postgres;

use common::mcp::{bearer, initialize_body, post, send, stateless_call_body};
use common::redis::{frontend_config, get_text, metric_sum};
use common::{Client, Era, STEP, connect, http, is_error, spawn_frontend_from, text, try_call};
use own_postgres::OwnPostgres;
use rpc_server::auth::Invalidation;
use rpc_server::db::Store;
use rpc_server::testing::{TestApp, TestDb, TestOptions};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The identity-cache TTL of the drill: long enough that stopping Postgres fits inside it,
/// short enough to wait out.
const TTL: Duration = Duration::from_secs(5);
/// How long the pool may wait for a connection before the call fails with 503.
const ACQUIRE: Duration = Duration::from_secs(1);
/// Bound of every wait for a state change.
const WAIT: Duration = Duration::from_secs(20);

/// One tool call of a load client.
#[derive(Debug, Clone)]
struct Sample {
    client: usize,
    /// A file call (its namespace is in the database) rather than `nexus_whoami`.
    file: bool,
    started: Instant,
    ended: Instant,
    /// `None` on success, else what the client saw.
    failure: Option<String>,
}

/// The whole error chain of a protocol error (rmcp nests the HTTP status inside).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// A failure that says "not now, retry" rather than "your token is bad".
fn is_unavailable(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    (m.contains("503") || m.contains("unavailable"))
        && !m.contains("401")
        && !m.contains("auth required")
        && !m.contains("unauthorized")
}

/// Calls tools with token A until told to stop, recording every outcome.
async fn load(c: Client, id: usize, stop: Arc<AtomicBool>, log: Arc<Mutex<Vec<Sample>>>) -> Client {
    for i in 0..10_000usize {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let path = format!("/load/{id}-{}.txt", i % 4);
        let started = Instant::now();
        // Identity alone (what the cache answers), and files (whose namespace is in the
        // database, so they need it: 503 while it is down, never 401).
        let file = i % 3 != 0;
        let r = match i % 3 {
            0 => try_call(&c, "nexus_whoami", json!({})).await,
            1 => {
                try_call(
                    &c,
                    "nexus_write_file",
                    json!({"path": path, "content": format!("client {id} call {i}")}),
                )
                .await
            }
            _ => try_call(&c, "nexus_file_info", json!({"path": path})).await,
        };
        let failure = match r {
            Ok(r) if is_error(&r) => Some(format!("isError: {}", text(&r))),
            Ok(_) => None,
            Err(e) => Some(format!("protocol error: {}", chain(&e))),
        };
        log.lock().expect("log").push(Sample {
            client: id,
            file,
            started,
            ended: Instant::now(),
            failure,
        });
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    c
}

/// What a direct rpc-server call answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

async fn rpc(app: &TestApp, token: &str, method: &str, params: Value) -> Answer {
    let started = Instant::now();
    let resp = tokio::time::timeout(
        STEP,
        http()
            .post(format!("{}/api/nfs/{method}", app.base))
            .bearer_auth(token)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .send(),
    )
    .await
    .unwrap_or_else(|_| panic!("{method} hung"))
    .unwrap_or_else(|e| panic!("{method}: {e}"));
    answer(resp, started).await
}

async fn answer(resp: reqwest::Response, started: Instant) -> Answer {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    Answer {
        status,
        retry_after,
        body,
        took: started.elapsed(),
    }
}

/// A raw MCP request to the frontend: a stateless `tools/call` (`nexus_whoami`) or a
/// legacy `initialize`.
async fn mcp(mcp_url: &str, token: &str, stateless: bool) -> Answer {
    let body = if stateless {
        stateless_call_body("postgres-down", "nexus_whoami", json!({}))
    } else {
        initialize_body("postgres-down")
    };
    let started = Instant::now();
    let resp = send(post(mcp_url, Some(&bearer(token)), &body)).await;
    answer(resp, started).await
}

/// The rpc-server's answer is a clean "unavailable, retry": 503, `Retry-After`, no 401.
#[track_caller]
fn assert_503(what: &str, a: &Answer) {
    assert_eq!(a.status, 503, "{what}: {a:?}");
    assert!(
        a.retry_after
            .as_deref()
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)),
        "{what}: Retry-After: {a:?}"
    );
    assert_eq!(a.body["error"]["code"], "unavailable", "{what}: {a:?}");
    let msg = a.body["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("retry"), "{what}: message {msg:?}");
}

async fn status(url: &str) -> u16 {
    tokio::time::timeout(STEP, http().get(url).send())
        .await
        .expect("GET hung")
        .expect("GET")
        .status()
        .as_u16()
}

/// Successes and failures of identity-only calls within [from, to].
fn summarize(samples: &[Sample], from: Instant, to: Instant) -> (usize, usize) {
    let window: Vec<&Sample> = samples
        .iter()
        .filter(|s| !s.file && s.started >= from && s.ended <= to)
        .collect();
    let ok = window.iter().filter(|s| s.failure.is_none()).count();
    (ok, window.len() - ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_down_means_503_never_401_and_the_hub_recovers_on_its_own() {
    let mut pg = OwnPostgres::start().await;
    let url = pg.url();
    let store = Store::connect(&url).await.expect("connect to own postgres");
    store.migrate().await.expect("migrate");
    let db = TestDb {
        url,
        store,
        dir: tempfile::tempdir().expect("tempdir"),
    };
    let app = TestApp::start(
        db,
        tempfile::tempdir().expect("tempdir"),
        TestOptions {
            auth_cache_ttl: TTL,
            db_acquire_timeout: ACQUIRE,
            ..TestOptions::unthrottled()
        },
    )
    .await;
    app.zone("eng").await;
    let a = app.mint("agent-a", Some("eng:rw"), false).await;
    let b = app.mint("agent-b", Some("eng:rw"), false).await;
    // No audit lines on stdout: the drill's own figures are what it prints.
    let fe = spawn_frontend_from(frontend_config(&app.base, None, false)).await;
    let metrics_url = format!("{}/metrics", app.base);

    // Load with A in both lifecycles; A is cached from the first call on.
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (id, era) in [Era::Stateless, Era::Stateless, Era::Session]
        .into_iter()
        .enumerate()
    {
        let c = connect(&fe.mcp_url, &a.token, era).await;
        tasks.push(tokio::spawn(load(c, id, stop.clone(), log.clone())));
    }
    let deadline = Instant::now() + WAIT;
    while log.lock().expect("log").len() < 30 {
        assert!(Instant::now() < deadline, "load did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // (a) A is served from the cache while its entry is young. A fresh entry for A is
    // valid until at least `refreshed + TTL`; stopping Postgres and checking must fit in
    // that window for (a) to be checked at all. No bound on the machine's speed is
    // asserted: when it did not fit (a busy machine), Postgres comes back and the step is
    // repeated.
    let key_a = a.key_id.parse().expect("key id");
    let mut first_stop: Option<Instant> = None;
    let mut attempt = 0;
    let (refreshed, before_outage, stop_began, down) = loop {
        attempt += 1;
        let refreshed = Instant::now();
        app.bus.publish(Invalidation::Token { key_id: key_a });
        assert_eq!(rpc(&app, &a.token, "whoami", json!({})).await.status, 200);
        let before_outage = Instant::now();
        let stop_began = Instant::now();
        first_stop.get_or_insert(stop_began);
        pg.stop("fast");
        let down = Instant::now();
        eprintln!("pg_ctl stop -m fast took {:?}", down - stop_began);
        let who = rpc(&app, &a.token, "whoami", json!({})).await;
        let fe_a = mcp(&fe.mcp_url, &a.token, true).await;
        // A load call made with Postgres down, too (the event: its sample is logged).
        while refreshed.elapsed() < TTL
            && !log.lock().expect("log").iter().any(|s| s.started >= down)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if refreshed.elapsed() < TTL {
            assert_eq!(who.status, 200, "cached A at the rpc-server: {who:?}");
            assert_eq!(fe_a.status, 200, "cached A at the frontend: {fe_a:?}");
            break (refreshed, before_outage, stop_began, down);
        }
        assert!(
            attempt < 3,
            "three times, stopping Postgres and checking took longer than the {TTL:?} cache TTL"
        );
        eprintln!("attempt {attempt} did not fit in the {TTL:?} TTL; again");
        pg.resume().await;
        let deadline = Instant::now() + WAIT;
        while rpc(&app, &a.token, "whoami", json!({})).await.status != 200 {
            assert!(Instant::now() < deadline, "A not served again after resume");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let first_stop = first_stop.unwrap_or(stop_began);

    // (b) B was never verified: 503 everywhere, never 401. Concurrently: each waits for
    // the pool's acquire timeout.
    let (rpc_b, write_b, fe_b_call, fe_b_init, client_b) = tokio::join!(
        rpc(&app, &b.token, "whoami", json!({})),
        rpc(
            &app,
            &b.token,
            "write",
            json!({"path": "/b.txt", "content": "b"})
        ),
        mcp(&fe.mcp_url, &b.token, true),
        mcp(&fe.mcp_url, &b.token, false),
        common::try_connect(&fe.mcp_url, &b.token, Era::Stateless),
    );
    assert_503("B whoami at the rpc-server", &rpc_b);
    assert_503("B write at the rpc-server", &write_b);
    assert_503("B stateless tools/call at the frontend", &fe_b_call);
    assert_503("B initialize at the frontend", &fe_b_init);
    let err = match client_b {
        Ok(_) => panic!("an rmcp client connected with B while Postgres is down"),
        Err(e) => chain(e.as_ref()),
    };
    assert!(is_unavailable(&err), "rmcp client with B: {err}");
    eprintln!(
        "with Postgres down, B failed after: rpc whoami {:?}, rpc write {:?}, frontend tools/call {:?}, frontend initialize {:?}",
        rpc_b.took, write_b.took, fe_b_call.took, fe_b_init.took
    );
    assert_eq!(status(&format!("{}/healthz/ready", app.base)).await, 503);
    assert_eq!(status(&format!("{}/health", fe.base)).await, 503);

    // (c) Past the TTL, A cannot be verified either: 503, not 401.
    let expired = before_outage + TTL;
    tokio::time::sleep(expired.saturating_duration_since(Instant::now())).await;
    let who = rpc(&app, &a.token, "whoami", json!({})).await;
    assert_503("A whoami past the TTL", &who);
    let fe_a = mcp(&fe.mcp_url, &a.token, true).await;
    assert_503("A stateless tools/call past the TTL", &fe_a);
    let fe_a_init = mcp(&fe.mcp_url, &a.token, false).await;
    assert_503("A initialize past the TTL", &fe_a_init);
    // Let every load client see it too (the event: a sample of each that started past
    // the TTL), then the last failure of B before the restart.
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = log.lock().expect("log").iter().fold(0usize, |seen, s| {
            if s.started >= expired {
                seen | (1 << s.client)
            } else {
                seen
            }
        });
        if seen.count_ones() as usize == tasks.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a load client made no call past the TTL"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last_b = rpc(&app, &b.token, "whoami", json!({})).await;
    assert_503("B just before the restart", &last_b);

    // (e) Postgres returns on the same port; the hub is not touched.
    let restart_began = Instant::now();
    pg.resume().await;
    let up = Instant::now();
    eprintln!("pg_ctl start took {:?}", up - restart_began);
    // (d) B's failures were not cached as refusals: B works as soon as the pool reconnects.
    let (b_ok, recovered_after) = loop {
        let r = rpc(&app, &b.token, "whoami", json!({})).await;
        match r.status {
            200 => break (r, up.elapsed()),
            503 => {}
            s => panic!("B after the restart: HTTP {s} (a DB failure was cached?): {r:?}"),
        }
        assert!(
            up.elapsed() < WAIT,
            "B still 503 {WAIT:?} after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(b_ok.body["result"]["key_id"], b.key_id.as_str());
    eprintln!("B verified {recovered_after:?} after Postgres accepted connections again");
    let who = rpc(&app, &a.token, "whoami", json!({})).await;
    assert_eq!(who.status, 200, "A after the restart: {who:?}");
    assert_eq!(status(&format!("{}/healthz/ready", app.base)).await, 200);
    let deadline = Instant::now() + WAIT;
    while status(&format!("{}/health", fe.base)).await != 200 {
        assert!(Instant::now() < deadline, "frontend /health not 200 again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cb = connect(&fe.mcp_url, &b.token, Era::Session).await;
    let r = try_call(
        &cb,
        "nexus_write_file",
        json!({"path": "/b.txt", "content": "after"}),
    )
    .await
    .expect("B writes after the restart");
    assert!(!is_error(&r), "B write after the restart: {}", text(&r));

    // The running clients recover without being restarted.
    let recovered = Instant::now();
    let deadline = recovered + WAIT;
    loop {
        let samples = log.lock().expect("log").clone();
        let all_ok = (0..tasks.len()).all(|id| {
            samples
                .iter()
                .filter(|s| s.client == id && s.started >= recovered)
                .take(3)
                .filter(|s| s.failure.is_none())
                .count()
                == 3
        });
        if all_ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "load clients did not recover within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.expect("load task"));
    }
    let samples = log.lock().expect("log").clone();

    // Every failure of the whole drill said "unavailable", none said "unauthorized".
    let bad: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.failure.as_deref().is_some_and(|f| !is_unavailable(f)))
        .collect();
    assert!(bad.is_empty(), "failures that are not 503: {bad:#?}");
    let (ok_before, failed_before) = summarize(&samples, samples[0].started, first_stop);
    assert!(ok_before > 0 && failed_before == 0, "before the outage");
    let (ok_cached, failed_cached) = summarize(&samples, down, refreshed + TTL);
    assert_eq!(
        failed_cached, 0,
        "A failed while its cache entry was fresh: {samples:#?}"
    );
    assert!(ok_cached > 0, "no load call ran while A's entry was fresh");
    let (ok_expired, failed_expired) = summarize(&samples, before_outage + TTL, restart_began);
    assert_eq!(ok_expired, 0, "A served past the TTL with Postgres down");
    assert!(failed_expired > 0, "no load call ran past the TTL");
    let (ok_after, failed_after) = summarize(&samples, recovered, Instant::now());
    assert_eq!(failed_after, 0, "failures after recovery");
    // File calls need the database: they failed while it was down (as "unavailable", checked
    // above with every failure) and work again after it.
    let files_down = samples
        .iter()
        .filter(|s| s.file && s.started >= down && s.ended <= restart_began)
        .filter(|s| s.failure.is_some())
        .count();
    assert!(
        files_down > 0,
        "no file call failed while Postgres was down"
    );
    let files_after = samples
        .iter()
        .filter(|s| s.file && s.started >= recovered)
        .collect::<Vec<_>>();
    assert!(
        !files_after.is_empty() && files_after.iter().all(|s| s.failure.is_none()),
        "file calls after recovery: {files_after:#?}"
    );
    let fail_times: Vec<Duration> = samples
        .iter()
        .filter(|s| s.failure.is_some())
        .map(|s| s.ended - s.started)
        .collect();
    eprintln!(
        "load calls: before {ok_before} ok; Postgres down, A fresh: {ok_cached} ok / {failed_cached} failed; \
         past the TTL: {ok_expired} ok / {failed_expired} failed (503); after recovery: {ok_after} ok; \
         slowest failure {:?}",
        fail_times.iter().max()
    );

    // (d) Nothing was ever answered from the negative cache.
    let m = get_text(&metrics_url).await;
    let negative = m
        .lines()
        .find(|l| l.starts_with("nexus_auth_cache_requests_total{result=\"negative_hit\"}"))
        .map(|l| l.rsplit(' ').next().unwrap_or("0").to_owned())
        .unwrap_or_else(|| "0".into());
    assert_eq!(negative, "0", "negative cache hits during the drill:\n{m}");
    let unavailable = metric_sum(
        &m.lines()
            .filter(|l| l.contains("result=\"unavailable\""))
            .collect::<Vec<_>>()
            .join("\n"),
        "nexus_auth_results_total",
    );
    assert!(unavailable > 0.0, "no verification was 'unavailable'");
    eprintln!("rpc-server: {unavailable} verifications answered 'unavailable'");

    // Writes to the database work again, and revocation takes effect at once.
    let c = app.mint("agent-c", Some("eng:r"), false).await;
    assert_eq!(rpc(&app, &c.token, "whoami", json!({})).await.status, 200);
    app.control.revoke_token("agent-b").await.expect("revoke B");
    assert_eq!(rpc(&app, &b.token, "whoami", json!({})).await.status, 401);
    assert_eq!(mcp(&fe.mcp_url, &b.token, true).await.status, 401);
    let r = try_call(&cb, "nexus_file_info", json!({"path": "/b.txt"})).await;
    assert!(
        r.is_err(),
        "B's open session still works after the revoke: {r:?}"
    );
    let r = try_call(
        &clients[0],
        "nexus_file_info",
        json!({"path": "/load/0-0.txt"}),
    )
    .await;
    assert!(
        r.as_ref().is_ok_and(|r| !is_error(r)),
        "A after B's revoke: {r:?}"
    );
}
