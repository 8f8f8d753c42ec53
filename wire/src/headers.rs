//! Every HTTP header name the two services and their clients agree on, in one place, as
//! lower-case `&'static str` (what `HeaderName::from_static` accepts).

/// Request: the caller's token, as an alternative to `Authorization: Bearer`.
pub const API_KEY: &str = "x-nexus-api-key";
/// Request: the caller's token, the seed's own header name (seed `002`); the same rules.
pub const X_API_KEY: &str = "x-api-key";
/// Every header a caller's credential may arrive in.
pub const CREDENTIALS: [&str; 3] = ["authorization", API_KEY, X_API_KEY];

/// Response (rpc-server → trusted forwarder): the verified caller's key id.
pub const KEY_ID: &str = "x-nexus-key-id";
/// Response: `true` or `false`, whether the verified caller holds an admin token.
pub const ADMIN: &str = "x-nexus-admin";
/// Response: the verified caller's user id, percent-encoded
/// ([`crate::identity::encode_header_text`]).
pub const USER_ID: &str = "x-nexus-user-id";
/// Response: the zone a call addressed (or the caller's zones, comma-separated; `*` for
/// every zone).
pub const ZONE: &str = "x-nexus-zone";

/// The headers in which the rpc-server names a verified caller. Only the rpc-server sets
/// them, on responses: both services strip them from every incoming request, so a client
/// can never pose as verified by sending them.
pub const IDENTITY: [&str; 4] = [KEY_ID, ADMIN, USER_ID, ZONE];

/// Request: count this `whoami` against the caller's rate limit. A `whoami` is free by
/// default (it is the verification step before a counted call); a forwarder that answers
/// a request with the `whoami` alone asks for it to count. Only ever more costly for the
/// caller, so it needs no trust.
pub const COUNT_REQUEST: &str = "x-nexus-count-request";

/// The MCP session id (streamable HTTP).
pub const SESSION: &str = "mcp-session-id";
/// A request's correlation id: set by the server when absent, echoed on the response.
pub const REQUEST_ID: &str = "x-request-id";
/// The client address chain a trusted proxy reports ([`crate::forwarded`]).
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// Response: the caller's rate limit (requests per window).
pub const RATE_LIMIT_LIMIT: &str = "x-ratelimit-limit";
/// Response: requests left in the current window.
pub const RATE_LIMIT_REMAINING: &str = "x-ratelimit-remaining";
/// Response: seconds until the budget is whole again.
pub const RATE_LIMIT_RESET: &str = "x-ratelimit-reset";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_lower_case_tokens() {
        let all = [
            API_KEY,
            X_API_KEY,
            KEY_ID,
            ADMIN,
            USER_ID,
            ZONE,
            COUNT_REQUEST,
            SESSION,
            REQUEST_ID,
            FORWARDED_FOR,
            RATE_LIMIT_LIMIT,
            RATE_LIMIT_REMAINING,
            RATE_LIMIT_RESET,
        ];
        for h in all {
            assert!(!h.is_empty());
            assert!(
                h.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{h}"
            );
        }
    }
}
