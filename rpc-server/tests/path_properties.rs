//! Property tests for the path normaliser, the one place where caller text becomes a
//! location on disk: it never panics, never yields a component that could step outside a
//! zone, keeps multi-zone callers inside their own zones, and its output re-resolves to the
//! same target. The long runs are the `path_normaliser` cargo-fuzz target in `fuzz/`.

use nexus_wire::spec::Permission;
use proptest::collection::vec;
use proptest::prelude::*;
use rpc_server::files::path::{
    MAX_DEPTH, MAX_NAME_BYTES, MAX_PATH_BYTES, TEMP_PREFIX, Target, ZoneView, split,
};
use std::path::{Component, Path};

const CASES: u32 = 384;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(CASES)
}

/// Path pieces that sit on the normaliser's edges.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9_.-]{1,12}",
        2 => prop::sample::select(vec![
            "", ".", "..", "...", ". .", "zone", "eng", "ops", "other", "Eng", "-a",
            "%2e", "%2E%2e", "%2f", "%5C", "%00", "%2", "%", "a%2", "e", "\\", "a\\b", "\0",
            "\u{1}", "\n", "\u{7f}", "\u{85}", "\u{200b}", "\u{202e}", "é", "日本",
            ".nexus-tmp-", ".nexus-tmp-x", ".nexus-tmp", "x.nexus-tmp-",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z]{250,260}",
        1 => any::<String>(),
    ]
}

/// Raw path text: components joined by one or more slashes, sometimes rooted, sometimes
/// with a trailing slash, and sometimes anything at all.
fn raw_path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (any::<bool>(), vec((component(), 1usize..3), 0..10), any::<bool>()).prop_map(
            |(lead, parts, trail)| {
                let mut s = String::new();
                if lead {
                    s.push('/');
                }
                for (i, (c, slashes)) in parts.iter().enumerate() {
                    if i > 0 {
                        s.push_str(&"/".repeat(*slashes));
                    }
                    s.push_str(c);
                }
                if trail {
                    s.push('/');
                }
                s
            }
        ),
        1 => any::<String>(),
        1 => vec(any::<char>(), 0..64).prop_map(|c| c.into_iter().collect()),
        1 => "(/?[a/]){60,70}",
    ]
}

fn zone_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["eng", "ops", "zone", "a", "0"]).prop_map(str::to_owned),
        "[a-z0-9][a-z0-9_-]{0,10}",
    ]
}

fn permission() -> impl Strategy<Value = Permission> {
    prop_oneof![
        Just(Permission::Read),
        Just(Permission::Write),
        Just(Permission::ReadWrite),
    ]
}

fn view() -> impl Strategy<Value = ZoneView> {
    prop_oneof![
        (zone_name(), permission())
            .prop_map(|(zone, permission)| ZoneView::Single { zone, permission }),
        vec((zone_name(), permission()), 0..5).prop_map(|zones| ZoneView::Multi { zones }),
    ]
}

/// A raw path aimed at a multi-zone view: often `/zone/<one of its zones or another>/…`.
fn raw_path_for(view: &ZoneView) -> BoxedStrategy<String> {
    let mut zones: Vec<String> = view.zones().into_iter().map(|(z, _)| z).collect();
    zones.push("stranger".into());
    (
        prop::sample::select(zones),
        raw_path(),
        prop::sample::select(vec!["/zone/", "zone/", "//zone//", "/./zone/"]),
    )
        .prop_map(|(zone, rest, prefix)| format!("{prefix}{zone}/{rest}"))
        .boxed()
}

fn check_component(c: &str) -> Result<(), TestCaseError> {
    prop_assert!(!c.is_empty());
    prop_assert!(c != "." && c != "..", "{:?}", c);
    prop_assert!(!c.contains(['/', '\\', '\0']), "{:?}", c);
    prop_assert!(!c.chars().any(char::is_control), "{:?}", c);
    prop_assert!(c.len() <= MAX_NAME_BYTES, "{} bytes", c.len());
    prop_assert!(!c.starts_with(TEMP_PREFIX), "{:?}", c);
    Ok(())
}

/// Length of the path below the zone root, as the limits count it.
fn rel_bytes(rel: &[String]) -> usize {
    rel.iter().map(String::len).sum::<usize>() + rel.len().saturating_sub(1)
}

/// Long inputs in failure messages: the start, and the length.
fn brief(s: &str) -> String {
    if s.len() <= 80 {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(40).collect();
        format!("{head:?}… ({} bytes)", s.len())
    }
}

/// The caller-visible text of a target (what the server echoes back).
fn display(t: &Target) -> String {
    match t {
        Target::Root => "/".to_owned(),
        Target::Zone(p) => p.display(),
    }
}

/// Joins a resolved target under a zones directory the way the file service does and
/// checks it stays there: after the root, only normal components, one per name.
fn check_confined(t: &Target) -> Result<(), TestCaseError> {
    let Target::Zone(p) = t else { return Ok(()) };
    let root = Path::new("/srv/nexus/zones");
    let mut full = root.join(&p.zone);
    for c in &p.rel {
        full.push(c);
    }
    let rest = full
        .strip_prefix(root)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let comps: Vec<Component<'_>> = rest.components().collect();
    prop_assert!(
        comps.iter().all(|c| matches!(c, Component::Normal(_))),
        "{} escapes {}",
        full.display(),
        root.display()
    );
    prop_assert_eq!(comps.len(), p.rel.len() + 1, "{}", full.display());
    Ok(())
}

fn check_resolved(v: &ZoneView, raw: &str) -> Result<(), TestCaseError> {
    let Ok(t) = v.resolve(raw) else {
        return Ok(());
    };
    if let Target::Zone(p) = &t {
        for c in &p.rel {
            check_component(c)?;
        }
        prop_assert!(p.rel.len() <= MAX_DEPTH, "{} levels", p.rel.len());
        prop_assert!(
            rel_bytes(&p.rel) <= MAX_PATH_BYTES,
            "{} bytes",
            rel_bytes(&p.rel)
        );
        let held = v.zones();
        prop_assert!(
            held.iter()
                .any(|(z, perm)| *z == p.zone && *perm == p.permission),
            "{:?} resolved to zone {:?}, not one of {:?}",
            raw,
            p.zone,
            held
        );
    } else {
        prop_assert!(!v.is_single(), "a single-zone view has no root list");
    }
    check_confined(&t)?;
    let shown = display(&t);
    prop_assert!(
        v.resolve(&shown).ok() == Some(t),
        "{} resolved, but its display {} does not re-resolve to it",
        brief(raw),
        brief(&shown)
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Never panics; every accepted component is a plain, bounded name.
    #[test]
    fn split_is_total_and_components_are_plain(raw in raw_path()) {
        if let Ok(comps) = split(&raw) {
            // Room for the `zone/<zone>` prefix of a multi-zone path; the exact limits
            // apply below the zone root (checked on resolved targets).
            prop_assert!(comps.len() <= MAX_DEPTH + 2, "{} components", comps.len());
            for c in &comps {
                check_component(c)?;
            }
            // Splitting is idempotent on its own output.
            let joined = comps.join("/");
            prop_assert_eq!(split(&joined).ok(), Some(comps));
        }
    }

    /// Never panics; resolved targets stay in the view's zones, are confined under a root
    /// directory, and re-resolve to themselves from their display form.
    #[test]
    fn resolve_is_confined_and_idempotent(
        (v, raw) in view().prop_flat_map(|v| {
            let targeted = raw_path_for(&v);
            (Just(v), prop_oneof![raw_path(), targeted])
        }),
    ) {
        check_resolved(&v, &raw)?;
    }

    /// A multi-zone caller never reaches a zone it does not hold, whatever it names.
    #[test]
    fn multi_view_never_leaves_its_zones(
        held in vec((zone_name(), permission()), 0..4),
        named in zone_name(),
        rest in raw_path(),
    ) {
        let v = ZoneView::Multi { zones: held.clone() };
        let raw = format!("/zone/{named}/{rest}");
        match v.resolve(&raw) {
            Ok(Target::Zone(p)) => {
                prop_assert_eq!(&p.zone, &named);
                prop_assert!(held.iter().any(|(z, _)| *z == named));
            }
            Ok(Target::Root) => prop_assert!(false, "{:?} named a zone but resolved to root", raw),
            Err(e) if !held.iter().any(|(z, _)| *z == named) && split(&raw).is_ok() => {
                prop_assert_eq!(e.code, -32003, "{:?}: {}", raw, e.message);
            }
            Err(_) => {}
        }
    }
}

/// Paths right at the limits below the zone root: `MAX_PATH_BYTES` ± 4 bytes of names
/// (255-byte names and a shorter last one) or `MAX_DEPTH` ± 3 levels, rooted or not, with a
/// trailing slash or not, in a single view or under `/zone/eng/` of a multi-zone view.
fn path_near_limit() -> impl Strategy<Value = (String, Vec<String>)> {
    let by_length = (MAX_PATH_BYTES - 4..=MAX_PATH_BYTES + 4).prop_map(|len| {
        let mut rel = Vec::new();
        let mut used = 0;
        while used < len {
            let sep = usize::from(!rel.is_empty());
            // Never leave a 0-byte remainder after a separator.
            let n = (len - used - sep).min(MAX_NAME_BYTES);
            let n = if n == 0 { 1 } else { n };
            rel.push("n".repeat(n));
            used += sep + n;
        }
        rel
    });
    let by_depth = (MAX_DEPTH - 3..=MAX_DEPTH + 3).prop_map(|d| vec!["d".to_owned(); d]);
    (
        prop_oneof![by_length, by_depth],
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec!["", "zone/eng/"]),
    )
        .prop_map(|(rel, lead, trail, prefix)| {
            let mut s = String::from(if lead { "/" } else { "" });
            s.push_str(prefix);
            s.push_str(&rel.join("/"));
            if trail {
                s.push('/');
            }
            (s, rel)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Found by this property: a relative path of exactly MAX_PATH_BYTES was accepted, but
    /// its display added the leading '/', making it MAX_PATH_BYTES + 1 bytes, which was then
    /// refused, so the path the server echoed back could not be used again. The limits now
    /// apply below the zone root: accepted exactly when within them, and the display form
    /// re-resolves.
    #[test]
    fn resolve_is_idempotent_at_the_limits((raw, rel) in path_near_limit()) {
        let single = ZoneView::Single { zone: "eng".into(), permission: Permission::ReadWrite };
        let multi = ZoneView::Multi { zones: vec![("eng".into(), Permission::ReadWrite)] };
        let v = if raw.contains("zone/eng/") { &multi } else { &single };
        let within = rel.len() <= MAX_DEPTH && rel_bytes(&rel) <= MAX_PATH_BYTES;
        let got = v.resolve(&raw);
        prop_assert_eq!(
            got.is_ok(),
            within,
            "{} levels, {} bytes below the zone: {:?}",
            rel.len(),
            rel_bytes(&rel),
            got.err().map(|e| e.message)
        );
        check_resolved(v, &raw)?;
    }
}

/// The minimal case of the finding above, as a plain regression test.
#[test]
fn regression_relative_path_at_limit_re_resolves() {
    // 16 names of 254 bytes and one of 16, joined by 16 slashes: 4096 bytes, no leading '/'.
    let mut raw = vec!["a".repeat(254); 16].join("/");
    raw.push('/');
    raw.push_str(&"b".repeat(16));
    assert_eq!(raw.len(), MAX_PATH_BYTES);
    let v = ZoneView::Single {
        zone: "eng".into(),
        permission: Permission::ReadWrite,
    };
    let t = v.resolve(&raw).expect("a 4096-byte path is accepted");
    let Target::Zone(p) = &t else {
        panic!("single view")
    };
    let shown = p.display();
    assert!(
        v.resolve(&shown).ok().as_ref() == Some(&t),
        "the display form ({} bytes) of a {}-byte path does not re-resolve",
        shown.len(),
        raw.len()
    );
}
