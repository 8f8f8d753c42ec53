//! PKCE (RFC 7636), S256 only: `plain` is refused, as OAuth 2.1 and the MCP authorization
//! spec require.

use crate::OAuthError;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Checks the challenge and method of an authorization request: an S256 challenge is 43
/// base64url characters (a SHA-256).
pub fn check_challenge(challenge: Option<&str>, method: Option<&str>) -> Result<(), OAuthError> {
    let Some(c) = challenge else {
        return Err(OAuthError::invalid_request(
            "code_challenge is required (PKCE with S256)",
        ));
    };
    match method {
        Some("S256") => {}
        Some("plain") | None => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256; plain is not supported",
            ));
        }
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            ));
        }
    }
    if c.len() != 43 || !c.bytes().all(is_b64url) {
        return Err(OAuthError::invalid_request(
            "code_challenge must be the base64url SHA-256 of the verifier",
        ));
    }
    Ok(())
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The verifier's shape (RFC 7636 §4.1: 43-128 unreserved characters).
fn verifier_ok(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// `BASE64URL(SHA256(verifier)) == challenge`, compared in constant time.
pub fn verify(verifier: Option<&str>, challenge: &str) -> Result<(), OAuthError> {
    let Some(v) = verifier else {
        return Err(OAuthError::invalid_request("code_verifier is required"));
    };
    if !verifier_ok(v) {
        return Err(OAuthError::invalid_grant(
            "code_verifier must be 43-128 unreserved characters",
        ));
    }
    let computed =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()));
    if computed.as_bytes().ct_eq(challenge.as_bytes()).into() {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant(
            "the code_verifier does not match the code_challenge",
        ))
    }
}

/// The S256 challenge of a verifier (clients and tests).
pub fn challenge_of(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const V: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const C: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc_example_verifies_and_anything_else_does_not() {
        assert_eq!(challenge_of(V), C);
        assert!(verify(Some(V), C).is_ok());
        let wrong = V.replace('d', "e");
        assert_eq!(
            verify(Some(&wrong), C).expect_err("refused").code,
            "invalid_grant"
        );
        assert_eq!(
            verify(None, C).expect_err("refused").code,
            "invalid_request"
        );
        assert_eq!(
            verify(Some("short"), C).expect_err("refused").code,
            "invalid_grant"
        );
    }

    #[test]
    fn only_s256_challenges_are_accepted() {
        assert!(check_challenge(Some(C), Some("S256")).is_ok());
        assert!(check_challenge(Some(C), Some("plain")).is_err());
        assert!(check_challenge(Some(C), None).is_err());
        assert!(check_challenge(None, Some("S256")).is_err());
        assert!(check_challenge(Some("abc"), Some("S256")).is_err());
    }
}
