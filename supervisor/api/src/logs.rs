//! hearthd's own recent logs: a `tracing` layer writing into a bounded ring buffer,
//! read by `server.logs` with a cursor.
//!
//! Bounded twice: at most `capacity` lines, each at most [`MAX_LINE`] bytes. Cursors
//! are sequence numbers that never repeat within a process, so a client polling with
//! `after = endCursor` sees every line once, or learns (`missed`) that some were evicted.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use hearth_rpc::methods::server::{LogEntry, LogsResult};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

const MAX_LINE: usize = 2048;
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Debug)]
struct Ring {
    lines: VecDeque<LogEntry>,
    capacity: usize,
    next: u64,
}

/// The shared ring buffer of recent log lines. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LogBuffer {
    ring: Arc<Mutex<Ring>>,
}

impl LogBuffer {
    /// A buffer keeping the last `capacity` lines.
    pub fn new(capacity: usize) -> LogBuffer {
        LogBuffer {
            ring: Arc::new(Mutex::new(Ring {
                lines: VecDeque::with_capacity(capacity.min(1024)),
                capacity: capacity.max(1),
                next: 1,
            })),
        }
    }

    /// The `tracing` layer that feeds this buffer.
    pub fn layer(&self) -> LogLayer {
        LogLayer {
            buffer: self.clone(),
        }
    }

    fn push(&self, timestamp_ms: u64, level: &str, target: &str, message: String) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.lines.len() >= ring.capacity {
            ring.lines.pop_front();
        }
        let cursor = ring.next;
        ring.next += 1;
        ring.lines.push_back(LogEntry {
            cursor,
            timestamp_ms,
            level: level.to_owned(),
            target: target.to_owned(),
            message,
        });
    }

    /// Lines after cursor `after` (oldest first, at most `limit`), or the newest `limit`
    /// lines when `after` is `None`.
    pub(crate) fn query(&self, after: Option<u64>, limit: Option<u32>) -> LogsResult {
        let limit = usize::try_from(limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT))
            .unwrap_or(usize::MAX);
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let oldest = ring.lines.front().map_or(ring.next, |l| l.cursor);
        let (entries, missed): (Vec<LogEntry>, bool) = match after {
            Some(after) => (
                ring.lines
                    .iter()
                    .filter(|l| l.cursor > after)
                    .take(limit)
                    .cloned()
                    .collect(),
                after.saturating_add(1) < oldest,
            ),
            None => {
                let skip = ring.lines.len().saturating_sub(limit);
                (ring.lines.iter().skip(skip).cloned().collect(), false)
            }
        };
        let end_cursor = entries
            .last()
            .map(|l| l.cursor)
            .unwrap_or_else(|| after.unwrap_or(ring.next - 1));
        LogsResult {
            entries,
            end_cursor,
            missed,
        }
    }
}

/// `tracing` layer writing each event into a [`LogBuffer`].
#[derive(Debug)]
pub struct LogLayer {
    buffer: LogBuffer,
}

struct MessageVisitor {
    message: String,
    fields: String,
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut v = MessageVisitor {
            message: String::new(),
            fields: String::new(),
        };
        event.record(&mut v);
        let mut line = v.message;
        line.push_str(&v.fields);
        if line.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        self.buffer.push(
            crate::doc::now_ms(),
            meta.level().as_str(),
            meta.target(),
            line,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn captures_events_with_fields_and_follows_by_cursor() {
        let buf = LogBuffer::new(3);
        let subscriber = tracing_subscriber::registry().with(buf.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(peer = "1.2.3.4", "hello");
            tracing::warn!("second");
        });
        let r = buf.query(None, None);
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.entries[0].message, "hello peer=\"1.2.3.4\"");
        assert_eq!(r.entries[0].level, "INFO");
        assert_eq!(r.end_cursor, 2);
        let r2 = buf.query(Some(1), None);
        assert_eq!(r2.entries.len(), 1);
        assert_eq!(r2.entries[0].message, "second");
        assert!(!r2.missed);
        let r3 = buf.query(Some(r.end_cursor), None);
        assert!(r3.entries.is_empty());
        assert_eq!(r3.end_cursor, 2);
    }

    #[test]
    fn ring_is_bounded_and_reports_missed_lines() {
        let buf = LogBuffer::new(3);
        for i in 0..10 {
            buf.push(0, "INFO", "t", format!("line {i}"));
        }
        let all = buf.query(None, Some(100));
        assert_eq!(all.entries.len(), 3);
        assert_eq!(all.entries[0].message, "line 7");
        let r = buf.query(Some(2), None);
        assert!(r.missed);
        assert_eq!(r.entries[0].cursor, 8);
        let long = "x".repeat(10_000);
        let subscriber = tracing_subscriber::registry().with(buf.layer());
        tracing::subscriber::with_default(subscriber, || tracing::info!("{long}"));
        let last = buf.query(None, Some(1));
        assert!(last.entries[0].message.len() <= MAX_LINE + 3);
    }
}
