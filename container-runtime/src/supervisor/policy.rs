//! Restart policy: exponential back-off between restarts and crash-loop detection.
//!
//! # Design
//! A daemon that exits (or fails to spawn, or is not ready within its grace period)
//! is restarted after `initial * 2^(n-1)` capped at `max`, where `n` counts the
//! consecutive failures; a run that lasted `stable_after` resets `n`. If `crash_limit`
//! failures fall within `crash_window`, the daemon is given up on (`crashLoop`) until
//! a `start`/`restart` request.
//!
//! # Rejected alternatives
//! A fixed restart delay (StartOS retries failed transitions every 10 s): it either
//! hammers a broken daemon or delays recovery from a one-off crash.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Tunables of the restart policy (command-line flags; tests shorten them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RestartPolicy {
    /// Delay before the first restart.
    pub(crate) initial: Duration,
    /// Longest delay between restarts.
    pub(crate) max: Duration,
    /// A run at least this long resets the back-off.
    pub(crate) stable_after: Duration,
    /// This many failures within `crash_window` is a crash loop.
    pub(crate) crash_limit: u32,
    /// Window for counting failures.
    pub(crate) crash_window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            stable_after: Duration::from_secs(60),
            crash_limit: 5,
            crash_window: Duration::from_secs(300),
        }
    }
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Restart after this delay.
    RetryAfter(Duration),
    /// Too many failures: stop trying.
    CrashLoop,
}

/// Failure history of one daemon.
#[derive(Debug, Default, Clone)]
pub(crate) struct FailureHistory {
    consecutive: u32,
    recent: VecDeque<Instant>,
}

impl FailureHistory {
    /// Records a failure at `now` of a run that lasted `ran_for` (`None`: never ran).
    pub(crate) fn record(
        &mut self,
        policy: &RestartPolicy,
        now: Instant,
        ran_for: Option<Duration>,
    ) -> Verdict {
        if ran_for.is_some_and(|d| d >= policy.stable_after) {
            self.consecutive = 0;
        }
        self.consecutive = self.consecutive.saturating_add(1);
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > policy.crash_window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= usize::try_from(policy.crash_limit).unwrap_or(usize::MAX) {
            return Verdict::CrashLoop;
        }
        let exp = self.consecutive.saturating_sub(1).min(31);
        let delay = policy.initial.saturating_mul(1u32 << exp).min(policy.max);
        Verdict::RetryAfter(delay)
    }

    /// Forgets all failures (an explicit start or restart).
    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }

    /// Failures within the current window.
    pub(crate) fn recent(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            crash_limit: 100,
            ..RestartPolicy::default()
        }
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = policy();
        let mut h = FailureHistory::default();
        let t = Instant::now();
        let delays: Vec<_> = (0..9)
            .map(|i| h.record(&p, t + Duration::from_secs(i), Some(Duration::ZERO)))
            .collect();
        let secs = |s| Verdict::RetryAfter(Duration::from_secs(s));
        assert_eq!(
            delays,
            vec![
                secs(1),
                secs(2),
                secs(4),
                secs(8),
                secs(16),
                secs(32),
                secs(60),
                secs(60),
                secs(60)
            ]
        );
    }

    #[test]
    fn a_stable_run_resets_the_back_off() {
        let p = policy();
        let mut h = FailureHistory::default();
        let t = Instant::now();
        h.record(&p, t, None);
        h.record(&p, t, None);
        assert_eq!(
            h.record(&p, t, Some(Duration::from_secs(61))),
            Verdict::RetryAfter(Duration::from_secs(1))
        );
    }

    #[test]
    fn crash_limit_within_window_is_a_crash_loop() {
        let p = RestartPolicy {
            crash_limit: 3,
            crash_window: Duration::from_secs(10),
            ..RestartPolicy::default()
        };
        let mut h = FailureHistory::default();
        let t = Instant::now();
        assert!(matches!(h.record(&p, t, None), Verdict::RetryAfter(_)));
        // The first failure leaves the window before the third arrives.
        let later = t + Duration::from_secs(11);
        assert!(matches!(h.record(&p, later, None), Verdict::RetryAfter(_)));
        assert!(matches!(h.record(&p, later, None), Verdict::RetryAfter(_)));
        assert_eq!(h.record(&p, later, None), Verdict::CrashLoop);
        h.reset();
        assert_eq!(h.recent(), 0);
        assert_eq!(
            h.record(&p, later, None),
            Verdict::RetryAfter(Duration::from_secs(1))
        );
    }
}
