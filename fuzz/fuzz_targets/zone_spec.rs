//! The zone-spec language (`nexus_wire::spec`): `eng:rw,ops:r`, zone globs, zone and token
//! names, permissions and subject types.
//!
//! Invariants: no panic; a parsed spec is non-empty, has valid and distinct zone names, and
//! parse(format(parse(s))) == parse(s); globs, permissions and subject types round-trip
//! through their printed forms.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nexus_wire::spec::{
    Permission, SubjectType, format_zone_spec, parse_zone_glob, parse_zone_spec,
    validate_token_name, validate_zone_name,
};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(grants) = parse_zone_spec(s) {
        assert!(!grants.is_empty(), "{s:?} parsed to no grants");
        for (i, g) in grants.iter().enumerate() {
            assert!(validate_zone_name(&g.zone_id).is_ok(), "{g:?}");
            assert!(
                grants[..i].iter().all(|h| h.zone_id != g.zone_id),
                "duplicate zone {:?}",
                g.zone_id
            );
        }
        let text = format_zone_spec(&grants);
        assert_eq!(parse_zone_spec(&text), Ok(grants), "{s:?} -> {text:?}");
    }

    if let Ok((glob, perm)) = parse_zone_glob(s) {
        assert_eq!(parse_zone_glob(&format!("{glob}:{perm}")), Ok((glob, perm)));
    }
    if let Ok(p) = s.parse::<Permission>() {
        assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
    }
    if let Ok(t) = s.parse::<SubjectType>() {
        assert_eq!(t.as_str(), s);
    }
    if validate_zone_name(s).is_ok() {
        assert!(!s.is_empty() && s.len() <= 63 && !s.contains(['/', '.', ':', ',']));
    }
    if validate_token_name(s).is_ok() {
        assert!(!s.is_empty() && s.len() <= 128 && s.is_ascii());
    }
});
