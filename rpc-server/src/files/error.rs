//! [`Error`]: every way a file operation fails, and its one mapping to a JSON-RPC error.
//! Messages name the caller's path, never a database key, a blob's location or a disk
//! path; what the caller cannot act on is logged where it happens and answered as an
//! internal error.

use crate::db::{FsError, StoreError};
use nexus_wire::{ErrorCode, RpcError};

#[derive(Debug)]
pub(crate) enum Error {
    /// A decision already phrased for the caller (path normaliser, access, validation).
    Refused(RpcError),
    NotFound(String),
    Exists(String),
    /// A parent of the path is a file.
    ParentIsFile(String),
    IsDir(String),
    NotDir(String),
    NotEmpty(String),
    /// `if_match` did not hold.
    Conflict(String),
    TooLarge(u64),
    /// The database or the blob store is down: retry later.
    Unavailable(&'static str),
    /// A row names a blob the store no longer has (or has changed): logged with its id.
    BlobLost,
    Internal,
}

impl Error {
    /// The namespace's refusal, about `shown` (the caller's path).
    pub fn fs(e: FsError, shown: &str) -> Self {
        let shown = shown.to_owned();
        match e {
            FsError::NotFound => Self::NotFound(shown),
            FsError::Exists => Self::Exists(shown),
            FsError::ParentIsFile => Self::ParentIsFile(shown),
            FsError::IsDir => Self::IsDir(shown),
            FsError::NotDir => Self::NotDir(shown),
            FsError::NotEmpty => Self::NotEmpty(shown),
            FsError::Conflict => Self::Conflict(shown),
            FsError::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable for a file operation");
            Self::Unavailable("the database")
        } else {
            tracing::error!(error = %e, "file namespace query failed");
            Self::Internal
        }
    }
}

impl From<RpcError> for Error {
    fn from(e: RpcError) -> Self {
        Self::Refused(e)
    }
}

impl From<Error> for RpcError {
    fn from(e: Error) -> Self {
        match e {
            Error::Refused(r) => r,
            Error::NotFound(p) => RpcError::not_found(&p),
            Error::Exists(p) => RpcError::exists(&p),
            Error::ParentIsFile(p) => RpcError::invalid_path(format!("a parent of {p} is a file")),
            Error::IsDir(p) => RpcError::invalid_params(format!("{p} is a directory")),
            Error::NotDir(p) => {
                RpcError::invalid_params(format!("{p} is not a directory; use delete"))
            }
            Error::NotEmpty(p) => {
                RpcError::invalid_params(format!("directory not empty: {p} (use recursive: true)"))
            }
            Error::Conflict(p) => RpcError::new(
                ErrorCode::Conflict,
                format!("conflict: {p} changed since if_match was read; read it again and retry"),
            ),
            Error::TooLarge(max) => RpcError::new(
                ErrorCode::TooLarge,
                format!("content larger than the {max} byte limit"),
            ),
            Error::Unavailable(what) => {
                RpcError::unavailable(format!("{what} is unavailable; retry shortly"))
            }
            Error::BlobLost => RpcError::new(
                ErrorCode::Internal,
                "this file's content is missing from the blob store; an operator has been told (see the server log)",
            ),
            Error::Internal => RpcError::internal(),
        }
    }
}
