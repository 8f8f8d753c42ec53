//! The wire contract between the Nexus Hub services: JSON-RPC envelopes and error codes,
//! the methods ([`Method`]), their paths, parameters and results, the header names, the
//! HTTP error envelope, and the small parsers (bearer header, zone
//! specs, durations, rate limits) that both sides and the CLI must agree on.
//!
//! This crate has no I/O and no dependency on either service, so the frontend and the
//! rpc-server can share it without depending on each other.

pub mod bearer;
pub mod bus;
pub mod envelope;
pub mod forwarded;
pub mod headers;
pub mod identity;
pub mod jsonrpc;
pub mod methods;
pub mod resource;
pub mod spec;
pub mod stats;

pub use envelope::ErrorEnvelope;
pub use jsonrpc::{ErrorCode, RpcError};
pub use methods::{Method, RPC_PREFIX, rpc_path};
