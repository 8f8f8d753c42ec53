//! Zones and files: path normalisation ([`path`]) and the file operations ([`service`]),
//! with atomic, durable writes under the data directory, resolved beneath it without
//! following links ([`beneath`]).

pub(crate) mod access;
mod beneath;
mod edit;
pub(crate) mod grep;
pub mod path;
pub(crate) mod service;

pub use grep::GrepLimits;
pub(crate) use path::{Target, ZoneView};
pub(crate) use service::FileService;
