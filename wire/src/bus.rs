//! The cluster bus's messages (SPEC §13): what every node publishes when a cached fact goes
//! stale ([`Invalidation`], inside a [`BusMessage`] envelope) and what it writes to say it
//! is alive ([`NodeBeat`]). Contract data only; the `nexus-bus` crate moves the bytes.
//!
//! Parsing is strict because a message another node cannot read is not harmless: it was
//! meant to drop something from a cache. A reader refuses anything it does not understand
//! exactly (size, version, kind, fields, types) and fails closed on its own side.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The envelope version this build writes and the only one it reads.
pub const VERSION: u8 = 1;

/// The largest message a reader accepts; a real one is a few hundred bytes, so anything
/// near this is hostile or broken, and refusing it bounds what a reader allocates.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The longest node name; it becomes a NATS subject token and a Redis key suffix.
pub const MAX_NODE_NAME: usize = 64;

/// Whether `name` can name a node: 1–64 of `A-Z a-z 0-9 _ -`. Node names are embedded in
/// NATS subjects (`$KV.nexus_nodes.<name>`, `_INBOX_<name>.>`) where `.`, `*`, `>` and
/// spaces would change what a permission grants, so nothing else is allowed.
pub fn is_valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NODE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A token's key id: a UUID, written in its hyphenated form (the shape `uuid` serializes,
/// so the rpc-server's `Uuid` and this type agree on the wire without this crate
/// depending on `uuid`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 16]);

/// A key id that is not a hyphenated UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a hyphenated UUID: {0:?}")]
pub struct BadKeyId(pub String);

impl KeyId {
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex digits of either case. Only the form
    /// the rpc-server writes: a reader that accepted more spellings than writers use
    /// would make two spellings of one key id possible.
    pub fn parse(s: &str) -> Result<Self, BadKeyId> {
        let bad = || BadKeyId(s.chars().take(64).collect());
        let b = s.as_bytes();
        if b.len() != 36 {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < 36 {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b[i] != b'-' {
                    return Err(bad());
                }
                i += 1;
                continue;
            }
            let hi = hex_digit(b[i]).ok_or_else(bad)?;
            let lo = hex_digit(b[i + 1]).ok_or_else(bad)?;
            out[n] = hi << 4 | lo;
            n += 1;
            i += 2;
        }
        Ok(Self(out))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl std::str::FromStr for KeyId {
    type Err = BadKeyId;
    fn from_str(s: &str) -> Result<Self, BadKeyId> {
        Self::parse(s)
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What changed. The first five variants have the serde shape of the rpc-server's
/// `auth::invalidation::Invalidation` (tag `kind`, snake_case), so nodes of either
/// version read each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", from = "StrictInvalidation")]
pub enum Invalidation {
    /// A token was revoked or its grants changed.
    Token { key_id: KeyId },
    /// A zone was deleted or restored: every identity holding it, and zone lists, are stale.
    Zone { zone_id: String },
    /// A relationship tuple changed: every compiled grant set is stale.
    Rebac,
    /// A subject was created, changed, disabled or deleted: identities bound to it are stale.
    Subject { subject_id: String },
    /// Anything may have changed (e.g. missed broadcasts): drop everything.
    All,
    /// The MCP session secret was rotated: sessions signed with the old one are stale.
    SessionSecret,
    /// A file changed (for resource subscriptions).
    FileChanged { zone_id: String, path: String },
}

/// [`Invalidation`] as read: serde ignores extra fields next to the tag of a unit variant
/// even with `deny_unknown_fields`, but refuses them in an empty struct variant.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum StrictInvalidation {
    Token { key_id: KeyId },
    Zone { zone_id: String },
    Rebac {},
    Subject { subject_id: String },
    All {},
    SessionSecret {},
    FileChanged { zone_id: String, path: String },
}

impl From<StrictInvalidation> for Invalidation {
    fn from(s: StrictInvalidation) -> Self {
        match s {
            StrictInvalidation::Token { key_id } => Self::Token { key_id },
            StrictInvalidation::Zone { zone_id } => Self::Zone { zone_id },
            StrictInvalidation::Rebac {} => Self::Rebac,
            StrictInvalidation::Subject { subject_id } => Self::Subject { subject_id },
            StrictInvalidation::All {} => Self::All,
            StrictInvalidation::SessionSecret {} => Self::SessionSecret,
            StrictInvalidation::FileChanged { zone_id, path } => {
                Self::FileChanged { zone_id, path }
            }
        }
    }
}

impl Invalidation {
    /// The `kind` tag, also the last token of the NATS subject it is published on.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Token { .. } => "token",
            Self::Zone { .. } => "zone",
            Self::Rebac => "rebac",
            Self::Subject { .. } => "subject",
            Self::All => "all",
            Self::SessionSecret => "session_secret",
            Self::FileChanged { .. } => "file_changed",
        }
    }
}

/// The envelope of every invalidation on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusMessage {
    /// [`VERSION`].
    pub v: u8,
    /// The publishing node's name; a node may skip its own messages (it applied them).
    pub origin: String,
    /// When the change was made (ms since the epoch), to measure propagation.
    pub at_ms: i64,
    pub what: Invalidation,
}

/// Why bytes on the bus are not a [`BusMessage`] (or a [`NodeBeat`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadMessage {
    #[error("message of {0} bytes is larger than {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    #[error("message version {0} is not {VERSION}")]
    Version(u64),
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl BusMessage {
    /// A version-[`VERSION`] message.
    pub fn new(origin: impl Into<String>, at_ms: i64, what: Invalidation) -> Self {
        Self {
            v: VERSION,
            origin: origin.into(),
            at_ms,
            what,
        }
    }

    /// The message as JSON, as it goes on the bus.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain data to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Reads one message, refusing anything not exactly a version-1 envelope of a known kind.
pub fn parse(bytes: &[u8]) -> Result<BusMessage, BadMessage> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(BadMessage::TooLarge(bytes.len()));
    }
    // The version first, so a newer node's message is reported as such rather than as
    // whatever unknown field it added.
    #[derive(Deserialize)]
    struct Versioned {
        v: serde_json::Value,
    }
    let probe: Versioned =
        serde_json::from_slice(bytes).map_err(|e| BadMessage::Malformed(e.to_string()))?;
    match probe.v.as_u64() {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => return Err(BadMessage::Version(v)),
        None => {
            return Err(BadMessage::Malformed(format!(
                "`v` is not a version number: {}",
                probe.v
            )));
        }
    }
    let msg: BusMessage =
        serde_json::from_slice(bytes).map_err(|e| BadMessage::Malformed(e.to_string()))?;
    if !is_valid_node_name(&msg.origin) {
        return Err(BadMessage::Malformed(format!(
            "`origin` is not a node name: {:?}",
            msg.origin.chars().take(80).collect::<String>()
        )));
    }
    Ok(msg)
}

/// What a node does in the cluster; it decides the node's bus permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An rpc-server (`nexusd`): publishes and reads invalidations, reads audit.
    Rpc,
    /// An MCP frontend: reads invalidations, publishes audit.
    Frontend,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rpc => "rpc",
            Self::Frontend => "frontend",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is neither `rpc` nor `frontend`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown node role {0:?} (expected `rpc` or `frontend`)")]
pub struct BadRole(pub String);

impl std::str::FromStr for Role {
    type Err = BadRole;
    fn from_str(s: &str) -> Result<Self, BadRole> {
        match s {
            "rpc" => Ok(Self::Rpc),
            "frontend" => Ok(Self::Frontend),
            _ => Err(BadRole(s.chars().take(64).collect())),
        }
    }
}

/// A node's heartbeat, rewritten every few seconds and kept for a minute, so `hub status`
/// can list every node alive in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeBeat {
    pub name: String,
    pub role: Role,
    /// The node's software version.
    pub version: String,
    /// When the node's process started (ms since the epoch).
    pub started_at_ms: i64,
    /// When this beat was written (ms since the epoch).
    pub at_ms: i64,
}

impl NodeBeat {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads one beat as strictly as [`parse`] reads a message.
    pub fn parse(bytes: &[u8]) -> Result<Self, BadMessage> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(BadMessage::TooLarge(bytes.len()));
        }
        let beat: Self =
            serde_json::from_slice(bytes).map_err(|e| BadMessage::Malformed(e.to_string()))?;
        if !is_valid_node_name(&beat.name) {
            return Err(BadMessage::Malformed(format!(
                "`name` is not a node name: {:?}",
                beat.name.chars().take(80).collect::<String>()
            )));
        }
        Ok(beat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0b9c6a8e-3f1d-4c2b-9a7e-5d4c3b2a1f00";

    fn msg(what: &str) -> String {
        format!(r#"{{"v":1,"origin":"rpc-1","at_ms":1700000000000,"what":{what}}}"#)
    }

    #[test]
    fn every_kind_round_trips_in_the_rpc_servers_shape() {
        let cases = [
            (
                Invalidation::Token {
                    key_id: KeyId::parse(KEY).expect("key id"),
                },
                format!(r#"{{"kind":"token","key_id":"{KEY}"}}"#),
            ),
            (
                Invalidation::Zone {
                    zone_id: "z1".into(),
                },
                r#"{"kind":"zone","zone_id":"z1"}"#.to_owned(),
            ),
            (Invalidation::Rebac, r#"{"kind":"rebac"}"#.to_owned()),
            (
                Invalidation::Subject {
                    subject_id: "s1".into(),
                },
                r#"{"kind":"subject","subject_id":"s1"}"#.to_owned(),
            ),
            (Invalidation::All, r#"{"kind":"all"}"#.to_owned()),
            (
                Invalidation::SessionSecret,
                r#"{"kind":"session_secret"}"#.to_owned(),
            ),
            (
                Invalidation::FileChanged {
                    zone_id: "z1".into(),
                    path: "/a/b.txt".into(),
                },
                r#"{"kind":"file_changed","zone_id":"z1","path":"/a/b.txt"}"#.to_owned(),
            ),
        ];
        for (what, json) in cases {
            assert_eq!(serde_json::to_string(&what).expect("json"), json);
            assert_eq!(json.split('"').nth(3), Some(what.kind()));
            let m = BusMessage::new("rpc-1", 1_700_000_000_000, what.clone());
            assert_eq!(String::from_utf8(m.to_json()).expect("utf-8"), msg(&json));
            assert_eq!(parse(msg(&json).as_bytes()), Ok(m));
        }
    }

    #[test]
    fn key_ids_are_hyphenated_uuids() {
        let k = KeyId::parse(KEY).expect("key id");
        assert_eq!(k.to_string(), KEY);
        assert_eq!(KeyId::parse(&KEY.to_uppercase()), Ok(k));
        assert_eq!(k.as_bytes()[0], 0x0b);
        for bad in [
            "",
            "0b9c6a8e3f1d4c2b9a7e5d4c3b2a1f00",
            "{0b9c6a8e-3f1d-4c2b-9a7e-5d4c3b2a1f00}",
            "urn:uuid:0b9c6a8e-3f1d-4c2b-9a7e-5d4c3b2a1f00",
            "0b9c6a8e-3f1d-4c2b-9a7e-5d4c3b2a1f0g",
            "0b9c6a8e-3f1d-4c2b-9a7e+5d4c3b2a1f00",
            "0b9c6a8e-3f1d-4c2b-9a7e-5d4c3b2a1f00 ",
            "é9c6a8e-3f1d-4c2b-9a7e-5d4c3b2a1f00",
        ] {
            assert!(KeyId::parse(bad).is_err(), "{bad:?}");
            let json = msg(&format!(r#"{{"kind":"token","key_id":"{bad}"}}"#));
            assert!(
                matches!(parse(json.as_bytes()), Err(BadMessage::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refuses_more_than_64_kib() {
        let pad = "x".repeat(MAX_MESSAGE_BYTES);
        let big = msg(&format!(r#"{{"kind":"zone","zone_id":"{pad}"}}"#));
        assert_eq!(parse(big.as_bytes()), Err(BadMessage::TooLarge(big.len())));
        // Exactly at the limit is read (and here happens to be valid).
        let base = msg(r#"{"kind":"zone","zone_id":""}"#).len();
        let at = msg(&format!(
            r#"{{"kind":"zone","zone_id":"{}"}}"#,
            "x".repeat(MAX_MESSAGE_BYTES - base)
        ));
        assert_eq!(at.len(), MAX_MESSAGE_BYTES);
        assert!(parse(at.as_bytes()).is_ok());
        assert!(matches!(
            parse(&vec![b' '; MAX_MESSAGE_BYTES + 1]),
            Err(BadMessage::TooLarge(_))
        ));
    }

    #[test]
    fn refuses_unknown_versions() {
        for (v, want) in [
            ("0", BadMessage::Version(0)),
            ("2", BadMessage::Version(2)),
            ("300", BadMessage::Version(300)),
        ] {
            let json = format!(r#"{{"v":{v},"origin":"a","at_ms":1,"what":{{"kind":"all"}}}}"#);
            assert_eq!(parse(json.as_bytes()), Err(want), "{json}");
        }
        // A newer version is reported as such even with fields this one does not know.
        let json = r#"{"v":2,"origin":"a","at_ms":1,"what":{"kind":"new"},"extra":true}"#;
        assert_eq!(parse(json.as_bytes()), Err(BadMessage::Version(2)));
        for v in [r#""1""#, "1.0", "-1", "null", "true", "[1]"] {
            let json = format!(r#"{{"v":{v},"origin":"a","at_ms":1,"what":{{"kind":"all"}}}}"#);
            assert!(
                matches!(parse(json.as_bytes()), Err(BadMessage::Malformed(_))),
                "{json}"
            );
        }
        let json = r#"{"origin":"a","at_ms":1,"what":{"kind":"all"}}"#;
        assert!(matches!(
            parse(json.as_bytes()),
            Err(BadMessage::Malformed(_))
        ));
    }

    #[test]
    fn refuses_unknown_kinds() {
        for what in [
            r#"{"kind":"tokens","key_id":"0b9c6a8e-3f1d-4c2b-9a7e-5d4c3b2a1f00"}"#,
            r#"{"kind":"Token","key_id":"0b9c6a8e-3f1d-4c2b-9a7e-5d4c3b2a1f00"}"#,
            r#"{"kind":"everything"}"#,
            r#"{"kind":""}"#,
            r#"{"kind":null}"#,
            r#"{"kind":1}"#,
            r#"{"zone_id":"z"}"#,
            r#""all""#,
            r#"{}"#,
        ] {
            assert!(
                matches!(parse(msg(what).as_bytes()), Err(BadMessage::Malformed(_))),
                "{what}"
            );
        }
    }

    #[test]
    fn refuses_unknown_fields() {
        for json in [
            msg(r#"{"kind":"rebac","extra":1}"#),
            msg(r#"{"kind":"all","zone_id":"z"}"#),
            msg(r#"{"kind":"session_secret","x":null}"#),
            msg(r#"{"kind":"zone","zone_id":"z","key_id":"k"}"#),
            msg(r#"{"kind":"file_changed","zone_id":"z","path":"p","mode":"w"}"#),
            r#"{"v":1,"origin":"a","at_ms":1,"what":{"kind":"all"},"extra":1}"#.to_owned(),
            // Keys given twice are ambiguous: which one did the writer mean?
            r#"{"v":1,"origin":"a","origin":"b","at_ms":1,"what":{"kind":"all"}}"#.to_owned(),
            msg(r#"{"kind":"zone","zone_id":"a","zone_id":"b"}"#),
        ] {
            assert!(
                matches!(parse(json.as_bytes()), Err(BadMessage::Malformed(_))),
                "{json}"
            );
        }
    }

    #[test]
    fn refuses_wrong_types_and_missing_fields() {
        for json in [
            r#"{"v":1,"origin":7,"at_ms":1,"what":{"kind":"all"}}"#.to_owned(),
            r#"{"v":1,"origin":"a","at_ms":"1","what":{"kind":"all"}}"#.to_owned(),
            r#"{"v":1,"origin":"a","at_ms":1.5,"what":{"kind":"all"}}"#.to_owned(),
            r#"{"v":1,"origin":"a","at_ms":1,"what":"all"}"#.to_owned(),
            r#"{"v":1,"origin":"a","at_ms":1,"what":null}"#.to_owned(),
            r#"{"v":1,"origin":"a","at_ms":1}"#.to_owned(),
            r#"{"v":1,"at_ms":1,"what":{"kind":"all"}}"#.to_owned(),
            msg(r#"{"kind":"zone","zone_id":5}"#),
            msg(r#"{"kind":"zone"}"#),
            msg(r#"{"kind":"token","key_id":7}"#),
            msg(r#"{"kind":"file_changed","zone_id":"z"}"#),
            msg(r#"{"kind":"subject","subject_id":["s"]}"#),
            // Not a node name.
            r#"{"v":1,"origin":"","at_ms":1,"what":{"kind":"all"}}"#.to_owned(),
            r#"{"v":1,"origin":"a.b","at_ms":1,"what":{"kind":"all"}}"#.to_owned(),
            r#"{"v":1,"origin":"a>","at_ms":1,"what":{"kind":"all"}}"#.to_owned(),
        ] {
            assert!(
                matches!(parse(json.as_bytes()), Err(BadMessage::Malformed(_))),
                "{json}"
            );
        }
    }

    #[test]
    fn refuses_what_is_not_one_json_object() {
        for bytes in [
            &b""[..],
            b"null",
            b"[]",
            b"{",
            b"not json",
            b"\xff\xfe",
            br#"{"v":1,"origin":"a","at_ms":1,"what":{"kind":"all"}} {}"#,
            br#"{"v":1,"origin":"a","at_ms":1,"what":{"kind":"all"}}x"#,
        ] {
            assert!(
                matches!(parse(bytes), Err(BadMessage::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        // Surrounding whitespace is still one object.
        assert!(parse(br#" {"v":1,"origin":"a","at_ms":1,"what":{"kind":"all"}} "#).is_ok());
    }

    #[test]
    fn node_names() {
        for ok in ["rpc-1", "frontend_a", "A", &"n".repeat(MAX_NODE_NAME)] {
            assert!(is_valid_node_name(ok), "{ok}");
        }
        for bad in [
            "",
            "a.b",
            "a b",
            "a*",
            "a>",
            "ä",
            "a/b",
            &"n".repeat(MAX_NODE_NAME + 1),
        ] {
            assert!(!is_valid_node_name(bad), "{bad}");
        }
    }

    #[test]
    fn node_beats() {
        let beat = NodeBeat {
            name: "fe-1".into(),
            role: Role::Frontend,
            version: "0.1.0".into(),
            started_at_ms: 1,
            at_ms: 2,
        };
        let json =
            r#"{"name":"fe-1","role":"frontend","version":"0.1.0","started_at_ms":1,"at_ms":2}"#;
        assert_eq!(String::from_utf8(beat.to_json()).expect("utf-8"), json);
        assert_eq!(NodeBeat::parse(json.as_bytes()), Ok(beat));
        for bad in [
            r#"{"name":"fe-1","role":"admin","version":"0.1.0","started_at_ms":1,"at_ms":2}"#,
            r#"{"name":"fe-1","role":"Rpc","version":"0.1.0","started_at_ms":1,"at_ms":2}"#,
            r#"{"name":"fe.1","role":"rpc","version":"0.1.0","started_at_ms":1,"at_ms":2}"#,
            r#"{"name":"fe-1","role":"rpc","version":"0.1.0","started_at_ms":1,"at_ms":2,"x":0}"#,
            r#"{"name":"fe-1","role":"rpc","version":1,"started_at_ms":1,"at_ms":2}"#,
            r#"{"name":"fe-1","role":"rpc","version":"0.1.0","at_ms":2}"#,
        ] {
            assert!(NodeBeat::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!("rpc".parse::<Role>(), Ok(Role::Rpc));
        assert_eq!("frontend".parse::<Role>(), Ok(Role::Frontend));
        assert!("Rpc".parse::<Role>().is_err());
    }
}
