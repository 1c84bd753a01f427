//! Directory tables of contents (TOCs): encoding, decoding and the sighash.
//!
//! A TOC is `varint(count)` then per entry `varstring(name) ‖ hash(32) ‖
//! size(u64 BE) ‖ type(1)` and a type-specific tail (FILE: position; DIRECTORY:
//! position and actual TOC size; MISSING: nothing). The sighash of a directory
//! is BLAKE3 over the TOC re-encoded with every entry MISSING and sorted by
//! name, so positions, actual sizes and presence never change any hash.
//!
//! Decoding validates what a single TOC can show on its own: names, duplicate
//! names, the type byte, and that the TOC is exactly as long as declared.
//! Bounds against the file length are checked by the reader, which knows it.

use crate::encoding::{
    Cursor, DecodeError, Hash, NameError, put_varint, put_varstring, validate_name, varint_len,
};

/// Entry type byte: no body in this file (hash and size kept).
pub(crate) const TYPE_MISSING: u8 = 0;
/// Entry type byte: a file.
pub(crate) const TYPE_FILE: u8 = 1;
/// Entry type byte: a sub-directory.
pub(crate) const TYPE_DIR: u8 = 2;

/// Fixed part of an entry after the name: hash, size, type.
const ENTRY_FIXED: u64 = 32 + 8 + 1;
/// Smallest possible encoded entry (one-byte name).
const MIN_ENTRY: usize = 1 + 1 + 32 + 8 + 1;

/// Where an entry's body is, if present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// Not in this file.
    Missing,
    /// File contents at an absolute position; the length is the entry size.
    File { pos: u64 },
    /// A sub-directory TOC at an absolute position with its actual length.
    Dir { pos: u64, toc_size: u64 },
}

/// One decoded TOC entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub(crate) name: String,
    /// File content hash, or a sub-directory's sighash.
    pub(crate) hash: Hash,
    /// File length, or a sub-directory's signed TOC size.
    pub(crate) size: u64,
    pub(crate) body: Body,
}

/// Why a TOC could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TocError {
    /// A primitive field was malformed.
    #[error("at offset {offset}: {source}")]
    Field {
        /// Absolute file offset of the field.
        offset: u64,
        /// What was wrong.
        source: DecodeError,
    },
    /// An entry name is not a single path segment.
    #[error("at offset {offset}: invalid name {name:?}: {source}")]
    Name {
        /// Absolute file offset of the name.
        offset: u64,
        /// The offending name.
        name: String,
        /// What was wrong.
        source: NameError,
    },
    /// Two entries share a name.
    #[error("at offset {offset}: duplicate name {name:?}")]
    Duplicate {
        /// Absolute file offset of the second entry.
        offset: u64,
        /// The repeated name.
        name: String,
    },
    /// Unknown type byte.
    #[error("at offset {offset}: unknown entry type {byte:#04x}")]
    Type {
        /// Absolute file offset of the type byte.
        offset: u64,
        /// The byte found.
        byte: u8,
    },
    /// The declared entry count cannot fit in the TOC.
    #[error("at offset {offset}: {count} entries cannot fit in {available} bytes")]
    Count {
        /// Absolute file offset of the count.
        offset: u64,
        /// The declared count.
        count: u64,
        /// Bytes left in the TOC.
        available: u64,
    },
    /// Bytes left over after the last entry.
    #[error("at offset {offset}: {extra} bytes after the last entry")]
    Trailing {
        /// Absolute file offset of the first extra byte.
        offset: u64,
        /// How many extra bytes.
        extra: u64,
    },
}

/// Reads one primitive, reporting the offset where it starts.
fn field<'a, T>(
    c: &mut Cursor<'a>,
    read: impl FnOnce(&mut Cursor<'a>) -> Result<T, DecodeError>,
) -> Result<T, TocError> {
    let offset = c.offset();
    read(c).map_err(|source| TocError::Field { offset, source })
}

/// Decodes a whole TOC that starts at absolute offset `base`.
pub(crate) fn decode(data: &[u8], base: u64) -> Result<Vec<RawEntry>, TocError> {
    let mut c = Cursor::new(data, base);
    let count_at = c.offset();
    let count = field(&mut c, |c| c.varint("entry count"))?;
    if count > (c.remaining() / MIN_ENTRY) as u64 {
        return Err(TocError::Count {
            offset: count_at,
            count,
            available: c.remaining() as u64,
        });
    }
    let mut entries: Vec<RawEntry> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..count {
        let name_at = c.offset();
        let name = field(&mut c, |c| c.varstring("entry name"))?;
        validate_name(name).map_err(|source| TocError::Name {
            offset: name_at,
            name: name.to_owned(),
            source,
        })?;
        if !seen.insert(name) {
            return Err(TocError::Duplicate {
                offset: name_at,
                name: name.to_owned(),
            });
        }
        let hash = field(&mut c, |c| c.hash("entry hash"))?;
        let size = field(&mut c, |c| c.u64_be("entry size"))?;
        let type_at = c.offset();
        let body = match field(&mut c, |c| c.u8("entry type"))? {
            TYPE_MISSING => Body::Missing,
            TYPE_FILE => Body::File {
                pos: field(&mut c, |c| c.u64_be("file position"))?,
            },
            TYPE_DIR => Body::Dir {
                pos: field(&mut c, |c| c.u64_be("directory position"))?,
                toc_size: field(&mut c, |c| c.u64_be("directory TOC size"))?,
            },
            byte => {
                return Err(TocError::Type {
                    offset: type_at,
                    byte,
                });
            }
        };
        entries.push(RawEntry {
            name: name.to_owned(),
            hash,
            size,
            body,
        });
    }
    if c.remaining() > 0 {
        return Err(TocError::Trailing {
            offset: c.offset(),
            extra: c.remaining() as u64,
        });
    }
    Ok(entries)
}

/// Encodes entries in the given order.
pub(crate) fn encode(entries: &[RawEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(usize::try_from(encoded_len(entries)).unwrap_or(0));
    put_varint(&mut out, entries.len() as u64);
    for e in entries {
        put_varstring(&mut out, &e.name);
        out.extend_from_slice(&e.hash.0);
        out.extend_from_slice(&e.size.to_be_bytes());
        match e.body {
            Body::Missing => out.push(TYPE_MISSING),
            Body::File { pos } => {
                out.push(TYPE_FILE);
                out.extend_from_slice(&pos.to_be_bytes());
            }
            Body::Dir { pos, toc_size } => {
                out.push(TYPE_DIR);
                out.extend_from_slice(&pos.to_be_bytes());
                out.extend_from_slice(&toc_size.to_be_bytes());
            }
        }
    }
    out
}

/// Length of one encoded entry with a name and body kind.
pub(crate) fn entry_len(name: &str, body: &Body) -> u64 {
    let tail = match body {
        Body::Missing => 0,
        Body::File { .. } => 8,
        Body::Dir { .. } => 16,
    };
    varint_len(name.len() as u64) + name.len() as u64 + ENTRY_FIXED + tail
}

/// Length of the encoded TOC.
pub(crate) fn encoded_len(entries: &[RawEntry]) -> u64 {
    varint_len(entries.len() as u64)
        + entries
            .iter()
            .map(|e| entry_len(&e.name, &e.body))
            .sum::<u64>()
}

/// The sighash of a directory: BLAKE3 of its all-missing, name-sorted TOC.
pub(crate) fn sighash<'a>(entries: impl IntoIterator<Item = (&'a str, Hash, u64)>) -> Hash {
    let mut sorted: Vec<(&str, Hash, u64)> = entries.into_iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut buf = Vec::new();
    put_varint(&mut buf, sorted.len() as u64);
    for (name, hash, size) in sorted {
        put_varstring(&mut buf, name);
        buf.extend_from_slice(&hash.0);
        buf.extend_from_slice(&size.to_be_bytes());
        buf.push(TYPE_MISSING);
    }
    Hash::from(blake3::hash(&buf))
}

/// Sighash of decoded entries.
pub(crate) fn sighash_of(entries: &[RawEntry]) -> Hash {
    sighash(entries.iter().map(|e| (e.name.as_str(), e.hash, e.size)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Vec<RawEntry> {
        vec![
            RawEntry {
                name: "d".into(),
                hash: Hash([1; 32]),
                size: 50,
                body: Body::Dir {
                    pos: 200,
                    toc_size: 40,
                },
            },
            RawEntry {
                name: "b".into(),
                hash: Hash([2; 32]),
                size: 3,
                body: Body::File { pos: 300 },
            },
            RawEntry {
                name: "a".into(),
                hash: Hash([3; 32]),
                size: 9,
                body: Body::Missing,
            },
        ]
    }

    #[test]
    fn roundtrip_and_length() {
        let e = sample();
        let bytes = encode(&e);
        assert_eq!(bytes.len() as u64, encoded_len(&e));
        assert_eq!(decode(&bytes, 155), Ok(e));
    }

    #[test]
    fn sighash_ignores_order_position_and_presence() {
        let e = sample();
        let mut other = e.clone();
        other.reverse();
        for x in &mut other {
            x.body = Body::Missing;
        }
        assert_eq!(sighash_of(&e), sighash_of(&other));
        other[0].size += 1;
        assert_ne!(sighash_of(&e), sighash_of(&other));
    }

    #[test]
    fn field_errors_point_at_the_field_start() {
        let mut bytes = encode(&sample()[..1]);
        bytes[0] = 1;
        bytes.truncate(50);
        assert_eq!(
            decode(&bytes, 1000),
            Err(TocError::Field {
                offset: 1044,
                source: DecodeError::Truncated {
                    field: "directory position",
                    needed: 8,
                    available: 6
                }
            })
        );
    }

    #[test]
    fn rejects_duplicates_trailing_and_bad_type() {
        let mut e = sample();
        e[1].name = "a".into();
        assert!(matches!(
            decode(&encode(&e), 0),
            Err(TocError::Duplicate { .. })
        ));
        let mut bytes = encode(&sample());
        bytes.push(0);
        assert!(matches!(
            decode(&bytes, 0),
            Err(TocError::Trailing { extra: 1, .. })
        ));
        let mut one = vec![sample().remove(2)];
        one[0].name = "x".into();
        let mut bytes = encode(&one);
        let last = bytes.len() - 1;
        bytes[last] = 7;
        assert!(matches!(
            decode(&bytes, 0),
            Err(TocError::Type { byte: 7, .. })
        ));
    }
}
