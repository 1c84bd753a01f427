//! Login rate limiting per client address, with exponential back-off.
//!
//! The first [`FREE_FAILURES`] failures from an address cost nothing; each further one
//! blocks the address for 1, 2, 4 … seconds (at most [`MAX_BACKOFF`]). While blocked,
//! attempts are refused without checking the password. A success forgets the address.
//! The table is bounded: past [`MAX_ENTRIES`] addresses, entries no longer blocked are
//! dropped, then the oldest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FREE_FAILURES: u32 = 3;
const MAX_BACKOFF: Duration = Duration::from_secs(300);
const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    blocked_until: Instant,
}

/// Per-address login failure counter.
#[derive(Debug, Default)]
pub(crate) struct LoginLimiter {
    entries: Mutex<HashMap<Option<IpAddr>, Entry>>,
}

impl LoginLimiter {
    /// `Err(seconds to wait)` if `addr` is currently blocked.
    pub(crate) fn check(&self, addr: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        let entries = self.lock();
        match entries.get(&addr) {
            Some(e) if e.blocked_until > now => {
                let wait = e.blocked_until - now;
                Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            }
            _ => Ok(()),
        }
    }

    /// Records a failed attempt; returns the back-off now in force, if any.
    pub(crate) fn failed(&self, addr: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&addr) {
            entries.retain(|_, e| e.blocked_until > now);
            if entries.len() >= MAX_ENTRIES
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.blocked_until)
                    .map(|(k, _)| *k)
            {
                entries.remove(&oldest);
            }
        }
        let e = entries.entry(addr).or_insert(Entry {
            failures: 0,
            blocked_until: now,
        });
        e.failures = e.failures.saturating_add(1);
        if e.failures < FREE_FAILURES {
            return None;
        }
        let exp = (e.failures - FREE_FAILURES).min(16);
        let backoff = Duration::from_secs(1u64 << exp).min(MAX_BACKOFF);
        e.blocked_until = now + backoff;
        Some(backoff)
    }

    /// Forgets `addr` after a successful login.
    pub(crate) fn succeeded(&self, addr: Option<IpAddr>) {
        self.lock().remove(&addr);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<IpAddr>, Entry>> {
        // The map stays consistent even if a holder panicked (single inserts/removes).
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn backs_off_exponentially_after_free_failures() {
        let l = LoginLimiter::default();
        let t = Instant::now();
        assert_eq!(l.failed(ip(1), t), None);
        assert_eq!(l.failed(ip(1), t), None);
        assert!(l.check(ip(1), t).is_ok());
        assert_eq!(l.failed(ip(1), t), Some(Duration::from_secs(1)));
        assert_eq!(l.check(ip(1), t), Err(1));
        assert!(l.check(ip(1), t + Duration::from_secs(1)).is_ok());
        assert_eq!(
            l.failed(ip(1), t + Duration::from_secs(1)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(l.check(ip(1), t + Duration::from_millis(1500)), Err(2));
        // Other addresses are unaffected.
        assert!(l.check(ip(2), t).is_ok());
    }

    #[test]
    fn success_resets() {
        let l = LoginLimiter::default();
        let t = Instant::now();
        for _ in 0..5 {
            l.failed(ip(1), t);
        }
        assert!(l.check(ip(1), t).is_err());
        l.succeeded(ip(1));
        assert!(l.check(ip(1), t).is_ok());
    }

    #[test]
    fn backoff_is_capped() {
        let l = LoginLimiter::default();
        let t = Instant::now();
        let mut last = None;
        for _ in 0..40 {
            last = l.failed(ip(1), t);
        }
        assert_eq!(last, Some(MAX_BACKOFF));
    }

    #[test]
    fn table_is_bounded() {
        let l = LoginLimiter::default();
        let t = Instant::now();
        for i in 0..(MAX_ENTRIES + 10) {
            let a = u32::try_from(i).unwrap();
            for _ in 0..3 {
                l.failed(Some(IpAddr::from(a.to_be_bytes())), t);
            }
        }
        assert!(l.lock().len() <= MAX_ENTRIES);
    }
}
