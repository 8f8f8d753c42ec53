//! The command-line grammar.

use clap::{ArgGroup, Args, Parser, Subcommand};
use rpc_server::ServerArgs;
use secrecy::SecretString;

#[derive(Debug, Parser)]
#[command(
    name = "nexus",
    version,
    about = "Nexus Hub: an MCP hub gateway",
    propagate_version = true
)]
pub struct Cli {
    /// Configuration file ([rpc] for serve, [mcp] for mcp serve); flags and environment
    /// variables override it.
    #[arg(long, global = true, env = "NEXUS_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the variants' sizes cost nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Operate a hub: tokens, zones, status, migrations.
    Hub(HubArgs),
    /// Users, agents and services: register them and give them keys.
    Admin(AdminArgs),
    /// Relationship tuples: who may read or write what, and why.
    Rebac(RebacArgs),
    /// Run the rpc-server (same as `nexusd`).
    Serve(ServeArgs),
    /// Run the MCP frontend.
    #[command(subcommand)]
    Mcp(McpCommand),
}

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// Serve MCP over HTTP at /mcp, forwarding every call to the rpc-server with the caller's token.
    Serve(McpServeArgs),
}

#[derive(Debug, Args)]
pub struct McpServeArgs {
    #[command(flatten)]
    pub frontend: mcp_frontend::FrontendArgs,
}

/// Where admin commands go: the local database (default) or a hub's MCP endpoint.
#[derive(Debug, Args, Clone)]
pub struct RemoteArgs {
    /// A hub URL (https://hub.example.com or …/mcp): speak MCP to its admin tools.
    #[arg(long)]
    pub remote: Option<String>,
    /// Admin token for --remote.
    #[arg(long, env = "NEXUS_HUB_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<SecretString>,
}

/// The database (and Redis) that local admin commands change.
#[derive(Debug, Args, Clone)]
pub struct LocalArgs {
    /// The hub database (postgres://… or sqlite://…).
    #[arg(
        long,
        global = true,
        env = "NEXUS_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<SecretString>,
    /// Redis: tells running servers about changes at once.
    #[arg(long, global = true, env = "NEXUS_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretString>,
    #[command(flatten)]
    pub bus: BusArgs,
}

/// The cluster bus a command tells running servers about its changes on (SPEC §13).
#[derive(Debug, Clone, Default, Args)]
pub struct BusArgs {
    /// The cluster bus: redis://… or nats://h1:4222,… (default: NEXUS_REDIS_URL).
    #[arg(long, global = true, env = "NEXUS_BUS_URL", hide_env_values = true)]
    pub bus_url: Option<SecretString>,
    /// NATS credentials of an rpc node (`nexus hub cluster add-node NAME --role rpc`).
    #[arg(long, global = true, env = "NEXUS_NATS_CREDS")]
    pub nats_creds: Option<std::path::PathBuf>,
    /// The node name those credentials were minted for.
    #[arg(long, global = true, env = "NEXUS_NODE_NAME")]
    pub node_name: Option<String>,
}

impl BusArgs {
    /// The bus to use, with `redis_url` as the default.
    pub fn settings(
        &self,
        redis_url: Option<&SecretString>,
    ) -> Option<rpc_server::config::BusSettings> {
        rpc_server::config::BusSettings::from_args(
            self.bus_url.as_ref().or(redis_url),
            self.nats_creds.clone(),
            1,
            self.node_name.clone(),
        )
    }
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub local: LocalArgs,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Register a user (or agent, or service) and mint its API key.
    CreateUser(CreateUserArgs),
    /// List registered users, agents and services.
    ListUsers(ListArgs),
    /// Delete a subject; every token bound to it is revoked.
    DeleteUser(SubjectIdArgs),
    /// Delete a subject by its exact id; every token bound to it is revoked.
    DeleteUserById(SubjectIdArgs),
    /// Register an agent (optionally owned by a user) and mint its API key.
    CreateAgentKey(CreateAgentKeyArgs),
    /// List registered agents.
    ListAgents(ListArgs),
    /// Disable a subject: its tokens are refused until it is enabled again.
    DisableUser(SubjectIdArgs),
    /// Enable a disabled subject.
    EnableUser(SubjectIdArgs),
    /// Set a local user's password (for POST /auth/login and the browser sign-in of MCP
    /// clients), hashed with argon2id as the server does; with --create, make the local
    /// user. The password is the first line of standard input when that is not a
    /// terminal, else asked twice without echo; never an argument. A new password ends
    /// every session of the user: its login tokens are refused on every nexusd at once
    /// and its refresh tokens are dead. On the hub's database only (no --remote).
    SetPassword(SetPasswordArgs),
}

#[derive(Debug, Args)]
pub struct SetPasswordArgs {
    #[command(flatten)]
    pub target: RemoteArgs,
    /// The local user (made with --create or POST /auth/users, or root).
    pub username: String,
    /// Make the local user (and register its subject if need be); refused when it
    /// exists.
    #[arg(long)]
    pub create: bool,
    /// With --create: READ, WRITE and ADMIN, comma-separated [default: READ].
    #[arg(long, requires = "create", value_delimiter = ',')]
    pub permissions: Vec<String>,
    /// With --create: the user's zones, eng:rw,ops:r. Without, what the user's roles,
    /// groups and tuples allow (SPEC §9).
    #[arg(long, requires = "create")]
    pub zones: Option<String>,
}

#[derive(Debug, Args)]
pub struct CreateUserArgs {
    #[command(flatten)]
    pub target: RemoteArgs,
    /// The subject id: [a-z0-9][a-z0-9._@-]{0,127}.
    pub subject_id: String,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// user, agent or service.
    #[arg(long, default_value = "user")]
    pub subject_type: String,
    /// Tenant (shown as `default` when absent).
    #[arg(long)]
    pub tenant_id: Option<String>,
    /// Zones for the key: eng:rw,ops:r. Without zones the key reaches only what tuples grant.
    #[arg(long)]
    pub zones: Option<String>,
    /// Lifetime of the key: 90d, 12h, 30m, 2w …
    #[arg(long)]
    pub expires: Option<String>,
    /// Register the subject without minting a key.
    #[arg(long, conflicts_with_all = ["zones", "expires"])]
    pub no_key: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CreateAgentKeyArgs {
    #[command(flatten)]
    pub target: RemoteArgs,
    /// The agent's id: [a-z0-9][a-z0-9._@-]{0,127}.
    pub agent_id: String,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// The user who owns the agent.
    #[arg(long)]
    pub owner: Option<String>,
    /// Zones for the key: eng:rw,ops:r.
    #[arg(long)]
    pub zones: Option<String>,
    /// Lifetime of the key: 90d, 12h, 30m, 2w …
    #[arg(long)]
    pub expires: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: RemoteArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SubjectIdArgs {
    #[command(flatten)]
    pub target: RemoteArgs,
    pub subject_id: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RebacArgs {
    #[command(flatten)]
    pub local: LocalArgs,
    #[command(subcommand)]
    pub command: RebacCommand,
}

#[derive(Debug, Subcommand)]
pub enum RebacCommand {
    /// Write a tuple: SUBJECT has RELATION on OBJECT.
    Create(TupleArgs),
    /// Delete a tuple.
    Delete(TupleArgs),
    /// Does SUBJECT have RELATION on OBJECT? Exit 0 allowed, 1 denied.
    Check(CheckArgs),
    /// List tuples, filtered by subject, object and relation.
    ListTuples(ListTuplesArgs),
    /// Who has RELATION on OBJECT, and through which tuples.
    Expand(ExpandArgs),
}

/// How a tuple is named on the command line.
#[derive(Debug, Args)]
pub struct TupleRef {
    /// user:alice, agent:bot, service:ci, token:<key_id>, group:eng#member (or group:eng).
    #[arg(long)]
    pub subject: String,
    /// member, reader, writer, admin, can_read or can_write.
    #[arg(long)]
    pub relation: String,
    /// group:g, zone:z, namespace:default, file:/zone/<z>/<path> (or file:/<path> with --zone).
    #[arg(long)]
    pub object: String,
    /// The zone a `file:/<path>` object is in.
    #[arg(long)]
    pub zone: Option<String>,
}

#[derive(Debug, Args)]
pub struct TupleArgs {
    #[command(flatten)]
    pub target: RemoteArgs,
    #[command(flatten)]
    pub tuple: TupleRef,
    /// The tuple counts for this long only: 7d, 12h, 30m … (create only).
    #[arg(long)]
    pub expires: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub target: RemoteArgs,
    #[command(flatten)]
    pub tuple: TupleRef,
    /// Show the tuples that decided (the membership chain included).
    #[arg(long)]
    pub explain: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListTuplesArgs {
    #[command(flatten)]
    pub target: RemoteArgs,
    #[arg(long)]
    pub subject: Option<String>,
    #[arg(long)]
    pub relation: Option<String>,
    #[arg(long)]
    pub object: Option<String>,
    /// The zone a `file:/<path>` object is in.
    #[arg(long)]
    pub zone: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExpandArgs {
    #[command(flatten)]
    pub target: RemoteArgs,
    #[arg(long)]
    pub relation: String,
    #[arg(long)]
    pub object: String,
    /// The zone a `file:/<path>` object is in.
    #[arg(long)]
    pub zone: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct HubArgs {
    /// The hub database (postgres://… or sqlite://…).
    #[arg(
        long,
        global = true,
        env = "NEXUS_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<SecretString>,
    /// Redis: tells running servers about revocations at once; status reads traffic figures.
    #[arg(long, global = true, env = "NEXUS_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretString>,
    #[command(flatten)]
    pub bus: BusArgs,
    #[command(subcommand)]
    pub command: HubCommand,
}

#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Mint, list and revoke tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Create, list, delete and restore zones.
    #[command(subcommand)]
    Zone(ZoneCommand),
    /// Show hub health and usage.
    Status(StatusArgs),
    /// Apply database migrations.
    Migrate,
    /// Run the embedded hub: SQLite, rpc-server and MCP frontend on 127.0.0.1, one command.
    Up(UpArgs),
    /// Check a configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Login-token signing keys of the local provider.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The file storage: the namespace in the database and the blob store.
    Storage(StorageArgs),
    /// NATS operator-mode credentials of the cluster bus: operator, accounts, node creds,
    /// revocation, nats-server config.
    Cluster(crate::commands::ClusterArgs),
    /// The secret that seals MCP session ids on every frontend: rotate it, or have the
    /// frontends re-read their secret file.
    #[command(subcommand)]
    SessionSecret(crate::commands::SessionSecretCommand),
    /// Print the ready-to-paste configuration of an MCP client (Claude Code, Codex, Cursor,
    /// VS Code, Goose, Claude Desktop) for a token held in an environment variable.
    ClientConfig(ClientConfigArgs),
    /// Check the hub's MCP endpoint as a client would: reachability, TLS, Host/Origin,
    /// the protected-resource metadata, initialize + tools/list with the token, rate-limit
    /// headroom. One line per check, with the fix for each failure; exit 1 if any fails.
    Doctor(DoctorArgs),
    /// The OAuth authorization server's clients (MCP clients that signed users in).
    #[command(subcommand)]
    Oauth(OauthCommand),
}

#[derive(Debug, Subcommand)]
pub enum OauthCommand {
    /// Registered clients.
    #[command(subcommand)]
    Clients(OauthClientsCommand),
}

#[derive(Debug, Subcommand)]
pub enum OauthClientsCommand {
    /// Every client: id, kind (dcr), name, status, live tokens.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: RemoteArgs,
    },
    /// Revoke a client: its tokens are refused on every node at once, its refresh tokens
    /// die, and it can neither sign anyone in nor refresh again.
    Revoke {
        client_id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: RemoteArgs,
    },
}

impl OauthClientsCommand {
    /// The hub to ask over MCP, when `--remote` is given.
    pub fn remote(&self) -> Option<&RemoteArgs> {
        let (Self::List { target, .. } | Self::Revoke { target, .. }) = self;
        target.remote.is_some().then_some(target)
    }
}

/// Where a printed client configuration points, and how it carries the token.
#[derive(Debug, Args, Clone)]
pub struct ClientOpts {
    /// The hub's MCP URL (https://hub.example.com/mcp; a URL without /mcp gets it appended).
    /// Default: NEXUS_MCP_URL (set by admin.env), else --remote.
    #[arg(long, env = "NEXUS_MCP_URL")]
    pub url: Option<String>,
    /// The environment variable that holds the token (clients that embed it read it from here).
    #[arg(long, default_value = "NEXUS_TOKEN")]
    pub token_env: String,
    /// The header the client sends the token in.
    #[arg(long = "header", value_enum, default_value = "authorization")]
    pub token_header: crate::clients::TokenHeader,
    /// The name the client lists the hub under.
    #[arg(long, default_value = "nexus-hub")]
    pub server_name: String,
}

#[derive(Debug, Args)]
pub struct ClientConfigArgs {
    /// The client: claude-code, codex, cursor, vscode, goose or claude-desktop.
    #[arg(value_enum)]
    pub client: crate::clients::ClientKind,
    #[command(flatten)]
    pub opts: ClientOpts,
    /// The structured form: the configuration as an object and as text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The hub's MCP URL (a URL without /mcp gets it appended). Default: NEXUS_MCP_URL.
    #[arg(long, env = "NEXUS_MCP_URL")]
    pub url: Option<String>,
    /// The environment variable holding the token to check with. Default: NEXUS_TOKEN,
    /// else NEXUS_API_KEY (the admin token admin.env sets).
    #[arg(long)]
    pub token_env: Option<String>,
    /// Also send this Origin, as a browser-based client would.
    #[arg(long)]
    pub origin: Option<String>,
    /// A CA certificate (PEM) to trust for https, besides the system's roots.
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Seconds each request may take.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StorageArgs {
    /// The servers' blob store (file:///dir or s3://bucket/prefix?endpoint=…). Default for
    /// an embedded hub: `blobs/` beside its SQLite database.
    #[arg(long, global = true, env = "NEXUS_STORAGE_URL")]
    pub storage_url: Option<String>,
    #[command(subcommand)]
    pub command: StorageCommand,
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Files, directories, blobs (inline and stored), text indexed for grep, blobs waiting
    /// for the collector, and whether the blob store answers.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Remove blobs no file references and untouched for the grace period, now (the
    /// servers do this every NEXUS_STORAGE_GC_INTERVAL; one node at a time).
    Gc {
        /// Keep unreferenced blobs younger than this (e.g. 1h, 30m, 0s).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        grace: std::time::Duration,
        #[arg(long)]
        json: bool,
    },
    /// Copy every blob to another store; idempotent and resumable. Then point every nexusd
    /// at it (NEXUS_STORAGE_URL) and restart them.
    Migrate {
        /// The destination store.
        #[arg(long)]
        to: String,
        #[arg(long)]
        json: bool,
    },
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new active signing key. Tokens signed with the previous key keep verifying
    /// for 24 h 1 min (the longest login-token lifetime); running servers sign with the
    /// new key from their next login on. Needs the servers' NEXUS_API_KEY_SECRET (or the
    /// embedded hub's secret file), which seals the key.
    Rotate {
        /// Rotate even when this secret cannot open the active key (the servers' secret
        /// was lost and replaced): they must then run with this one.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// List signing keys: kid, state, created, not-after (never key material).
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the file given with --config and print the effective settings of both
    /// servers (file < environment < flags), secrets redacted.
    Check,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the database, secret, files and admin.env live.
    #[arg(long, default_value = "./nexus-data")]
    pub data_dir: std::path::PathBuf,
    #[arg(long, default_value_t = 2026)]
    pub rpc_port: u16,
    #[arg(long, default_value_t = 8081)]
    pub mcp_port: u16,
    /// Do not be the MCP clients' OAuth authorization server (on by default: browser login
    /// with the local users, root first).
    #[arg(long)]
    pub no_oauth: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token; it is printed once.
    Create(Box<TokenCreateArgs>),
    /// List tokens.
    List(TokenListArgs),
    /// Revoke a token by name, key id, or key id prefix (8+ hex digits).
    Revoke(TokenRevokeArgs),
    /// Change or show a token's zones.
    #[command(subcommand)]
    Zones(TokenZonesCommand),
    /// Print the `sha256:<hex>` form of a key read from standard input, for the static
    /// key file (the file then holds no secret).
    Hash,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("zone_choice").args(["zones", "zones_glob", "zone"]).multiple(false)))]
pub struct TokenCreateArgs {
    #[command(flatten)]
    pub target: RemoteArgs,
    /// Unique name among active tokens.
    #[arg(long)]
    pub name: String,
    /// Zones with permissions: eng:rw,ops:r (bare zone = rw).
    #[arg(long)]
    pub zones: Option<String>,
    /// Every active zone matching a glob, e.g. 'team-*' or 'team-*:r'.
    #[arg(long)]
    pub zones_glob: Option<String>,
    /// A single zone (alias of --zones Z).
    #[arg(long)]
    pub zone: Option<String>,
    /// An admin token; without a zone flag it sees every zone.
    #[arg(long)]
    pub admin: bool,
    /// Lifetime: 90d, 12h, 30m, 2w …
    #[arg(long)]
    pub expires: Option<String>,
    /// The user the token acts for (default: the name).
    #[arg(long)]
    pub user_id: Option<String>,
    /// user, agent or service.
    #[arg(long, default_value = "user")]
    pub subject_type: String,
    /// Override the tier's rate limit: windows N/s, N/m, N/h or N/d, comma-separated
    /// (e.g. 1000/m,10000/h).
    #[arg(long)]
    pub rate_limit: Option<String>,
    /// Also print this MCP client's ready-to-paste configuration for the new token.
    #[arg(long, value_enum)]
    pub client: Option<crate::clients::ClientKind>,
    #[command(flatten)]
    pub client_opts: ClientOpts,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TokenListArgs {
    #[command(flatten)]
    pub target: RemoteArgs,
    #[arg(long)]
    pub show_revoked: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    #[command(flatten)]
    pub target: RemoteArgs,
    /// Token name, key id, or key id prefix.
    pub identifier: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenZonesCommand {
    /// Grant zones (or change their permission): eng:rw,ops:r
    Add {
        identifier: String,
        zones: String,
        #[arg(long)]
        json: bool,
    },
    /// Take zones away.
    Remove {
        identifier: String,
        #[arg(required = true)]
        zones: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show a token's zones.
    Show {
        identifier: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ZoneCommand {
    /// List zones.
    List {
        #[arg(long)]
        show_deleted: bool,
        #[arg(long)]
        json: bool,
    },
    /// Create a zone. A deleted zone's name is refused: see `restore`.
    Create {
        name: String,
        /// open (the zone grant suffices) or rebac (tuples decide, within the grant).
        #[arg(long, default_value = "open", value_parser = ["open", "rebac"])]
        access: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a zone's access mode.
    Set {
        name: String,
        /// open (the zone grant suffices) or rebac (tuples decide, within the grant).
        #[arg(long, value_parser = ["open", "rebac"])]
        access: String,
        #[arg(long)]
        json: bool,
    },
    /// Bring a deleted zone back, with its files; tokens holding it work again.
    Restore {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a zone; tokens holding it stop working.
    Delete {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: RemoteArgs,
    /// Per-zone clients and qps, per-token last seen, rate-limit rejections by tier.
    #[arg(long)]
    pub detail: bool,
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn mcp_serve_flags_resolve() {
        let cli = Cli::try_parse_from([
            "nexus",
            "mcp",
            "serve",
            "--transport",
            "http",
            "--url",
            "http://nexus:2026",
            "--port",
            "0",
            "--allowed-hosts",
            "hub.example.com, localhost",
            "--allowed-origins",
            "https://app.example.com",
        ])
        .expect("parses");
        let Command::Mcp(McpCommand::Serve(m)) = cli.command else {
            panic!("mcp serve")
        };
        let cfg = mcp_frontend::FrontendConfig::from_args(m.frontend).expect("valid");
        assert_eq!(cfg.rpc_url, "http://nexus:2026");
        assert_eq!(cfg.allowed_hosts, ["hub.example.com", "localhost"]);
        assert_eq!(cfg.allowed_origins, ["https://app.example.com"]);
        assert!(cfg.require_bearer);
        let bare = Cli::try_parse_from(["nexus", "mcp", "serve"]).expect("defaults parse");
        let Command::Mcp(McpCommand::Serve(m)) = bare.command else {
            panic!("mcp serve")
        };
        let cfg = mcp_frontend::FrontendConfig::from_args(m.frontend).expect("valid");
        assert_eq!(cfg.allowed_hosts, ["localhost", "127.0.0.1", "::1"]);
        assert!(cfg.allowed_origins.is_empty());
        assert!(Cli::try_parse_from(["nexus", "mcp", "serve", "--transport", "stdio"]).is_err());
        assert!(
            Cli::try_parse_from(["nexus", "mcp", "serve", "--require-bearer", "maybe"]).is_err()
        );
    }

    #[test]
    fn serve_and_hub_flags_resolve() {
        let cli = Cli::try_parse_from([
            "nexus",
            "serve",
            "--port",
            "0",
            "--api-key",
            "sk-development-key-123",
        ])
        .expect("parses");
        let Command::Serve(s) = cli.command else {
            panic!("serve")
        };
        assert!(rpc_server::ServerConfig::from_args(s.server).is_ok());
        for args in [
            &["nexus", "hub", "status", "--json", "--detail"][..],
            &[
                "nexus",
                "hub",
                "up",
                "--data-dir",
                "x",
                "--rpc-port",
                "0",
                "--mcp-port",
                "0",
            ],
            &[
                "nexus",
                "hub",
                "token",
                "create",
                "--name",
                "a",
                "--zones",
                "eng:rw",
                "--rate-limit",
                "10/s",
            ],
            &[
                "nexus",
                "hub",
                "token",
                "list",
                "--remote",
                "http://h",
                "--admin-token",
                "sk-x",
            ],
            &[
                "nexus", "hub", "token", "zones", "remove", "a", "eng", "ops",
            ],
            &["nexus", "hub", "zone", "create", "eng", "--access", "rebac"],
            &["nexus", "hub", "zone", "set", "eng", "--access", "open"],
            &[
                "nexus",
                "admin",
                "create-user",
                "alice",
                "--name",
                "Alice Johnson",
                "--tenant-id",
                "acme",
                "--zones",
                "eng:rw",
                "--json",
            ],
            &["nexus", "admin", "create-user", "bob", "--no-key"],
            &[
                "nexus",
                "admin",
                "create-agent-key",
                "bot",
                "--owner",
                "alice",
                "--remote",
                "http://h",
                "--admin-token",
                "sk-x",
            ],
            &["nexus", "admin", "list-agents", "--json"],
            &["nexus", "admin", "delete-user-by-id", "bob"],
            &[
                "nexus",
                "rebac",
                "create",
                "--subject",
                "user:alice",
                "--relation",
                "can_read",
                "--object",
                "file:/workspace",
                "--zone",
                "eng",
                "--expires",
                "7d",
            ],
            &[
                "nexus",
                "rebac",
                "check",
                "--subject",
                "user:alice",
                "--relation",
                "can_read",
                "--object",
                "file:/zone/eng/x",
                "--explain",
                "--json",
            ],
            &["nexus", "rebac", "list-tuples", "--subject", "user:alice"],
            &[
                "nexus",
                "rebac",
                "expand",
                "--relation",
                "reader",
                "--object",
                "zone:eng",
            ],
        ] {
            Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
        // Usage errors: clap refuses them (exit 2) before anything runs.
        for args in [
            &["nexus", "hub", "zone", "set", "eng", "--access", "closed"][..],
            &["nexus", "hub", "zone", "set", "eng"],
            &[
                "nexus",
                "admin",
                "create-user",
                "a",
                "--no-key",
                "--zones",
                "eng",
            ],
            &["nexus", "rebac", "check", "--subject", "user:a"],
        ] {
            let e = Cli::try_parse_from(args).expect_err("a usage error");
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }
}
