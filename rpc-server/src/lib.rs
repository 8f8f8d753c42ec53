//! nexusd, the Nexus Hub rpc-server: the single source of truth for tokens, zones and
//! files. Requests flow `routes/` → `auth/` (provider, identity cache) → `db/`, with file
//! work in `files/` and administrative changes in [`control`].
//!
//! [`app::Application`] is startup as a value: build it from a [`config::ServerConfig`],
//! read its port, run it. Tests bind port 0 and drive the real server.

pub mod app;
pub mod auth;
pub mod config;
pub mod control;
pub mod db;
pub mod files;
pub mod limits;
pub mod metrics;
pub mod routes;
pub mod stats;
pub mod zones;

pub use app::Application;
pub use config::{ServerArgs, ServerConfig};
#[cfg(feature = "testing")]
pub mod testing;
