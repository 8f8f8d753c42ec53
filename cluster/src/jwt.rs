//! NATS JWTs (format v2 of nats-io/jwt) built with serde and signed with nkeys.
//!
//! Why not the `nats-jwt` 0.3 crate: it has no operator claims, no account revocations and
//! no JetStream limits (an account JWT without them cannot use JetStream), and its `sign`
//! panics when signing fails. The claims here follow nats-io/jwt v2 field for field (the
//! parts this crate needs); nats-server is the judge, and the tests run against it.

use crate::ClusterError;
use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use nkeys::KeyPair;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512_256};
use std::collections::BTreeMap;

const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

/// The registered claims every NATS JWT carries, with the NATS part in `nats`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claims<N> {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    pub iat: i64,
    pub iss: String,
    pub name: String,
    pub sub: String,
    pub nats: N,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OperatorNats {
    pub system_account: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u8,
}

/// Account limits; -1 is "unlimited". JetStream is on for an account only when
/// `mem_storage` or `disk_storage` is not 0, hence those are left out (0) for `SYS`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccountLimits {
    pub subs: i64,
    pub data: i64,
    pub payload: i64,
    pub imports: i64,
    pub exports: i64,
    pub wildcards: bool,
    pub conn: i64,
    pub leaf: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mem_storage: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disk_storage: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub streams: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consumer: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl AccountLimits {
    pub(crate) fn unlimited(jetstream: bool) -> Self {
        let js = if jetstream { -1 } else { 0 };
        Self {
            subs: -1,
            data: -1,
            payload: -1,
            imports: -1,
            exports: -1,
            wildcards: true,
            conn: -1,
            leaf: -1,
            mem_storage: js,
            disk_storage: js,
            streams: js,
            consumer: js,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccountNats {
    pub limits: AccountLimits,
    /// Keys allowed to sign this account's users (the account's own key always may).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<String>,
    /// User public key → unix seconds: user JWTs issued at or before it are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, i64>,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u8,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SubjectList {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserNats {
    #[serde(rename = "pub", default)]
    pub publish: SubjectList,
    #[serde(rename = "sub", default)]
    pub subscribe: SubjectList,
    pub subs: i64,
    pub data: i64,
    pub payload: i64,
    /// The account, when a signing key (not the account's identity key) signed the user.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer_account: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u8,
}

fn key_error(e: nkeys::error::Error) -> ClusterError {
    ClusterError::Key(e.to_string())
}

/// Signs `claims` with `key` (which becomes the issuer) at `iat`.
///
/// `jti` hashes the whole claim set (nats-io/jwt hashes only the registered claims): two
/// account JWTs signed in the same second with different revocations must differ in `jti`,
/// because a server's `full` resolver skips an update whose `jti` equals the stored one.
pub(crate) fn encode<N: Serialize>(
    mut claims: Claims<N>,
    key: &KeyPair,
    iat: i64,
) -> Result<String, ClusterError> {
    claims.iss = key.public_key();
    claims.iat = iat;
    claims.jti = String::new();
    let unsigned = serde_json::to_vec(&claims).map_err(|e| ClusterError::Key(e.to_string()))?;
    claims.jti = BASE32_NOPAD.encode(&Sha512_256::digest(&unsigned));
    let body = serde_json::to_vec(&claims).map_err(|e| ClusterError::Key(e.to_string()))?;
    let signed = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(HEADER.as_bytes()),
        BASE64URL_NOPAD.encode(&body)
    );
    let sig = key.sign(signed.as_bytes()).map_err(key_error)?;
    Ok(format!("{signed}.{}", BASE64URL_NOPAD.encode(&sig)))
}

/// Decodes a JWT and checks that its issuer signed it (not who the issuer is: callers check
/// `iss` against the key they expect).
pub(crate) fn decode<N: DeserializeOwned>(jwt: &str) -> Result<Claims<N>, ClusterError> {
    let bad = |why: &str| ClusterError::Corrupt(format!("not a valid NATS JWT: {why}"));
    let mut parts = jwt.trim().split('.');
    let (Some(header), Some(body), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected three parts"));
    };
    let header_json = BASE64URL_NOPAD
        .decode(header.as_bytes())
        .map_err(|_| bad("header is not base64url"))?;
    let header_value: serde_json::Value =
        serde_json::from_slice(&header_json).map_err(|_| bad("header is not JSON"))?;
    if header_value.get("alg").and_then(|a| a.as_str()) != Some("ed25519-nkey") {
        return Err(bad("algorithm is not ed25519-nkey"));
    }
    let body_json = BASE64URL_NOPAD
        .decode(body.as_bytes())
        .map_err(|_| bad("body is not base64url"))?;
    let claims: Claims<N> =
        serde_json::from_slice(&body_json).map_err(|e| bad(&format!("claims: {e}")))?;
    let sig = BASE64URL_NOPAD
        .decode(sig.as_bytes())
        .map_err(|_| bad("signature is not base64url"))?;
    let issuer = KeyPair::from_public_key(&claims.iss).map_err(|_| bad("issuer is not an nkey"))?;
    let signed_len = header.len() + 1 + body.len();
    issuer
        .verify(&jwt.trim().as_bytes()[..signed_len], &sig)
        .map_err(|_| bad("the signature does not verify"))?;
    Ok(claims)
}

/// The standard NATS creds file: the user JWT and the user's seed, decorated as `nsc` and
/// nats-io/jwt `FormatUserConfig` write them (clients parse the blocks by their dashes).
pub(crate) fn creds_file(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}

/// The JWT block of a creds file.
#[cfg(test)]
pub(crate) fn jwt_of_creds(creds: &str) -> Option<&str> {
    let start =
        creds.find("-----BEGIN NATS USER JWT-----")? + "-----BEGIN NATS USER JWT-----".len();
    let rest = &creds[start..];
    let end = rest.find("------END NATS USER JWT------")?;
    Some(rest[..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let op = KeyPair::new_operator();
        let claims = Claims {
            jti: String::new(),
            iat: 0,
            iss: String::new(),
            name: "op".into(),
            sub: op.public_key(),
            nats: OperatorNats {
                system_account: "A".into(),
                kind: "operator".into(),
                version: 2,
            },
        };
        let jwt = encode(claims, &op, 1_700_000_000).expect("signs");
        let back: Claims<OperatorNats> = decode(&jwt).expect("decodes");
        assert_eq!(back.iss, op.public_key());
        assert_eq!(back.iat, 1_700_000_000);
        assert_eq!(back.nats.kind, "operator");
        assert!(!back.jti.is_empty());
        // A changed body no longer verifies.
        let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
        let forged = serde_json::to_vec(&serde_json::json!({
            "iat": 1, "iss": op.public_key(), "name": "x", "sub": "y",
            "nats": {"system_account": "B", "type": "operator", "version": 2}
        }))
        .expect("json");
        parts[1] = BASE64URL_NOPAD.encode(&forged);
        assert!(decode::<OperatorNats>(&parts.join(".")).is_err());
        assert!(decode::<OperatorNats>("a.b").is_err());
    }

    #[test]
    fn creds_blocks() {
        let text = creds_file("eyJ.x.y", "SUAAA");
        assert_eq!(jwt_of_creds(&text), Some("eyJ.x.y"));
        assert!(text.contains("-----BEGIN USER NKEY SEED-----\nSUAAA\n"));
    }
}
