//! `edit` with tolerance (SPEC §14): each edit is applied exactly when its `old_str` is in
//! the text (`edit.rs`, bounded and fuzzed as it always was); otherwise, without
//! `replace_all`, nexus-text locates the one place that matches but for whitespace or by
//! similarity at `fuzzy_threshold`, and that place is replaced — under the same size bound.
//! The unified diff of the whole call comes back with every result.

use super::edit::{self, EditError};
use nexus_text::fuzzy;
use nexus_wire::methods::{EditMatch, EditOp};
use nexus_wire::{ErrorCode, RpcError};

/// The edits' result.
#[derive(Debug)]
pub(super) struct Applied {
    pub text: String,
    pub replacements: u64,
    pub matches: Vec<EditMatch>,
    pub diff: String,
    pub diff_truncated: bool,
}

/// `fuzzy_threshold` checked: a number in [0.5, 1].
pub(super) fn threshold(given: Option<f64>) -> Result<f64, RpcError> {
    let t = given.unwrap_or(nexus_wire::methods::EditParams::DEFAULT_FUZZY_THRESHOLD);
    if !(0.5..=1.0).contains(&t) {
        return Err(RpcError::invalid_params(
            "fuzzy_threshold must be between 0.5 and 1 (1: exact matches only)",
        ));
    }
    Ok(t)
}

/// 1-based line of byte `at`.
fn line_at(text: &str, at: usize) -> usize {
    memchr::memchr_iter(b'\n', &text.as_bytes()[..at]).count() + 1
}

/// Applies `edits` to `original` in order; refusals name the edit (from 1) and `shown`.
pub(super) fn apply(
    original: &str,
    edits: &[EditOp],
    threshold: f64,
    max: u64,
    shown: &str,
) -> Result<Applied, RpcError> {
    let mut text = original.to_owned();
    let mut replacements = 0u64;
    let mut matches = Vec::with_capacity(edits.len());
    let too_large = |n: usize| {
        RpcError::new(
            ErrorCode::TooLarge,
            format!("edit {n}: the result would be larger than the {max} byte limit"),
        )
    };
    for (i, e) in edits.iter().enumerate() {
        let n = i + 1;
        let (old, new) = (e.old_str.as_str(), e.new_str.as_str());
        if old.is_empty() {
            return Err(RpcError::invalid_params(format!(
                "edit {n}: old_str is empty"
            )));
        }
        if let Some(at) = memchr::memmem::find(text.as_bytes(), old.as_bytes()) {
            let line = line_at(&text, at);
            let (out, count) = edit::apply(text, [(old, new, e.replace_all)], max).map_err(|err| match err {
                EditError::Ambiguous { count, .. } => RpcError::invalid_params(format!(
                    "edit {n}: old_str occurs {count} times; add surrounding context or set replace_all"
                )),
                EditError::TooLarge { .. } => too_large(n),
                EditError::EmptyOld { .. } | EditError::NotFound { .. } => RpcError::internal(),
            })?;
            text = out;
            replacements = replacements.saturating_add(count);
            matches.push(EditMatch {
                edit: n,
                how: fuzzy::How::Exact.as_str().into(),
                line,
                score: 1.0,
                count,
            });
            continue;
        }
        let not_found = |why: &str| {
            RpcError::invalid_params(format!("edit {n}: old_str not found in {shown}{why}"))
        };
        if e.replace_all {
            return Err(not_found(" (replace_all matches exactly only)"));
        }
        if threshold >= 1.0 {
            return Err(not_found(""));
        }
        let found = fuzzy::locate(&text, old, threshold).map_err(|err| match err {
            fuzzy::LocateError::Ambiguous { .. } => RpcError::invalid_params(format!(
                "edit {n}: old_str is not in {shown} exactly, and {err}"
            )),
            err => not_found(&format!(" exactly; {err}")),
        })?;
        let len = edit::replaced_len(text.len(), 1, found.end - found.start, new.len())
            .filter(|&l| l <= max)
            .ok_or_else(|| too_large(n))?;
        let mut out = String::with_capacity(usize::try_from(len).map_err(|_| too_large(n))?);
        out.push_str(&text[..found.start]);
        out.push_str(new);
        out.push_str(&text[found.end..]);
        text = out;
        replacements += 1;
        matches.push(EditMatch {
            edit: n,
            how: found.how.as_str().into(),
            line: found.line,
            // Two decimals: the score is for a reader, and floats should not look exact.
            score: (found.score * 100.0).floor() / 100.0,
            count: 1,
        });
    }
    let diff = nexus_text::diff::unified(original, &text, shown);
    Ok(Applied {
        text,
        replacements,
        matches,
        diff: diff.text,
        diff_truncated: diff.truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(old: &str, new: &str) -> EditOp {
        EditOp {
            old_str: old.into(),
            new_str: new.into(),
            replace_all: false,
        }
    }

    #[test]
    fn exact_then_tolerant() {
        let text = "a\n    let  x = 1;\nb\nc\n";
        let got = apply(
            text,
            &[op("b\n", "B\n"), op("let x = 1;", "let x = 2;")],
            0.85,
            1 << 20,
            "/f",
        )
        .expect("succeeds");
        assert_eq!(got.text, "a\n    let x = 2;\nB\nc\n");
        assert_eq!(got.replacements, 2);
        assert_eq!(
            got.matches
                .iter()
                .map(|m| (m.how.as_str(), m.line))
                .collect::<Vec<_>>(),
            [("exact", 3), ("whitespace", 2)]
        );
        assert!(
            got.diff.starts_with("--- a/f\n+++ b/f\n@@ -1,4 +1,4 @@\n"),
            "{}",
            got.diff
        );
        let e = apply(text, &[op("let x = 1;", "y")], 1.0, 1 << 20, "/f").expect_err("refused");
        assert_eq!(e.message, "edit 1: old_str not found in /f");
        let e = apply(text, &[op("zzz", "y")], 0.85, 1 << 20, "/f").expect_err("refused");
        assert!(
            e.message
                .starts_with("edit 1: old_str not found in /f exactly; "),
            "{}",
            e.message
        );
        // The size bound holds for tolerant matches too.
        let e =
            apply(text, &[op("let x = 1;", &"y".repeat(64))], 0.85, 32, "/f").expect_err("refused");
        assert_eq!(e.kind(), Some(ErrorCode::TooLarge));
        assert!(threshold(Some(0.2)).is_err() && threshold(Some(f64::NAN)).is_err());
        assert_eq!(threshold(None).expect("succeeds"), 0.85);
    }
}
