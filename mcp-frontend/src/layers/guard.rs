//! Host and Origin validation before anything else looks at a request: a DNS-rebinding
//! page in a browser must not reach the hub, token or not.

use crate::error::GatewayError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// True when `host` (a Host header value) is allowed. Entries match a bare host (any port)
/// or an exact `host:port`; `*` allows all.
pub(crate) fn host_allowed(allowed: &[String], host: &str) -> bool {
    // Called on every request: compares without building lowercase copies.
    let host = host.trim();
    let bare = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        },
    };
    allowed.iter().any(|a| {
        a == "*"
            || a.eq_ignore_ascii_case(host)
            || a.eq_ignore_ascii_case(bare)
            || a.trim_matches(['[', ']']).eq_ignore_ascii_case(bare)
    })
}

/// True when `origin` matches an entry (`scheme://host[:port]`, `:*` for any port).
pub(crate) fn origin_allowed(allowed: &[String], origin: &str) -> bool {
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

/// True when `origin` is this hub's own origin (`public` is `scheme://host[:port]`, as
/// [`AppState::public_base`] names it: a Host let in only by `*` is never its own).
fn same_origin(public: &str, origin: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim().trim_end_matches('/').to_ascii_lowercase();
        // The default port may be written or left out.
        for (scheme, port) in [("http://", ":80"), ("https://", ":443")] {
            if s.starts_with(scheme)
                && let Some(bare) = s.strip_suffix(port)
            {
                return bare.to_owned();
            }
        }
        s
    };
    !origin.trim().is_empty() && norm(public) == norm(origin)
}

/// True for a listening address only this machine can reach.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().trim_matches(['[', ']']);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// True for an `http(s)://` origin on a loopback host: a page served on this machine. A
/// hub that only this machine can reach accepts them (a DNS-rebinding page has a foreign
/// origin, whatever its name resolves to).
fn is_loopback_origin(origin: &str) -> bool {
    let o = origin.trim().to_ascii_lowercase();
    let Some(rest) = o
        .strip_prefix("http://")
        .or_else(|| o.strip_prefix("https://"))
    else {
        return false;
    };
    let host = if let Some(v6) = rest.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, port)) if port.is_empty() || valid_port(port) => h,
            _ => return false,
        }
    } else {
        match rest.split_once(':') {
            Some((h, port)) if valid_port(port) => h,
            Some(_) => return false,
            None => rest,
        }
    };
    is_loopback_host(host)
}

fn valid_port(colon_port: &str) -> bool {
    colon_port
        .strip_prefix(':')
        .unwrap_or(colon_port)
        .parse::<u16>()
        .is_ok()
}

/// Host alone, for the OAuth endpoints any web page may call (their CORS is open, see
/// [`crate::router`]): a foreign Host is still 403, a foreign Origin is not.
pub(crate) async fn host_only_guard(
    State(st): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Err(refused) = check_host(&st, &mut req) {
        return refused.into_response();
    }
    next.run(req).await
}

pub(crate) async fn host_guard(
    State(st): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Err(refused) = check_host(&st, &mut req) {
        return refused.into_response();
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ok = origin.to_str().is_ok_and(|o| {
            origin_allowed(&st.cfg.allowed_origins, o)
                || same_origin(&st.public_base(Some(host)), o)
                || (is_loopback_host(&st.cfg.host) && is_loopback_origin(o))
        });
        if !ok {
            return GatewayError::ForbiddenOrigin.into_response();
        }
    }
    next.run(req).await
}

/// Nothing if the request's Host is allowed, else the refusal (403) to send.
fn check_host(st: &AppState, req: &mut Request) -> Result<(), GatewayError> {
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
        return Err(GatewayError::ForbiddenHost);
    }
    Ok(())
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
    fn own_and_loopback_origins() {
        assert!(same_origin(
            "http://localhost:8081",
            "http://localhost:8081"
        ));
        assert!(same_origin(
            "https://hub.example.com",
            "https://hub.example.com:443"
        ));
        assert!(same_origin("http://hub:80", "HTTP://HUB"));
        assert!(!same_origin(
            "http://localhost:8081",
            "http://localhost:8082"
        ));
        assert!(!same_origin(
            "http://localhost:8081",
            "https://localhost:8081"
        ));
        assert!(!same_origin("http://localhost:8081", ""));
        for ok in [
            "http://localhost:8081",
            "http://localhost",
            "https://127.0.0.1:3000",
            "http://[::1]:8081",
            "http://127.8.9.1",
        ] {
            assert!(is_loopback_origin(ok), "{ok}");
        }
        for bad in [
            "null",
            "http://evil.com",
            "http://localhost.evil.com:8081",
            "http://127.0.0.1.evil.com",
            "http://localhost:notaport",
            "http://localhost:8081/path",
            "file://localhost",
            "http://[::2]:1",
            "http://10.0.0.1:8081",
        ] {
            assert!(!is_loopback_origin(bad), "{bad}");
        }
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("::1"));
        assert!(is_loopback_host("localhost"));
        assert!(!is_loopback_host("0.0.0.0"));
        assert!(!is_loopback_host("192.168.1.2"));
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
