//! Interoperability with the official MCP Python SDK: a real hub (rpc-server on Postgres and
//! the frontend), a single-zone token, and `tests/python/e2e_mcp_sdk.py` driving it in both
//! eras (a legacy `initialize` session and stateless `discover`): list_tools, write and read
//! back, a bad token answered only with 401 challenges.
//!
//! Needs `python3` with the SDK installed (`python3 -m pip install mcp`); without it the test
//! fails and says so, it never skips.

mod common;

use common::Hub;
use std::path::Path;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_official_python_sdk_works_against_the_hub() {
    let probe = tokio::process::Command::new("python3")
        .args(["-c", "import mcp"])
        .output()
        .await;
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "the MCP Python SDK is not installed: run `python3 -m pip install mcp` ({})",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => {
            panic!("python3 is needed for this test ({e}); then run `python3 -m pip install mcp`")
        }
    }

    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    let token = hub.token("python-sdk", Some("eng:rw"), false).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/e2e_mcp_sdk.py");
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(&script)
        .arg(hub.mcp_url())
        .arg(&token)
        // The hub is on loopback: never through an environment proxy.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the Python SDK test hung")
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        script.display(),
        out.status
    );
    eprintln!("{stdout}{stderr}");
    let written = common::walk(&hub.zones_root().join("eng"));
    for era in ["initialize", "discover"] {
        assert!(stdout.contains(&format!("ok: {era}")), "{era}: {stdout}");
        // What the SDK wrote is really in the zone.
        assert!(
            written
                .iter()
                .any(|p| p.starts_with(&format!("python-sdk/{era}-"))),
            "{era}: {written:?}"
        );
    }
}
