//! The frontend as a process: what `nexus-mcp` and `nexus mcp serve` both run, so the two
//! entry points take the same flags, environment and `[mcp]` config section and cannot
//! drift apart.

use crate::config::{FrontendArgs, FrontendConfig};
use crate::startup::Frontend;
use clap::Parser;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// The `[mcp]` section of the configuration file: the one `nexus mcp serve` reads too.
pub const CONFIG_SECTION: &str = "mcp";

/// `nexus-mcp`'s command line: the frontend's flags and `--config`.
#[derive(Debug, Parser)]
#[command(
    name = "nexus-mcp",
    version,
    about = "Nexus Hub MCP frontend: MCP over HTTP at /mcp, forwarding every call to the \
             rpc-server with the caller's token (same as `nexus mcp serve`)"
)]
pub struct Cli {
    /// Configuration file (its [mcp] section); flags and environment variables override it.
    #[arg(long, env = "NEXUS_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub frontend: FrontendArgs,
}

/// Parses `argv` (program name first); with `--config`, the file's `[mcp]` section fills
/// what flags and environment left at defaults.
pub fn parse(argv: &[OsString]) -> anyhow::Result<Cli> {
    nexus_serve::process::parse(argv, CONFIG_SECTION, |c: &Cli| c.config.as_deref())
}

/// Serves the frontend configured by `args` until SIGINT or SIGTERM.
pub async fn serve_from_args(args: FrontendArgs) -> anyhow::Result<()> {
    nexus_serve::telemetry::init_from_env();
    let cfg = FrontendConfig::from_args(args)?;
    let fe = Frontend::build(cfg).await?;
    fe.run_until_stopped(nexus_serve::shutdown_signal()).await
}

/// `nexus-mcp`'s `main`.
pub fn main_entry() -> ExitCode {
    nexus_serve::process::main(
        CONFIG_SECTION,
        |c: &Cli| c.config.as_deref(),
        |c: Cli| serve_from_args(c.frontend),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("nexus-mcp")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn config_file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), text).expect("write config");
        f
    }

    #[test]
    fn config_fills_defaults_and_flags_win() {
        let f = config_file("[mcp]\nport = 9123\nhost = \"127.0.0.2\"\n[rpc]\nport = 1\n");
        let p = f.path().to_string_lossy().into_owned();
        let cli = parse(&argv(&["--config", &p, "--port", "9124"])).expect("parses");
        let cfg = FrontendConfig::from_args(cli.frontend).expect("valid");
        assert_eq!(cfg.port, 9124, "a flag wins over the file");
        assert_eq!(cfg.host, "127.0.0.2", "the file fills a default");
    }

    #[test]
    fn config_refuses_an_unknown_key() {
        let f = config_file("[mcp]\nno_such_flag = 1\n");
        let p = f.path().to_string_lossy().into_owned();
        let err = parse(&argv(&["--config", &p])).expect_err("unknown key");
        assert!(err.to_string().contains("no_such_flag"), "{err:#}");
    }
}
