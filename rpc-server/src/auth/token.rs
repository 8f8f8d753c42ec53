//! Token types that make misuse hard: a [`PlainToken`] exists only at mint time and cannot
//! be printed by accident; what is stored, cached and compared is the [`TokenDigest`],
//! an HMAC-SHA256 of the token under the server secret.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use std::fmt;

/// Every minted token starts with this.
pub const TOKEN_PREFIX: &str = "sk-";
/// Random bytes per token: 256 bits, twice the required minimum.
const TOKEN_RANDOM_BYTES: usize = 32;
/// Length of the base64url (unpadded) encoding of the random part.
const TOKEN_BODY_LEN: usize = 43;
/// Shortest acceptable server secret.
pub const MIN_SECRET_LEN: usize = 32;

/// A raw token, shown to the operator once. `Debug` is redacted and there is no `Display`.
pub struct PlainToken(SecretString);

impl PlainToken {
    /// Draws a fresh token from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_RANDOM_BYTES];
        getrandom::fill(&mut bytes).expect("the operating system CSPRNG is unavailable");
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Self(SecretString::from(format!("{TOKEN_PREFIX}{body}")))
    }

    /// The token text, for the one place it is shown.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainToken(<redacted>)")
    }
}

/// True when `s` has the exact shape of a minted token. Checked before any lookup so junk
/// never reaches the cache or the database.
pub fn is_well_formed(s: &str) -> bool {
    s.len() == TOKEN_PREFIX.len() + TOKEN_BODY_LEN
        && s.starts_with(TOKEN_PREFIX)
        && s[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// HMAC-SHA256 of a token under the server secret: what the database and the cache hold.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest(pub [u8; 32]);

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({}…)", hex::encode(&self.0[..4]))
    }
}

/// Computes token digests. Holds the server secret, which it never reveals.
pub struct TokenHasher {
    key: SecretBox<Vec<u8>>,
    /// The secret being rotated away from: tokens hashed with it still verify (and are
    /// re-hashed with the current one on first use) until it is removed.
    previous: Option<SecretBox<Vec<u8>>>,
}

impl fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHasher(<secret>)")
    }
}

/// The secret is unusable.
#[derive(Debug, thiserror::Error)]
#[error("NEXUS_API_KEY_SECRET must be at least {MIN_SECRET_LEN} characters")]
pub struct WeakSecret;

impl TokenHasher {
    pub fn new(secret: &SecretString) -> Result<Self, WeakSecret> {
        let s = secret.expose_secret().trim();
        if s.len() < MIN_SECRET_LEN {
            return Err(WeakSecret);
        }
        Ok(Self {
            key: SecretBox::new(Box::new(s.as_bytes().to_vec())),
            previous: None,
        })
    }

    /// Also accepts tokens hashed with `previous` (secret rotation).
    pub fn with_previous(mut self, previous: &SecretString) -> Result<Self, WeakSecret> {
        let p = previous.expose_secret().trim();
        if p.len() < MIN_SECRET_LEN {
            return Err(WeakSecret);
        }
        self.previous = Some(SecretBox::new(Box::new(p.as_bytes().to_vec())));
        Ok(self)
    }

    pub fn digest(&self, token: &str) -> TokenDigest {
        hmac(self.key.expose_secret(), token)
    }

    /// A key for another purpose, derived from the server secret (HMAC-SHA256 under the
    /// secret of a fixed label), so one secret protects digests and sealed keys alike
    /// without the two uses ever sharing a key.
    pub(crate) fn subkey(&self, label: &str) -> SecretBox<[u8; 32]> {
        SecretBox::new(Box::new(hmac(self.key.expose_secret(), label).0))
    }

    /// The digest under the previous secret, when one is configured.
    pub fn previous_digest(&self, token: &str) -> Option<TokenDigest> {
        self.previous
            .as_ref()
            .map(|k| hmac(k.expose_secret(), token))
    }
}

fn hmac(key: &[u8], token: &str) -> TokenDigest {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(token.as_bytes());
    TokenDigest(mac.finalize().into_bytes().into())
}

/// Draws a new server secret (64 hex characters) for embedded installs.
pub fn generate_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system CSPRNG is unavailable");
    SecretString::from(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_well_formed_unique_and_redacted() {
        let a = PlainToken::generate();
        let b = PlainToken::generate();
        assert!(is_well_formed(a.expose()), "{}", a.expose().len());
        assert_ne!(a.expose(), b.expose());
        assert!(!format!("{a:?}").contains(&a.expose()[3..]));
        for bad in [
            "",
            "sk-",
            "sk-short",
            "pk-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(!is_well_formed(bad));
        }
        let mut s = a.expose().to_owned();
        s.push('x');
        assert!(!is_well_formed(&s));
    }

    #[test]
    fn digest_depends_on_secret_and_token() {
        let h1 = TokenHasher::new(&SecretString::from("a".repeat(32))).expect("long enough");
        let h2 = TokenHasher::new(&SecretString::from("b".repeat(32))).expect("long enough");
        assert_eq!(h1.digest("sk-x"), h1.digest("sk-x"));
        assert_ne!(h1.digest("sk-x"), h2.digest("sk-x"));
        assert_ne!(h1.digest("sk-x"), h1.digest("sk-y"));
        assert!(TokenHasher::new(&SecretString::from("short")).is_err());
        assert!(!format!("{h1:?}").contains("aaaa"));
    }
}
