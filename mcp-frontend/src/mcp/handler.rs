//! The MCP server handler: lists the tools a caller may use and forwards each call to the
//! rpc-server with that caller's token. Failures are tool results with `isError: true` and
//! a message an agent can act on; only an unknown tool is a protocol error.

use super::catalogue::{TOOLS, ToolSpec, find};
use crate::forward::{ForwardError, RpcClient, Verified};
use crate::request::{Caller, Verdict, VerdictCell};
use axum::http::Extensions;
use nexus_wire::ErrorCode;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::Value;
use std::sync::Arc;

/// What the layers learned about this request, from its HTTP extensions.
fn parts(ctx: &RequestContext<RoleServer>) -> Option<&axum::http::request::Parts> {
    ctx.extensions.get::<axum::http::request::Parts>()
}

#[derive(Clone, Debug)]
pub(crate) struct NexusTools {
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

/// A tool result from the rpc-server's raw `result`.
fn success(spec: &ToolSpec, raw: &[u8]) -> Result<CallToolResponse, ForwardError> {
    // The file's text is the result of a read, so agents get it verbatim (and the hot
    // path builds no JSON tree for it).
    #[derive(serde::Deserialize)]
    struct Read {
        content: String,
        #[serde(default)]
        has_more: bool,
        total_lines: Option<usize>,
        next_offset: Option<usize>,
    }
    if spec.name == "nexus_read_file"
        && let Ok(r) = serde_json::from_slice::<Read>(raw)
    {
        let mut blocks = text(r.content);
        // A window with more after it says how to go on, apart from the text itself.
        if r.has_more
            && let (Some(total), Some(next)) = (r.total_lines, r.next_offset)
        {
            blocks.push(ContentBlock::text(format!(
                "[{total} lines in all; more follow: read again with offset={next}]"
            )));
        }
        return Ok(CallToolResult::success(blocks).into());
    }
    let v: Value = serde_json::from_slice(raw)
        .map_err(|_| ForwardError::Unavailable("malformed response".into()))?;
    let body = serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string());
    Ok(CallToolResult::success(text(body)).into())
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
        Ok(self.list(parts(&ctx).map(|p| &p.extensions)))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = request.arguments.unwrap_or_default();
        self.call(parts(&ctx).map(|p| &p.extensions), &request.name, &args)
            .await
    }
}

impl NexusTools {
    /// The tools this caller may use: admin tools only for an admin token.
    pub(crate) fn list(&self, ext: Option<&Extensions>) -> ListToolsResult {
        let admin = ext
            .and_then(|x| x.get::<Verified>())
            .is_some_and(|v| v.is_admin);
        ListToolsResult::with_all_items(
            TOOLS
                .iter()
                .filter(|t| admin || !t.admin)
                .map(ToolSpec::to_tool)
                .collect(),
        )
    }

    /// One tool call, forwarded with the caller's token (both MCP paths come here).
    pub(crate) async fn call(
        &self,
        ext: Option<&Extensions>,
        name: &str,
        args: &JsonObject,
    ) -> Result<CallToolResponse, McpError> {
        let Some(spec) = find(name) else {
            return Err(McpError::invalid_params(
                format!("unknown tool: {}", nexus_wire::jsonrpc::printable(name)),
                None,
            ));
        };
        let Some(caller) = ext.and_then(|x| x.get::<Caller>()) else {
            return Ok(tool_error(
                "no token: send Authorization: Bearer sk-… with every request",
            ));
        };
        let verdict = ext.and_then(|x| x.get::<VerdictCell>());
        if spec.admin
            && ext
                .and_then(|x| x.get::<Verified>())
                .is_some_and(|v| !v.is_admin)
        {
            return Ok(tool_error(format!(
                "{}: permission denied: needs an admin token",
                spec.name
            )));
        }
        let result = self
            .rpc
            .call_raw(&caller.token, spec.rpc_method, args)
            .await
            .and_then(|(raw, verified)| Ok((success(spec, &raw)?, verified)));
        match result {
            Ok((answer, verified)) => {
                if let Some(cell) = verdict {
                    cell.set(Verdict::Verified(verified));
                }
                Ok(answer)
            }
            Err(e) => {
                // A refusal of the token itself is the bearer layer's to answer (401, 429,
                // 503); the caller hears "retry", never a tool result (a 200 would tell a
                // junk token from a refused one).
                if let Some(cell) = verdict
                    && is_verdict(&e)
                {
                    cell.set(Verdict::Refused(e.clone()));
                }
                Ok(tool_error(explain(spec, &e)))
            }
        }
    }
}

/// True when the error is the rpc-server's judgement of the token, not of the call.
fn is_verdict(e: &ForwardError) -> bool {
    matches!(
        e,
        ForwardError::Unauthorized
            | ForwardError::AuthUnavailable
            | ForwardError::Unavailable(_)
            | ForwardError::RateLimited { .. }
    )
}
