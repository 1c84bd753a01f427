//! S9PK v2 package archives: read, verify, write, filter; keys; and the
//! package manifest and service spec types.
//!
//! # Format
//! A signed BLAKE3 merkle archive, byte-compatible with StartOS: a 155-byte
//! header (magic `3B 3B 02`, signer key, Ed25519ph signature, root sighash,
//! root maxsize, root TOC position and size), then TOCs and file bodies laid
//! out breadth-first. A directory's hash (sighash) is BLAKE3 of its TOC
//! re-encoded with every entry MISSING and sorted by name, so stripping
//! entries never changes a hash. The signature (context `s9pk`) covers
//! SHA-512(root sighash ‖ root maxsize). See `shared/reference/STARTOS.md` §1.
//!
//! # Design
//! - [`S9pkReader`] works over any `Read + Seek`, never loads file bodies,
//!   checks the signature before reading the root TOC, checks every TOC
//!   against its parent before trusting it, and hashes files while they are
//!   read ([`FileReader`]) or in [`S9pkReader::verify_all`].
//! - [`ArchiveBuilder`] / [`write_dir`] write deterministically (same inputs,
//!   same key → same bytes) in one streaming pass, atomically via rename.
//! - [`filter_arch`] turns other architectures' images into MISSING entries
//!   and keeps the original signature.
//! - [`key`] converts Ed25519 keys to and from PEM (PKCS#8 / SPKI).
//!
//! # Invariants
//! - Names are single path segments (no `/`, `.`, `..`, NUL, not empty) and
//!   unique within a directory, on read and on write.
//! - Without a commitment a root TOC bound over 1 MiB is refused before the
//!   TOC is read; every position and size is checked against the file length.
//! - TOC regions never overlap each other or the header (so no cycles);
//!   nesting is limited to [`MAX_DEPTH`].
//!
//! # Limitations
//! S9PK v1 is refused. A single TOC is limited to [`MAX_TOC_LEN`] bytes.
//!
//! # Rejected alternatives
//! - Reading whole archives into memory: images are gigabytes.
//! - A streaming (non-seekable) reader: bodies are addressed by absolute
//!   position, and TOCs may follow the bodies that precede them.

#![warn(missing_docs)]

mod builder;
mod encoding;
mod file_reader;
mod filter;
mod header;
pub mod key;
mod read_error;
mod reader;
mod toc;
mod writer;

pub mod manifest;
pub mod spec;

pub use builder::{ArchiveBuilder, write_dir};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use encoding::{DecodeError, Hash, NameError, validate_name};
pub use file_reader::FileReader;
pub use filter::{FilterError, filter_arch, filter_arch_to};
pub use header::{Commitment, HEADER_LEN, MAGIC, MAX_UNCOMMITTED_ROOT, SIG_CONTEXT, VERSION};
pub use read_error::{EntryKind, ReadError, TreeEntry, VerifySummary};
pub use reader::{MAX_DEPTH, MAX_TOC_LEN, S9pkReader};
pub use toc::TocError;
pub use writer::WriteError;

/// Standard-alphabet base64 without padding (StartOS's text form of hashes
/// and keys in JSON).
pub fn base64_encode(bytes: &[u8]) -> String {
    use base64ct::Encoding;
    base64ct::Base64Unpadded::encode_string(bytes)
}

/// Decodes standard-alphabet base64, with or without padding.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64ct::Encoding;
    base64ct::Base64Unpadded::decode_vec(text.trim().trim_end_matches('=')).ok()
}
