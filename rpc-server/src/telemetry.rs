//! Logging setup: `NEXUS_LOG_LEVEL` (an env-filter directive) and `NEXUS_LOG_FORMAT`
//! (`text` or `json`). Logs go to stderr so stdout stays free for audit lines and CLI output.

use tracing_subscriber::EnvFilter;

pub fn init(level: Option<&str>, format: Option<&str>) {
    let filter =
        EnvFilter::try_new(level.unwrap_or("info")).unwrap_or_else(|_| EnvFilter::new("info"));
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
