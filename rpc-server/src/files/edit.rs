//! `edit`'s string replacements, bounded before they are built.
//!
//! Each result's size follows from the match count (checked arithmetic) and is compared
//! with the limit before a byte is copied, so replacing a one-byte string by a long one
//! throughout a large file is refused instead of exhausting memory. Every edit applies to
//! the previous one's result, so the bound holds for the whole call, and the one buffer a
//! result is built in is allocated at its exact final size. Std only: the fuzz crate
//! compiles this file as it is.

/// Why an edit was refused; `edit` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EditError {
    EmptyOld {
        edit: usize,
    },
    NotFound {
        edit: usize,
    },
    /// More than one match without `replace_all`.
    Ambiguous {
        edit: usize,
        count: usize,
    },
    /// The result would be larger than the limit (or than memory can address).
    TooLarge {
        edit: usize,
    },
}

/// The length of a `len`-byte text after replacing `count` matches of `old_len` bytes by
/// `new_len` bytes; `None` when it does not fit in a `u64`.
pub(crate) fn replaced_len(
    len: usize,
    count: usize,
    old_len: usize,
    new_len: usize,
) -> Option<u64> {
    let len = u64::try_from(len).ok()?;
    let count = u64::try_from(count).ok()?;
    let removed = count.checked_mul(u64::try_from(old_len).ok()?)?;
    let added = count.checked_mul(u64::try_from(new_len).ok()?)?;
    len.checked_sub(removed)?.checked_add(added)
}

/// Applies `(old, new, replace_all)` edits in order to `text`. Returns the new text and
/// the number of replacements, or the first refusal; never builds a text over `limit`.
pub(crate) fn apply<'a>(
    mut text: String,
    edits: impl IntoIterator<Item = (&'a str, &'a str, bool)>,
    limit: u64,
) -> Result<(String, u64), EditError> {
    let mut replacements = 0u64;
    for (i, (old, new, all)) in edits.into_iter().enumerate() {
        let edit = i + 1;
        if old.is_empty() {
            return Err(EditError::EmptyOld { edit });
        }
        let count = text.matches(old).count();
        match (count, all) {
            (0, _) => return Err(EditError::NotFound { edit }),
            (1, _) | (_, true) => {}
            (count, false) => return Err(EditError::Ambiguous { edit, count }),
        }
        let len = replaced_len(text.len(), count, old.len(), new.len())
            .filter(|&n| n <= limit)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(EditError::TooLarge { edit })?;
        let mut out = String::with_capacity(len);
        let mut last = 0;
        for (at, _) in text.match_indices(old) {
            out.push_str(&text[last..at]);
            out.push_str(new);
            last = at + old.len();
        }
        out.push_str(&text[last..]);
        debug_assert_eq!(out.len(), len);
        text = out;
        replacements = replacements.saturating_add(count as u64);
    }
    Ok((text, replacements))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_before_building() {
        let text = "a".repeat(1 << 20);
        let new = "b".repeat(20_000);
        assert_eq!(
            apply(text, [("a", new.as_str(), true)], 16 << 20),
            Err(EditError::TooLarge { edit: 1 })
        );
        assert_eq!(replaced_len(usize::MAX, 2, 1, usize::MAX), None);
    }

    #[test]
    fn cumulative_and_exact() {
        let edits = [("x", "xx", true), ("xx", "xxxx", true)];
        assert_eq!(
            apply("xxxx".into(), edits, 16).map(|(t, n)| (t.len(), n)),
            Ok((16, 8))
        );
        assert_eq!(
            apply("xxxx".into(), edits, 15),
            Err(EditError::TooLarge { edit: 2 })
        );
        assert_eq!(
            apply("one two two".into(), [("two", "2", false)], 100),
            Err(EditError::Ambiguous { edit: 1, count: 2 })
        );
        assert_eq!(
            apply("one two".into(), [("two", "2", false)], 100),
            Ok(("one 2".into(), 1))
        );
    }
}
