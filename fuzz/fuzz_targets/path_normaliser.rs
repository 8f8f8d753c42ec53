//! The path normaliser (`rpc_server::files::path`): caller text → components in a zone.
//!
//! Input: one selector byte (single or multi-zone view, which zones, which permissions), then
//! the raw path (invalid UTF-8 replaced, so odd lengths and U+FFFD get exercised too).
//! Invariants: no panic; every accepted component is a plain, bounded name; the path below
//! the zone root is within MAX_DEPTH levels and MAX_PATH_BYTES bytes; a multi-zone
//! view only ever yields one of its zones; the joined path stays under the zones directory;
//! the display form re-resolves to the same target.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nexus_wire::spec::Permission;
use path::{MAX_DEPTH, MAX_NAME_BYTES, MAX_PATH_BYTES, TEMP_PREFIX, Target, ZoneView, split};
use std::path::{Component, Path};

// The normaliser's own source, compiled here rather than through the rpc-server crate: that
// would build the whole server stack (sqlx, axum, rustls, ...) with sanitizers, minutes of
// CI time for one module whose only dependencies are nexus-wire and the stand-in below.
// Should path.rs come to use more of the server, this build fails and says what.
#[path = "../../rpc-server/src/files/path.rs"]
#[allow(dead_code)]
mod path;

/// Stand-in for `rpc_server::auth::Identity`, the one thing `path.rs` takes from the server
/// (in `ZoneView::for_identity`, which this target does not call): the fields it reads.
mod auth {
    pub struct Identity {
        pub is_admin: bool,
        pub zones: Vec<nexus_wire::spec::ZoneGrant>,
    }
}

const ZONES: [&str; 4] = ["eng", "ops", "zone", "a-1"];
const PERMS: [Permission; 3] = [Permission::Read, Permission::Write, Permission::ReadWrite];

/// Bit 0: single (0) or multi (1). Single: bits 1-2 pick the zone, bits 3-4 the permission.
/// Multi: bits 1-4 say which zones are held, bits 5-7 rotate the permissions.
fn view(sel: u8) -> ZoneView {
    let sel = usize::from(sel);
    if sel & 1 == 0 {
        ZoneView::Single {
            zone: ZONES[(sel >> 1) % 4].to_owned(),
            permission: PERMS[(sel >> 3) % 3],
        }
    } else {
        ZoneView::Multi {
            zones: ZONES
                .iter()
                .enumerate()
                .filter(|(i, _)| (sel >> (1 + i)) & 1 == 1)
                .map(|(i, z)| ((*z).to_owned(), PERMS[(i + (sel >> 5)) % 3]))
                .collect(),
        }
    }
}

fn check_component(c: &str) {
    assert!(!c.is_empty(), "empty component");
    assert!(c != "." && c != "..", "dot component {c:?}");
    assert!(!c.contains(['/', '\\', '\0']), "separator in {c:?}");
    assert!(!c.chars().any(char::is_control), "control char in {c:?}");
    assert!(c.len() <= MAX_NAME_BYTES, "component of {} bytes", c.len());
    assert!(!c.starts_with(TEMP_PREFIX), "temp-prefixed {c:?}");
}

fn check_confined(zone: &str, rel: &[String]) {
    let root = Path::new("/srv/nexus/zones");
    let mut full = root.join(zone);
    for c in rel {
        full.push(c);
    }
    let rest = full.strip_prefix(root).expect("joined path keeps its root");
    let comps: Vec<Component<'_>> = rest.components().collect();
    assert!(
        comps.iter().all(|c| matches!(c, Component::Normal(_))),
        "{} escapes {}",
        full.display(),
        root.display()
    );
    assert_eq!(comps.len(), rel.len() + 1, "{}", full.display());
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let raw = String::from_utf8_lossy(rest);

    if let Ok(comps) = split(&raw) {
        // Room for the `zone/<zone>` prefix; the exact limits apply below the zone root.
        assert!(comps.len() <= MAX_DEPTH + 2, "{} components", comps.len());
        comps.iter().for_each(|c| check_component(c));
        assert_eq!(
            split(&comps.join("/")).ok(),
            Some(comps),
            "split not idempotent"
        );
    }

    let v = view(sel);
    let Ok(t) = v.resolve(&raw) else {
        return;
    };
    let shown = match &t {
        Target::Root => {
            assert!(!v.is_single(), "single view resolved to the zone list");
            "/".to_owned()
        }
        Target::Zone(p) => {
            p.rel.iter().for_each(|c| check_component(c));
            let rel_bytes = p.rel.iter().map(String::len).sum::<usize>() + p.rel.len().max(1) - 1;
            assert!(
                p.rel.len() <= MAX_DEPTH,
                "{} levels below the zone",
                p.rel.len()
            );
            assert!(
                rel_bytes <= MAX_PATH_BYTES,
                "{rel_bytes} bytes below the zone"
            );
            assert!(
                v.zones()
                    .iter()
                    .any(|(z, perm)| *z == p.zone && *perm == p.permission),
                "resolved to zone {:?}, not one of {:?}",
                p.zone,
                v.zones()
            );
            check_confined(&p.zone, &p.rel);
            p.display()
        }
    };
    assert!(
        v.resolve(&shown).ok().as_ref() == Some(&t),
        "a {}-byte path resolved, but its {}-byte display does not re-resolve to it",
        raw.len(),
        shown.len()
    );
});
