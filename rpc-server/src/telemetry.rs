//! Logging setup: `NEXUS_LOG_LEVEL` (an env-filter directive) and `NEXUS_LOG_FORMAT`
//! (`text` or `json`). Logs go to stderr so stdout stays free for audit lines and CLI output.

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
        .with_writer(std::io::stderr);
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
