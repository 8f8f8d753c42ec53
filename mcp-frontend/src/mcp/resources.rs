//! Files as MCP resources (SPEC §14): the template `nexus://files/{path}`, `resources/list`
//! (the caller's files, paginated), `resources/read` (text, or a base64 blob when the bytes
//! are not UTF-8), and completion of paths. Every answer comes from the rpc-server with the
//! caller's own token, so it holds exactly what the caller may see; the frontend only turns
//! paths into URIs and back. A URI's path is the path the caller's tools use (one zone:
//! `/notes.md`; several: `/zone/<zone>/notes.md`), percent-encoded; the rpc-server
//! normalises and judges it.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use rmcp::ErrorData as McpError;
use rmcp::model::{ErrorCode as McpCode, Resource, ResourceContents, ResourceTemplate};

/// What every file URI starts with.
pub(crate) const PREFIX: &str = "nexus://files/";
/// The one resource template.
pub(crate) const TEMPLATE: &str = "nexus://files/{path}";
/// Resources per `resources/list` page.
pub(crate) const PAGE: usize = 100;
/// Completion values per answer (MCP allows 100).
pub(crate) const MAX_COMPLETIONS: usize = 100;
/// Longest path accepted in a URI or a completion (the rpc-server has its own limits).
const MAX_PATH: usize = 4096;

/// Characters escaped in a URI's path: controls, space and what would end or change the
/// URI (`/` stays: it separates the path's segments).
const ESCAPED: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The URI of the file the caller knows as `path`.
pub(crate) fn uri_of(path: &str) -> String {
    format!(
        "{PREFIX}{}",
        utf8_percent_encode(path.trim_start_matches('/'), ESCAPED)
    )
}

/// The caller's path named by `uri` (always `/`-rooted), or why it names none.
pub(crate) fn path_of(uri: &str) -> Result<String, McpError> {
    let shown = nexus_wire::jsonrpc::printable(uri);
    let rest = uri.strip_prefix(PREFIX).ok_or_else(|| {
        McpError::resource_not_found(
            format!("unknown resource {shown}: files are {TEMPLATE}"),
            None,
        )
    })?;
    let path = percent_decode_str(rest).decode_utf8().map_err(|_| {
        McpError::invalid_params(format!("{shown} is not UTF-8 once decoded"), None)
    })?;
    if path.is_empty() || path.len() > MAX_PATH || path.chars().any(char::is_control) {
        return Err(McpError::invalid_params(
            format!("{shown} names no file path"),
            None,
        ));
    }
    Ok(format!("/{}", path.trim_start_matches('/')))
}

/// A media type by file extension, for the common text files agents read; `None` leaves
/// it to the client.
pub(crate) fn mime_of(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "md" | "markdown" => "text/markdown",
        "txt" | "log" => "text/plain",
        "json" => "application/json",
        "yaml" | "yml" => "application/yaml",
        "toml" => "application/toml",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "py" => "text/x-python",
        "rs" => "text/x-rust",
        "js" | "mjs" => "text/javascript",
        "ts" => "text/x-typescript",
        "sh" => "text/x-shellscript",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        _ => return None,
    })
}

/// The listing entry of one file.
pub(crate) fn resource(item: &nexus_wire::methods::ListItem) -> Resource {
    let mut r = Resource::new(uri_of(&item.path), item.name.clone()).with_title(item.path.clone());
    if let Some(size) = item.size {
        r = r.with_size(size);
        let mut description = format!("{size} bytes");
        if let Some(m) = &item.modified {
            description.push_str(", modified ");
            description.push_str(m);
        }
        r = r.with_description(description);
    }
    if let Some(m) = mime_of(&item.path) {
        r = r.with_mime_type(m);
    }
    r
}

pub(crate) fn template() -> ResourceTemplate {
    ResourceTemplate::new(TEMPLATE, "file")
        .with_title("A file in your zones")
        .with_description(
            "Any file you may read, by the path your tools use (one zone: notes/a.md; several: \
             zone/<zone>/notes/a.md). Text files read as text, others as a base64 blob.",
        )
}

/// The contents of a read: text when the bytes are UTF-8, else the base64 blob as it came.
pub(crate) fn contents(uri: String, path: &str, base64: String) -> ResourceContents {
    use base64::Engine as _;
    let mime = mime_of(path).map(str::to_owned);
    match base64::engine::general_purpose::STANDARD
        .decode(base64.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    {
        Some(text) => ResourceContents::TextResourceContents {
            uri,
            mime_type: mime.or_else(|| Some("text/plain".into())),
            text,
            meta: None,
        },
        None => ResourceContents::BlobResourceContents {
            uri,
            mime_type: mime.or_else(|| Some("application/octet-stream".into())),
            blob: base64,
            meta: None,
        },
    }
}

/// An opaque `resources/list` cursor: the offset of the next page.
pub(crate) fn cursor(offset: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("files:{offset}"))
}

pub(crate) fn offset_of(cursor: Option<&str>) -> Result<usize, McpError> {
    use base64::Engine as _;
    let Some(c) = cursor else { return Ok(0) };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("files:")?.parse().ok())
        .ok_or_else(|| McpError::invalid_params("unknown cursor: start again without one", None))
}

/// What a completion of `value` asks for: the directory to list and the start of the
/// names wanted. `None` for anything that cannot name a path of the caller's (`..`,
/// controls, too long): such a value completes to nothing.
pub(crate) fn completion_query(value: &str) -> Option<(String, String)> {
    if value.len() > MAX_PATH || value.chars().any(char::is_control) {
        return None;
    }
    let value = value.trim_start_matches('/');
    if value.split('/').any(|s| s == ".." || s == ".") {
        return None;
    }
    let (dir, start) = match value.rsplit_once('/') {
        Some((d, s)) => (format!("/{d}"), s),
        None => ("/".to_owned(), value),
    };
    Some((dir, start.to_owned()))
}

/// The completion of one listed entry, written as the caller wrote the value (with or
/// without a leading `/`); directories end in `/`, so the next completion goes inside.
pub(crate) fn completion_value(typed: &str, item: &nexus_wire::methods::ListItem) -> String {
    let mut v = if typed.starts_with('/') {
        item.path.clone()
    } else {
        item.path.trim_start_matches('/').to_owned()
    };
    if item.is_dir {
        v.push('/');
    }
    v
}

/// The JSON-RPC error of a failed rpc call made for a resource request: a missing file is
/// MCP's "resource not found"; anything else keeps the hub's code and message.
pub(crate) fn rpc_error(e: &crate::forward::ForwardError) -> McpError {
    use crate::forward::ForwardError;
    match e {
        ForwardError::Rpc(err) if err.kind() == Some(nexus_wire::ErrorCode::FileNotFound) => {
            McpError::resource_not_found(err.message.clone(), None)
        }
        ForwardError::Rpc(err) => {
            McpError::new(McpCode(err.code as i32), err.message.clone(), None)
        }
        other => McpError::internal_error(other.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_paths_round_trip_and_foreign_uris_are_refused() {
        for p in ["/a.md", "/zone/eng/d i r/ü#?.txt", "/x%41.md", "/a/b/c"] {
            let uri = uri_of(p);
            assert!(uri.starts_with(PREFIX) && !uri[PREFIX.len()..].contains(['#', '?', ' ']));
            assert_eq!(path_of(&uri).expect("a path"), p, "{uri}");
        }
        assert_eq!(
            path_of("nexus://files/docs%2Fa.md").expect("encoded /"),
            "/docs/a.md"
        );
        assert!(path_of("file:///etc/passwd").is_err());
        assert!(path_of("nexus://files/").is_err());
        assert!(path_of("nexus://files/%FF").is_err());
        assert!(path_of("nexus://files/a%0Ab").is_err());
        // `..` is the rpc-server's to refuse (it normalises every path); it stays in.
        assert_eq!(path_of("nexus://files/../x").expect("kept"), "/../x");
    }

    #[test]
    fn completions_never_leave_the_callers_view() {
        assert_eq!(completion_query("do"), Some(("/".into(), "do".into())));
        assert_eq!(
            completion_query("/docs/gu"),
            Some(("/docs".into(), "gu".into()))
        );
        assert_eq!(
            completion_query("docs/"),
            Some(("/docs".into(), String::new()))
        );
        for bad in [
            "../",
            "/../etc",
            "a/../../b",
            "./x",
            "a\nb",
            &"x".repeat(5000),
        ] {
            assert_eq!(completion_query(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cursors_are_opaque_and_checked() {
        assert_eq!(offset_of(Some(&cursor(300))).expect("ours"), 300);
        assert_eq!(offset_of(None).expect("none"), 0);
        assert!(offset_of(Some("300")).is_err());
        assert!(offset_of(Some("!!")).is_err());
    }

    #[test]
    fn text_reads_as_text_and_other_bytes_as_a_blob() {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        match contents("u".into(), "/a.md", b64("# hi".as_bytes())) {
            ResourceContents::TextResourceContents {
                text, mime_type, ..
            } => {
                assert_eq!(text, "# hi");
                assert_eq!(mime_type.as_deref(), Some("text/markdown"));
            }
            other => panic!("{other:?}"),
        }
        match contents("u".into(), "/a.bin", b64(&[0xff, 0xfe, 0])) {
            ResourceContents::BlobResourceContents {
                blob, mime_type, ..
            } => {
                assert_eq!(blob, b64(&[0xff, 0xfe, 0]));
                assert_eq!(mime_type.as_deref(), Some("application/octet-stream"));
            }
            other => panic!("{other:?}"),
        }
    }
}
