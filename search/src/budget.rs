//! A regex matcher that spends a metered budget, so a search can be stopped inside a line.
//!
//! A search spends *work units*: one per byte the lazy DFA steps over, the NFA's size for
//! every DFA state it has to build, and bytes × NFA size, charged up front, for a line the
//! lazy DFA gives up on (a state explosion, or a Unicode word boundary on non-ASCII text)
//! and the PikeVM searches instead: the PikeVM cannot be interrupted, so it only starts
//! when the whole charge fits. A charge that does not fit is refused, so a search never
//! spends more than its limit. The deadline and the cancellation flag are looked at every
//! [`CHECK_EVERY`] units.
//!
//! Depends on std and regex-automata alone: the fuzz crate compiles this file as it is.

use regex_automata::hybrid::dfa::{Cache as DfaCache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::nfa::thompson::pikevm::{Cache as PikeCache, PikeVM};
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Heap a compiled pattern may use (as the regex crate's `size_limit`).
const NFA_SIZE_LIMIT: usize = 1 << 20;
/// Memory of one grep's lazy DFA; past it the cache is cleared and reused.
const DFA_CACHE_BYTES: usize = 2 << 20;
/// Work units between two looks at the clock and the cancellation flag.
pub const CHECK_EVERY: u64 = 1 << 16;

/// Why a search stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The work budget is spent.
    Budget,
    /// The deadline passed.
    Deadline,
    /// Nobody waits for the answer any more.
    Cancelled,
}

/// Counts the work of one grep against its budget, deadline and cancellation flag.
#[derive(Debug)]
pub struct Meter {
    spent: u64,
    limit: u64,
    /// When `spent` passes this, look at the clock and the flag.
    next_look: u64,
    deadline: Option<Instant>,
    cancel: Option<Arc<AtomicBool>>,
}

impl Meter {
    /// A meter of `limit` units, with no deadline and no cancellation.
    pub fn new(limit: u64) -> Self {
        Self {
            spent: 0,
            limit,
            next_look: CHECK_EVERY,
            deadline: None,
            cancel: None,
        }
    }

    /// Adds a deadline and a flag that stops the search when raised.
    pub fn with_deadline(mut self, deadline: Instant, cancel: Arc<AtomicBool>) -> Self {
        self.deadline = Some(deadline);
        self.cancel = Some(cancel);
        self
    }

    /// Units spent so far; never more than the limit.
    // Read by the tests and by the `regex_budget` fuzz target, which compiles this file.
    #[allow(dead_code)]
    pub fn spent(&self) -> u64 {
        self.spent
    }

    /// Spends `n` units, or refuses (spending nothing) when they do not fit.
    #[inline]
    pub fn charge(&mut self, n: u64) -> Result<(), Stop> {
        let after = self.spent.saturating_add(n);
        if after > self.limit {
            return Err(Stop::Budget);
        }
        self.spent = after;
        if after >= self.next_look {
            self.next_look = after.saturating_add(CHECK_EVERY);
            self.look()?;
        }
        Ok(())
    }

    /// Checks the deadline and the cancellation flag now.
    pub fn look(&self) -> Result<(), Stop> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(Stop::Cancelled);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Stop::Deadline);
        }
        Ok(())
    }
}

/// A compiled pattern that answers "does this line match" under a [`Meter`].
#[derive(Debug)]
pub struct Program {
    /// None when the pattern has a feature the lazy DFA cannot run.
    dfa: Option<DFA>,
    pikevm: PikeVM,
    /// Units charged per DFA state built and per byte the PikeVM searches.
    state_cost: u64,
}

/// Scratch space of one [`Program`]; one per grep.
#[derive(Debug)]
pub struct ProgramCache {
    dfa: Option<DfaCache>,
    pikevm: PikeCache,
}

impl Program {
    /// Compiles `pattern` with the regex crate's syntax. The error is one readable line.
    pub fn new(pattern: &str, ignore_case: bool) -> Result<Self, String> {
        let nfa = thompson::Compiler::new()
            .syntax(syntax::Config::new().case_insensitive(ignore_case))
            .configure(thompson::Config::new().nfa_size_limit(Some(NFA_SIZE_LIMIT)))
            .build(pattern)
            .map_err(|e| {
                // The innermost error (the parser's) says what is wrong, on its last line.
                let mut inner: &dyn std::error::Error = &e;
                while let Some(s) = inner.source() {
                    inner = s;
                }
                let text = inner.to_string();
                text.lines().last().unwrap_or("").trim().to_owned()
            })?;
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::LeftmostFirst)
                    .cache_capacity(DFA_CACHE_BYTES)
                    .skip_cache_capacity_check(true)
                    // A DFA that keeps rebuilding states is slower than the PikeVM: give up.
                    .minimum_cache_clear_count(Some(3))
                    .minimum_bytes_per_state(Some(10))
                    // Unicode \b: run while the line is ASCII, hand over otherwise.
                    .unicode_word_boundary(true),
            )
            .build_from_nfa(nfa.clone())
            .ok();
        let state_cost = (nfa.states().len() as u64).max(1);
        let pikevm = PikeVM::new_from_nfa(nfa).map_err(|e| e.to_string())?;
        Ok(Self {
            dfa,
            pikevm,
            state_cost,
        })
    }

    /// The most one charge of a search can be: how far a search may overrun its budget's
    /// last check (a charge that does not fit is refused, so in practice it never does).
    // Read by the tests and by the `regex_budget` fuzz target, which compiles this file.
    #[allow(dead_code)]
    pub fn check_interval(&self) -> u64 {
        self.state_cost
    }

    pub fn create_cache(&self) -> ProgramCache {
        ProgramCache {
            dfa: self.dfa.as_ref().map(DFA::create_cache),
            pikevm: self.pikevm.create_cache(),
        }
    }

    /// Whether `line` contains a match, spending from `meter`.
    pub fn is_match(
        &self,
        cache: &mut ProgramCache,
        line: &[u8],
        meter: &mut Meter,
    ) -> Result<bool, Stop> {
        if let (Some(dfa), Some(dc)) = (&self.dfa, cache.dfa.as_mut())
            && let Some(found) = self.dfa_is_match(dfa, dc, line, meter)?
        {
            return Ok(found);
        }
        // The PikeVM's work is at most bytes × NFA states; it must fit before it starts.
        let bytes = line.len() as u64 + 1;
        meter.charge(bytes.saturating_mul(self.state_cost))?;
        Ok(self.pikevm.is_match(&mut cache.pikevm, Input::new(line)))
    }

    /// Walks the lazy DFA by hand so the meter is consulted at every byte. None: the DFA
    /// gave up (a quit byte, or a cache it keeps clearing); the PikeVM must decide.
    fn dfa_is_match(
        &self,
        dfa: &DFA,
        cache: &mut DfaCache,
        line: &[u8],
        meter: &mut Meter,
    ) -> Result<Option<bool>, Stop> {
        let input = Input::new(line);
        meter.charge(self.state_cost)?;
        cache.search_start(0);
        let Ok(mut sid) = dfa.start_state_forward(cache, &input) else {
            return Ok(None);
        };
        for (at, &byte) in line.iter().enumerate() {
            if sid.is_tagged() {
                if sid.is_match() {
                    cache.search_finish(at);
                    return Ok(Some(true));
                }
                if sid.is_dead() {
                    cache.search_finish(at);
                    return Ok(Some(false));
                }
                if sid.is_quit() {
                    return Ok(None);
                }
                meter.charge(self.state_cost)?;
                cache.search_update(at);
                let Ok(next) = dfa.next_state(cache, sid, byte) else {
                    return Ok(None);
                };
                sid = next;
                continue;
            }
            let next = dfa.next_state_untagged(cache, sid, byte);
            sid = if next.is_unknown() {
                // Building a state costs about the NFA's size.
                meter.charge(self.state_cost)?;
                cache.search_update(at);
                let Ok(next) = dfa.next_state(cache, sid, byte) else {
                    return Ok(None);
                };
                next
            } else {
                next
            };
            meter.charge(1)?;
        }
        cache.search_finish(line.len());
        if sid.is_match() {
            return Ok(Some(true));
        }
        if sid.is_dead() {
            return Ok(Some(false));
        }
        if sid.is_quit() {
            return Ok(None);
        }
        meter.charge(self.state_cost)?;
        match dfa.next_eoi_state(cache, sid) {
            Ok(eoi) if eoi.is_quit() => Ok(None),
            Ok(eoi) => Ok(Some(eoi.is_match())),
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn matches(pattern: &str, line: &str) -> Result<bool, Stop> {
        let p = Program::new(pattern, false).expect("compiles");
        let mut c = p.create_cache();
        p.is_match(&mut c, line.as_bytes(), &mut Meter::new(u64::MAX))
    }

    #[test]
    fn agrees_with_the_regex_crate() {
        let cases = [
            ("hello", "say hello"),
            ("^h.*o\\b", "hello there"),
            ("^h.*o\\b", "héllo"),
            ("\\bwörd\\b", "a wörd here"),
            ("x$", "abx"),
            ("a*", ""),
            ("^$", ""),
            ("(?i)straße", "STRASSE"),
            ("[0-9]{3}", "ab12c"),
        ];
        for (pat, hay) in cases {
            let want = regex::Regex::new(pat).expect("regex").is_match(hay);
            assert_eq!(matches(pat, hay), Ok(want), "{pat:?} on {hay:?}");
        }
    }

    /// `a`s and `b`s in no pattern (a periodic line would let the DFA settle).
    fn random_ab(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x & 1 == 0 { b'a' } else { b'b' }
            })
            .collect()
    }

    #[test]
    fn a_pathological_pattern_stops_at_its_budget() {
        let p = Program::new("(?:a|b)*a(?:a|b){3000}x", false).expect("compiles");
        let mut c = p.create_cache();
        let line = random_ab(1 << 20);
        let mut m = Meter::new(50_000_000);
        assert_eq!(p.is_match(&mut c, &line, &mut m), Err(Stop::Budget));
        assert!(m.spent() <= 50_000_000);
    }

    #[test]
    fn the_meter_sees_cancellation_within_one_interval() {
        let p = Program::new("zzz", false).expect("compiles");
        let mut c = p.create_cache();
        let flag = Arc::new(AtomicBool::new(true));
        let mut m =
            Meter::new(u64::MAX).with_deadline(Instant::now() + Duration::from_secs(3600), flag);
        let line = vec![b'a'; 4 * CHECK_EVERY as usize];
        assert_eq!(p.is_match(&mut c, &line, &mut m), Err(Stop::Cancelled));
        assert!(m.spent() <= CHECK_EVERY + p.check_interval());
    }
}
