//! State the login and consent pages carry in their forms, sealed so that the browser can
//! neither read nor change it: ChaCha20-Poly1305 under a key nexusd derives from its
//! server secret (so every nexusd behind the frontend opens what another sealed), bound to
//! its purpose, with an expiry inside. Nothing about a pending login is kept server-side.

use base64::Engine as _;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest sealed value opened (a form field).
const MAX_SEALED: usize = 16 * 1024;

/// A sealing key.
pub struct Sealer(LessSafeKey);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope<T> {
    exp: i64,
    v: T,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        // A 32-byte key is always a valid ChaCha20-Poly1305 key.
        let k = UnboundKey::new(&CHACHA20_POLY1305, key).unwrap_or_else(|_| unreachable!());
        Self(LessSafeKey::new(k))
    }

    /// Seals `v` for `purpose` until `exp` (unix seconds).
    pub fn seal<T: Serialize>(&self, purpose: &str, v: &T, exp: i64) -> Option<String> {
        let mut buf = serde_json::to_vec(&Envelope { exp, v }).ok()?;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).ok()?;
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut buf,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens what [`Sealer::seal`] made for `purpose`, if it is intact and not expired at
    /// `now`.
    pub fn open<T: DeserializeOwned>(&self, purpose: &str, sealed: &str, now: i64) -> Option<T> {
        if sealed.len() > MAX_SEALED {
            return None;
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed)
            .ok()?;
        let (nonce, ct) = raw.split_at_checked(12)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = ct.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut buf)
            .ok()?;
        let env: Envelope<T> = serde_json::from_slice(plain).ok()?;
        (env.exp > now).then_some(env.v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_intact_unexpired_and_for_their_purpose() {
        let s = Sealer::new(&[7; 32]);
        let sealed = s.seal("login", &"alice".to_owned(), 100).expect("seal");
        assert_eq!(
            s.open::<String>("login", &sealed, 99).as_deref(),
            Some("alice")
        );
        assert!(s.open::<String>("login", &sealed, 100).is_none(), "expired");
        assert!(
            s.open::<String>("consent", &sealed, 99).is_none(),
            "other purpose"
        );
        let other = Sealer::new(&[8; 32]);
        assert!(
            other.open::<String>("login", &sealed, 99).is_none(),
            "other key"
        );
        let mut bytes = sealed.into_bytes();
        bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        assert!(
            s.open::<String>("login", &tampered, 99).is_none(),
            "tampered"
        );
    }
}
