//! Permissions of users and keys (SPEC §10, seed `002`): READ, WRITE, ADMIN, SUPER.
//!
//! A set, not a level, because the seed grants lists (`["READ", "WRITE"]`); but the
//! checks treat each as implying the ones below it (an ADMIN may read), so a set reads
//! the way an operator expects. Kept here, beside the other pure credential logic, so the
//! static file, local users and database keys parse and compare permissions one way.

use std::fmt;

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Perm {
    /// Read methods (read, list, stat, glob, grep, whoami).
    Read,
    /// Mutations (write, edit, delete, mkdir, rmdir, rename).
    Write,
    /// The admin methods: users, keys, zones, tuples.
    Admin,
    /// Root-only things: granting ADMIN or SUPER, deleting an admin, rotating signing keys.
    Super,
}

impl Perm {
    pub const ALL: [Self; 4] = [Self::Read, Self::Write, Self::Admin, Self::Super];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "READ",
            Self::Write => "WRITE",
            Self::Admin => "ADMIN",
            Self::Super => "SUPER",
        }
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of permissions. `Perms::default()` is the empty set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Perms(u8);

/// A permission name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission {0:?} (use READ, WRITE, ADMIN or SUPER)")]
pub struct UnknownPerm(pub String);

impl Perms {
    pub const fn empty() -> Self {
        Self(0)
    }

    pub fn of(ps: &[Perm]) -> Self {
        Self(ps.iter().fold(0, |acc, p| acc | p.bit()))
    }

    /// Parses names, case-insensitive (`read`, `WRITE`); refuses unknown ones and more
    /// than a handful (input is bounded before anything else looks at it).
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, UnknownPerm> {
        if names.len() > 16 {
            return Err(UnknownPerm("(too many entries)".into()));
        }
        let mut out = Self::empty();
        for n in names {
            let n = n.as_ref();
            let p = Perm::ALL
                .into_iter()
                .find(|p| p.as_str().eq_ignore_ascii_case(n.trim()))
                .ok_or_else(|| UnknownPerm(n.chars().take(32).collect()))?;
            out.0 |= p.bit();
        }
        Ok(out)
    }

    /// Parses the stored form, `READ,WRITE` (empty: no permission).
    pub fn parse_stored(s: &str) -> Result<Self, UnknownPerm> {
        let parts: Vec<&str> = s.split(',').filter(|p| !p.trim().is_empty()).collect();
        Self::parse(&parts)
    }

    /// What a key without explicit permissions may do: its zone grants and admin flag
    /// (SPEC §10: `r`/`w` and `--admin` map onto READ/WRITE/ADMIN).
    pub fn legacy(is_admin: bool, any_write: bool) -> Self {
        let mut v = vec![Perm::Read];
        if any_write || is_admin {
            v.push(Perm::Write);
        }
        if is_admin {
            v.push(Perm::Admin);
        }
        Self::of(&v)
    }

    /// Holds `p` or a higher permission (SUPER implies ADMIN implies WRITE implies READ).
    pub fn allows(self, p: Perm) -> bool {
        Perm::ALL
            .into_iter()
            .filter(|q| *q >= p)
            .any(|q| self.0 & q.bit() != 0)
    }

    /// Holds exactly `p` (not merely something above it).
    pub fn contains(self, p: Perm) -> bool {
        self.0 & p.bit() != 0
    }

    /// Every permission of `self` is allowed by `other` (a key never exceeds its owner).
    pub fn within(self, other: Self) -> bool {
        Perm::ALL
            .into_iter()
            .filter(|p| self.contains(*p))
            .all(|p| other.allows(p))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Perm> {
        Perm::ALL.into_iter().filter(move |p| self.contains(*p))
    }

    /// `["READ", "WRITE"]`, for JSON.
    pub fn names(self) -> Vec<String> {
        self.iter().map(|p| p.as_str().to_owned()).collect()
    }

    /// The stored form, `READ,WRITE`.
    pub fn stored(self) -> String {
        self.iter().map(Perm::as_str).collect::<Vec<_>>().join(",")
    }
}

impl fmt::Debug for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Perms({})", self.stored())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_store_round_trip() {
        let p = Perms::parse(&["read", "WRITE"]).expect("parse");
        assert_eq!(p.stored(), "READ,WRITE");
        assert_eq!(Perms::parse_stored(&p.stored()).expect("stored"), p);
        assert!(Perms::parse(&["root"]).is_err());
        assert_eq!(Perms::parse_stored("").expect("empty"), Perms::empty());
    }

    #[test]
    fn higher_permissions_imply_lower_ones_and_keys_stay_within() {
        let admin = Perms::of(&[Perm::Admin]);
        assert!(admin.allows(Perm::Read) && admin.allows(Perm::Write));
        assert!(!admin.allows(Perm::Super));
        let rw = Perms::of(&[Perm::Read, Perm::Write]);
        assert!(rw.within(admin));
        assert!(!admin.within(rw));
        assert!(!Perms::of(&[Perm::Super]).within(admin));
        assert!(Perms::of(&[Perm::Read]).within(Perms::of(&[Perm::Read])));
        assert!(!Perms::of(&[Perm::Write]).within(Perms::of(&[Perm::Read])));
        assert_eq!(Perms::legacy(false, false), Perms::of(&[Perm::Read]));
        assert!(Perms::legacy(true, false).allows(Perm::Admin));
    }
}
