//! Logging setup: `NEXUS_LOG_LEVEL` (an env-filter directive) and `NEXUS_LOG_FORMAT`
//! (`text` or `json`). Logs go to stderr so stdout stays free for audit lines and CLI output;
//! colour codes only when stderr is a terminal, so files and log collectors get plain text.
//! Also the request span both services' trace layers use (docs/LOGGING.md).

use axum::extract::MatchedPath;
use axum::http::Request;
use std::io::IsTerminal;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnRequest, DefaultOnResponse, MakeSpan, TraceLayer};
use tracing::{Level, Span};
use tracing_subscriber::EnvFilter;

/// rmcp logs three info lines for every stateless request (service started, cancelled,
/// finished); at a gateway's request rates that is most of the log volume and a measurable
/// share of the frontend's CPU, so its info level is off unless a directive names it.
const QUIET_RMCP: &str = "rmcp=warn";

/// The filter directive in force: `level` (default `info`), with rmcp's per-request
/// chatter held to warnings unless `level` mentions rmcp itself.
pub fn directive(level: Option<&str>) -> String {
    let level = level
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .unwrap_or("info");
    if level.contains("rmcp") {
        level.to_owned()
    } else {
        format!("{level},{QUIET_RMCP}")
    }
}

pub fn init(level: Option<&str>, format: Option<&str>) {
    let filter =
        EnvFilter::try_new(directive(level)).unwrap_or_else(|_| EnvFilter::new(directive(None)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let res = if format == Some("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // Already initialised (tests, embedded mode): keep the first.
    drop(res);
}

/// Reads the logging variables.
pub fn init_from_env() {
    let level = std::env::var("NEXUS_LOG_LEVEL").ok();
    let format = std::env::var("NEXUS_LOG_FORMAT").ok();
    init(level.as_deref(), format.as_deref());
}

/// The span of one HTTP request, at `debug`: method, matched route (never the raw URI,
/// which carries whatever the caller typed, query included) and the request id set by the
/// request-id layer before it. Headers and bodies are never recorded.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &Request<B>) -> Span {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        let request_id = req
            .headers()
            .get(nexus_wire::headers::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::debug_span!("request", method = %req.method(), route, request_id)
    }
}

/// The trace layer of both services: a [`RequestSpan`] per request, closed by a `debug`
/// event with the status and latency; a server error (5xx) or a failed response is also
/// an `error` event.
pub type HttpTrace = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    RequestSpan,
    DefaultOnRequest,
    DefaultOnResponse,
>;

pub fn http_trace() -> HttpTrace {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_request(DefaultOnRequest::new().level(Level::DEBUG))
        .on_response(
            DefaultOnResponse::new()
                .level(Level::DEBUG)
                .latency_unit(tower_http::LatencyUnit::Micros),
        )
}

#[cfg(test)]
mod tests {
    use super::directive;

    #[test]
    fn rmcp_request_chatter_is_quiet_unless_asked_for() {
        assert_eq!(directive(None), "info,rmcp=warn");
        assert_eq!(directive(Some("")), "info,rmcp=warn");
        assert_eq!(directive(Some("debug")), "debug,rmcp=warn");
        assert_eq!(directive(Some("info,rmcp=debug")), "info,rmcp=debug");
    }
}
