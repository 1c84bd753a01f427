//! Daemon output capture: size-capped log files plus an in-memory ring for `logs`.
//!
//! # Design
//! Each daemon's stdout and stderr are pipes read line by line by one small thread
//! each; lines longer than [`MAX_LINE`] are cut. Every line goes to
//! `<log-dir>/<daemon>.log` (`<unix-ms> <stream> <line>`), which is renamed to
//! `<daemon>.log.1` when it would pass the size cap, and to a ring of recent lines
//! shared by all daemons (capped in bytes) that the `logs` RPC pages through with a
//! sequence-number cursor. Supervisor events are logged the same way as stream
//! `hearth`, so one log shows what the daemon printed and what happened to it.
//!
//! # Invariants
//! Sequence numbers increase by one per line and are never reused while the process
//! lives; a cursor older than the ring just returns what is left.
//!
//! # Rejected alternatives
//! journald (StartOS): not present in a minimal container and far larger than the
//! supervisor; hearthd can import these files.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Longest line kept; the rest of a longer line is dropped.
pub(crate) const MAX_LINE: usize = 16 * 1024;

/// One captured line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogEntry {
    /// Sequence number (cursor).
    pub(crate) seq: u64,
    /// Unix milliseconds.
    pub(crate) time: u64,
    /// Daemon id.
    pub(crate) daemon: String,
    /// `stdout`, `stderr` or `hearth`.
    pub(crate) stream: &'static str,
    /// The line, without its newline (invalid UTF-8 replaced).
    pub(crate) line: String,
}

/// Errors opening or writing log files.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LogError {
    /// The log directory could not be created.
    #[error("create log directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

struct DaemonFile {
    file: Option<File>,
    size: u64,
}

/// The shared log store.
pub(crate) struct LogStore {
    dir: PathBuf,
    file_cap: u64,
    ring_cap: usize,
    ring: VecDeque<LogEntry>,
    ring_bytes: usize,
    next_seq: u64,
    files: BTreeMap<String, DaemonFile>,
}

/// Shared handle.
pub(crate) type Logs = Arc<Mutex<LogStore>>;

impl LogStore {
    /// Creates `dir` if needed.
    pub(crate) fn new(dir: &Path, file_cap: u64, ring_cap: usize) -> Result<Self, LogError> {
        std::fs::create_dir_all(dir).map_err(|source| LogError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            file_cap,
            ring_cap,
            ring: VecDeque::new(),
            ring_bytes: 0,
            next_seq: 1,
            files: BTreeMap::new(),
        })
    }

    /// Appends one line.
    pub(crate) fn push(&mut self, daemon: &str, stream: &'static str, line: String, time: u64) {
        self.write_file(daemon, stream, &line, time);
        let entry = LogEntry {
            seq: self.next_seq,
            time,
            daemon: daemon.to_owned(),
            stream,
            line,
        };
        self.next_seq += 1;
        self.ring_bytes += entry_size(&entry);
        self.ring.push_back(entry);
        while self.ring_bytes > self.ring_cap {
            match self.ring.pop_front() {
                Some(old) => self.ring_bytes -= entry_size(&old),
                None => break,
            }
        }
    }

    fn write_file(&mut self, daemon: &str, stream: &str, line: &str, time: u64) {
        let record = format!("{time} {stream} {line}\n");
        let len = record.len() as u64;
        let path = self.dir.join(format!("{daemon}.log"));
        let cap = self.file_cap;
        let slot = self
            .files
            .entry(daemon.to_owned())
            .or_insert_with(|| open_log(&path));
        if slot.size > 0 && slot.size + len > cap {
            slot.file = None;
            let rotated = self.dir.join(format!("{daemon}.log.1"));
            if let Err(error) = std::fs::rename(&path, &rotated) {
                tracing::warn!(path = %path.display(), %error, "rotate log file");
            }
            *slot = open_log(&path);
        }
        if let Some(file) = &mut slot.file {
            match file.write_all(record.as_bytes()) {
                Ok(()) => slot.size += len,
                Err(error) => tracing::warn!(path = %path.display(), %error, "write log file"),
            }
        }
    }

    /// Lines after `cursor` (or the last `limit` lines without one), optionally of one
    /// daemon, at most `limit`; and the cursor to pass next time.
    pub(crate) fn read(
        &self,
        daemon: Option<&str>,
        cursor: Option<u64>,
        limit: usize,
    ) -> (Vec<LogEntry>, u64) {
        let matches = |e: &&LogEntry| daemon.is_none_or(|d| e.daemon == d);
        let entries: Vec<LogEntry> = match cursor {
            Some(c) => self
                .ring
                .iter()
                .filter(|e| e.seq > c)
                .filter(matches)
                .take(limit)
                .cloned()
                .collect(),
            None => {
                let mut tail: Vec<LogEntry> = self
                    .ring
                    .iter()
                    .rev()
                    .filter(matches)
                    .take(limit)
                    .cloned()
                    .collect();
                tail.reverse();
                tail
            }
        };
        let next = entries
            .last()
            .map(|e| e.seq)
            .or(cursor)
            .unwrap_or(self.next_seq.saturating_sub(1));
        (entries, next)
    }
}

fn entry_size(e: &LogEntry) -> usize {
    e.line.len() + e.daemon.len() + 64
}

fn open_log(path: &Path) -> DaemonFile {
    match OpenOptions::new().create(true).append(true).open(path) {
        Ok(file) => {
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            DaemonFile {
                file: Some(file),
                size,
            }
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "open log file");
            DaemonFile {
                file: None,
                size: 0,
            }
        }
    }
}

/// Unix time in milliseconds.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Reads lines from `pipe` into `logs` until end of file (on a small thread).
pub(crate) fn capture(
    logs: Logs,
    daemon: String,
    stream: &'static str,
    pipe: impl Read + Send + 'static,
) {
    let name = format!("log-{daemon}");
    let spawned = std::thread::Builder::new()
        .name(name)
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut reader = BufReader::with_capacity(4096, pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match read_line_capped(&mut reader, &mut buf, MAX_LINE) {
                    Ok(0) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).into_owned();
                        if let Ok(mut logs) = logs.lock() {
                            logs.push(&daemon, stream, line, unix_ms());
                        }
                    }
                    Err(error) => {
                        tracing::warn!(daemon, stream, %error, "read daemon output");
                        break;
                    }
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "spawn log capture thread");
    }
}

/// Reads one line (without its `\n`) into `buf`, keeping at most `max` bytes and
/// discarding the rest of the line. Returns the bytes consumed (0 at end of file).
pub(crate) fn read_line_capped(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<usize> {
    let mut consumed = 0;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(consumed);
        }
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        let room = max.saturating_sub(buf.len());
        buf.extend_from_slice(&part[..part.len().min(room)]);
        let used = done.unwrap_or(chunk.len());
        reader.consume(used);
        consumed += used;
        if done.is_some() {
            return Ok(consumed);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn capped_lines_are_cut_and_the_rest_skipped() {
        let mut r = BufReader::with_capacity(4, &b"abcdefgh\nxy\nlast"[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line_capped(&mut r, &mut buf, 3).unwrap(), 9);
        assert_eq!(buf, b"abc");
        buf.clear();
        read_line_capped(&mut r, &mut buf, 3).unwrap();
        assert_eq!(buf, b"xy");
        buf.clear();
        assert_eq!(read_line_capped(&mut r, &mut buf, 3).unwrap(), 4);
        assert_eq!(buf, b"las");
        buf.clear();
        assert_eq!(read_line_capped(&mut r, &mut buf, 3).unwrap(), 0);
    }

    #[test]
    fn ring_pages_by_cursor_and_filters_by_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let mut logs = LogStore::new(dir.path(), 1 << 20, 1 << 20).unwrap();
        for i in 0..5 {
            let d = if i % 2 == 0 { "a" } else { "b" };
            logs.push(d, "stdout", format!("line {i}"), i);
        }
        let (tail, next) = logs.read(None, None, 2);
        assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(next, 5);
        let (a, next) = logs.read(Some("a"), Some(1), 10);
        assert_eq!(
            a.iter().map(|e| e.line.as_str()).collect::<Vec<_>>(),
            ["line 2", "line 4"]
        );
        assert_eq!(next, 5);
        let (none, next) = logs.read(None, Some(5), 10);
        assert!(none.is_empty());
        assert_eq!(next, 5);
        let file = std::fs::read_to_string(dir.path().join("a.log")).unwrap();
        assert_eq!(file, "0 stdout line 0\n2 stdout line 2\n4 stdout line 4\n");
    }

    #[test]
    fn ring_drops_oldest_beyond_its_byte_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut logs = LogStore::new(dir.path(), 1 << 20, 300).unwrap();
        for i in 0..10 {
            logs.push("a", "stdout", format!("{i:0>50}"), 0);
        }
        let (all, _) = logs.read(None, Some(0), 100);
        assert!(all.len() < 10 && !all.is_empty());
        assert_eq!(all.last().unwrap().seq, 10);
    }

    #[test]
    fn files_rotate_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut logs = LogStore::new(dir.path(), 100, 1 << 20).unwrap();
        for i in 0..10 {
            logs.push("a", "stderr", format!("{i:0>20}"), 0);
        }
        let current = std::fs::metadata(dir.path().join("a.log")).unwrap().len();
        let rotated = std::fs::metadata(dir.path().join("a.log.1")).unwrap().len();
        assert!(current <= 100 && rotated <= 100, "{current} {rotated}");
        assert!(current > 0 && rotated > 0);
    }
    /// Far more output than the cap (as a chatty daemon writes): only `<daemon>.log`
    /// and `<daemon>.log.1` exist, each within the cap, and together they hold the
    /// newest lines, contiguous up to the last one written.
    #[test]
    fn output_far_past_the_cap_keeps_the_newest_lines_within_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let cap = 4096;
        let mut logs = LogStore::new(dir.path(), cap, 1 << 20).unwrap();
        let total = 5000;
        for i in 0..total {
            logs.push(
                "chatty",
                "stdout",
                format!("line {i:06} {}", "x".repeat(i % 50)),
                7,
            );
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["chatty.log", "chatty.log.1"]);
        let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
        let (old, new) = (read("chatty.log.1"), read("chatty.log"));
        assert!(old.len() as u64 <= cap && new.len() as u64 <= cap);
        // Both files are nearly full: rotation keeps about two caps of history.
        assert!(old.len() as u64 > cap - 100, "{}", old.len());
        let numbers: Vec<usize> = old
            .lines()
            .chain(new.lines())
            .map(|l| l.split(' ').nth(3).unwrap().parse().unwrap())
            .collect();
        assert_eq!(
            *numbers.last().unwrap(),
            total - 1,
            "the newest line is kept"
        );
        let first = numbers[0];
        assert_eq!(numbers, (first..total).collect::<Vec<_>>(), "no gaps");
        assert!(new.starts_with("7 stdout line "), "{new}");
    }

    /// A new container (a new `LogStore` on the same directory) appends to the existing
    /// file and still rotates at the cap.
    #[test]
    fn a_restarted_container_keeps_counting_from_the_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let cap = 1000;
        {
            let mut logs = LogStore::new(dir.path(), cap, 1 << 20).unwrap();
            for i in 0..30 {
                logs.push("d", "stdout", format!("first {i:03}"), 0);
            }
        }
        let mut logs = LogStore::new(dir.path(), cap, 1 << 20).unwrap();
        for i in 0..30 {
            logs.push("d", "stdout", format!("second {i:03}"), 0);
        }
        for name in ["d.log", "d.log.1"] {
            let len = std::fs::metadata(dir.path().join(name)).unwrap().len();
            assert!(len <= cap, "{name}: {len}");
        }
        let new = std::fs::read_to_string(dir.path().join("d.log")).unwrap();
        assert!(new.ends_with("0 stdout second 029\n"), "{new}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod proptests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        /// The capped reader agrees with splitting on `\n` and truncating, for any
        /// input, buffer size and cap.
        #[test]
        fn capped_reader_matches_split_and_truncate(
            data in vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..600),
            capacity in 1usize..40,
            max in 0usize..30,
        ) {
            let mut reader = BufReader::with_capacity(capacity, &data[..]);
            let mut got = Vec::new();
            loop {
                let mut buf = Vec::new();
                let n = read_line_capped(&mut reader, &mut buf, max).unwrap();
                if n == 0 {
                    break;
                }
                got.push((buf, n));
            }
            let mut pieces: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
            let ends_with_newline = data.last() == Some(&b'\n') || data.is_empty();
            if ends_with_newline {
                pieces.pop();
            }
            let last = pieces.len().saturating_sub(1);
            let expected: Vec<(Vec<u8>, usize)> = pieces
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let newline = usize::from(i != last || ends_with_newline);
                    (p[..p.len().min(max)].to_vec(), p.len() + newline)
                })
                .collect();
            prop_assert_eq!(got, expected);
        }
    }
}
