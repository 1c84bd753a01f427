//! Reading and verifying archives over `Read + Seek` without loading bodies.
//!
//! Order of checks on open: magic and version; the root maxsize bound (1 MiB
//! without a commitment, the committed bound otherwise) *before* the TOC is
//! read; the Ed25519ph signature over the header's commitment; then the root
//! TOC, whose sighash must equal the signed one. Sub-directory TOCs are read
//! lazily and must hash to their parent's entry; their actual size must not
//! exceed the signed size. Every position and size is checked against the
//! file length before it is used; TOC regions may not overlap each other or
//! the header (which also rules out cycles); nesting is limited to
//! [`MAX_DEPTH`]. File bodies are hashed while read ([`FileReader`]).
//!
//! Limitations: one TOC is at most [`MAX_TOC_LEN`] bytes (a Hearth bound that
//! keeps memory small even with a registry commitment).
//!
//! Rejected alternative: memory-mapping the file. It needs `unsafe`, and a
//! file truncated while mapped turns into SIGBUS instead of an error.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};

use ed25519_dalek::{Signature, VerifyingKey};

use crate::encoding::{Hash, validate_name};
use crate::file_reader::FileReader;
use crate::header::{Commitment, HEADER_LEN, Header, MAGIC, MAX_UNCOMMITTED_ROOT, VERSION};
use crate::read_error::{EntryKind, ReadError, TreeEntry, VerifySummary};
use crate::toc::{self, Body, RawEntry};
use crate::writer::IO_BUF;

/// Deepest nesting of path segments the reader and writer accept.
pub const MAX_DEPTH: usize = 48;
/// Largest single TOC the reader loads (64 MiB).
pub const MAX_TOC_LEN: u64 = 64 * 1024 * 1024;

pub(crate) struct Dir {
    /// Entries in TOC order, with loaded sub-directories.
    pub(crate) entries: Vec<(RawEntry, Option<Box<Dir>>)>,
}

/// Loaded regions: start → (end, owner).
type Regions = BTreeMap<u64, (u64, String)>;

/// A verified S9PK v2 archive open for reading.
pub struct S9pkReader<R> {
    pub(crate) inner: R,
    pub(crate) file_len: u64,
    pub(crate) header: Header,
    signer: VerifyingKey,
    pub(crate) root: Dir,
    regions: Regions,
}

fn io_err(op: &'static str, offset: u64) -> impl FnOnce(io::Error) -> ReadError {
    move |source| ReadError::Io { op, offset, source }
}

fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

impl<R: Read + Seek> S9pkReader<R> {
    /// Opens and verifies the header, signature and root TOC. Without a
    /// `commitment`, a root TOC bound over 1 MiB is refused before it is read;
    /// with one, the header must match it.
    pub fn open(mut inner: R, commitment: Option<Commitment>) -> Result<Self, ReadError> {
        let file_len = inner
            .seek(SeekFrom::End(0))
            .map_err(io_err("finding the file length", 0))?;
        inner
            .seek(SeekFrom::Start(0))
            .map_err(io_err("seeking to the header", 0))?;
        let mut buf = [0u8; 155];
        let have = usize::try_from(file_len.min(HEADER_LEN)).unwrap_or(0);
        inner
            .read_exact(&mut buf[..have])
            .map_err(io_err("reading the header", 0))?;
        if have >= 2 && buf[0..2] != MAGIC || have < 2 && buf[..have] != MAGIC[..have] {
            return Err(ReadError::NotS9pk {
                found: buf[..have.min(2)].to_vec(),
            });
        }
        if have >= 3 {
            match buf[2] {
                VERSION => {}
                1 => return Err(ReadError::V1Unsupported),
                v => return Err(ReadError::UnsupportedVersion(v)),
            }
        }
        if file_len < HEADER_LEN {
            return Err(ReadError::TruncatedHeader { file_len });
        }
        let mut rest = [0u8; 152];
        rest.copy_from_slice(&buf[3..]);
        let header = Header::decode(&rest);
        let signer =
            VerifyingKey::from_bytes(&header.pubkey).map_err(|_| ReadError::InvalidSignerKey)?;
        let c = header.commitment;
        match commitment {
            None if c.root_maxsize > MAX_UNCOMMITTED_ROOT => {
                return Err(ReadError::RootTooLarge {
                    maxsize: c.root_maxsize,
                    limit: MAX_UNCOMMITTED_ROOT,
                });
            }
            None => {}
            Some(trusted) => {
                if trusted.root_sighash != c.root_sighash {
                    return Err(ReadError::CommitmentMismatch {
                        expected: trusted.root_sighash,
                        found: c.root_sighash,
                    });
                }
                if c.root_maxsize > trusted.root_maxsize {
                    return Err(ReadError::CommitmentMaxsize {
                        committed: trusted.root_maxsize,
                        found: c.root_maxsize,
                    });
                }
            }
        }
        c.verify(&signer, &Signature::from_bytes(&header.signature))
            .map_err(|_| ReadError::BadSignature)?;
        let mut regions = Regions::new();
        regions.insert(0, (HEADER_LEN, "header".to_owned()));
        let root_entry = RawEntry {
            name: String::new(),
            hash: c.root_sighash,
            size: c.root_maxsize,
            body: Body::Dir {
                pos: header.root_pos,
                toc_size: header.root_size,
            },
        };
        check_bounds(&root_entry, "/", file_len)?;
        let root = load_dir(&mut inner, &mut regions, file_len, "/", &root_entry, 0)?;
        Ok(S9pkReader {
            inner,
            file_len,
            header,
            signer,
            root,
            regions,
        })
    }

    /// The signer's public key (checked against the signature, not trusted).
    pub fn signer(&self) -> VerifyingKey {
        self.signer
    }

    /// The signed commitment: root sighash and root maxsize.
    pub fn commitment(&self) -> Commitment {
        self.header.commitment
    }

    /// Length of the archive file.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Fails unless the signer is one of `trusted`.
    pub fn check_signer(&self, trusted: &[VerifyingKey]) -> Result<(), ReadError> {
        if trusted.contains(&self.signer) {
            Ok(())
        } else {
            Err(ReadError::UntrustedSigner {
                signer: crate::base64_encode(self.signer.as_bytes()),
            })
        }
    }

    /// Loads (verifying) every TOC reachable from the root.
    pub(crate) fn load_all(&mut self) -> Result<(), ReadError> {
        let Self {
            inner,
            root,
            regions,
            file_len,
            ..
        } = self;
        load_rec(inner, regions, *file_len, root, "/", 0)
    }

    /// Every entry of the tree (loading and verifying all TOCs), depth-first:
    /// each directory's entries by byte-wise name, a directory right before
    /// its contents.
    pub fn entries(&mut self) -> Result<Vec<TreeEntry>, ReadError> {
        self.load_all()?;
        let mut out = Vec::new();
        list_rec(&self.root, "", &mut out);
        Ok(out)
    }

    /// Looks up one entry, loading the directories on the way.
    pub fn entry(&mut self, path: &str) -> Result<TreeEntry, ReadError> {
        let (raw, _) = self.lookup(path)?;
        let kind = match raw.body {
            Body::Missing => EntryKind::Missing,
            Body::File { .. } => EntryKind::File,
            Body::Dir { .. } => EntryKind::Directory,
        };
        Ok(TreeEntry {
            path: path.trim_start_matches('/').to_owned(),
            kind,
            size: raw.size,
            hash: raw.hash,
        })
    }

    fn lookup(&mut self, path: &str) -> Result<(RawEntry, String), ReadError> {
        let not_found = || ReadError::NotFound {
            path: path.to_owned(),
        };
        let trimmed = path.trim_start_matches('/');
        let segs: Vec<&str> = trimmed.split('/').collect();
        if segs.iter().any(|s| validate_name(s).is_err()) {
            return Err(not_found());
        }
        let Self {
            inner,
            root,
            regions,
            file_len,
            ..
        } = self;
        let file_len = *file_len;
        let mut dir: &mut Dir = root;
        let mut here = String::from("/");
        let (last, parents) = segs.split_last().ok_or_else(not_found)?;
        for (depth, seg) in parents.iter().enumerate() {
            let (raw, child) = dir
                .entries
                .iter_mut()
                .find(|(e, _)| e.name == *seg)
                .ok_or_else(not_found)?;
            here = child_path(&here, seg);
            if !matches!(raw.body, Body::Dir { .. }) {
                return Err(not_found());
            }
            if child.is_none() {
                *child = Some(Box::new(load_dir(
                    inner,
                    regions,
                    file_len,
                    &here,
                    raw,
                    depth + 1,
                )?));
            }
            dir = child.as_deref_mut().ok_or_else(not_found)?;
        }
        let (raw, _) = dir
            .entries
            .iter()
            .find(|(e, _)| e.name == *last)
            .ok_or_else(not_found)?;
        Ok((raw.clone(), child_path(&here, last)))
    }

    /// Opens a present file for reading. The reader hashes while reading and
    /// fails on the read that completes the file if the hash does not match,
    /// or if the archive ends early.
    pub fn open_file(&mut self, path: &str) -> Result<FileReader<'_, R>, ReadError> {
        let (raw, full) = self.lookup(path)?;
        let Body::File { pos } = raw.body else {
            return Err(ReadError::NotAFile {
                path: full,
                kind: if matches!(raw.body, Body::Dir { .. }) {
                    EntryKind::Directory
                } else {
                    EntryKind::Missing
                },
            });
        };
        self.inner
            .seek(SeekFrom::Start(pos))
            .map_err(io_err("seeking to a file body", pos))?;
        Ok(FileReader::new(
            &mut self.inner,
            full,
            pos,
            raw.size,
            raw.hash,
        ))
    }

    /// Reads a whole (verified) file of at most `limit` bytes.
    pub fn read_file(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, ReadError> {
        let entry = self.entry(path)?;
        if entry.size > limit {
            return Err(ReadError::FileTooLarge {
                path: entry.path,
                size: entry.size,
                limit,
            });
        }
        let mut r = self.open_file(path)?;
        let mut out = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
        r.read_to_end(&mut out)
            .map_err(|e| unwrap_io(e, &entry.path))?;
        Ok(out)
    }

    /// Verifies every TOC and streams every present file through BLAKE3 in
    /// file order, checking hash and size. Uses one 1 MiB buffer.
    pub fn verify_all(&mut self) -> Result<VerifySummary, ReadError> {
        self.load_all()?;
        let mut files = Vec::new();
        let mut summary = VerifySummary {
            files: 0,
            bytes: 0,
            directories: 0,
            missing: 0,
        };
        collect_files(&self.root, "/", &mut files, &mut summary);
        files.sort_by_key(|f| f.1);
        let mut buf = vec![0u8; IO_BUF];
        let mut at = u64::MAX;
        for (path, pos, size, expected) in files {
            if size > 0
                && let Some((_, (_, other))) = self
                    .regions
                    .range(..pos + size)
                    .next_back()
                    .filter(|(_, (end, _))| *end > pos)
            {
                return Err(ReadError::FileOverlap {
                    path,
                    pos,
                    other: other.clone(),
                });
            }
            if at != pos {
                self.inner
                    .seek(SeekFrom::Start(pos))
                    .map_err(io_err("seeking to a file body", pos))?;
            }
            let mut hasher = blake3::Hasher::new();
            let mut left = size;
            while left > 0 {
                let n = usize::try_from(left.min(IO_BUF as u64)).unwrap_or(IO_BUF);
                let offset = pos + (size - left);
                read_full(&mut self.inner, &mut buf[..n]).map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => ReadError::FileTruncated {
                        path: path.clone(),
                        offset,
                        missing: left,
                        size,
                    },
                    _ => ReadError::Io {
                        op: "reading a file body",
                        offset,
                        source: e,
                    },
                })?;
                hasher.update(&buf[..n]);
                left -= n as u64;
            }
            at = pos + size;
            let actual = Hash::from(hasher.finalize());
            if actual != expected {
                return Err(ReadError::FileHashMismatch {
                    path,
                    pos,
                    expected,
                    actual,
                });
            }
            summary.files += 1;
            summary.bytes += size;
        }
        Ok(summary)
    }

    /// Gives back the underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<()> {
    r.read_exact(buf)
}

/// Recovers the [`ReadError`] a [`FileReader`] error carries.
fn unwrap_io(e: io::Error, path: &str) -> ReadError {
    match e.downcast::<ReadError>() {
        Ok(r) => r,
        Err(source) => ReadError::Io {
            op: "reading a file body",
            offset: 0,
            source: io::Error::new(source.kind(), format!("{path}: {source}")),
        },
    }
}

/// Checks a directory entry's TOC bounds against its signed size and the file.
fn check_bounds(raw: &RawEntry, path: &str, file_len: u64) -> Result<(), ReadError> {
    match raw.body {
        Body::Dir { pos, toc_size } => {
            let bound = raw.size.min(MAX_TOC_LEN);
            if toc_size > bound {
                return Err(ReadError::TocTooLarge {
                    path: path.to_owned(),
                    pos,
                    actual: toc_size,
                    bound,
                });
            }
            if pos.checked_add(toc_size).is_none_or(|end| end > file_len) {
                return Err(ReadError::TocOutOfBounds {
                    path: path.to_owned(),
                    pos,
                    size: toc_size,
                    file_len,
                });
            }
        }
        Body::File { pos } => {
            if pos.checked_add(raw.size).is_none_or(|end| end > file_len) {
                return Err(ReadError::FileOutOfBounds {
                    path: path.to_owned(),
                    pos,
                    size: raw.size,
                    file_len,
                });
            }
        }
        Body::Missing => {}
    }
    Ok(())
}

/// Reads, decodes and verifies the TOC of directory entry `raw` (whose bounds
/// were checked when its parent was loaded).
fn load_dir<R: Read + Seek>(
    inner: &mut R,
    regions: &mut Regions,
    file_len: u64,
    path: &str,
    raw: &RawEntry,
    depth: usize,
) -> Result<Dir, ReadError> {
    let Body::Dir { pos, toc_size } = raw.body else {
        return Ok(Dir {
            entries: Vec::new(),
        });
    };
    if depth >= MAX_DEPTH {
        return Err(ReadError::TooDeep {
            path: path.to_owned(),
        });
    }
    let end = pos.saturating_add(toc_size);
    if let Some((other_pos, (_, other))) = regions
        .range(..end.max(pos.saturating_add(1)))
        .next_back()
        .filter(|(start, (oend, _))| *oend > pos || **start == pos)
    {
        return Err(ReadError::Overlap {
            path: path.to_owned(),
            pos,
            other: other.clone(),
            other_pos: *other_pos,
        });
    }
    let len = usize::try_from(toc_size).map_err(|_| ReadError::TocTooLarge {
        path: path.to_owned(),
        pos,
        actual: toc_size,
        bound: MAX_TOC_LEN,
    })?;
    let mut data = vec![0u8; len];
    inner
        .seek(SeekFrom::Start(pos))
        .map_err(io_err("seeking to a TOC", pos))?;
    inner
        .read_exact(&mut data)
        .map_err(io_err("reading a TOC", pos))?;
    let decoded = toc::decode(&data, pos).map_err(|source| ReadError::Toc {
        path: path.to_owned(),
        source,
    })?;
    let actual = toc::sighash_of(&decoded);
    if actual != raw.hash {
        return Err(ReadError::DirHashMismatch {
            path: path.to_owned(),
            pos,
            expected: raw.hash,
            actual,
        });
    }
    for e in &decoded {
        check_bounds(e, &child_path(path, &e.name), file_len)?;
    }
    regions.insert(pos, (end, path.to_owned()));
    Ok(Dir {
        entries: decoded.into_iter().map(|e| (e, None)).collect(),
    })
}

fn load_rec<R: Read + Seek>(
    inner: &mut R,
    regions: &mut Regions,
    file_len: u64,
    dir: &mut Dir,
    path: &str,
    depth: usize,
) -> Result<(), ReadError> {
    for (raw, child) in &mut dir.entries {
        if matches!(raw.body, Body::Dir { .. }) {
            let p = child_path(path, &raw.name);
            if child.is_none() {
                *child = Some(Box::new(load_dir(
                    inner,
                    regions,
                    file_len,
                    &p,
                    raw,
                    depth + 1,
                )?));
            }
            if let Some(c) = child.as_deref_mut() {
                load_rec(inner, regions, file_len, c, &p, depth + 1)?;
            }
        }
    }
    Ok(())
}

fn list_rec(dir: &Dir, prefix: &str, out: &mut Vec<TreeEntry>) {
    let mut sorted: Vec<&(RawEntry, Option<Box<Dir>>)> = dir.entries.iter().collect();
    sorted.sort_by(|a, b| a.0.name.as_bytes().cmp(b.0.name.as_bytes()));
    for (raw, child) in sorted {
        let path = if prefix.is_empty() {
            raw.name.clone()
        } else {
            format!("{prefix}/{}", raw.name)
        };
        let kind = match raw.body {
            Body::Missing => EntryKind::Missing,
            Body::File { .. } => EntryKind::File,
            Body::Dir { .. } => EntryKind::Directory,
        };
        out.push(TreeEntry {
            path: path.clone(),
            kind,
            size: raw.size,
            hash: raw.hash,
        });
        if let Some(c) = child {
            list_rec(c, &path, out);
        }
    }
}

fn collect_files(
    dir: &Dir,
    path: &str,
    out: &mut Vec<(String, u64, u64, Hash)>,
    summary: &mut VerifySummary,
) {
    summary.directories += 1;
    for (raw, child) in &dir.entries {
        let p = child_path(path, &raw.name);
        match raw.body {
            Body::File { pos } => out.push((p, pos, raw.size, raw.hash)),
            Body::Missing => summary.missing += 1,
            Body::Dir { .. } => {
                if let Some(c) = child {
                    collect_files(c, &p, out, summary);
                }
            }
        }
    }
}
