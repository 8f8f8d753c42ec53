//! The wire contract between the Nexus Hub services: JSON-RPC envelopes and error codes,
//! the parameters and results of every method, and the small parsers (bearer header, zone
//! specs, durations, rate limits) that both sides and the CLI must agree on.
//!
//! This crate has no I/O and no dependency on either service, so the frontend and the
//! rpc-server can share it without depending on each other.

pub mod bearer;
pub mod forwarded;
pub mod identity;
pub mod jsonrpc;
pub mod methods;
pub mod spec;
pub mod stats;

pub use jsonrpc::{ErrorCode, RpcError};
