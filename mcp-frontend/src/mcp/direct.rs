//! The direct path. A stateless (2026-07-28) `tools/call`, `tools/list`, `server/discover`
//! or `ping` whose headers and body check out is answered here, inline, from the body the
//! bearer layer parsed: no per-request rmcp service, task or channel. Everything else —
//! sessions, other protocol versions, anything malformed or unusual — goes to rmcp, which
//! answers it as it always has. So this path need only be exact for what it accepts: the
//! checks below accept a subset of what rmcp accepts, the answers are rmcp's own model
//! types serialized as rmcp serializes them, and a differential test
//! (`hub-cli/tests/mcp_direct.rs`) holds the two paths to byte-identical JSON-RPC and the
//! same HTTP statuses.

use super::handler::NexusTools;
use crate::request::{Envelope, McpBody, Parsed};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::ServerHandler;
use rmcp::model::{
    ClientCapabilities, DiscoverResult, ErrorCode, JsonObject, PingRequestMethod, ProtocolVersion,
    RequestId, ServerJsonRpcMessage, ServerResult,
};
use serde::Deserialize;
use serde_json::value::RawValue;

const SESSION: &str = nexus_wire::headers::SESSION;
const PROTOCOL_VERSION: &str = "mcp-protocol-version";
const MCP_METHOD: &str = "mcp-method";
const MCP_NAME: &str = "mcp-name";
/// The prefix of a Base64-wrapped SEP-2243 header value (left to rmcp to decode).
const BASE64_PREFIX: &str = "=?base64?";

/// A request the direct path answers.
#[derive(Debug)]
pub(crate) struct Plan {
    id: RequestId,
    what: What,
}

#[derive(Debug)]
enum What {
    Call { name: String, arguments: JsonObject },
    List,
    Discover,
    Ping,
}

/// The `_meta` members every 2026-07-28 request must carry, decoded as rmcp decodes them.
/// A member rmcp would take as missing (malformed) fails this decode, and the request
/// goes to rmcp.
#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion")]
    version: ProtocolVersion,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities")]
    #[allow(dead_code)]
    capabilities: ClientCapabilities,
    #[serde(rename = "progressToken", default)]
    progress_token: Option<serde::de::IgnoredAny>,
}

/// The one value of a header, as text; `None` when absent, repeated or not text.
fn single<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut all = h.get_all(name).iter();
    let v = all.next()?;
    if all.next().is_some() {
        return None;
    }
    v.to_str().ok()
}

/// True when `Accept` names both JSON and SSE plainly (no parameters, no quotes): what
/// rmcp also accepts. Anything fancier is rmcp's to judge.
fn accepts_json_and_sse(h: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for v in h.get_all(header::ACCEPT) {
        let Ok(v) = v.to_str() else { return false };
        if v.contains(['"', ';']) {
            return false;
        }
        for essence in v.split(',').map(str::trim) {
            json |= essence.eq_ignore_ascii_case("application/json");
            sse |= essence.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && sse
}

fn is_json(h: &HeaderMap) -> bool {
    single(h, header::CONTENT_TYPE.as_str()).is_some_and(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/json")
    })
}

/// What the direct path will answer for this request, or `None` for rmcp.
pub(crate) fn plan(parts: &Parts, body: &McpBody, tools: &NexusTools) -> Option<Plan> {
    let h = &parts.headers;
    if parts.method != Method::POST
        || h.contains_key(SESSION)
        || !accepts_json_and_sse(h)
        || !is_json(h)
        || single(h, PROTOCOL_VERSION) != Some(ProtocolVersion::V_2026_07_28.as_str())
    {
        return None;
    }
    let Parsed::Single(Envelope {
        jsonrpc: Some(jsonrpc),
        id: Some(id),
        method: Some(method),
        params: Some(params),
    }) = &body.parsed
    else {
        return None;
    };
    if params.other || jsonrpc.get() != r#""2.0""# || single(h, MCP_METHOD) != Some(method.as_str())
    {
        return None;
    }
    let id: RequestId = serde_json::from_str(id.get()).ok()?;
    // Every one of these requests names its version and capabilities in `_meta`, and the
    // version is the one in the header.
    let meta: Meta = serde_json::from_str(params.meta.as_ref()?.get()).ok()?;
    if meta.version != ProtocolVersion::V_2026_07_28
        || !tools.supported_protocol_versions().contains(&meta.version)
    {
        return None;
    }
    let p = params;
    let what = match method.as_str() {
        "tools/call" => {
            let name: String = serde_json::from_str(p.name.as_ref()?.get()).ok()?;
            let named = single(h, MCP_NAME)?;
            if named.starts_with(BASE64_PREFIX) || named != name || p.cursor.is_some() {
                return None;
            }
            // A long call that asks for progress is streamed, by rmcp.
            if meta.progress_token.is_some()
                && super::handler::REPORTS_PROGRESS.contains(&name.as_str())
            {
                return None;
            }
            // An object, or nothing (absent or null): what rmcp takes as arguments.
            let arguments = match p.arguments.as_deref().map(RawValue::get) {
                None | Some("null") => JsonObject::new(),
                Some(raw) if raw.starts_with('{') => serde_json::from_str(raw).ok()?,
                Some(_) => return None,
            };
            What::Call { name, arguments }
        }
        "tools/list" => {
            let string = |c: &RawValue| c.get().starts_with('"');
            if p.name.is_some() || p.arguments.is_some() || !p.cursor.as_deref().is_none_or(string)
            {
                return None;
            }
            What::List
        }
        "server/discover" | "ping" => {
            if p.name.is_some() || p.arguments.is_some() || p.cursor.is_some() {
                return None;
            }
            if method == "ping" {
                What::Ping
            } else {
                What::Discover
            }
        }
        _ => return None,
    };
    Some(Plan { id, what })
}

/// Answers a planned request as rmcp would: the same result types, the same
/// post-processing for a 2026-07-28 peer, the same HTTP status for the message.
pub(crate) async fn answer(tools: &NexusTools, plan: Plan, ext: &Extensions) -> Response {
    let result: Result<ServerResult, rmcp::ErrorData> = match plan.what {
        What::Call { name, arguments } => tools
            .call(Some(ext), &name, &arguments)
            .await
            .map(ServerResult::from),
        What::List => Ok(ServerResult::ListToolsResult(tools.list(Some(ext)))),
        What::Discover => Ok(ServerResult::DiscoverResult(
            DiscoverResult::from_server_info(
                tools.supported_protocol_versions().into_owned(),
                tools.get_info(),
            ),
        )),
        // The 2026-07-28 lifecycle has no ping.
        What::Ping => Err(rmcp::ErrorData::method_not_found::<PingRequestMethod>()),
    };
    let msg = match result {
        Ok(mut r) => {
            r.fill_missing_cache_hints();
            ServerJsonRpcMessage::response(r, plan.id)
        }
        Err(mut e) => {
            if e.code == ErrorCode::RESOURCE_NOT_FOUND {
                e.code = ErrorCode::INVALID_PARAMS;
            }
            ServerJsonRpcMessage::error(e, Some(plan.id))
        }
    };
    message(msg)
}

/// The message as the whole JSON reply, with the status rmcp gives it.
fn message(msg: ServerJsonRpcMessage) -> Response {
    let status = match &msg {
        ServerJsonRpcMessage::Error(e) => match e.error.code {
            ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
            | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
            | ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
            ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        },
        _ => StatusCode::OK,
    };
    match serde_json::to_vec(&msg) {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
