//! `edit`'s bounded replacements (`rpc_server::files::edit`): random content, old and new
//! strings, `replace_all` flags and size limit.
//!
//! Input: `[cap lo, cap hi, content repeat, replace_all bits]`, then segments split on 0xFF
//! (never in UTF-8): the content, then (old, new) pairs, each new segment's first byte a
//! repeat count for the rest, so short inputs ask for large results. The limit is the
//! content's length plus the 16-bit cap.
//! Invariants: no panic; no allocation while editing is larger than the limit; the result
//! (or refusal) is the naive one — sequential `str::replace` with the sizes worked out in
//! u128 — whenever the naive result fits the limit, and "too large" exactly when not.
#![no_main]

use edit::{EditError, apply};
use libfuzzer_sys::fuzz_target;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[path = "../../rpc-server/src/files/edit.rs"]
#[allow(dead_code)]
mod edit;

/// The system allocator, recording the largest single allocation while `MEASURING` is set.
struct Largest;

static MEASURING: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if MEASURING.load(Ordering::Relaxed) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if MEASURING.load(Ordering::Relaxed) {
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

const MAX_EDITS: usize = 8;

/// The edits applied one by one the obvious way, sizes checked in u128 before building.
fn naive(
    mut text: String,
    edits: &[(String, String, bool)],
    limit: u64,
) -> Result<(String, u64), EditError> {
    let mut total = 0u64;
    for (i, (old, new, all)) in edits.iter().enumerate() {
        let edit = i + 1;
        if old.is_empty() {
            return Err(EditError::EmptyOld { edit });
        }
        let count = text.matches(old.as_str()).count();
        if count == 0 {
            return Err(EditError::NotFound { edit });
        }
        if count > 1 && !all {
            return Err(EditError::Ambiguous { edit, count });
        }
        let size =
            text.len() as u128 - (count * old.len()) as u128 + count as u128 * new.len() as u128;
        if size > u128::from(limit) {
            return Err(EditError::TooLarge { edit });
        }
        text = text.replace(old.as_str(), new);
        total += count as u64;
    }
    Ok((text, total))
}

fuzz_target!(|data: &[u8]| {
    let [cap_lo, cap_hi, content_rep, flags, rest @ ..] = data else {
        return;
    };
    let mut segments = rest.split(|&b| b == 0xFF);
    let content = String::from_utf8_lossy(segments.next().unwrap_or_default())
        .repeat(1 + usize::from(*content_rep) % 64);
    let mut edits = Vec::new();
    while let (Some(old), Some(new)) = (segments.next(), segments.next()) {
        if edits.len() == MAX_EDITS {
            break;
        }
        let (rep, new) = new.split_first().map_or((1, &[][..]), |(r, n)| (*r, n));
        let all = flags >> edits.len() & 1 == 1;
        edits.push((
            String::from_utf8_lossy(old).into_owned(),
            String::from_utf8_lossy(new).repeat(usize::from(rep.max(1))),
            all,
        ));
    }
    if edits.is_empty() {
        return;
    }
    let limit = content.len() as u64 + u64::from(u16::from_le_bytes([*cap_lo, *cap_hi]));

    let input = content.clone();
    let pairs: Vec<(&str, &str, bool)> = edits
        .iter()
        .map(|(o, n, a)| (o.as_str(), n.as_str(), *a))
        .collect();
    LARGEST.store(0, Ordering::Relaxed);
    MEASURING.store(true, Ordering::Relaxed);
    let got = apply(input, pairs.iter().copied(), limit);
    MEASURING.store(false, Ordering::Relaxed);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest as u64 <= limit,
        "allocated {largest} bytes with a limit of {limit}"
    );

    let want = naive(content, &edits, limit);
    assert_eq!(got, want);
    if let Ok((text, _)) = &got {
        assert!(text.len() as u64 <= limit);
    }
});
