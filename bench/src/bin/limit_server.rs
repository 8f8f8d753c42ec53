//! The limit servers as a process, measured like the hub's (see `nexus_bench::limit`).
//!
//! Usage:
//!   limit_server direct <port> <root>            rmcp from disk, no auth
//!   limit_server files  <port> <root> <token>    the file server at the end of the hop
//!   limit_server hop    <port> <files-url> <token>  rmcp + bearer check + one hop
//!   limit_server floor-back  <port> <root> <token>     bare hyper: token, file, JSON-RPC result
//!   limit_server floor-front <port> <back-url> <token> bare hyper: token, pooled forward

use nexus_bench::floor;
use nexus_bench::limit::{DirectRead, Source, TokenCache, files_router, mcp_router, serve};
use std::path::PathBuf;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> anyhow::Result<&str> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| anyhow::anyhow!("usage: limit_server direct|files|hop <port> …"))
    };
    let port: u16 = arg(1)?.parse()?;
    match arg(0)? {
        "floor-back" => {
            let back = floor::Back::new(PathBuf::from(arg(2)?), arg(3)?);
            return floor::serve(port, move |r| back.clone().handle(r)).await;
        }
        "floor-front" => {
            let front = floor::Front::new(arg(2)?, arg(3)?)?;
            return floor::serve(port, move |r| front.clone().handle(r)).await;
        }
        _ => {}
    }
    let app = match arg(0)? {
        "direct" => mcp_router(
            DirectRead {
                source: Source::Disk(PathBuf::from(arg(2)?)),
            },
            None,
        ),
        "files" => files_router(PathBuf::from(arg(2)?), TokenCache::new(&[arg(3)?])),
        "hop" => {
            let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
            mcp_router(
                DirectRead {
                    source: Source::Hop {
                        client,
                        url: arg(2)?.to_owned(),
                    },
                },
                Some(TokenCache::new(&[arg(3)?])),
            )
        }
        other => {
            anyhow::bail!("unknown mode {other:?}: direct, files, hop, floor-back or floor-front")
        }
    };
    serve(app, port).await
}
