//! [`FileReader`]: a file body that is hashed while it is read.

use std::io::{self, Read};

use crate::encoding::Hash;
use crate::read_error::ReadError;

/// A file body being read; hashes while reading and checks hash and exact
/// size when the last byte is read. Errors are `io::Error`s wrapping a
/// [`ReadError`] (recover it with `io::Error::downcast`).
pub struct FileReader<'a, R> {
    inner: &'a mut R,
    path: String,
    start: u64,
    size: u64,
    remaining: u64,
    expected: Hash,
    hasher: blake3::Hasher,
    done: bool,
}

impl<'a, R> FileReader<'a, R> {
    /// A reader for `size` bytes at absolute `start`; `inner` must already be
    /// positioned there.
    pub(crate) fn new(
        inner: &'a mut R,
        path: String,
        start: u64,
        size: u64,
        expected: Hash,
    ) -> Self {
        FileReader {
            inner,
            path,
            start,
            size,
            remaining: size,
            expected,
            hasher: blake3::Hasher::new(),
            done: false,
        }
    }

    /// The file's length.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn finish(&mut self) -> io::Result<()> {
        self.done = true;
        let actual = Hash::from(self.hasher.finalize());
        if actual != self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                ReadError::FileHashMismatch {
                    path: self.path.clone(),
                    pos: self.start,
                    expected: self.expected,
                    actual,
                },
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for FileReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            if !self.done {
                self.finish()?;
            }
            return Ok(0);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining.min(buf.len() as u64)).unwrap_or(buf.len());
        let offset = self.start + (self.size - self.remaining);
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(io::Error::new(
                        source.kind(),
                        ReadError::Io {
                            op: "reading a file body",
                            offset,
                            source,
                        },
                    ));
                }
                Ok(n) => break n,
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                ReadError::FileTruncated {
                    path: self.path.clone(),
                    offset,
                    missing: self.remaining,
                    size: self.size,
                },
            ));
        }
        self.hasher.update(&buf[..n]);
        self.remaining -= n as u64;
        if self.remaining == 0 {
            self.finish()?;
        }
        Ok(n)
    }
}
