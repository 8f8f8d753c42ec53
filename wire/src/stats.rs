//! Redis channel and key names shared by the frontend (which writes traffic figures and
//! audit events) and the rpc-server and CLI (which read them for `hub status`). Keys name
//! key ids and zones, never tokens.

/// Pub/sub channel of audit events (one JSON object per MCP request).
pub const AUDIT_CHANNEL: &str = "nexus:audit:mcp";
/// Redis pub/sub channel of the control plane's `admin.*` and `rebac.*` audit events.
pub const ADMIN_AUDIT_CHANNEL: &str = "nexus:audit:admin";
/// Capped stream holding the same events, so a consumer that was down can catch up.
pub const AUDIT_STREAM: &str = "nexus:audit:mcp:stream";
/// Approximate length the audit stream is capped at.
pub const AUDIT_STREAM_MAXLEN: u64 = 100_000;
/// Minutes of traffic figures kept.
pub const WINDOW_MINUTES: i64 = 5;
/// Counter keys live a little longer than the window they serve.
pub const KEY_TTL_SECS: i64 = 600;

/// Requests verified in minute `m` (minutes since the epoch).
pub fn requests_key(m: i64) -> String {
    format!("nexus:stats:req:{m}")
}

/// HyperLogLog of key ids seen in minute `m`.
pub fn clients_key(m: i64) -> String {
    format!("nexus:stats:clients:{m}")
}

pub fn zone_requests_key(zone: &str, m: i64) -> String {
    format!("nexus:stats:zone:{zone}:req:{m}")
}

pub fn zone_clients_key(zone: &str, m: i64) -> String {
    format!("nexus:stats:zone:{zone}:clients:{m}")
}

/// Hash key id → last time (RFC 3339) it was seen.
pub const LAST_SEEN_KEY: &str = "nexus:stats:last_seen";
/// Hash of zones seen in the window (zone → last minute seen), to enumerate per-zone keys.
pub const ZONES_SEEN_KEY: &str = "nexus:stats:zones";

/// Rate-limit rejections by tier (a hash: tier → count).
pub const RATE_LIMITED_KEY: &str = "nexus:stats:ratelimited";

/// The current minute since the epoch.
pub fn minute(now_secs: i64) -> i64 {
    now_secs.div_euclid(60)
}
