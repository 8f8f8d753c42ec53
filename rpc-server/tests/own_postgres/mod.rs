//! A throwaway PostgreSQL cluster of a test's own, for drills that stop or restart the
//! database: the shared test cluster (`NEXUS_TEST_DATABASE_URL`) is never stopped.
//!
//! `initdb` into a tempdir, one free loopback port, the unix socket in the tempdir; stopped
//! (immediate mode) when the guard drops. Binaries are found as `scripts/test-services`
//! finds them: `NEXUS_TEST_PG_BIN` (which, as root, holds wrappers that run them as an
//! unprivileged user), else the newest `/usr/lib/postgresql/*/bin`, else `PATH`.
//! Also used by hub-cli's tests (through `#[path]`).
#![allow(dead_code)]

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for `pg_ctl` to start or stop the server.
const PG_CTL_WAIT_SECS: u64 = 30;

/// A PostgreSQL cluster on 127.0.0.1:`port`, stopped on drop.
#[derive(Debug)]
pub struct OwnPostgres {
    pub port: u16,
    bin: PathBuf,
    running: bool,
    // Last: removed after the server is stopped.
    dir: tempfile::TempDir,
}

pub use rpc_server::testing::free_port;

/// Where `initdb`, `pg_ctl` and `postgres` live.
pub fn pg_bin() -> PathBuf {
    if let Some(d) = std::env::var_os("NEXUS_TEST_PG_BIN").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((major, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    // Empty: the bare names are looked up on PATH.
    PathBuf::new()
}

fn is_root() -> bool {
    // The owner of a fresh file is the effective user; no unsafe code needed for geteuid.
    let probe = tempfile::NamedTempFile::new().expect("probe file");
    std::os::unix::fs::MetadataExt::uid(&probe.as_file().metadata().expect("probe metadata")) == 0
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

impl OwnPostgres {
    /// Creates a cluster on a free port and starts it.
    pub async fn start() -> Self {
        let bin = pg_bin();
        if is_root() && std::env::var_os("NEXUS_TEST_PG_BIN").is_none() {
            panic!(
                "running as root without NEXUS_TEST_PG_BIN: run the tests after `eval \"$(scripts/test-services)\"` (postgres refuses to run as root)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("nexus-own-pg-")
            .tempdir()
            .expect("tempdir");
        // As root the server runs as another user (the NEXUS_TEST_PG_BIN wrappers), which
        // must be able to create the cluster, its socket and its log in here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod tempdir");
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).expect("socket dir");
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777))
            .expect("chmod socket dir");
        let mut pg = Self {
            port: free_port(),
            bin,
            running: false,
            dir,
        };
        let data = pg.data_dir();
        let data = data.to_str().expect("UTF-8 tempdir").to_owned();
        let out = pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert_ok("initdb", &out);
        pg.resume().await;
        pg
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("pg.log")
    }

    fn tool(&self, name: &str) -> Command {
        let mut c = Command::new(if self.bin.as_os_str().is_empty() {
            PathBuf::from(name)
        } else {
            self.bin.join(name)
        });
        // The tools complain when they cannot read the working directory.
        c.current_dir("/").stdin(Stdio::null());
        c
    }

    /// Runs `name` with `args`. `scripts/test-services` rewrites the `NEXUS_TEST_PG_BIN`
    /// wrappers each time anyone runs it, so a wrapper may be missing for a moment: retry.
    fn run(&self, name: &str, args: &[&str]) -> Output {
        let mut tries = 0;
        loop {
            match self.tool(name).args(args).output() {
                Ok(out) => return out,
                Err(e)
                    if tries < 50
                        && matches!(
                            e.kind(),
                            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                        ) =>
                {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("run {name} (apt-get install postgresql): {e}"),
            }
        }
    }

    /// The last lines of the server log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Starts the (stopped) server again on the same port and waits until it accepts
    /// connections.
    pub async fn resume(&mut self) {
        assert!(!self.running, "postgres already running");
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100",
            self.port,
            self.dir.path().join("sock").display()
        );
        let (data, log) = (self.data_dir(), self.log_file());
        let out = self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                &PG_CTL_WAIT_SECS.to_string(),
                "-D",
                data.to_str().expect("UTF-8 tempdir"),
                "-l",
                log.to_str().expect("UTF-8 tempdir"),
                "-o",
                &opts,
            ],
        );
        if !out.status.success() {
            panic!(
                "pg_ctl start on port {} failed (port taken?): {}\n{}",
                self.port,
                String::from_utf8_lossy(&out.stderr),
                self.log_tail()
            );
        }
        self.running = true;
        let deadline = Instant::now() + Duration::from_secs(PG_CTL_WAIT_SECS);
        while !accepts(self.port) {
            assert!(
                Instant::now() < deadline,
                "postgres on port {} does not accept connections\n{}",
                self.port,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server with `pg_ctl stop -m <mode>` (`fast`: sessions are terminated;
    /// `immediate`: no shutdown checkpoint, like a crash) and waits until it is gone.
    pub fn stop(&mut self, mode: &str) {
        assert!(self.running, "postgres is not running");
        let data = self.data_dir();
        let out = self.run(
            "pg_ctl",
            &[
                "stop",
                "-w",
                "-t",
                &PG_CTL_WAIT_SECS.to_string(),
                "-m",
                mode,
                "-D",
                data.to_str().expect("UTF-8 tempdir"),
            ],
        );
        assert_ok("pg_ctl stop", &out);
        self.running = false;
        assert!(!accepts(self.port), "port {} still accepts", self.port);
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if self.running {
            // Not run(): a drop must not panic.
            let _ = self
                .tool("pg_ctl")
                .args(["stop", "-w", "-t", "10", "-m", "immediate", "-D"])
                .arg(self.data_dir())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            self.running = false;
        }
    }
}
