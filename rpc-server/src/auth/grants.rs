//! Compiled ReBAC grants per identity (SPEC §9): never a recursive walk of the database
//! on the hot path.
//!
//! On the first call that needs them, an identity's grants are compiled from two queries,
//! the group membership edges reachable from its base subjects (`token:<key_id>` and the
//! bound subject) and the tuples of its subject set, and kept in the identity's cache entry.
//! They are rebuilt when any ReBAC change is announced (the `rebac` invalidation, through
//! the bus, the database's notifications or Redis: a local generation counter moves), when
//! a tuple they used expires, and at the identity cache's TTL at the latest.

use super::identity::Identity;
use super::invalidation::{Invalidation, Subscriber};
use crate::db::{Store, StoreError};
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use nexus_authz::closure::SubjectSet;
use nexus_authz::grants::Grants;
use nexus_authz::model::SubjectRef;
use nexus_wire::RpcError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// An identity's grants as compiled, and when they stop being good.
#[derive(Debug)]
pub struct Compiled {
    pub grants: Arc<Grants>,
    /// The groups the caller is a member of, transitively, sorted.
    pub groups: Vec<String>,
    generation: u64,
    built: Instant,
    valid_until: Option<DateTime<Utc>>,
}

/// Builds and refreshes compiled grants.
#[derive(Debug)]
pub struct GrantsSource {
    store: Store,
    /// Moved by every ReBAC change announced to this process; grants compiled from reads
    /// that began before the move are stale.
    generation: AtomicU64,
    ttl: Duration,
    metrics: Metrics,
}

/// The subjects a token speaks for before the group closure: itself, the subject it is
/// bound to, and the groups its issuer asserts (an OIDC `groups_claim`), each as a member of
/// that group, so nested groups follow as for tuples. The zone ceiling still applies after.
pub fn base_subjects(id: &Identity) -> Vec<SubjectRef> {
    let mut base = vec![SubjectRef::Token(id.key_id.to_string())];
    if let Some(s) = &id.subject {
        base.push(match s.kind {
            nexus_wire::spec::SubjectType::User => SubjectRef::User(s.id.clone()),
            nexus_wire::spec::SubjectType::Agent => SubjectRef::Agent(s.id.clone()),
            nexus_wire::spec::SubjectType::Service => SubjectRef::Service(s.id.clone()),
        });
    }
    base.extend(id.groups.iter().cloned().map(SubjectRef::GroupMember));
    base
}

impl GrantsSource {
    pub fn new(store: Store, ttl: Duration, metrics: Metrics) -> Self {
        Self {
            store,
            generation: AtomicU64::new(0),
            ttl,
            metrics,
        }
    }

    fn fresh(&self, c: &Compiled, now: DateTime<Utc>) -> bool {
        c.generation == self.generation.load(Ordering::Acquire)
            && c.built.elapsed() < self.ttl
            && c.valid_until.is_none_or(|t| now < t)
    }

    fn cached(&self, id: &Identity) -> Option<Arc<Compiled>> {
        let c = id.rebac.get().filter(|c| self.fresh(c, Utc::now()))?;
        self.metrics
            .rebac_compiles
            .with_label_values(&["hit"])
            .inc();
        Some(c)
    }

    /// The identity's grants: cached ones while fresh, else compiled now.
    pub async fn for_identity(&self, id: &Identity) -> Result<Arc<Compiled>, RpcError> {
        if let Some(c) = self.cached(id) {
            return Ok(c);
        }
        let _building = id.rebac.building().await;
        // Another call may have compiled them while this one waited.
        if let Some(c) = self.cached(id) {
            return Ok(c);
        }
        let now = Utc::now();
        let generation = self.generation.load(Ordering::Acquire);
        let built = Instant::now();
        let timer = self
            .metrics
            .db_query_seconds
            .with_label_values(&["rebac_compile"])
            .start_timer();
        let res = self.compile(id, now).await;
        timer.observe_duration();
        let (grants, groups) = match res {
            Ok(r) => r,
            Err(e) => {
                self.metrics
                    .rebac_compiles
                    .with_label_values(&["error"])
                    .inc();
                return Err(e);
            }
        };
        self.metrics
            .rebac_compiles
            .with_label_values(&["compiled"])
            .inc();
        let c = Arc::new(Compiled {
            valid_until: grants.valid_until(),
            grants: Arc::new(grants),
            groups,
            generation,
            built,
        });
        // A change announced while compiling may not be in what was read: use it for this
        // call, which began before the change, but do not keep it.
        if self.generation.load(Ordering::Acquire) == generation {
            id.rebac.set(Some(c.clone()));
        }
        Ok(c)
    }

    async fn compile(
        &self,
        id: &Identity,
        now: DateTime<Utc>,
    ) -> Result<(Grants, Vec<String>), RpcError> {
        let base = base_subjects(id);
        let edges = self
            .store
            .closure_edges(&base, now)
            .await
            .map_err(|e| store_refusal(id, e))?;
        let set = SubjectSet::build(&base, &edges, now).map_err(|e| {
            // Fail closed: no grants at all, and the operator learns why.
            tracing::warn!(key_id = %id.key_id, error = %e, "cannot compile grants; denying");
            RpcError::permission_denied(format!("permission denied: {e}"))
        })?;
        let mut subjects = base;
        let mut groups: Vec<String> = set.groups().map(str::to_owned).collect();
        groups.sort();
        subjects.extend(groups.iter().cloned().map(SubjectRef::GroupMember));
        let tuples = self
            .store
            .tuples_for(&subjects, now)
            .await
            .map_err(|e| store_refusal(id, e))?;
        Ok((Grants::compile(&set, &tuples, now), groups))
    }
}

/// A store failure while compiling: a bound passed is a denial (fail closed, logged), the
/// database unreachable is "retry".
fn store_refusal(id: &Identity, e: StoreError) -> RpcError {
    match e {
        StoreError::TooManyGroups | StoreError::TooManyTuples => {
            tracing::warn!(key_id = %id.key_id, error = %e, "cannot compile grants; denying");
            RpcError::permission_denied(format!("permission denied: {e}"))
        }
        _ => RpcError::unavailable("database unavailable; retry shortly"),
    }
}

impl Subscriber for GrantsSource {
    fn invalidate(&self, what: &Invalidation) {
        if matches!(what, Invalidation::Rebac | Invalidation::All) {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}
