//! Extraction of the caller's token from request headers.
//!
//! Both services accept `Authorization: Bearer sk-…` and `X-Nexus-API-Key: sk-…`. The parser
//! only decides which header text is the candidate token; whether it is valid is the
//! rpc-server's decision alone.

/// Longest header value we even look at: API keys are ~46 bytes, but JWT access tokens
/// (login and OIDC, SPEC §10) run to a few KiB with an RSA signature and claims; 16 KiB is
/// the JWT bound of the providers (`nexus_providers::shape::MAX_JWT_LEN`).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why no candidate token could be taken from the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// Neither header is present.
    Missing,
    /// A header is present but unusable: wrong scheme, empty, not ASCII, too long, or the
    /// two headers disagree.
    Malformed,
}

/// Picks the candidate token from the raw `Authorization` and `X-Nexus-API-Key` values.
///
/// When both are present they must carry the same token: a request that names two
/// identities is refused rather than guessed at.
pub fn extract<'a>(
    authorization: Option<&'a [u8]>,
    api_key: Option<&'a [u8]>,
) -> Result<&'a str, BearerError> {
    let from_auth = authorization.map(parse_authorization).transpose()?;
    let from_key = api_key.map(parse_token_text).transpose()?;
    match (from_auth, from_key) {
        (None, None) => Err(BearerError::Missing),
        (Some(t), None) | (None, Some(t)) => Ok(t),
        (Some(a), Some(b)) if a == b => Ok(a),
        _ => Err(BearerError::Malformed),
    }
}

fn parse_authorization(value: &[u8]) -> Result<&str, BearerError> {
    let text = std::str::from_utf8(value).map_err(|_| BearerError::Malformed)?;
    let (scheme, rest) = text.trim().split_once(' ').ok_or(BearerError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Malformed);
    }
    parse_token_text(rest.as_bytes())
}

fn parse_token_text(value: &[u8]) -> Result<&str, BearerError> {
    let text = std::str::from_utf8(value)
        .map_err(|_| BearerError::Malformed)?
        .trim();
    let ok = !text.is_empty()
        && text.len() <= MAX_TOKEN_LEN
        && text.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(text)
    } else {
        Err(BearerError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_headers_and_rejects_disagreement() {
        assert_eq!(extract(Some(b"Bearer sk-abc"), None), Ok("sk-abc"));
        assert_eq!(extract(Some(b"bearer   sk-abc "), None), Ok("sk-abc"));
        assert_eq!(extract(None, Some(b"sk-abc")), Ok("sk-abc"));
        assert_eq!(extract(Some(b"Bearer sk-a"), Some(b"sk-a")), Ok("sk-a"));
        assert_eq!(
            extract(Some(b"Bearer sk-a"), Some(b"sk-b")),
            Err(BearerError::Malformed)
        );
    }

    #[test]
    fn refuses_odd_headers() {
        assert_eq!(extract(None, None), Err(BearerError::Missing));
        for bad in [
            &b"Basic sk-abc"[..],
            b"Bearer",
            b"Bearer ",
            b"sk-abc",
            b"Bearer sk-a b",
            b"Bearer sk-\xff",
            b"Bearer sk-\x01",
        ] {
            assert_eq!(
                extract(Some(bad), None),
                Err(BearerError::Malformed),
                "{bad:?}"
            );
        }
        let long = format!("Bearer sk-{}", "a".repeat(MAX_TOKEN_LEN));
        assert_eq!(
            extract(Some(long.as_bytes()), None),
            Err(BearerError::Malformed)
        );
        assert_eq!(extract(None, Some(b"")), Err(BearerError::Malformed));
    }
}
