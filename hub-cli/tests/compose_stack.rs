//! The compose file, run for real without Docker: this test reads `docker-compose.hub.yml`,
//! takes each service's command and environment exactly as written, points the service
//! host names at real Postgres and Redis on 127.0.0.1, runs the same `nexus hub …` commands
//! the quickstart runs with `docker compose exec nexus`, starts both servers as processes,
//! and drives an MCP client through the frontend with the token the quickstart mints.
//!
//! Rewrites, and nothing else: service host names and container ports → 127.0.0.1 and free
//! ports, `0.0.0.0` → `127.0.0.1` (tests listen on loopback only), `/data` → a temp dir, the
//! database name → a fresh one, and `nexusd` → `nexus serve` (the same server; the test
//! harness builds only the `nexus` binary for this crate). The frontend runs as written:
//! the `nexus-mcp` binary.

use crate::frontend_bin;

use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn compose() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker-compose.hub.yml");
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
            path,
        ])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 with PyYAML is needed (pip install pyyaml): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("compose as JSON")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `${VAR:?msg}` / `${VAR:-default}` / `${VAR}` interpolation, as compose does it.
fn interpolate(s: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').expect("closing brace") + i;
        let expr = &rest[i + 2..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr.split(":?").next().unwrap_or(expr), None),
        };
        match (vars.get(name), default) {
            (Some(v), _) => out.push_str(v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => panic!("compose needs {name}, which has no default"),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

struct Service {
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

fn service(
    c: &Value,
    name: &str,
    vars: &BTreeMap<&str, String>,
    hosts: &[(String, String)],
) -> Service {
    let svc = &c["services"][name];
    let rewrite = |s: &str| {
        let mut s = interpolate(s, vars);
        for (from, to) in hosts {
            s = s.replace(from.as_str(), to.as_str());
        }
        s
    };
    let argv = svc["command"]
        .as_array()
        .expect("command list")
        .iter()
        .map(|a| rewrite(a.as_str().expect("string")))
        .collect();
    let env = svc["environment"]
        .as_object()
        .expect("environment map")
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                rewrite(
                    &v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string()),
                ),
            )
        })
        .collect();
    Service { argv, env }
}

/// `argv` with the binary it names: `nexus`, `nexusd` (as `nexus serve`) or `nexus-mcp`.
fn nexus(argv: &[String], env: &[(String, String)]) -> Command {
    let bin = match argv.first().map(String::as_str) {
        Some("nexus-mcp") => frontend_bin::nexus_mcp(),
        _ => std::path::Path::new(env!("CARGO_BIN_EXE_nexus")),
    };
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("NEXUS_") {
            cmd.env_remove(k);
        }
    }
    let args: Vec<String> = if argv.first().map(String::as_str) == Some("nexusd") {
        std::iter::once("serve".to_owned())
            .chain(argv[1..].iter().cloned())
            .collect()
    } else {
        argv[1..].to_vec()
    };
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd
}

async fn wait_healthy(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} not healthy in 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_runs_and_serves_an_mcp_client() {
    let c = compose();
    let services: Vec<&String> = c["services"]
        .as_object()
        .expect("services")
        .keys()
        .collect();
    assert_eq!(
        services,
        // n1-n3: the `nats` profile's cluster bus (deploy_lint.rs checks them).
        [
            "mcp-frontend",
            "n1",
            "n2",
            "n3",
            "nexus",
            "postgres",
            "redis",
            "seaweedfs"
        ]
    );

    // Real Postgres and Redis on 127.0.0.1 stand in for the `postgres` and `redis` services.
    let admin = rpc_server::testing::postgres_admin_url();
    let db_url = rpc_server::testing::empty_postgres_database("nexus_compose").await;
    let db_name = db_url
        .rsplit_once('/')
        .map(|(_, n)| n.to_owned())
        .expect("db name");
    let pg_hostport = admin
        .split('@')
        .nth(1)
        .and_then(|h| h.split('/').next())
        .expect("host:port")
        .to_owned();
    let store = rpc_server::db::Store::connect(&admin).await.expect("admin");
    let _ = store.execute_raw("CREATE ROLE nexus LOGIN").await;
    store
        .execute_raw(&format!("ALTER DATABASE {db_name} OWNER TO nexus"))
        .await
        .expect("owner");
    store.close().await;
    let redis = rpc_server::testing::redis_url();
    let redis_hostport = redis
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();

    let (rpc_port, mcp_port) = (free_port(), free_port());
    let data = tempfile::tempdir().expect("tempdir");
    let vars: BTreeMap<&str, String> = BTreeMap::from([
        ("POSTGRES_PASSWORD", "compose-test-password".to_owned()),
        (
            "NEXUS_API_KEY_SECRET",
            "compose-test-secret-0123456789abcdef0123456789".to_owned(),
        ),
    ]);
    let hosts: Vec<(String, String)> = vec![
        (
            "@postgres:5432/nexus".into(),
            format!("@{pg_hostport}/{db_name}"),
        ),
        (
            "redis://redis:6379/".into(),
            format!("redis://{redis_hostport}/"),
        ),
        (
            "http://nexus:2026".into(),
            format!("http://127.0.0.1:{rpc_port}"),
        ),
        ("0.0.0.0".into(), "127.0.0.1".into()),
        ("2026".into(), rpc_port.to_string()),
        ("8081".into(), mcp_port.to_string()),
        ("/data".into(), data.path().display().to_string()),
    ];
    let rpc = service(&c, "nexus", &vars, &hosts);
    let fe = service(&c, "mcp-frontend", &vars, &hosts);
    assert_eq!(
        fe.argv[0], "nexus-mcp",
        "the frontend binary: {:?}",
        fe.argv
    );
    assert!(
        fe.env
            .iter()
            .all(|(k, _)| k != "NEXUS_API_KEY" && k != "NEXUS_DATABASE_URL"),
        "frontend holds no credentials"
    );

    let _rpc = Kill(
        nexus(&rpc.argv, &rpc.env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nexus"),
    );
    wait_healthy(&format!("http://127.0.0.1:{rpc_port}/healthz/ready")).await;

    // The quickstart's `docker compose exec nexus …` commands, with the nexus service's env.
    let exec = |args: &[&str]| {
        let argv: Vec<String> = std::iter::once("nexus")
            .chain(args.iter().copied())
            .map(str::to_owned)
            .collect();
        let out = nexus(&argv, &rpc.env).output().expect("run nexus");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    exec(&["hub", "zone", "create", "root"]);
    let minted = exec(&[
        "hub", "token", "create", "--name", "root", "--admin", "--zone", "root",
    ]);
    let token = minted
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .expect("token line")
        .trim()
        .to_owned();
    assert!(exec(&["hub", "status"]).contains("redis: ok"));

    let mut fe_env = fe.env.clone();
    fe_env.push(("NEXUS_AUDIT_STDOUT".into(), "false".into()));
    let _fe = Kill(
        nexus(&fe.argv, &fe_env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start frontend"),
    );
    wait_healthy(&format!("http://127.0.0.1:{mcp_port}/health")).await;

    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://127.0.0.1:{mcp_port}/mcp"))
            .auth_header(token),
    );
    let client = ClientConfig::default()
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("MCP client connects through the frontend");
    let call = |name: &str, args: Value| {
        let args: Map<String, Value> = args.as_object().cloned().unwrap_or_default();
        CallToolRequestParams::new(name.to_owned()).with_arguments(args)
    };
    let who = client
        .call_tool(call("nexus_whoami", json!({})))
        .await
        .expect("whoami");
    assert_ne!(who.is_error, Some(true), "{who:?}");
    let w = client
        .call_tool(call(
            "nexus_write_file",
            json!({"path": "/hello.md", "content": "from compose"}),
        ))
        .await
        .expect("write");
    assert_ne!(w.is_error, Some(true), "{w:?}");
    let r = client
        .call_tool(call("nexus_read_file", json!({"path": "/hello.md"})))
        .await
        .expect("read");
    let text: String = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    assert_eq!(text, "from compose");
    // Stored by the hub: the row in the compose database, the bytes under /data.
    assert_eq!(
        rpc_server::testing::stored_file_at(&db_url, data.path(), "root", "hello.md")
            .await
            .as_deref(),
        Some(&b"from compose"[..])
    );
    let _ = client.cancel().await;
}
