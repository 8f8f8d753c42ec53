//! The tool catalogue: names as in the original (so agent prompts carry over), the rpc
//! method each forwards to, its input schema and read-only / destructive annotations.
//! Arguments are the rpc method's parameters, so each schema is derived from the wire type
//! the rpc-server decodes them into: the two cannot drift apart.

use nexus_wire::methods::*;
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;
use std::sync::{Arc, LazyLock};

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
    /// The input schema, generated on first use and shared by every `tools/list` after.
    pub schema: &'static LazyLock<Arc<JsonObject>>,
}

/// The input schema of a tool whose arguments decode into `T`: JSON Schema 2020-12 as
/// rmcp's own `#[tool]` makes it (root title and description dropped), except that
/// subschemas are inlined, so clients that do not follow `$ref` still see every enum and
/// nested object, and optional members are advertised without `null`: leaving a member out
/// is how a caller leaves it unset (the decoder accepts `null` as well).
fn input_schema<T: JsonSchema>() -> Arc<JsonObject> {
    let mut settings = SchemaSettings::draft2020_12();
    settings.inline_subschemas = true;
    let Value::Object(mut schema) = settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
    else {
        unreachable!("a parameter struct's schema is an object")
    };
    schema.remove("title");
    schema.remove("description");
    // Some clients require `properties` on every object schema, even an empty one.
    schema
        .entry("properties")
        .or_insert_with(|| Value::Object(JsonObject::new()));
    let required = schema.get("required").cloned().unwrap_or_default();
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        for (name, prop) in props.iter_mut() {
            if !required
                .as_array()
                .is_some_and(|r| r.iter().any(|n| n == name.as_str()))
            {
                without_null(prop);
            }
        }
    }
    Arc::new(schema)
}

/// Takes `null` out of an optional member's schema (`type`, `enum` and `default`); the
/// tests refuse any `null` left, should a new member's type need more than this.
fn without_null(prop: &mut Value) {
    let Value::Object(p) = prop else { return };
    if let Some(Value::Array(types)) = p.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            p.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(values)) = p.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if p.get("default").is_some_and(Value::is_null) {
        p.remove("default");
    }
}

macro_rules! tool {
    ($name:literal, $m:literal, admin=$a:literal, ro=$ro:literal, destr=$d:literal, idem=$i:literal, $title:literal, $desc:literal, $params:ty) => {
        ToolSpec {
            name: $name,
            rpc_method: $m,
            admin: $a,
            read_only: $ro,
            destructive: $d,
            idempotent: $i,
            title: $title,
            description: $desc,
            schema: {
                static SCHEMA: LazyLock<Arc<JsonObject>> = LazyLock::new(input_schema::<$params>);
                &SCHEMA
            },
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
        "Read a file. Returns its text (or base64 with encoding=base64), up to the server's file size limit (16 MiB by default). \
For large files read a window of lines with offset/limit: when more lines follow, a second text block says so and gives the next offset. \
Markdown: section=\"*\" returns the outline (headings with their lines and token estimates), section=\"Install/Linux\" one heading's whole section, \
section=\"frontmatter\" the front matter; block_type=code|table only those blocks (of the section, or the file); offset/limit then page within that. \
A missing section is an error listing headings. Use nexus_file_info for the content_id to pass as if_match.",
        ReadParams
    ),
    tool!(
        "nexus_md_structure",
        "md_structure",
        admin = false,
        ro = true,
        destr = false,
        idem = true,
        "Markdown structure",
        "Outline of a markdown file as JSON: every heading (level, title, path to pass as section to nexus_read_file, start_line/end_line of its whole section, \
estimated tokens, block counts of its own part), code/table/HTML blocks with their lines and languages, front matter lines, total lines and tokens. \
Lists at most 2000 headings and 2000 blocks (truncated=true when more). Use it to read a long document by sections instead of whole.",
        MdStructureParams
    ),
    tool!(
        "nexus_write_file",
        "write",
        admin = false,
        ro = false,
        destr = true,
        idem = true,
        "Write file",
        "Create or replace a file with the given content (parent directories are created; encoding=base64 for binary content; at most the server's file size limit, 16 MiB by default). \
Returns path, size, content_id and created. Pass if_match (the content_id you read) to refuse the write if someone changed the file since; on a conflict read it again.",
        WriteParams
    ),
    tool!(
        "nexus_edit_file",
        "edit",
        admin = false,
        ro = false,
        destr = true,
        idem = false,
        "Edit file",
        "Replace strings in a text file, edits applied in order. Each old_str must match once (include surrounding lines) unless replace_all is set (exact matches only). \
When an old_str is not there exactly, the one place equal to it but for whitespace, else the one window of lines at least fuzzy_threshold similar (default 0.85; 1 = exact only), is replaced; \
several such places is an error naming their lines. Returns path, size, content_id, replacements, the unified diff, and how each edit matched (exact|whitespace|fuzzy, line, score). \
preview=true returns the same without writing. Pass if_match (a content_id) to refuse the edit if the file changed.",
        EditParams
    ),
    tool!(
        "nexus_delete_file",
        "delete",
        admin = false,
        ro = false,
        destr = true,
        idem = false,
        "Delete file",
        "Delete a file (use nexus_rmdir for directories). Returns the path. Deleting is final: there is no trash.",
        PathParams
    ),
    tool!(
        "nexus_list_files",
        "list",
        admin = false,
        ro = true,
        destr = false,
        idem = true,
        "List files",
        "List a directory (recursively if asked). Returns items (path, name, is_dir; size and modified unless details=false), total, has_more and next_offset: pass next_offset as offset for the next page (limit 1-1000, default 100). response_format=markdown answers with a readable markdown list instead of JSON. '/' of a multi-zone token lists its zones.",
        ListParams
    ),
    tool!(
        "nexus_file_info",
        "stat",
        admin = false,
        ro = true,
        destr = false,
        idem = true,
        "File info",
        "Whether a path exists and is a directory, with size, modification time and content_id (SHA-256 of the bytes; pass it as if_match to nexus_write_file or nexus_edit_file). \
A missing path is exists=false, not an error.",
        PathParams
    ),
    tool!(
        "nexus_mkdir",
        "mkdir",
        admin = false,
        ro = false,
        destr = false,
        idem = true,
        "Make directory",
        "Create a directory (and its parents unless parents=false); an existing one is fine unless exist_ok=false. Returns the path.",
        MkdirParams
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
        RmdirParams
    ),
    tool!(
        "nexus_rename_file",
        "rename",
        admin = false,
        ro = false,
        destr = true,
        idem = false,
        "Rename or move",
        "Rename or move a file or directory, also between zones you may write; fails if new_path exists unless overwrite is true (files only). Returns old_path and new_path.",
        RenameParams
    ),
    tool!(
        "nexus_glob",
        "glob",
        admin = false,
        ro = true,
        destr = false,
        idem = true,
        "Find files by glob",
        "Find paths matching a glob under path (** crosses directories, * does not; a pattern starting with / is from the zone root). Returns items (paths in path order), total, has_more, next_offset (pass as offset; limit 1-1000). With files, only those listed paths are tested: the result is the ones that exist below path and match.",
        GlobParams
    ),
    tool!(
        "nexus_grep",
        "grep",
        admin = false,
        ro = true,
        destr = false,
        idem = true,
        "Search file contents",
        "Search text files under path for a regular expression (Rust syntax; fixed_strings for literal text), line by line; binary files are skipped. Returns items of path, line number, text and, with before_context/after_context (0-20), the lines around each match in before/after. invert_match returns the lines that do not match; include (a glob: *.md, src/**/*.rs) and files (a list of paths) restrict which files are read; count_only returns counts (path and count per file, paged by file) and matches (the sum) instead of lines. Paged: pass next_offset as offset while has_more (limit 1-1000); total counts only the matches scanned so far while total_is_lower_bound is true. A search over the server's budget fails: narrow path, add include, or simplify the pattern.",
        GrepParams
    ),
    tool!(
        "nexus_semantic_search",
        "search",
        admin = false,
        ro = true,
        destr = false,
        idem = true,
        "Search files by meaning or keywords",
        "Rank text files under path by relevance to query (words, not a regex). Returns items best first: path, score (comparable within one answer), line and snippet (the line with the most query words); total, has_more, next_offset (pass as offset; limit 1-100, default 10). search_mode keyword (BM25: rarer words weigh more) is always available; semantic and hybrid need the server's embeddings endpoint, and without it the answer is keyword ranking with semantic_degraded=true. For exact text or regexes use nexus_grep.",
        SearchParams
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
        EmptyParams
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
        TokenCreateParams
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
        TokenListParams
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
        TokenRevokeParams
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
        StatusParams
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
        AdminCreateUserParams
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
        AdminListUsersParams
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
        AdminUserParams
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
        AdminSetUserStateParams
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
        AdminCreateAgentKeyParams
    ),
    tool!(
        "nexus_hub_oauth_client_list",
        "hub_admin_oauth_client_list",
        admin = true,
        ro = true,
        destr = false,
        idem = true,
        "List OAuth clients",
        "Admin: list the MCP clients that signed users in through the hub's OAuth server (id, kind, name, redirect URIs, status, live tokens).",
        EmptyParams
    ),
    tool!(
        "nexus_hub_oauth_client_revoke",
        "hub_admin_oauth_client_revoke",
        admin = true,
        ro = false,
        destr = true,
        idem = true,
        "Revoke OAuth client",
        "Admin: revoke an OAuth client by client_id: its access and refresh tokens end now and it can sign no one in again.",
        OAuthClientRevokeParams
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
        RebacTupleParams
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
        RebacDeleteParams
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
        RebacCheckParams
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
        RebacListParams
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
        RebacExpandParams
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
        Tool::new(self.name, self.description, Arc::clone(self.schema))
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
    use serde_json::json;

    fn schema_of(t: &ToolSpec) -> Value {
        Value::Object(JsonObject::clone(t.schema))
    }

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
            let schema = schema_of(t);
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
    fn every_tool_is_in_the_agents_reference() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/TOOLS.md"),
        )
        .expect("docs/TOOLS.md");
        for t in TOOLS {
            assert!(
                doc.contains(&format!("`{}`", t.name)),
                "docs/TOOLS.md does not name {}",
                t.name
            );
        }
    }

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
            let v = sample(&schema_of(t));
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

    /// The wire type the rpc-server decodes a method's params into (as its dispatch names
    /// it): how it decodes, and that type's own schema.
    struct Decoder {
        decode: fn(Value) -> Result<(), serde_json::Error>,
        schema: fn() -> Arc<JsonObject>,
    }

    fn decoder(m: Method) -> Decoder {
        fn into<T: serde::de::DeserializeOwned>(v: Value) -> Result<(), serde_json::Error> {
            serde_json::from_value::<T>(v).map(drop)
        }
        fn of<T: serde::de::DeserializeOwned + JsonSchema>() -> Decoder {
            Decoder {
                decode: into::<T>,
                schema: input_schema::<T>,
            }
        }
        match m {
            Method::Read => of::<ReadParams>(),
            Method::Write => of::<WriteParams>(),
            Method::Edit => of::<EditParams>(),
            Method::Delete | Method::Stat => of::<PathParams>(),
            Method::List => of::<ListParams>(),
            Method::Mkdir => of::<MkdirParams>(),
            Method::Rmdir => of::<RmdirParams>(),
            Method::Rename => of::<RenameParams>(),
            Method::Glob => of::<GlobParams>(),
            Method::Grep => of::<GrepParams>(),
            Method::Search => of::<SearchParams>(),
            Method::MdStructure => of::<MdStructureParams>(),
            Method::Whoami => of::<EmptyParams>(),
            Method::TokenCreate => of::<TokenCreateParams>(),
            Method::TokenList => of::<TokenListParams>(),
            Method::TokenRevoke => of::<TokenRevokeParams>(),
            Method::Status => of::<StatusParams>(),
            Method::CreateUser => of::<AdminCreateUserParams>(),
            Method::ListUsers => of::<AdminListUsersParams>(),
            Method::DeleteUser => of::<AdminUserParams>(),
            Method::SetUserState => of::<AdminSetUserStateParams>(),
            Method::CreateAgentKey => of::<AdminCreateAgentKeyParams>(),
            Method::OAuthClientList => of::<EmptyParams>(),
            Method::OAuthClientRevoke => of::<OAuthClientRevokeParams>(),
            Method::RebacCreate | Method::RebacDelete => of::<RebacTupleParams>(),
            Method::RebacCheck => of::<RebacCheckParams>(),
            Method::RebacListTuples => of::<RebacListParams>(),
            Method::RebacExpand => of::<RebacExpandParams>(),
            Method::ZoneCreate | Method::ZoneList | Method::ZoneDelete | Method::ZoneRestore => {
                panic!("{m} has no tool")
            }
        }
    }

    /// A valid value for `schema`: its default or first enum value, else one of its type
    /// within its bounds; objects get every property (`all`) or only the required ones.
    fn valid(schema: &Value, all: bool) -> Value {
        if let Some(v) = schema.get("enum").and_then(|e| e.get(0)) {
            return v.clone();
        }
        match schema["type"].as_str() {
            Some("boolean") => json!(true),
            Some("integer") => {
                let min = schema["minimum"].as_u64().unwrap_or(0);
                let max = schema["maximum"].as_u64().unwrap_or(u64::MAX);
                json!(min.max(7).min(max))
            }
            Some("number") => json!(schema["minimum"].as_f64().unwrap_or(0.0)),
            Some("string") => json!("x"),
            Some("array") => {
                let n = schema["minItems"].as_u64().unwrap_or(1).max(1);
                Value::Array((0..n).map(|_| valid(&schema["items"], all)).collect())
            }
            Some("object") => {
                let required = |k: &str| {
                    schema["required"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|n| n == k))
                };
                Value::Object(
                    schema["properties"]
                        .as_object()
                        .expect("properties")
                        .iter()
                        .filter(|(k, _)| all || required(k))
                        .map(|(k, p)| (k.clone(), valid(p, all)))
                        .collect(),
                )
            }
            other => panic!("no sample for type {other:?} in {schema}"),
        }
    }

    /// Each tool's schema is valid JSON Schema 2020-12 and agrees with the decoder the
    /// rpc-server runs for the tool's method: arguments the schema accepts (every member,
    /// or only the required ones) decode, and an unknown member is refused by both.
    #[test]
    fn schemas_agree_with_the_decoders() {
        for t in TOOLS {
            let schema = schema_of(t);
            assert_eq!(
                schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{}",
                t.name
            );
            assert!(schema["properties"].is_object(), "{}", t.name);
            let text = schema.to_string();
            assert!(
                !text.contains("$ref") && !text.contains("$defs"),
                "{}: not inlined: {text}",
                t.name
            );
            assert!(
                !text.contains("null"),
                "{}: advertises null: {text}",
                t.name
            );
            let mut compiler = boon::Compiler::new();
            let mut schemas = boon::Schemas::new();
            let url = format!("urn:nexus:{}", t.name);
            compiler
                .add_resource(&url, schema.clone())
                .expect("resource");
            let index = compiler
                .compile(&url, &mut schemas)
                .unwrap_or_else(|e| panic!("{}: not a valid schema: {e:#}", t.name));
            let method = Method::parse(t.rpc_method).expect("known method");
            let decode = decoder(method).decode;
            for all in [true, false] {
                let args = valid(&schema, all);
                if let Err(e) = schemas.validate(&args, index) {
                    panic!("{}: {args} refused by its own schema: {e}", t.name);
                }
                if let Err(e) = decode(args.clone()) {
                    panic!("{}: {args} refused by {method}: {e}", t.name);
                }
                let mut extra = args.clone();
                extra["nope"] = json!("x");
                assert!(
                    schemas.validate(&extra, index).is_err(),
                    "{}: schema takes an unknown member",
                    t.name
                );
                assert!(
                    decode(extra).is_err(),
                    "{}: {method} takes an unknown member",
                    t.name
                );
            }
        }
    }

    /// A tool's schema names the members its method's decoder takes, and requires the same
    /// ones, but for the one kept out on purpose: `expires`, which `rebac_delete` refuses.
    #[test]
    fn schemas_name_what_the_methods_take() {
        fn names(schema: &JsonObject, key: &str) -> Vec<String> {
            let mut out: Vec<String> = match schema.get(key) {
                Some(Value::Object(m)) => m.keys().cloned().collect(),
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                _ => Vec::new(),
            };
            out.sort();
            out
        }
        for t in TOOLS {
            let method = Method::parse(t.rpc_method).expect("known method");
            let decoded = (decoder(method).schema)();
            let mut want = names(&decoded, "properties");
            if method == Method::RebacDelete {
                // Decoded with rebac_create's type, refused by the control plane after.
                want.retain(|k| k != "expires");
            }
            assert_eq!(names(t.schema, "properties"), want, "{}", t.name);
            assert_eq!(
                names(t.schema, "required"),
                names(&decoded, "required"),
                "{}",
                t.name
            );
        }
    }
}
