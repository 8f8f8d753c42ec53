//! Logs written to something other than a terminal carry no colour codes: this test runs
//! itself as a child process with stderr to a pipe and reads what the logger wrote.

use std::process::{Command, Stdio};

const CHILD: &str = "NEXUS_TELEMETRY_TEST_CHILD";
const MARK: &str = "telemetry-child-line";

/// In the child: initialise logging as the binaries do and log one line at each of the
/// levels that are coloured.
#[test]
fn child_logs_a_line() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    nexus_serve::telemetry::init_from_env();
    tracing::info!(field = "x", "{MARK}");
    tracing::warn!("{MARK} warn");
    tracing::error!("{MARK} error");
}

#[test]
fn logs_to_a_pipe_have_no_ansi_codes() {
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "child_logs_a_line",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("NEXUS_LOG_LEVEL", "info")
        .env_remove("NEXUS_LOG_FORMAT")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("child runs");
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(MARK), "the child logged to stderr: {err:?}");
    assert!(
        !err.contains("\x1b["),
        "colour codes in piped logs: {err:?}"
    );
}
