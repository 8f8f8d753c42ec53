//! Extraction of the caller's token from request headers.
//!
//! Both services accept `Authorization: Bearer sk-…`, `X-Nexus-API-Key: sk-…` and
//! `X-API-Key: sk-…` (seed `002`). The parser
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
    extract_any(authorization, &[api_key])
}

/// As [`extract`], with any number of bare-token headers (`X-Nexus-API-Key`,
/// `X-API-Key`): every header present must carry the same token.
pub fn extract_any<'a>(
    authorization: Option<&'a [u8]>,
    api_keys: &[Option<&'a [u8]>],
) -> Result<&'a str, BearerError> {
    let mut found = authorization.map(parse_authorization).transpose()?;
    for v in api_keys.iter().flatten() {
        let t = parse_token_text(v)?;
        match found {
            Some(f) if f != t => return Err(BearerError::Malformed),
            _ => found = Some(t),
        }
    }
    found.ok_or(BearerError::Missing)
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
    fn any_number_of_key_headers_must_agree() {
        assert_eq!(extract_any(None, &[None, Some(b"sk-x")]), Ok("sk-x"));
        assert_eq!(
            extract_any(Some(b"Bearer sk-x"), &[Some(b"sk-x"), Some(b"sk-x")]),
            Ok("sk-x")
        );
        assert_eq!(
            extract_any(None, &[Some(b"sk-x"), Some(b"sk-y")]),
            Err(BearerError::Malformed)
        );
        assert_eq!(
            extract_any(Some(b"Bearer sk-x"), &[None, Some(b"sk-y")]),
            Err(BearerError::Malformed)
        );
        assert_eq!(extract_any(None, &[None, None]), Err(BearerError::Missing));
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
