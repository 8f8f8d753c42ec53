//! Who is calling: token types, the auth providers that turn a token into an [`Identity`],
//! the identity cache in front of the database provider, and the invalidation bus that
//! keeps the cache honest when tokens or zones change.

pub mod cache;
pub mod chain;
pub mod cluster_bus;
pub mod database;
pub mod db_notify;
pub mod grants;
pub(crate) mod identity;
pub mod invalidation;
pub mod last_used;
pub mod local;
pub(crate) mod oidc;
pub(crate) mod single_key;
pub mod static_keys;
pub(crate) mod token;

pub use cache::IdentityCache;
pub use identity::{Credential, Identity};
pub use invalidation::{Invalidation, InvalidationBus};
pub use token::{PlainToken, TokenDigest, TokenHasher};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Why a token was refused. Callers all see the same 401; the reason feeds metrics only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Unknown,
    Revoked,
    Expired,
    ZoneInactive,
}

impl Refusal {
    pub const fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::ZoneInactive => "zone_inactive",
        }
    }
}

/// The outcome of a failed authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token is not valid now. Maps to 401.
    #[error("invalid token")]
    Refused(Refusal),
    /// The provider could not decide (database down). Maps to 503: the hub must not claim
    /// a token is invalid when it cannot know.
    #[error("authentication backend unavailable")]
    Unavailable,
}

/// Counts a verification's outcome in `nexus_auth_results_total` (a closed label set).
pub(crate) fn count_result(m: &crate::metrics::Metrics, res: &Result<Arc<Identity>, AuthError>) {
    let label = match res {
        Ok(_) => "ok",
        Err(AuthError::Refused(r)) => r.label(),
        Err(AuthError::Unavailable) => "unavailable",
    };
    m.auth_results.with_label_values(&[label]).inc();
}

pub type AuthFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<Identity>, AuthError>> + Send + 'a>>;

/// Token in, identity or refusal out. Routes depend on this trait only: each provider
/// (database keys, the static file, login tokens, OIDC) implements it, and the
/// [`chain::ProviderChain`] picks among them by the credential's shape.
pub trait AuthProvider: Send + Sync + std::fmt::Debug {
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a>;
    /// The identity for `token` when it can be known without asking the database (an
    /// identity verified recently and still cached); `None` otherwise. Lets an address
    /// that is over its failed-authentication limit keep using tokens already verified
    /// without costing a lookup for anything else.
    fn cached(&self, token: &str) -> Option<Arc<Identity>> {
        let _ = token;
        None
    }
    /// A short label for status and metrics.
    fn kind(&self) -> &'static str;
}
