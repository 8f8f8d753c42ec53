//! Remote admin: the same admin commands spoken as MCP tool calls to a hub's frontend, with
//! an admin token. Results are the admin RPC results, so output matches local mode exactly.

use crate::error::CliError;
use nexus_wire::methods::{HubStatus, TokenCreateParams, TokenCreated, TokenInfo};
use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
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

fn refused(e: impl std::fmt::Display) -> CliError {
    let msg = e.to_string();
    let lower = msg.to_ascii_lowercase();
    if lower.contains("401") || lower.contains("unauthorized") || lower.contains("auth required") {
        CliError::new("the hub refused the admin token (missing, invalid, expired or revoked)")
    } else {
        CliError::new(format!("cannot reach the hub: {msg}"))
    }
}

impl RemoteAdmin {
    pub async fn connect(url: &str, token: Option<&SecretString>) -> Result<Self, CliError> {
        let token = token.ok_or_else(|| {
            CliError::new("--remote needs --admin-token or NEXUS_HUB_ADMIN_TOKEN")
        })?;
        let uri = normalise_url(url)?;
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(uri)
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
            .map_err(refused)?;
        Ok(Self {
            client,
            uri: normalise_url(url)?,
        })
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
            .map_err(refused)?;
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
        let v = serde_json::to_value(&p).map_err(|e| CliError::new(e.to_string()))?;
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
