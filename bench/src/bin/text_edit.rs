//! What tolerant edit matching costs on a file at the size limit (16 MiB), each figure next
//! to an exact edit of the same file in the same run (nexus-text, in process, one core):
//! 1. exact: count the matches of old_str and build the replaced text (the exact path of
//!    `edit`), then the unified diff — the baseline;
//! 2. whitespace: old_str differs from the file's text only in whitespace (KMP over the
//!    collapsed stream), then the diff;
//! 3. fuzzy: a near miss of a 3-line block at the end of the file among 400,000 unrelated
//!    lines (histogram bound over every window, one scored), then the diff;
//! 4. worst case, windows: every line holds old_str's characters in another order, so
//!    every window passes the bound and fails the score: the window budget ends it;
//! 5. worst case, words: a 300-line old_str against a region of 20,000 lines that all pass
//!    the bound and score just under it: the word budget of the bit-parallel LCS ends it;
//! 6. worst case, uniform: the same old_str against a whole file of such lines: more
//!    windows pass the bound than are kept, refused before any is scored.
//!
//! Usage: text_edit [--quick]   (run it with bench/run, or `cargo run --release -p nexus-bench --bin text_edit`)

use nexus_bench::{Sample, report, summarize};
use nexus_text::{diff, fuzzy};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SIZE: usize = 16 << 20;

/// `lines` repeated (numbered, so no two are equal) up to `SIZE` bytes, then `tail`.
fn file(line: impl Fn(usize) -> String, tail: &str) -> String {
    let mut text = String::with_capacity(SIZE + tail.len());
    let mut i = 0;
    while text.len() + tail.len() < SIZE {
        text.push_str(&line(i));
        text.push('\n');
        i += 1;
    }
    text.push_str(tail);
    text
}

fn time(name: &str, iters: usize, mut op: impl FnMut()) -> Sample {
    op();
    let mut times = Vec::with_capacity(iters);
    let start = Instant::now();
    for _ in 0..iters {
        let t = Instant::now();
        op();
        times.push(t.elapsed());
    }
    summarize(name, times, start.elapsed())
}

fn exact(text: &str, old: &str, new: &str) -> String {
    let count = text.matches(old).count();
    assert_eq!(count, 1);
    text.replacen(old, new, 1)
}

fn splice(text: &str, f: &fuzzy::Found, new: &str) -> String {
    let mut out = String::with_capacity(text.len() + new.len());
    out.push_str(&text[..f.start]);
    out.push_str(new);
    out.push_str(&text[f.end..]);
    out
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let iters = if quick { 3 } else { 9 };
    let block = "fn settle(account: &mut Account, amount: u64) -> Result<(), Error> {\n    account.balance = account.balance.checked_sub(amount).ok_or(Error::Funds)?;\n    Ok(())\n}\n";
    let text = file(
        |i| format!("let value_{i} = compute(input_{i}, {i});"),
        block,
    );
    let new = "fn settle() {}\n";
    println!("file: {} bytes, {} lines", text.len(), text.lines().count());

    let base = time("exact edit + diff (baseline)", iters, || {
        let out = exact(&text, block, new);
        black_box(diff::unified(&text, &out, "/f.rs"));
    });
    let drifted = block.replace("    ", "\t").replace(" = ", "  =  ");
    let ws = time("whitespace-drift edit + diff", iters, || {
        let f = fuzzy::locate(&text, &drifted, 0.85).expect("whitespace match");
        assert_eq!(f.how, fuzzy::How::Whitespace);
        black_box(diff::unified(&text, &splice(&text, &f, new), "/f.rs"));
    });
    let near = block
        .replace("checked_sub", "checked_subtract")
        .replace("Funds", "Fund");
    let fz = time("fuzzy near-miss edit + diff", iters, || {
        let f = fuzzy::locate(&text, &near, 0.85).expect("fuzzy match");
        assert_eq!(f.how, fuzzy::How::Fuzzy);
        black_box(diff::unified(&text, &splice(&text, &f, new), "/f.rs"));
    });

    // Worst cases: each line an anagram of old_str (every bound passes, every score fails).
    let needle = "total_balance = ledger.sum(entries);";
    let scrambled: String = needle.chars().rev().collect();
    let anagrams = file(|_| scrambled.clone(), "");
    let windows = time("worst case: window budget (refused)", iters, || {
        let r = fuzzy::locate(&anagrams, needle, 0.85);
        assert!(matches!(r, Err(fuzzy::LocateError::Budget { .. })), "{r:?}");
    });
    let long_line = "x = compute(alpha, beta, gamma, delta);";
    let long_needle = format!("{long_line}\n").repeat(300);
    let near_line = long_line
        .replace("alpha", "ahpla")
        .replace("gamma", "ammag")
        .replace("delta", "atled");
    let region = file(
        |i| {
            if (200_000..220_000).contains(&i) {
                near_line.clone()
            } else {
                format!("let value_{i} = compute(input_{i}, {i});")
            }
        },
        "",
    );
    let words = time("worst case: word budget (refused)", iters, || {
        let r = fuzzy::locate(&region, &long_needle, 0.85);
        assert!(matches!(r, Err(fuzzy::LocateError::Budget { .. })), "{r:?}");
    });
    let uniform = file(|_| near_line.clone(), "");
    let cands = time("worst case: uniform file (refused)", iters, || {
        let r = fuzzy::locate(&uniform, &long_needle, 0.85);
        assert!(matches!(r, Err(fuzzy::LocateError::Budget { .. })), "{r:?}");
    });
    report(&base, &[&ws, &fz, &windows, &words, &cands]);
    let worst = [&ws, &fz, &windows, &words, &cands]
        .iter()
        .map(|s| s.p50)
        .max()
        .unwrap_or(Duration::ZERO);
    println!(
        "worst case: {:.0} ms, {:.1}× the exact edit",
        worst.as_secs_f64() * 1e3,
        worst.as_secs_f64() / base.p50.as_secs_f64().max(f64::EPSILON)
    );
}
