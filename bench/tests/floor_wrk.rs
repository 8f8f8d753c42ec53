//! The two-hop floor served for real on 127.0.0.1, and wrk driving it from the script the
//! benchmark writes: the request wrk sends must be the recorded one, headers included.

use bytes::Bytes;
use nexus_bench::floor::{Back, Front, serve};
use nexus_bench::loadgen::{Conn, Replay, check};
use nexus_bench::procs::free_port;
use nexus_bench::wrk;
use std::net::SocketAddr;
use std::time::Duration;

const TOKEN: &str = "sk-floor-test";

fn call(addr: SocketAddr, path: &str, token: &str) -> Replay {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "nexus_read_file", "arguments": {"path": path}}});
    let r = Replay {
        addr,
        path: "/mcp".into(),
        headers: Vec::new(),
        body: Bytes::from(serde_json::to_vec(&body).expect("json")),
    };
    r.to(addr, Some(token))
        .with_header("content-type", "application/json")
}

/// The floor's back and front on free ports, reading from a directory holding kb.txt.
async fn floor() -> (tempfile::TempDir, SocketAddr, SocketAddr) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("kb.txt"), "floor text").expect("write");
    let (bp, fp) = (free_port(), free_port());
    let back = Back::new(dir.path().to_path_buf(), TOKEN);
    tokio::spawn(serve(bp, move |r| back.clone().handle(r)));
    let front = Front::new(&format!("http://127.0.0.1:{bp}/"), TOKEN).expect("front");
    tokio::spawn(serve(fp, move |r| front.clone().handle(r)));
    let addrs = (
        SocketAddr::from(([127, 0, 0, 1], bp)),
        SocketAddr::from(([127, 0, 0, 1], fp)),
    );
    for a in [addrs.0, addrs.1] {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(a).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    (dir, addrs.0, addrs.1)
}

async fn send(r: &Replay) -> (u16, String) {
    let mut c = Conn::open(r.addr).await.expect("connect");
    let (status, body) = c.send(r).await.expect("send");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_floor_answers_a_tool_result_and_checks_the_token_on_both_hops() {
    let (_dir, back, front) = floor().await;
    let (status, body) = send(&call(front, "/kb.txt", TOKEN)).await;
    check(status, body.as_bytes()).expect("a tool result");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"jsonrpc": "2.0", "id": 7, "result": {
            "content": [{"type": "text", "text": "floor text"}], "isError": false}})
    );
    for addr in [front, back] {
        assert_eq!(send(&call(addr, "/kb.txt", "sk-other")).await.0, 401);
    }
    let (status, body) = send(&call(front, "/../kb.txt", TOKEN)).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"isError\":true"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrk_replays_the_recorded_request_and_fails_on_refusals() {
    if let Err(e) = wrk::require() {
        // CI installs wrk (.ci/run): there a missing wrk is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "wrk is required in CI: {e}"
        );
        eprintln!("skipped: {e}");
        return;
    }
    let (_dir, _back, front) = floor().await;
    let scripts = tempfile::tempdir().expect("tempdir");
    let good = call(front, "/kb.txt", TOKEN).with_header("mcp-name", "nexus_read_file");
    let bad = call(front, "/kb.txt", "sk-other");
    let good_script = wrk::script(&good, scripts.path(), "good").expect("script");
    let bad_script = wrk::script(&bad, scripts.path(), "bad").expect("script");
    let (url, mut probes) = (wrk::url(&good), 0);
    let (run, refused) = tokio::task::spawn_blocking(move || {
        let run = wrk::run(&good_script, &url, 4, 1, || probes += 1).map(|r| (r, probes));
        let refused = wrk::run(&bad_script, &url, 4, 1, || {});
        (run, refused)
    })
    .await
    .expect("wrk");
    let (run, probes) = run.expect("every call answered 200");
    assert!(run.requests > 0 && run.rate > 0.0 && !run.p50.is_zero());
    assert!(probes > 0, "the probe ran while wrk did");
    let e = refused.expect_err("401s fail the run").to_string();
    assert!(e.contains("HTTP 401"), "{e}");
}
