//! Errors and result types of the reader.
//!
//! Every error names what failed and where: an absolute file offset and/or
//! an archive path (`/` is the root), in one line.

use std::io;

use crate::encoding::Hash;
use crate::header::HEADER_LEN;
use crate::reader::MAX_DEPTH;
use crate::toc::TocError;

/// Errors of reading and verifying an archive. Messages name what failed and
/// where: an absolute file offset and/or an archive path (`/` is the root).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// An I/O error at a file offset.
    #[error("{op} at offset {offset}")]
    Io {
        /// What was being read.
        op: &'static str,
        /// Absolute offset.
        offset: u64,
        /// The OS error.
        source: io::Error,
    },
    /// The file does not start with the S9PK magic.
    #[error("not an S9PK file: magic at offset 0 is {found:02x?}, expected 3b 3b")]
    NotS9pk {
        /// The bytes found.
        found: Vec<u8>,
    },
    /// An S9PK v1 file.
    #[error("S9PK v1 is not supported (version byte at offset 2 is 0x01); repack as v2")]
    V1Unsupported,
    /// Unknown format version.
    #[error("unsupported S9PK version {0:#04x} at offset 2")]
    UnsupportedVersion(u8),
    /// The file ends inside the 155-byte header.
    #[error("truncated header: file is {file_len} bytes, the header needs {HEADER_LEN}")]
    TruncatedHeader {
        /// File length.
        file_len: u64,
    },
    /// The signer key at offset 3 is not a valid Ed25519 point.
    #[error("invalid signer public key at offset 3")]
    InvalidSignerKey,
    /// The root maxsize exceeds 1 MiB and no commitment was given.
    #[error(
        "root TOC max size {maxsize} at offset 131 exceeds the {limit}-byte limit for uncommitted packages"
    )]
    RootTooLarge {
        /// Header value.
        maxsize: u64,
        /// The limit.
        limit: u64,
    },
    /// The header's root sighash is not the committed one.
    #[error("root sighash {found} at offset 99 does not match the commitment {expected}")]
    CommitmentMismatch {
        /// Committed.
        expected: Hash,
        /// In the header.
        found: Hash,
    },
    /// The header's root maxsize exceeds the committed bound.
    #[error("root max size {found} at offset 131 exceeds the committed {committed}")]
    CommitmentMaxsize {
        /// Committed bound.
        committed: u64,
        /// In the header.
        found: u64,
    },
    /// The signature at offset 35 does not verify.
    #[error("signature at offset 35 does not verify for signer key at offset 3")]
    BadSignature,
    /// The signer is not among the trusted keys.
    #[error("signer {signer} is not a trusted key")]
    UntrustedSigner {
        /// Base64 of the signer key.
        signer: String,
    },
    /// A TOC's actual size exceeds its signed size (or the reader limit).
    #[error("TOC of {path:?} at offset {pos} is {actual} bytes, more than its bound of {bound}")]
    TocTooLarge {
        /// Directory path.
        path: String,
        /// TOC position.
        pos: u64,
        /// Actual size.
        actual: u64,
        /// Signed size or reader limit.
        bound: u64,
    },
    /// A TOC extends past the end of the file.
    #[error(
        "TOC of {path:?} at offset {pos} with size {size} extends past the end of the {file_len}-byte file"
    )]
    TocOutOfBounds {
        /// Directory path.
        path: String,
        /// TOC position.
        pos: u64,
        /// TOC size.
        size: u64,
        /// File length.
        file_len: u64,
    },
    /// A TOC overlaps the header or another TOC (including cycles).
    #[error(
        "TOC of {path:?} at offset {pos} overlaps the region of {other:?} at offset {other_pos}"
    )]
    Overlap {
        /// Path of the new region.
        path: String,
        /// Its position.
        pos: u64,
        /// The region it overlaps (`header` or a directory path).
        other: String,
        /// That region's position.
        other_pos: u64,
    },
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("directory {path:?} is nested deeper than {MAX_DEPTH} levels")]
    TooDeep {
        /// Directory path.
        path: String,
    },
    /// A TOC is malformed.
    #[error("malformed TOC of {path:?}")]
    Toc {
        /// Directory path.
        path: String,
        /// What was wrong, with its offset.
        source: TocError,
    },
    /// A TOC does not hash to the value its parent (or the header) records.
    #[error("TOC of {path:?} at offset {pos} hashes to {actual}, expected {expected}")]
    DirHashMismatch {
        /// Directory path.
        path: String,
        /// TOC position.
        pos: u64,
        /// Recorded hash.
        expected: Hash,
        /// Computed hash.
        actual: Hash,
    },
    /// A file body extends past the end of the file.
    #[error(
        "file {path:?} at offset {pos} with size {size} extends past the end of the {file_len}-byte file"
    )]
    FileOutOfBounds {
        /// File path.
        path: String,
        /// Body position.
        pos: u64,
        /// Body size.
        size: u64,
        /// File length.
        file_len: u64,
    },
    /// A file body overlaps the header or a TOC.
    #[error("file {path:?} at offset {pos} overlaps the region of {other:?}")]
    FileOverlap {
        /// File path.
        path: String,
        /// Body position.
        pos: u64,
        /// The region (`header` or a directory path).
        other: String,
    },
    /// A file's contents do not match its hash.
    #[error("file {path:?} at offset {pos} hashes to {actual}, expected {expected}")]
    FileHashMismatch {
        /// File path.
        path: String,
        /// Body position.
        pos: u64,
        /// Recorded hash.
        expected: Hash,
        /// Computed hash.
        actual: Hash,
    },
    /// The file ended inside a body.
    #[error("file {path:?} is truncated at offset {offset}: {missing} of {size} bytes missing")]
    FileTruncated {
        /// File path.
        path: String,
        /// Where the data ended.
        offset: u64,
        /// Bytes not read.
        missing: u64,
        /// Expected size.
        size: u64,
    },
    /// No entry at this path.
    #[error("no entry {path:?} in the archive")]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// The entry is not a present file.
    #[error("{path:?} is a {kind}, not a file")]
    NotAFile {
        /// The path asked for.
        path: String,
        /// What it is.
        kind: EntryKind,
    },
    /// A file is larger than the caller allows.
    #[error("file {path:?} is {size} bytes, more than the {limit}-byte limit")]
    FileTooLarge {
        /// File path.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

/// Kind of a tree entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A file present in this archive.
    File,
    /// A directory present in this archive.
    Directory,
    /// An entry without a body here (stripped); hash and size are kept.
    Missing,
}

impl EntryKind {
    /// `file`, `directory` or `missing`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Directory => "directory",
            EntryKind::Missing => "missing",
        }
    }
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the verified tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Path inside the archive, segments joined by `/`, no leading `/`.
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// File length, or a directory's signed TOC size.
    pub size: u64,
    /// File BLAKE3 hash, or a directory's sighash.
    pub hash: Hash,
}

/// Result of [`S9pkReader::verify_all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifySummary {
    /// Present files whose hash was checked.
    pub files: u64,
    /// Bytes hashed.
    pub bytes: u64,
    /// Directories whose TOC was checked (including the root).
    pub directories: u64,
    /// Entries without a body.
    pub missing: u64,
}
