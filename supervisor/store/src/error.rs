//! Errors of the store: one enum, each variant naming the operation and the file.

use std::path::PathBuf;

/// Why a store operation failed.
///
/// Variants that touch the database carry the path of the redb file and the operation
/// that failed, so a log line alone tells an operator what broke and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A redb call failed (open, begin or commit a transaction, open a table, read, write).
    #[error("store {path}: {op}: {source}")]
    Database {
        /// What the store was doing, e.g. "commit revision".
        op: &'static str,
        /// The redb file.
        path: PathBuf,
        /// The underlying redb error.
        #[source]
        source: Box<redb::Error>,
    },
    /// Syncing the directory that holds a newly created store file failed.
    #[error("sync directory {path} after creating the store: {source}")]
    SyncDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file opened but its content is inconsistent: a missing snapshot, a gap in the
    /// patch log, a revision that does not match the metadata. Never repaired silently.
    #[error("store {path} is corrupted: {reason}")]
    Corrupted {
        /// The redb file.
        path: PathBuf,
        /// What is inconsistent.
        reason: String,
    },
    /// A stored JSON blob (snapshot or patch) does not decode.
    #[error("store {path}: decode {what}: {source}")]
    Decode {
        /// The redb file.
        path: PathBuf,
        /// Which blob, e.g. "patch of revision 42".
        what: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored patch does not apply to the document rebuilt so far.
    #[error("store {path}: replay patch of revision {rev}: {source}")]
    Replay {
        /// The redb file.
        path: PathBuf,
        /// The revision whose patch failed.
        rev: u64,
        /// The patch error.
        #[source]
        source: json_patch::PatchError,
    },
    /// Serializing a document or patch for storage failed.
    #[error("store {path}: encode {what}: {source}")]
    Encode {
        /// The redb file.
        path: PathBuf,
        /// Which value, e.g. "snapshot".
        what: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The seed given to [`crate::Store::open`] or the result of a mutation does not have the
    /// shape `{"public": {..}, "private": {..}}`.
    #[error("invalid document ({context}): {reason}")]
    InvalidDocument {
        /// "seed" or "mutation result".
        context: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A pointer is not valid RFC 6901 syntax.
    #[error("invalid JSON pointer {pointer:?}: {reason}")]
    InvalidPointer {
        /// The pointer as given.
        pointer: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A valid pointer that names nothing in the current document.
    #[error("JSON pointer {pointer:?} not found in the document")]
    PointerNotFound {
        /// The pointer as given.
        pointer: String,
    },
    /// The revision counter would overflow `u64`.
    #[error("store {path}: revision counter exhausted")]
    RevisionOverflow {
        /// The redb file.
        path: PathBuf,
    },
}

impl StoreError {
    pub(crate) fn db(
        op: &'static str,
        path: &std::path::Path,
        source: impl Into<redb::Error>,
    ) -> Self {
        StoreError::Database {
            op,
            path: path.to_path_buf(),
            source: Box::new(source.into()),
        }
    }
}

/// Why [`crate::Store::mutate`] did not produce a revision.
#[derive(Debug, thiserror::Error)]
pub enum MutateError<E> {
    /// The closure returned `Err`; nothing changed.
    #[error("mutation rejected: {0}")]
    Rejected(E),
    /// The closure succeeded but the result could not be validated or persisted; nothing
    /// changed, neither on disk nor in memory.
    #[error(transparent)]
    Store(StoreError),
}
