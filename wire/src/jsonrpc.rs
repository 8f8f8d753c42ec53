//! JSON-RPC 2.0 envelopes and the error codes of the Nexus RPC API.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The error codes the rpc-server answers with (HTTP 200, JSON-RPC `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Parse,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    Internal,
    FileExists,
    PermissionDenied,
    InvalidPath,
    /// `if_match` did not match the current content id.
    Conflict,
    FileNotFound,
    /// The file or request is over a configured size limit.
    TooLarge,
    /// The call cannot run now: a dependency (the database) is unavailable, or the caller
    /// has too many of a costly call (grep) in flight. Retry later.
    Unavailable,
}

impl ErrorCode {
    pub const fn code(self) -> i64 {
        match self {
            Self::Parse => -32700,
            Self::InvalidRequest => -32600,
            Self::MethodNotFound => -32601,
            Self::InvalidParams => -32602,
            Self::Internal => -32603,
            Self::FileExists => -32001,
            Self::PermissionDenied => -32003,
            Self::InvalidPath => -32004,
            Self::Conflict => -32006,
            Self::FileNotFound => -32007,
            Self::TooLarge => -32008,
            Self::Unavailable => -32010,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        ALL_CODES.iter().copied().find(|c| c.code() == code)
    }

    /// A stable, bounded label for metrics and logs.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Parse => "parse_error",
            Self::InvalidRequest => "invalid_request",
            Self::MethodNotFound => "method_not_found",
            Self::InvalidParams => "invalid_params",
            Self::Internal => "internal",
            Self::FileExists => "file_exists",
            Self::PermissionDenied => "permission_denied",
            Self::InvalidPath => "invalid_path",
            Self::Conflict => "conflict",
            Self::FileNotFound => "file_not_found",
            Self::TooLarge => "too_large",
            Self::Unavailable => "unavailable",
        }
    }
}

const ALL_CODES: [ErrorCode; 12] = [
    ErrorCode::Parse,
    ErrorCode::InvalidRequest,
    ErrorCode::MethodNotFound,
    ErrorCode::InvalidParams,
    ErrorCode::Internal,
    ErrorCode::FileExists,
    ErrorCode::PermissionDenied,
    ErrorCode::InvalidPath,
    ErrorCode::Conflict,
    ErrorCode::FileNotFound,
    ErrorCode::TooLarge,
    ErrorCode::Unavailable,
];

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code.code(),
            message: message.into(),
            data: None,
        }
    }

    pub fn kind(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }

    pub fn parse(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::Parse, msg)
    }
    pub fn invalid_request(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, msg)
    }
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            ErrorCode::MethodNotFound,
            format!("method not found: {}", printable(method)),
        )
    }
    pub fn invalid_params(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParams, msg)
    }
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }
    pub fn permission_denied(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::PermissionDenied, msg)
    }
    pub fn invalid_path(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidPath, msg)
    }
    pub fn not_found(path: &str) -> Self {
        Self::new(ErrorCode::FileNotFound, format!("file not found: {path}"))
    }
    pub fn exists(path: &str) -> Self {
        Self::new(ErrorCode::FileExists, format!("already exists: {path}"))
    }
    pub fn unavailable(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, msg)
    }
}

/// Clips untrusted text before it is echoed in an error message.
pub fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

/// An incoming request, decoded leniently so that each defect gets its own error code.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Value,
    pub method: Option<String>,
    pub params: Value,
}

/// Decodes a request body. Errors carry the id when it could be read, so the caller can
/// still correlate the failure.
pub fn decode_request(body: &[u8]) -> Result<Request, (Value, RpcError)> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| (Value::Null, RpcError::parse(format!("invalid JSON: {e}"))))?;
    let Value::Object(mut obj) = value else {
        return Err((
            Value::Null,
            RpcError::invalid_request("request must be a JSON object"),
        ));
    };
    let id = obj.remove("id").unwrap_or(Value::Null);
    if !matches!(id, Value::Null | Value::String(_) | Value::Number(_)) {
        return Err((
            Value::Null,
            RpcError::invalid_request("id must be a string, number or null"),
        ));
    }
    match obj.remove("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        _ => return Err((id, RpcError::invalid_request("jsonrpc must be \"2.0\""))),
    }
    let method = match obj.remove("method") {
        None => None,
        Some(Value::String(m)) => Some(m),
        Some(_) => return Err((id, RpcError::invalid_request("method must be a string"))),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(p @ Value::Object(_)) => p,
        Some(_) => return Err((id, RpcError::invalid_params("params must be an object"))),
    };
    if let Some(k) = obj.keys().next() {
        return Err((
            id,
            RpcError::invalid_request(format!("unknown member: {}", printable(k))),
        ));
    }
    Ok(Request { id, method, params })
}

/// A response envelope: exactly one of `result` and `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub jsonrpc: String,
    pub id: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

impl Response {
    pub fn ok(id: Value, result: Value) -> Self {
        Self {
            jsonrpc: "2.0".into(),
            id,
            result: Some(result),
            error: None,
        }
    }
    pub fn err(id: Value, error: RpcError) -> Self {
        Self {
            jsonrpc: "2.0".into(),
            id,
            result: None,
            error: Some(error),
        }
    }
    /// Splits into the result or the error, treating a malformed envelope as internal.
    pub fn into_result(self) -> Result<Value, RpcError> {
        match (self.result, self.error) {
            (_, Some(e)) => Err(e),
            (Some(r), None) => Ok(r),
            (None, None) => Err(RpcError::internal()),
        }
    }
}

/// Builds a request body.
pub fn encode_request(id: u64, method: &str, params: &Value) -> Value {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_and_classifies() {
        let r =
            decode_request(br#"{"jsonrpc":"2.0","id":7,"method":"read","params":{"path":"/a"}}"#)
                .expect("valid");
        assert_eq!(r.id, json!(7));
        assert_eq!(r.method.as_deref(), Some("read"));
        let code = |b: &[u8]| decode_request(b).expect_err("invalid").1.code;
        assert_eq!(code(b"{"), -32700);
        assert_eq!(code(b"\xff"), -32700);
        assert_eq!(code(b"[]"), -32600);
        assert_eq!(code(br#"{"id":1}"#), -32600);
        assert_eq!(code(br#"{"jsonrpc":"1.0","id":1}"#), -32600);
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":{}}"#), -32600);
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":1,"method":3}"#), -32600);
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":1,"params":[1]}"#), -32602);
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":1,"extra":true}"#), -32600);
    }

    #[test]
    fn codes_round_trip() {
        for c in ALL_CODES {
            assert_eq!(ErrorCode::from_code(c.code()), Some(c));
        }
    }
}
