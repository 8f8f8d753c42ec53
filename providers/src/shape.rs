//! What kind of credential a bearer is, judged by its shape alone, and the unverified
//! issuer of a JWT, read only to pick the provider that will verify it.

use base64::Engine as _;

/// Longest JWT the hub reads. Real access tokens are 1–4 KiB; anything near a header
/// limit is an attack on the parser, refused before any decoding.
pub const MAX_JWT_LEN: usize = 16 * 1024;

/// The provider family a credential belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `sk-…`, or anything that is not a JWT: the API-key providers decide (and refuse
    /// junk with the same work as an unknown key).
    ApiKey,
    /// Three base64url segments separated by dots.
    Jwt,
}

/// Classifies a bearer. Only compact JWS (three non-empty base64url segments within
/// [`MAX_JWT_LEN`]) counts as a JWT.
pub fn shape(token: &str) -> Shape {
    if token.starts_with("sk-") || token.len() > MAX_JWT_LEN {
        return Shape::ApiKey;
    }
    let mut parts = 0;
    for seg in token.split('.') {
        parts += 1;
        if seg.is_empty()
            || !seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Shape::ApiKey;
        }
    }
    if parts == 3 {
        Shape::Jwt
    } else {
        Shape::ApiKey
    }
}

/// The `iss` claim of a JWT, *unverified*: used only to choose which issuer's keys verify
/// the token. `None` when the payload is not a JSON object with a string `iss`.
pub fn peek_issuer(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    if shape(token) != Shape::Jwt {
        return None;
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn shapes() {
        assert_eq!(shape("sk-abc"), Shape::ApiKey);
        assert_eq!(shape("a.b.c"), Shape::Jwt);
        assert_eq!(shape("a.b"), Shape::ApiKey);
        assert_eq!(shape("a..c"), Shape::ApiKey);
        assert_eq!(shape("a.b.c.d"), Shape::ApiKey);
        assert_eq!(shape("a.b+.c"), Shape::ApiKey);
        let huge = format!("{}.b.c", "a".repeat(MAX_JWT_LEN));
        assert_eq!(shape(&huge), Shape::ApiKey);
    }

    #[test]
    fn issuer_is_read_from_the_payload_only() {
        let t = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"EdDSA"}"#),
            b64(r#"{"iss":"https://idp","sub":"a"}"#)
        );
        assert_eq!(peek_issuer(&t).as_deref(), Some("https://idp"));
        let no_iss = format!("{}.{}.sig", b64("{}"), b64(r#"{"sub":"a"}"#));
        assert_eq!(peek_issuer(&no_iss), None);
        let not_json = format!("{}.{}.sig", b64("{}"), b64("[[[["));
        assert_eq!(peek_issuer(&not_json), None);
        let bomb = format!("{}.{}.sig", b64("{}"), b64(&"[".repeat(5000)));
        assert_eq!(
            peek_issuer(&bomb),
            None,
            "deep nesting is an error, not a stack overflow"
        );
    }
}
