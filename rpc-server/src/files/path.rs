//! The path normaliser: the one place where caller-supplied path text becomes a location
//! on disk. Nothing it returns can name anything outside the caller's zones.
//!
//! Rules: `..` is refused (not resolved), as are NUL and control characters, backslashes,
//! percent-encoded dots and separators, over-long names and paths, and the server's own
//! temporary-file prefix. Empty and `.` components are dropped, so `a//./b` is `a/b`.

use crate::auth::Identity;
use nexus_wire::RpcError;
use nexus_wire::spec::{Permission, validate_zone_name};

pub const MAX_PATH_BYTES: usize = 4096;
pub const MAX_NAME_BYTES: usize = 255;
pub const MAX_DEPTH: usize = 64;
/// Prefix of in-flight temporary files; reserved so callers can neither see nor name them.
pub const TEMP_PREFIX: &str = ".nexus-tmp-";

/// How the caller's zones appear as paths.
#[derive(Debug, Clone, PartialEq)]
pub enum ZoneView {
    /// One zone, seen as `/`.
    Single {
        zone: String,
        permission: Permission,
    },
    /// Several zones (or a zoneless admin's every zone), at `/zone/<zone>/…`.
    Multi { zones: Vec<(String, Permission)> },
}

impl ZoneView {
    /// The view of an identity. `all_zones` is consulted only for a zoneless admin.
    pub fn for_identity(id: &Identity, all_zones: &[String]) -> Self {
        if id.zones.is_empty() && id.is_admin {
            return Self::Multi {
                zones: all_zones
                    .iter()
                    .map(|z| (z.clone(), Permission::ReadWrite))
                    .collect(),
            };
        }
        match id.zones.as_slice() {
            [one] => Self::Single {
                zone: one.zone_id.clone(),
                permission: one.permission,
            },
            many => Self::Multi {
                zones: many
                    .iter()
                    .map(|g| (g.zone_id.clone(), g.permission))
                    .collect(),
            },
        }
    }

    pub fn is_single(&self) -> bool {
        matches!(self, Self::Single { .. })
    }

    /// Zones of the view with their permissions, sorted by name.
    pub fn zones(&self) -> Vec<(String, Permission)> {
        match self {
            Self::Single { zone, permission } => vec![(zone.clone(), *permission)],
            Self::Multi { zones } => {
                let mut z = zones.clone();
                z.sort_by(|a, b| a.0.cmp(&b.0));
                z
            }
        }
    }

    /// The permission the view gives on `zone`, if it holds it.
    pub(crate) fn permission(&self, zone: &str) -> Option<Permission> {
        match self {
            Self::Single {
                zone: z,
                permission,
            } => (z == zone).then_some(*permission),
            Self::Multi { zones } => zones.iter().find(|(z, _)| z == zone).map(|(_, p)| *p),
        }
    }

    /// Resolves caller path text.
    pub fn resolve(&self, raw: &str) -> Result<Target, RpcError> {
        let comps = split(raw)?;
        match self {
            Self::Single { zone, permission } => {
                check_rel(&comps)?;
                Ok(Target::Zone(ZonePath {
                    zone: zone.clone(),
                    permission: *permission,
                    rel: comps,
                    single: true,
                }))
            }
            Self::Multi { .. } => {
                let mut it = comps.into_iter();
                match it.next().as_deref() {
                    None => return Ok(Target::Root),
                    Some("zone") => {}
                    Some(_) => {
                        return Err(RpcError::invalid_path(
                            "paths of a multi-zone token start with /zone/<zone>/ (list / to see your zones)",
                        ));
                    }
                }
                let Some(zone) = it.next() else {
                    return Ok(Target::Root);
                };
                if validate_zone_name(&zone).is_err() {
                    return Err(RpcError::invalid_path(format!(
                        "invalid zone name in path: {}",
                        nexus_wire::jsonrpc::printable(&zone)
                    )));
                }
                let Some(permission) = self.permission(&zone) else {
                    return Err(RpcError::permission_denied(format!(
                        "permission denied: zone '{zone}' is not one of this token's zones"
                    )));
                };
                let rel: Vec<String> = it.collect();
                check_rel(&rel)?;
                Ok(Target::Zone(ZonePath {
                    zone,
                    permission,
                    rel,
                    single: false,
                }))
            }
        }
    }

    /// The view path of a zone root.
    pub fn zone_root(&self, zone: &str) -> ZonePath {
        ZonePath {
            zone: zone.to_owned(),
            permission: self.permission(zone).unwrap_or(Permission::Read),
            rel: Vec::new(),
            single: self.is_single(),
        }
    }
}

/// What a path names.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The list of zones of a multi-zone view.
    Root,
    Zone(ZonePath),
}

/// A location inside one zone, already normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZonePath {
    pub zone: String,
    pub permission: Permission,
    /// Components below the zone root; empty for the root itself.
    pub rel: Vec<String>,
    single: bool,
}

impl ZonePath {
    pub fn is_root(&self) -> bool {
        self.rel.is_empty()
    }

    /// The path as the caller sees it.
    pub fn display(&self) -> String {
        let mut s = if self.single {
            String::new()
        } else {
            format!("/zone/{}", self.zone)
        };
        for c in &self.rel {
            s.push('/');
            s.push_str(c);
        }
        if s.is_empty() {
            s.push('/');
        }
        s
    }

    pub fn child(&self, name: &str) -> Self {
        let mut c = self.clone();
        c.rel.push(name.to_owned());
        c
    }

    pub fn parent(&self) -> Option<Self> {
        let mut p = self.clone();
        p.rel.pop()?;
        Some(p)
    }

    pub fn require_read(&self) -> Result<(), RpcError> {
        if self.permission.can_read() {
            Ok(())
        } else {
            Err(RpcError::permission_denied(format!(
                "permission denied: zone '{}' is write-only for this token",
                self.zone
            )))
        }
    }

    pub fn require_write(&self) -> Result<(), RpcError> {
        if self.permission.can_write() {
            Ok(())
        } else {
            Err(RpcError::permission_denied(format!(
                "permission denied: zone '{}' is read-only for this token",
                self.zone
            )))
        }
    }
}

fn has_encoded_separator(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|p| lower.contains(p))
}

/// Limits on the path below the zone root: at most `MAX_PATH_BYTES` and `MAX_DEPTH`.
fn check_rel(rel: &[String]) -> Result<(), RpcError> {
    let len = rel.iter().map(String::len).sum::<usize>() + rel.len().saturating_sub(1);
    if len > MAX_PATH_BYTES {
        return Err(RpcError::invalid_path(format!(
            "path longer than {MAX_PATH_BYTES} bytes"
        )));
    }
    if rel.len() > MAX_DEPTH {
        return Err(RpcError::invalid_path(format!(
            "path deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(())
}

/// Splits and checks path text; returns the normalised components.
pub fn split(raw: &str) -> Result<Vec<String>, RpcError> {
    // A cheap bound before any work; the precise limit applies to the path inside the zone
    // (see `check_rel`), so that a path and its displayed form resolve alike.
    if raw.len() > 4 * MAX_PATH_BYTES {
        return Err(RpcError::invalid_path(format!(
            "path longer than {MAX_PATH_BYTES} bytes"
        )));
    }
    if raw.chars().any(char::is_control) {
        return Err(RpcError::invalid_path(
            "path contains NUL or control characters",
        ));
    }
    if raw.contains('\\') {
        return Err(RpcError::invalid_path("path contains a backslash; use '/'"));
    }
    if has_encoded_separator(raw) {
        return Err(RpcError::invalid_path(
            "path contains a percent-encoded dot, slash or NUL",
        ));
    }
    let mut out = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(RpcError::invalid_path("'..' is not allowed in paths")),
            c if c.len() > MAX_NAME_BYTES => {
                return Err(RpcError::invalid_path(format!(
                    "a path component is longer than {MAX_NAME_BYTES} bytes"
                )));
            }
            c if c.starts_with(TEMP_PREFIX) => {
                return Err(RpcError::invalid_path(format!(
                    "names starting with {TEMP_PREFIX} are reserved"
                )));
            }
            c => out.push(c.to_owned()),
        }
    }
    // Room for the `zone/<zone>` prefix of multi-zone paths; `check_rel` is exact.
    if out.len() > MAX_DEPTH + 2 {
        return Err(RpcError::invalid_path(format!(
            "path deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_refuses() {
        assert_eq!(split("/a//b/./c/").expect("ok"), ["a", "b", "c"]);
        assert!(split("").expect("ok").is_empty());
        for bad in [
            "/a/../b",
            "..",
            "a/..",
            "a\0b",
            "a\\b",
            "%2e%2e/x",
            "a%2Fb",
            "x/.nexus-tmp-1",
            "a\nb",
        ] {
            assert!(split(bad).is_err(), "{bad:?}");
        }
        assert!(split(&"a/".repeat(67)).is_err());
        assert!(split(&"a".repeat(256)).is_err());
        assert!(split(&"a".repeat(255)).is_ok());
        let single = ZoneView::Single {
            zone: "eng".into(),
            permission: Permission::ReadWrite,
        };
        assert!(single.resolve(&"a/".repeat(64)).is_ok());
        assert!(
            single.resolve(&"a/".repeat(65)).is_err(),
            "deeper than 64 below the zone"
        );
        let name = "c".repeat(200);
        assert!(single.resolve(&vec![name.as_str(); 20].join("/")).is_ok());
        assert!(
            single.resolve(&vec![name.as_str(); 21].join("/")).is_err(),
            "longer than 4096 below the zone"
        );
    }

    #[test]
    fn multi_view_confines_to_held_zones() {
        let v = ZoneView::Multi {
            zones: vec![
                ("eng".into(), Permission::ReadWrite),
                ("ops".into(), Permission::Read),
            ],
        };
        assert_eq!(v.resolve("/").expect("ok"), Target::Root);
        assert_eq!(v.resolve("/zone").expect("ok"), Target::Root);
        let Target::Zone(p) = v.resolve("/zone/eng/a/b").expect("ok") else {
            panic!("zone")
        };
        assert_eq!(p.display(), "/zone/eng/a/b");
        assert!(p.require_write().is_ok());
        let Target::Zone(p) = v.resolve("zone/ops").expect("ok") else {
            panic!("zone")
        };
        assert!(p.require_write().is_err());
        assert_eq!(v.resolve("/zone/other/x").expect_err("denied").code, -32003);
        assert_eq!(v.resolve("/a").expect_err("invalid").code, -32004);
        assert_eq!(v.resolve("/zone/../x").expect_err("invalid").code, -32004);
    }
}
