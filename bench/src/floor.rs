//! The floor under the hub's two processes: two bare hyper servers and nothing else. The
//! front checks the bearer against a cached digest (constant-time compare) and forwards the
//! body with a pooled hyper client (HTTP/1.1 keep-alive, TCP_NODELAY); the back checks the
//! token again, reads the small file inline and answers a JSON-RPC result shaped like the
//! hub's tool result. No MCP library, no middleware stack: what two hops cost at the least.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Largest request body either hop accepts.
const MAX_BODY: usize = 1 << 20;

/// The one token a floor server knows, kept as its SHA-256 digest.
#[derive(Clone, Debug)]
pub struct CachedToken([u8; 32]);

impl CachedToken {
    pub fn new(token: &str) -> Self {
        Self(Sha256::digest(token).into())
    }

    fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(token).into();
        digest.ct_eq(&self.0).into()
    }
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}

fn json(code: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

async fn body(req: Request<Incoming>) -> Option<Bytes> {
    Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .ok()
        .map(|b| b.to_bytes())
}

/// Serves `handler` on 127.0.0.1:`port`, HTTP/1.1 with keep-alive, TCP_NODELAY on every
/// accepted connection.
pub async fn serve<F, Fut>(port: u16, handler: F) -> anyhow::Result<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let h = handler.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let answer = h(req);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// Server A: bearer check, then the body forwarded to `back` with the caller's token.
#[derive(Clone, Debug)]
pub struct Front {
    token: CachedToken,
    client: Client<HttpConnector, Full<Bytes>>,
    back: hyper::Uri,
}

impl Front {
    pub fn new(back: &str, token: &str) -> anyhow::Result<Arc<Front>> {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        Ok(Arc::new(Front {
            token: CachedToken::new(token),
            client: Client::builder(TokioExecutor::new()).build(conn),
            back: back.parse()?,
        }))
    }

    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if !self.token.allows(req.headers()) {
            return status(StatusCode::UNAUTHORIZED);
        }
        let auth = req.headers().get(AUTHORIZATION).cloned();
        let Some(payload) = body(req).await else {
            return status(StatusCode::PAYLOAD_TOO_LARGE);
        };
        let mut fwd = Request::post(self.back.clone());
        if let Some(a) = auth {
            fwd = fwd.header(AUTHORIZATION, a);
        }
        let Ok(fwd) = fwd
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(payload))
        else {
            return status(StatusCode::INTERNAL_SERVER_ERROR);
        };
        let Ok(resp) = self.client.request(fwd).await else {
            return status(StatusCode::BAD_GATEWAY);
        };
        let code = resp.status();
        match resp.into_body().collect().await {
            Ok(b) => json(code, b.to_bytes().into()),
            Err(_) => status(StatusCode::BAD_GATEWAY),
        }
    }
}

#[derive(Deserialize)]
struct Call<'a> {
    id: serde_json::Value,
    #[serde(borrow)]
    params: Params<'a>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow)]
    arguments: Args<'a>,
}

#[derive(Deserialize)]
struct Args<'a> {
    #[serde(borrow)]
    path: std::borrow::Cow<'a, str>,
}

/// Server B: bearer check, then the file named by the JSON-RPC call's `path` argument.
#[derive(Clone, Debug)]
pub struct Back {
    token: CachedToken,
    root: PathBuf,
}

impl Back {
    pub fn new(root: PathBuf, token: &str) -> Arc<Back> {
        Arc::new(Back {
            token: CachedToken::new(token),
            root,
        })
    }

    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if !self.token.allows(req.headers()) {
            return status(StatusCode::UNAUTHORIZED);
        }
        let Some(payload) = body(req).await else {
            return status(StatusCode::PAYLOAD_TOO_LARGE);
        };
        let Ok(call) = serde_json::from_slice::<Call<'_>>(&payload) else {
            return status(StatusCode::BAD_REQUEST);
        };
        let result = match inside(&self.root, &call.params.arguments.path) {
            Some(p) => crate::limit::read_small(&p).await,
            None => Err(std::io::Error::other("path leaves the root")),
        };
        let (text, is_error) = match result {
            Ok(t) => (t, false),
            Err(e) => (e.to_string(), true),
        };
        let answer = Answer {
            jsonrpc: "2.0",
            id: &call.id,
            result: ToolResult {
                content: [Text {
                    kind: "text",
                    text: &text,
                }],
                is_error,
            },
        };
        json(
            StatusCode::OK,
            serde_json::to_vec(&answer).unwrap_or_default(),
        )
    }
}

/// The JSON-RPC answer, written straight from these borrowed fields.
#[derive(Serialize)]
struct Answer<'a> {
    jsonrpc: &'static str,
    id: &'a serde_json::Value,
    result: ToolResult<'a>,
}

#[derive(Serialize)]
struct ToolResult<'a> {
    content: [Text<'a>; 1],
    #[serde(rename = "isError")]
    is_error: bool,
}

#[derive(Serialize)]
struct Text<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

/// `path` under `root`, refused if any component would climb out of it.
fn inside(root: &Path, path: &str) -> Option<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| root.join(rel))
}
