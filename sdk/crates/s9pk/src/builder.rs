//! The public archive builder, [`write_dir`], and atomic output files.
//!
//! Output files are written to a temporary file in the destination's
//! directory, synced, then renamed over the destination, so a crash never
//! leaves a half-written package under the final name. The temporary file is
//! removed if anything fails.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

use crate::header::Commitment;
use crate::reader::MAX_DEPTH;
use crate::writer::{
    DirNode, FileNode, NoArchive, Node, Signer, Source, WriteError, write_archive,
};

/// An in-memory archive tree to be written and signed.
///
/// Paths are `/`-separated archive paths without a leading `/`; every segment
/// must be a valid name. Parents are created as needed. Files added from disk
/// are streamed when the archive is written and must not change size.
#[derive(Default)]
pub struct ArchiveBuilder {
    root: DirNode,
}

impl std::fmt::Debug for ArchiveBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveBuilder")
            .field("root_entries", &self.root.entries.len())
            .finish()
    }
}

impl ArchiveBuilder {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an (empty) directory; adding an existing directory is a no-op.
    pub fn add_dir(&mut self, path: &str) -> Result<(), WriteError> {
        if path.split('/').count() >= MAX_DEPTH {
            return Err(WriteError::TooDeep {
                path: path.to_owned(),
            });
        }
        self.root.insert(path, Node::Dir(DirNode::default()))
    }

    /// Adds a file with the given contents.
    pub fn add_file_bytes(
        &mut self,
        path: &str,
        bytes: impl Into<Vec<u8>>,
    ) -> Result<(), WriteError> {
        let bytes = bytes.into();
        self.root.insert(
            path,
            Node::File(FileNode {
                size: bytes.len() as u64,
                source: Source::Bytes(bytes),
            }),
        )
    }

    /// Adds a regular file from disk (streamed when written).
    pub fn add_file_path(
        &mut self,
        path: &str,
        disk: impl Into<PathBuf>,
    ) -> Result<(), WriteError> {
        let disk = disk.into();
        let meta = fs::metadata(&disk).map_err(|source| WriteError::Stat {
            path: disk.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(WriteError::Special { path: disk });
        }
        self.root.insert(
            path,
            Node::File(FileNode {
                size: meta.len(),
                source: Source::Path(disk),
            }),
        )
    }

    /// Writes the signed archive to `out` from offset 0 and returns its
    /// commitment. Same tree and key → identical bytes.
    pub fn write_to<W: Write + Seek>(
        &self,
        key: &SigningKey,
        out: W,
    ) -> Result<Commitment, WriteError> {
        write_archive(&self.root, Signer::Key(key), &mut NoArchive, out)
    }

    /// Writes the signed archive to `out` atomically (temp file + rename).
    pub fn write_file(&self, key: &SigningKey, out: &Path) -> Result<Commitment, WriteError> {
        write_atomic(out, |f| self.write_to(key, f))
    }
}

/// Packs the directory tree at `src` (regular files and directories only)
/// into a signed archive at `out`, deterministically and atomically.
///
/// Symbolic links, sockets, devices and FIFOs are refused, as are names that
/// are not UTF-8 or not valid archive names. If `out` lies inside `src`, that
/// one file is skipped, so re-packing in place gives the same bytes.
pub fn write_dir(src: &Path, key: &SigningKey, out: &Path) -> Result<(), WriteError> {
    let canonical = |p: &Path| {
        fs::canonicalize(p).map_err(|source| WriteError::Stat {
            path: p.to_owned(),
            source,
        })
    };
    let src_abs = canonical(src)?;
    let out_abs = match (out.parent(), out.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            fs::canonicalize(dir).ok().map(|d| d.join(name))
        }
        _ => None,
    };
    let mut builder = ArchiveBuilder::new();
    add_tree(&mut builder, &src_abs, "", out_abs.as_deref())?;
    builder.write_file(key, out).map(|_| ())
}

fn add_tree(
    builder: &mut ArchiveBuilder,
    dir: &Path,
    prefix: &str,
    skip: Option<&Path>,
) -> Result<(), WriteError> {
    let listing = fs::read_dir(dir).map_err(|source| WriteError::ReadDir {
        path: dir.to_owned(),
        source,
    })?;
    let mut children = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|source| WriteError::ReadDir {
            path: dir.to_owned(),
            source,
        })?;
        children.push(entry.path());
    }
    children.sort();
    for path in children {
        if Some(path.as_path()) == skip {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| WriteError::NonUtf8Name { path: path.clone() })?;
        let archive_path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        let meta = fs::symlink_metadata(&path).map_err(|source| WriteError::Stat {
            path: path.clone(),
            source,
        })?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            return Err(WriteError::Symlink { path });
        } else if ft.is_dir() {
            builder.add_dir(&archive_path)?;
            add_tree(builder, &path, &archive_path, skip)?;
        } else if ft.is_file() {
            builder.root.insert(
                &archive_path,
                Node::File(FileNode {
                    size: meta.len(),
                    source: Source::Path(path),
                }),
            )?;
        } else {
            return Err(WriteError::Special { path });
        }
    }
    Ok(())
}

/// Removes the temporary file unless it was renamed.
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Runs `write` on a fresh temporary file next to `out`, then syncs it and
/// renames it to `out`.
pub(crate) fn write_atomic<T>(
    out: &Path,
    write: impl FnOnce(&mut File) -> Result<T, WriteError>,
) -> Result<T, WriteError> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("archive");
    let mut attempt = 0u32;
    let (file, guard) = loop {
        let tmp = dir.join(format!(".{name}.{}.{attempt}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => {
                break (
                    f,
                    TempGuard {
                        path: tmp,
                        armed: true,
                    },
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(source) => {
                return Err(WriteError::OutputFile {
                    op: "creating temporary file",
                    path: tmp,
                    source,
                });
            }
        }
    };
    let mut guard = guard;
    let mut file = file;
    let value = write(&mut file)?;
    file.sync_all().map_err(|source| WriteError::OutputFile {
        op: "syncing",
        path: guard.path.clone(),
        source,
    })?;
    drop(file);
    fs::rename(&guard.path, out).map_err(|source| WriteError::OutputFile {
        op: "renaming the temporary file to",
        path: out.to_owned(),
        source,
    })?;
    guard.armed = false;
    Ok(value)
}
