//! `grep` cannot pin a CPU or hold memory: a work budget checked inside long lines, work
//! that stops when the request goes away, a cap on concurrent greps per token and in
//! total, and pages that stop the scan once they are full.

use rpc_server::db::Backend;
use rpc_server::files::GrepLimits;
use rpc_server::testing::{TestApp, TestOptions, code};
use serde_json::{Value, json};
use std::time::Duration;

/// Far more work than any test needs: only the limit under test may stop a grep.
const UNLIMITED: u64 = u64::MAX / 4;
/// The pattern that took 90 s on an 8 MiB line: the lazy DFA gives up on it, and the
/// PikeVM needs bytes × ~10,000 steps.
const PATHOLOGICAL: &str = "(?:a|b)*a(?:a|b){3000}x";

fn options(grep: GrepLimits) -> TestOptions {
    TestOptions {
        max_file_bytes: 32 * 1024 * 1024,
        grep,
        ..TestOptions::unthrottled()
    }
}

/// No limit but the ones a test sets.
fn roomy() -> GrepLimits {
    GrepLimits {
        max_work: UNLIMITED,
        timeout: Duration::from_secs(3600),
        per_token: 8,
        global: 8,
        ..Default::default()
    }
}

struct Hub {
    app: TestApp,
    token: String,
}

impl Hub {
    async fn new(grep: GrepLimits) -> Self {
        let app = TestApp::spawn_with(Backend::Sqlite, options(grep)).await;
        app.zone("eng").await;
        let token = app.mint("grepper", Some("eng:rw"), false).await.token;
        Self { app, token }
    }

    /// Writes a file into the zone (base64, so any bytes go).
    async fn put(&self, rel: &str, content: &[u8]) {
        use base64::Engine as _;
        let content = base64::engine::general_purpose::STANDARD.encode(content);
        self.app
            .rpc(
                &self.token,
                "write",
                json!({"path": format!("/{rel}"), "content": content, "encoding": "base64"}),
            )
            .await
            .expect("write");
    }

    async fn grep(&self, token: &str, params: Value) -> Result<Value, Value> {
        self.app.rpc(token, "grep", params).await
    }

    /// Starts a grep in the background; aborting the task drops the request. Retried while
    /// refused as busy: a probe of [`Hub::wait_until_busy`] may hold the slot a moment.
    fn grep_in_background(&self, token: &str, params: Value) -> tokio::task::JoinHandle<()> {
        let client = reqwest::Client::new();
        let url = format!("{}/api/nfs/grep", self.app.base);
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "grep", "params": params});
        let auth = format!("Bearer {token}");
        tokio::spawn(async move {
            loop {
                let resp = client
                    .post(&url)
                    .header("Authorization", &auth)
                    .json(&body)
                    .send()
                    .await
                    .expect("background grep sent");
                let body: Value = resp.json().await.expect("a JSON answer");
                if body["error"]["code"] != json!(-32010) {
                    panic!("the background grep ended: {body}");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    }

    /// Waits until `token` holds every grep slot it may: a probe is refused as busy.
    async fn wait_until_busy(&self, token: &str, background: &tokio::task::JoinHandle<()>) {
        let mut last = None;
        for _ in 0..2000 {
            match self
                .grep(token, json!({"pattern": "x", "path": "/small.txt"}))
                .await
            {
                Err(e) if e["code"] == json!(-32010) => return,
                other => last = Some(other),
            }
            assert!(
                !background.is_finished(),
                "the background grep ended: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the background grep never started: {last:?}");
    }
}

/// Runs a test whose greps may outlive it on a runtime that is not waited for: were the
/// cancellation broken, a failed assertion must fail the test, not hang in the runtime's
/// drop (which waits for blocking work) until the stray grep ends minutes later.
fn run_detached(test: impl std::future::Future<Output = ()> + Send + 'static) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = rt.block_on(async { tokio::spawn(test).await });
    rt.shutdown_background();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// `a`s and `b`s in no pattern, so the pathological pattern's DFA never settles.
fn random_ab(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x & 1 == 0 { b'a' } else { b'b' }
        })
        .collect()
}

/// Files whose every 64 KiB line sends the pathological pattern to the PikeVM (~0.7 s of
/// CPU a line): uncancelled, a grep over them runs for minutes.
async fn put_pathological_tree(h: &Hub) {
    for i in 0..4u64 {
        let mut text = Vec::new();
        for l in 0..64u64 {
            text.extend(random_ab(64 * 1024 - 1, i * 1000 + l + 1));
            text.push(b'\n');
        }
        h.put(&format!("slow/{i}.txt"), &text).await;
    }
    h.put("small.txt", b"nothing to see\n").await;
}

#[tokio::test]
async fn a_pathological_pattern_on_a_long_line_gets_the_budget_error() {
    let h = Hub::new(GrepLimits {
        max_work: 200_000_000,
        ..roomy()
    })
    .await;
    // One 4 MiB line, no newline at all.
    h.put("big.txt", &random_ab(4 * 1024 * 1024, 7)).await;
    let r = h.grep(&h.token, json!({"pattern": PATHOLOGICAL})).await;
    assert_eq!(code(&r), -32008, "{r:?}");
    let e = r.expect_err("budget error");
    assert_eq!(e["data"]["reason"], json!("grep_budget"), "{e}");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("work budget")),
        "{e}"
    );
    assert_eq!(
        h.app
            .metric(r#"nexus_grep_searches_total{outcome="budget"}"#)
            .await,
        1
    );
    assert_eq!(h.app.metric("nexus_grep_running").await, 0);
}

#[tokio::test]
async fn the_budget_is_checked_inside_a_line_the_dfa_runs() {
    // A plain pattern on a line longer than the budget: the lazy DFA stops mid-line.
    let line_len = 8 * 1024 * 1024;
    let h = Hub::new(GrepLimits {
        max_work: 1_000_000,
        max_line_bytes: line_len,
        ..roomy()
    })
    .await;
    h.put("long.txt", "a".repeat(line_len).as_bytes()).await;
    let r = h.grep(&h.token, json!({"pattern": "needle"})).await;
    assert_eq!(code(&r), -32008, "{r:?}");
    // With room, the same search completes and finds nothing.
    let h = Hub::new(GrepLimits {
        max_line_bytes: line_len,
        ..roomy()
    })
    .await;
    h.put("long.txt", "a".repeat(line_len).as_bytes()).await;
    let r = h
        .grep(&h.token, json!({"pattern": "needle"}))
        .await
        .expect("grep with room");
    assert_eq!(r["total"], json!(0), "{r}");
}

#[tokio::test]
async fn a_line_past_the_cap_is_clipped_and_the_result_says_so() {
    let h = Hub::new(GrepLimits {
        max_line_bytes: 1024,
        ..roomy()
    })
    .await;
    let mut text = "x".repeat(100) + "early";
    text += &"y".repeat(2000);
    text += "late\nshort late line\n";
    h.put("clip.txt", text.as_bytes()).await;
    let r = h
        .grep(&h.token, json!({"pattern": "early"}))
        .await
        .expect("grep");
    assert_eq!(r["total"], json!(1), "{r}");
    assert_eq!(r["truncated"], json!(true), "{r}");
    let r = h
        .grep(&h.token, json!({"pattern": "late"}))
        .await
        .expect("grep");
    // Only the second line: the first one's "late" is past the clip.
    assert_eq!(r["total"], json!(1), "{r}");
    assert_eq!(r["items"][0]["line"], json!(2), "{r}");
    assert_eq!(r["truncated"], json!(true), "{r}");
}

#[test]
fn a_dropped_request_stops_its_work_and_frees_its_slot() {
    run_detached(dropped_request());
}

async fn dropped_request() {
    let h = Hub::new(GrepLimits {
        per_token: 1,
        ..roomy()
    })
    .await;
    put_pathological_tree(&h).await;
    let slow = h.grep_in_background(&h.token, json!({"pattern": PATHOLOGICAL, "path": "/slow"}));
    h.wait_until_busy(&h.token, &slow).await;
    slow.abort();
    // The scan looks at the cancellation flag at least once per PikeVM line: 64 KiB ×
    // ~3,000 NFA states, under a second of CPU in a release build and a few in a debug
    // one. Uncancelled, the 256 lines hold the slot for minutes. The wait below allows
    // 60 s, more than 10× one line even in a debug build on a busy machine.
    let mut freed = false;
    for _ in 0..600 {
        match h
            .grep(
                &h.token,
                json!({"pattern": "nothing", "path": "/small.txt"}),
            )
            .await
        {
            Ok(r) => {
                assert_eq!(r["total"], json!(1), "{r}");
                freed = true;
                break;
            }
            Err(e) => {
                assert_eq!(e["code"], json!(-32010), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(freed, "the dropped grep kept running and holding its slot");
    // It was counted as cancelled (by the blocking work itself: nobody else saw the end),
    // having read a part of the tree only.
    assert_eq!(
        h.app
            .metric(r#"nexus_grep_searches_total{outcome="cancelled"}"#)
            .await,
        1
    );
    assert_eq!(h.app.metric("nexus_grep_running").await, 0);
    let scanned = h.app.metric("nexus_grep_scanned_bytes_total").await;
    assert!(scanned < 4 * 64 * 64 * 1024, "{scanned}");
}

#[test]
fn concurrent_greps_are_capped_per_token_and_in_total() {
    run_detached(concurrency_caps());
}

async fn concurrency_caps() {
    let h = Hub::new(GrepLimits {
        per_token: 1,
        global: 2,
        ..roomy()
    })
    .await;
    put_pathological_tree(&h).await;
    let other = h.app.mint("other", Some("eng:r"), false).await.token;
    let third = h.app.mint("third", Some("eng:r"), false).await.token;

    let first = h.grep_in_background(&h.token, json!({"pattern": PATHOLOGICAL, "path": "/slow"}));
    h.wait_until_busy(&h.token, &first).await;
    // The same token is refused, with a retry hint; nothing ran.
    let r = h.grep(&h.token, json!({"pattern": "x"})).await;
    assert_eq!(code(&r), -32010, "{r:?}");
    let e = r.expect_err("busy");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("too many greps running for this token")),
        "{e}"
    );
    assert_eq!(e["data"]["retry_after_secs"], json!(1), "{e}");
    // Another token still gets its grep.
    let r = h
        .grep(&other, json!({"pattern": "nothing", "path": "/small.txt"}))
        .await
        .expect("another token's grep");
    assert_eq!(r["total"], json!(1), "{r}");

    // A second long grep fills the server's two slots: a third token is refused.
    let second = h.grep_in_background(&other, json!({"pattern": PATHOLOGICAL, "path": "/slow"}));
    h.wait_until_busy(&other, &second).await;
    let r = h
        .grep(&third, json!({"pattern": "nothing", "path": "/small.txt"}))
        .await;
    assert_eq!(code(&r), -32010, "{r:?}");
    assert!(
        r.expect_err("busy")["message"]
            .as_str()
            .is_some_and(|m| m.contains("maximum of 2 greps")),
    );
    first.abort();
    second.abort();
}

#[tokio::test]
async fn pages_stop_the_scan_once_full_and_page_through_everything() {
    let h = Hub::new(roomy()).await;
    // 40 files of 50 matching lines (with filler between them): 2,000 matches.
    let mut expected = Vec::new();
    let mut all_bytes = 0usize;
    for f in 0..40 {
        let mut text = String::new();
        for l in 0..50 {
            text += &format!("hit {f} {l}\nfiller line without the word\n");
            expected.push((format!("/f{f:02}.txt"), 2 * l + 1));
        }
        all_bytes += text.len();
        h.put(&format!("f{f:02}.txt"), text.as_bytes()).await;
    }

    let first = h
        .grep(&h.token, json!({"pattern": "^hit ", "limit": 10}))
        .await
        .expect("first page");
    assert_eq!(first["items"].as_array().expect("items").len(), 10);
    assert_eq!(first["has_more"], json!(true), "{first}");
    assert_eq!(first["next_offset"], json!(10), "{first}");
    // Stopped at the page and one more: total is the lower bound it says it is.
    assert_eq!(first["total"], json!(11), "{first}");
    assert_eq!(first["total_is_lower_bound"], json!(true), "{first}");
    let scanned = first["scanned_bytes"].as_u64().expect("scanned_bytes");
    assert!(
        scanned > 0 && scanned < all_bytes as u64 / 10,
        "the first page read {scanned} of {all_bytes} bytes"
    );

    // Paging with next_offset yields every match once, in order.
    let mut got = Vec::new();
    let mut offset = 0u64;
    loop {
        let page = h
            .grep(
                &h.token,
                json!({"pattern": "^hit ", "limit": 300, "offset": offset}),
            )
            .await
            .expect("page");
        for m in page["items"].as_array().expect("items") {
            got.push((
                m["path"].as_str().expect("path").to_owned(),
                m["line"].as_u64().expect("line"),
            ));
        }
        match page["next_offset"].as_u64() {
            Some(next) => {
                assert_eq!(page["has_more"], json!(true));
                assert_eq!(page["total_is_lower_bound"], json!(true));
                offset = next;
            }
            None => {
                assert_eq!(page["has_more"], json!(false));
                // The last page scanned everything: its total is exact.
                assert_eq!(page["total"], json!(2000), "{page}");
                assert_eq!(page["total_is_lower_bound"], json!(false));
                break;
            }
        }
    }
    assert_eq!(got, expected);
}
