//! Stripping an archive to one architecture without breaking its signature.
//!
//! Every `images/<other-arch>` directory becomes one MISSING entry that keeps
//! its sighash and signed size, so every parent hash, the root sighash and the
//! signature stay the same; the header keeps the original signature bytes and
//! root maxsize while the actual TOC sizes shrink. Bodies that stay are copied
//! with verification (hashed while copied), so a filtered archive never
//! carries bytes that did not match the source's hashes.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::ReadError;
use crate::encoding::{Hash, validate_name};
use crate::reader::{Dir, S9pkReader};
use crate::toc::Body;
use crate::writer::{
    ArchiveBodies, DirNode, FileNode, IO_BUF, Node, Signer, Source, WriteError, write_archive,
};

/// Errors of filtering an archive.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The architecture is not a valid name.
    #[error("invalid architecture name {0:?}")]
    InvalidArch(String),
    /// Loading the source tree failed.
    #[error("reading the source archive")]
    Read(#[source] ReadError),
    /// Writing the filtered archive failed.
    #[error("writing the filtered archive")]
    Write(#[source] WriteError),
}

/// Writes a copy of `reader`'s archive to `out` (atomically) in which every
/// `images/<a>` with `a != arch` is MISSING. Returns the stripped paths.
pub fn filter_arch<R: Read + Seek>(
    reader: &mut S9pkReader<R>,
    arch: &str,
    out: &Path,
) -> Result<Vec<String>, FilterError> {
    let (root, stripped) = plan(reader, arch)?;
    crate::builder::write_atomic(out, |f| write(reader, &root, f)).map_err(FilterError::Write)?;
    Ok(stripped)
}

/// Like [`filter_arch`], writing to any seekable output from offset 0.
pub fn filter_arch_to<R: Read + Seek, W: Write + Seek>(
    reader: &mut S9pkReader<R>,
    arch: &str,
    out: W,
) -> Result<Vec<String>, FilterError> {
    let (root, stripped) = plan(reader, arch)?;
    write(reader, &root, out).map_err(FilterError::Write)?;
    Ok(stripped)
}

fn write<R: Read + Seek, W: Write + Seek>(
    reader: &mut S9pkReader<R>,
    root: &DirNode,
    out: W,
) -> Result<(), WriteError> {
    let h = reader.header;
    let mut bodies = Bodies {
        inner: &mut reader.inner,
    };
    write_archive(
        root,
        Signer::Keep {
            pubkey: h.pubkey,
            signature: h.signature,
            commitment: h.commitment,
        },
        &mut bodies,
        out,
    )
    .map(|_| ())
}

fn plan<R: Read + Seek>(
    reader: &mut S9pkReader<R>,
    arch: &str,
) -> Result<(DirNode, Vec<String>), FilterError> {
    validate_name(arch).map_err(|_| FilterError::InvalidArch(arch.to_owned()))?;
    reader.load_all().map_err(FilterError::Read)?;
    let mut stripped = Vec::new();
    let mut root = convert(&reader.root, "", arch, &mut stripped);
    root.signed_size = Some(reader.header.commitment.root_maxsize);
    Ok((root, stripped))
}

fn convert(dir: &Dir, path: &str, arch: &str, stripped: &mut Vec<String>) -> DirNode {
    let mut node = DirNode::default();
    for (raw, child) in &dir.entries {
        let p = if path.is_empty() {
            raw.name.clone()
        } else {
            format!("{path}/{}", raw.name)
        };
        let n = match (raw.body, child) {
            (Body::Dir { .. }, Some(_)) if path == "images" && raw.name != arch => {
                stripped.push(p);
                Node::Missing {
                    hash: raw.hash,
                    size: raw.size,
                }
            }
            (Body::Dir { .. }, Some(c)) => {
                let mut d = convert(c, &p, arch, stripped);
                d.signed_size = Some(raw.size);
                Node::Dir(d)
            }
            (Body::File { pos }, _) => Node::File(FileNode {
                size: raw.size,
                source: Source::Archive {
                    pos,
                    hash: raw.hash,
                },
            }),
            _ => Node::Missing {
                hash: raw.hash,
                size: raw.size,
            },
        };
        node.entries.insert(raw.name.clone(), n);
    }
    node
}

struct Bodies<'a, R> {
    inner: &'a mut R,
}

impl<R: Read + Seek> ArchiveBodies for Bodies<'_, R> {
    fn copy(
        &mut self,
        path: &str,
        pos: u64,
        size: u64,
        hash: Hash,
        out: &mut dyn Write,
        out_pos: u64,
    ) -> Result<(), WriteError> {
        let fail = |source: ReadError| WriteError::CopyFromArchive {
            path: path.to_owned(),
            source: Box::new(source),
        };
        self.inner.seek(SeekFrom::Start(pos)).map_err(|source| {
            fail(ReadError::Io {
                op: "seeking to a file body",
                offset: pos,
                source,
            })
        })?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; IO_BUF];
        let mut left = size;
        while left > 0 {
            let n = usize::try_from(left.min(IO_BUF as u64)).unwrap_or(IO_BUF);
            let offset = pos + (size - left);
            self.inner.read_exact(&mut buf[..n]).map_err(|source| {
                fail(ReadError::Io {
                    op: "reading a file body",
                    offset,
                    source,
                })
            })?;
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|source| WriteError::Output {
                    offset: out_pos + (size - left),
                    source,
                })?;
            left -= n as u64;
        }
        let actual = Hash::from(hasher.finalize());
        if actual != hash {
            return Err(fail(ReadError::FileHashMismatch {
                path: path.to_owned(),
                pos,
                expected: hash,
                actual,
            }));
        }
        Ok(())
    }
}
