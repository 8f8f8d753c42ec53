//! What a caller may hold in the frontend before and after its token is verified.
//!
//! - [`KnownTokens`]: fingerprints of recently verified tokens (HMAC-SHA256 under a key
//!   drawn at start, never the token itself). Only a known token's body is read before
//!   the rpc-server has seen the token; it decides nothing about access, which the
//!   rpc-server verifies on every request.
//! - [`Unverified`]: requests per client address whose token is being verified.

use crate::forward::CallerToken;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long a verified token stays known after its last request (each of which the
/// rpc-server verifies, and a refusal forgets it), and how many are.
const KNOWN_IDLE: Duration = Duration::from_secs(60);
const KNOWN_MAX: u64 = 100_000;

/// Fingerprints of recently verified tokens and the key id each was verified as.
pub(crate) struct KnownTokens {
    key: [u8; 32],
    seen: moka::sync::Cache<[u8; 32], Arc<str>>,
}

impl std::fmt::Debug for KnownTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownTokens")
            .field("entries", &self.seen.entry_count())
            .finish_non_exhaustive()
    }
}

impl KnownTokens {
    pub fn new() -> anyhow::Result<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| anyhow::anyhow!("no randomness for the token fingerprint key: {e}"))?;
        Ok(Self {
            key,
            seen: moka::sync::Cache::builder()
                .max_capacity(KNOWN_MAX)
                .time_to_idle(KNOWN_IDLE)
                .build(),
        })
    }

    fn fingerprint(&self, t: &CallerToken) -> [u8; 32] {
        // A 32-byte key is always a valid HMAC key.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(t.secret.expose_secret().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The key id `t` was verified as recently, if it was. A token's key id never
    /// changes, so this names the caller; whether the token is still valid is not known.
    pub fn key_id(&self, t: &CallerToken) -> Option<Arc<str>> {
        self.seen.get(&self.fingerprint(t))
    }

    pub fn remember(&self, t: &CallerToken, key_id: &str) {
        if !key_id.is_empty() {
            self.seen.insert(self.fingerprint(t), Arc::from(key_id));
        }
    }

    pub fn forget(&self, t: &CallerToken) {
        self.seen.invalidate(&self.fingerprint(t));
    }
}

/// In-flight requests per client address whose token is not verified yet.
#[derive(Debug)]
pub(crate) struct Unverified {
    max: usize,
    held: nexus_serve::Counts<IpAddr>,
}

/// One unverified request's place; released when dropped.
pub(crate) type UnverifiedGuard = nexus_serve::CountedSlot<IpAddr>;

impl Unverified {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            held: Default::default(),
        }
    }

    /// A place for one more unverified request from `ip`, unless it holds the maximum.
    pub fn try_acquire(&self, ip: IpAddr) -> Option<UnverifiedGuard> {
        UnverifiedGuard::take(&self.held, ip, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn tok(s: &str) -> CallerToken {
        CallerToken {
            secret: SecretString::from(s.to_owned()),
            client: None,
        }
    }

    #[test]
    fn known_tokens_are_keyed_fingerprints() {
        let k = KnownTokens::new().expect("key");
        assert!(k.key_id(&tok("sk-a")).is_none());
        k.remember(&tok("sk-a"), "key-1");
        assert_eq!(k.key_id(&tok("sk-a")).as_deref(), Some("key-1"));
        assert!(k.key_id(&tok("sk-b")).is_none());
        k.forget(&tok("sk-a"));
        assert!(k.key_id(&tok("sk-a")).is_none());
        // Another process (another key) fingerprints the same token differently.
        let other = KnownTokens::new().expect("key");
        assert_ne!(k.fingerprint(&tok("sk-a")), other.fingerprint(&tok("sk-a")));
    }

    #[test]
    fn unverified_places_per_address() {
        let u = Unverified::new(2);
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        let b: IpAddr = "127.0.0.2".parse().expect("ip");
        let g1 = u.try_acquire(a).expect("first");
        let _g2 = u.try_acquire(a).expect("second");
        assert!(u.try_acquire(a).is_none());
        assert!(u.try_acquire(b).is_some());
        drop(g1);
        assert!(u.try_acquire(a).is_some());
    }
}
