//! `nexus hub cluster …` end to end (SPEC §13): the real binary mints a cluster, two nodes
//! and three servers' configs; real nats-servers run those configs; `revoke-node --server`
//! cuts a connected node off. Every bad input exits non-zero and leaves the cluster
//! directory byte-identical; no seed is ever printed.
//!
//! Ports: 14241–14243 (clients), 14251–14253 (routes), 14261–14263 (monitoring), 14269
//! (nothing listens: an unreachable server).

use crate::harness;

use async_nats::{Event, ServerError};
use harness::{NatsServer, assert_free, skip_nats, wait_all_healthy};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CLIENT: [u16; 3] = [14241, 14242, 14243];
const ROUTE: [u16; 3] = [14251, 14252, 14253];
const MONITOR: [u16; 3] = [14261, 14262, 14263];
const NOBODY: u16 = 14269;

/// Runs `nexus hub cluster <args>` (bounded) with no `NEXUS_*` variable; returns (exit
/// code, stdout, stderr).
fn cluster(args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nexus"));
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str()
            && (k.starts_with("NEXUS_") || k == "RUST_LOG")
        {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .args(["hub", "cluster"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nexus");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nexus hub cluster {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert!(
        !stdout.contains("panicked") && !stderr.contains("panicked"),
        "{args:?} panicked:\n{stderr}"
    );
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// Every file and directory under `dir` with its mode and bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        out.insert(
            d.clone(),
            (
                std::fs::metadata(&d).expect("stat").permissions().mode(),
                vec![],
            ),
        );
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            let m = std::fs::metadata(&p).expect("stat");
            if m.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).expect("read");
                out.insert(p, (m.permissions().mode(), bytes));
            }
        }
    }
    out
}

/// Every nkey seed (`SO…`, `SA…`, `SU…`, 58 characters) in the files under `dir`.
fn seeds_in(dir: &Path) -> Vec<String> {
    snapshot(dir)
        .into_values()
        .flat_map(|(_, bytes)| {
            String::from_utf8_lossy(&bytes)
                .split_whitespace()
                .filter(|w| w.len() == 58 && ["SO", "SA", "SU"].iter().any(|p| w.starts_with(p)))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `nexus hub cluster <args>` must succeed; its output is kept for the seed check.
#[track_caller]
fn ok(printed: &mut Vec<String>, args: &[&str]) -> String {
    let (code, out, err) = cluster(args);
    assert_eq!(code, 0, "{args:?}:\nstdout: {out}\nstderr: {err}");
    printed.push(format!("{out}{err}"));
    out
}

#[test]
fn cluster_commands_and_bad_input() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("nc");
    let d = dir.to_str().expect("utf-8 path");
    let mut printed = Vec::new();

    let out = ok(&mut printed, &["init", "--dir", d]);
    assert!(out.contains("created cluster in"), "{out}");
    assert!(
        out.contains("operator:") && out.contains("account:         HUB"),
        "{out}"
    );
    // --dir is accepted before or after the subcommand.
    let out = ok(
        &mut printed,
        &["--dir", d, "add-node", "rpc-1", "--role", "rpc"],
    );
    assert!(out.contains("added node rpc-1 (role rpc"), "{out}");
    assert!(out.contains(&format!("{d}/rpc-1.creds")), "{out}");
    ok(
        &mut printed,
        &["add-node", "fe-1", "--role", "frontend", "--dir", d],
    );
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("keys")), 0o700);
    for f in [
        "rpc-1.creds",
        "fe-1.creds",
        "sys.creds",
        "cluster.json",
        "keys/operator.nk",
    ] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }

    // Bad input of every kind: a clear error, the directory untouched.
    let before = snapshot(&dir);
    let missing = tmp.path().join("nope");
    let m = missing.to_str().expect("utf-8");
    for (args, code, says) in [
        (vec!["init", "--dir", d], 1, "already exists"),
        (
            vec!["add-node", "Bad_Name", "--role", "rpc", "--dir", d],
            2,
            "lowercase",
        ),
        (
            vec!["add-node", "sys", "--role", "rpc", "--dir", d],
            2,
            "system account",
        ),
        (
            vec!["add-node", &"x".repeat(64), "--role", "rpc", "--dir", d],
            2,
            "1 to 63",
        ),
        (
            vec!["add-node", "x", "--role", "admin", "--dir", d],
            2,
            "invalid value",
        ),
        (vec!["add-node", "x", "--dir", d], 2, "--role"),
        (
            vec!["add-node", "rpc-1", "--role", "frontend", "--dir", d],
            1,
            "already exists",
        ),
        (
            vec!["add-node", "x", "--role", "rpc", "--dir", m],
            1,
            "no cluster in",
        ),
        (
            vec!["revoke-node", "ghost", "--dir", d],
            1,
            "no node named ghost",
        ),
        (
            vec!["revoke-node", "rpc-1", "--server", "http://[x", "--dir", d],
            2,
            "--server",
        ),
        (
            vec!["nats-config", "--node", "n1", "--dir", d],
            2,
            "--routes",
        ),
        (
            vec![
                "nats-config",
                "--node",
                "n1",
                "--routes",
                "n2:6222",
                "--dir",
                d,
            ],
            2,
            "nats://",
        ),
        (
            vec![
                "nats-config",
                "--node",
                "N1",
                "--routes",
                "nats://a:6222",
                "--dir",
                d,
            ],
            2,
            "--node",
        ),
        (
            vec![
                "nats-config",
                "--node",
                "n1",
                "--routes",
                "nats://a:6222",
                "--port",
                "6222",
                "--dir",
                d,
            ],
            2,
            "both 6222",
        ),
        (
            vec![
                "nats-config",
                "--node",
                "n1",
                "--routes",
                "nats://a:6222",
                "--store-dir",
                "a\"b",
                "--dir",
                d,
            ],
            2,
            "--store-dir",
        ),
        (
            vec![
                "nats-config",
                "--node",
                "n1",
                "--routes",
                "nats://a:6222",
                "--port",
                "x",
                "--dir",
                d,
            ],
            2,
            "invalid value",
        ),
        (
            vec![
                "nats-config",
                "--node",
                "n1",
                "--routes",
                "nats://a:6222",
                "--dir",
                m,
            ],
            1,
            "no cluster in",
        ),
    ] {
        let (got, out, err) = cluster(&args);
        assert_eq!(got, code, "{args:?}:\nstdout: {out}\nstderr: {err}");
        assert!(out.is_empty(), "{args:?} printed: {out}");
        assert!(err.contains(says), "{args:?}: {err}");
        printed.push(err);
        assert_eq!(
            snapshot(&dir),
            before,
            "{args:?} changed the cluster directory"
        );
    }
    assert!(!missing.exists());

    // nats-config prints a complete server config.
    let routes = ROUTE
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut configs = Vec::new();
    for i in 0..3 {
        let store = tmp.path().join(format!("n{}", i + 1));
        let text = ok(
            &mut printed,
            &[
                "nats-config",
                "--node",
                &format!("n{}", i + 1),
                "--routes",
                &routes,
                "--port",
                &CLIENT[i].to_string(),
                "--cluster-port",
                &ROUTE[i].to_string(),
                "--store-dir",
                store.to_str().expect("utf-8"),
                "--dir",
                d,
            ],
        );
        assert!(
            text.contains(&format!("server_name: \"n{}\"", i + 1)),
            "{text}"
        );
        assert!(
            text.contains(&format!("listen: \"0.0.0.0:{}\"", CLIENT[i])),
            "{text}"
        );
        assert!(text.contains("resolver_preload"), "{text}");
        configs.push(text);
    }
    // The defaults of SPEC §13.
    let text = ok(
        &mut printed,
        &[
            "nats-config",
            "--node",
            "n1",
            "--routes",
            "nats://h1:6222,nats://h2:6222",
            "--dir",
            d,
        ],
    );
    for want in [
        "\"0.0.0.0:4222\"",
        "\"0.0.0.0:6222\"",
        "store_dir: \"/var/lib/nats\"",
        "\"nats://h2:6222\"",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    assert_eq!(
        snapshot(&dir),
        before,
        "nats-config changed the cluster directory"
    );

    if skip_nats() {
        eprintln!("NEXUS_TEST_SKIP_NATS=1: skipping the part with nats-servers");
    } else {
        with_servers(tmp.path(), &dir, &configs, &mut printed);
    }

    // Without --server: the files change and the output says how servers learn of it.
    let (code, out, err) = cluster(&["revoke-node", "fe-1", "--dir", d]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("revoked node fe-1"), "{out}");
    assert!(
        out.contains("--server") && out.contains("nats-config"),
        "{out}"
    );
    assert!(!dir.join("fe-1.creds").exists());
    printed.push(format!("{out}{err}"));
    // Pushing to a server that is not there: saved, not confirmed (exit 3).
    assert_free(&[NOBODY]);
    let nobody = format!("nats://127.0.0.1:{NOBODY}");
    let (code, out, err) = cluster(&["revoke-node", "fe-1", "--server", &nobody, "--dir", d]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("could not push"), "{out}");
    assert!(err.contains("did not all confirm"), "{err}");
    printed.push(format!("{out}{err}"));
    // A revoked name stays revoked.
    let (code, _, err) = cluster(&["add-node", "fe-1", "--role", "frontend", "--dir", d]);
    assert_eq!(code, 1);
    assert!(err.contains("was revoked"), "{err}");

    let seeds = seeds_in(&dir);
    assert!(seeds.len() >= 6, "{}", seeds.len());
    for text in &printed {
        for s in &seeds {
            assert!(!text.contains(s.as_str()), "a seed was printed:\n{text}");
        }
    }
}

/// Runs the three configs (on 127.0.0.1, with monitoring for /healthz), connects rpc-1 and
/// revokes it with `--server`: every server answers and the connection is closed.
fn with_servers(work: &Path, dir: &Path, configs: &[String], printed: &mut Vec<String>) {
    let d = dir.to_str().expect("utf-8");
    assert_free(&[CLIENT, ROUTE, MONITOR].concat());
    let mut servers: Vec<NatsServer> = configs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            // Tests listen on loopback only; monitoring is off in the printed config.
            let text = text.replace("\"0.0.0.0:", "\"127.0.0.1:").replace(
                "# http: \"127.0.0.1:8222\"",
                &format!("http: \"127.0.0.1:{}\"", MONITOR[i]),
            );
            NatsServer::start(&format!("n{}", i + 1), &text, work, CLIENT[i], MONITOR[i])
        })
        .collect();
    wait_all_healthy(&mut servers, Duration::from_secs(60));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let client = rt
        .block_on(async {
            async_nats::ConnectOptions::with_credentials_file(dir.join("rpc-1.creds"))
                .await
                .expect("creds")
                .custom_inbox_prefix("_INBOX_rpc-1")
                .event_callback(move |e| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(e);
                    }
                })
                .connect(servers[1].url())
                .await
        })
        .expect("rpc-1 connects with the creds the CLI minted");
    rt.block_on(client.publish("nexus.inval.x", "y".into()))
        .expect("publish");
    rt.block_on(client.flush()).expect("flush");

    let (code, out, err) = cluster(&[
        "revoke-node",
        "rpc-1",
        "--server",
        &servers[0].url(),
        "--dir",
        d,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for n in ["n1", "n2", "n3"] {
        assert!(out.contains(&format!("server {n}: jwt updated")), "{out}");
    }
    printed.push(format!("{out}{err}"));
    let revoked = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(e) = events.recv().await {
                if matches!(&e, Event::ServerError(ServerError::Other(m)) if m.contains("Revoked"))
                {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false)
    });
    assert!(revoked, "rpc-1 was not told it is revoked");
    drop(client);
    drop(servers);
}
