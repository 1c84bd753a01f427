//! Byte progress of an install or update (`stateInfo.progress {phase, bytesDone,
//! bytesTotal}`), throttled so a copy of a large archive does not become a storm of
//! store writes (each one a revision every subscriber receives).
//!
//! # Design
//! [`Progressing`] wraps the writer a copy goes to (the filtered archive, an extracted
//! image): it counts the bytes written, follows seeks (the archive writer goes back
//! to fill its table of contents, so `done` is the furthest offset written), and
//! calls its report at most once per interval ([`EVERY`], 4 per second). The caller
//! records the start (0) and the end itself, so a fast copy costs two writes.

use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use hearth_store::Store;

use crate::doc::{self, Progress};

/// Least time between two byte reports of one copy.
pub(crate) const EVERY: Duration = Duration::from_millis(250);

/// Records `stateInfo.progress` of `id` (best effort: a failure loses only the display).
pub(crate) fn record(store: &Store, id: &str, phase: &str, done: u64, total: Option<u64>) {
    let written = doc::update(store, id, "record progress", |e| {
        e.state_info.progress = Some(Progress {
            phase: phase.to_owned(),
            bytes_done: done,
            bytes_total: total,
        });
        Ok(())
    });
    if let Err(error) = written {
        tracing::debug!(package = %id, %error, "cannot record progress");
    }
}

/// A writer that counts the bytes written to `inner` and reports the count now and
/// then (see the module docs).
pub(crate) struct Progressing<'a, W> {
    inner: W,
    pos: u64,
    done: u64,
    every: Duration,
    last: Instant,
    report: &'a mut dyn FnMut(u64),
}

impl<'a, W> Progressing<'a, W> {
    /// Wraps `inner` (at offset 0), reporting at most once per `every`.
    pub(crate) fn new(inner: W, every: Duration, report: &'a mut dyn FnMut(u64)) -> Self {
        Progressing {
            inner,
            pos: 0,
            done: 0,
            every,
            last: Instant::now(),
            report,
        }
    }

    /// The furthest offset written so far.
    #[cfg(test)]
    fn done(&self) -> u64 {
        self.done
    }

    /// The wrapped writer.
    #[cfg(test)]
    fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for Progressing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.pos += n as u64;
        self.done = self.done.max(self.pos);
        if self.last.elapsed() >= self.every {
            (self.report)(self.done);
            self.last = Instant::now();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Seek> Seek for Progressing<'_, W> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.inner.seek(to)?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn counts_the_furthest_offset_across_seeks_and_reports_each_write_without_throttle() {
        let mut seen = Vec::new();
        let mut report = |n| seen.push(n);
        let mut w = Progressing::new(Cursor::new(Vec::new()), Duration::ZERO, &mut report);
        w.write_all(&[1; 100]).unwrap();
        w.seek(SeekFrom::Start(10)).unwrap();
        w.write_all(&[2; 20]).unwrap();
        w.seek(SeekFrom::End(0)).unwrap();
        w.write_all(&[3; 5]).unwrap();
        assert_eq!(w.done(), 105);
        assert_eq!(w.into_inner().into_inner().len(), 105);
        assert_eq!(
            seen,
            [100, 100, 105],
            "rewriting earlier bytes is no progress"
        );
    }

    #[test]
    fn reports_at_most_once_per_interval() {
        let mut seen = Vec::new();
        let mut report = |n| seen.push(n);
        let mut w = Progressing::new(std::io::sink(), Duration::from_secs(3600), &mut report);
        for _ in 0..1000 {
            w.write_all(&[0; 64]).unwrap();
        }
        assert_eq!(w.done(), 64_000);
        assert!(seen.is_empty(), "reported within the interval: {seen:?}");
    }
}
