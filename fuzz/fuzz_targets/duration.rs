//! The token-lifetime parser (`nexus_wire::spec::parse_expiry`, `90d`, `1d 12h`) and the
//! rate-limit parser (`RateLimit`, `120/m`), both numbers with units that operators type.
//!
//! Invariants: no panic; an accepted lifetime is between one minute and MAX_EXPIRY; a bare
//! number is refused; an accepted rate limit is in bounds and round-trips through Display.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nexus_wire::spec::{MAX_EXPIRY, RateLimit, RateTier, parse_expiry};
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(d) = parse_expiry(s) {
        assert!(d >= Duration::from_secs(60), "{s:?} -> {d:?}");
        assert!(d <= MAX_EXPIRY, "{s:?} -> {d:?}");
        assert!(
            !s.trim().bytes().all(|b| b.is_ascii_digit()),
            "bare number {s:?} accepted"
        );
    }

    if let Ok(r) = s.parse::<RateLimit>() {
        assert!((1..=1_000_000).contains(&r.count), "{s:?} -> {r:?}");
        assert!([1, 60, 3600, 86_400].contains(&r.period_secs), "{s:?} -> {r:?}");
        assert_eq!(r.to_string().parse::<RateLimit>(), Ok(r), "{s:?}");
    }

    if let Ok(t) = s.parse::<RateTier>() {
        let w = t.windows();
        assert!((1..=4).contains(&w.len()), "{s:?} -> {t:?}");
        assert!(w.windows(2).all(|p| p[0].period_secs < p[1].period_secs), "{s:?} -> {t:?}");
        assert_eq!(t.to_string().parse::<RateTier>(), Ok(t), "{s:?}");
    }
});
