//! The metered regex matcher grep uses (`nexus_search::budget`): a random pattern
//! and haystack under a tiny work budget.
//!
//! Input: byte 0 picks the budget, byte 1 the flags (bit 0: ignore case), byte 2 the
//! pattern's length; then the pattern, then the haystack (both with invalid UTF-8
//! replaced), searched line by line as grep does, all lines on one meter.
//! Invariants: no panic; the meter never passes the budget by more than one check interval
//! (the largest single charge); a search stops only for the budget (no deadline or flag
//! is set here); every line searched to the end agrees with the regex crate.
#![no_main]

use budget::{Meter, Program, Stop};
use libfuzzer_sys::fuzz_target;

// The matcher's own source, compiled here rather than through the rpc-server crate (which
// would build the whole server stack with sanitizers). It depends on std and
// regex-automata alone.
#[path = "../../search/src/budget.rs"]
#[allow(dead_code)]
mod budget;

const BUDGETS: [u64; 8] = [0, 1, 16, 256, 4096, 65_536, 1 << 20, 1 << 24];

fuzz_target!(|data: &[u8]| {
    let [sel, flags, len, rest @ ..] = data else {
        return;
    };
    let budget = BUDGETS[usize::from(*sel) % BUDGETS.len()];
    let ignore_case = flags & 1 == 1;
    let (pattern, haystack) = rest.split_at(usize::from(*len).min(rest.len()));
    let pattern = String::from_utf8_lossy(pattern);
    let haystack = String::from_utf8_lossy(haystack);

    let Ok(program) = Program::new(&pattern, ignore_case) else {
        return;
    };
    let reference = regex::RegexBuilder::new(&pattern)
        .case_insensitive(ignore_case)
        .size_limit(1 << 20)
        .build()
        .ok();
    let mut cache = program.create_cache();
    let mut meter = Meter::new(budget);
    for line in haystack.lines() {
        let before = meter.spent();
        let outcome = program.is_match(&mut cache, line.as_bytes(), &mut meter);
        assert!(
            meter.spent() <= budget.saturating_add(program.check_interval()),
            "spent {} of a {budget} budget (interval {})",
            meter.spent(),
            program.check_interval()
        );
        assert!(meter.spent() >= before, "the meter went backwards");
        match outcome {
            Ok(found) => {
                if let Some(re) = &reference {
                    assert_eq!(
                        found,
                        re.is_match(line),
                        "pattern {pattern:?} (ignore case {ignore_case}) on {line:?}"
                    );
                }
            }
            Err(Stop::Budget) => break,
            Err(other) => panic!("stopped for {other:?} with no deadline or flag"),
        }
    }
});
