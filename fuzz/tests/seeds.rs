//! Every `bearer_header` seed decodes, through the same `arbitrary` the target uses, to the
//! header pair its file name promises: a seed that decodes to something else starts the
//! fuzzer from the wrong place without anyone noticing.
//!
//! Run with `cargo test --manifest-path fuzz/Cargo.toml --test seeds` (stable is enough).

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use std::path::Path;

/// The target's input type (`fuzz_targets/bearer_header.rs`).
type BearerInput<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// A seed's file name and the (`Authorization`, `X-Nexus-API-Key`) it stands for.
type Seed = (&'static str, Option<&'static [u8]>, Option<&'static [u8]>);

const BEARER_SEEDS: &[Seed] = &[
    ("bearer", Some(b"Bearer sk-abc"), None),
    ("api_key", None, Some(b"sk-abc")),
    ("both", Some(b"Bearer sk-abc"), Some(b"sk-abc")),
    ("missing", None, None),
];

/// Decodes as `fuzz_target!` does: inputs shorter than the size hint never reach the body.
fn decode(bytes: &[u8]) -> Option<BearerInput<'_>> {
    if bytes.len() < BearerInput::size_hint(0).0 {
        return None;
    }
    BearerInput::arbitrary_take_rest(Unstructured::new(bytes)).ok()
}

#[test]
fn bearer_header_seeds_decode_to_their_names() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/bearer_header");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("seed dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<&str> = BEARER_SEEDS.iter().map(|(n, _, _)| *n).collect();
    want.sort_unstable();
    assert_eq!(
        names, want,
        "every seed file is named in BEARER_SEEDS and vice versa"
    );
    for (name, auth, key) in BEARER_SEEDS {
        let bytes = std::fs::read(dir.join(name)).expect("seed");
        assert_eq!(
            decode(&bytes),
            Some((*auth, *key)),
            "seed {name} ({bytes:02x?}) decodes to something else"
        );
    }
}
