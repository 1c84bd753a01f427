//! Primitive encodings of the S9PK v2 format: LEB128 varints, varstrings,
//! big-endian u64s, BLAKE3 hashes and entry names.
//!
//! Decoding works on an in-memory byte slice through [`Cursor`], which knows
//! its absolute file offset so every error can say where it happened. TOCs
//! are bounded in size before they are read (1 MiB root cap, signed sizes,
//! file length), so decoding from a slice never loads file bodies.
//!
//! Invariants: a varint is at most 10 bytes and fits in a u64; a varstring is
//! at most [`MAX_VARSTRING_LEN`] bytes of UTF-8; a name is a single path
//! segment (not empty, `.`, `..`, no `/` and no NUL).
//!
//! Rejected alternative: a streaming decoder over `Read`. Sighash checking
//! needs the whole TOC anyway (entries are re-sorted by name), so decoding
//! from a bounded buffer is simpler and cannot block on a short read.

use std::fmt;

/// Longest varstring accepted by the decoder (1 MiB), as in StartOS.
pub(crate) const MAX_VARSTRING_LEN: u64 = 1024 * 1024;
/// Longest LEB128 encoding of a u64.
pub(crate) const MAX_VARINT_LEN: usize = 10;

/// A plain (unkeyed) BLAKE3-256 hash: of a file's contents, or a directory's
/// sighash.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// Lower-case hexadecimal, as printed by `b3sum`.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s
    }

    /// Standard-alphabet base64 without padding, as StartOS prints hashes.
    pub fn to_base64(&self) -> String {
        crate::base64_encode(&self.0)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl From<blake3::Hash> for Hash {
    fn from(h: blake3::Hash) -> Self {
        Hash(*h.as_bytes())
    }
}

/// Why a primitive could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The data ended inside a field.
    #[error("truncated {field}: needed {needed} bytes, {available} left")]
    Truncated {
        /// The field being decoded.
        field: &'static str,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes that were left.
        available: u64,
    },
    /// A varint had its continuation bit set on the 10th byte.
    #[error("varint longer than {MAX_VARINT_LEN} bytes")]
    VarintTooLong,
    /// A 10-byte varint did not fit in 64 bits.
    #[error("varint overflows u64")]
    VarintOverflow,
    /// A varstring declared more than [`MAX_VARSTRING_LEN`] bytes.
    #[error("string length {len} exceeds the {MAX_VARSTRING_LEN}-byte limit")]
    StringTooLong {
        /// The declared length.
        len: u64,
    },
    /// A varstring was not UTF-8.
    #[error("string is not valid UTF-8")]
    NotUtf8,
}

/// A byte slice being decoded, with the absolute file offset of its start.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8], base: u64) -> Self {
        Cursor { data, pos: 0, base }
    }

    /// Absolute file offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                field,
                needed: n as u64,
                available: self.remaining() as u64,
            });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u64_be(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8, field)?);
        Ok(u64::from_be_bytes(b))
    }

    pub(crate) fn hash(&mut self, field: &'static str) -> Result<Hash, DecodeError> {
        let mut b = [0u8; 32];
        b.copy_from_slice(self.take(32, field)?);
        Ok(Hash(b))
    }

    pub(crate) fn varint(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..MAX_VARINT_LEN {
            let byte = self.u8(field)?;
            let bits = u64::from(byte & 0x7f);
            if i == MAX_VARINT_LEN - 1 && bits > 1 {
                return Err(DecodeError::VarintOverflow);
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintTooLong)
    }

    pub(crate) fn varstring(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let len = self.varint(field)?;
        if len > MAX_VARSTRING_LEN {
            return Err(DecodeError::StringTooLong { len });
        }
        // len <= 1 MiB, so it fits in usize on every supported target.
        let bytes = self.take(usize::try_from(len).unwrap_or(usize::MAX), field)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8)
    }
}

/// Appends the LEB128 encoding of `v`.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        // Truncation intended: the low 7 bits.
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Length of the LEB128 encoding of `v`.
pub(crate) fn varint_len(v: u64) -> u64 {
    let bits = 64 - u64::from(v.leading_zeros());
    bits.div_ceil(7).max(1)
}

/// Appends a varstring.
pub(crate) fn put_varstring(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Why a name is not a valid single path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("empty name")]
    Empty,
    /// The name is `.` or `..`.
    #[error("`.` and `..` are not names")]
    Dots,
    /// The name contains `/`.
    #[error("name contains `/`")]
    Slash,
    /// The name contains a NUL byte.
    #[error("name contains NUL")]
    Nul,
    /// The name is longer than a varstring may be.
    #[error("name longer than {MAX_VARSTRING_LEN} bytes")]
    TooLong,
}

/// Checks that `name` is a single path segment.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        Err(NameError::Empty)
    } else if name == "." || name == ".." {
        Err(NameError::Dots)
    } else if name.contains('/') {
        Err(NameError::Slash)
    } else if name.contains('\0') {
        Err(NameError::Nul)
    } else if name.len() as u64 > MAX_VARSTRING_LEN {
        Err(NameError::TooLong)
    } else {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(bytes: &[u8]) -> Result<u64, DecodeError> {
        Cursor::new(bytes, 0).varint("v")
    }

    #[test]
    fn varint_known_encodings() {
        let mut v = Vec::new();
        put_varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        assert_eq!(decode(&[0xac, 0x02]), Ok(300));
        let mut m = Vec::new();
        put_varint(&mut m, u64::MAX);
        assert_eq!(m.len(), 10);
        assert_eq!(decode(&m), Ok(u64::MAX));
    }

    #[test]
    fn varint_rejects_eleven_bytes_and_overflow() {
        assert_eq!(decode(&[0x80; 11]), Err(DecodeError::VarintTooLong));
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(decode(&over), Err(DecodeError::VarintOverflow));
        assert!(matches!(
            decode(&[0x80, 0x80]),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn varstring_cap() {
        let mut v = Vec::new();
        put_varint(&mut v, MAX_VARSTRING_LEN + 1);
        assert_eq!(
            Cursor::new(&v, 0).varstring("s"),
            Err(DecodeError::StringTooLong {
                len: MAX_VARSTRING_LEN + 1
            })
        );
        assert_eq!(
            Cursor::new(&[2, 0xff, 0xfe], 0).varstring("s"),
            Err(DecodeError::NotUtf8)
        );
    }

    #[test]
    fn names() {
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name("."), Err(NameError::Dots));
        assert_eq!(validate_name(".."), Err(NameError::Dots));
        assert_eq!(validate_name("a/b"), Err(NameError::Slash));
        assert_eq!(validate_name("a\0"), Err(NameError::Nul));
        assert_eq!(validate_name("...ok"), Ok(()));
    }

    #[test]
    fn hash_hex() {
        let h = Hash::from(blake3::hash(b""));
        assert_eq!(
            h.to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    proptest! {
        #[test]
        fn varint_roundtrip(v in any::<u64>()) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            prop_assert_eq!(out.len() as u64, varint_len(v));
            prop_assert_eq!(decode(&out), Ok(v));
        }
    }
}
