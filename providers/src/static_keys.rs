//! The static key file (seed `001`, SPEC §10) as a validated key set: every entry checked
//! once, when the file is loaded or reloaded, so that verifying a presented key is one
//! SHA-256 and one map lookup.
//!
//! A map key is either the raw key (the seed's form; such keys are counted so the server
//! can warn, naming the user, never the key) or `sha256:<64 hex>` of it, which leaves no
//! secret in the file. Both forms land in one map keyed by the SHA-256 digest: a lookup
//! compares digests, never secret strings, and one key given twice (raw and hashed, or
//! hashed twice in different case) is an error. No message built here quotes a key.

use crate::config::ConfigError;
use crate::config::{StaticConfig, StaticKey};
use crate::permissions::{Perm, Perms};
use chrono::{DateTime, Utc};
use nexus_wire::spec::{Permission, RateTier, SubjectType, ZoneGrant, parse_zone_spec};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// The hashed form's prefix in the file.
pub const HASH_PREFIX: &str = "sha256:";
/// Shortest raw key accepted: shorter ones are guessable.
pub const MIN_RAW_KEY_LEN: usize = 16;
/// Longest raw key: what the credential headers carry at most.
pub const MAX_RAW_KEY_LEN: usize = nexus_wire::bearer::MAX_TOKEN_LEN;

/// SHA-256 of a key: what the set is keyed by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub [u8; 32]);

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A digest of a weak key is a brute-force target: never printed whole.
        write!(f, "KeyDigest({}…)", hex::encode(&self.0[..4]))
    }
}

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }
}

/// The file's hashed form of `key`: `sha256:<64 lower-case hex>`, for `nexus hub token hash`.
pub fn hashed_form(key: &str) -> String {
    format!("{HASH_PREFIX}{}", hex::encode(KeyDigest::of(key).0))
}

/// One key's grant, as the file describes it, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticEntry {
    pub user_id: String,
    pub tenant_id: Option<String>,
    pub is_admin: bool,
    pub subject_type: SubjectType,
    /// Sorted by zone; capped to `r` when the permissions lack WRITE.
    pub zones: Vec<ZoneGrant>,
    pub expires_at: Option<DateTime<Utc>>,
    /// A tier override (`100/m,1000/h`).
    pub rate_limit: Option<RateTier>,
    /// Kept for the seed's format; never used for a decision.
    pub metadata: Option<serde_json::Value>,
    /// The file gives this key in plain text.
    pub plaintext: bool,
}

/// The validated keys of one load of the file.
#[derive(Debug, Clone, Default)]
pub struct StaticKeySet {
    keys: HashMap<KeyDigest, Arc<StaticEntry>>,
}

impl StaticKeySet {
    /// Checks every entry; the first bad one is the error (naming its user id).
    pub fn from_config(c: &StaticConfig) -> Result<Self, ConfigError> {
        let mut keys = HashMap::with_capacity(c.api_keys.len());
        for (map_key, k) in &c.api_keys {
            let who = nexus_wire::jsonrpc::printable(&k.user_id);
            let bad = |msg: String| ConfigError(format!("static key of user {who:?}: {msg}"));
            let (digest, plaintext) = key_digest(map_key).map_err(bad)?;
            let entry = entry(k, plaintext).map_err(bad)?;
            if keys.insert(digest, Arc::new(entry)).is_some() {
                return Err(bad(
                    "the same key is listed twice (raw and hashed, or hashed twice)".into(),
                ));
            }
        }
        Ok(Self { keys })
    }

    /// The entry of a presented key, if the file lists it.
    pub fn lookup(&self, presented: &str) -> Option<(KeyDigest, &Arc<StaticEntry>)> {
        let d = KeyDigest::of(presented);
        self.keys.get(&d).map(|e| (d, e))
    }

    /// The entry under a digest already computed.
    pub fn get(&self, digest: &KeyDigest) -> Option<&Arc<StaticEntry>> {
        self.keys.get(digest)
    }

    /// Every key's digest (what a reload compares to count keys added and removed).
    pub fn digests(&self) -> impl Iterator<Item = &KeyDigest> {
        self.keys.keys()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The user ids of the keys given in plain text, sorted (for the load-time warning).
    pub fn plaintext_users(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .keys
            .values()
            .filter(|e| e.plaintext)
            .map(|e| e.user_id.as_str())
            .collect();
        v.sort_unstable();
        v
    }
}

/// The digest a map key stands for, and whether it was given in plain text.
fn key_digest(map_key: &str) -> Result<(KeyDigest, bool), String> {
    if let Some(hex_part) = map_key.strip_prefix(HASH_PREFIX) {
        let mut d = [0u8; 32];
        if hex_part.len() != 64 || hex::decode_to_slice(hex_part, &mut d).is_err() {
            return Err(format!(
                "a hashed key is {HASH_PREFIX} and 64 hex digits (nexus hub token hash prints it)"
            ));
        }
        return Ok((KeyDigest(d), false));
    }
    validate_raw_key(map_key).map_err(|e| {
        format!(
            "{} (better: give {HASH_PREFIX}<hex> from nexus hub token hash)",
            e.0
        )
    })?;
    Ok((KeyDigest::of(map_key), true))
}

/// Whether `key` can be a static key at all: what the credential headers can carry, long
/// enough not to be guessed, and not shaped like a JWT (which would go to the issuers).
/// The message never quotes the key.
pub fn validate_raw_key(key: &str) -> Result<(), ConfigError> {
    let len_ok = (MIN_RAW_KEY_LEN..=MAX_RAW_KEY_LEN).contains(&key.len());
    if !len_ok || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError(format!(
            "a raw key must be {MIN_RAW_KEY_LEN}-{MAX_RAW_KEY_LEN} printable ASCII characters without spaces"
        )));
    }
    if key.starts_with(HASH_PREFIX) {
        return Err(ConfigError(format!(
            "a key must not start with {HASH_PREFIX} (that is the hashed form's prefix)"
        )));
    }
    if crate::shape::shape(key) == crate::shape::Shape::Jwt {
        return Err(ConfigError(
            "a raw key must not look like a JWT (three dot-separated parts)".into(),
        ));
    }
    Ok(())
}

/// What the permissions list grants: (admin, write). The names are the hub's one
/// permission language ([`Perms`]); SUPER is root's alone, never a key's.
fn permissions(list: &[String]) -> Result<(bool, bool), String> {
    let p = Perms::parse(list).map_err(|e| {
        format!(
            "unknown permission {:?} (use READ, WRITE or ADMIN)",
            nexus_wire::jsonrpc::printable(&e.0)
        )
    })?;
    if p.contains(Perm::Super) {
        return Err("SUPER belongs to the root user alone, never to a key".into());
    }
    if p.is_empty() {
        return Err("permissions is empty (use READ, WRITE or ADMIN)".into());
    }
    let admin = p.contains(Perm::Admin);
    Ok((admin, admin || p.contains(Perm::Write)))
}

/// Parses a rate limit override: the one place this module reads the rate-limit language.
fn rate_limit(s: &str) -> Result<RateTier, String> {
    s.parse::<RateTier>().map_err(|e| e.to_string())
}

fn entry(k: &StaticKey, plaintext: bool) -> Result<StaticEntry, String> {
    nexus_authz::model::validate_subject_id("user_id", &k.user_id).map_err(|e| e.to_string())?;
    let subject_type = match &k.subject_type {
        Some(s) => s.parse().map_err(|e: nexus_wire::spec::SpecError| e.0)?,
        None => SubjectType::User,
    };
    let mut zones = match &k.zones {
        Some(z) => parse_zone_spec(&z.to_cli()).map_err(|e| e.0)?,
        None => Vec::new(),
    };
    zones.sort_by(|a, b| a.zone_id.cmp(&b.zone_id));
    let is_admin = match &k.permissions {
        Some(list) => {
            let (admin, write) = permissions(list)?;
            if k.is_admin && !admin {
                return Err("is_admin is true but permissions lack ADMIN".into());
            }
            if !write {
                for g in &mut zones {
                    g.permission = Permission::Read;
                }
            }
            admin
        }
        None => k.is_admin,
    };
    let expires_at = k
        .expires_at
        .as_deref()
        .map(|t| {
            DateTime::parse_from_rfc3339(t.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("expires_at is not an RFC 3339 time ({e})"))
        })
        .transpose()?;
    let rate_limit = k.rate_limit.as_deref().map(rate_limit).transpose()?;
    if let Some(t) = &k.tenant_id
        && (t.is_empty() || t.len() > 128 || t.chars().any(char::is_control))
    {
        return Err("tenant_id must be 1-128 printable characters".into());
    }
    Ok(StaticEntry {
        user_id: k.user_id.clone(),
        tenant_id: k.tenant_id.clone(),
        is_admin,
        subject_type,
        zones,
        expires_at,
        rate_limit,
        metadata: k.metadata.clone(),
        plaintext,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthFile, AuthType};

    fn set(yaml: &str) -> Result<StaticKeySet, ConfigError> {
        let f = AuthFile::from_yaml(yaml, &[AuthType::Static])?;
        StaticKeySet::from_config(f.static_keys.as_ref().expect("static"))
    }

    const RAW: &str = "sk-alice-secret-key";

    #[test]
    fn the_seeds_file_loads_and_its_raw_keys_are_counted() {
        let s = set(r#"
api_keys:
  sk-alice-secret-key:
    user_id: "alice"
    tenant_id: null
    is_admin: true
    metadata:
      email: "alice@example.com"
  sk-bob-secret-key:
    user_id: "bob"
    is_admin: false
    zones: "eng:rw,ops:r"
"#)
        .expect("seed file");
        assert_eq!(s.len(), 2);
        assert_eq!(s.plaintext_users(), vec!["alice", "bob"]);
        let (_, alice) = s.lookup(RAW).expect("alice");
        assert!(alice.is_admin);
        assert_eq!(
            alice.metadata.as_ref().and_then(|m| m.get("email")),
            Some(&serde_json::json!("alice@example.com"))
        );
        assert!(s.lookup("sk-alice-secret-kez").is_none());
        assert!(s.lookup("").is_none());
    }

    #[test]
    fn hashed_keys_verify_and_leave_no_secret_in_the_file() {
        let line = hashed_form(RAW);
        assert!(line.starts_with("sha256:") && line.len() == 7 + 64);
        assert!(!line.contains(RAW));
        let s = set(&format!(
            "api_keys:\n  \"{}\": {{user_id: alice, zones: {{eng: rw}}}}\n",
            line.to_uppercase().replacen("SHA256:", "sha256:", 1)
        ))
        .expect("hashed, upper-case hex");
        assert!(s.plaintext_users().is_empty());
        let (_, e) = s.lookup(RAW).expect("found by digest");
        assert_eq!(e.zones, parse_zone_spec("eng:rw").expect("zones"));
    }

    #[test]
    fn one_key_twice_is_an_error() {
        let e = set(&format!(
            "api_keys:\n  {RAW}: {{user_id: a, is_admin: true}}\n  \"{}\": {{user_id: b, is_admin: true}}\n",
            hashed_form(RAW)
        ))
        .expect_err("raw and hashed");
        assert!(e.0.contains("twice"), "{e}");
        assert!(!e.0.contains(RAW));
    }

    #[test]
    fn bad_entries_name_the_user_never_the_key() {
        let cases = [
            ("sk-short", "user_id: a", "printable"),
            ("sk has a space in it", "user_id: a", "printable"),
            ("sha256:abcd", "user_id: a", "64 hex"),
            ("aaaaaaaaaaaa.bbbbbbb.cc", "user_id: a", "JWT"),
            ("sk-long-enough-key-1", "user_id: Alice", "user_id"),
            (
                "sk-long-enough-key-1",
                "user_id: a, zones: \"Eng:rw\"",
                "zone",
            ),
            (
                "sk-long-enough-key-1",
                "user_id: a, zones: {eng: x}",
                "permission",
            ),
            (
                "sk-long-enough-key-1",
                "user_id: a, permissions: [SUPER]",
                "SUPER",
            ),
            (
                "sk-long-enough-key-1",
                "user_id: a, permissions: [OWNER]",
                "OWNER",
            ),
            (
                "sk-long-enough-key-1",
                "user_id: a, is_admin: true, permissions: [READ]",
                "ADMIN",
            ),
            (
                "sk-long-enough-key-1",
                "user_id: a, expires_at: tomorrow",
                "RFC 3339",
            ),
            (
                "sk-long-enough-key-1",
                "user_id: a, rate_limit: lots",
                "rate limit",
            ),
            (
                "sk-long-enough-key-1",
                "user_id: a, subject_type: robot",
                "subject type",
            ),
        ];
        for (key, body, needle) in cases {
            let yaml = format!("api_keys:\n  \"{key}\": {{{body}}}\n");
            let e = set(&yaml).expect_err(&yaml);
            assert!(e.0.contains(needle), "{yaml}: {e}");
            if !key.starts_with("sha256:") {
                assert!(!e.0.contains(key), "{yaml} leaks the key: {e}");
            }
        }
    }

    #[test]
    fn permissions_and_fields_shape_the_entry() {
        let s = set(r#"
api_keys:
  sk-reader-key-0000001:
    user_id: r
    zones: {eng: rw, ops: w}
    permissions: [READ]
    expires_at: "2030-01-02T03:04:05+01:00"
    rate_limit: 100/min
    subject_type: agent
  sk-admin-key-00000001:
    user_id: boss
    permissions: [read, ADMIN]
"#)
        .expect("valid");
        let (_, r) = s.lookup("sk-reader-key-0000001").expect("reader");
        assert!(r.zones.iter().all(|g| g.permission == Permission::Read));
        assert_eq!(r.zones[0].zone_id, "eng");
        assert!(!r.is_admin);
        assert_eq!(r.subject_type, SubjectType::Agent);
        assert_eq!(
            r.rate_limit.map(|t| t.to_string()).as_deref(),
            Some("100/m")
        );
        assert_eq!(
            r.expires_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2030-01-02T02:04:05+00:00")
        );
        let (_, a) = s.lookup("sk-admin-key-00000001").expect("admin");
        assert!(a.is_admin, "ADMIN means is_admin");
    }

    #[test]
    fn digests_do_not_print_whole() {
        let d = KeyDigest::of(RAW);
        let shown = format!("{d:?}");
        assert!(!shown.contains(&hex::encode(d.0)));
    }

    #[test]
    fn yaml_errors_quote_no_key() {
        let key = "sk-secret-key-zzzz-1";
        for y in [
            format!("api_keys:\n  {key}: {{user_id: a, is_admin: maybe}}\n"),
            format!("api_keys:\n  {key}: {{user_id: a\n"),
            format!("api_keys:\n  {key}: [\n"),
            format!("api_keys:\n  {key}:\n    user_id: a\n   is_admin: x\n"),
            format!("api_keys:\n  {key}: {{user_id: a}}\n  {key}: {{user_id: b}}\n"),
        ] {
            let e = AuthFile::from_yaml(&y, &[AuthType::Static]).expect_err(&y);
            assert!(!e.0.contains(key), "{y}: {e}");
            assert!(e.0.contains("line "), "{y}: the position is kept: {e}");
        }
    }
}
