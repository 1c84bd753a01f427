//! Hearth's state document: one JSON value with a public and a private half, persisted
//! in redb, with a revision number per mutation and an RFC 6902 patch stream.
//!
//! # Purpose
//! Everything `hearthd` knows that must survive a restart lives here: server info,
//! installed packages and their desired state, UI preferences (public), password hash,
//! sessions and keys (private). The web UI and MCP subscribers receive the public half
//! as a dump followed by patches, the same model as StartOS's Patch-DB.
//!
//! # Design
//! - [`Store::mutate`] is the only write path. It runs a closure on a copy of the
//!   document, diffs before/after (`diff`, equal subtrees skipped), writes the patch as revision
//!   `n + 1` in one redb transaction with `Durability::Immediate`, and only then swaps the
//!   in-memory document and broadcasts the public part of the patch. A caller that got
//!   `Ok` therefore knows the change survives a crash or power loss.
//! - On disk: one snapshot plus the patch log after it (see `persist`). Every
//!   [`StoreOptions::snapshot_every`] revisions the mutate transaction also writes a new
//!   snapshot and empties the log, so the file and the replay work at open stay bounded.
//! - Readers ([`Store::get`], [`Store::subscribe`], [`Store::public_since`]) take a
//!   read lock on the in-memory state only; they never wait for a disk write.
//! - Public revisions carry patches relative to `/public`. Revision numbers are global:
//!   a mutation that touches only `/private` consumes a number but is not published, so
//!   subscribers see gaps in `rev` that are not losses (see [`Subscription`]).
//!
//! # Invariants
//! - The document is always `{"public": {..}, "private": {..}}` (both objects, no other
//!   top-level key); a mutation that breaks this is refused with
//!   [`StoreError::InvalidDocument`].
//! - Revisions on disk are contiguous from the snapshot to the recorded revision; open
//!   verifies this and fails with [`StoreError::Corrupted`] rather than resetting.
//! - Memory is bounded: the document, a ring of the last public revisions (at most
//!   [`StoreOptions::history`] of them and [`StoreOptions::history_bytes`] of patches)
//!   and a broadcast channel holding at most [`StoreOptions::channel`] revisions.
//! - A newly created file's directory entry is fsync'd before `open` returns, so a
//!   power loss cannot make a store that acknowledged revisions vanish.
//!
//! # Limitations
//! - The history ring is not rebuilt at open: after a restart, `public_since` knows only
//!   revisions made since, and clients take a new dump.
//! - The whole document is cloned per mutation; fine for the small documents of a
//!   personal server, not for megabytes of state.
//!
//! # Rejected alternatives
//! - One redb key per JSON node: finer-grained writes, but every read would reassemble
//!   the tree and a patch would span many keys; the document is small.
//! - StartOS's append-only CBOR file with a hand-written compaction: redb already gives
//!   atomic, crash-safe transactions and checksummed pages.
//! - Publishing before the commit (faster): a subscriber could see a state that a crash
//!   then erases.

mod diff;
mod error;
mod persist;
mod pointer;
mod store;

pub use error::{MutateError, StoreError};
pub use json_patch;
pub use store::{Dump, Mutation, Revision, Store, StoreOptions, Subscription};
