//! The OIDC provider of the chain (SPEC §10): one per configured issuer, added with
//! `ProviderChain::with_issuer`. It joins the pure verifier of `nexus_providers::oidc` to
//! what needs the hub: the identity cache (by the token's HMAC digest, like every other
//! credential, until `exp` or the cache TTL), the registered subjects (a subject id that
//! names one binds the identity to it; a disabled one is refused, and the subject
//! invalidation buries cached identities at once), and metrics.
//!
//! An OIDC caller's key id is derived from (issuer, subject): stable across its tokens, so
//! rate limits and audit follow the caller rather than each short-lived token, and distinct
//! between issuers that happen to share a subject name.

use super::cache::Cached;
use super::identity::{BoundSubject, Credential};
use super::{AuthError, AuthFuture, AuthProvider, Identity, IdentityCache, Refusal, TokenHasher};
use crate::db::Store;
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use nexus_providers::config::OidcConfig;
use nexus_providers::oidc::{OidcVerifier, Rejection, Verified};
use nexus_wire::spec::SubjectType;
use sha2::Digest as _;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug)]
pub(crate) struct OidcAuth {
    /// The configuration's name for the issuer (`oidc`, or the multi-oidc key).
    name: String,
    verifier: OidcVerifier,
    store: Store,
    hasher: Arc<TokenHasher>,
    cache: Arc<IdentityCache>,
    metrics: Metrics,
}

impl OidcAuth {
    pub(crate) fn new(
        name: &str,
        cfg: &OidcConfig,
        store: Store,
        hasher: Arc<TokenHasher>,
        cache: Arc<IdentityCache>,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let m = metrics.clone();
        let verifier = OidcVerifier::new(
            cfg,
            Arc::new(move |outcome| m.oidc_jwks_fetches.with_label_values(&[outcome]).inc()),
        )
        .map_err(anyhow::Error::msg)?;
        Ok(Self {
            name: name.to_owned(),
            verifier,
            store,
            hasher,
            cache,
            metrics,
        })
    }

    pub(crate) fn issuer(&self) -> &str {
        self.verifier.issuer()
    }

    async fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        let digest = self.hasher.digest(token);
        let now = Utc::now();
        if let Some(answer) = self.cache.answer(&digest, &self.metrics, now) {
            return answer;
        }
        let epoch = self.cache.epoch();
        let v = match self.verifier.verify(token).await {
            Ok(v) => v,
            Err(r) => {
                self.metrics
                    .oidc_refusals
                    .with_label_values(&[r.label()])
                    .inc();
                let refusal = match r {
                    // The hub cannot stand behind a 401 while it has no keys to judge by.
                    Rejection::Unavailable => return Err(AuthError::Unavailable),
                    Rejection::Expired => Refusal::Expired,
                    Rejection::Malformed => Refusal::Malformed,
                    _ => Refusal::Unknown,
                };
                // Not for an unknown kid: the IdP may publish it on its next rotation.
                if r != Rejection::UnknownKey {
                    self.cache.insert_refused(digest, refusal);
                }
                return Err(AuthError::Refused(refusal));
            }
        };
        let timer = self
            .metrics
            .db_query_seconds
            .with_label_values(&["get_subject"])
            .start_timer();
        let found = self.store.get_subject(&v.subject).await;
        timer.observe_duration();
        let subject = match found {
            Ok(s) => s,
            Err(_) => {
                self.metrics
                    .db_errors
                    .with_label_values(&["get_subject"])
                    .inc();
                return Err(AuthError::Unavailable);
            }
        };
        if subject.as_ref().is_some_and(|s| s.disabled_at.is_some()) {
            self.metrics
                .oidc_refusals
                .with_label_values(&["disabled"])
                .inc();
            self.cache.insert_refused(digest, Refusal::Revoked);
            return Err(AuthError::Refused(Refusal::Revoked));
        }
        let identity = Arc::new(self.identity(v, subject));
        self.cache.insert_valid(digest, identity.clone(), epoch);
        Ok(identity)
    }

    fn identity(&self, v: Verified, subject: Option<crate::db::SubjectRecord>) -> Identity {
        let bound = subject.map(|s| BoundSubject {
            id: s.subject_id,
            kind: s.subject_type,
            tenant: s.tenant_id,
        });
        Identity {
            key_id: caller_id(self.issuer(), &v.subject),
            name: format!("{}:{}", self.name, v.subject),
            subject_type: bound.as_ref().map_or(SubjectType::User, |b| b.kind),
            user_id: v.subject,
            is_admin: v.is_admin,
            zones: v.zones,
            expires_at: DateTime::<Utc>::from_timestamp(v.expires_at, 0),
            rate_limit: None,
            subject: bound,
            rebac: Default::default(),
            credential: Credential::Oidc,
            groups: v.groups,
            // What the claims grant (zones, admin groups) is the whole of it.
            permissions: None,
        }
    }
}

/// A UUID (version 8, RFC 9562 custom) from SHA-256 of the issuer (length-prefixed, so
/// no two pairs collide by moving a boundary) and the subject.
pub(crate) fn caller_id(issuer: &str, subject: &str) -> Uuid {
    let mut h = sha2::Sha256::new();
    h.update(b"nexus-oidc-caller\0");
    h.update((issuer.len() as u64).to_be_bytes());
    h.update(issuer.as_bytes());
    h.update(subject.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_custom_bytes(b).into_uuid()
}

impl AuthProvider for OidcAuth {
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            let res = self.verify(token).await;
            super::count_result(&self.metrics, &res);
            res
        })
    }

    fn cached(&self, token: &str) -> Option<Arc<Identity>> {
        match self.cache.get(&self.hasher.digest(token)) {
            Some(Cached::Valid(id)) if !id.is_expired(Utc::now()) => {
                self.metrics.auth_cache.with_label_values(&["hit"]).inc();
                self.metrics.auth_results.with_label_values(&["ok"]).inc();
                Some(id)
            }
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        "oidc"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_ids_are_stable_and_per_issuer() {
        let a = caller_id("https://a", "alice");
        assert_eq!(a, caller_id("https://a", "alice"));
        assert_ne!(a, caller_id("https://b", "alice"));
        assert_ne!(a, caller_id("https://a", "bob"));
        assert_ne!(
            caller_id("https://a", "b\0c"),
            caller_id("https://a\0b", "c")
        );
        assert_eq!(a.get_version_num(), 8);
    }
}
