//! An authenticated MCP `tools/call nexus_read_file` of a 1 KiB file through the hub
//! (mcp-frontend → rpc-server, warm identity cache) against the limit: the same tool served
//! by rmcp straight from disk with no auth and no hop, and the same plus one loopback HTTP
//! hop. All three run in this process on 127.0.0.1, measured in the same run, with the same
//! rmcp client; ratios are to the no-hop limit.
//!
//! Usage: mcp_call [--quick]   (needs NEXUS_TEST_DATABASE_URL, see bench/run)

use nexus_bench::{Sample, measure, report};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientConfig, ContentBlock,
    ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig,
    Tool,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{
    ClientLifecycleMode, ClientServiceExt, ErrorData, RoleClient, RoleServer, ServerHandler,
};
use rpc_server::db::Backend;
use rpc_server::testing::{TestApp, TestOptions};
use serde_json::{Map, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The limit: `nexus_read_file` answered by rmcp from disk, optionally after one HTTP hop.
#[derive(Clone)]
struct DirectRead {
    root: PathBuf,
    hop: Option<(reqwest::Client, String)>,
}

impl ServerHandler for DirectRead {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let schema = json!({"type": "object", "properties": {"path": {"type": "string"}}});
        let Some(obj) = schema.as_object().cloned() else {
            return Ok(ListToolsResult::default());
        };
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "nexus_read_file",
            "read",
            Arc::new(obj),
        )]))
    }

    async fn call_tool(
        &self,
        r: CallToolRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let path = r
            .arguments
            .as_ref()
            .and_then(|a| a.get("path"))
            .and_then(|p| p.as_str())
            .unwrap_or("");
        let text = match &self.hop {
            // One loopback hop to a plain HTTP file server, the shape of frontend → rpc-server.
            Some((client, url)) => {
                let resp = client.post(url).body(path.to_owned()).send().await;
                match resp {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(e) => {
                        return Ok(
                            CallToolResult::error(vec![ContentBlock::text(e.to_string())]).into(),
                        );
                    }
                }
            }
            None => tokio::fs::read_to_string(self.root.join(path.trim_start_matches('/')))
                .await
                .unwrap_or_default(),
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}

async fn serve_rmcp(handler: DirectRead) -> String {
    let cfg = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_json_response(true);
    let svc: StreamableHttpService<DirectRead, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        cfg,
    );
    let app = axum::Router::new().route_service("/mcp", svc);
    serve(app).await + "/mcp"
}

async fn serve(app: axum::Router) -> String {
    use axum::serve::ListenerExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let l = l.tap_io(|t| {
        let _ = t.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(l, app).await });
    format!("http://{addr}")
}

async fn client(url: &str, token: Option<&str>) -> RunningService<RoleClient, ClientConfig> {
    let mut cfg = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(t) = token {
        cfg = cfg.auth_header(t.to_owned());
    }
    ClientConfig::default()
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_config(cfg),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("client connects")
}

fn read_call(path: &str) -> CallToolRequestParams {
    let mut args = Map::new();
    args.insert("path".into(), json!(path));
    CallToolRequestParams::new("nexus_read_file").with_arguments(args)
}

/// Throughput at `conc` concurrent callers for `dur`, with p99 of all calls.
async fn throughput(
    name: &str,
    url: &str,
    token: Option<&str>,
    path: &str,
    conc: usize,
    dur: Duration,
) -> (f64, Duration) {
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let c = client(url, token).await;
        let (done, path) = (done.clone(), path.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let end = Instant::now() + dur;
            while Instant::now() < end {
                let t = Instant::now();
                let r = c.call_tool(read_call(&path)).await.expect("call");
                assert_ne!(r.is_error, Some(true), "tool error");
                lat.push(t.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
            }
            let _ = c.cancel().await;
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all.sort();
    let p99 = all
        .get(all.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default();
    let rate = done.load(Ordering::Relaxed) as f64 / dur.as_secs_f64();
    println!(
        "{name:<44} {conc:>4} callers  {rate:>9.0} calls/s  p99 {:>8.1} µs",
        p99.as_secs_f64() * 1e6
    );
    (rate, p99)
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (iters, dur) = if quick {
        (500, Duration::from_secs(2))
    } else {
        (5000, Duration::from_secs(8))
    };
    let content = "x".repeat(1023) + "\n";

    // The hub: Postgres, warm cache, frontend in front.
    // Limits off: the bench measures serving, not throttling.
    let app = TestApp::spawn_with(Backend::Postgres, TestOptions::unthrottled()).await;
    app.zone("eng").await;
    let token = app.mint("bench", Some("eng:rw"), false).await.token;
    app.rpc(
        &token,
        "write",
        json!({"path": "/kb.txt", "content": content}),
    )
    .await
    .expect("write");
    let mut fe_cfg = mcp_frontend::FrontendConfig::local(&app.base, 0);
    // The audit line still is built and queued; only the stdout write is skipped.
    fe_cfg.audit_stdout = false;
    let fe = mcp_frontend::Frontend::build(fe_cfg)
        .await
        .expect("frontend");
    let hub_url = format!("http://127.0.0.1:{}/mcp", fe.port());
    tokio::spawn(fe.run_until_stopped(std::future::pending()));

    // The limit, on the same file.
    let root = app.data_dir.path().join("zones/eng");
    let direct_url = serve_rmcp(DirectRead {
        root: root.clone(),
        hop: None,
    })
    .await;
    let file_root = root.clone();
    let files = axum::Router::new().route(
        "/read",
        axum::routing::post(move |body: String| {
            let p = file_root.join(body.trim_start_matches('/'));
            async move { tokio::fs::read_to_string(p).await.unwrap_or_default() }
        }),
    );
    let files_url = serve(files).await + "/read";
    let hop = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let hop_url = serve_rmcp(DirectRead {
        root,
        hop: Some((hop, files_url)),
    })
    .await;

    println!("== concurrency 1: latency (same rmcp client, stateless 2026-07-28 calls)");
    let mut samples: Vec<Sample> = Vec::new();
    for (name, url, tok) in [
        (
            "limit: rmcp from disk, no auth, no hop",
            direct_url.as_str(),
            None,
        ),
        ("limit + one loopback HTTP hop", hop_url.as_str(), None),
        (
            "hub: frontend → rpc-server, cache hit",
            hub_url.as_str(),
            Some(token.as_str()),
        ),
    ] {
        let c = client(url, tok).await;
        let s = measure(name, 200, iters, || async {
            let r = c.call_tool(read_call("/kb.txt")).await.expect("call");
            assert_ne!(r.is_error, Some(true), "tool error: {r:?}");
        })
        .await;
        let _ = c.cancel().await;
        samples.push(s);
    }
    report(&samples[0], &[&samples[1], &samples[2]]);
    println!(
        "hub p50 / one-hop p50 = {:.2}",
        samples[2].p50.as_secs_f64() / samples[1].p50.as_secs_f64()
    );

    println!("\n== concurrency 64: throughput");
    let (a, _) = throughput(
        "limit: rmcp from disk, no auth, no hop",
        &direct_url,
        None,
        "/kb.txt",
        64,
        dur,
    )
    .await;
    let (b, _) = throughput(
        "limit + one loopback HTTP hop",
        &hop_url,
        None,
        "/kb.txt",
        64,
        dur,
    )
    .await;
    let (c, _) = throughput(
        "hub: frontend → rpc-server, cache hit",
        &hub_url,
        Some(&token),
        "/kb.txt",
        64,
        dur,
    )
    .await;
    println!(
        "hub / no-hop limit = {:.2}   hub / one-hop limit = {:.2}",
        c / a,
        c / b
    );
}
