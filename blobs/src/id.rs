//! [`ContentId`]: 64 lowercase hex digits, the SHA-256 of a blob's bytes. Parsed once, so
//! a store never builds a path or key from unchecked text.

use sha2::{Digest, Sha256};
use std::fmt;

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentId(String);

#[derive(Debug, thiserror::Error)]
#[error("a content id is 64 lowercase hex digits")]
pub struct InvalidContentId;

impl ContentId {
    /// The id of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    pub fn parse(s: &str) -> Result<Self, InvalidContentId> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidContentId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first two hex digits: stores shard by them so no directory or prefix holds more
    /// than a 256th of the blobs.
    pub fn shard(&self) -> &str {
        &self.0[..2]
    }

    /// Whether `bytes` hash to this id.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        *self == Self::of(bytes)
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({})", self.0)
    }
}

impl std::str::FromStr for ContentId {
    type Err = InvalidContentId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_lowercase_sha256_hex() {
        let id = ContentId::of(b"hello");
        assert_eq!(
            id.as_str(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(ContentId::parse(id.as_str()).ok(), Some(id.clone()));
        assert_eq!(id.shard(), "2c");
        for bad in [
            "",
            "2cf2",
            &id.as_str().to_uppercase(),
            &format!("{id}0"),
            "../../etc/passwd",
        ] {
            assert!(ContentId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(id.matches(b"hello"));
        assert!(!id.matches(b"hello!"));
    }
}
