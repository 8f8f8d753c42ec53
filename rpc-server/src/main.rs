//! `nexusd`: the rpc-server binary. All logic lives in the library.

use clap::Parser;
use rpc_server::{Application, ServerArgs, ServerConfig};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "nexusd",
    version,
    about = "Nexus Hub rpc-server: tokens, zones and files"
)]
struct Cli {
    /// Configuration file (its [rpc] section); flags and environment variables override it.
    #[arg(long, env = "NEXUS_CONFIG")]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

fn main() -> ExitCode {
    nexus_serve::process::main(
        "rpc",
        |c: &Cli| c.config.as_deref(),
        |c: Cli| {
            let mut server = c.server;
            server.config_file = c.config;
            run(server)
        },
    )
}

async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let cfg = ServerConfig::from_args(args)?;
    let app = Application::build(cfg).await?;
    app.run_until_stopped(nexus_serve::shutdown_signal()).await
}
