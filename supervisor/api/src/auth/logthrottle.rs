//! Rate limit for log lines that remote clients can trigger (failed logins).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Allows `max` lines per `window`; reports how many were suppressed before a line.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    max: u32,
    window: Duration,
    state: Mutex<(Instant, u32, u64)>, // window start, lines in window, suppressed
}

impl LogThrottle {
    pub(crate) fn new(max: u32, window: Duration) -> LogThrottle {
        LogThrottle {
            max,
            window,
            state: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// `Some(suppressed since the last allowed line)` if a line may be logged now.
    pub(crate) fn allow(&self, now: Instant) -> Option<u64> {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.duration_since(s.0) >= self.window {
            *s = (now, 0, s.2);
        }
        if s.1 < self.max {
            s.1 += 1;
            let suppressed = s.2;
            s.2 = 0;
            Some(suppressed)
        } else {
            s.2 += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_max_per_window_and_counts_the_rest() {
        let t = LogThrottle::new(2, Duration::from_secs(10));
        let now = Instant::now();
        assert_eq!(t.allow(now), Some(0));
        assert_eq!(t.allow(now), Some(0));
        assert_eq!(t.allow(now), None);
        assert_eq!(t.allow(now), None);
        assert_eq!(t.allow(now + Duration::from_secs(10)), Some(2));
    }
}
