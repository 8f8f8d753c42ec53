//! The RFC 9728 protected-resource metadata (`/.well-known/oauth-protected-resource`,
//! also under `/mcp`): which authorization servers issue tokens for this resource and which
//! scopes exist. An MCP client that follows the spec starts its login from here, and the
//! spec requires at least one authorization server: the issuers nexusd's provider chain
//! accepts, read from it at startup and again periodically (the last good answer is kept
//! while it does not answer), or, when it accepts no issuer (API keys only), this hub's
//! own public URL.

use crate::forward::RpcClient;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use nexus_wire::resource::{AuthProviders, SCOPES_SUPPORTED};
use serde_json::json;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Until a first answer, how soon to ask again.
const RETRY: Duration = Duration::from_secs(5);

/// The rpc-server's last good answer about its authorization servers.
#[derive(Debug, Default)]
pub(crate) struct AuthServers {
    last: RwLock<Option<Arc<AuthProviders>>>,
}

impl AuthServers {
    /// Reads the rpc-server's answer; keeps the previous one when there is none.
    pub async fn refresh(&self, rpc: &RpcClient) -> bool {
        let Some(mut a) = rpc.auth_providers().await else {
            return false;
        };
        a.issuers.retain(|i| !i.is_empty());
        a.scopes_supported.retain(|s| !s.is_empty());
        *self.last.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(a));
        true
    }

    fn current(&self) -> Option<Arc<AuthProviders>> {
        self.last.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Refreshes every `every` (every [`RETRY`] until a first answer), until aborted.
    pub async fn keep_fresh(&self, rpc: &RpcClient, every: Duration) {
        loop {
            let wait = if self.current().is_some() {
                every
            } else {
                RETRY.min(every)
            };
            tokio::time::sleep(wait).await;
            if !self.refresh(rpc).await {
                tracing::debug!(
                    "the rpc-server did not say which issuers it accepts; keeping the last answer"
                );
            }
        }
    }

    /// The metadata document of the resource `base`/mcp; with `oauth`, the hub's own
    /// authorization server comes first (the rpc-server's issuer, or this origin until it
    /// has said).
    pub fn document(&self, base: &str, oauth: bool) -> serde_json::Value {
        let known = self.current();
        let mut issuers: Vec<String> = match known.as_deref() {
            Some(a) if !a.issuers.is_empty() => a.issuers.clone(),
            // No issuer configured (or not known yet): the hub itself, which becomes an
            // authorization server of its own (SPEC §11); never an empty list.
            _ => vec![base.to_owned()],
        };
        if oauth {
            let own = known
                .as_deref()
                .and_then(|a| a.oauth_issuer.clone())
                .unwrap_or_else(|| base.to_owned());
            issuers.retain(|i| *i != own);
            issuers.insert(0, own);
        }
        let scopes: Vec<String> = match known.as_deref() {
            Some(a) if !a.scopes_supported.is_empty() => a.scopes_supported.clone(),
            _ => SCOPES_SUPPORTED.iter().map(|s| (*s).to_owned()).collect(),
        };
        json!({
            "resource": format!("{base}/mcp"),
            "authorization_servers": issuers,
            "scopes_supported": scopes,
            "bearer_methods_supported": ["header"],
            "resource_name": "Nexus Hub MCP",
        })
    }
}

pub(crate) async fn resource_metadata(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Json<serde_json::Value> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    Json(
        st.auth_servers
            .document(&st.public_base(host), st.cfg.oauth),
    )
}
