//! Claude Code, the real agent of the client tests: found in tests/claude-code (a missing
//! one fails in CI, and is skipped with a line elsewhere), run with a fresh HOME and its own
//! Node first on PATH, never with an API key.

use super::procs::clean_cmd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Claude Code from tests/claude-code, or `None` (a failure in CI).
pub fn claude_code() -> Option<PathBuf> {
    let bin =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/claude-code/node_modules/.bin/claude");
    if bin.exists() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "Claude Code is missing (run `npm ci --prefix tests/claude-code`)"
    );
    eprintln!("skipped: Claude Code is missing (npm ci --prefix tests/claude-code)");
    None
}

/// HOME (a fresh directory: nothing of this machine's Claude Code configuration) and PATH
/// (Claude Code and its Node first) for every `claude` run.
pub fn claude_env(claude: &Path, home: &Path) -> Vec<(String, String)> {
    let dir = claude.parent().expect("bin dir");
    vec![
        ("HOME".into(), home.display().to_string()),
        (
            "PATH".into(),
            format!(
                "{}:{}",
                dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ),
        ("DISABLE_AUTOUPDATER".into(), "1".into()),
        (
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
            "1".into(),
        ),
    ]
}

/// Runs `program` (Claude Code, or a shell that calls it) in `home` with [`claude_env`];
/// returns its stdout, failing with everything it said under `what`.
pub async fn run(claude: &Path, home: &Path, program: &Path, args: &[&str], what: &str) -> String {
    let mut cmd: Command = clean_cmd(program);
    cmd.args(args)
        .current_dir(home)
        .envs(claude_env(claude, home))
        // No API key is needed for `claude mcp`; none leaks in from the test's environment.
        .env_remove("ANTHROPIC_API_KEY");
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}\nstdout: {text}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The line `claude mcp list` prints for `server`.
pub fn listed<'a>(list: &'a str, server: &str) -> &'a str {
    let prefix = format!("{server}: ");
    list.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{server} is not listed:\n{list}"))
}
