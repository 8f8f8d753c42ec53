//! Parsers for the small languages operators type: zone names and zone specs
//! (`eng:rw,ops:r`), permissions, token names, subject types, durations (`90d`) and rate
//! limits (`120/m`). The CLI, the admin RPC methods and the MCP admin tools all use these,
//! so the same text means the same thing everywhere.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A validation failure, with a message fit for an operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

fn err(msg: impl Into<String>) -> SpecError {
    SpecError(msg.into())
}

/// A zone name: `[a-z0-9][a-z0-9_-]{0,62}`.
pub fn validate_zone_name(name: &str) -> Result<(), SpecError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(err(format!(
            "invalid zone name {:?}: use 1-63 of a-z, 0-9, '_' and '-', starting with a letter or digit",
            crate::jsonrpc::printable(name)
        )))
    }
}

/// A token name: 1-128 of letters, digits and `._@:+-`.
pub fn validate_token_name(name: &str) -> Result<(), SpecError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._@:+-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(err(format!(
            "invalid token name {:?}: use 1-128 of letters, digits and . _ @ : + -",
            crate::jsonrpc::printable(name)
        )))
    }
}

/// What a token may do in one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "r")]
    Read,
    #[serde(rename = "w")]
    Write,
    #[serde(rename = "rw")]
    ReadWrite,
}

impl Permission {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "r",
            Self::Write => "w",
            Self::ReadWrite => "rw",
        }
    }
    pub const fn can_read(self) -> bool {
        matches!(self, Self::Read | Self::ReadWrite)
    }
    pub const fn can_write(self) -> bool {
        matches!(self, Self::Write | Self::ReadWrite)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s {
            "r" => Ok(Self::Read),
            "w" => Ok(Self::Write),
            "rw" | "wr" => Ok(Self::ReadWrite),
            _ => Err(err(format!(
                "invalid permission {:?}: use r, w or rw",
                crate::jsonrpc::printable(s)
            ))),
        }
    }
}

/// One `zone[:perm]` item; a bare zone means `rw`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ZoneGrant {
    pub zone_id: String,
    pub permission: Permission,
}

impl fmt::Display for ZoneGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.zone_id, self.permission)
    }
}

/// Parses `eng:rw,ops:r` (bare zone = `rw`). Duplicate zones are refused.
pub fn parse_zone_spec(spec: &str) -> Result<Vec<ZoneGrant>, SpecError> {
    let mut out: Vec<ZoneGrant> = Vec::new();
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(err("empty item in zone list (expected zone[:r|w|rw],...)"));
        }
        let (zone, perm) = match item.split_once(':') {
            Some((z, p)) => (z, p.parse()?),
            None => (item, Permission::ReadWrite),
        };
        validate_zone_name(zone)?;
        if out.iter().any(|g| g.zone_id == zone) {
            return Err(err(format!("zone {zone:?} is listed twice")));
        }
        out.push(ZoneGrant {
            zone_id: zone.to_owned(),
            permission: perm,
        });
    }
    Ok(out)
}

/// Formats grants back into the spec language (`eng:rw,ops:r`).
pub fn format_zone_spec(grants: &[ZoneGrant]) -> String {
    grants
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses a glob with an optional permission suffix: `team-*` or `team-*:r`.
pub fn parse_zone_glob(spec: &str) -> Result<(String, Permission), SpecError> {
    let (glob, perm) = match spec.rsplit_once(':') {
        Some((g, p)) => (g, p.parse()?),
        None => (spec, Permission::ReadWrite),
    };
    let ok = !glob.is_empty()
        && glob.len() <= 128
        && glob
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-*?[]!".contains(&c));
    if ok {
        Ok((glob.to_owned(), perm))
    } else {
        Err(err(format!(
            "invalid zone glob {:?}",
            crate::jsonrpc::printable(spec)
        )))
    }
}

/// Who a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum SubjectType {
    User,
    Agent,
    Service,
}

impl SubjectType {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Agent => "agent",
            Self::Service => "service",
        }
    }
}

impl fmt::Display for SubjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SubjectType {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s {
            "user" => Ok(Self::User),
            "agent" => Ok(Self::Agent),
            "service" => Ok(Self::Service),
            _ => Err(err(format!(
                "invalid subject type {:?}: use user, agent or service",
                crate::jsonrpc::printable(s)
            ))),
        }
    }
}

/// Longest lifetime a token may be minted with.
pub const MAX_EXPIRY: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// Parses a token lifetime: `90d`, `12h`, `30m`, `2w`, `1d 12h`, …
pub fn parse_expiry(text: &str) -> Result<Duration, SpecError> {
    let t = text.trim();
    // A bare number is ambiguous (seconds? days?), so a unit is required.
    if t.is_empty() || t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!(
            "invalid duration {:?}: use a number with a unit, e.g. 90d, 12h, 30m",
            crate::jsonrpc::printable(text)
        )));
    }
    // Absurd inputs overflow inside the parser; no real lifetime needs more than this.
    if t.len() > 64 {
        return Err(err("duration text is too long (e.g. 90d, 12h, 30m)"));
    }
    let longest_number = t
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    if longest_number > 9 {
        return Err(err("duration must be at most 10 years"));
    }
    let d = humantime::parse_duration(t).map_err(|e| {
        err(format!(
            "invalid duration {:?}: {e} (e.g. 90d, 12h, 30m)",
            crate::jsonrpc::printable(text)
        ))
    })?;
    if d < Duration::from_secs(60) {
        return Err(err("duration must be at least 1m"));
    }
    if d > MAX_EXPIRY {
        return Err(err("duration must be at most 10 years"));
    }
    Ok(d)
}

/// A rate limit: `count` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub count: u32,
    pub period_secs: u32,
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period_secs {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl FromStr for RateLimit {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let bad = || {
            err(format!(
                "invalid rate limit {:?}: use N/s, N/m or N/h",
                crate::jsonrpc::printable(s)
            ))
        };
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = n.parse().map_err(|_| bad())?;
        let period_secs = match unit {
            "s" | "sec" => 1,
            "m" | "min" => 60,
            "h" | "hour" => 3600,
            _ => return Err(bad()),
        };
        if count == 0 || count > 1_000_000 {
            return Err(err("rate limit count must be between 1 and 1000000"));
        }
        Ok(Self { count, period_secs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_names() {
        for ok in ["a", "eng", "team-1", "a_b", "0zone", &"a".repeat(63)] {
            assert!(validate_zone_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Eng",
            "-a",
            "_a",
            "a/b",
            "a.b",
            "..",
            "a b",
            &"a".repeat(64),
            "é",
        ] {
            assert!(validate_zone_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn zone_specs_round_trip() {
        let g = parse_zone_spec("eng:rw,ops:r, docs").expect("valid");
        assert_eq!(format_zone_spec(&g), "eng:rw,ops:r,docs:rw");
        assert_eq!(parse_zone_spec(&format_zone_spec(&g)).expect("valid"), g);
        for bad in ["", "eng,", "eng:x", "eng:rw,eng:r", "ENG", "a:"] {
            assert!(parse_zone_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_expiry("90d").expect("ok"),
            Duration::from_secs(90 * 86400)
        );
        assert_eq!(
            parse_expiry("12h").expect("ok"),
            Duration::from_secs(12 * 3600)
        );
        assert_eq!(parse_expiry("30m").expect("ok"), Duration::from_secs(1800));
        for bad in ["", "90", "-1d", "abc", "10s", "100000d", "1x"] {
            assert!(parse_expiry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_limits_round_trip() {
        for s in ["10/s", "300/m", "5000/h"] {
            let r: RateLimit = s.parse().expect("ok");
            assert_eq!(r.to_string(), s);
        }
        for bad in ["", "10", "0/s", "x/m", "10/d", "-1/s"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }
}
