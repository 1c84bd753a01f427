//! `hearth-ota`: the OS update bundle format, version 2 — the contract between the imager
//! that writes bundles and the updater on the device that applies them.
//!
//! # Purpose
//! * [`Manifest`] (`manifest`): what a bundle installs (version, target, compatibility
//!   string, accepted source versions, minimum updater, kernel release, and per image
//!   its size, SHA-256, BLAKE3 and the hash of its chunk index), parsed into validated
//!   types.
//! * [`sign`]/[`verify`] (`sign`): the Ed25519 envelope under a domain-separated context,
//!   and the refusals a device applies before writing anything (another key, another
//!   target or compatibility, a running version outside the range, an updater too old,
//!   a truncated or altered manifest), each a [`VerifyError`] variant.
//! * [`chunk`]: FastCDC (4/16/64 KiB) chunk index with BLAKE3 names, a [`chunk::Seed`]
//!   from the running slot, the delta [`chunk::plan`] and byte-exact
//!   [`chunk::reconstruct`] that checks every chunk before writing it.
//!
//! # Design
//! No I/O beyond `Read`/`Write`/`Seek` passed in by the caller, no async, no clock:
//! signatures do not expire, so a device whose clock is wrong by years still checks them
//! the same way. The updater (`supervisor/update`) and the imager both depend on this
//! crate, so writer and reader cannot drift.
//!
//! # Invariants
//! * A [`Manifest`] returned by [`verify`] was signed by a trusted key and matches the
//!   device; `sign` then `verify` returns the same manifest.
//! * Same inputs, same bytes: `to_json` has a fixed field order, Ed25519 is
//!   deterministic, chunking depends only on content.
//!
//! # Rejected alternatives
//! * Fixed-size blocks (RAUC's block-hash index): compressed squashfs blocks shift, so
//!   4 KiB blocks found nothing of a point release (issue 13: 93.5% new).
//! * The chunk index inside the signed JSON: hex doubles its size; a binary index bound
//!   by its BLAKE3 keeps the manifest small and the index 36 bytes per chunk.

pub mod chunk;
mod manifest;
mod sign;

pub use manifest::{FORMAT, Image, Manifest, ManifestError, hex, plain_name};
pub use sign::{Device, MAGIC, MAX_MANIFEST, SIG_DOMAIN, VerifyError, sign, verify};

/// The bundle format version this reader implements, compared with a manifest's
/// `min_updater`.
pub const UPDATER_VERSION: &str = "0.1.0";

#[cfg(test)]
mod tests;
