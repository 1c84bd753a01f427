//! `hearth-update`: the updater's state machine that writes a verified image into the
//! inactive slot and publishes it for a trial boot, so that a power cut at any instant
//! leaves one good committed entry and nothing unverified bootable.
//!
//! # Design
//! [`plan`] is pure: from the persisted [`Journal`] it names the next [`Effect`].
//! [`Updater`] performs one effect at a time through narrow traits ([`Disk`],
//! [`BootLoader`], [`JournalStore`], [`Source`]; fakes in the tests) and saves the
//! journal after each phase change and checkpoint, after `sync`. Every effect is
//! idempotent, so after a crash [`Updater::resume`] replays from the last saved journal:
//!
//! 1. preconditions (only when no journal exists): the running slot has a committed
//!    entry, no entry is pending a trial, the image fits the inactive slot;
//! 2. disarm the inactive slot's boot entry (before a byte of it changes);
//! 3. write chunks in order, each taken from the running slot when the seed has it
//!    (BLAKE3 checked) or fetched (checked before writing), `sync` and checkpoint every
//!    [`CHECKPOINT_BYTES`];
//! 4. read the slot back and compare SHA-256 and BLAKE3 with the signed manifest;
//! 5. publish the slot's boot entry with a try counter; clear the journal.
//!
//! # Not here yet
//! Kernel/initramfs publication, the RPC methods, HTTP, the post-boot health gate and
//! rollback (issue 13 points 3–4); this crate is the pure core they will drive.

mod machine;

pub use machine::*;

#[cfg(test)]
mod tests;
