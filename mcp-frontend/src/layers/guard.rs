//! Host and Origin validation before anything else looks at a request: a DNS-rebinding
//! page in a browser must not reach the hub, token or not.

use super::error_response;
use crate::app::AppState;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// True when `host` (a Host header value) is allowed. Entries match a bare host (any port)
/// or an exact `host:port`; `*` allows all.
pub fn host_allowed(allowed: &[String], host: &str) -> bool {
    if allowed.iter().any(|a| a == "*") {
        return true;
    }
    let host = host.trim().to_ascii_lowercase();
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("").to_owned()
    } else {
        host.rsplit_once(':')
            .map(|(h, p)| {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    host.as_str()
                }
            })
            .unwrap_or(&host)
            .to_owned()
    };
    allowed.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        a == host || a == bare || a.trim_matches(['[', ']']) == bare
    })
}

/// True when `origin` matches an entry (`scheme://host[:port]`, `:*` for any port).
pub fn origin_allowed(allowed: &[String], origin: &str) -> bool {
    let origin = origin.trim().to_ascii_lowercase();
    allowed.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        match a.strip_suffix(":*") {
            Some(prefix) => {
                origin == prefix
                    || origin
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with(':'))
            }
            None => a == origin,
        }
    })
}

pub async fn host_guard(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    // HTTP/2 carries the host in :authority, not Host: give everything below one Host.
    if !req.headers().contains_key(header::HOST)
        && let Some(v) = req
            .uri()
            .authority()
            .and_then(|a| axum::http::HeaderValue::from_str(a.as_str()).ok())
    {
        req.headers_mut().insert(header::HOST, v);
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !host_allowed(&st.cfg.allowed_hosts, host) {
        return error_response(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            "Host header not allowed (NEXUS_MCP_ALLOWED_HOSTS)",
        );
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = !st.cfg.allowed_origins.is_empty()
            && origin
                .to_str()
                .is_ok_and(|o| origin_allowed(&st.cfg.allowed_origins, o));
        if !ok {
            return error_response(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                "Origin not allowed (NEXUS_MCP_ALLOWED_ORIGINS)",
            );
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let a = vec![
            "localhost".to_string(),
            "127.0.0.1".into(),
            "::1".into(),
            "hub.example.com:8443".into(),
        ];
        for ok in [
            "localhost",
            "localhost:8081",
            "127.0.0.1:1",
            "[::1]:8081",
            "hub.example.com:8443",
        ] {
            assert!(host_allowed(&a, ok), "{ok}");
        }
        for bad in [
            "",
            "evil.com",
            "evil.com:8081",
            "localhost.evil.com",
            "hub.example.com",
            "127.0.0.2",
        ] {
            assert!(!host_allowed(&a, bad), "{bad}");
        }
        assert!(host_allowed(&["*".into()], "anything"));
    }

    #[test]
    fn origins() {
        let a = vec![
            "https://app.example.com".to_string(),
            "http://localhost:*".into(),
        ];
        assert!(origin_allowed(&a, "https://app.example.com"));
        assert!(origin_allowed(&a, "http://localhost:3000"));
        assert!(origin_allowed(&a, "http://localhost"));
        assert!(!origin_allowed(&a, "https://app.example.com.evil.com"));
        assert!(!origin_allowed(&a, "http://localhostx:1"));
        assert!(!origin_allowed(&a, "null"));
    }
}
