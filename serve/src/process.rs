//! The life of a server binary, the same for `nexusd` and `nexus-mcp`: parse the command
//! line (a configuration file's section under the flags and environment), serve on the
//! runtime until the shutdown signal, and turn any failure into one `error:` line and a
//! failing exit code.

use clap::Parser;
use std::ffi::OsString;
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

/// Parses `argv` (program name first). When `config` names a file, its `section` fills
/// what flags and environment left at their defaults.
pub fn parse<C: Parser>(
    argv: &[OsString],
    section: &str,
    config: impl Fn(&C) -> Option<&Path>,
) -> anyhow::Result<C> {
    let first = C::try_parse_from(argv)?;
    let Some(file) = config(&first) else {
        return Ok(first);
    };
    let m = crate::config_file::parse_with_file(&C::command(), argv, &[], section, file)?;
    Ok(C::from_arg_matches(&m)?)
}

/// A server binary's `main`: parses this process's command line as [`parse`] does, then
/// runs `serve` on [`crate::runtime`] with logging set up.
pub fn main<C, F, Fut>(section: &str, config: impl Fn(&C) -> Option<&Path>, serve: F) -> ExitCode
where
    C: Parser,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let argv: Vec<OsString> = std::env::args_os().collect();
    run(parse(&argv, section, config), |cli| async move {
        crate::telemetry::init_from_env();
        match serve(cli).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Runs `body` on [`crate::runtime`] with a parsed command line. A command line that did
/// not parse ends here: help, version and usage errors as clap prints them, anything else
/// (a bad configuration file) as one `error:` line and a failing exit code.
pub fn run<C, F, Fut>(parsed: anyhow::Result<C>, body: F) -> ExitCode
where
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = ExitCode>,
{
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => match e.downcast::<clap::Error>() {
            Ok(ce) => ce.exit(),
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        },
    };
    crate::runtime::block_on(body(cli))
}
