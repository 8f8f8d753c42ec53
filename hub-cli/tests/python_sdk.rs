//! Interoperability with the official MCP Python SDK: a real hub (rpc-server on Postgres and
//! the frontend), a single-zone token, and `tests/python/e2e_mcp_sdk.py` driving it in both
//! eras (a legacy `initialize` session and stateless `discover`): list_tools, write and read
//! back, the search tools' arguments (grep's context, include, files, fixed strings,
//! inversion and counts; glob's files; a markdown listing; search degraded to keyword
//! without an embeddings endpoint), a bad token answered only with 401 challenges.
//!
//! Needs `python3` with the SDK installed (`python3 -m pip install mcp`); without it the test
//! fails and says so, it never skips.

use crate::common;

use common::Hub;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_official_python_sdk_works_against_the_hub() {
    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    let token = hub.token("python-sdk", Some("eng:rw"), false).await;
    // Probes for the SDK, runs the script in both eras and checks each said ok.
    let stdout = common::auth::python_sdk(hub.mcp_url(), &token, "").await;
    eprintln!("{stdout}");
    let written = hub.stored_in("eng").await;
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
