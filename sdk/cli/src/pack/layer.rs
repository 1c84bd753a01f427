//! Applies an image layer (a tar stream, uncompressed, gzip or zstd) to a root
//! directory with OCI whiteout semantics.
//!
//! # Design
//! Two passes over the layer: the first collects whiteouts (`.wh.NAME` removes
//! `NAME`, `.wh..wh..opq` empties its directory) and applies them to what lower
//! layers left; the second writes the layer's entries. Whiteouts therefore only
//! ever hide lower layers, whatever their order inside the tar. Compression is
//! recognised by magic bytes, not by media type (Docker labels are unreliable).
//!
//! # Budget and sparse files
//! A layer is untrusted input: a few KiB of gzip can expand to terabytes. Every
//! extraction draws on a [`Budget`] (per image, across its layers): at most
//! [`DEFAULT_MAX_BYTES`] bytes of file contents and [`DEFAULT_MAX_ENTRIES`] entries
//! (`HEARTH_PACK_MAX_BYTES` / `HEARTH_PACK_MAX_ENTRIES` change them); past it the
//! layer fails with [`LayerError::Budget`], the file being written is removed, and the
//! caller's scratch directory goes with the failed pack. The budget counts a file's
//! full size, holes included (the squashfs build reads them). File contents are
//! written sparse: runs of zero blocks (the holes of a GNU sparse entry, which `tar`
//! hands over as zeros, or zeros stored in full) are skipped with a seek, so neither
//! kind inflates on disk.
//!
//! # Invariants
//! Entry paths and hard-link targets are relative and free of `..`; nothing is
//! written through a symlink (see `fsops`). Ownership and modes come from the
//! tar headers; mtimes are not kept (squashfs gets one fixed time). Device
//! nodes and FIFOs are skipped with a warning (containers get `/dev` from LXC).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::fsops::{
    self, FsError, clear_dir, ensure_dir, existing_parents, prepare_parents, remove_any,
    safe_relative, set_owner_mode,
};

const WHITEOUT_PREFIX: &str = ".wh.";
/// Default most bytes of file contents extracted for one image (all layers).
pub(crate) const DEFAULT_MAX_BYTES: u64 = 64 << 30;
/// Default most entries extracted for one image (all layers).
pub(crate) const DEFAULT_MAX_ENTRIES: u64 = 4_000_000;
/// Zero blocks of this size are skipped (left as holes) rather than written.
const HOLE_BLOCK: usize = 4096;

/// What extraction may still write (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    max_bytes: u64,
    max_entries: u64,
    bytes: u64,
    entries: u64,
}

impl Budget {
    /// At most `max_bytes` of contents and `max_entries` entries.
    pub(crate) fn new(max_bytes: u64, max_entries: u64) -> Budget {
        Budget {
            max_bytes,
            max_entries,
            bytes: 0,
            entries: 0,
        }
    }

    /// The defaults, or `HEARTH_PACK_MAX_BYTES` / `HEARTH_PACK_MAX_ENTRIES`.
    pub(crate) fn from_env() -> Budget {
        let var = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        Budget::new(
            var("HEARTH_PACK_MAX_BYTES", DEFAULT_MAX_BYTES),
            var("HEARTH_PACK_MAX_ENTRIES", DEFAULT_MAX_ENTRIES),
        )
    }

    fn take_entry(&mut self) -> Result<(), Exceeded> {
        self.entries += 1;
        if self.entries > self.max_entries {
            return Err(Exceeded::Entries(self.max_entries));
        }
        Ok(())
    }

    fn take_bytes(&mut self, n: u64) -> Result<(), Exceeded> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.max_bytes {
            return Err(Exceeded::Bytes(self.max_bytes));
        }
        Ok(())
    }
}

/// Which limit of the [`Budget`] was hit.
#[derive(Debug, Clone, Copy)]
enum Exceeded {
    Bytes(u64),
    Entries(u64),
}
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// A layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LayerError {
    /// The layer file could not be read or decompressed, or is not a tar.
    #[error("reading layer {layer}: {source}")]
    Read {
        /// The layer file.
        layer: PathBuf,
        /// The I/O or format error.
        source: io::Error,
    },
    /// An entry is unsafe or could not be written.
    #[error("layer {layer}, entry {entry:?}: {source}")]
    Entry {
        /// The layer file.
        layer: PathBuf,
        /// The entry's path in the tar.
        entry: String,
        /// What went wrong.
        source: FsError,
    },
    /// The image would expand past its extraction budget (a tar bomb, or an image
    /// larger than the limits).
    #[error(
        "layer {layer}: extracting it would exceed the image's limit of {limit} {what} \
         (a tar bomb? {var} raises the limit)"
    )]
    Budget {
        /// The layer file.
        layer: PathBuf,
        /// `bytes` or `entries`.
        what: &'static str,
        /// The limit.
        limit: u64,
        /// The environment variable that sets it.
        var: &'static str,
    },
    /// An entry's header is unusable (e.g. a uid beyond 32 bits).
    #[error("layer {layer}, entry {entry:?}: {reason}")]
    BadEntry {
        /// The layer file.
        layer: PathBuf,
        /// The entry's path in the tar.
        entry: String,
        /// What is wrong.
        reason: String,
    },
}

/// Opens `path`, transparently decompressing gzip or zstd.
pub(crate) fn open_layer(path: &Path) -> io::Result<Box<dyn Read>> {
    let mut magic = [0u8; 4];
    let mut probe = File::open(path)?;
    let n = probe.read(&mut magic)?;
    let file = BufReader::new(File::open(path)?);
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(file)),
        [0x28, 0xb5, 0x2f, 0xfd] => Box::new(
            ruzstd::decoding::StreamingDecoder::new(file)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
        ),
        _ => Box::new(file),
    })
}

/// One whiteout found in the first pass.
enum Whiteout {
    /// Remove this path.
    Remove(PathBuf),
    /// Empty this directory.
    Opaque(PathBuf),
}

/// Applies the layer at `layer` to `root` with a budget of its own
/// ([`Budget::from_env`]).
pub(crate) fn apply_layer(root: &Path, layer: &Path) -> Result<(), LayerError> {
    apply_layer_within(root, layer, &mut Budget::from_env())
}

/// Applies the layer at `layer` to `root`, drawing on `budget`.
pub(crate) fn apply_layer_within(
    root: &Path,
    layer: &Path,
    budget: &mut Budget,
) -> Result<(), LayerError> {
    let read_err = |source| LayerError::Read {
        layer: layer.to_path_buf(),
        source,
    };
    let over = |e: Exceeded| {
        let (what, limit, var) = match e {
            Exceeded::Bytes(l) => ("bytes", l, "HEARTH_PACK_MAX_BYTES"),
            Exceeded::Entries(l) => ("entries", l, "HEARTH_PACK_MAX_ENTRIES"),
        };
        LayerError::Budget {
            layer: layer.to_path_buf(),
            what,
            limit,
            var,
        }
    };
    // Pass 1 counts entries and declared sizes against what is left (without taking
    // them): a bomb is refused before its contents are even decompressed.
    let mut counting = budget.clone();
    // Pass 1: whiteouts.
    let mut whiteouts = Vec::new();
    let mut archive = tar::Archive::new(open_layer(layer).map_err(read_err)?);
    for entry in archive.entries().map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        counting.take_entry().map_err(over)?;
        counting.take_bytes(entry.size()).map_err(over)?;
        let raw = entry.path().map_err(read_err)?.into_owned();
        let entry_err = |source| LayerError::Entry {
            layer: layer.to_path_buf(),
            entry: raw.display().to_string(),
            source,
        };
        let rel = safe_relative(&raw).map_err(entry_err)?;
        let whiteout = whiteout_of(&rel).map_err(|reason| LayerError::BadEntry {
            layer: layer.to_path_buf(),
            entry: raw.display().to_string(),
            reason: reason.to_owned(),
        })?;
        if let Some(whiteout) = whiteout {
            whiteouts.push((raw.clone(), whiteout));
        }
    }
    for (raw, whiteout) in whiteouts {
        let entry_err = |source| LayerError::Entry {
            layer: layer.to_path_buf(),
            entry: raw.display().to_string(),
            source,
        };
        match whiteout {
            Whiteout::Remove(rel) => {
                if let Some(full) = existing_parents(root, &rel).map_err(entry_err)? {
                    remove_any(&full).map_err(entry_err)?;
                }
            }
            Whiteout::Opaque(rel) => {
                // The marker's own parent chain is checked like a file in that dir.
                let marker = rel.join(OPAQUE_MARKER);
                if existing_parents(root, &marker)
                    .map_err(entry_err)?
                    .is_some()
                {
                    clear_dir(&root.join(&rel)).map_err(entry_err)?;
                }
            }
        }
    }
    // Pass 2: contents.
    let mut skipped = 0usize;
    let mut archive = tar::Archive::new(open_layer(layer).map_err(read_err)?);
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw = entry.path().map_err(read_err)?.into_owned();
        let rel = safe_relative(&raw).map_err(|source| LayerError::Entry {
            layer: layer.to_path_buf(),
            entry: raw.display().to_string(),
            source,
        })?;
        if !matches!(whiteout_of(&rel), Ok(None)) || is_aufs_meta(&rel) {
            continue;
        }
        budget.take_entry().map_err(over)?;
        let written = write_entry(root, &rel, &mut entry, budget).map_err(|e| match e {
            EntryFailure::Budget(e) => over(e),
            EntryFailure::Fs(source) => LayerError::Entry {
                layer: layer.to_path_buf(),
                entry: raw.display().to_string(),
                source,
            },
            EntryFailure::Header(reason) => LayerError::BadEntry {
                layer: layer.to_path_buf(),
                entry: raw.display().to_string(),
                reason,
            },
        })?;
        if !written {
            skipped += 1;
        }
    }
    if skipped > 0 {
        tracing::info!(
            layer = %layer.display(),
            count = skipped,
            "skipped device nodes, FIFOs and unsupported entries (containers get /dev from LXC)"
        );
    }
    Ok(())
}

/// Classifies a whiteout entry. `Err` for a whiteout that names no single entry
/// (`.wh.`, `.wh..`, `.wh...`): removing `.` or `..` would hit the directory
/// itself or its parent.
fn whiteout_of(rel: &Path) -> Result<Option<Whiteout>, &'static str> {
    let Some(name) = rel.file_name().and_then(|n| n.to_str()) else {
        return Ok(None);
    };
    let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
    if name == OPAQUE_MARKER {
        return Ok(Some(Whiteout::Opaque(parent)));
    }
    if name.starts_with(".wh..wh.") {
        return Ok(None);
    }
    match name.strip_prefix(WHITEOUT_PREFIX) {
        None => Ok(None),
        Some("" | "." | "..") => Err("whiteout names no entry"),
        Some(hidden) => Ok(Some(Whiteout::Remove(parent.join(hidden)))),
    }
}

/// AUFS bookkeeping entries (`.wh..wh.plnk`, …) that are not part of the image.
fn is_aufs_meta(rel: &Path) -> bool {
    rel.components().any(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|s| s.starts_with(".wh..wh."))
    })
}

enum EntryFailure {
    Fs(FsError),
    Header(String),
    Budget(Exceeded),
}

impl From<FsError> for EntryFailure {
    fn from(e: FsError) -> Self {
        Self::Fs(e)
    }
}

fn header_err(e: io::Error) -> EntryFailure {
    EntryFailure::Header(e.to_string())
}

/// Writes one entry; `Ok(false)` if it was skipped (device node, FIFO, other).
fn write_entry<R: Read>(
    root: &Path,
    rel: &Path,
    entry: &mut tar::Entry<'_, R>,
    budget: &mut Budget,
) -> Result<bool, EntryFailure> {
    let header = entry.header();
    let kind = header.entry_type();
    let mode = header.mode().map_err(header_err)?;
    let uid = u32::try_from(header.uid().map_err(header_err)?)
        .map_err(|_| EntryFailure::Header("uid does not fit in 32 bits".into()))?;
    let gid = u32::try_from(header.gid().map_err(header_err)?)
        .map_err(|_| EntryFailure::Header("gid does not fit in 32 bits".into()))?;
    let full = if rel.as_os_str().is_empty() {
        if kind != EntryType::Directory {
            return Err(EntryFailure::Header(
                "only a directory may name the image root".into(),
            ));
        }
        root.to_path_buf()
    } else {
        prepare_parents(root, rel)?
    };
    match kind {
        EntryType::Directory => {
            ensure_dir(&full)?;
            set_owner_mode(&full, uid, gid, Some(mode))?;
        }
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            // The declared size first: a bomb's header already says what it is.
            let mut declared = budget.clone();
            declared
                .take_bytes(entry.size())
                .map_err(EntryFailure::Budget)?;
            remove_any(&full)?;
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&full)
                .map_err(fsops::io_err("creating", &full))?;
            if let Err(e) = copy_sparse(entry, &mut out, budget) {
                drop(out);
                let _ = fs::remove_file(&full);
                return Err(match e {
                    CopyFailure::Budget(e) => EntryFailure::Budget(e),
                    CopyFailure::Io(e) => EntryFailure::Fs(fsops::io_err("writing", &full)(e)),
                });
            }
            set_owner_mode(&full, uid, gid, Some(mode))?;
        }
        EntryType::Symlink => {
            let target = entry
                .link_name()
                .map_err(header_err)?
                .ok_or_else(|| EntryFailure::Header("symlink without a target".into()))?
                .into_owned();
            remove_any(&full)?;
            symlink(&target, &full).map_err(fsops::io_err("creating symlink", &full))?;
            set_owner_mode(&full, uid, gid, None)?;
        }
        EntryType::Link => {
            let raw_target = entry
                .link_name()
                .map_err(header_err)?
                .ok_or_else(|| EntryFailure::Header("hard link without a target".into()))?
                .into_owned();
            let target_rel = safe_relative(&raw_target)?;
            let target = existing_parents(root, &target_rel)?
                .filter(|t| fs::symlink_metadata(t).is_ok_and(|m| !m.is_dir()))
                .ok_or_else(|| {
                    EntryFailure::Header(format!(
                        "hard link target {} does not exist (or is a directory)",
                        raw_target.display()
                    ))
                })?;
            if target != full {
                remove_any(&full)?;
                fs::hard_link(&target, &full)
                    .map_err(fsops::io_err("creating hard link", &full))?;
            }
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            tracing::debug!(path = %rel.display(), "skipping device node or FIFO");
            return Ok(false);
        }
        other => {
            tracing::debug!(path = %rel.display(), kind = ?other, "skipping unsupported tar entry");
            return Ok(false);
        }
    }
    Ok(true)
}

enum CopyFailure {
    Io(io::Error),
    Budget(Exceeded),
}

/// Copies `src` into the empty file `out`, leaving every all-zero [`HOLE_BLOCK`] as a
/// hole (a seek instead of a write; the final length set at the end), and takes the
/// bytes from `budget` as they come.
fn copy_sparse(
    src: &mut impl Read,
    out: &mut File,
    budget: &mut Budget,
) -> Result<u64, CopyFailure> {
    let mut buf = vec![0u8; 16 * HOLE_BLOCK];
    let mut len: u64 = 0;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyFailure::Io(e)),
        };
        budget.take_bytes(n as u64).map_err(CopyFailure::Budget)?;
        for block in buf[..n].chunks(HOLE_BLOCK) {
            if block.iter().all(|b| *b == 0) {
                out.seek(SeekFrom::Current(block.len() as i64))
                    .map_err(CopyFailure::Io)?;
            } else {
                out.write_all(block).map_err(CopyFailure::Io)?;
            }
        }
        len += n as u64;
    }
    out.set_len(len).map_err(CopyFailure::Io)?;
    Ok(len)
}

#[cfg(test)]
#[path = "layer_tests.rs"]
#[allow(clippy::unwrap_used)]
mod tests;
