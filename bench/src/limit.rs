//! The limit the hub is measured against: rmcp serving `nexus_read_file` straight from disk
//! (no auth, no hop), and the same with one loopback HTTP hop to a file server, with a
//! cached token check on each side (a hash and a map lookup: the cheapest honest auth).
//! Small files are read inline, so the limit is the real floor and not a blocking-pool
//! round trip.
//! Run as processes by the `limit_server` binary so that they are measured like the hub.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

/// Tokens known to a server, by SHA-256 digest: a cache hit is one hash and one lookup.
#[derive(Clone, Debug, Default)]
pub struct TokenCache(Arc<HashSet<[u8; 32]>>);

impl TokenCache {
    pub fn new(tokens: &[&str]) -> Self {
        Self(Arc::new(
            tokens.iter().map(|t| Sha256::digest(t).into()).collect(),
        ))
    }

    fn allows(&self, header: Option<&axum::http::HeaderValue>) -> bool {
        let Some(token) = header
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(token).into();
        self.0.contains(&digest)
    }
}

async fn check_bearer(State(cache): State<TokenCache>, req: Request, next: Next) -> Response {
    if cache.allows(req.headers().get(axum::http::header::AUTHORIZATION)) {
        next.run(req).await
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

/// Where `nexus_read_file` gets its bytes: the disk, or a file server one hop away.
#[derive(Clone, Debug)]
pub enum Source {
    Disk(PathBuf),
    Hop {
        client: reqwest::Client,
        url: String,
    },
}

/// Files up to this size are read on the calling worker.
pub const INLINE_READ_MAX: u64 = 64 * 1024;

/// A file's text, read the cheapest correct way: a small file inline (one open, fstat and
/// read of a page-cached file costs less than handing it to the blocking pool and waking
/// the task again), a larger one on the blocking pool so that it cannot stall the worker.
pub async fn read_small(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len > INLINE_READ_MAX {
        drop(f);
        return tokio::fs::read_to_string(path).await;
    }
    let mut text = String::with_capacity(len as usize);
    f.read_to_string(&mut text)?;
    Ok(text)
}

/// `nexus_read_file` served by rmcp.
#[derive(Clone, Debug)]
pub struct DirectRead {
    pub source: Source,
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
        c: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let path = r
            .arguments
            .as_ref()
            .and_then(|a| a.get("path"))
            .and_then(|p| p.as_str())
            .unwrap_or("");
        let text = match &self.source {
            Source::Disk(root) => read_small(&root.join(path.trim_start_matches('/')))
                .await
                .map_err(|e| e.to_string()),
            Source::Hop { client, url } => {
                // The caller's token travels on, as the hub's frontend forwards it.
                let auth = c
                    .extensions
                    .get::<axum::http::request::Parts>()
                    .and_then(|p| p.headers.get(axum::http::header::AUTHORIZATION))
                    .cloned();
                let mut req = client.post(url).body(path.to_owned());
                if let Some(a) = auth {
                    req = req.header(reqwest::header::AUTHORIZATION, a);
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => r.text().await.map_err(|e| e.to_string()),
                    Ok(r) => Err(format!("file server: HTTP {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        Ok(match text {
            Ok(t) => CallToolResult::success(vec![ContentBlock::text(t)]),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(e)]),
        }
        .into())
    }
}

/// The rmcp endpoint at `/mcp`, served the way the hub's frontend serves it (JSON answers,
/// stateless calls accepted), with a bearer check in front when `tokens` is given.
pub fn mcp_router(handler: DirectRead, tokens: Option<TokenCache>) -> axum::Router {
    let cfg = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_json_response(true);
    let svc: StreamableHttpService<DirectRead, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        cfg,
    );
    let app = axum::Router::new().route_service("/mcp", svc);
    match tokens {
        Some(t) => app.layer(axum::middleware::from_fn_with_state(t, check_bearer)),
        None => app,
    }
}

/// The file server at the end of the hop: POST /read with a path, answers its content.
pub fn files_router(root: PathBuf, tokens: TokenCache) -> axum::Router {
    axum::Router::new()
        .route(
            "/read",
            axum::routing::post(move |body: String| {
                let p = root.join(body.trim_start_matches('/'));
                async move {
                    match read_small(&p).await {
                        Ok(t) => t.into_response(),
                        Err(_) => StatusCode::NOT_FOUND.into_response(),
                    }
                }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(tokens, check_bearer))
}

/// Serves `app` on 127.0.0.1:`port` with TCP_NODELAY, as the hub's servers do.
pub async fn serve(app: axum::Router, port: u16) -> anyhow::Result<()> {
    use axum::serve::ListenerExt;
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let l = l.tap_io(|t| {
        let _ = t.set_nodelay(true);
    });
    axum::serve(l, app).await?;
    Ok(())
}

/// Records the exact HTTP request rmcp's own client sends for `tools/call name(args)`
/// (stateless 2026-07-28 call), so the load generator replays what a real client sends.
pub async fn record_call(
    name: &str,
    args: serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<crate::loadgen::Replay> {
    use rmcp::model::{ClientConfig, ProtocolVersion};
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use rmcp::{ClientLifecycleMode, ClientServiceExt};
    type Seen = Arc<std::sync::Mutex<Option<(axum::http::HeaderMap, bytes::Bytes)>>>;

    async fn keep(State(seen): State<Seen>, req: Request, next: Next) -> Response {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        };
        if bytes.windows(10).any(|w| w == b"tools/call")
            && let Ok(mut s) = seen.lock()
        {
            *s = Some((parts.headers.clone(), bytes.clone()));
        }
        next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
            .await
    }

    let seen: Seen = Arc::default();
    let dir = tempfile::tempdir()?;
    let app = mcp_router(
        DirectRead {
            source: Source::Disk(dir.path().to_path_buf()),
        },
        None,
    )
    .layer(axum::middleware::from_fn_with_state(seen.clone(), keep));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(l, app).await });
    let client = ClientConfig::default()
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_config(
                StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp")),
            ),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await?;
    client
        .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(args))
        .await?;
    let _ = client.cancel().await;
    server.abort();
    let Some((headers, body)) = seen.lock().ok().and_then(|mut s| s.take()) else {
        anyhow::bail!("the rmcp client sent no tools/call");
    };
    let skip = [
        axum::http::header::HOST,
        axum::http::header::CONTENT_LENGTH,
        axum::http::header::AUTHORIZATION,
    ];
    Ok(crate::loadgen::Replay {
        addr,
        path: "/mcp".into(),
        headers: headers
            .iter()
            .filter(|(k, _)| !skip.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_and_large_files_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        for len in [
            0,
            1024,
            INLINE_READ_MAX as usize,
            INLINE_READ_MAX as usize + 1,
        ] {
            let p = dir.path().join(format!("{len}.txt"));
            std::fs::write(&p, "y".repeat(len)).expect("write");
            assert_eq!(read_small(&p).await.expect("read").len(), len);
        }
        assert!(read_small(&dir.path().join("absent")).await.is_err());
    }
}
