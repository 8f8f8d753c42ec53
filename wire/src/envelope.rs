//! The HTTP-level error body both services answer with when there is no JSON-RPC response
//! to give (no or a refused credential, a body too large, no such endpoint):
//! `{"error":{"code":"unauthorized","message":"…"}}`. `code` is a stable machine word,
//! `message` text for a person.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: Cow<'static, str>,
    pub message: Cow<'static, str>,
}

impl ErrorEnvelope {
    /// The envelope of `code` and `message`; static text is not copied.
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            error: ErrorBody {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_the_documented_shape_and_back() {
        let e = ErrorEnvelope::new("unauthorized", "a valid token is required");
        let text = serde_json::to_string(&e).expect("serialises");
        assert_eq!(
            text,
            r#"{"error":{"code":"unauthorized","message":"a valid token is required"}}"#
        );
        let back: ErrorEnvelope = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, e);
        let owned = ErrorEnvelope::new(String::from("x"), format!("{}", 1));
        assert_eq!(owned.error.message, "1");
    }
}
