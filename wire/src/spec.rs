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

/// A rate limit: `count` requests per `period` (one window of a [`RateTier`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateLimit {
    pub count: u32,
    pub period_secs: u32,
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period_secs {
            1 => "s",
            60 => "m",
            3600 => "h",
            _ => "d",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl FromStr for RateLimit {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let bad = || {
            err(format!(
                "invalid rate limit {:?}: use N/s, N/m, N/h or N/d",
                crate::jsonrpc::printable(s)
            ))
        };
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = n.parse().map_err(|_| bad())?;
        let period_secs = match unit {
            "s" | "sec" => 1,
            "m" | "min" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err(bad()),
        };
        if count == 0 || count > 1_000_000 {
            return Err(err("rate limit count must be between 1 and 1000000"));
        }
        Ok(Self { count, period_secs })
    }
}

/// Most windows in one tier: one per period (s, m, h, d).
pub const MAX_RATE_WINDOWS: usize = 4;

/// A rate tier: one or more windows, every one of which must admit a request, e.g.
/// `1000/m,10000/h` (SPEC §10). Held inline (no allocation), windows sorted by period,
/// at most one per period, so equal tiers compare and hash equal and Display round-trips.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateTier {
    windows: [RateLimit; MAX_RATE_WINDOWS],
    len: u8,
}

impl RateTier {
    /// What fills the unused slots, the same in every tier so derived equality holds.
    const UNUSED: RateLimit = RateLimit {
        count: 0,
        period_secs: 0,
    };

    /// A tier of one window.
    pub const fn single(w: RateLimit) -> Self {
        Self {
            windows: [w, Self::UNUSED, Self::UNUSED, Self::UNUSED],
            len: 1,
        }
    }

    /// A tier of `windows` (any order); refused when empty or when two share a period.
    pub fn new(windows: &[RateLimit]) -> Result<Self, SpecError> {
        let first = *windows
            .first()
            .ok_or_else(|| err("a rate tier needs at least one window, e.g. 1000/m"))?;
        let mut out = Self::single(first);
        for w in &windows[1..] {
            if out.windows().iter().any(|o| o.period_secs == w.period_secs) {
                return Err(err(format!(
                    "rate tier names the period of {w} twice: give each of s, m, h, d at most once"
                )));
            }
            // Distinct periods among four units: never more than MAX_RATE_WINDOWS.
            out.windows[usize::from(out.len)] = *w;
            out.len += 1;
        }
        out.windows[..usize::from(out.len)].sort_unstable_by_key(|w| w.period_secs);
        Ok(out)
    }

    /// The windows, shortest period first.
    pub fn windows(&self) -> &[RateLimit] {
        &self.windows[..usize::from(self.len)]
    }
}

impl From<RateLimit> for RateTier {
    fn from(w: RateLimit) -> Self {
        Self::single(w)
    }
}

impl fmt::Display for RateTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, w) in self.windows().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{w}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RateTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RateTier({self})")
    }
}

impl FromStr for RateTier {
    type Err = SpecError;
    /// `N/unit[,N/unit…]`; a single window (what older versions stored) is a tier of one.
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let mut windows = [Self::UNUSED; MAX_RATE_WINDOWS];
        let mut n = 0;
        for part in s.split(',') {
            if n == MAX_RATE_WINDOWS {
                return Err(err(format!(
                    "invalid rate tier {:?}: at most {MAX_RATE_WINDOWS} windows (one per s, m, h, d)",
                    crate::jsonrpc::printable(s)
                )));
            }
            windows[n] = part.parse()?;
            n += 1;
        }
        Self::new(&windows[..n])
    }
}

impl Serialize for RateTier {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateTier {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
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
        for bad in ["", "10", "0/s", "x/m", "10/w", "-1/s"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
        assert_eq!("7/day".parse::<RateLimit>().expect("ok").to_string(), "7/d");
    }

    #[test]
    fn rate_tiers_round_trip_sorted() {
        let t: RateTier = "10000/h, 1000/m".parse().expect("ok");
        assert_eq!(t.to_string(), "1000/m,10000/h");
        assert_eq!(t.windows()[0], "1000/m".parse().expect("ok"));
        assert_eq!(t.to_string().parse::<RateTier>(), Ok(t));
        // What older versions stored: one window.
        assert_eq!(
            t,
            "1000/m,10000/h".parse().expect("ok"),
            "order does not matter"
        );
        let one: RateTier = "300/m".parse().expect("ok");
        assert_eq!(one.windows().len(), 1);
        assert_eq!(
            one,
            RateTier::from("300/m".parse::<RateLimit>().expect("ok"))
        );
        let all: RateTier = "5/s,100/m,1000/h,5000/d".parse().expect("ok");
        assert_eq!(all.windows().len(), 4);
        for bad in [
            "",
            ",",
            "1000/m,",
            "1000/m,2000/m",
            "1000/m,20/min",
            "1/s,1/m,1/h,1/d,1/s",
            "1000/m;10000/h",
        ] {
            assert!(bad.parse::<RateTier>().is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&t).expect("json");
        assert_eq!(json, "\"1000/m,10000/h\"");
        assert_eq!(serde_json::from_str::<RateTier>(&json).expect("back"), t);
    }
}
