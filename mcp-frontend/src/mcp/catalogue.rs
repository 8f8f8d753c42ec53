//! The tool catalogue: names as in the original (so agent prompts carry over), the rpc
//! method each forwards to, JSON schemas with descriptions an agent can follow, and
//! read-only / destructive annotations. Arguments use the rpc method's parameter names.

use rmcp::model::{Tool, ToolAnnotations};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// One tool and where it goes.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: &'static str,
    pub rpc_method: &'static str,
    pub admin: bool,
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub title: &'static str,
    pub description: &'static str,
    pub schema: fn() -> Value,
}

fn obj(props: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": props, "required": required, "additionalProperties": false })
}

const PATH: &str = "Path inside your zones. With one zone it is '/'-rooted (e.g. /notes/a.md); \
with several zones use /zone/<zone>/… (list '/' to see them).";

fn s_read() -> Value {
    obj(
        json!({
            "path": {"type": "string", "description": PATH},
            "encoding": {"type": "string", "enum": ["utf-8", "base64"], "default": "utf-8",
                         "description": "utf-8 for text; base64 for binary files"}
        }),
        &["path"],
    )
}
fn s_write() -> Value {
    obj(
        json!({
            "path": {"type": "string", "description": PATH},
            "content": {"type": "string", "description": "The whole new content of the file"},
            "encoding": {"type": "string", "enum": ["utf-8", "base64"], "default": "utf-8"},
            "if_match": {"type": "string", "description": "Only write if the file's current content_id (from read or stat) is this; prevents lost updates"}
        }),
        &["path", "content"],
    )
}
fn s_edit() -> Value {
    obj(
        json!({
            "path": {"type": "string", "description": PATH},
            "edits": {"type": "array", "minItems": 1, "description": "Replacements applied in order; each old_str must occur exactly once unless replace_all",
                      "items": {"type": "object", "additionalProperties": false, "required": ["old_str", "new_str"],
                                "properties": {"old_str": {"type": "string"}, "new_str": {"type": "string"},
                                               "replace_all": {"type": "boolean", "default": false}}}},
            "if_match": {"type": "string", "description": "Expected current content_id"}
        }),
        &["path", "edits"],
    )
}
fn s_path() -> Value {
    obj(
        json!({"path": {"type": "string", "description": PATH}}),
        &["path"],
    )
}
fn s_list() -> Value {
    obj(
        json!({
            "path": {"type": "string", "default": "/", "description": PATH},
            "recursive": {"type": "boolean", "default": false},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            "offset": {"type": "integer", "minimum": 0, "default": 0, "description": "Use next_offset from the previous page"}
        }),
        &[],
    )
}
fn s_mkdir() -> Value {
    obj(
        json!({
            "path": {"type": "string", "description": PATH},
            "parents": {"type": "boolean", "default": true},
            "exist_ok": {"type": "boolean", "default": true}
        }),
        &["path"],
    )
}
fn s_rmdir() -> Value {
    obj(
        json!({
            "path": {"type": "string", "description": PATH},
            "recursive": {"type": "boolean", "default": false, "description": "Also remove everything inside"}
        }),
        &["path"],
    )
}
fn s_rename() -> Value {
    obj(
        json!({
            "old_path": {"type": "string", "description": PATH},
            "new_path": {"type": "string", "description": PATH},
            "overwrite": {"type": "boolean", "default": false}
        }),
        &["old_path", "new_path"],
    )
}
fn s_glob() -> Value {
    obj(
        json!({
            "pattern": {"type": "string", "description": "Glob relative to path: *.md, **/*.rs, docs/?.txt"},
            "path": {"type": "string", "default": "/", "description": PATH},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            "offset": {"type": "integer", "minimum": 0, "default": 0}
        }),
        &["pattern"],
    )
}
fn s_grep() -> Value {
    obj(
        json!({
            "pattern": {"type": "string", "description": "Regular expression (Rust regex syntax), matched per line"},
            "path": {"type": "string", "default": "/", "description": "File or directory to search"},
            "ignore_case": {"type": "boolean", "default": false},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            "offset": {"type": "integer", "minimum": 0, "default": 0}
        }),
        &["pattern"],
    )
}
fn s_empty() -> Value {
    obj(json!({}), &[])
}
fn s_token_create() -> Value {
    obj(
        json!({
            "name": {"type": "string", "description": "Unique among active tokens"},
            "zones": {"type": "string", "description": "eng:rw,ops:r (bare zone = rw)"},
            "zones_glob": {"type": "string", "description": "All active zones matching a glob, e.g. team-* or team-*:r"},
            "zone": {"type": "string", "description": "A single zone"},
            "admin": {"type": "boolean", "default": false},
            "expires": {"type": "string", "description": "Lifetime: 90d, 12h, 30m"},
            "user_id": {"type": "string"},
            "subject_type": {"type": "string", "enum": ["user", "agent", "service"]},
            "rate_limit": {"type": "string", "description": "N/s, N/m or N/h"}
        }),
        &["name"],
    )
}
fn s_token_list() -> Value {
    obj(
        json!({"show_revoked": {"type": "boolean", "default": false}}),
        &[],
    )
}
fn s_token_revoke() -> Value {
    obj(
        json!({"identifier": {"type": "string", "description": "Token name, key_id, or key_id prefix (8+ hex digits)"}}),
        &["identifier"],
    )
}

const SUBJECT_ID: &str = "Subject id: [a-z0-9][a-z0-9._@-]{0,127}";
const SUBJECT: &str = "user:<id>, agent:<id>, service:<id>, token:<key_id>, or group:<g>#member (group:<g> means its members)";
const RELATION: &str =
    "member (group), reader|writer|admin (zone), can_read|can_write (file), admin (namespace)";
const OBJECT: &str =
    "group:<g>, zone:<z>, namespace:default, or file:/zone/<z>/<path> (file:/<path> with zone)";
const OBJECT_ZONE: &str = "The zone a file:/<path> object is in";

fn s_user_create() -> Value {
    obj(
        json!({
            "subject_id": {"type": "string", "description": SUBJECT_ID},
            "name": {"type": "string", "description": "Display name"},
            "subject_type": {"type": "string", "enum": ["user", "agent", "service"], "default": "user"},
            "tenant_id": {"type": "string"},
            "owner": {"type": "string", "description": "An agent's owning user"},
            "zones": {"type": "string", "description": "The key's zones: eng:rw,ops:r; none means tuples alone decide"},
            "expires": {"type": "string", "description": "The key's lifetime: 90d, 12h, 30m"},
            "no_key": {"type": "boolean", "default": false, "description": "Register without minting a key"}
        }),
        &["subject_id"],
    )
}
fn s_user_list() -> Value {
    obj(
        json!({"subject_type": {"type": "string", "enum": ["user", "agent", "service"], "description": "Only this type"}}),
        &[],
    )
}
fn s_user_id() -> Value {
    obj(
        json!({"subject_id": {"type": "string", "description": SUBJECT_ID}}),
        &["subject_id"],
    )
}
fn s_user_set_state() -> Value {
    obj(
        json!({
            "subject_id": {"type": "string", "description": SUBJECT_ID},
            "disabled": {"type": "boolean", "description": "true disables (its tokens are refused), false enables"}
        }),
        &["subject_id", "disabled"],
    )
}
fn s_agent_key() -> Value {
    obj(
        json!({
            "agent_id": {"type": "string", "description": SUBJECT_ID},
            "name": {"type": "string", "description": "Display name"},
            "owner": {"type": "string", "description": "The owning user's subject id"},
            "tenant_id": {"type": "string"},
            "zones": {"type": "string", "description": "The key's zones: eng:rw,ops:r"},
            "expires": {"type": "string", "description": "The key's lifetime: 90d, 12h, 30m"}
        }),
        &["agent_id"],
    )
}
fn s_rebac_create() -> Value {
    obj(
        json!({
            "subject": {"type": "string", "description": SUBJECT},
            "relation": {"type": "string", "description": RELATION},
            "object": {"type": "string", "description": OBJECT},
            "zone": {"type": "string", "description": OBJECT_ZONE},
            "expires": {"type": "string", "description": "The tuple counts for this long only: 7d, 12h, 30m"}
        }),
        &["subject", "relation", "object"],
    )
}
fn s_rebac_delete() -> Value {
    obj(
        json!({
            "subject": {"type": "string", "description": SUBJECT},
            "relation": {"type": "string", "description": RELATION},
            "object": {"type": "string", "description": OBJECT},
            "zone": {"type": "string", "description": OBJECT_ZONE}
        }),
        &["subject", "relation", "object"],
    )
}
fn s_rebac_check() -> Value {
    obj(
        json!({
            "subject": {"type": "string", "description": SUBJECT},
            "relation": {"type": "string", "description": RELATION},
            "object": {"type": "string", "description": OBJECT},
            "zone": {"type": "string", "description": OBJECT_ZONE},
            "explain": {"type": "boolean", "default": false, "description": "Return the tuples that decided"}
        }),
        &["subject", "relation", "object"],
    )
}
fn s_rebac_list() -> Value {
    obj(
        json!({
            "subject": {"type": "string", "description": SUBJECT},
            "relation": {"type": "string", "description": RELATION},
            "object": {"type": "string", "description": OBJECT},
            "zone": {"type": "string", "description": "Only objects in this zone (and the zone of a file:/<path> object)"}
        }),
        &[],
    )
}
fn s_rebac_expand() -> Value {
    obj(
        json!({
            "relation": {"type": "string", "description": RELATION},
            "object": {"type": "string", "description": OBJECT},
            "zone": {"type": "string", "description": OBJECT_ZONE}
        }),
        &["relation", "object"],
    )
}

macro_rules! tool {
    ($name:literal, $m:literal, admin=$a:literal, ro=$ro:literal, destr=$d:literal, idem=$i:literal, $title:literal, $desc:literal, $schema:ident) => {
        ToolSpec {
            name: $name,
            rpc_method: $m,
            admin: $a,
            read_only: $ro,
            destructive: $d,
            idempotent: $i,
            title: $title,
            description: $desc,
            schema: $schema,
        }
    };
}

pub static TOOLS: &[ToolSpec] = &[
    tool!(
        "nexus_read_file",
        "read",
        admin = false,
        ro = true,
        destr = false,
        idem = true,
        "Read file",
        "Read a file. Returns its text (or base64 with encoding=base64). Use nexus_file_info for its content_id.",
        s_read
    ),
    tool!(
        "nexus_write_file",
        "write",
        admin = false,
        ro = false,
        destr = true,
        idem = true,
        "Write file",
        "Create or replace a file with the given content (parent directories are created). Returns path, size and content_id.",
        s_write
    ),
    tool!(
        "nexus_edit_file",
        "edit",
        admin = false,
        ro = false,
        destr = true,
        idem = false,
        "Edit file",
        "Replace exact strings in a text file. Each old_str must match exactly once (include surrounding lines) unless replace_all is set.",
        s_edit
    ),
    tool!(
        "nexus_delete_file",
        "delete",
        admin = false,
        ro = false,
        destr = true,
        idem = false,
        "Delete file",
        "Delete a file (use nexus_rmdir for directories).",
        s_path
    ),
    tool!(
        "nexus_list_files",
        "list",
        admin = false,
        ro = true,
        destr = false,
        idem = true,
        "List files",
        "List a directory (recursively if asked), paginated. '/' of a multi-zone token lists its zones.",
        s_list
    ),
    tool!(
        "nexus_file_info",
        "stat",
        admin = false,
        ro = true,
        destr = false,
        idem = true,
        "File info",
        "Does a path exist; is it a directory; size, modification time and content_id (SHA-256 of the bytes).",
        s_path
    ),
    tool!(
        "nexus_mkdir",
        "mkdir",
        admin = false,
        ro = false,
        destr = false,
        idem = true,
        "Make directory",
        "Create a directory (and its parents).",
        s_mkdir
    ),
    tool!(
        "nexus_rmdir",
        "rmdir",
        admin = false,
        ro = false,
        destr = true,
        idem = false,
        "Remove directory",
        "Remove a directory; it must be empty unless recursive is true.",
        s_rmdir
    ),
    tool!(
        "nexus_rename_file",
        "rename",
        admin = false,
        ro = false,
        destr = true,
        idem = false,
        "Rename or move",
        "Rename or move a file or directory; fails if new_path exists unless overwrite is true (files only).",
        s_rename
    ),
    tool!(
        "nexus_glob",
        "glob",
        admin = false,
        ro = true,
        destr = false,
        idem = true,
        "Find files by glob",
        "Find paths matching a glob under path (** crosses directories, * does not).",
        s_glob
    ),
    tool!(
        "nexus_grep",
        "grep",
        admin = false,
        ro = true,
        destr = false,
        idem = true,
        "Search file contents",
        "Search text files under path for a regular expression; returns path, line number and line text. Paged: follow next_offset while has_more; total counts only the matches scanned so far while total_is_lower_bound is true. A search over the server's budget fails: narrow path or simplify the pattern.",
        s_grep
    ),
    tool!(
        "nexus_whoami",
        "whoami",
        admin = false,
        ro = true,
        destr = false,
        idem = true,
        "Who am I",
        "Show this token's name, zones and permissions, and whether paths are single- or multi-zone.",
        s_empty
    ),
    tool!(
        "nexus_hub_token_create",
        "hub_admin_token_create",
        admin = true,
        ro = false,
        destr = false,
        idem = false,
        "Create hub token",
        "Admin: mint a token. The returned JSON holds the raw token exactly once.",
        s_token_create
    ),
    tool!(
        "nexus_hub_token_list",
        "hub_admin_token_list",
        admin = true,
        ro = true,
        destr = false,
        idem = true,
        "List hub tokens",
        "Admin: list tokens (never the tokens themselves).",
        s_token_list
    ),
    tool!(
        "nexus_hub_token_revoke",
        "hub_admin_token_revoke",
        admin = true,
        ro = false,
        destr = true,
        idem = false,
        "Revoke hub token",
        "Admin: revoke a token by name, key_id or key_id prefix; it is refused from then on.",
        s_token_revoke
    ),
    tool!(
        "nexus_hub_status",
        "hub_admin_status",
        admin = true,
        ro = true,
        destr = false,
        idem = true,
        "Hub status",
        "Admin: database and Redis health, token counts, connections and request rate.",
        s_empty
    ),
    tool!(
        "nexus_hub_user_create",
        "admin_create_user",
        admin = true,
        ro = false,
        destr = false,
        idem = false,
        "Create user",
        "Admin: register a user, agent or service and (unless no_key) mint its key. The returned JSON holds the raw key exactly once.",
        s_user_create
    ),
    tool!(
        "nexus_hub_user_list",
        "admin_list_users",
        admin = true,
        ro = true,
        destr = false,
        idem = true,
        "List users",
        "Admin: list registered users, agents and services.",
        s_user_list
    ),
    tool!(
        "nexus_hub_user_delete",
        "admin_delete_user",
        admin = true,
        ro = false,
        destr = true,
        idem = false,
        "Delete user",
        "Admin: delete a subject; every token bound to it is revoked and the tuples naming it removed.",
        s_user_id
    ),
    tool!(
        "nexus_hub_user_set_state",
        "admin_set_user_state",
        admin = true,
        ro = false,
        destr = true,
        idem = true,
        "Disable or enable user",
        "Admin: disable a subject (its tokens are refused) or enable it again.",
        s_user_set_state
    ),
    tool!(
        "nexus_hub_user_create_agent_key",
        "admin_create_agent_key",
        admin = true,
        ro = false,
        destr = false,
        idem = false,
        "Create agent key",
        "Admin: mint a key for an agent, registering it (optionally owned by a user) when new. The returned JSON holds the raw key exactly once.",
        s_agent_key
    ),
    tool!(
        "nexus_rebac_create",
        "rebac_create",
        admin = true,
        ro = false,
        destr = false,
        idem = false,
        "Create tuple",
        "Admin: write a relationship tuple (subject has relation on object), optionally expiring.",
        s_rebac_create
    ),
    tool!(
        "nexus_rebac_delete",
        "rebac_delete",
        admin = true,
        ro = false,
        destr = true,
        idem = false,
        "Delete tuple",
        "Admin: delete a relationship tuple.",
        s_rebac_delete
    ),
    tool!(
        "nexus_rebac_check",
        "rebac_check",
        admin = true,
        ro = true,
        destr = false,
        idem = true,
        "Check permission",
        "Admin: does subject have relation on object? With explain, the tuples that decided.",
        s_rebac_check
    ),
    tool!(
        "nexus_rebac_list_tuples",
        "rebac_list_tuples",
        admin = true,
        ro = true,
        destr = false,
        idem = true,
        "List tuples",
        "Admin: list relationship tuples, filtered by subject, relation, object or zone.",
        s_rebac_list
    ),
    tool!(
        "nexus_rebac_expand",
        "rebac_expand",
        admin = true,
        ro = true,
        destr = false,
        idem = true,
        "Expand permission",
        "Admin: who has relation on object, and through which tuples.",
        s_rebac_expand
    ),
];

pub fn find(name: &str) -> Option<&'static ToolSpec> {
    TOOLS.iter().find(|t| t.name == name)
}

/// Bounded label for metrics: a known tool name or `other`.
pub fn tool_label(name: &str) -> &'static str {
    find(name).map(|t| t.name).unwrap_or("other")
}

impl ToolSpec {
    pub fn to_tool(&self) -> Tool {
        let schema: Map<String, Value> = match (self.schema)() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        Tool::new(self.name, self.description, Arc::new(schema))
            .with_title(self.title)
            .annotate(
                ToolAnnotations::with_title(self.title)
                    .read_only(self.read_only)
                    .destructive(self.destructive)
                    .idempotent(self.idempotent)
                    .open_world(false),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_consistent() {
        let mut names: Vec<_> = TOOLS.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TOOLS.len(), "duplicate tool names");
        for t in TOOLS {
            assert!(t.name.starts_with("nexus_"));
            assert!(!(t.read_only && t.destructive), "{}", t.name);
            let known = nexus_wire::methods::method_label(t.rpc_method);
            assert_eq!(
                known, t.rpc_method,
                "{} forwards to an unknown method",
                t.name
            );
            let admin_method = nexus_wire::methods::ADMIN_METHODS.contains(&t.rpc_method)
                || nexus_wire::methods::REBAC_METHODS.contains(&t.rpc_method);
            assert_eq!(t.admin, admin_method, "{}", t.name);
            let schema = (t.schema)();
            assert_eq!(schema["type"], "object");
            assert_eq!(schema["additionalProperties"], false);
        }
        assert_eq!(tool_label("nope"), "other");
    }

    /// A value of each schema property's type (the first enum value for enums).
    fn sample(schema: &Value) -> Value {
        let props = schema["properties"].as_object().expect("properties");
        Value::Object(
            props
                .iter()
                .map(|(k, p)| {
                    let v = match (p.get("enum"), p["type"].as_str()) {
                        (Some(e), _) => e[0].clone(),
                        (None, Some("boolean")) => json!(true),
                        (None, Some("integer")) => json!(1),
                        _ => json!("x"),
                    };
                    (k.clone(), v)
                })
                .collect(),
        )
    }

    /// Every user and tuple method is reachable as a tool (`--remote` needs them), and each
    /// tool's schema names exactly the method's parameters: the method refuses unknown ones.
    #[test]
    fn identity_tools_match_their_methods() {
        use nexus_wire::methods::*;
        fn fits<T: serde::de::DeserializeOwned>(name: &str, v: Value) {
            if let Err(e) = serde_json::from_value::<T>(v.clone()) {
                panic!("{name}: {v} is not accepted by its method: {e}");
            }
        }
        for m in ADMIN_METHODS
            .iter()
            .chain(REBAC_METHODS)
            .filter(|m| !m.starts_with("hub_admin_"))
        {
            let t = TOOLS
                .iter()
                .find(|t| t.rpc_method == *m)
                .unwrap_or_else(|| panic!("no tool forwards to {m}"));
            assert!(t.admin, "{} must be listed only to admins", t.name);
            let v = sample(&(t.schema)());
            match *m {
                "admin_create_user" => fits::<AdminCreateUserParams>(t.name, v),
                "admin_list_users" => fits::<AdminListUsersParams>(t.name, v),
                "admin_delete_user" => fits::<AdminUserParams>(t.name, v),
                "admin_set_user_state" => fits::<AdminSetUserStateParams>(t.name, v),
                "admin_create_agent_key" => fits::<AdminCreateAgentKeyParams>(t.name, v),
                "rebac_create" | "rebac_delete" => fits::<RebacTupleParams>(t.name, v),
                "rebac_check" => fits::<RebacCheckParams>(t.name, v),
                "rebac_list_tuples" => fits::<RebacListParams>(t.name, v),
                "rebac_expand" => fits::<RebacExpandParams>(t.name, v),
                other => panic!("{other}: no parameter type known to this test"),
            }
        }
    }
}
