//! The bearer header parser (`nexus_wire::bearer::extract`).
//!
//! Input: the raw `Authorization` and `X-Nexus-API-Key` values, each present or not.
//! Invariants: no panic; an accepted token is non-empty, ASCII-graphic, at most
//! MAX_TOKEN_LEN bytes and taken verbatim from one of the headers; it round-trips through
//! `Bearer <t>` and the API-key header; Missing only when both headers are absent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nexus_wire::bearer::{BearerError, MAX_TOKEN_LEN, extract};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|input: (Option<&[u8]>, Option<&[u8]>)| {
    let (auth, key) = input;
    match extract(auth, key) {
        Ok(t) => {
            assert!(!t.is_empty(), "empty token accepted");
            assert!(t.len() <= MAX_TOKEN_LEN, "{}-byte token accepted", t.len());
            assert!(t.bytes().all(|b| b.is_ascii_graphic()), "{t:?}");
            assert!(
                auth.is_some_and(|a| contains(a, t.as_bytes()))
                    || key.is_some_and(|k| contains(k, t.as_bytes())),
                "{t:?} is in neither header"
            );
            let header = format!("Bearer {t}");
            assert_eq!(extract(Some(header.as_bytes()), None), Ok(t));
            assert_eq!(extract(None, Some(t.as_bytes())), Ok(t));
            assert_eq!(extract(Some(header.as_bytes()), Some(t.as_bytes())), Ok(t));
        }
        Err(BearerError::Missing) => assert!(auth.is_none() && key.is_none()),
        Err(BearerError::Malformed) => assert!(auth.is_some() || key.is_some()),
    }
});
