//! Single-key mode (`nexusd --api-key sk-…`): one admin identity, no database. For
//! development only.

use super::{AuthError, AuthFuture, AuthProvider, Identity, Refusal};
use nexus_wire::spec::{Permission, SubjectType, ZoneGrant};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The zone the single identity works in.
pub const SINGLE_KEY_ZONE: &str = "default";

pub struct SingleKeyAuth {
    expected: [u8; 32],
    identity: Arc<Identity>,
}

impl std::fmt::Debug for SingleKeyAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SingleKeyAuth(<secret>)")
    }
}

impl SingleKeyAuth {
    pub fn new(key: &str) -> Result<Self, String> {
        if !key.starts_with("sk-") || key.len() < 19 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "--api-key must start with sk- and be at least 16 characters after it".into(),
            );
        }
        Ok(Self {
            expected: Sha256::digest(key.as_bytes()).into(),
            identity: Arc::new(Identity {
                key_id: uuid::Uuid::nil(),
                name: "api-key".into(),
                user_id: "admin".into(),
                subject_type: SubjectType::User,
                is_admin: true,
                zones: vec![ZoneGrant {
                    zone_id: SINGLE_KEY_ZONE.into(),
                    permission: Permission::ReadWrite,
                }],
                expires_at: None,
                rate_limit: None,
                subject: None,
                rebac: Default::default(),
                credential: super::identity::Credential::SingleKey,
                groups: Vec::new(),
                permissions: None,
            }),
        })
    }

    /// Compares in constant time. Hashing both sides first makes the comparison length
    /// independent too: a byte-by-byte `==` on the raw key would let a caller find the key
    /// one byte at a time by timing, and its early exit on length would leak the length.
    fn matches(&self, presented: &str) -> bool {
        let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        got.ct_eq(&self.expected).into()
    }
}

impl AuthProvider for SingleKeyAuth {
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            if self.matches(token) {
                Ok(self.identity.clone())
            } else {
                Err(AuthError::Refused(Refusal::Unknown))
            }
        })
    }

    fn cached(&self, token: &str) -> Option<Arc<Identity>> {
        // No database behind this provider: the answer costs the same as a cached one.
        self.matches(token).then(|| self.identity.clone())
    }

    fn kind(&self) -> &'static str {
        "single-key"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepts_only_the_key() {
        let a = SingleKeyAuth::new("sk-development-key-123").expect("valid");
        assert!(a.authenticate("sk-development-key-123").await.is_ok());
        for bad in [
            "",
            "sk-development-key-12",
            "sk-development-key-1234",
            "SK-development-key-123",
        ] {
            assert_eq!(
                a.authenticate(bad).await,
                Err(AuthError::Refused(Refusal::Unknown))
            );
        }
        assert!(SingleKeyAuth::new("sk-short").is_err());
        assert!(SingleKeyAuth::new("nosk-aaaaaaaaaaaaaaaaaaaa").is_err());
    }
}
