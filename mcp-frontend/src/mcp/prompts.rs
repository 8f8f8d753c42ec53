//! The prompts (SPEC §14), named as the original's so that clients and agent setups that
//! use them carry over: `file_analysis_prompt(file_path)` and
//! `search_and_summarize_prompt(query)`. A prompt is text that tells the agent which tools
//! to use; it reads nothing itself, so it shows nothing the caller's tools would not.

use rmcp::ErrorData as McpError;
use rmcp::model::{GetPromptResult, JsonObject, Prompt, PromptArgument, PromptMessage, Role};

pub(crate) const FILE_ANALYSIS: &str = "file_analysis_prompt";
pub(crate) const SEARCH_AND_SUMMARIZE: &str = "search_and_summarize_prompt";
/// The argument of each prompt that names a path (completed by `completion/complete`).
pub(crate) const FILE_PATH: &str = "file_path";
/// Longest argument accepted.
const MAX_ARGUMENT: usize = 4096;

pub(crate) fn list() -> Vec<Prompt> {
    vec![
        Prompt::new(
            FILE_ANALYSIS,
            Some(
                "Analyze one file: read it (markdown by its structure first), then summarize its \
                 purpose, structure and key points, and note problems.",
            ),
            Some(vec![
                PromptArgument::new(FILE_PATH)
                    .with_description(
                        "The file's path, as your tools name it (e.g. /notes/plan.md)",
                    )
                    .with_required(true),
            ]),
        )
        .with_title("Analyze a file"),
        Prompt::new(
            SEARCH_AND_SUMMARIZE,
            Some(
                "Search your files for a topic, read the most relevant ones and summarize what \
                 they say, citing paths.",
            ),
            Some(vec![
                PromptArgument::new("query")
                    .with_description("What to look for: words, a phrase or a question")
                    .with_required(true),
                PromptArgument::new("path")
                    .with_description("Search only below this directory (default: everywhere)")
                    .with_required(false),
            ]),
        )
        .with_title("Search and summarize"),
    ]
}

/// One argument: present (when `required`), text, bounded, without control characters.
fn argument(
    args: Option<&JsonObject>,
    name: &str,
    required: bool,
) -> Result<Option<String>, McpError> {
    let Some(v) = args.and_then(|a| a.get(name)) else {
        return if required {
            Err(McpError::invalid_params(
                format!("missing argument {name}"),
                None,
            ))
        } else {
            Ok(None)
        };
    };
    let s = v
        .as_str()
        .ok_or_else(|| McpError::invalid_params(format!("{name} must be a string"), None))?
        .trim();
    if s.is_empty() && required {
        return Err(McpError::invalid_params(format!("{name} is empty"), None));
    }
    if s.len() > MAX_ARGUMENT || s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(McpError::invalid_params(
            format!("{name} must be at most {MAX_ARGUMENT} bytes of text"),
            None,
        ));
    }
    Ok((!s.is_empty()).then(|| s.to_owned()))
}

pub(crate) fn get(name: &str, args: Option<&JsonObject>) -> Result<GetPromptResult, McpError> {
    let text = match name {
        FILE_ANALYSIS => {
            let path = argument(args, FILE_PATH, true)?.unwrap_or_default();
            format!(
                "Analyze the file {path} in the hub.\n\n\
                 1. If it is markdown, call nexus_md_structure with path {path:?} to see its \
                 sections, then read the sections that matter with nexus_read_file and `section`; \
                 otherwise read it with nexus_read_file (use offset/limit for long files).\n\
                 2. Summarize its purpose, structure and key points.\n\
                 3. List problems you notice (errors, contradictions, gaps, stale parts), each with \
                 the line or section it is in.\n\
                 Do not change the file."
            )
        }
        SEARCH_AND_SUMMARIZE => {
            let query = argument(args, "query", true)?.unwrap_or_default();
            let scope = match argument(args, "path", false)? {
                Some(p) => format!(" below {p} (pass it as `path`)"),
                None => String::new(),
            };
            format!(
                "Find what the files in the hub say about: {query}\n\n\
                 1. Search{scope} with nexus_semantic_search (query {query:?}); for an exact \
                 word or pattern use nexus_grep as well.\n\
                 2. Read the most relevant results with nexus_read_file (for markdown, only the \
                 sections that matter).\n\
                 3. Summarize what they say, citing each file's path, and say what you did not \
                 find."
            )
        }
        other => {
            return Err(McpError::invalid_params(
                format!(
                    "unknown prompt {}: use {FILE_ANALYSIS} or {SEARCH_AND_SUMMARIZE}",
                    nexus_wire::jsonrpc::printable(other)
                ),
                None,
            ));
        }
    };
    let description = list()
        .into_iter()
        .find(|p| p.name == name)
        .and_then(|p| p.description);
    let mut r = GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]);
    if let Some(d) = description {
        r = r.with_description(d);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: serde_json::Value) -> JsonObject {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn prompts_need_their_arguments_and_name_the_tools() {
        let r = get(FILE_ANALYSIS, Some(&args(json!({"file_path": "/a.md"})))).expect("prompt");
        let text = serde_json::to_string(&r).expect("json");
        assert!(
            text.contains("/a.md") && text.contains("nexus_md_structure"),
            "{text}"
        );
        assert!(get(FILE_ANALYSIS, None).is_err());
        assert!(get(FILE_ANALYSIS, Some(&args(json!({"file_path": 3})))).is_err());
        assert!(get(FILE_ANALYSIS, Some(&args(json!({"file_path": "a\u{0}b"})))).is_err());
        assert!(get(SEARCH_AND_SUMMARIZE, Some(&args(json!({"query": ""})))).is_err());
        let r = get(
            SEARCH_AND_SUMMARIZE,
            Some(&args(json!({"query": "rate limits", "path": "/docs"}))),
        )
        .expect("prompt");
        let text = serde_json::to_string(&r).expect("json");
        assert!(
            text.contains("rate limits") && text.contains("/docs"),
            "{text}"
        );
        assert!(get("other", None).is_err());
        assert!(list().iter().all(|p| p.description.is_some()));
    }
}
