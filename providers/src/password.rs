//! Password hashing for local users (SPEC §10): argon2id with the crate's defaults as PHC
//! strings; seed-style `$2b$` bcrypt hashes are verified and reported as needing a re-hash.
//!
//! Everything here is synchronous and slow on purpose (argon2id's defaults use 19 MiB and
//! tens of milliseconds): callers run it off the async threads with bounded concurrency.
//! An unknown user is checked against a fixed dummy hash with the same parameters, so a
//! wrong username costs the same work as a wrong password.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::sync::OnceLock;

/// Longest password accepted, in bytes: long passphrases fit; megabytes of input are
/// refused before any hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest username accepted, in bytes.
pub const MAX_USERNAME_BYTES: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be 1-{MAX_PASSWORD_BYTES} bytes")]
    BadLength,
    #[error("not a supported password hash (argon2id PHC string or $2b$ bcrypt)")]
    BadHash,
    #[error("password hashing failed")]
    Hashing,
}

/// The result of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Wrong password (or the dummy for an unknown user).
    No,
    /// Right password, hash current.
    Yes,
    /// Right password; the stored hash should be replaced by [`hash`] of it (bcrypt, or
    /// argon2 with other parameters).
    YesRehash,
}

impl Verified {
    pub fn ok(self) -> bool {
        self != Self::No
    }
}

/// Checks a new password's length.
pub fn check_password(pw: &str) -> Result<(), PasswordError> {
    if pw.is_empty() || pw.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::BadLength);
    }
    Ok(())
}

/// A PHC argon2id string of `pw` with a fresh random salt.
pub fn hash(pw: &str) -> Result<String, PasswordError> {
    check_password(pw)?;
    Argon2::default()
        .hash_password(pw.as_bytes())
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hashing)
}

/// Checks that `stored` is a hash this module can verify (for hashes given in the auth
/// file), without a password.
pub fn check_hash(stored: &str) -> Result<(), PasswordError> {
    if is_bcrypt(stored) {
        return Ok(());
    }
    match PasswordHash::new(stored) {
        Ok(h) if h.algorithm.as_str().starts_with("argon2") => Ok(()),
        _ => Err(PasswordError::BadHash),
    }
}

fn is_bcrypt(s: &str) -> bool {
    ["$2b$", "$2a$", "$2y$"].iter().any(|p| s.starts_with(p))
}

/// Verifies `pw` against `stored`. An unusable stored hash verifies nothing (after the
/// same work as a wrong password, so the state of an account is not a timing tell).
pub fn verify(pw: &str, stored: &str) -> Verified {
    if pw.len() > MAX_PASSWORD_BYTES {
        dummy_work(pw);
        return Verified::No;
    }
    if is_bcrypt(stored) {
        return match bcrypt::verify(pw, stored) {
            Ok(true) => Verified::YesRehash,
            _ => Verified::No,
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        dummy_work(pw);
        return Verified::No;
    };
    if Argon2::default()
        .verify_password(pw.as_bytes(), &parsed)
        .is_err()
    {
        return Verified::No;
    }
    // Current means: the algorithm and parameters the defaults would produce today.
    let current = dummy_hash();
    let same_params = PasswordHash::new(current).is_ok_and(|d| {
        d.algorithm == parsed.algorithm && d.version == parsed.version && d.params == parsed.params
    });
    if same_params {
        Verified::Yes
    } else {
        Verified::YesRehash
    }
}

/// The work of verifying a wrong password, for a username that does not exist.
pub fn dummy_work(pw: &str) {
    let bounded = &pw.as_bytes()[..pw.len().min(MAX_PASSWORD_BYTES)];
    if let Ok(parsed) = PasswordHash::new(dummy_hash()) {
        let _ = Argon2::default().verify_password(bounded, &parsed);
    }
}

/// A fixed argon2id hash of a random secret nobody knows, made once per process with the
/// current defaults (so its cost is exactly a real user's).
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 32];
        // Should the OS generator fail, the fixed fallback is still a hash nobody
        // presents by accident; what matters here is the cost, not the secret.
        let _ = getrandom::fill(&mut secret);
        Argon2::default()
            .hash_password(&secret)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Makes the dummy hash now, so the first login for an unknown user costs no more than
/// any other.
pub fn warm_up() {
    let _ = dummy_hash();
}

/// A random password for the root user when none is given: 24 characters from a
/// 56-symbol alphabet without look-alikes (~139 bits).
pub fn generate() -> Result<String, PasswordError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = String::with_capacity(24);
    while out.len() < 24 {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|_| PasswordError::Hashing)?;
        // Rejection sampling: no modulo bias.
        let limit = 256 - (256 % ALPHABET.len());
        for x in b {
            if (x as usize) < limit && out.len() < 24 {
                out.push(ALPHABET[x as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify_and_are_current() {
        let h = hash("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert_eq!(verify("correct horse", &h), Verified::Yes);
        assert_eq!(verify("wrong", &h), Verified::No);
        check_hash(&h).expect("usable");
    }

    #[test]
    fn bcrypt_verifies_and_asks_for_a_rehash() {
        let b = bcrypt::hash("seed-password", 4).expect("bcrypt");
        assert_eq!(verify("seed-password", &b), Verified::YesRehash);
        assert_eq!(verify("nope", &b), Verified::No);
        check_hash(&b).expect("usable");
    }

    #[test]
    fn junk_hashes_and_oversized_passwords_verify_nothing() {
        assert_eq!(verify("x", "plaintext"), Verified::No);
        assert!(check_hash("plaintext").is_err());
        let h = hash("p").expect("hash");
        assert_eq!(
            verify(&"p".repeat(MAX_PASSWORD_BYTES + 1), &h),
            Verified::No
        );
        assert_eq!(hash(""), Err(PasswordError::BadLength));
        let g = generate().expect("generate");
        assert_eq!(g.len(), 24);
        assert_ne!(g, generate().expect("again"));
    }
}
