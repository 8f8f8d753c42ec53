//! The database auth provider: validation order format → digest lookup → revoked →
//! expired → zones active → identity, behind the identity cache.
//!
//! A malformed token is refused only after the same digest, cache and lookup work as an
//! unknown well-formed one (SPEC §2: no timing tell); the negative cache and the
//! per-address failure limit are what keep junk from hammering the database.

use super::cache::Cached;
use super::last_used::LastUsed;
use super::token::is_well_formed;
use super::{AuthError, AuthFuture, AuthProvider, Identity, IdentityCache, Refusal, TokenHasher};
use crate::db::Store;
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use nexus_providers::permissions::Perms;
use std::sync::Arc;

#[derive(Debug)]
pub struct DatabaseAuth {
    store: Store,
    hasher: Arc<TokenHasher>,
    cache: Arc<IdentityCache>,
    last_used: Arc<LastUsed>,
    metrics: Metrics,
}

impl DatabaseAuth {
    pub fn new(
        store: Store,
        hasher: Arc<TokenHasher>,
        cache: Arc<IdentityCache>,
        last_used: Arc<LastUsed>,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            hasher,
            cache,
            last_used,
            metrics,
        }
    }

    /// A valid identity found in the cache: counted as a hit, and as a use unless it has
    /// expired since (a cached identity still expires on time: `None`).
    fn cache_hit(&self, id: Arc<Identity>, now: DateTime<Utc>) -> Option<Arc<Identity>> {
        self.metrics.auth_cache.with_label_values(&["hit"]).inc();
        if id.is_expired(now) {
            return None;
        }
        self.last_used.record(id.key_id, now);
        Some(id)
    }

    async fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        let well_formed = is_well_formed(token);
        let digest = self.hasher.digest(token);
        let now = Utc::now();
        if let Some(answer) = self.cache.answer(&digest, &self.metrics, now) {
            if let Ok(id) = &answer {
                self.last_used.record(id.key_id, now);
            }
            return answer;
        }
        let epoch = self.cache.epoch();
        let timer = self
            .metrics
            .db_query_seconds
            .with_label_values(&["find_token"])
            .start_timer();
        let mut found = self.store.find_token_by_digest(&digest.0).await;
        // Secret rotation: a token hashed with the previous secret still verifies, and is
        // re-hashed with the current one so the previous secret can be retired.
        if let (Ok(None), Some(old)) = (&found, self.hasher.previous_digest(token)) {
            found = self.store.find_token_by_digest(&old.0).await;
            if let Ok(Some(rec)) = &found
                && well_formed
                && self
                    .store
                    .rehash_token(rec.key_id, &old.0, &digest.0)
                    .await
                    .is_err()
            {
                self.metrics
                    .db_errors
                    .with_label_values(&["rehash_token"])
                    .inc();
            }
        }
        timer.observe_duration();
        let rec = match found {
            // Only minted (well-formed) tokens are ever stored, so a malformed one cannot
            // match; refusing it here as well keeps that true whatever the table holds.
            Ok(Some(_)) | Ok(None) if !well_formed => {
                return self.refuse(digest, Refusal::Malformed);
            }
            Ok(Some(rec)) => rec,
            Ok(None) => return self.refuse(digest, Refusal::Unknown),
            Err(_) => {
                self.metrics
                    .db_errors
                    .with_label_values(&["find_token"])
                    .inc();
                return Err(AuthError::Unavailable);
            }
        };
        if rec.revoked_at.is_some() {
            return self.refuse(digest, Refusal::Revoked);
        }
        if rec.expires_at.is_some_and(|t| t <= now) {
            return self.refuse(digest, Refusal::Expired);
        }
        // A disabled subject's tokens are refused exactly like revoked ones.
        if rec
            .subject
            .as_ref()
            .is_some_and(|s| s.disabled_at.is_some())
        {
            return self.refuse(digest, Refusal::Revoked);
        }
        // An OAuth token of an OIDC subject speaks for the groups its provider asserted.
        let groups = crate::db::split_groups(&rec.oauth_groups);
        // A zoneless token is an admin's, or one whose access is all ReBAC grants: a
        // subject's, or its groups'.
        if !rec.zones_active
            || (rec.zones.is_empty() && !rec.is_admin && rec.subject.is_none() && groups.is_empty())
        {
            return self.refuse(digest, Refusal::ZoneInactive);
        }
        let subject = rec.subject.map(|s| super::identity::BoundSubject {
            id: rec.user_id.clone(),
            kind: s.subject_type,
            tenant: s.tenant_id,
        });
        let identity = Arc::new(Identity {
            key_id: rec.key_id,
            name: rec.name,
            user_id: rec.user_id,
            subject_type: rec.subject_type,
            is_admin: rec.is_admin,
            zones: rec.zones,
            expires_at: rec.expires_at,
            // Written only through the parser; an unreadable value falls back to the tier
            // default rather than refusing the token.
            rate_limit: rec.rate_limit.as_deref().and_then(|s| s.parse().ok()),
            subject,
            rebac: Default::default(),
            credential: super::identity::Credential::Database,
            groups,
            permissions: match rec.permissions.as_deref().map(Perms::parse_stored) {
                None => None,
                Some(Ok(p)) => Some(p),
                // Fail closed: a permission list this version cannot read grants nothing.
                Some(Err(_)) => Some(Perms::empty()),
            },
        });
        self.cache.insert_valid(digest, identity.clone(), epoch);
        self.last_used.record(identity.key_id, now);
        Ok(identity)
    }

    fn refuse(&self, digest: super::TokenDigest, r: Refusal) -> Result<Arc<Identity>, AuthError> {
        self.cache.insert_refused(digest, r);
        Err(AuthError::Refused(r))
    }
}

impl AuthProvider for DatabaseAuth {
    fn cached(&self, token: &str) -> Option<Arc<Identity>> {
        let digest = self.hasher.digest(token);
        match self.cache.get(&digest) {
            Some(Cached::Valid(id)) if is_well_formed(token) => {
                let id = self.cache_hit(id, Utc::now())?;
                self.metrics.auth_results.with_label_values(&["ok"]).inc();
                Some(id)
            }
            _ => None,
        }
    }

    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            let res = self.verify(token).await;
            super::count_result(&self.metrics, &res);
            res
        })
    }

    fn kind(&self) -> &'static str {
        "database"
    }
}
