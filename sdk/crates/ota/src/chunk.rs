//! Content-defined chunk index of an image and byte-exact reconstruction from a seed.
//!
//! An image is cut by FastCDC (2020, normalisation level 1, seed 0) with
//! [`CHUNK_MIN`]/[`CHUNK_AVG`]/[`CHUNK_MAX`]; each chunk is named by its BLAKE3 hash and
//! length. Cut points depend only on content, so an insertion moves the boundaries near it
//! and nowhere else: the chunks of an old image (the running slot) seed most of a new one.
//!
//! The binary index (one record per chunk: 32-byte BLAKE3, then the length as u32
//! little-endian) is what the signed manifest binds by hash; [`decode_index`] checks its
//! shape against the manifest's count and image size.
//!
//! Invariants: [`digest`] gives the same result however the reader splits its reads;
//! [`reconstruct`] writes a chunk only after its hash matched, so what it writes is exactly
//! the image the index describes or it fails.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};

use sha2::{Digest, Sha256};

/// Smallest chunk FastCDC cuts (except the last one).
pub const CHUNK_MIN: u32 = 4 * 1024;
/// Target average chunk size.
pub const CHUNK_AVG: u32 = 16 * 1024;
/// Largest chunk.
pub const CHUNK_MAX: u32 = 64 * 1024;
/// Bytes per record of the binary index.
pub const INDEX_RECORD: usize = 36;

/// One chunk: its BLAKE3 hash and length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkRef {
    /// BLAKE3 of the chunk's bytes.
    pub hash: [u8; 32],
    /// Length in bytes (1..=[`CHUNK_MAX`]).
    pub len: u32,
}

/// Size, whole-image hashes and chunk index of an image, computed in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDigest {
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the whole image (the one in `SHA256SUMS`).
    pub sha256: [u8; 32],
    /// BLAKE3 of the whole image.
    pub blake3: [u8; 32],
    /// The chunks in order; their lengths add up to `size`.
    pub chunks: Vec<ChunkRef>,
}

/// Chunking, decoding an index or reconstructing failed.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// Reading the source or writing the destination failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The binary index does not have the shape the manifest says.
    #[error("chunk index: {0}")]
    BadIndex(String),
    /// A chunk's bytes do not hash to the index's value (a flipped byte, a wrong range).
    #[error("chunk {index} (offset {offset}): BLAKE3 mismatch, refused before writing it")]
    HashMismatch {
        /// Position in the index.
        index: usize,
        /// Offset in the image.
        offset: u64,
    },
}

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> ChunkError {
    move |source| ChunkError::Io { op, source }
}

/// Reads `r` to its end: size, SHA-256, BLAKE3 and FastCDC chunks.
pub fn digest<R: Read>(r: R) -> Result<ImageDigest, ChunkError> {
    let mut sha = Sha256::new();
    let mut b3 = blake3::Hasher::new();
    let mut chunks = Vec::new();
    let mut size = 0u64;
    for c in cdc(r) {
        let c = c.map_err(|e| ChunkError::Io {
            op: "reading the image",
            source: e.into(),
        })?;
        sha.update(&c.data);
        b3.update(&c.data);
        size += c.data.len() as u64;
        chunks.push(ChunkRef {
            hash: *blake3::hash(&c.data).as_bytes(),
            len: chunk_len(c.data.len()),
        });
    }
    Ok(ImageDigest {
        size,
        sha256: sha.finalize().into(),
        blake3: *b3.finalize().as_bytes(),
        chunks,
    })
}

fn cdc<R: Read>(r: R) -> fastcdc::v2020::StreamCDC<R> {
    fastcdc::v2020::StreamCDC::new(
        r,
        CHUNK_MIN as usize,
        CHUNK_AVG as usize,
        CHUNK_MAX as usize,
    )
}

/// FastCDC never returns a chunk longer than [`CHUNK_MAX`], which fits in u32.
fn chunk_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The binary index of `chunks`.
pub fn encode_index(chunks: &[ChunkRef]) -> Vec<u8> {
    let mut v = Vec::with_capacity(chunks.len() * INDEX_RECORD);
    for c in chunks {
        v.extend_from_slice(&c.hash);
        v.extend_from_slice(&c.len.to_le_bytes());
    }
    v
}

/// Parses a binary index that must hold `count` chunks adding up to `size` bytes.
pub fn decode_index(bytes: &[u8], count: u64, size: u64) -> Result<Vec<ChunkRef>, ChunkError> {
    let want = count.checked_mul(INDEX_RECORD as u64);
    if want != Some(bytes.len() as u64) {
        return Err(ChunkError::BadIndex(format!(
            "{} bytes, the manifest says {count} chunks of {INDEX_RECORD} bytes",
            bytes.len()
        )));
    }
    let mut out = Vec::with_capacity(bytes.len() / INDEX_RECORD);
    let mut total = 0u64;
    for rec in bytes.chunks_exact(INDEX_RECORD) {
        let (h, l) = rec.split_at(32);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(h);
        let len = u32::from_le_bytes([l[0], l[1], l[2], l[3]]);
        if len == 0 || len > CHUNK_MAX {
            return Err(ChunkError::BadIndex(format!(
                "chunk {} has length {len} (1..={CHUNK_MAX})",
                out.len()
            )));
        }
        total += u64::from(len);
        out.push(ChunkRef { hash, len });
    }
    if total != size {
        return Err(ChunkError::BadIndex(format!(
            "chunks add up to {total} bytes, the image is {size}"
        )));
    }
    Ok(out)
}

/// Where each known chunk can be read in a seed source (the running slot).
#[derive(Debug, Default, Clone)]
pub struct Seed {
    at: HashMap<[u8; 32], (u64, u32)>,
}

impl Seed {
    /// Chunks `r` (an old image) and remembers the offset of every chunk.
    pub fn build<R: Read>(r: R) -> Result<Self, ChunkError> {
        let mut at = HashMap::new();
        for c in cdc(r) {
            let c = c.map_err(|e| ChunkError::Io {
                op: "reading the seed",
                source: e.into(),
            })?;
            at.entry(*blake3::hash(&c.data).as_bytes())
                .or_insert((c.offset, chunk_len(c.data.len())));
        }
        Ok(Self { at })
    }

    /// Offset of `c` in the seed source, if the seed holds it.
    pub fn offset_of(&self, c: &ChunkRef) -> Option<u64> {
        self.at
            .get(&c.hash)
            .and_then(|&(at, len)| (len == c.len).then_some(at))
    }

    /// Whether the seed holds `c`.
    pub fn has(&self, c: &ChunkRef) -> bool {
        self.at.get(&c.hash).is_some_and(|&(_, len)| len == c.len)
    }
}

/// Bytes a reconstruction reuses from the seed and fetches, without doing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeltaStats {
    /// Bytes copied from the seed.
    pub reused: u64,
    /// Bytes that must be fetched.
    pub fetched: u64,
    /// Chunks fetched.
    pub fetched_chunks: u64,
}

/// What reconstructing `chunks` from `seed` would fetch (each missing chunk once).
pub fn plan(chunks: &[ChunkRef], seed: &Seed) -> DeltaStats {
    let mut s = DeltaStats::default();
    let mut seen = std::collections::HashSet::new();
    for c in chunks {
        if seed.has(c) {
            s.reused += u64::from(c.len);
        } else if seen.insert(c.hash) {
            s.fetched += u64::from(c.len);
            s.fetched_chunks += 1;
        } else {
            s.reused += u64::from(c.len);
        }
    }
    s
}

/// Writes the image `chunks` describes to `out`: each chunk read from `seed_src` where the
/// seed has it, else from `fetch(index, chunk, offset)`; every chunk's hash is checked
/// before it is written. Returns the bytes reused and fetched.
pub fn reconstruct<S, W, F>(
    chunks: &[ChunkRef],
    seed: &Seed,
    seed_src: &mut S,
    mut fetch: F,
    out: &mut W,
) -> Result<DeltaStats, ChunkError>
where
    S: Read + Seek,
    W: Write,
    F: FnMut(usize, &ChunkRef, u64) -> std::io::Result<Vec<u8>>,
{
    let mut stats = DeltaStats::default();
    let mut offset = 0u64;
    let mut buf = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let local = match seed.at.get(&c.hash) {
            Some(&(at, len)) if len == c.len => {
                buf.resize(len as usize, 0);
                seed_src
                    .seek(SeekFrom::Start(at))
                    .and_then(|_| seed_src.read_exact(&mut buf))
                    .is_ok()
                    && blake3::hash(&buf).as_bytes() == &c.hash
            }
            _ => false,
        };
        if local {
            stats.reused += u64::from(c.len);
        } else {
            buf = fetch(i, c, offset).map_err(io("fetching a chunk"))?;
            if buf.len() != c.len as usize || blake3::hash(&buf).as_bytes() != &c.hash {
                return Err(ChunkError::HashMismatch { index: i, offset });
            }
            stats.fetched += u64::from(c.len);
            stats.fetched_chunks += 1;
        }
        out.write_all(&buf).map_err(io("writing the image"))?;
        offset += u64::from(c.len);
    }
    Ok(stats)
}
