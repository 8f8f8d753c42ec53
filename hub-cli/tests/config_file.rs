//! `--config nexus-hub.toml`: precedence defaults < file < environment < flags, and
//! `nexus hub config check` printing effective settings with secrets redacted.

use crate::common;

use common::procs::{nexus_cmd, run};
use std::os::unix::fs::PermissionsExt;

fn nexus(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let (code, out, err) = run(nexus_cmd().args(args).envs(env.iter().copied()));
    assert!(!err.contains("panicked"), "{err}");
    (code, out, err)
}

fn write(dir: &std::path::Path, name: &str, text: &str, mode: u32) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    p.display().to_string()
}

#[test]
fn config_check_shows_effective_settings_with_secrets_redacted() {
    let d = tempfile::tempdir().expect("tempdir");
    let f = write(
        d.path(),
        "nexus-hub.toml",
        "[rpc]\nport = 3030\ndatabase_url = \"postgres://nexus:s3cret@db/nexus\"\nmigrate = true\n\
         [mcp]\nurl = \"http://nexus:2026\"\nallowed_hosts = [\"hub.example.com\"]\n",
        0o600,
    );
    let (code, out, err) = nexus(
        &["--config", &f, "hub", "config", "check"],
        &[("NEXUS_MCP_PORT", "9999")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("port = \"3030\"  # file"), "{out}");
    assert!(out.contains("postgres://nexus:****@db/nexus"), "{out}");
    assert!(!out.contains("s3cret"), "secret printed: {out}");
    assert!(
        out.contains("allowed_hosts = \"hub.example.com\"  # file"),
        "{out}"
    );
    assert!(
        out.contains("port = \"9999\"  # env"),
        "environment beats the file: {out}"
    );
    assert!(out.contains("migrate = \"true\"  # file"), "{out}");
    assert!(out.trim_end().ends_with("ok"), "{out}");

    // The environment beats the file; the same key given as env is reported so.
    let (code, out, _) = nexus(
        &["--config", &f, "hub", "config", "check"],
        &[("NEXUS_PORT", "4040")],
    );
    assert_eq!(code, 0);
    assert!(out.contains("port = \"4040\"  # env"), "{out}");
}

#[test]
fn bad_configuration_files_are_refused_with_one_line() {
    let d = tempfile::tempdir().expect("tempdir");
    for (text, mode, needle) in [
        ("[rpc]\nbogus = 1\n", 0o600, "unknown key"),
        ("[elsewhere]\n", 0o600, "unknown section"),
        ("[rpc]\nport = \"lots\"\n", 0o600, "invalid value"),
        ("[rpc\n", 0o600, "not valid TOML"),
        ("[mcp]\nurl = \"ftp://x\"\n", 0o600, "http://"),
        (
            "[rpc]\ndatabase_url = \"postgres://u:p@h/d\"\n",
            0o644,
            "chmod 600",
        ),
    ] {
        let f = write(d.path(), "bad.toml", text, mode);
        let (code, _, err) = nexus(&["--config", &f, "hub", "config", "check"], &[]);
        assert_ne!(code, 0, "{text}");
        assert!(err.contains(needle), "{text}: {err}");
    }
    let (code, _, err) = nexus(
        &["--config", "/nonexistent/x.toml", "hub", "config", "check"],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("cannot read"), "{err}");
}

/// `nexus hub config check` shows the auth chain with a line per provider, and refuses an
/// invalid one with the error line (never a key); `nexus hub token hash` prints the form
/// the static file takes.
#[test]
fn config_check_shows_the_auth_chain_and_token_hash_prints_its_form() {
    let d = tempfile::tempdir().expect("tempdir");
    let (code, hashed, err) = {
        let mut cmd = nexus_cmd();
        cmd.args(["hub", "token", "hash"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"sk-bob-hashed-key-0000000001\n")
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, 0, "{err}");
    assert!(
        hashed.starts_with("sha256:") && hashed.len() == 71,
        "{hashed}"
    );
    write(
        d.path(),
        "auth.yaml",
        &format!(
            "api_keys:\n  \"{hashed}\": {{user_id: bob, zones: eng:r}}\n  sk-alice-secret-key: {{user_id: alice, is_admin: true}}\n"
        ),
        0o600,
    );
    let f = write(
        d.path(),
        "nexus-hub.toml",
        "[auth]\ntype = \"database,static\"\nconfig = \"auth.yaml\"\n",
        0o600,
    );
    let (code, out, err) = nexus(&["--config", &f, "hub", "config", "check"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("chain = \"database,static\""), "{out}");
    assert!(out.contains("1. database:"), "{out}");
    assert!(out.contains("2. static: 2 keys, 1 plaintext"), "{out}");
    assert!(!out.contains("sk-alice-secret-key"), "a key printed: {out}");

    // An invalid entry: the error line names the user, not the key; exit non-zero.
    write(
        d.path(),
        "auth.yaml",
        "api_keys:\n  sk-alice-secret-key: {user_id: alice, permissions: [SUPER]}\n",
        0o600,
    );
    let (code, out, err) = nexus(&["--config", &f, "hub", "config", "check"], &[]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("auth:") && err.contains("SUPER"), "{err}");
    assert!(!err.contains("sk-alice-secret-key") && !out.contains("sk-alice-secret-key"));

    // A chain without its provider's settings is refused the same way.
    let f = write(
        d.path(),
        "nexus-hub.toml",
        "[auth]\ntype = \"database,static\"\n",
        0o600,
    );
    let (code, _, err) = nexus(&["--config", &f, "hub", "config", "check"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("static section"), "{err}");
}
