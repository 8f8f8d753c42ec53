//! Unified diffs of an edit (`similar`'s Myers diff over lines). A diff is for a reader:
//! past a deadline the diff stays correct but may be longer than the shortest, and past a
//! size it is cut, saying so.

use similar::TextDiff;
use std::time::Duration;

/// Bytes of diff text returned; the rest is summarised in one line.
pub const MAX_DIFF: usize = 256 * 1024;
/// Time the diff may spend looking for the shortest script.
const DEADLINE: Duration = Duration::from_millis(300);

/// A unified diff and whether it was cut at [`MAX_DIFF`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    pub text: String,
    pub truncated: bool,
}

/// The unified diff (3 lines of context) from `old` to `new`, headed `a/<name>` and
/// `b/<name>`; empty when they are equal.
pub fn unified(old: &str, new: &str, name: &str) -> Diff {
    if old == new {
        return Diff {
            text: String::new(),
            truncated: false,
        };
    }
    let diff = TextDiff::configure()
        .timeout(DEADLINE)
        .diff_lines(old, new);
    let mut text = diff
        .unified_diff()
        .context_radius(3)
        .header(&format!("a{name}"), &format!("b{name}"))
        .to_string();
    let truncated = text.len() > MAX_DIFF;
    if truncated {
        let mut cut = MAX_DIFF;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        // Whole lines only.
        cut = text[..cut].rfind('\n').map_or(0, |i| i + 1);
        let rest = text.len() - cut;
        text.truncate(cut);
        text.push_str(&format!("… diff cut here: {rest} more bytes\n"));
    }
    Diff { text, truncated }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_and_cut() {
        let d = unified("a\nb\nc\n", "a\nB\nc\n", "/x.md");
        assert_eq!(
            d.text,
            "--- a/x.md\n+++ b/x.md\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
        );
        assert!(!d.truncated);
        assert_eq!(unified("same", "same", "/x").text, "");
        let old = "line\n".repeat(100_000);
        let new = "LINE\n".repeat(100_000);
        let d = unified(&old, &new, "/big");
        assert!(d.truncated && d.text.len() <= MAX_DIFF + 64);
        assert!(d.text.ends_with("more bytes\n"));
    }
}
