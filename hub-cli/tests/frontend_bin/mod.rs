//! The `nexus-mcp` binary for hub-cli's tests. Cargo builds only this package's binaries
//! for its tests, so the frontend's own binary is built here, once per test process, the
//! way the Dockerfile builds it (`-p mcp-frontend --bin nexus-mcp`, features of that
//! package alone) into the same target dir and profile as `nexus`. Cargo makes it a no-op
//! when it is up to date; a stale binary is never run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The path of a freshly built `nexus-mcp`.
pub fn nexus_mcp() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build)
}

fn build() -> PathBuf {
    let nexus = Path::new(env!("CARGO_BIN_EXE_nexus"));
    let profile_dir = nexus.parent().expect("the profile dir");
    let target_dir = profile_dir.parent().expect("the target dir");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a profile dir name");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--quiet",
            "-p",
            "mcp-frontend",
            "--bin",
            "nexus-mcp",
        ])
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let out = cmd.output().expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build -p mcp-frontend --bin nexus-mcp failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = profile_dir.join("nexus-mcp");
    assert!(bin.is_file(), "{} was not built", bin.display());
    bin
}
