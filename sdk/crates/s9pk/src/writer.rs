//! Writing archives: the in-memory tree, the deterministic layout and the
//! single streaming pass that writes bodies, TOCs and the signed header.
//!
//! Layout (as in StartOS): the header, then the root TOC at offset 155, then
//! bodies breadth-first: a FIFO queue starts with the root's entries in TOC
//! order; a dequeued file gets the next position, a dequeued directory gets
//! the next position for its TOC and its entries join the queue. Entries in a
//! TOC are ordered directories, files, MISSING, each by byte-wise name.
//!
//! TOC lengths depend only on names and entry kinds, so every position is
//! known before any byte is hashed. Bodies are streamed once (hashing while
//! copying); TOCs and the header are written over placeholders at the end,
//! which is why the output must be `Write + Seek`.
//!
//! Rejected alternative: hashing every file first, then writing. It reads
//! every body twice, which doubles the cost of packing large images.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use ed25519_dalek::SigningKey;

use crate::encoding::{Hash, NameError, validate_name};
use crate::header::{Commitment, HEADER_LEN, Header};
use crate::reader::MAX_DEPTH;
use crate::toc::{self, Body, RawEntry};

/// Buffer size for streaming bodies.
pub(crate) const IO_BUF: usize = 1 << 20;

/// Errors of building and writing an archive.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// An archive path has an invalid segment.
    #[error("invalid archive path {path:?}")]
    InvalidName {
        /// The archive path.
        path: String,
        /// What was wrong with the segment.
        source: NameError,
    },
    /// Something already exists at an archive path.
    #[error("archive path {path:?} already exists")]
    Exists {
        /// The archive path.
        path: String,
    },
    /// A parent of an archive path is a file.
    #[error("a parent of archive path {path:?} is not a directory")]
    ParentNotDir {
        /// The archive path.
        path: String,
    },
    /// Directories nested deeper than readers accept.
    #[error("archive path {path:?} is nested deeper than {MAX_DEPTH} directories")]
    TooDeep {
        /// The archive path.
        path: String,
    },
    /// Reading metadata of a source path failed.
    #[error("reading metadata of {path}")]
    Stat {
        /// The source path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Listing a source directory failed.
    #[error("listing directory {path}")]
    ReadDir {
        /// The source directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A source entry is a symbolic link.
    #[error("{path} is a symbolic link; only regular files and directories can be packed")]
    Symlink {
        /// The source path.
        path: PathBuf,
    },
    /// A source entry is neither a regular file nor a directory.
    #[error("{path} is a special file; only regular files and directories can be packed")]
    Special {
        /// The source path.
        path: PathBuf,
    },
    /// A source file name is not UTF-8.
    #[error("{path}: file name is not UTF-8")]
    NonUtf8Name {
        /// The source path.
        path: PathBuf,
    },
    /// Opening a source file failed.
    #[error("opening {path}")]
    OpenSource {
        /// The source path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Reading a source file failed.
    #[error("reading {path}")]
    ReadSource {
        /// The source path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A source file changed size while being packed.
    #[error("{path} changed while packing: expected {expected} bytes, read {actual}")]
    SourceChanged {
        /// The source path.
        path: PathBuf,
        /// Size when it was added.
        expected: u64,
        /// Bytes actually read.
        actual: u64,
    },
    /// Writing the output failed.
    #[error("writing the archive at offset {offset}")]
    Output {
        /// Offset being written.
        offset: u64,
        /// The OS error.
        source: io::Error,
    },
    /// Creating, syncing or renaming the output file failed.
    #[error("{op} {path}")]
    OutputFile {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Signing failed.
    #[error("signing the archive")]
    Sign(#[source] ed25519_dalek::SignatureError),
    /// Copying a body out of a source archive failed (filtering).
    #[error("copying {path:?} from the source archive")]
    CopyFromArchive {
        /// The archive path.
        path: String,
        /// What failed.
        source: Box<crate::ReadError>,
    },
    /// A re-written archive no longer matches its signature (a bug).
    #[error("re-written root sighash {actual} differs from the signed {expected}")]
    SighashChanged {
        /// The signed root sighash.
        expected: Hash,
        /// The recomputed one.
        actual: Hash,
    },
}

/// Where a file's bytes come from.
pub(crate) enum Source {
    Bytes(Vec<u8>),
    Path(PathBuf),
    /// A body in the archive being filtered, with its signed hash.
    Archive {
        pos: u64,
        hash: Hash,
    },
}

pub(crate) struct FileNode {
    pub(crate) size: u64,
    pub(crate) source: Source,
}

pub(crate) enum Node {
    Dir(DirNode),
    File(FileNode),
    /// No body; the hash and size are kept so parent hashes stay valid.
    Missing {
        hash: Hash,
        size: u64,
    },
}

#[derive(Default)]
pub(crate) struct DirNode {
    pub(crate) entries: BTreeMap<String, Node>,
    /// The signed TOC size to keep (filtering); `None` means the actual size.
    pub(crate) signed_size: Option<u64>,
}

/// Copies archive bodies for [`Source::Archive`] files.
pub(crate) trait ArchiveBodies {
    fn copy(
        &mut self,
        path: &str,
        pos: u64,
        size: u64,
        hash: Hash,
        out: &mut dyn Write,
        out_pos: u64,
    ) -> Result<(), WriteError>;
}

/// Used when no file comes from an archive.
pub(crate) struct NoArchive;

impl ArchiveBodies for NoArchive {
    fn copy(
        &mut self,
        path: &str,
        _: u64,
        _: u64,
        _: Hash,
        _: &mut dyn Write,
        _: u64,
    ) -> Result<(), WriteError> {
        Err(WriteError::CopyFromArchive {
            path: path.to_owned(),
            source: Box::new(crate::ReadError::NotFound {
                path: path.to_owned(),
            }),
        })
    }
}

/// How the header is produced.
pub(crate) enum Signer<'a> {
    /// Sign the new commitment.
    Key(&'a SigningKey),
    /// Keep an existing signature; the rewritten root must hash the same.
    Keep {
        pubkey: [u8; 32],
        signature: [u8; 64],
        commitment: Commitment,
    },
}

/// Splits and validates an archive path (`a/b/c`, no leading `/`).
pub(crate) fn split_path(path: &str) -> Result<Vec<&str>, WriteError> {
    let segs: Vec<&str> = path.split('/').collect();
    for s in &segs {
        validate_name(s).map_err(|source| WriteError::InvalidName {
            path: path.to_owned(),
            source,
        })?;
    }
    if segs.len() > MAX_DEPTH {
        return Err(WriteError::TooDeep {
            path: path.to_owned(),
        });
    }
    Ok(segs)
}

impl DirNode {
    /// Inserts `node` at `path`, creating parent directories.
    pub(crate) fn insert(&mut self, path: &str, node: Node) -> Result<(), WriteError> {
        let segs = split_path(path)?;
        let (last, parents) = segs.split_last().ok_or_else(|| WriteError::InvalidName {
            path: path.to_owned(),
            source: NameError::Empty,
        })?;
        let mut dir = self;
        for seg in parents {
            let entry = dir
                .entries
                .entry((*seg).to_owned())
                .or_insert_with(|| Node::Dir(DirNode::default()));
            dir = match entry {
                Node::Dir(d) => d,
                _ => {
                    return Err(WriteError::ParentNotDir {
                        path: path.to_owned(),
                    });
                }
            };
        }
        match dir.entries.get(*last) {
            None => {
                dir.entries.insert((*last).to_owned(), node);
                Ok(())
            }
            // Adding a directory that exists is a no-op.
            Some(Node::Dir(_)) if matches!(&node, Node::Dir(d) if d.entries.is_empty()) => Ok(()),
            Some(_) => Err(WriteError::Exists {
                path: path.to_owned(),
            }),
        }
    }
}

/// A directory flattened for layout: entries in TOC order.
struct FlatDir<'a> {
    path: String,
    node: &'a DirNode,
    entries: Vec<FlatEntry<'a>>,
    toc_size: u64,
}

struct FlatEntry<'a> {
    name: &'a str,
    kind: FlatKind<'a>,
}

enum FlatKind<'a> {
    Dir(usize),
    File(&'a FileNode),
    Missing(Hash, u64),
}

fn rank(n: &Node) -> u8 {
    match n {
        Node::Dir(_) => 0,
        Node::File(_) => 1,
        Node::Missing { .. } => 2,
    }
}

/// Flattens the tree breadth-first (so the BFS order of directories is their
/// index order) and computes each TOC's length.
fn flatten(root: &DirNode) -> Vec<FlatDir<'_>> {
    let mut dirs: Vec<FlatDir<'_>> = Vec::new();
    let mut queue: VecDeque<(String, &DirNode)> = VecDeque::from([(String::new(), root)]);
    while let Some((path, node)) = queue.pop_front() {
        let mut sorted: Vec<(&String, &Node)> = node.entries.iter().collect();
        // Stable sort keeps the BTreeMap's byte-wise name order within a rank.
        sorted.sort_by_key(|(_, n)| rank(n));
        let mut entries = Vec::with_capacity(sorted.len());
        let mut next_dir = dirs.len() + queue.len() + 1;
        for (name, n) in sorted {
            let kind = match n {
                Node::Dir(d) => {
                    let child = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}/{name}")
                    };
                    queue.push_back((child, d));
                    next_dir += 1;
                    FlatKind::Dir(next_dir - 1)
                }
                Node::File(f) => FlatKind::File(f),
                Node::Missing { hash, size } => FlatKind::Missing(*hash, *size),
            };
            entries.push(FlatEntry { name, kind });
        }
        let body = |k: &FlatKind<'_>| match k {
            FlatKind::Dir(_) => Body::Dir {
                pos: 0,
                toc_size: 0,
            },
            FlatKind::File(_) => Body::File { pos: 0 },
            FlatKind::Missing(..) => Body::Missing,
        };
        let toc_size = crate::encoding::varint_len(entries.len() as u64)
            + entries
                .iter()
                .map(|e| toc::entry_len(e.name, &body(&e.kind)))
                .sum::<u64>();
        dirs.push(FlatDir {
            path,
            node,
            entries,
            toc_size,
        });
    }
    dirs
}

/// Position tracking output wrapper that names the offset on failure.
struct Out<W: Write + Seek> {
    inner: BufWriter<W>,
    pos: u64,
}

impl<W: Write + Seek> Out<W> {
    fn err(&self, source: io::Error) -> WriteError {
        WriteError::Output {
            offset: self.pos,
            source,
        }
    }
    fn put(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        self.inner.write_all(bytes).map_err(|e| self.err(e))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }
    fn zeros(&mut self, mut n: u64) -> Result<(), WriteError> {
        let z = [0u8; 4096];
        while n > 0 {
            let k = n.min(z.len() as u64);
            // k <= 4096.
            self.put(&z[..usize::try_from(k).unwrap_or(0)])?;
            n -= k;
        }
        Ok(())
    }
    fn seek(&mut self, pos: u64) -> Result<(), WriteError> {
        self.pos = pos;
        self.inner
            .seek(SeekFrom::Start(pos))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}

/// Hashes everything written through it.
struct HashingWrite<'a, W: Write + Seek> {
    out: &'a mut Out<W>,
    hasher: blake3::Hasher,
    written: u64,
}

impl<W: Write + Seek> Write for HashingWrite<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.inner.write_all(buf)?;
        self.out.pos += buf.len() as u64;
        self.hasher.update(buf);
        self.written += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.inner.flush()
    }
}

/// Streams a file body into `w`, returning its hash.
fn copy_body<W: Write + Seek>(
    path: &str,
    file: &FileNode,
    out: &mut Out<W>,
    archive: &mut dyn ArchiveBodies,
) -> Result<Hash, WriteError> {
    let start = out.pos;
    let mut w = HashingWrite {
        out,
        hasher: blake3::Hasher::new(),
        written: 0,
    };
    match &file.source {
        Source::Bytes(b) => {
            w.write_all(b).map_err(|e| WriteError::Output {
                offset: start,
                source: e,
            })?;
        }
        Source::Path(p) => {
            let f = std::fs::File::open(p).map_err(|source| WriteError::OpenSource {
                path: p.clone(),
                source,
            })?;
            let mut buf = vec![0u8; IO_BUF];
            let mut f = f;
            loop {
                let n = match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(source) => {
                        return Err(WriteError::ReadSource {
                            path: p.clone(),
                            source,
                        });
                    }
                };
                if w.written + n as u64 > file.size {
                    return Err(WriteError::SourceChanged {
                        path: p.clone(),
                        expected: file.size,
                        actual: w.written + n as u64,
                    });
                }
                let offset = w.out.pos;
                w.write_all(&buf[..n])
                    .map_err(|source| WriteError::Output { offset, source })?;
            }
        }
        Source::Archive { pos, hash } => {
            archive.copy(path, *pos, file.size, *hash, &mut w, start)?;
        }
    }
    if w.written != file.size {
        return Err(WriteError::SourceChanged {
            path: match &file.source {
                Source::Path(p) => p.clone(),
                _ => PathBuf::from(path),
            },
            expected: file.size,
            actual: w.written,
        });
    }
    Ok(Hash::from(w.hasher.finalize()))
}

/// Writes `root` as a complete archive to `out` (which must be empty or be
/// overwritten from offset 0) and returns the commitment.
pub(crate) fn write_archive<W: Write + Seek>(
    root: &DirNode,
    signer: Signer<'_>,
    archive: &mut dyn ArchiveBodies,
    out: W,
) -> Result<Commitment, WriteError> {
    let dirs = flatten(root);
    let mut dir_pos = vec![0u64; dirs.len()];
    let mut out = Out {
        inner: BufWriter::with_capacity(IO_BUF, out),
        pos: 0,
    };
    out.seek(0)?;
    out.zeros(HEADER_LEN)?;
    dir_pos[0] = HEADER_LEN;
    let root_size = dirs.first().map_or(1, |d| d.toc_size);
    out.zeros(root_size)?;
    // Body pass, breadth-first: directories are numbered in BFS order, so
    // walking them in index order and their entries in TOC order reproduces
    // the FIFO queue.
    let mut file_pos: Vec<Vec<(u64, Hash)>> = Vec::with_capacity(dirs.len());
    for d in &dirs {
        let mut here = Vec::new();
        for e in &d.entries {
            match e.kind {
                FlatKind::Dir(child) => {
                    dir_pos[child] = out.pos;
                    out.zeros(dirs[child].toc_size)?;
                }
                FlatKind::File(f) => {
                    let pos = out.pos;
                    let path = if d.path.is_empty() {
                        e.name.to_owned()
                    } else {
                        format!("{}/{}", d.path, e.name)
                    };
                    let hash = copy_body(&path, f, &mut out, archive)?;
                    here.push((pos, hash));
                }
                FlatKind::Missing(..) => {}
            }
        }
        file_pos.push(here);
    }
    let end = out.pos;
    // TOC pass, children before parents (reverse BFS order).
    let mut sig: Vec<(Hash, u64)> = vec![(Hash([0; 32]), 0); dirs.len()];
    for (i, d) in dirs.iter().enumerate().rev() {
        let mut files = file_pos[i].iter();
        let mut raw = Vec::with_capacity(d.entries.len());
        for e in &d.entries {
            let (hash, size, body) = match e.kind {
                FlatKind::Dir(c) => (
                    sig[c].0,
                    sig[c].1,
                    Body::Dir {
                        pos: dir_pos[c],
                        toc_size: dirs[c].toc_size,
                    },
                ),
                FlatKind::File(f) => {
                    let (pos, hash) = files.next().copied().unwrap_or((0, Hash([0; 32])));
                    (hash, f.size, Body::File { pos })
                }
                FlatKind::Missing(h, s) => (h, s, Body::Missing),
            };
            raw.push(RawEntry {
                name: e.name.to_owned(),
                hash,
                size,
                body,
            });
        }
        let bytes = toc::encode(&raw);
        debug_assert_eq!(bytes.len() as u64, d.toc_size);
        sig[i] = (
            toc::sighash_of(&raw),
            d.node.signed_size.unwrap_or(d.toc_size).max(d.toc_size),
        );
        out.seek(dir_pos[i])?;
        out.put(&bytes)?;
    }
    let root_sighash = sig.first().map_or(Hash([0; 32]), |s| s.0);
    let header = match signer {
        Signer::Key(key) => {
            let commitment = Commitment {
                root_sighash,
                root_maxsize: root_size,
            };
            let signature = commitment.sign(key).map_err(WriteError::Sign)?;
            Header {
                pubkey: key.verifying_key().to_bytes(),
                signature: signature.to_bytes(),
                commitment,
                root_pos: HEADER_LEN,
                root_size,
            }
        }
        Signer::Keep {
            pubkey,
            signature,
            commitment,
        } => {
            if commitment.root_sighash != root_sighash || root_size > commitment.root_maxsize {
                return Err(WriteError::SighashChanged {
                    expected: commitment.root_sighash,
                    actual: root_sighash,
                });
            }
            Header {
                pubkey,
                signature,
                commitment,
                root_pos: HEADER_LEN,
                root_size,
            }
        }
    };
    out.seek(0)?;
    out.put(&header.encode())?;
    out.seek(end)?;
    out.inner.flush().map_err(|e| WriteError::Output {
        offset: end,
        source: e,
    })?;
    Ok(header.commitment)
}
