//! Method names, parameters and results of the rpc-server's `/api/nfs/{method}` API.
//!
//! Parameters reject unknown fields so a typo in a client is an error, not a silent default.

use crate::spec::{Permission, SubjectType, ZoneGrant};
use serde::{Deserialize, Serialize};

/// File methods, callable by any valid token within its zones.
pub const FILE_METHODS: &[&str] = &[
    "read", "write", "edit", "delete", "list", "stat", "mkdir", "rmdir", "rename", "glob", "grep",
    "whoami",
];

/// Admin methods, refused to non-admin tokens.
pub const ADMIN_METHODS: &[&str] = &[
    "hub_admin_token_create",
    "hub_admin_token_list",
    "hub_admin_token_revoke",
    "hub_admin_zone_create",
    "hub_admin_zone_list",
    "hub_admin_zone_delete",
    "hub_admin_zone_restore",
    "hub_admin_status",
];

/// Maps any method name to a bounded label: known names as themselves, the rest `other`.
pub fn method_label(method: &str) -> &'static str {
    FILE_METHODS
        .iter()
        .chain(ADMIN_METHODS)
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

fn default_root() -> String {
    "/".into()
}
fn default_limit() -> usize {
    100
}
fn yes() -> bool {
    true
}

/// How `content` is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    #[default]
    #[serde(rename = "utf-8", alias = "utf8")]
    Utf8,
    #[serde(rename = "base64")]
    Base64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    pub path: String,
    #[serde(default)]
    pub encoding: Encoding,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadResult {
    pub path: String,
    pub content: String,
    pub encoding: Encoding,
    pub size: u64,
    pub content_id: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WriteParams {
    pub path: String,
    pub content: String,
    #[serde(default)]
    pub encoding: Encoding,
    #[serde(default)]
    pub if_match: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteResult {
    pub path: String,
    pub size: u64,
    pub content_id: String,
    /// True when the file did not exist before; absent for a caller who cannot read
    /// the zone (the answer would tell what is there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EditOp {
    pub old_str: String,
    pub new_str: String,
    /// Replace every occurrence instead of requiring exactly one.
    #[serde(default)]
    pub replace_all: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EditParams {
    pub path: String,
    pub edits: Vec<EditOp>,
    #[serde(default)]
    pub if_match: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EditResult {
    pub path: String,
    pub size: u64,
    pub content_id: String,
    pub replacements: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PathParams {
    pub path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathResult {
    pub path: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    #[serde(default = "default_root")]
    pub path: String,
    #[serde(default)]
    pub recursive: bool,
    #[serde(default = "default_limit")]
    pub limit: usize,
    #[serde(default)]
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListItem {
    pub path: String,
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    /// RFC 3339, UTC.
    pub modified: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListResult {
    pub items: Vec<ListItem>,
    pub total: usize,
    pub has_more: bool,
    pub next_offset: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatResult {
    pub path: String,
    pub exists: bool,
    pub is_dir: bool,
    pub size: u64,
    pub modified: Option<String>,
    pub content_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MkdirParams {
    pub path: String,
    /// Create missing parents (default true).
    #[serde(default = "yes")]
    pub parents: bool,
    /// Succeed when the directory already exists (default true).
    #[serde(default = "yes")]
    pub exist_ok: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RmdirParams {
    pub path: String,
    #[serde(default)]
    pub recursive: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RenameParams {
    pub old_path: String,
    pub new_path: String,
    /// Replace an existing file at `new_path` (never a directory).
    #[serde(default)]
    pub overwrite: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenameResult {
    pub old_path: String,
    pub new_path: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GlobParams {
    pub pattern: String,
    #[serde(default = "default_root")]
    pub path: String,
    #[serde(default = "default_limit")]
    pub limit: usize,
    #[serde(default)]
    pub offset: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GlobResult {
    pub items: Vec<String>,
    pub total: usize,
    pub has_more: bool,
    pub next_offset: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrepParams {
    pub pattern: String,
    #[serde(default = "default_root")]
    pub path: String,
    #[serde(default)]
    pub ignore_case: bool,
    #[serde(default = "default_limit")]
    pub limit: usize,
    #[serde(default)]
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrepMatch {
    pub path: String,
    pub line: u64,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrepResult {
    pub items: Vec<GrepMatch>,
    pub total: usize,
    pub has_more: bool,
    pub next_offset: Option<usize>,
    /// True when a line longer than the server searches was clipped, so a match past the
    /// clip may be missing.
    pub truncated: bool,
    /// The scan stops once it has the page and one match more (for `has_more`): `total`
    /// then counts the matches seen so far and is a lower bound, not the whole count.
    #[serde(default)]
    pub total_is_lower_bound: bool,
    /// Bytes of files read to answer this page.
    #[serde(default)]
    pub scanned_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhoamiZone {
    pub zone: String,
    pub permission: Permission,
}

/// The registered subject a token is bound to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhoamiSubject {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: SubjectType,
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhoamiResult {
    pub key_id: String,
    pub name: String,
    pub user_id: String,
    pub subject_type: SubjectType,
    pub is_admin: bool,
    pub zones: Vec<WhoamiZone>,
    /// `single` (the zone is `/`) or `multi` (`/zone/<zone>/…`).
    pub path_mode: String,
    pub expires_at: Option<String>,
    /// Present when the token's `user_id` names a registered subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<WhoamiSubject>,
    /// The groups the caller is a member of, transitively (when its grants were compiled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The access mode of each zone in `zones`: `open` (the zone grant suffices) or
    /// `rebac` (a zone role or a path tuple is needed).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub zone_access: std::collections::BTreeMap<String, String>,
}

// ---- admin methods: parameters mirror the CLI flags, results its `--json` output ----

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCreateParams {
    pub name: String,
    /// `eng:rw,ops:r`
    #[serde(default)]
    pub zones: Option<String>,
    /// `team-*` or `team-*:r`, resolved against active zones at mint time.
    #[serde(default)]
    pub zones_glob: Option<String>,
    /// Single-zone alias.
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub admin: bool,
    /// `90d`, `12h`, `30m`
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub subject_type: Option<SubjectType>,
    /// `N/s`, `N/m`, `N/h`
    #[serde(default)]
    pub rate_limit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenCreated {
    pub key_id: String,
    /// The raw token: present only in this one response.
    pub token: String,
    pub name: String,
    pub admin: bool,
    pub zones: Vec<ZoneGrant>,
    pub user_id: String,
    pub subject_type: SubjectType,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub rate_limit: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenListParams {
    #[serde(default)]
    pub show_revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub key_id: String,
    pub name: String,
    pub user_id: String,
    pub subject_type: SubjectType,
    pub admin: bool,
    pub zones: Vec<ZoneGrant>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    pub rate_limit: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRevokeParams {
    /// A token name, a key id, or an unambiguous key id prefix (8+ hex digits).
    pub identifier: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneParams {
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneListParams {
    #[serde(default)]
    pub show_deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneInfo {
    pub zone_id: String,
    pub created_at: String,
    pub deleted_at: Option<String>,
    /// Active tokens holding this zone.
    pub tokens: u64,
    /// `active` or `deleted`.
    pub status: String,
    /// `open` (the zone grant suffices) or `rebac` (tuples decide, within the grant).
    #[serde(default = "open_access")]
    pub access_mode: String,
}

fn open_access() -> String {
    "open".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenCounts {
    pub active: u64,
    pub revoked: u64,
    pub expired: u64,
}

/// A restored zone, and how many tokens regained access with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneRestored {
    #[serde(flatten)]
    pub zone: ZoneInfo,
    /// Tokens that work again: not revoked, not expired, holding no other deleted zone.
    pub tokens_regaining_access: u64,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StatusParams {
    /// Add per-zone traffic, per-token last seen and rate-limit rejections.
    #[serde(default)]
    pub detail: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneTraffic {
    pub zone: String,
    /// Distinct verified clients over the last 5 minutes.
    pub clients: u64,
    pub qps_5m: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenSeen {
    pub key_id: String,
    pub name: Option<String>,
    pub last_seen: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusDetail {
    pub zones: Vec<ZoneTraffic>,
    pub tokens: Vec<TokenSeen>,
    /// Rate-limit rejections by tier (token, admin, custom, auth_failures).
    pub rate_limited: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubStatus {
    pub endpoint: Option<String>,
    pub profile: String,
    /// `ok`, `err` or `n/a` (no Postgres in this profile).
    pub postgres: String,
    /// `ok`, `err` or `n/a`.
    pub database: String,
    pub redis: String,
    pub tokens: Option<TokenCounts>,
    pub zones: Option<u64>,
    pub connections: Option<u64>,
    pub qps_5m: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<StatusDetail>,
    /// Registered users, agents and services (with `detail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjects: Option<u64>,
    /// Stored relationship tuples (with `detail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuples: Option<u64>,
}
