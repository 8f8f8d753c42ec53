//! The hub's own login tokens (SPEC §10): short-lived EdDSA (Ed25519) JWTs with a `kid`,
//! signed with a key the rpc-server keeps in the database and verified against every key
//! that may still have live tokens (rotation keeps old keys verifying until their last
//! token expires).
//!
//! JWS handling is jsonwebtoken's; Ed25519 keys are ed25519-dalek's, made from the OS
//! CSPRNG. Verification pins the algorithm to EdDSA, requires `exp`, `iat`, `iss`, `sub`
//! and `jti`, and allows at most [`LEEWAY_SECS`] of clock skew.

use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Clock skew tolerated on `exp`.
pub const LEEWAY_SECS: u64 = 30;
/// The header `typ` of an access token (RFC 9068); `JWT` is accepted too.
pub const TYP: &str = "at+jwt";
/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("invalid login token")]
    Invalid,
    #[error("login token has expired")]
    Expired,
    #[error("signed with an unknown key")]
    UnknownKey,
    #[error("signing failed")]
    Signing,
}

/// The claims of a login token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user's subject id.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    pub iat: i64,
    pub exp: i64,
    /// The login session: what logout revokes and the identity cache checks.
    pub jti: String,
}

/// A fresh Ed25519 key pair: (kid, 32-byte private seed, 32-byte public key).
pub fn generate_key() -> Result<(String, [u8; 32], [u8; 32]), TokenError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|_| TokenError::Signing)?;
    let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = sk.verifying_key().to_bytes();
    let mut kid = [0u8; 12];
    getrandom::fill(&mut kid).map_err(|_| TokenError::Signing)?;
    Ok((
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kid),
        seed,
        public,
    ))
}

/// A key that signs. Holds the private key only as jsonwebtoken's encoding key.
pub struct Signer {
    kid: String,
    key: EncodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish()
    }
}

impl Signer {
    pub fn from_seed(kid: &str, seed: &[u8; 32]) -> Result<Self, TokenError> {
        let der = ed25519_dalek::SigningKey::from_bytes(seed)
            .to_pkcs8_der()
            .map_err(|_| TokenError::Signing)?;
        Ok(Self {
            kid: kid.to_owned(),
            key: EncodingKey::from_ed_der(der.as_bytes()),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(self.kid.clone());
        h.typ = Some(TYP.into());
        jsonwebtoken::encode(&h, claims, &self.key).map_err(|_| TokenError::Signing)
    }
}

/// Public keys by kid.
#[derive(Default, Clone)]
pub struct KeySet(HashMap<String, DecodingKey>);

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl KeySet {
    pub fn insert(&mut self, kid: &str, public: &[u8; 32]) {
        self.0
            .insert(kid.to_owned(), DecodingKey::from_ed_der(public.as_slice()));
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.0.contains_key(kid)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The `kid` of a token's header, unverified (to pick a key, or learn that one must be
/// loaded). `None` for anything that is not a JWS with a kid.
pub fn peek_kid(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    jsonwebtoken::decode_header(token).ok()?.kid
}

/// Verifies `token`: the key its kid names, EdDSA only, `iss` equal to `issuer`, `aud`
/// equal to `audience` when one is expected, expiry with bounded leeway.
pub fn verify(
    token: &str,
    keys: &KeySet,
    issuer: &str,
    audience: Option<&str>,
) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Invalid);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
    if header.alg != Algorithm::EdDSA {
        return Err(TokenError::Invalid);
    }
    if !matches!(header.typ.as_deref(), Some(TYP) | Some("JWT")) {
        return Err(TokenError::Invalid);
    }
    let kid = header.kid.ok_or(TokenError::Invalid)?;
    let key = keys.0.get(&kid).ok_or(TokenError::UnknownKey)?;
    let mut v = Validation::new(Algorithm::EdDSA);
    v.leeway = LEEWAY_SECS;
    v.set_issuer(&[issuer]);
    match audience {
        Some(a) => {
            v.set_required_spec_claims(&["exp", "iat", "iss", "sub", "jti", "aud"]);
            v.set_audience(&[a]);
        }
        None => {
            v.set_required_spec_claims(&["exp", "iat", "iss", "sub", "jti"]);
            v.validate_aud = false;
        }
    }
    match jsonwebtoken::decode::<Claims>(token, key, &v) {
        Ok(d) => Ok(d.claims),
        Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
            Err(TokenError::Expired)
        }
        Err(_) => Err(TokenError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default()
    }

    fn claims(exp_in: i64) -> Claims {
        Claims {
            iss: "http://hub".into(),
            sub: "alice".into(),
            aud: None,
            iat: now(),
            exp: now() + exp_in,
            jti: "3f8e2a9c-0000-4000-8000-000000000000".into(),
        }
    }

    #[test]
    fn signs_and_verifies_by_kid() {
        let (kid, seed, public) = generate_key().expect("key");
        let s = Signer::from_seed(&kid, &seed).expect("signer");
        let t = s.sign(&claims(600)).expect("sign");
        assert_eq!(peek_kid(&t).as_deref(), Some(kid.as_str()));
        let mut keys = KeySet::default();
        assert_eq!(
            verify(&t, &keys, "http://hub", None),
            Err(TokenError::UnknownKey)
        );
        keys.insert(&kid, &public);
        assert_eq!(
            verify(&t, &keys, "http://hub", None).expect("ok").sub,
            "alice"
        );
        assert_eq!(
            verify(&t, &keys, "http://other", None),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            verify(&t, &keys, "http://hub", Some("aud")),
            Err(TokenError::Invalid),
            "an audience is required when one is expected"
        );
    }

    #[test]
    fn expired_forged_and_other_keys_are_refused() {
        let (kid, seed, public) = generate_key().expect("key");
        let s = Signer::from_seed(&kid, &seed).expect("signer");
        let mut keys = KeySet::default();
        keys.insert(&kid, &public);
        let old = s.sign(&claims(-120)).expect("sign");
        assert_eq!(
            verify(&old, &keys, "http://hub", None),
            Err(TokenError::Expired)
        );
        // Another key claiming the same kid.
        let (_, seed2, _) = generate_key().expect("key");
        let forged = Signer::from_seed(&kid, &seed2)
            .expect("signer")
            .sign(&claims(600))
            .expect("sign");
        assert_eq!(
            verify(&forged, &keys, "http://hub", None),
            Err(TokenError::Invalid)
        );
        // alg none / HS256 with the public key as secret.
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let body = b(&serde_json::to_string(&claims(600)).expect("json"));
        let none = format!(
            "{}.{body}.",
            b(&format!(r#"{{"alg":"none","kid":"{kid}"}}"#))
        );
        assert_eq!(
            verify(&none, &keys, "http://hub", None),
            Err(TokenError::Invalid)
        );
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(kid.clone());
        let hs = jsonwebtoken::encode(
            &h,
            &claims(600),
            &EncodingKey::from_secret(&public).expect("secret"),
        )
        .expect("hs256");
        assert_eq!(
            verify(&hs, &keys, "http://hub", None),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            verify(&"a".repeat(MAX_TOKEN_BYTES + 1), &keys, "http://hub", None),
            Err(TokenError::Invalid)
        );
    }
}
