//! The MCP server handler: lists the tools a caller may use and forwards each call to the
//! rpc-server with that caller's token. Failures are tool results with `isError: true` and
//! a message an agent can act on; only an unknown tool is a protocol error. Resources,
//! prompts, completion and logging are answered here too ([`super::resources`],
//! [`super::prompts`]), every file-backed answer from the rpc-server with the caller's token.

use super::catalogue::{TOOLS, ToolSpec, find};
use super::subscriptions::{self, Event, PendingListen, Refused, Subscriptions};
use super::{prompts, resources};
use crate::forward::{ForwardError, RpcClient, Verified};
use crate::request::{Caller, Verdict, VerdictCell};
use axum::http::Extensions;
use nexus_wire::ErrorCode;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    CompletionInfo, ContentBlock, GetPromptRequestParams, GetPromptResponse, Implementation,
    JsonObject, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Reference, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;

/// What the layers learned about this request, from its HTTP extensions.
fn parts(ctx: &RequestContext<RoleServer>) -> Option<&axum::http::request::Parts> {
    ctx.extensions.get::<axum::http::request::Parts>()
}

#[derive(Clone, Debug)]
pub(crate) struct NexusTools {
    rpc: Arc<RpcClient>,
    subs: Arc<Subscriptions>,
    progress_every: std::time::Duration,
}

impl NexusTools {
    pub fn new(
        rpc: Arc<RpcClient>,
        subs: Arc<Subscriptions>,
        progress_every: std::time::Duration,
    ) -> Self {
        Self {
            rpc,
            subs,
            progress_every,
        }
    }

    pub(crate) fn subscriptions(&self) -> &Arc<Subscriptions> {
        &self.subs
    }
}

/// The tools that may take long (a walk of a whole zone): with a `progressToken` they
/// report progress while the hub works.
pub(crate) const REPORTS_PROGRESS: [&str; 4] = [
    "nexus_grep",
    "nexus_glob",
    "nexus_semantic_search",
    "nexus_list_files",
];

/// Runs `call`, sending `notifications/progress` every `every` until it is done. The
/// rpc-server answers a search in one piece, so what is reported is the time spent
/// (seconds, rising; no total): what keeps a client that resets its timeout on progress
/// waiting for a long grep instead of giving up on it.
async fn with_progress<F: std::future::Future>(
    call: F,
    peer: &rmcp::service::Peer<RoleServer>,
    token: rmcp::model::ProgressToken,
    tool: &str,
    every: std::time::Duration,
) -> F::Output {
    let mut tick = tokio::time::interval(every.max(std::time::Duration::from_millis(1)));
    let started = tokio::time::Instant::now();
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    tokio::pin!(call);
    loop {
        tokio::select! {
            done = &mut call => return done,
            _ = tick.tick() => {
                let seconds = started.elapsed().as_secs_f64();
                let note = rmcp::model::ProgressNotificationParam::new(token.clone(), seconds)
                    .with_message(format!("{tool}: working ({seconds:.1} s)"));
                // A client that went away stops nothing: the answer is still computed.
                let _ = peer.notify_progress(note).await;
            }
        }
    }
}

/// A subscription refused, as the JSON-RPC error the client sees.
fn refused(r: Refused) -> McpError {
    match r {
        Refused::NotReadable(p) => McpError::invalid_params(
            format!("cannot subscribe to {p}: this token may not read it"),
            None,
        ),
        Refused::Full(why) => McpError::invalid_request(why, None),
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
    // A listing asked for as markdown is answered as markdown (it carries its paging).
    #[derive(serde::Deserialize)]
    struct Markdown {
        markdown: String,
    }
    if spec.name == "nexus_list_files"
        && let Ok(r) = serde_json::from_slice::<Markdown>(raw)
    {
        return Ok(CallToolResult::success(text(r.markdown)).into());
    }
    let v: Value = serde_json::from_slice(raw)
        .map_err(|_| ForwardError::Unavailable("malformed response".into()))?;
    let body = serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string());
    Ok(CallToolResult::success(text(body)).into())
}

impl ServerHandler for NexusTools {
    // `logging/setLevel` belongs to the protocol versions clients speak today (2025-06-18,
    // 2025-11-25); SEP-2577 deprecates it for later ones.
    #[allow(deprecated)]
    fn get_info(&self) -> ServerConfig {
        let mut caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_prompts()
            .enable_completions()
            .enable_logging()
            .build();
        // Subscriptions are offered only where changes are announced (a bus, or the
        // rpc-server in this process).
        if let Some(r) = caps.resources.as_mut() {
            r.subscribe = Some(self.subs.available());
        }
        ServerConfig::new(caps)
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
        let call = self.call(parts(&ctx).map(|p| &p.extensions), &request.name, &args);
        match ctx
            .meta
            .get_progress_token()
            .filter(|_| REPORTS_PROGRESS.contains(&request.name.as_ref()))
        {
            Some(token) => {
                with_progress(call, &ctx.peer, token, &request.name, self.progress_every).await
            }
            None => call.await,
        }
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        use nexus_wire::methods::{ListParams, ListResult};
        let mut offset = resources::offset_of(request.as_ref().and_then(|r| r.cursor.as_deref()))?;
        let ext = parts(&ctx).map(|p| &p.extensions);
        // Directories are entries of the listing but not resources: a page is the files of
        // one listing page, or of the next ones when a page held only directories.
        loop {
            let page: ListResult = self
                .rpc(
                    ext,
                    "list",
                    &ListParams {
                        path: "/".into(),
                        recursive: true,
                        limit: resources::PAGE,
                        offset,
                        details: true,
                        response_format: Default::default(),
                    },
                )
                .await?;
            let found: Vec<_> = page
                .items
                .iter()
                .filter(|i| !i.is_dir)
                .map(resources::resource)
                .collect();
            let next = page.next_offset.filter(|_| page.has_more);
            match next {
                Some(next) if found.is_empty() => offset = next,
                _ => {
                    let mut r = ListResourcesResult::with_all_items(found);
                    r.next_cursor = next.map(resources::cursor);
                    return Ok(r);
                }
            }
        }
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            resources::template(),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        use nexus_wire::methods::{Encoding, ReadParams, ReadResult};
        let path = resources::path_of(&request.uri)?;
        // Read as base64 and decide here: text when the bytes are UTF-8, else a blob.
        let read: ReadResult = self
            .rpc(
                parts(&ctx).map(|p| &p.extensions),
                "read",
                &ReadParams {
                    path: path.clone(),
                    encoding: Encoding::Base64,
                    section: None,
                    block_type: None,
                    offset: None,
                    limit: None,
                },
            )
            .await?;
        let contents = resources::contents(request.uri, &read.path, read.content);
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(prompts::list()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        prompts::get(&request.name, request.arguments.as_ref()).map(Into::into)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        use nexus_wire::methods::{ListParams, ListResult};
        let completes_a_path = match &request.r#ref {
            Reference::Resource(r) => {
                r.uri == resources::TEMPLATE && request.argument.name == "path"
            }
            Reference::Prompt(p) => {
                (p.name == prompts::FILE_ANALYSIS && request.argument.name == prompts::FILE_PATH)
                    || (p.name == prompts::SEARCH_AND_SUMMARIZE && request.argument.name == "path")
            }
            _ => false,
        };
        let typed = &request.argument.value;
        let Some((dir, start)) = completes_a_path
            .then(|| resources::completion_query(typed))
            .flatten()
        else {
            return Ok(CompleteResult::default());
        };
        let listed: Result<ListResult, McpError> = self
            .rpc(
                parts(&ctx).map(|p| &p.extensions),
                "list",
                &ListParams {
                    path: dir,
                    recursive: false,
                    limit: 1000,
                    offset: 0,
                    details: false,
                    response_format: Default::default(),
                },
            )
            .await;
        // A directory that is not there (or not the caller's) completes to nothing.
        let Ok(listed) = listed else {
            return Ok(CompleteResult::default());
        };
        let matching: Vec<String> = listed
            .items
            .iter()
            .filter(|i| i.name.starts_with(&start))
            .map(|i| resources::completion_value(typed, i))
            .collect();
        let total = matching.len();
        let values: Vec<String> = matching
            .into_iter()
            .take(resources::MAX_COMPLETIONS)
            .collect();
        let mut info = CompletionInfo::new(values).unwrap_or_default();
        info.total = u32::try_from(total).ok();
        info.has_more = Some(total > resources::MAX_COMPLETIONS || listed.has_more);
        Ok(CompleteResult::new(info))
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: rmcp::model::SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let parts = parts(&ctx);
        let Some(session) = parts
            .and_then(|p| p.headers.get(nexus_wire::headers::SESSION))
            .and_then(|v| v.to_str().ok())
        else {
            return Err(McpError::invalid_request(
                "resources/subscribe needs a session (or subscriptions/listen)",
                None,
            ));
        };
        if !self.subs.available() {
            return Err(McpError::invalid_request(
                "this hub announces no file changes (its frontend has no cluster bus)",
                None,
            ));
        }
        let path = resources::path_of(&request.uri)?;
        let (stat, key_id) = self.checked(parts.map(|p| &p.extensions), &path).await?;
        self.subs
            .add_session(session, ctx.peer.clone(), &request.uri, &stat, key_id)
            .map_err(refused)
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: rmcp::model::UnsubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if let Some(session) = parts(&ctx)
            .and_then(|p| p.headers.get(nexus_wire::headers::SESSION))
            .and_then(|v| v.to_str().ok())
        {
            self.subs.remove_session(session, &request.uri);
        }
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &rmcp::model::SubscriptionFilter,
    ) -> Option<rmcp::model::SubscriptionFilter> {
        // Only file updates are announced; each URI is checked when the stream opens.
        let uris = requested.resource_subscriptions.clone().unwrap_or_default();
        (self.subs.available() && !uris.is_empty() && uris.len() <= subscriptions::MAX_PER_OWNER)
            .then(|| {
                rmcp::model::SubscriptionFilter::builder()
                    .resource_subscriptions(uris)
                    .build()
            })
    }

    async fn listen(&self, context: rmcp::service::SubscriptionContext) -> Result<(), McpError> {
        // The subscriptions were checked and taken before the acknowledgment
        // (`McpService`), so no change made after it is missed.
        let pending = parts(context.request_context())
            .and_then(|p| p.extensions.get::<Arc<PendingListen>>())
            .cloned();
        let Some(mut rx) = pending.as_ref().and_then(|p| p.take()) else {
            return Err(McpError::invalid_request(
                "subscriptions/listen: no resource subscriptions were taken",
                None,
            ));
        };
        let sink = context.sink().clone();
        loop {
            tokio::select! {
                _ = context.cancelled() => break,
                ev = rx.recv() => match ev {
                    Some(Event::Updated(uri)) => {
                        if sink.notify_resource_updated(uri).await.is_err() {
                            break;
                        }
                    }
                    // Access may have changed, or the stream fell behind: the final
                    // result ends it, and the client listens again with its token.
                    Some(Event::End) | None => break,
                },
            }
        }
        drop(pending);
        Ok(())
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        // Accepted: the hub sends no log notifications, so every level filters them all.
        Ok(())
    }
}

impl NexusTools {
    /// An rpc call made for a request other than a tool call (resources, completion): the
    /// caller's token, and the same verdict handling as [`NexusTools::call`], so a refused
    /// token is the bearer layer's 401; any other failure is a JSON-RPC error.
    async fn rpc<T: DeserializeOwned>(
        &self,
        ext: Option<&Extensions>,
        method: &str,
        params: &impl serde::Serialize,
    ) -> Result<T, McpError> {
        self.rpc_verified(ext, method, params).await.map(|(t, _)| t)
    }

    /// Whether the caller may read `path` (a subscription's check), with where it lives
    /// and the key id it was verified as.
    async fn checked(
        &self,
        ext: Option<&Extensions>,
        path: &str,
    ) -> Result<
        (
            nexus_wire::methods::StatResult,
            Option<nexus_wire::bus::KeyId>,
        ),
        McpError,
    > {
        let params = nexus_wire::methods::PathParams {
            path: path.to_owned(),
        };
        let (stat, verified): (nexus_wire::methods::StatResult, _) =
            self.rpc_verified(ext, "stat", &params).await?;
        if stat.zone.is_none() || stat.zone_path.is_none() {
            return Err(refused(Refused::NotReadable(stat.path)));
        }
        Ok((stat, nexus_wire::bus::KeyId::parse(&verified.key_id).ok()))
    }

    /// Takes the subscriptions of a `subscriptions/listen` request before rmcp sees it:
    /// every URI must be readable by the caller, or none is taken.
    pub(crate) async fn prepare_listen(
        &self,
        ext: &Extensions,
        uris: &[String],
    ) -> Result<Arc<PendingListen>, McpError> {
        if uris.len() > subscriptions::MAX_PER_OWNER {
            return Err(McpError::invalid_params(
                "at most 100 resource subscriptions per stream",
                None,
            ));
        }
        let (pending, tx) = PendingListen::new(&self.subs);
        for uri in uris {
            let path = resources::path_of(uri)?;
            let (stat, key_id) = self.checked(Some(ext), &path).await?;
            self.subs
                .add_listen(pending.id(), tx.clone(), uri, &stat, key_id)
                .map_err(refused)?;
        }
        Ok(pending)
    }

    /// Checks a session's suspended subscriptions again with the token of its request.
    pub(crate) async fn recheck(&self, ext: &Extensions, session: &str) {
        for uri in self.subs.suspended_of(session) {
            let ok = match resources::path_of(&uri) {
                Ok(path) => self.checked(Some(ext), &path).await.ok(),
                Err(_) => None,
            };
            self.subs
                .resume(session, &uri, ok.as_ref().map(|(s, k)| (s, *k)));
        }
    }

    async fn rpc_verified<T: DeserializeOwned>(
        &self,
        ext: Option<&Extensions>,
        method: &str,
        params: &impl serde::Serialize,
    ) -> Result<(T, crate::forward::Verified), McpError> {
        let Some(caller) = ext.and_then(|x| x.get::<Caller>()) else {
            return Err(McpError::invalid_request(
                "no token: send Authorization: Bearer sk-… with every request",
                None,
            ));
        };
        let verdict = ext.and_then(|x| x.get::<VerdictCell>());
        match self.rpc.call_raw(&caller.token, method, params).await {
            Ok((raw, verified)) => {
                if let Some(cell) = verdict {
                    cell.set(Verdict::Verified(verified.clone()));
                }
                serde_json::from_slice(&raw)
                    .map(|t| (t, verified))
                    .map_err(|_| McpError::internal_error("malformed response from the hub", None))
            }
            Err(e) => {
                if let Some(cell) = verdict
                    && is_verdict(&e)
                {
                    cell.set(Verdict::Refused(e.clone()));
                }
                Err(resources::rpc_error(&e))
            }
        }
    }

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
