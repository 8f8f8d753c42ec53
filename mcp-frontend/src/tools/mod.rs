//! The MCP server handler: lists the tools a caller may use and forwards each call to the
//! rpc-server with that caller's token. Failures are tool results with `isError: true` and
//! a message an agent can act on; only an unknown tool is a protocol error.

pub mod catalogue;

use crate::forward::{CallerToken, ForwardError, RpcClient, Verified};
use crate::layers::bearer::AuthSlot;
use catalogue::{TOOLS, ToolSpec, find};
use nexus_wire::ErrorCode;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::Value;
use std::sync::Arc;

/// What the bearer layer learned about this request, read from its HTTP extensions.
struct Caller {
    token: Option<CallerToken>,
    verified: Option<Verified>,
    slot: Option<AuthSlot>,
}

fn caller(ctx: &RequestContext<RoleServer>) -> Caller {
    let parts = ctx.extensions.get::<axum::http::request::Parts>();
    let ext = |p: &axum::http::request::Parts| {
        (
            p.extensions.get::<CallerToken>().cloned(),
            p.extensions.get::<Verified>().cloned(),
            p.extensions.get::<AuthSlot>().cloned(),
        )
    };
    let (token, verified, slot) = parts.map(ext).unwrap_or((None, None, None));
    Caller {
        token,
        verified,
        slot,
    }
}

#[derive(Clone, Debug)]
pub struct NexusTools {
    rpc: Arc<RpcClient>,
}

impl NexusTools {
    pub fn new(rpc: Arc<RpcClient>) -> Self {
        Self { rpc }
    }
}

const INSTRUCTIONS: &str = "Nexus Hub: shared files in zones. Start with nexus_whoami to see your zones; \
with one zone paths are '/'-rooted, with several use /zone/<zone>/…. Read before editing; pass \
if_match (a content_id) to avoid overwriting someone else's change.";

fn text(s: impl Into<String>) -> Vec<ContentBlock> {
    vec![ContentBlock::text(s)]
}

fn tool_error(msg: impl Into<String>) -> CallToolResponse {
    CallToolResult::error(text(msg)).into()
}

/// A message that tells the agent what went wrong and what to try.
fn explain(spec: &ToolSpec, e: &ForwardError) -> String {
    match e {
        ForwardError::Rpc(err) => {
            // Errors that explain themselves (admin lookups carry a reason) need no hint.
            let hint = if err.data.is_some() {
                ""
            } else {
                match err.kind() {
                    Some(ErrorCode::FileNotFound) => {
                        " (check the path with nexus_list_files or nexus_glob)"
                    }
                    Some(ErrorCode::InvalidPath) => {
                        " (paths are inside your zones; see nexus_whoami)"
                    }
                    Some(ErrorCode::PermissionDenied) => {
                        " (see your zones and permissions with nexus_whoami)"
                    }
                    Some(ErrorCode::Conflict) => {
                        " (read the file again, then retry with the new content_id)"
                    }
                    Some(ErrorCode::InvalidParams) => " (check the tool's input schema)",
                    _ => "",
                }
            };
            format!("{} failed: {}{hint}", spec.name, err.message)
        }
        other => format!("{} failed: {other}", spec.name),
    }
}

fn success(spec: &ToolSpec, v: Value) -> CallToolResponse {
    // The file's text is the result of a read, so agents get it verbatim.
    if spec.name == "nexus_read_file"
        && let Some(Value::String(content)) = v.get("content")
    {
        return CallToolResult::success(text(content.clone())).into();
    }
    let body = serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string());
    CallToolResult::success(text(body)).into()
}

impl ServerHandler for NexusTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("nexus-hub", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let admin = caller(&ctx).verified.is_some_and(|v| v.is_admin);
        Ok(ListToolsResult::with_all_items(
            TOOLS
                .iter()
                .filter(|t| admin || !t.admin)
                .map(ToolSpec::to_tool)
                .collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(spec) = find(&request.name) else {
            return Err(McpError::invalid_params(
                format!(
                    "unknown tool: {}",
                    nexus_wire::jsonrpc::printable(&request.name)
                ),
                None,
            ));
        };
        let c = caller(&ctx);
        let Some(token) = c.token else {
            return Ok(tool_error(
                "no token: send Authorization: Bearer sk-… with every request",
            ));
        };
        if spec.admin && c.verified.as_ref().is_some_and(|v| !v.is_admin) {
            return Ok(tool_error(format!(
                "{}: permission denied: needs an admin token",
                spec.name
            )));
        }
        let args = Value::Object(request.arguments.unwrap_or_default());
        match self.rpc.call(&token, spec.rpc_method, args).await {
            Ok((v, verified)) => {
                if let Some(slot) = &c.slot {
                    slot.verified(verified);
                }
                Ok(success(spec, v))
            }
            Err(e) => {
                if let Some(slot) = &c.slot {
                    match &e {
                        ForwardError::Unauthorized => slot.unauthorized(),
                        // Nobody vouched for the token: the caller hears "retry", never a
                        // tool result (a 200 would tell a junk token from a refused one).
                        ForwardError::AuthUnavailable | ForwardError::Unavailable(_) => {
                            slot.unavailable()
                        }
                        ForwardError::RateLimited {
                            retry_after,
                            verified,
                        } => slot.rate_limited(*retry_after, verified),
                        _ => {}
                    }
                }
                Ok(tool_error(explain(spec, &e)))
            }
        }
    }
}
