//! The opaque secrets the authorization server hands out: authorization codes and refresh
//! tokens. 256 bits from the OS CSPRNG, base64url, behind a prefix that tells them apart
//! from each other and from API keys (`sk-`). Only their keyed digests are stored; the
//! digest is nexusd's (the same HMAC as its tokens').

use base64::Engine as _;

/// Prefix of authorization codes.
pub const CODE_PREFIX: &str = "nxc-";
/// Prefix of OAuth refresh tokens.
pub const REFRESH_PREFIX: &str = "nxr-";

/// A fresh secret with `prefix`.
pub fn generate(prefix: &str) -> Result<String, getrandom::Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)?;
    Ok(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    ))
}

/// True when `s` has the shape of a secret with `prefix` (checked before any lookup).
pub fn well_formed(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// A random value for a cookie or an id, base64url.
pub fn random_b64(bytes: usize) -> Result<String, getrandom::Error> {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_distinct_and_recognised_by_prefix() {
        let a = generate(CODE_PREFIX).expect("random");
        let b = generate(CODE_PREFIX).expect("random");
        assert_ne!(a, b);
        assert!(well_formed(&a, CODE_PREFIX));
        assert!(!well_formed(&a, REFRESH_PREFIX));
        assert!(!well_formed("nxc-short", CODE_PREFIX));
        assert!(!well_formed(&format!("{a}x"), CODE_PREFIX));
    }
}
