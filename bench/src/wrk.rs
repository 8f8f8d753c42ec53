//! Load from outside: `wrk` (a C load generator on epoll that adds no per-call latency of
//! its own) replaying one recorded request from a Lua script, its figures read from its
//! report. While it runs, a caller-given probe samples the servers every 50 ms.

use crate::loadgen::Replay;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    pub requests: u64,
    pub rate: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// Fails unless `wrk` is on the PATH.
pub fn require() -> anyhow::Result<()> {
    match Command::new("wrk").arg("--version").output() {
        Ok(_) => Ok(()),
        Err(e) => anyhow::bail!(
            "wrk is needed and was not found ({e}): install it (apt-get install wrk) or run bench/run, which does"
        ),
    }
}

/// A Lua long bracket that cannot close early on `text`.
fn long_string(text: &str) -> String {
    let mut level = 0;
    while text.contains(&format!("]{}]", "=".repeat(level))) {
        level += 1;
    }
    let eq = "=".repeat(level);
    format!("[{eq}[{text}]{eq}]")
}

/// Writes the wrk script that sends `r` (method, headers, body) into `dir`; the URL is
/// given to [`run`] separately.
pub fn script(r: &Replay, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let mut lua = String::from("wrk.method = \"POST\"\n");
    lua += &format!(
        "wrk.body = {}\n",
        long_string(std::str::from_utf8(&r.body)?)
    );
    for (k, v) in &r.headers {
        lua += &format!(
            "wrk.headers[ {} ] = {}\n",
            long_string(k.as_str()),
            long_string(v.to_str()?)
        );
    }
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, lua)?;
    Ok(path)
}

/// The URL wrk sends `r` to.
pub fn url(r: &Replay) -> String {
    format!("http://{}{}", r.addr, r.path)
}

/// Runs wrk with one thread and `conns` connections for `secs` seconds, calling `probe`
/// every 50 ms meanwhile. Fails if any answer was not 2xx or any socket failed.
pub fn run(
    script: &Path,
    url: &str,
    conns: usize,
    secs: u64,
    mut probe: impl FnMut(),
) -> anyhow::Result<Run> {
    let mut child = Command::new("wrk")
        .args(["-t1", "--latency", "--timeout", "5s"])
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg("-s")
        .arg(script)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("start wrk: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("wrk did not finish within {secs} s + 30 s");
        }
        probe();
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        anyhow::bail!(
            "wrk failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse(&text).map_err(|e| {
        anyhow::anyhow!(
            "{e}; wrk printed:\n{text}\nthe first failed answer: {}",
            first_failure(script, url, conns)
        )
    })
}

/// The first non-2xx answer `script` gets from `url`, for the error message of a failed run.
fn first_failure(script: &Path, url: &str, conns: usize) -> String {
    let shown = script.with_extension("diagnose.lua");
    let lua = std::fs::read_to_string(script).unwrap_or_default()
        + "shown = false\nresponse = function(status, headers, body)\n  if status >= 300 and not shown then\n    shown = true\n    print(\"HTTP \" .. status .. \": \" .. body)\n  end\nend\n";
    if std::fs::write(&shown, lua).is_err() {
        return "(could not write the diagnostic script)".into();
    }
    match Command::new("wrk")
        .args(["-t1", "-d1s"])
        .arg(format!("-c{conns}"))
        .arg("-s")
        .arg(&shown)
        .arg(url)
        .output()
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("HTTP "))
            .unwrap_or("(none in a one-second rerun)")
            .to_owned(),
        Err(e) => format!("(wrk: {e})"),
    }
}

/// `5.12ms`, `812.00us`, `1.20s` as a duration.
fn duration(v: &str) -> Option<Duration> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(n * scale))
}

fn parse(text: &str) -> anyhow::Result<Run> {
    let mut run = Run::default();
    for line in text.lines().map(str::trim) {
        let mut w = line.split_whitespace();
        match (w.next(), w.next()) {
            (Some("50%"), Some(v)) => run.p50 = duration(v).unwrap_or_default(),
            (Some("99%"), Some(v)) => run.p99 = duration(v).unwrap_or_default(),
            (Some("Requests/sec:"), Some(v)) => run.rate = v.parse().unwrap_or_default(),
            (Some(n), Some("requests")) => run.requests = n.parse().unwrap_or_default(),
            (Some("Non-2xx"), _) => anyhow::bail!("answers that were not 2xx: {line}"),
            (Some("Socket"), Some("errors:")) => anyhow::bail!("{line}"),
            _ => {}
        }
    }
    if run.requests == 0 || run.rate <= 0.0 || run.p50.is_zero() {
        anyhow::bail!("no requests, rate or p50 in wrk's report");
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 3s test @ http://127.0.0.1:1/mcp
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.12ms    1.02ms  20.00ms   90.00%
    Req/Sec    12.50k   500.00    13.00k    80.00%
  Latency Distribution
     50%  812.00us
     75%    5.50ms
     90%    6.00ms
     99%    1.20s
  37500 requests in 3.00s, 40.00MB read
Requests/sec:  12500.25
Transfer/sec:     13.33MB
";

    #[test]
    fn reads_rate_count_and_percentiles() {
        let r = parse(REPORT).expect("parse");
        assert_eq!(r.requests, 37500);
        assert!((r.rate - 12500.25).abs() < 1e-9);
        assert_eq!(r.p50, Duration::from_micros(812));
        assert_eq!(r.p99, Duration::from_millis(1200));
    }

    #[test]
    fn failed_answers_and_socket_errors_fail_the_run() {
        let bad = REPORT.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 3\nRequests/sec",
        );
        assert!(parse(&bad).is_err());
        let bad = REPORT.replace(
            "Requests/sec",
            "  Socket errors: connect 0, read 1, write 0, timeout 0\nRequests/sec",
        );
        assert!(parse(&bad).is_err());
    }

    #[test]
    fn lua_strings_cannot_be_closed_by_their_text() {
        assert_eq!(long_string("a"), "[[a]]");
        assert_eq!(long_string("x]]y"), "[=[x]]y]=]");
        assert_eq!(long_string("]]]=]"), "[==[]]]=]]==]");
    }
}
