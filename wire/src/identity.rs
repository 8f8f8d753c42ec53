//! What the rpc-server tells a trusted forwarder (the MCP frontend) about a verified
//! caller, in response headers, and what the forwarder may ask of it in request headers.
//!
//! Header values are bytes that many stacks read only as visible ASCII, so free text (a
//! user id may be any UTF-8) travels percent-encoded and is decoded on the other side.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Request header: count this `whoami` against the caller's rate limit.
pub use crate::headers::COUNT_REQUEST as COUNT_REQUEST_HEADER;

/// Left as they are: what ids are usually made of; `%` and everything else is escaped.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'@')
    .remove(b'+')
    .remove(b':');

/// `text` as a header value that is visible ASCII whatever `text` holds.
pub fn encode_header_text(text: &str) -> String {
    utf8_percent_encode(text, KEEP).to_string()
}

/// The text [`encode_header_text`] encoded; `None` if it does not decode to UTF-8.
pub fn decode_header_text(value: &str) -> Option<String> {
    percent_decode_str(value)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_any_text_as_visible_ascii() {
        for t in ["alice", "jörg@例え.jp", "50% off", "a b\tc", "", "x%41y"] {
            let e = encode_header_text(t);
            assert!(e.bytes().all(|b| b.is_ascii_graphic()), "{e}");
            assert_eq!(decode_header_text(&e).as_deref(), Some(t));
        }
        assert_eq!(
            encode_header_text("user-1@example.com"),
            "user-1@example.com"
        );
        assert_eq!(decode_header_text("%FF"), None);
    }
}
