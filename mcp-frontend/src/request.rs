//! What one `/mcp` request carries between the layers, in request extensions going down
//! and response extensions coming back up. A leaf: it names facts, it decides nothing.
//!
//! Down: [`Caller`] (the token and the client's address, set by the bearer layer),
//! [`McpBody`] (the body, read and parsed once), `Verified` (who the rpc-server said
//! the caller is, when a counted verification ran before the call), [`VerdictCell`].
//! Up: [`McpCall`] and `Verified`, read by the observe layer for metrics and audit.

use crate::forward::{CallerToken, ForwardError, Verified};
use axum::body::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::{Arc, OnceLock};

/// The caller of this request, as the bearer layer found it.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub token: CallerToken,
    /// The key id this token was verified as lately (a token's key id never changes);
    /// whether the token is still valid is decided by the rpc-server on every request.
    pub key_id: Option<Arc<str>>,
}

/// The JSON-RPC envelope of a single request, parsed once; `params` stay raw until the
/// method that uses them decodes them.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    #[serde(default)]
    pub jsonrpc: Option<Box<RawValue>>,
    #[serde(default)]
    pub id: Option<Box<RawValue>>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub params: Option<Box<RawValue>>,
}

/// What a POST body turned out to be.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// One JSON-RPC message.
    Single(Envelope),
    /// A JSON array (a batch).
    Batch,
    /// Not JSON at all.
    NotJson,
}

/// A request body, read within its deadline and size, and what it parses as.
#[derive(Debug)]
pub(crate) struct McpBody {
    pub bytes: Bytes,
    pub parsed: Parsed,
}

impl McpBody {
    pub fn parse(bytes: Bytes) -> Self {
        let parsed = if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                Ok(_) => Parsed::Batch,
                Err(_) => Parsed::NotJson,
            }
        } else {
            match serde_json::from_slice::<Envelope>(&bytes) {
                Ok(e) => Parsed::Single(e),
                // Valid JSON of another shape (a number, an object with a non-string
                // method) is rmcp's to refuse; only non-JSON is a parse error here.
                Err(e) if e.is_data() => Parsed::Single(Envelope {
                    jsonrpc: None,
                    id: None,
                    method: None,
                    params: None,
                }),
                Err(_) => Parsed::NotJson,
            }
        };
        Self { bytes, parsed }
    }

    /// The JSON-RPC method of a single request.
    pub fn method(&self) -> Option<&str> {
        match &self.parsed {
            Parsed::Single(e) => e.method.as_deref(),
            _ => None,
        }
    }

    /// `params.name` of a single request, when it is a string.
    pub fn tool(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Named {
            name: Option<serde_json::Value>,
        }
        let Parsed::Single(e) = &self.parsed else {
            return None;
        };
        let p = e.params.as_ref()?;
        let named: Named = serde_json::from_str(p.get()).ok()?;
        match named.name {
            Some(serde_json::Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

/// What the request was, for the observe layer (set on the response by the bearer).
#[derive(Debug, Clone, Default)]
pub(crate) struct McpCall {
    /// The JSON-RPC method, `batch`, or the HTTP verb of a request without a body.
    pub method: String,
    pub tool: Option<String>,
}

/// What the rpc-server said about the token when it was judged on the tool call itself.
#[derive(Debug, Clone)]
pub(crate) enum Verdict {
    Verified(Verified),
    Refused(ForwardError),
}

/// Where the MCP handler leaves its [`Verdict`] on a forwarded tool call, for the bearer
/// layer to turn a refusal into 401/429/503 once the handler has answered. Written at
/// most once (the first forwarded call decides); read after the response.
#[derive(Debug, Clone, Default)]
pub(crate) struct VerdictCell(Arc<OnceLock<Verdict>>);

impl VerdictCell {
    pub fn set(&self, v: Verdict) {
        let _ = self.0.set(v);
    }

    pub fn get(&self) -> Option<&Verdict> {
        self.0.get()
    }
}

/// The `X-Request-Id` a caller sent, cleaned; ours replaces it on the request.
#[derive(Clone, Debug)]
pub(crate) struct ClientRequestId(pub String);
