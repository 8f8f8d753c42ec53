//! Pure text logic behind the markdown-aware and tolerant file tools (SPEC §14): markdown
//! structure, sections, blocks and front matter ([`markdown`]); locating an edit's text
//! when it is not there exactly ([`fuzzy`]); unified diffs ([`diff`]); line windows
//! ([`lines`]). No I/O and no async: the rpc-server reads and writes, this crate only looks
//! at text, and every operation is bounded in time and memory whatever the input.

pub mod diff;
pub mod fuzzy;
pub mod lines;
pub mod markdown;

/// A rough token count for a text: about four characters per token, as the usual BPE
/// tokenizers come out on English prose and code. Enough to decide what to read whole.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}
