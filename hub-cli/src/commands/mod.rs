//! Command implementations. Each command resolves its control plane (local database) and
//! prints through [`crate::output`].

mod cluster;
mod config;
mod doctor;
mod hub;
mod identity;
mod login;
mod session_secret;
mod storage;
mod up;

use crate::cli::{Cli, Command, McpCommand};
use crate::error::CliError;

pub use cluster::{ClusterArgs, ClusterCommand};
pub use hub::{local_control, run_hub};
pub use session_secret::SessionSecretCommand;

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Hub(h) if matches!(h.command, crate::cli::HubCommand::Config(_)) => {
            config::check(cli.config.as_deref(), &mut std::io::stdout())
        }
        Command::Hub(h)
            if matches!(
                h.command,
                crate::cli::HubCommand::Token(crate::cli::TokenCommand::Hash)
            ) =>
        {
            config::token_hash(&mut std::io::stdin().lock(), &mut std::io::stdout())
        }
        // Files in the cluster directory only: no database, no Redis.
        Command::Hub(crate::cli::HubArgs {
            command: crate::cli::HubCommand::Cluster(c),
            ..
        }) => cluster::run(c, &mut std::io::stdout()).await,
        // Neither needs the database: they speak to the hub as a client does.
        Command::Hub(crate::cli::HubArgs {
            command: crate::cli::HubCommand::ClientConfig(a),
            ..
        }) => crate::clients::run(a, &mut std::io::stdout()),
        Command::Hub(crate::cli::HubArgs {
            command: crate::cli::HubCommand::Doctor(d),
            ..
        }) => doctor::run(d, &mut std::io::stdout()).await,
        Command::Hub(h) => run_hub(h, &mut std::io::stdout()).await,
        Command::Admin(a) => identity::run_admin(a, &mut std::io::stdout()).await,
        Command::Rebac(r) => identity::run_rebac(r, &mut std::io::stdout()).await,
        Command::Serve(s) => {
            nexus_serve::telemetry::init_from_env();
            let mut server = s.server;
            server.config_file = cli.config.clone();
            let cfg = rpc_server::ServerConfig::from_args(server)?;
            let app = rpc_server::Application::build(cfg).await?;
            app.run_until_stopped(nexus_serve::shutdown_signal())
                .await?;
            Ok(())
        }
        // The same function `nexus-mcp` runs.
        Command::Mcp(McpCommand::Serve(m)) => {
            Ok(mcp_frontend::process::serve_from_args(m.frontend).await?)
        }
    }
}
