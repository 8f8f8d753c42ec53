//! Method names, parameters and results of the rpc-server's `/api/nfs/{method}` API.
//!
//! Parameters reject unknown fields so a typo in a client is an error, not a silent default.
//! With the `schema` feature each parameter type also derives its JSON Schema (what the MCP
//! tools advertise): the doc comments on its fields are the descriptions agents read.

use crate::spec::{Permission, SubjectType, ZoneGrant};
use serde::{Deserialize, Serialize};

/// Where every method is served: `POST {RPC_PREFIX}{method}`.
pub const RPC_PREFIX: &str = "/api/nfs/";

/// Which group a method belongs to, which decides who may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// File methods and `whoami`: any valid token, within its zones.
    File,
    /// Admin methods, refused to non-admin tokens.
    Admin,
    /// ReBAC methods: admin tokens, or zone admins (`admin` on `zone:Z`, within the
    /// token's zones) for tuples whose object is in Z.
    Rebac,
}

/// Why a name is not a [`Method`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown method")]
pub struct UnknownMethod;

/// One arm per method: its variant, its wire name and its kind. The names, the paths and
/// the parser are all generated from this one list so they cannot drift apart.
macro_rules! methods {
    ($($var:ident = $name:literal, $kind:ident;)*) => {
        /// A JSON-RPC method the rpc-server serves. Names arriving from outside are parsed
        /// into this once, at the edge; everything past it matches on the variant.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Method {
            $($var,)*
        }

        impl Method {
            /// Every method, in declaration order.
            pub const ALL: &'static [Method] = &[$(Method::$var,)*];

            /// The wire name (`read`, `hub_admin_token_create`, …).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Method::$var => $name,)*
                }
            }

            /// `POST` path of the method: [`RPC_PREFIX`] followed by its name.
            pub const fn rpc_path(self) -> &'static str {
                match self {
                    $(Method::$var => concat!("/api/nfs/", $name),)*
                }
            }

            pub const fn kind(self) -> MethodKind {
                match self {
                    $(Method::$var => MethodKind::$kind,)*
                }
            }

            /// The method named `name` (exact, case-sensitive).
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(Method::$var),)*
                    _ => None,
                }
            }
        }
    };
}

methods! {
    Read = "read", File;
    Write = "write", File;
    Edit = "edit", File;
    Delete = "delete", File;
    List = "list", File;
    Stat = "stat", File;
    Mkdir = "mkdir", File;
    Rmdir = "rmdir", File;
    Rename = "rename", File;
    Glob = "glob", File;
    Grep = "grep", File;
    Search = "search", File;
    Whoami = "whoami", File;
    MdStructure = "md_structure", File;
    TokenCreate = "hub_admin_token_create", Admin;
    TokenList = "hub_admin_token_list", Admin;
    TokenRevoke = "hub_admin_token_revoke", Admin;
    ZoneCreate = "hub_admin_zone_create", Admin;
    ZoneList = "hub_admin_zone_list", Admin;
    ZoneDelete = "hub_admin_zone_delete", Admin;
    ZoneRestore = "hub_admin_zone_restore", Admin;
    Status = "hub_admin_status", Admin;
    CreateUser = "admin_create_user", Admin;
    ListUsers = "admin_list_users", Admin;
    DeleteUser = "admin_delete_user", Admin;
    SetUserState = "admin_set_user_state", Admin;
    CreateAgentKey = "admin_create_agent_key", Admin;
    OAuthClientList = "hub_admin_oauth_client_list", Admin;
    OAuthClientRevoke = "hub_admin_oauth_client_revoke", Admin;
    RebacCreate = "rebac_create", Rebac;
    RebacDelete = "rebac_delete", Rebac;
    RebacCheck = "rebac_check", Rebac;
    RebacListTuples = "rebac_list_tuples", Rebac;
    RebacExpand = "rebac_expand", Rebac;
}

impl Method {
    /// Refused to non-admin tokens.
    pub const fn is_admin(self) -> bool {
        matches!(self.kind(), MethodKind::Admin)
    }

    /// Admin-only or ReBAC: a method that changes or reveals who may do what.
    pub const fn is_control(self) -> bool {
        matches!(self.kind(), MethodKind::Admin | MethodKind::Rebac)
    }

    /// A bounded metrics label: the wire name.
    pub const fn label(self) -> &'static str {
        self.as_str()
    }

    /// The wire names of the methods of `kind`, in declaration order; `N` must be their
    /// count (a wrong count fails at compile time where this builds a constant).
    const fn names_of<const N: usize>(kind: MethodKind) -> [&'static str; N] {
        let mut out = [""; N];
        let (mut i, mut j) = (0, 0);
        while i < Self::ALL.len() {
            let m = Self::ALL[i];
            if m.kind() as u8 == kind as u8 {
                out[j] = m.as_str();
                j += 1;
            }
            i += 1;
        }
        assert!(j == N, "wrong method count");
        out
    }
}

impl Method {
    /// The method a request path names (`/api/nfs/read` → `Read`); `None` for any other
    /// path.
    pub fn from_path(path: &str) -> Option<Self> {
        path.strip_prefix(RPC_PREFIX).and_then(Self::parse)
    }
}

/// As its wire name.
impl Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "unknown method {:?}",
                crate::jsonrpc::printable(&name)
            ))
        })
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Method {
    type Err = UnknownMethod;
    fn from_str(s: &str) -> Result<Self, UnknownMethod> {
        Self::parse(s).ok_or(UnknownMethod)
    }
}

/// `POST` path of `m` (a static string: no allocation per call).
pub const fn rpc_path(m: Method) -> &'static str {
    m.rpc_path()
}

/// The names of the file methods (and `whoami`), for code that holds method names as text.
pub const FILE_METHODS: &[&str] = &Method::names_of::<14>(MethodKind::File);
/// The names of the admin methods.
pub const ADMIN_METHODS: &[&str] = &Method::names_of::<15>(MethodKind::Admin);
/// The names of the ReBAC methods.
pub const REBAC_METHODS: &[&str] = &Method::names_of::<5>(MethodKind::Rebac);

/// Maps any method name (text from outside) to a bounded label: known names as
/// themselves, the rest `other`.
pub fn method_label(method: &str) -> &'static str {
    Method::parse(method).map_or("other", Method::label)
}

/// Descriptions shared by many fields of the parameter schemas.
#[cfg(feature = "schema")]
mod doc {
    pub(super) const PATH: &str = "Path inside your zones. With one zone it is '/'-rooted (e.g. /notes/a.md); \
with several zones use /zone/<zone>/… (list '/' to see them).";
    pub(super) const SUBJECT_ID: &str = "Subject id: [a-z0-9][a-z0-9._@-]{0,127}";
    pub(super) const SUBJECT: &str = "user:<id>, agent:<id>, service:<id>, token:<key_id>, or group:<g>#member (group:<g> means its members)";
    pub(super) const RELATION: &str =
        "member (group), reader|writer|admin (zone), can_read|can_write (file), admin (namespace)";
    pub(super) const OBJECT: &str =
        "group:<g>, zone:<z>, namespace:default, or file:/zone/<z>/<path> (file:/<path> with zone)";
    pub(super) const OBJECT_ZONE: &str = "The zone a file:/<path> object is in";
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Encoding {
    #[default]
    #[serde(rename = "utf-8", alias = "utf8")]
    Utf8,
    #[serde(rename = "base64")]
    Base64,
}

/// The markdown blocks a read can be narrowed to: code (fenced and indented code blocks,
/// fences included) or table (pipe tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum BlockType {
    Code,
    Table,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReadParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::PATH))]
    pub path: String,
    /// utf-8 for text; base64 for binary files (base64 takes no section, block_type, offset or limit)
    #[serde(default)]
    pub encoding: Encoding,
    /// Markdown only: a heading path such as "Install/Linux" (titles joined by '/', the first anywhere, each next one below the previous) returns that heading's whole section; "*" returns the outline (headings with lines and token estimates); "frontmatter" returns the front matter without its fences. A section that is not there is an error listing headings, never the whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// Markdown only: return just the code blocks (fences included) or the tables, of the section if one is given, else of the file, separated by blank lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_type: Option<BlockType>,
    /// Lines to skip before the first line returned (0 = from the start), counted in what section/block_type selected; page with next_offset
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
    /// Most lines to return (no limit: to the end)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl ReadParams {
    /// Whether the read selects part of the text (lines, a section or blocks) rather than
    /// the whole file.
    pub fn is_partial(&self) -> bool {
        self.section.is_some()
            || self.block_type.is_some()
            || self.offset.is_some()
            || self.limit.is_some()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadResult {
    pub path: String,
    pub content: String,
    pub encoding: Encoding,
    /// The whole file's size and content id (usable as if_match), whatever part was read.
    pub size: u64,
    pub content_id: String,
    /// For partial reads: lines in what section/block_type selected (the whole file if
    /// neither), the 1-based first and last line of `content` in the file (0 when none
    /// is), and where the next page starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_lines: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_line: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_line: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_more: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MdStructureParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::PATH))]
    pub path: String,
}

/// Lines of a part of a markdown document, 1-based and inclusive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MdFrontmatter {
    /// `yaml` (`---` fences) or `toml` (`+++`)
    pub format: String,
    pub start_line: usize,
    pub end_line: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MdHeading {
    pub level: u8,
    pub title: String,
    /// The heading path to pass as `section` to read
    pub path: String,
    /// The whole section's lines, subsections included
    pub start_line: usize,
    pub end_line: usize,
    /// Estimated tokens of the whole section (about 4 characters each)
    pub tokens: usize,
    /// Blocks in the section's own part (before its first subsection), by type
    #[serde(default)]
    pub blocks: std::collections::BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MdBlock {
    /// `code`, `table` or `html`
    #[serde(rename = "type")]
    pub kind: String,
    pub start_line: usize,
    pub end_line: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MdStructureResult {
    pub path: String,
    pub content_id: String,
    pub total_lines: usize,
    pub tokens: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontmatter: Option<MdFrontmatter>,
    pub headings: Vec<MdHeading>,
    /// Code, table and HTML blocks wherever they are
    pub blocks: Vec<MdBlock>,
    /// Blocks before the first heading, by type
    #[serde(default)]
    pub preamble_blocks: std::collections::BTreeMap<String, usize>,
    /// Headings or blocks were left out past the listing limit
    #[serde(default)]
    pub truncated: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WriteParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::PATH))]
    pub path: String,
    /// The whole new content of the file
    pub content: String,
    /// utf-8 for text; base64 for binary files
    #[serde(default)]
    pub encoding: Encoding,
    /// Only write if the file's current content_id (from read or stat) is this; prevents lost updates
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EditOp {
    pub old_str: String,
    pub new_str: String,
    /// Replace every occurrence instead of requiring exactly one.
    #[serde(default)]
    pub replace_all: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EditParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::PATH))]
    pub path: String,
    /// Replacements applied in order; each old_str must occur exactly once unless replace_all
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub edits: Vec<EditOp>,
    /// Expected current content_id
    #[serde(default)]
    pub if_match: Option<String>,
    /// When an old_str (without replace_all) is not in the file exactly: first it is matched ignoring whitespace differences, then against windows of whole lines by similarity (0-1, LCS ratio of the non-whitespace characters); the one place scoring at least this is replaced. Several places is an error naming their lines. 1 turns both off (exact only). Default 0.85, at least 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0.5, max = 1.0)))]
    pub fuzzy_threshold: Option<f64>,
    /// Return the unified diff of the edits without writing anything
    #[serde(default)]
    pub preview: bool,
}

impl EditParams {
    pub const DEFAULT_FUZZY_THRESHOLD: f64 = 0.85;
}

/// How one edit found its old_str.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EditMatch {
    /// The edit's position in `edits`, from 1
    pub edit: usize,
    /// `exact`, `whitespace` (equal but for whitespace) or `fuzzy` (similar)
    pub how: String,
    /// 1-based line of the (first) match in the text the edit applied to
    pub line: usize,
    /// 1 for exact and whitespace matches; the similarity for fuzzy ones
    pub score: f64,
    /// Places replaced
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EditResult {
    pub path: String,
    /// Size and content id of the file after the call (unchanged by a preview)
    pub size: u64,
    pub content_id: String,
    pub replacements: u64,
    /// Unified diff of the change (cut past 256 KiB, with diff_truncated set)
    #[serde(default)]
    pub diff: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub diff_truncated: bool,
    /// How each edit matched
    #[serde(default)]
    pub matches: Vec<EditMatch>,
    /// Nothing was written
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preview: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PathParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::PATH))]
    pub path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathResult {
    pub path: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ListParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::PATH))]
    #[serde(default = "default_root")]
    pub path: String,
    #[serde(default)]
    pub recursive: bool,
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 1000)))]
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Use next_offset from the previous page
    #[serde(default)]
    pub offset: usize,
    /// Include each entry's size and modification time (default true); false lists
    /// path, name and is_dir only.
    #[serde(default = "yes")]
    pub details: bool,
    /// json (default): the page as JSON items; markdown: the page as a markdown list
    /// (in `markdown`), easier to read than JSON.
    #[serde(default)]
    pub response_format: ResponseFormat,
}

/// How a listing is rendered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ResponseFormat {
    #[default]
    Json,
    Markdown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListItem {
    pub path: String,
    pub name: String,
    pub is_dir: bool,
    /// Bytes; absent when listed without details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// RFC 3339, UTC; absent for a zone and when listed without details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListResult {
    pub items: Vec<ListItem>,
    pub total: usize,
    pub has_more: bool,
    pub next_offset: Option<usize>,
    /// The page as markdown, with `response_format: markdown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markdown: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatResult {
    pub path: String,
    pub exists: bool,
    pub is_dir: bool,
    pub size: u64,
    pub modified: Option<String>,
    pub content_id: Option<String>,
    /// The zone holding the path, when the caller may read it: with `zone_path` (below
    /// the zone root, `a/b.txt`), what a resource subscription is matched on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_path: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MkdirParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::PATH))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RmdirParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::PATH))]
    pub path: String,
    /// Also remove everything inside
    #[serde(default)]
    pub recursive: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RenameParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::PATH))]
    pub old_path: String,
    #[cfg_attr(feature = "schema", schemars(description = doc::PATH))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GlobParams {
    /// Glob relative to path: *.md, **/*.rs, docs/?.txt
    pub pattern: String,
    #[cfg_attr(feature = "schema", schemars(description = doc::PATH))]
    #[serde(default = "default_root")]
    pub path: String,
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 1000)))]
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Use next_offset from the previous page
    #[serde(default)]
    pub offset: usize,
    /// Match only these paths (at most 1000, inside your zones): the result is those of
    /// them that exist below path and match pattern, in path order.
    #[cfg_attr(feature = "schema", schemars(length(max = 1000)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<String>>,
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GrepParams {
    /// Regular expression (Rust regex syntax), matched per line
    pub pattern: String,
    /// File or directory to search
    #[serde(default = "default_root")]
    pub path: String,
    #[serde(default)]
    pub ignore_case: bool,
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 1000)))]
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Use next_offset from the previous page
    #[serde(default)]
    pub offset: usize,
    /// Lines of context before each match (0-20), in `before`
    #[cfg_attr(feature = "schema", schemars(range(max = 20)))]
    #[serde(default)]
    pub before_context: usize,
    /// Lines of context after each match (0-20), in `after`
    #[cfg_attr(feature = "schema", schemars(range(max = 20)))]
    #[serde(default)]
    pub after_context: usize,
    /// Return the lines that do NOT match (reads every file below path, up to a cap)
    #[serde(default)]
    pub invert_match: bool,
    /// Treat pattern as literal text, not a regular expression
    #[serde(default)]
    pub fixed_strings: bool,
    /// Search only files whose path (relative to path) matches this glob; a glob without
    /// '/' matches the file name (*.md, *.{rs,toml})
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    /// Search only these files (at most 1000 paths inside your zones; each must be below
    /// path)
    #[cfg_attr(feature = "schema", schemars(length(max = 1000)))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<String>>,
    /// Return per-file counts of matching lines (in `counts`, paged by file) instead of
    /// the lines
    #[serde(default)]
    pub count_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrepMatch {
    pub path: String,
    pub line: u64,
    pub text: String,
    /// Lines before the match (with before_context), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<String>,
    /// Lines after the match (with after_context).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
}

/// How many lines of one file matched (`count_only`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrepCount {
    pub path: String,
    pub count: u64,
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
    /// With `count_only`: the page of files with matches and their counts (`total`,
    /// `has_more` and `next_offset` then count files; `matches` sums the counts of all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Vec<GrepCount>>,
    /// With `count_only`: matching lines in every file counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<u64>,
}

fn default_search_limit() -> usize {
    10
}

/// How `search` ranks files: `keyword` by BM25 over the words of each file, `semantic` by
/// embedding similarity (needs the server's embeddings endpoint), `hybrid` the two ranks
/// fused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    #[default]
    Keyword,
    Semantic,
    Hybrid,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SearchParams {
    /// Words to look for (1-1000 bytes); files with more of the rarer words rank higher
    pub query: String,
    /// Directory (or file) to search below
    #[serde(default = "default_root")]
    pub path: String,
    /// keyword (default), semantic or hybrid
    #[serde(default)]
    pub search_mode: SearchMode,
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 100)))]
    #[serde(default = "default_search_limit")]
    pub limit: usize,
    /// Use next_offset from the previous page
    #[serde(default)]
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub path: String,
    /// Higher is better; comparable within one answer only.
    pub score: f64,
    /// The line (1-based) with the most query words.
    pub line: u64,
    /// That line's text (clipped).
    pub snippet: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResult {
    pub items: Vec<SearchHit>,
    pub total: usize,
    pub has_more: bool,
    pub next_offset: Option<usize>,
    /// The ranking that answered: keyword when semantic ranking was asked for but is
    /// not available.
    pub search_mode: SearchMode,
    /// Semantic or hybrid was asked for, but the answer is keyword search (no
    /// embeddings endpoint configured, or it failed).
    #[serde(default)]
    pub semantic_degraded: bool,
}

/// The parameters of a method that takes none (`whoami`): an empty object, any member
/// refused.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EmptyParams {}

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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TokenCreateParams {
    /// Unique among active tokens
    pub name: String,
    /// eng:rw,ops:r (bare zone = rw)
    #[serde(default)]
    pub zones: Option<String>,
    /// All active zones matching a glob, e.g. team-* or team-*:r; resolved when the token is minted
    #[serde(default)]
    pub zones_glob: Option<String>,
    /// A single zone
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub admin: bool,
    /// Lifetime: 90d, 12h, 30m
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    /// Who the token stands for
    #[serde(default)]
    pub subject_type: Option<SubjectType>,
    /// Rate limit of this token: windows N/s, N/m, N/h or N/d, comma-separated (e.g.
    /// 1000/m,10000/h); every window must admit a request
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    /// `oauth` for an access token the hub's OAuth server issued to an MCP client (SPEC
    /// §11); absent for keys minted by an operator or a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The OAuth client an `oauth` token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_client: Option<String>,
    /// That client's name as it registered (`Claude Code (hub)`), for people reading lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_client_name: Option<String>,
}

/// `hub_admin_oauth_client_revoke`: the client to revoke, with its tokens.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OAuthClientRevokeParams {
    /// The client's id, as `nexus_hub_oauth_client_list` shows it
    pub client_id: String,
}

/// An MCP client known to the hub's OAuth server (SPEC §11), as listed to operators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthClientInfo {
    pub client_id: String,
    /// `dcr` (registered, RFC 7591) or `cimd` (a Client ID Metadata Document).
    pub kind: String,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    /// `active` or `revoked`.
    pub status: String,
    /// Its access tokens neither revoked nor expired.
    pub active_tokens: i64,
    pub created_at: String,
}

/// What `hub_admin_oauth_client_revoke` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthClientRevoked {
    pub client_id: String,
    pub revoked: bool,
    /// Access tokens revoked with it.
    pub revoked_tokens: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TokenRevokeParams {
    /// Token name, key_id, or key_id prefix (8+ hex digits)
    pub identifier: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ZoneParams {
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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

/// A restored zone, and how many tokens regained access with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneRestored {
    #[serde(flatten)]
    pub zone: ZoneInfo,
    /// Tokens that work again: not revoked, not expired, holding no other deleted zone.
    pub tokens_regaining_access: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenCounts {
    pub active: u64,
    pub revoked: u64,
    pub expired: u64,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    /// The cluster bus as the answering node sees it; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<BusStatus>,
    /// Every node whose heartbeat the bus holds, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeStatus>>,
}

/// The cluster bus's health (SPEC §13).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusStatus {
    /// `redis` or `nats`.
    pub backend: String,
    pub connected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One node seen on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    /// `rpc` or `frontend`.
    pub role: String,
    pub version: String,
    /// RFC 3339, UTC.
    pub last_heartbeat: String,
    /// RFC 3339, UTC.
    pub started: String,
}

// ---- subjects and ReBAC (SPEC §9) ----

/// `admin_create_user`: registers a subject and, unless `no_key`, mints its first token.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AdminCreateUserParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::SUBJECT_ID))]
    pub subject_id: String,
    /// Display name
    #[serde(default)]
    pub name: Option<String>,
    /// What the subject is
    #[cfg_attr(feature = "schema", schemars(extend("default" = "user")))]
    #[serde(default)]
    pub subject_type: Option<SubjectType>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// An agent's owning user
    #[serde(default)]
    pub owner: Option<String>,
    /// The key's zones: eng:rw,ops:r; none means tuples alone decide
    #[serde(default)]
    pub zones: Option<String>,
    /// The key's lifetime: 90d, 12h, 30m
    #[serde(default)]
    pub expires: Option<String>,
    /// Register without minting a key
    #[serde(default)]
    pub no_key: bool,
}

/// `admin_create_agent_key`: mints a token for an agent, registering it when new.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AdminCreateAgentKeyParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::SUBJECT_ID))]
    pub agent_id: String,
    /// Display name
    #[serde(default)]
    pub name: Option<String>,
    /// The owning user's subject id
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The key's zones: eng:rw,ops:r
    #[serde(default)]
    pub zones: Option<String>,
    /// The key's lifetime: 90d, 12h, 30m
    #[serde(default)]
    pub expires: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    pub subject_id: String,
    pub subject_type: SubjectType,
    pub display_name: String,
    /// `default` when none was set.
    pub tenant_id: String,
    pub owner_id: Option<String>,
    pub created_at: String,
    pub disabled_at: Option<String>,
    /// `active` or `disabled`.
    pub status: String,
    /// Unrevoked tokens bound to the subject.
    pub tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserCreated {
    pub user: UserInfo,
    /// The minted token (its raw value present only in this response); none with `no_key`.
    pub key: Option<TokenCreated>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AdminListUsersParams {
    /// Only this type
    #[serde(default)]
    pub subject_type: Option<SubjectType>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AdminUserParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::SUBJECT_ID))]
    pub subject_id: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AdminSetUserStateParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::SUBJECT_ID))]
    pub subject_id: String,
    /// true disables (its tokens are refused), false enables
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserDeleted {
    pub user: UserInfo,
    pub tokens_revoked: u64,
    pub tuples_removed: u64,
}

/// `rebac_create` / `rebac_delete`. With `zone`, `file:/path` means `file:/zone/<zone>/path`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RebacTupleParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::SUBJECT))]
    pub subject: String,
    #[cfg_attr(feature = "schema", schemars(description = doc::RELATION))]
    pub relation: String,
    #[cfg_attr(feature = "schema", schemars(description = doc::OBJECT))]
    pub object: String,
    #[cfg_attr(feature = "schema", schemars(description = doc::OBJECT_ZONE))]
    #[serde(default)]
    pub zone: Option<String>,
    // `rebac_create` only: `rebac_delete` refuses it.
    /// The tuple counts for this long only: 7d, 12h, 30m
    #[serde(default)]
    pub expires: Option<String>,
}

/// The schema of `rebac_delete`'s parameters: those of [`RebacTupleParams`] without
/// `expires`, which the method refuses. The rpc-server decodes `RebacTupleParams` (so that
/// refusal keeps its own message); this type only tells callers what to send.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RebacDeleteParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::SUBJECT))]
    pub subject: String,
    #[cfg_attr(feature = "schema", schemars(description = doc::RELATION))]
    pub relation: String,
    #[cfg_attr(feature = "schema", schemars(description = doc::OBJECT))]
    pub object: String,
    #[cfg_attr(feature = "schema", schemars(description = doc::OBJECT_ZONE))]
    #[serde(default)]
    pub zone: Option<String>,
}

/// One tuple as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TupleInfo {
    pub subject: String,
    pub relation: String,
    pub object: String,
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default)]
    pub expired: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RebacCheckParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::SUBJECT))]
    pub subject: String,
    #[cfg_attr(feature = "schema", schemars(description = doc::RELATION))]
    pub relation: String,
    #[cfg_attr(feature = "schema", schemars(description = doc::OBJECT))]
    pub object: String,
    #[cfg_attr(feature = "schema", schemars(description = doc::OBJECT_ZONE))]
    #[serde(default)]
    pub zone: Option<String>,
    /// Return the tuples that decided
    #[serde(default)]
    pub explain: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebacCheckResult {
    pub allowed: bool,
    pub subject: String,
    pub relation: String,
    pub object: String,
    /// Why, in one word: `zone_role`, `path_tuple`, `membership`, `namespace_admin`, `no_grant`, …
    pub reason: String,
    /// The deciding tuple and the membership chain leading to it (with `explain`).
    #[serde(default)]
    pub because: Vec<TupleInfo>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RebacListParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::SUBJECT))]
    #[serde(default)]
    pub subject: Option<String>,
    #[cfg_attr(feature = "schema", schemars(description = doc::OBJECT))]
    #[serde(default)]
    pub object: Option<String>,
    #[cfg_attr(feature = "schema", schemars(description = doc::RELATION))]
    #[serde(default)]
    pub relation: Option<String>,
    /// Only objects in this zone (and the zone of a file:/<path> object)
    #[serde(default)]
    pub zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebacTuples {
    pub tuples: Vec<TupleInfo>,
    /// True when the listing stopped at the server's cap.
    pub truncated: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RebacExpandParams {
    #[cfg_attr(feature = "schema", schemars(description = doc::RELATION))]
    pub relation: String,
    #[cfg_attr(feature = "schema", schemars(description = doc::OBJECT))]
    pub object: String,
    #[cfg_attr(feature = "schema", schemars(description = doc::OBJECT_ZONE))]
    #[serde(default)]
    pub zone: Option<String>,
}

/// One subject holding the relation, and the tuples that give it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpandEntry {
    pub subject: String,
    pub because: Vec<TupleInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebacExpandResult {
    pub relation: String,
    pub object: String,
    pub subjects: Vec<ExpandEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_round_trips_and_has_its_path() {
        for &m in Method::ALL {
            assert_eq!(Method::parse(m.as_str()), Some(m));
            assert_eq!(m.as_str().parse::<Method>(), Ok(m));
            assert_eq!(m.to_string(), m.as_str());
            assert_eq!(rpc_path(m), format!("{RPC_PREFIX}{}", m.as_str()));
            assert_eq!(method_label(m.as_str()), m.as_str());
        }
        for &m in Method::ALL {
            assert_eq!(Method::from_path(m.rpc_path()), Some(m));
            let json = serde_json::to_string(&m).expect("serialises");
            assert_eq!(json, format!("\"{}\"", m.as_str()));
            assert_eq!(serde_json::from_str::<Method>(&json).expect("parses"), m);
        }
        assert_eq!(Method::from_path("/api/nfs/"), None);
        assert_eq!(Method::from_path("/read"), None);
        assert!(serde_json::from_str::<Method>("\"nope\"").is_err());
        assert_eq!(Method::parse("READ"), None);
        assert_eq!("nope".parse::<Method>(), Err(UnknownMethod));
        assert_eq!(method_label("nope"), "other");
    }

    #[test]
    fn name_lists_partition_the_methods() {
        assert_eq!(
            FILE_METHODS.len() + ADMIN_METHODS.len() + REBAC_METHODS.len(),
            Method::ALL.len()
        );
        for &m in Method::ALL {
            let lists = [
                (MethodKind::File, FILE_METHODS),
                (MethodKind::Admin, ADMIN_METHODS),
                (MethodKind::Rebac, REBAC_METHODS),
            ];
            for (kind, names) in lists {
                assert_eq!(names.contains(&m.as_str()), m.kind() == kind, "{m}");
            }
            assert_eq!(m.is_admin(), ADMIN_METHODS.contains(&m.as_str()));
        }
        assert!(FILE_METHODS.contains(&"whoami"));
        assert!(Method::RebacCheck.is_control() && !Method::RebacCheck.is_admin());
    }
}
