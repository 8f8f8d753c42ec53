//! The static key file's provider (SPEC §10): keys listed in the auth file, verified by
//! one SHA-256 and a lookup in the current [`StaticKeySet`], held in an [`ArcSwap`] so a
//! reload (SIGHUP) replaces the whole set at once.
//!
//! The file says who a key is; the database still says whether that is allowed now, as
//! for a database token: a `user_id` naming a registered subject binds the key to it (a
//! disabled subject's keys are refused), and every zone the key lists must be active.
//! Those verdicts are cached in an [`IdentityCache`] of this provider's own, subscribed to
//! the invalidation bus, so disabling a subject or deleting a zone refuses the key on the
//! next request, on every node. The set is consulted before the cache on every request:
//! a key a reload removed is refused at once, whatever is cached.

use super::cache::Cached;
use super::identity::{BoundSubject, Credential};
use super::invalidation::Subscriber;
use super::{
    AuthError, AuthFuture, AuthProvider, Identity, IdentityCache, Invalidation, Refusal,
    TokenDigest, TokenHasher,
};
use crate::config::AuthChain;
use crate::db::Store;
use crate::zones::ZoneSource;
use arc_swap::ArcSwap;
use chrono::Utc;
use nexus_providers::static_keys::{KeyDigest, StaticEntry, StaticKeySet};
use std::collections::HashSet;
use std::sync::Arc;

pub struct StaticAuth {
    set: ArcSwap<StaticKeySet>,
    /// Where a reload reads the file from.
    source: AuthChain,
    store: Store,
    zones: ZoneSource,
    cache: Arc<IdentityCache>,
    /// Derives key ids: keyed, so an id reveals nothing about its key.
    hasher: Arc<TokenHasher>,
}

impl std::fmt::Debug for StaticAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticAuth")
            .field("keys", &self.set.load().len())
            .finish_non_exhaustive()
    }
}

/// What a reload changed, for its log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub keys: usize,
    pub plaintext: usize,
    pub added: usize,
    pub removed: usize,
}

impl StaticAuth {
    /// The provider over the set of `source`'s static section (checked at startup). `cache`
    /// must be this provider's own and subscribed to the bus.
    pub fn new(
        source: AuthChain,
        store: Store,
        zones: ZoneSource,
        cache: Arc<IdentityCache>,
        hasher: Arc<TokenHasher>,
    ) -> anyhow::Result<Self> {
        let set = match &source.file.static_keys {
            Some(c) => StaticKeySet::from_config(c)?,
            None => anyhow::bail!("auth type static needs a static section"),
        };
        warn_plaintext(&set);
        tracing::info!(
            keys = set.len(),
            plaintext = set.plaintext_users().len(),
            "static keys loaded"
        );
        Ok(Self {
            set: ArcSwap::from_pointee(set),
            source,
            store,
            zones,
            cache,
            hasher,
        })
    }

    /// Re-reads the file; a good one replaces the set (and every cached verdict), a bad
    /// one changes nothing. The error names the problem, never a key.
    pub fn reload(&self) -> anyhow::Result<Reloaded> {
        let file = self.source.reread()?;
        let set = match &file.static_keys {
            Some(c) => StaticKeySet::from_config(c)?,
            None => anyhow::bail!("the auth configuration no longer has a static section"),
        };
        let old: HashSet<KeyDigest> = self.set.load().digests().copied().collect();
        let new: HashSet<KeyDigest> = set.digests().copied().collect();
        let report = Reloaded {
            keys: set.len(),
            plaintext: set.plaintext_users().len(),
            added: new.difference(&old).count(),
            removed: old.difference(&new).count(),
        };
        warn_plaintext(&set);
        self.set.store(Arc::new(set));
        // After the swap: an identity built from the old set before it is buried too.
        self.cache.invalidate(&Invalidation::All);
        Ok(report)
    }

    /// [`Self::reload`], with the outcome logged (SIGHUP).
    pub fn reload_logged(&self) {
        match self.reload() {
            Ok(r) => tracing::info!(
                keys = r.keys,
                plaintext = r.plaintext,
                added = r.added,
                removed = r.removed,
                "static keys reloaded"
            ),
            Err(e) => tracing::error!(
                error = %format!("{e:#}"),
                "static keys NOT reloaded: the file is invalid; the previous keys stay in use"
            ),
        }
    }

    /// A stable id for a key: a keyed digest of its SHA-256, so audit lines and limits can
    /// name it while nothing about the key can be learned from the id.
    fn key_id(&self, d: &KeyDigest) -> uuid::Uuid {
        let mac = self
            .hasher
            .digest(&format!("nexus-static-key-id:{}", hex::encode(d.0)));
        let mut b = [0u8; 16];
        b.copy_from_slice(&mac.0[..16]);
        uuid::Builder::from_custom_bytes(b).into_uuid()
    }

    async fn verify(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        // Taken before the set is read: a reload after this point buries what is built.
        let epoch = self.cache.epoch();
        let set = self.set.load();
        let Some((digest, entry)) = set.lookup(token) else {
            return Err(AuthError::Refused(Refusal::Unknown));
        };
        let now = Utc::now();
        if entry.expires_at.is_some_and(|t| t <= now) {
            return Err(AuthError::Refused(Refusal::Expired));
        }
        let cache_key = TokenDigest(digest.0);
        if let Some(Cached::Valid(id)) = self.cache.get(&cache_key) {
            return Ok(id);
        }
        let identity = Arc::new(self.identity(&digest, entry).await?);
        self.cache.insert_valid(cache_key, identity.clone(), epoch);
        Ok(identity)
    }

    /// What the database says of the entry now: its subject's state and its zones'.
    async fn identity(&self, d: &KeyDigest, e: &StaticEntry) -> Result<Identity, AuthError> {
        let subject = match self.store.get_subject(&e.user_id).await {
            Ok(Some(s)) if s.disabled_at.is_some() => {
                return Err(AuthError::Refused(Refusal::Revoked));
            }
            Ok(Some(s)) => Some(BoundSubject {
                id: s.subject_id,
                kind: s.subject_type,
                tenant: s.tenant_id,
            }),
            Ok(None) => None,
            Err(_) => return Err(AuthError::Unavailable),
        };
        if !e.zones.is_empty() {
            let active = self
                .zones
                .active()
                .await
                .map_err(|_| AuthError::Unavailable)?;
            if !e.zones.iter().all(|g| active.names.contains(&g.zone_id)) {
                return Err(AuthError::Refused(Refusal::ZoneInactive));
            }
        }
        // A zoneless key is an admin's, or a subject's whose access is all ReBAC grants.
        if e.zones.is_empty() && !e.is_admin && subject.is_none() {
            return Err(AuthError::Refused(Refusal::ZoneInactive));
        }
        Ok(Identity {
            key_id: self.key_id(d),
            name: format!("static:{}", e.user_id),
            user_id: e.user_id.clone(),
            subject_type: e.subject_type,
            is_admin: e.is_admin,
            zones: e.zones.clone(),
            expires_at: e.expires_at,
            rate_limit: e.rate_limit,
            subject,
            rebac: Default::default(),
            credential: Credential::Static,
            groups: Vec::new(),
            // The entry's permissions are already folded into its zones and admin flag.
            permissions: None,
        })
    }
}

fn warn_plaintext(set: &StaticKeySet) {
    for user in set.plaintext_users() {
        tracing::warn!(
            user_id = user,
            "a static key is given in plain text in the auth file; replace it with its sha256: form (nexus hub token hash)"
        );
    }
}

impl AuthProvider for StaticAuth {
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(self.verify(token))
    }

    fn cached(&self, token: &str) -> Option<Arc<Identity>> {
        let set = self.set.load();
        let (digest, _) = set.lookup(token)?;
        match self.cache.get(&TokenDigest(digest.0)) {
            Some(Cached::Valid(id)) if !id.is_expired(Utc::now()) => Some(id),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        "static"
    }
}
