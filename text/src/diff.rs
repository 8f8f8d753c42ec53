//! Unified diffs of an edit (`similar`'s Myers diff over lines). A diff is for a reader:
//! past a deadline the diff stays correct but may be longer than the shortest, and past a
//! size it is cut, saying so.

use similar::TextDiff;
use std::time::Duration;

/// Bytes of diff text returned; the rest is summarised in one line.
pub const MAX_DIFF: usize = 256 * 1024;
/// Time the diff may spend looking for the shortest script.
const DEADLINE: Duration = Duration::from_millis(300);
/// Lines of context around each change.
const CONTEXT: usize = 3;

/// Where the lines that differ are, with [`CONTEXT`] lines around them: the byte both
/// texts' middles start at, the lines before it, and each middle's end.
fn middle(old: &str, new: &str) -> (usize, usize, usize, usize) {
    let (a, b) = (old.as_bytes(), new.as_bytes());
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let max_tail = a.len().min(b.len()) - head;
    let tail = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(max_tail)
        .take_while(|(x, y)| x == y)
        .count();
    // Back to the start of the line the first difference is on, then CONTEXT lines more.
    let mut from = a[..head]
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |i| i + 1);
    for _ in 0..CONTEXT {
        if from == 0 {
            break;
        }
        from = a[..from - 1]
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |i| i + 1);
    }
    // On to the end of the line the last difference is on, then CONTEXT lines more.
    let forward = |text: &[u8], end: usize| {
        let mut end = text[end..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(text.len(), |i| end + i + 1);
        for _ in 0..CONTEXT {
            end = text[end..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(text.len(), |i| end + i + 1);
        }
        end
    };
    let old_end = forward(a, a.len() - tail);
    let new_end = forward(b, b.len() - tail);
    let skipped = memchr::memchr_iter(b'\n', &a[..from]).count();
    (from, skipped, old_end, new_end)
}

/// A hunk header (`-a,b +c,d @@…`, after its `@@ `) with `skipped` added to both starts.
fn renumber(rest: &str, skipped: usize) -> String {
    let mut out = String::from("@@ ");
    let (ranges, tail) = rest.split_once(" @@").unwrap_or((rest, ""));
    for (i, range) in ranges.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let (sign, nums) = range.split_at(range.len().min(1));
        let (start, count) = nums
            .split_once(',')
            .map_or((nums, None), |(s, c)| (s, Some(c)));
        match start.parse::<usize>() {
            Ok(n) => {
                out.push_str(sign);
                out.push_str(&(n + skipped).to_string());
                if let Some(c) = count {
                    out.push(',');
                    out.push_str(c);
                }
            }
            Err(_) => out.push_str(range),
        }
    }
    out.push_str(" @@");
    out.push_str(tail);
    out
}

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
    // An edit changes a small part of a large file: diff only the lines between the
    // common head and tail (with the context lines), then renumber the hunks.
    let (from, skipped, old_end, new_end) = middle(old, new);
    let diff = TextDiff::configure()
        .timeout(DEADLINE)
        .diff_lines(&old[from..old_end], &new[from..new_end]);
    let mut text = String::new();
    for line in diff
        .unified_diff()
        .context_radius(CONTEXT)
        .header(&format!("a{name}"), &format!("b{name}"))
        .to_string()
        .split_inclusive('\n')
    {
        match line.strip_prefix("@@ ") {
            Some(rest) if skipped > 0 => text.push_str(&renumber(rest, skipped)),
            _ => text.push_str(line),
        }
    }
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

    /// Diffing the middle only gives the diff of the whole, numbers included.
    #[test]
    fn middle_matches_the_whole() {
        let whole = |old: &str, new: &str| {
            TextDiff::from_lines(old, new)
                .unified_diff()
                .context_radius(CONTEXT)
                .header("a/f", "b/f")
                .to_string()
        };
        let base: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        let cases = [
            base.replace("line 20\n", "line twenty\n"),
            base.replace("line 1\n", ""),
            base.replace("line 40\n", "last\n"),
            base.replace("line 5\n", "five\n").replace("line 30\n", ""),
            format!("{base}tail without newline"),
            base.replace("line 39\nline 40\n", "line 39\nline 40"),
            base.replace("line 10\n", "line 10\nnew a\nnew b\n"),
            String::new(),
        ];
        for new in &cases {
            assert_eq!(unified(&base, new, "/f").text, whole(&base, new), "{new:?}");
            assert_eq!(unified(new, &base, "/f").text, whole(new, &base), "{new:?}");
        }
    }
}
