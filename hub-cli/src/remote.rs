//! Remote admin: the same admin commands spoken as MCP tool calls to a hub's frontend, with
//! an admin token. Results are the admin RPC results, so output matches local mode exactly.

use crate::error::CliError;
use nexus_wire::methods::{HubStatus, TokenCreateParams, TokenCreated, TokenInfo};
use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// `https://hub.example.com` and `…/mcp` both mean the MCP endpoint.
pub fn normalise_url(url: &str) -> Result<String, CliError> {
    let u = url.trim().trim_end_matches('/');
    if !(u.starts_with("http://") || u.starts_with("https://")) {
        return Err(CliError::new(format!(
            "--remote must be an http:// or https:// URL, got {:?}",
            nexus_wire::jsonrpc::printable(u)
        )));
    }
    Ok(if u.ends_with("/mcp") {
        u.to_owned()
    } else {
        format!("{u}/mcp")
    })
}

pub struct RemoteAdmin {
    client: RunningService<RoleClient, ClientConfig>,
    uri: String,
}

impl std::fmt::Debug for RemoteAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteAdmin")
    }
}

/// Every error under `e`, depth first. rmcp does not chain everything as `source()`
/// (a transport error inside an initialize error, the HTTP client's error inside the
/// transport's, both attempts of a version fallback), so those are reached by type.
fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
    out: &mut Vec<&'a (dyn std::error::Error + 'static)>,
) {
    use rmcp::service::ClientInitializeError as Init;
    use streamable_http_client::StreamableHttpError as Http;
    if out.len() > 32 {
        return;
    }
    out.push(e);
    match e.downcast_ref::<Init>() {
        Some(Init::TransportError { error, .. }) => return causes(error, out),
        Some(Init::LegacyFallbackFailed { discover, fallback }) => {
            causes(discover.as_ref(), out);
            return causes(fallback.as_ref(), out);
        }
        _ => {}
    }
    match e.downcast_ref::<Http<reqwest::Error>>() {
        Some(Http::Client(c)) => return causes(c, out),
        // `transparent`: the status itself is not a source.
        Some(Http::HttpStatus(s)) => return causes(s, out),
        _ => {}
    }
    if let Some(s) = e.source() {
        causes(s, out);
    }
}

/// One line an operator can act on. The MCP client's errors carry Rust type names and
/// `Debug` text (`Transport [rmcp::transport::worker::WorkerTransport<…>]`), so they are
/// classified by type and never printed as they are.
fn describe(e: &(dyn std::error::Error + 'static), uri: &str) -> CliError {
    let mut all = Vec::new();
    causes(e, &mut all);
    let chain = || all.iter().copied();
    let text = chain()
        .map(|e| e.to_string().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(": ");
    let auth_refused = chain().any(|e| {
        e.is::<streamable_http_client::AuthRequiredError>()
            || e.is::<streamable_http_client::InsufficientScopeError>()
    }) || text.contains("401")
        || text.contains("unauthorized")
        || text.contains("auth required");
    if auth_refused {
        return CliError::new(
            "the hub refused the admin token (missing, invalid, expired or revoked)",
        );
    }
    if let Some(io) = chain().find_map(|e| e.downcast_ref::<std::io::Error>()) {
        return CliError::new(format!("cannot reach the hub at {uri}: {io}"));
    }
    if let Some(c) = chain().find_map(|e| e.downcast_ref::<reqwest::Error>()) {
        let why = if c.is_timeout() {
            ": timed out"
        } else if c.is_connect() {
            ": cannot connect"
        } else {
            ""
        };
        return CliError::new(format!("cannot reach the hub at {uri}{why}"));
    }
    if let Some(s) =
        chain().find_map(|e| e.downcast_ref::<streamable_http_client::HttpStatusError>())
    {
        let retry = match (&s.retry_after, s.status) {
            (Some(r), _) => format!("; retry in {r} s"),
            (None, 429) => "; retry shortly".into(),
            _ => String::new(),
        };
        let what = match s.status {
            429 => " (too many requests)",
            503 => " (unavailable)",
            _ => "",
        };
        return CliError::new(format!(
            "the hub at {uri} answered HTTP {}{what}{retry}",
            s.status
        ));
    }
    if let Some(m) = chain().find_map(|e| match e.downcast_ref::<rmcp::ServiceError>() {
        Some(rmcp::ServiceError::McpError(m)) => Some(m),
        _ => None,
    }) {
        return CliError::new(format!(
            "the hub refused the request: {}",
            nexus_wire::jsonrpc::printable(&m.message)
        ));
    }
    if text.contains("error sending request") || text.contains("transport closed") {
        return CliError::new(format!("cannot reach the hub at {uri}"));
    }
    CliError::new(format!(
        "the answer from {uri} was not understood: is it the MCP endpoint of a Nexus hub (the frontend, port 8081 by default)?"
    ))
}

impl RemoteAdmin {
    pub async fn connect(url: &str, token: Option<&SecretString>) -> Result<Self, CliError> {
        let token = token.ok_or_else(|| {
            CliError::new("--remote needs --admin-token or NEXUS_HUB_ADMIN_TOKEN")
        })?;
        let uri = normalise_url(url)?;
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(uri.clone())
                .auth_header(token.expose_secret().to_owned()),
        );
        let client = ClientConfig::default()
            .serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Auto {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                    legacy_version: Some(ProtocolVersion::V_2025_11_25),
                },
            )
            .await
            .map_err(|e| describe(&e, &uri))?;
        Ok(Self { client, uri })
    }

    async fn call<T: DeserializeOwned>(&self, tool: &str, args: Value) -> Result<T, CliError> {
        let args: Map<String, Value> = match args {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let res = self
            .client
            .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
            .await
            .map_err(|e| describe(&e, &self.uri))?;
        let text: String = res
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        if res.is_error == Some(true) {
            // The hub's message, minus the tool-name prefix meant for agents.
            let msg = text
                .split_once(" failed: ")
                .map(|(_, m)| m.to_owned())
                .unwrap_or(text);
            let code = if msg.contains("tokens match") { 2 } else { 1 };
            return Err(CliError::with_code(msg, code));
        }
        serde_json::from_str(&text)
            .map_err(|_| CliError::new(format!("unexpected answer from the hub's {tool} tool")))
    }

    pub async fn create_token(&self, p: TokenCreateParams) -> Result<TokenCreated, CliError> {
        let v = serde_json::to_value(&p)
            .map_err(|_| CliError::new("cannot encode the token parameters"))?;
        // Send only what was given, as the CLI flags would.
        let args: Map<String, Value> = match v {
            Value::Object(m) => m
                .into_iter()
                .filter(|(_, v)| !v.is_null() && *v != Value::Bool(false))
                .collect(),
            _ => Map::new(),
        };
        self.call("nexus_hub_token_create", Value::Object(args))
            .await
    }

    /// Calls an admin tool with `params` as its arguments (absent optional fields left out,
    /// as the CLI flags would be).
    pub async fn tool<P: serde::Serialize, T: DeserializeOwned>(
        &self,
        tool: &str,
        params: &P,
    ) -> Result<T, CliError> {
        let v = serde_json::to_value(params)
            .map_err(|_| CliError::new(format!("cannot encode the {tool} arguments")))?;
        let args: Map<String, Value> = match v {
            Value::Object(m) => m.into_iter().filter(|(_, v)| !v.is_null()).collect(),
            _ => Map::new(),
        };
        self.call(tool, Value::Object(args)).await
    }

    pub async fn list_tokens(&self, show_revoked: bool) -> Result<Vec<TokenInfo>, CliError> {
        self.call(
            "nexus_hub_token_list",
            json!({ "show_revoked": show_revoked }),
        )
        .await
    }

    pub async fn revoke_token(&self, identifier: &str) -> Result<TokenInfo, CliError> {
        self.call(
            "nexus_hub_token_revoke",
            json!({ "identifier": identifier }),
        )
        .await
    }

    pub async fn status(&self, detail: bool) -> Result<HubStatus, CliError> {
        let args = if detail {
            json!({ "detail": true })
        } else {
            json!({})
        };
        let mut s: HubStatus = self.call("nexus_hub_status", args).await?;
        if s.endpoint.is_none() {
            s.endpoint = Some(self.uri.clone());
        }
        Ok(s)
    }

    pub async fn close(self) {
        let _ = self.client.cancel().await;
    }
}

#[cfg(test)]
mod tests {
    use super::normalise_url;

    #[test]
    fn urls_get_mcp_appended_once() {
        assert_eq!(
            normalise_url("http://h:8081").expect("ok"),
            "http://h:8081/mcp"
        );
        assert_eq!(
            normalise_url("https://h/mcp/").expect("ok"),
            "https://h/mcp"
        );
        assert!(normalise_url("h:8081").is_err());
    }
}
