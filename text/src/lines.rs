//! Line arithmetic shared by the other modules: where each line starts, which line a byte
//! is on, and the `offset`/`limit` window of a text.

/// The byte offset where each line starts (line 1 at index 0). A text ending in `\n` has no
/// empty last line: the lines are what an editor numbers.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        if starts.len() > 1 && starts.last() == Some(&text.len()) {
            starts.pop();
        }
        Self {
            starts,
            len: text.len(),
        }
    }

    /// Number of lines (an empty text has one, empty, line).
    pub fn count(&self) -> usize {
        self.starts.len()
    }

    /// The 1-based line holding byte `offset` (the last line for the end of the text).
    pub fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }

    /// Byte where 1-based `line` starts; the text's end past the last line.
    pub fn start(&self, line: usize) -> usize {
        self.starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(self.len)
    }

    /// Byte just past 1-based `line`, its `\n` included.
    pub fn end(&self, line: usize) -> usize {
        self.start(line + 1)
    }
}

/// A window of whole lines of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSlice<'a> {
    pub text: &'a str,
    /// Lines in the whole text the window was taken from.
    pub total_lines: usize,
    /// 1-based number of the first line returned (in that text); 0 when none is.
    pub first_line: usize,
    /// 1-based number of the last line returned; 0 when none is.
    pub last_line: usize,
    /// More lines follow the window.
    pub has_more: bool,
}

/// The `limit` lines of `text` after skipping `offset` (no limit: to the end).
pub fn slice(text: &str, offset: usize, limit: Option<usize>) -> LineSlice<'_> {
    let idx = LineIndex::new(text);
    let total = if text.is_empty() { 0 } else { idx.count() };
    if offset >= total || limit == Some(0) {
        return LineSlice {
            text: "",
            total_lines: total,
            first_line: 0,
            last_line: 0,
            has_more: offset < total,
        };
    }
    let first = offset + 1;
    let last = limit.map_or(total, |l| total.min(offset.saturating_add(l)));
    LineSlice {
        text: &text[idx.start(first)..idx.end(last)],
        total_lines: total,
        first_line: first,
        last_line: last,
        has_more: last < total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_numbers() {
        let idx = LineIndex::new("a\nbb\n\nc");
        assert_eq!(idx.count(), 4);
        assert_eq!(
            [0, 1, 2, 4, 5, 6, 7].map(|o| idx.line_of(o)),
            [1, 1, 2, 2, 3, 4, 4]
        );
        assert_eq!((idx.start(2), idx.end(2)), (2, 5));
        assert_eq!(LineIndex::new("a\n").count(), 1);
        assert_eq!(LineIndex::new("").count(), 1);
    }

    #[test]
    fn windows() {
        let t = "1\n2\n3\n4\n";
        let s = slice(t, 1, Some(2));
        assert_eq!(
            (s.text, s.first_line, s.last_line, s.has_more),
            ("2\n3\n", 2, 3, true)
        );
        let s = slice(t, 2, None);
        assert_eq!((s.text, s.total_lines, s.has_more), ("3\n4\n", 4, false));
        let s = slice(t, 9, Some(1));
        assert_eq!((s.text, s.first_line, s.has_more), ("", 0, false));
        let s = slice("x", 0, Some(usize::MAX));
        assert_eq!((s.text, s.last_line), ("x", 1));
        assert_eq!(slice("", 0, None).total_lines, 0);
    }
}
