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

/// The JSON-RPC envelope of a single request, parsed once; `params` are scanned once for
/// the members MCP requests share, each kept raw until the method that uses it decodes it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Envelope {
    pub jsonrpc: Option<Box<RawValue>>,
    pub id: Option<Box<RawValue>>,
    pub method: Option<String>,
    pub params: Option<Params>,
}

/// The members of `params` the frontend reads. `other` is set when any other member (or a
/// repeated one) is present: the direct path then leaves the request to rmcp.
#[derive(Debug, Default)]
pub(crate) struct Params {
    pub name: Option<Box<RawValue>>,
    pub arguments: Option<Box<RawValue>>,
    pub cursor: Option<Box<RawValue>>,
    pub meta: Option<Box<RawValue>>,
    pub other: bool,
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Params;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Params, A::Error> {
                let mut p = Params::default();
                while let Some(key) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "name" => &mut p.name,
                        "arguments" => &mut p.arguments,
                        "cursor" => &mut p.cursor,
                        "_meta" => &mut p.meta,
                        _ => {
                            m.next_value::<serde::de::IgnoredAny>()?;
                            p.other = true;
                            continue;
                        }
                    };
                    let v = m.next_value::<Box<RawValue>>()?;
                    p.other |= slot.is_some();
                    *slot = Some(v);
                }
                Ok(p)
            }
        }
        d.deserialize_map(Visit)
    }
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
                Err(e) if e.is_data() => Parsed::Single(Envelope::default()),
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
        let Parsed::Single(e) = &self.parsed else {
            return None;
        };
        let name = e.params.as_ref()?.name.as_ref()?;
        serde_json::from_str(name.get()).ok()
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
