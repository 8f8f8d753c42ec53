//! The vocabulary of `model.fga`: relations, objects, subjects and tuples, their text forms
//! and their validation. Every parser refuses what the model cannot name, with a message an
//! operator can act on; nothing here panics on input.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Limits on a `file:` path below its zone, the same as the file service's.
pub const MAX_PATH_BYTES: usize = 4096;
pub const MAX_NAME_BYTES: usize = 255;
pub const MAX_DEPTH: usize = 64;
/// Names the file service reserves for its in-flight temporary files.
const TEMP_PREFIX: &str = ".nexus-tmp-";
/// The one namespace the hub has.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Why a relation, object, subject or tuple is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "unknown relation '{0}' (expected member, reader, writer, admin, can_read or can_write)"
    )]
    UnknownRelation(String),
    #[error("unknown object type '{0}' (expected group, zone, namespace or file)")]
    UnknownObjectType(String),
    #[error("unknown subject type '{0}' (expected user, agent, service, token or group)")]
    UnknownSubjectType(String),
    #[error("'{0}' is not of the form <type>:<id>")]
    Syntax(String),
    #[error("invalid {kind} '{name}': {rule}")]
    InvalidName {
        kind: &'static str,
        name: String,
        rule: &'static str,
    },
    #[error("invalid file object '{object}': {reason}")]
    InvalidPath { object: String, reason: String },
    #[error("relation '{relation}' does not apply to {object_type} objects ({allowed})")]
    RelationNotOnType {
        relation: Relation,
        object_type: &'static str,
        allowed: &'static str,
    },
    #[error("a group as a subject is group:<name>#member (or group:<name>), not '{0}'")]
    GroupSubject(String),
    #[error("too many groups: the subject is in more than {limit} groups")]
    TooManyGroups { limit: usize },
}

/// Caller text in a message: bounded and with control characters escaped.
fn printable(s: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// A relation of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Relation {
    Member,
    Reader,
    Writer,
    Admin,
    CanRead,
    CanWrite,
}

impl Relation {
    pub const ALL: [Relation; 6] = [
        Relation::Member,
        Relation::Reader,
        Relation::Writer,
        Relation::Admin,
        Relation::CanRead,
        Relation::CanWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Member => "member",
            Relation::Reader => "reader",
            Relation::Writer => "writer",
            Relation::Admin => "admin",
            Relation::CanRead => "can_read",
            Relation::CanWrite => "can_write",
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Relation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Relation::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Error::UnknownRelation(printable(s)))
    }
}

/// `[a-z0-9][a-z0-9._@-]{0,127}`: subject ids and group names.
pub fn validate_subject_id(kind: &'static str, id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'@' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            kind,
            name: printable(id),
            rule: "use 1-128 characters from [a-z0-9._@-], starting with a letter or digit",
        })
    }
}

/// `[a-z0-9][a-z0-9_-]{0,62}`: zone names.
pub fn validate_zone(zone: &str) -> Result<(), Error> {
    let ok = !zone.is_empty()
        && zone.len() <= 63
        && zone
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && zone
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            kind: "zone name",
            name: printable(zone),
            rule: "use 1-63 characters from [a-z0-9_-], starting with a letter or digit",
        })
    }
}

/// A token's key id: a UUID in its canonical lowercase, hyphenated form.
fn validate_key_id(id: &str) -> Result<(), Error> {
    let b = id.as_bytes();
    let ok = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            kind: "token key id",
            name: printable(id),
            rule: "use the key id as a lowercase UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
        })
    }
}

fn has_encoded_separator(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|p| lower.contains(p))
}

/// Splits a path below a zone root into normalised components, with the file service's rules:
/// `..`, control characters, backslashes and percent-encoded dots or separators are refused;
/// empty and `.` components are dropped (so a trailing slash is too).
pub fn normalise_path(raw: &str) -> Result<Vec<String>, String> {
    let out = split(raw)?;
    check_components(&out)?;
    Ok(out)
}

/// Splits and checks path text; the exact limits are for the part below the zone root
/// ([`check_components`]), so this bound leaves room for a `/zone/<zone>` prefix.
fn split(raw: &str) -> Result<Vec<String>, String> {
    if raw.len() > 4 * MAX_PATH_BYTES {
        return Err(format!("path longer than {MAX_PATH_BYTES} bytes"));
    }
    if raw.chars().any(char::is_control) {
        return Err("path contains NUL or control characters".into());
    }
    if raw.contains('\\') {
        return Err("path contains a backslash; use '/'".into());
    }
    if has_encoded_separator(raw) {
        return Err("path contains a percent-encoded dot, slash or NUL".into());
    }
    let mut out = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("'..' is not allowed in paths".into()),
            c if c.len() > MAX_NAME_BYTES => {
                return Err(format!(
                    "a path component is longer than {MAX_NAME_BYTES} bytes"
                ));
            }
            c if c.starts_with(TEMP_PREFIX) => {
                return Err(format!("names starting with {TEMP_PREFIX} are reserved"));
            }
            c => out.push(c.to_owned()),
        }
        if out.len() > MAX_DEPTH + 2 {
            return Err(format!("path deeper than {MAX_DEPTH} levels"));
        }
    }
    Ok(out)
}

/// The limits on already-split components (for values built without [`normalise_path`]).
fn check_components(path: &[String]) -> Result<(), String> {
    if path.len() > MAX_DEPTH {
        return Err(format!("path deeper than {MAX_DEPTH} levels"));
    }
    let len = path.iter().map(String::len).sum::<usize>() + path.len().saturating_sub(1);
    if len > MAX_PATH_BYTES {
        return Err(format!("path longer than {MAX_PATH_BYTES} bytes"));
    }
    for c in path {
        if c.is_empty() || c == "." || c == ".." || c.contains('/') {
            return Err(format!("'{}' is not a path component", printable(c)));
        }
        if c.len() > MAX_NAME_BYTES
            || c.chars().any(char::is_control)
            || c.contains('\\')
            || has_encoded_separator(c)
            || c.starts_with(TEMP_PREFIX)
        {
            return Err(format!("'{}' is not an allowed name", printable(c)));
        }
    }
    Ok(())
}

/// An object of the model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectRef {
    Group(String),
    Zone(String),
    Namespace(String),
    /// A file or folder; an empty `path` is the zone's root folder.
    File {
        zone: String,
        path: Vec<String>,
    },
}

impl ObjectRef {
    /// The model's type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            ObjectRef::Group(_) => "group",
            ObjectRef::Zone(_) => "zone",
            ObjectRef::Namespace(_) => "namespace",
            ObjectRef::File { .. } => "file",
        }
    }

    /// The zone an object belongs to, if any (groups and the namespace are hub-wide).
    pub fn zone(&self) -> Option<&str> {
        match self {
            ObjectRef::Zone(z) | ObjectRef::File { zone: z, .. } => Some(z),
            ObjectRef::Group(_) | ObjectRef::Namespace(_) => None,
        }
    }

    /// Parses `group:<g>`, `zone:<z>`, `namespace:default` or `file:/zone/<z>/<path>`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let (ty, id) = s
            .split_once(':')
            .ok_or_else(|| Error::Syntax(printable(s)))?;
        match ty {
            "group" => {
                validate_subject_id("group name", id)?;
                Ok(ObjectRef::Group(id.to_owned()))
            }
            "zone" => {
                validate_zone(id)?;
                Ok(ObjectRef::Zone(id.to_owned()))
            }
            "namespace" => {
                if id == DEFAULT_NAMESPACE {
                    Ok(ObjectRef::Namespace(id.to_owned()))
                } else {
                    Err(Error::InvalidName {
                        kind: "namespace",
                        name: printable(id),
                        rule: "the only namespace is 'default'",
                    })
                }
            }
            "file" => Self::parse_file(s, id),
            other => Err(Error::UnknownObjectType(printable(other))),
        }
    }

    fn parse_file(whole: &str, path: &str) -> Result<Self, Error> {
        let bad = |reason: String| Error::InvalidPath {
            object: printable(whole),
            reason,
        };
        if !path.starts_with('/') {
            return Err(bad(
                "file objects are hub-wide paths: file:/zone/<zone>/<path> (or use --zone)".into(),
            ));
        }
        let mut comps = split(path).map_err(bad)?.into_iter();
        if comps.next().as_deref() != Some("zone") {
            return Err(bad(
                "file objects are hub-wide paths: file:/zone/<zone>/<path> (or use --zone)".into(),
            ));
        }
        let Some(zone) = comps.next() else {
            return Err(bad("the path names no zone".into()));
        };
        validate_zone(&zone)?;
        let path: Vec<String> = comps.collect();
        check_components(&path).map_err(bad)?;
        Ok(ObjectRef::File { zone, path })
    }

    /// Parses an object as the CLI's `--zone Z` reads it: `file:/workspace` is
    /// `file:/zone/Z/workspace`. A `file:` path that already starts with `/zone/` is refused
    /// rather than guessed at; other objects parse as with [`ObjectRef::parse`].
    pub fn parse_in_zone(s: &str, zone: &str) -> Result<Self, Error> {
        validate_zone(zone)?;
        let Some(path) = s.strip_prefix("file:") else {
            return Self::parse(s);
        };
        let bad = |reason: String| Error::InvalidPath {
            object: printable(s),
            reason,
        };
        if !path.starts_with('/') {
            return Err(bad("a file path starts with '/'".into()));
        }
        let path = normalise_path(path).map_err(bad)?;
        if path.first().map(String::as_str) == Some("zone") {
            return Err(bad(
                "with --zone, give the path inside the zone; a path starting with /zone/ is hub-wide: drop --zone or the /zone/<zone> prefix".into(),
            ));
        }
        Ok(ObjectRef::File {
            zone: zone.to_owned(),
            path,
        })
    }

    /// Checks a value that may have been built without [`ObjectRef::parse`].
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            ObjectRef::Group(g) => validate_subject_id("group name", g),
            ObjectRef::Zone(z) => validate_zone(z),
            ObjectRef::Namespace(n) if n == DEFAULT_NAMESPACE => Ok(()),
            ObjectRef::Namespace(n) => Err(Error::InvalidName {
                kind: "namespace",
                name: printable(n),
                rule: "the only namespace is 'default'",
            }),
            ObjectRef::File { zone, path } => {
                validate_zone(zone)?;
                check_components(path).map_err(|reason| Error::InvalidPath {
                    object: printable(&self.to_string()),
                    reason,
                })
            }
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectRef::Group(g) => write!(f, "group:{g}"),
            ObjectRef::Zone(z) => write!(f, "zone:{z}"),
            ObjectRef::Namespace(n) => write!(f, "namespace:{n}"),
            ObjectRef::File { zone, path } => {
                write!(f, "file:/zone/{zone}")?;
                for c in path {
                    write!(f, "/{c}")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for ObjectRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

/// A subject of a tuple or a check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectRef {
    User(String),
    Agent(String),
    Service(String),
    /// A token by its key id.
    Token(String),
    /// Every member of the group (`group:<g>#member`).
    GroupMember(String),
}

impl SubjectRef {
    /// The model's type name (`group` for a group's members).
    pub fn type_name(&self) -> &'static str {
        match self {
            SubjectRef::User(_) => "user",
            SubjectRef::Agent(_) => "agent",
            SubjectRef::Service(_) => "service",
            SubjectRef::Token(_) => "token",
            SubjectRef::GroupMember(_) => "group",
        }
    }

    /// The id (the group's name for a group's members).
    pub fn id(&self) -> &str {
        match self {
            SubjectRef::User(s)
            | SubjectRef::Agent(s)
            | SubjectRef::Service(s)
            | SubjectRef::Token(s)
            | SubjectRef::GroupMember(s) => s,
        }
    }

    /// Parses `user:<id>`, `agent:<id>`, `service:<id>`, `token:<key_id>` or
    /// `group:<g>#member` (also written `group:<g>`).
    pub fn parse(s: &str) -> Result<Self, Error> {
        let (ty, id) = s
            .split_once(':')
            .ok_or_else(|| Error::Syntax(printable(s)))?;
        let subject = match ty {
            "user" => SubjectRef::User(id.to_owned()),
            "agent" => SubjectRef::Agent(id.to_owned()),
            "service" => SubjectRef::Service(id.to_owned()),
            "token" => SubjectRef::Token(id.to_owned()),
            // `member` is a group's only relation, so `group:<g>` (the seed's spelling) is
            // read as `group:<g>#member`.
            "group" => match id.split_once('#') {
                Some((g, "member")) => SubjectRef::GroupMember(g.to_owned()),
                None => SubjectRef::GroupMember(id.to_owned()),
                Some(_) => return Err(Error::GroupSubject(printable(s))),
            },
            other => return Err(Error::UnknownSubjectType(printable(other))),
        };
        subject.validate()?;
        Ok(subject)
    }

    /// Checks a value that may have been built without [`SubjectRef::parse`].
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            SubjectRef::User(id) => validate_subject_id("user id", id),
            SubjectRef::Agent(id) => validate_subject_id("agent id", id),
            SubjectRef::Service(id) => validate_subject_id("service id", id),
            SubjectRef::Token(id) => validate_key_id(id),
            SubjectRef::GroupMember(g) => validate_subject_id("group name", g),
        }
    }
}

impl fmt::Display for SubjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectRef::GroupMember(g) => write!(f, "group:{g}#member"),
            other => write!(f, "{}:{}", other.type_name(), other.id()),
        }
    }
}

impl FromStr for SubjectRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

/// A relation tuple: `subject` has `relation` on `object`, until `expires_at` if set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tuple {
    pub subject: SubjectRef,
    pub relation: Relation,
    pub object: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl Tuple {
    pub fn new(subject: SubjectRef, relation: Relation, object: ObjectRef) -> Self {
        Self {
            subject,
            relation,
            object,
            expires_at: None,
        }
    }

    /// Checks names, paths and that the relation applies to the object's type.
    pub fn validate(&self) -> Result<(), Error> {
        self.subject.validate()?;
        self.object.validate()?;
        check_relation_on(self.relation, &self.object)
    }

    /// Whether the tuple still counts at `now` (the model's `unexpired` condition).
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.subject, self.relation, self.object)?;
        if let Some(e) = self.expires_at {
            write!(f, " (until {})", e.to_rfc3339())?;
        }
        Ok(())
    }
}

/// The relations each object type has.
pub fn check_relation_on(relation: Relation, object: &ObjectRef) -> Result<(), Error> {
    let (ok, allowed) = match object {
        ObjectRef::Group(_) => (relation == Relation::Member, "member"),
        ObjectRef::Zone(_) => (
            matches!(
                relation,
                Relation::Reader | Relation::Writer | Relation::Admin
            ),
            "reader, writer or admin",
        ),
        ObjectRef::Namespace(_) => (relation == Relation::Admin, "admin"),
        ObjectRef::File { .. } => (
            matches!(relation, Relation::CanRead | Relation::CanWrite),
            "can_read or can_write",
        ),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::RelationNotOnType {
            relation,
            object_type: object.type_name(),
            allowed,
        })
    }
}

macro_rules! serde_as_text {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_as_text!(Relation);
serde_as_text!(ObjectRef);
serde_as_text!(SubjectRef);
