//! Scopes: what an issued token may do, within what its user may do. `files:read` and
//! `files:write` become the token's READ and WRITE and its zones' `r`/`w`; `hub:admin`
//! makes an admin token, and only for a user with ADMIN.

use crate::OAuthError;

pub const FILES_READ: &str = "files:read";
pub const FILES_WRITE: &str = "files:write";
pub const HUB_ADMIN: &str = "hub:admin";

/// What a client gets when it asks for no scope.
pub const DEFAULT: &str = "files:read files:write";

/// A set of this server's scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes {
    pub read: bool,
    pub write: bool,
    pub admin: bool,
}

impl Scopes {
    /// Parses a space-separated `scope` (absent or empty: [`DEFAULT`]). An unknown scope
    /// is `invalid_scope`; `offline_access` and `openid`, which clients add by habit, are
    /// ignored (refresh tokens are always issued; no ID token is).
    pub fn parse(s: Option<&str>) -> Result<Self, OAuthError> {
        let s = s
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT);
        if s.len() > 512 {
            return Err(OAuthError::new("invalid_scope", "scope too long"));
        }
        let mut out = Self::default();
        for part in s.split(' ').filter(|p| !p.is_empty()) {
            match part {
                FILES_READ => out.read = true,
                FILES_WRITE => out.write = true,
                HUB_ADMIN => out.admin = true,
                "offline_access" | "openid" | "profile" | "email" => {}
                _ => {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        "scopes are files:read, files:write and hub:admin",
                    ));
                }
            }
        }
        if !(out.read || out.write || out.admin) {
            return Self::parse(None);
        }
        Ok(out)
    }

    /// Those of `self` also in `other`.
    pub fn within(self, other: Self) -> Self {
        Self {
            read: self.read && other.read,
            write: self.write && other.write,
            admin: self.admin && other.admin,
        }
    }

    pub fn is_empty(self) -> bool {
        !(self.read || self.write || self.admin)
    }

    /// The space-separated form.
    pub fn to_scope_string(self) -> String {
        let mut v = Vec::new();
        if self.read {
            v.push(FILES_READ);
        }
        if self.write {
            v.push(FILES_WRITE);
        }
        if self.admin {
            v.push(HUB_ADMIN);
        }
        v.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_default_and_narrow() {
        let d = Scopes::parse(None).expect("default");
        assert!(d.read && d.write && !d.admin);
        assert_eq!(Scopes::parse(Some("openid")).expect("ok"), d);
        let r = Scopes::parse(Some("files:read offline_access")).expect("ok");
        assert!(r.read && !r.write);
        assert_eq!(r.to_scope_string(), "files:read");
        assert!(Scopes::parse(Some("files:delete")).is_err());
        let all = Scopes::parse(Some("files:read files:write hub:admin")).expect("ok");
        assert_eq!(all.within(r), r);
    }
}
