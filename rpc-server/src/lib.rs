//! nexusd, the Nexus Hub rpc-server: the single source of truth for tokens, zones and
//! files. Requests flow `routes/` → `auth/` (provider, identity cache) → `db/`, with file
//! work in `files/` and administrative changes in [`control`].
//!
//! [`Application`] is startup as a value (`startup.rs`): build it from a
//! [`config::ServerConfig`], read its port, run it, or take its [`Application::router`]
//! to drive in-process. The routes share one [`AppState`] (`state.rs`); every non-200
//! HTTP answer is one `ApiError` (`error.rs`). Tests bind port 0 and drive the real
//! server, or drive the router in-process.

pub mod auth;
pub mod config;
pub mod control;
pub mod db;
mod error;
pub mod files;
pub mod limits;
pub mod metrics;
mod oauth;
mod routes;
mod startup;
pub mod state;
pub mod stats;
pub(crate) mod zones;

pub use config::{ServerArgs, ServerConfig};
pub use startup::Application;
pub use state::AppState;
#[cfg(feature = "testing")]
pub mod testing;
