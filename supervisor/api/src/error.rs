//! [`ApiError`]: internal failures, and the one place they become wire errors.

use std::path::PathBuf;

use hearth_rpc::{ErrorCode, RpcError};
use hearth_store::{MutateError, StoreError};

/// Internal errors of the API crate. Clients see them through [`ApiError::to_rpc`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A state store operation failed.
    #[error("store: {op}: {source}")]
    Store {
        /// What was being done, e.g. "create session".
        op: &'static str,
        /// The store error.
        #[source]
        source: StoreError,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done, e.g. "write local cookie".
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Binding or accepting on the listen socket failed.
    #[error("{op} {addr}: {source}")]
    Listen {
        /// "bind" or "accept".
        op: &'static str,
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Password hashing failed (bad parameters or no randomness).
    #[error("password hashing: {0}")]
    PasswordHash(String),
    /// The system random number generator failed.
    #[error("random number generator: {0}")]
    Random(String),
    /// A stored document does not have the expected shape.
    #[error("state document at {pointer}: {reason}")]
    Document {
        /// Where in the document.
        pointer: String,
        /// What is wrong.
        reason: String,
    },
    /// A blocking task panicked or was cancelled.
    #[error("blocking task for {op} failed: {reason}")]
    Join {
        /// What the task was doing.
        op: &'static str,
        /// The join error.
        reason: String,
    },
    /// The handler table does not match the catalogue.
    #[error("handler table: {0}")]
    Registry(String),
}

impl ApiError {
    pub(crate) fn store(op: &'static str) -> impl FnOnce(StoreError) -> ApiError {
        move |source| ApiError::Store { op, source }
    }

    /// The wire error for this failure; internal details are logged, not sent.
    pub fn to_rpc(&self) -> RpcError {
        match self {
            ApiError::Store {
                source: StoreError::PointerNotFound { pointer },
                ..
            } => RpcError::new(ErrorCode::NotFound, format!("nothing at {pointer:?}"))
                .with("what", "pointer"),
            ApiError::Store {
                source: StoreError::InvalidPointer { pointer, reason },
                ..
            } => RpcError::invalid_params("pointer", format!("{pointer:?}: {reason}")),
            ApiError::Store {
                op,
                source: source @ StoreError::Database { .. },
            } => {
                tracing::error!(op, error = %source, "state store failure");
                RpcError::new(ErrorCode::Database, "the state database failed; try again")
            }
            other => {
                tracing::error!(error = %other, "internal error");
                RpcError::internal()
            }
        }
    }
}

impl From<ApiError> for RpcError {
    fn from(e: ApiError) -> RpcError {
        e.to_rpc()
    }
}

/// Maps a rejected or failed store mutation: a rejection is already a wire error.
pub(crate) fn mutate_error(op: &'static str) -> impl FnOnce(MutateError<RpcError>) -> RpcError {
    move |e| match e {
        MutateError::Rejected(rpc) => rpc,
        MutateError::Store(source) => ApiError::Store { op, source }.to_rpc(),
    }
}

/// Runs blocking work (store mutations, password hashing) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    op: &'static str,
    f: impl FnOnce() -> Result<T, RpcError> + Send + 'static,
) -> Result<T, RpcError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(ApiError::Join {
            op,
            reason: e.to_string(),
        }
        .to_rpc()),
    }
}
