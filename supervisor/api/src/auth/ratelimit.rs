//! Login rate limiting: per client, with exponential back-off, plus a global budget.
//!
//! An attempt is *reserved* ([`LoginLimiter::reserve`]) atomically before the password
//! is hashed, and an attempt in flight counts as a failure until it is decided: N
//! parallel guesses from one client are not all checked.
//!
//! * Clients are keyed by address, IPv6 by its /64 (one host owns a whole /64, and a
//!   container can add addresses to its interface), IPv4-mapped IPv6 as IPv4.
//! * The first [`FREE_FAILURES`] failures of a client cost nothing; each further one
//!   blocks it for 1, 2, 4 … seconds (at most [`MAX_BACKOFF`]); past the free ones, one
//!   attempt at a time. A success forgets the client.
//! * All address-keyed clients together may fail at most `global_budget` times per
//!   [`GLOBAL_WINDOW`] (failures and attempts in flight): rotating addresses buys an
//!   attacker nothing.
//! * A *known device* (a signed cookie from an earlier successful login, see
//!   `device.rs`) is keyed by its device id instead, and is exempt from the address and
//!   global limits, so the owner is not locked out by someone else's failures. It has
//!   the same per-client back-off.
//!
//! Tables are bounded: past [`MAX_ENTRIES`] clients, idle entries that are no longer
//! blocked are dropped, then the oldest idle one.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) const FREE_FAILURES: u32 = 3;
const MAX_BACKOFF: Duration = Duration::from_secs(300);
const MAX_ENTRIES: usize = 4096;
/// The window of the global failure budget.
pub(crate) const GLOBAL_WINDOW: Duration = Duration::from_secs(60);
/// Failed logins from unknown devices allowed per [`GLOBAL_WINDOW`], all addresses
/// together, unless configured (`ApiConfig::login_failure_budget`).
pub(crate) const DEFAULT_GLOBAL_BUDGET: u32 = 20;

/// Who is attempting a login, for rate limiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Client {
    /// An unknown device, by its address (normalised by [`address_key`]).
    Address(Option<IpAddr>),
    /// A known device, by its id (from a verified device cookie).
    Device(String),
}

impl Client {
    /// The client for a login from `peer`, or from a known device if `device` is set.
    pub(crate) fn new(peer: Option<IpAddr>, device: Option<String>) -> Client {
        match device {
            Some(id) => Client::Device(id),
            None => Client::Address(peer.map(address_key)),
        }
    }
}

/// IPv4 as is; IPv6 by its /64; IPv4-mapped IPv6 as IPv4.
pub(crate) fn address_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    in_flight: u32,
    blocked_until: Instant,
}

impl Entry {
    /// `Err(seconds)` unless one more attempt may start now.
    fn admit(&self, now: Instant) -> Result<(), u64> {
        if self.blocked_until > now {
            return Err(ceil_secs(self.blocked_until - now));
        }
        if self.failures + self.in_flight < FREE_FAILURES || self.in_flight == 0 {
            Ok(())
        } else {
            Err(1)
        }
    }

    /// Records a failure; returns the back-off now in force, if any.
    fn fail(&mut self, now: Instant) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        if self.failures < FREE_FAILURES {
            return None;
        }
        let exp = (self.failures - FREE_FAILURES).min(16);
        let backoff = Duration::from_secs(1u64 << exp).min(MAX_BACKOFF);
        self.blocked_until = now + backoff;
        Some(backoff)
    }
}

fn ceil_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

#[derive(Debug)]
struct Table<K> {
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn entry(&mut self, key: &K, now: Instant) -> &mut Entry {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(key) {
            self.entries
                .retain(|_, e| e.in_flight > 0 || e.blocked_until > now);
            if self.entries.len() >= MAX_ENTRIES
                && let Some(oldest) = self
                    .entries
                    .iter()
                    .filter(|(_, e)| e.in_flight == 0)
                    .min_by_key(|(_, e)| e.blocked_until)
                    .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.entry(key.clone()).or_insert(Entry {
            failures: 0,
            in_flight: 0,
            blocked_until: now,
        })
    }
}

impl<K> Default for Table<K> {
    fn default() -> Self {
        Table {
            entries: HashMap::new(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    addresses: Table<Option<IpAddr>>,
    devices: Table<String>,
    /// When recent address-keyed failures happened (within [`GLOBAL_WINDOW`]).
    global_failures: VecDeque<Instant>,
    /// Address-keyed attempts in flight.
    global_in_flight: u32,
}

/// Login attempt bookkeeping, shared by every login and password check.
#[derive(Debug)]
pub(crate) struct LoginLimiter {
    state: Mutex<State>,
    global_budget: u32,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(DEFAULT_GLOBAL_BUDGET)
    }
}

impl LoginLimiter {
    /// A limiter allowing `global_budget` unknown-device failures per minute.
    pub(crate) fn new(global_budget: u32) -> LoginLimiter {
        LoginLimiter {
            state: Mutex::default(),
            global_budget: global_budget.max(1),
        }
    }

    /// Reserves one attempt for `client`, or `Err(seconds to wait)`. The attempt counts
    /// as a failure until [`Attempt::succeeded`] or [`Attempt::cancel`].
    pub(crate) fn reserve(&self, client: Client, now: Instant) -> Result<Attempt<'_>, u64> {
        let mut st = self.lock();
        match &client {
            Client::Device(id) => {
                let e = st.devices.entry(id, now);
                e.admit(now)?;
                e.in_flight += 1;
            }
            Client::Address(addr) => {
                while st
                    .global_failures
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= GLOBAL_WINDOW)
                {
                    st.global_failures.pop_front();
                }
                let used = u32::try_from(st.global_failures.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(st.global_in_flight);
                if used >= self.global_budget {
                    return Err(st
                        .global_failures
                        .front()
                        .map_or(1, |t| ceil_secs(GLOBAL_WINDOW - now.duration_since(*t))));
                }
                let e = st.addresses.entry(addr, now);
                e.admit(now)?;
                e.in_flight += 1;
                st.global_in_flight += 1;
            }
        }
        Ok(Attempt {
            limiter: self,
            client: Some(client),
        })
    }

    fn finish(&self, client: &Client, outcome: Outcome, now: Instant) -> Option<Duration> {
        let mut st = self.lock();
        let st = &mut *st;
        let (table_entry, global) = match client {
            Client::Device(id) => (st.devices.entries.get_mut(id), false),
            Client::Address(addr) => {
                st.global_in_flight = st.global_in_flight.saturating_sub(1);
                (st.addresses.entries.get_mut(addr), true)
            }
        };
        let mut backoff = None;
        if let Some(e) = table_entry {
            e.in_flight = e.in_flight.saturating_sub(1);
            match outcome {
                Outcome::Failed => backoff = e.fail(now),
                Outcome::Cancelled => {}
                Outcome::Succeeded => {
                    e.failures = 0;
                    e.blocked_until = now;
                }
            }
        }
        if global && outcome == Outcome::Failed {
            st.global_failures.push_back(now);
        }
        backoff
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The tables stay consistent even if a holder panicked (no await, no unwinding
        // between related updates).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
    Cancelled,
}

/// A reserved login attempt. Dropped undecided (the request was abandoned, or an
/// internal error), it counts as a failure.
#[derive(Debug)]
pub(crate) struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    client: Option<Client>,
}

impl Attempt<'_> {
    /// The password was right: the client's failures are forgotten.
    pub(crate) fn succeeded(mut self) {
        if let Some(c) = self.client.take() {
            self.limiter.finish(&c, Outcome::Succeeded, Instant::now());
        }
    }

    /// The password was wrong; returns the back-off now in force, if any.
    pub(crate) fn failed(mut self) -> Option<Duration> {
        let c = self.client.take()?;
        self.limiter.finish(&c, Outcome::Failed, Instant::now())
    }

    /// No password was checked (the server was too busy): the attempt does not count.
    pub(crate) fn cancel(mut self) {
        if let Some(c) = self.client.take() {
            self.limiter.finish(&c, Outcome::Cancelled, Instant::now());
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            self.limiter.finish(&c, Outcome::Failed, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> Client {
        Client::new(Some(IpAddr::from([10, 0, 0, n])), None)
    }

    /// One failed attempt decided at `t` (tests control time).
    fn fail(l: &LoginLimiter, c: Client, t: Instant) -> Option<Duration> {
        let mut a = l.reserve(c, t).unwrap();
        let client = a.client.take().unwrap();
        l.finish(&client, Outcome::Failed, t)
    }

    #[test]
    fn backs_off_exponentially_after_free_failures() {
        let l = LoginLimiter::default();
        let t = Instant::now();
        assert_eq!(fail(&l, ip(1), t), None);
        assert_eq!(fail(&l, ip(1), t), None);
        l.reserve(ip(1), t).unwrap().cancel();
        assert_eq!(fail(&l, ip(1), t), Some(Duration::from_secs(1)));
        assert_eq!(l.reserve(ip(1), t).unwrap_err(), 1);
        let t1 = t + Duration::from_secs(1);
        l.reserve(ip(1), t1).unwrap().cancel();
        assert_eq!(fail(&l, ip(1), t1), Some(Duration::from_secs(2)));
        assert_eq!(
            l.reserve(ip(1), t + Duration::from_millis(1500))
                .unwrap_err(),
            2
        );
        // Other addresses are unaffected.
        l.reserve(ip(2), t).unwrap().cancel();
    }

    #[test]
    fn attempts_in_flight_count_against_the_limit() {
        let l = LoginLimiter::default();
        let t = Instant::now();
        let held: Vec<_> = (0..FREE_FAILURES)
            .map(|_| l.reserve(ip(1), t).unwrap())
            .collect();
        assert_eq!(l.reserve(ip(1), t).unwrap_err(), 1);
        // Cancelled attempts give their place back without counting.
        for a in held {
            a.cancel();
        }
        l.reserve(ip(1), t).unwrap().cancel();
        // An abandoned attempt counts as a failure.
        let l = LoginLimiter::default();
        for _ in 0..FREE_FAILURES {
            drop(l.reserve(ip(1), Instant::now()).unwrap());
        }
        assert!(l.reserve(ip(1), Instant::now()).is_err());
    }

    #[test]
    fn ipv6_is_keyed_by_its_slash_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), IpAddr::from([10, 0, 0, 1]));
        let l = LoginLimiter::default();
        let t = Instant::now();
        for _ in 0..FREE_FAILURES {
            fail(&l, Client::new(Some(a), None), t);
        }
        assert!(l.reserve(Client::new(Some(b), None), t).is_err());
        l.reserve(Client::new(Some(c), None), t).unwrap().cancel();
    }

    #[test]
    fn global_budget_spans_addresses_but_not_known_devices() {
        let l = LoginLimiter::new(5);
        let t = Instant::now();
        for n in 0..5 {
            fail(&l, ip(n), t);
        }
        let wait = l.reserve(ip(100), t).unwrap_err();
        assert_eq!(wait, 60);
        l.reserve(Client::Device("d1".into()), t).unwrap().cancel();
        // The budget refills as failures leave the window.
        l.reserve(ip(100), t + GLOBAL_WINDOW).unwrap().cancel();
    }

    #[test]
    fn known_devices_are_bounded_too() {
        let l = LoginLimiter::new(1);
        let t = Instant::now();
        let d = || Client::Device("d1".into());
        for _ in 0..FREE_FAILURES {
            fail(&l, d(), t);
        }
        assert!(l.reserve(d(), t).is_err());
        l.reserve(Client::Device("d2".into()), t).unwrap().cancel();
    }

    #[test]
    fn success_resets() {
        let l = LoginLimiter::default();
        let t = Instant::now();
        for _ in 0..2 {
            fail(&l, ip(1), t);
        }
        l.reserve(ip(1), t).unwrap().succeeded();
        for _ in 0..2 {
            assert_eq!(fail(&l, ip(1), Instant::now()), None);
        }
    }

    #[test]
    fn backoff_is_capped() {
        let l = LoginLimiter::new(1000);
        let mut t = Instant::now();
        let mut last = None;
        for _ in 0..40 {
            last = fail(&l, ip(1), t);
            t += MAX_BACKOFF;
        }
        assert_eq!(last, Some(MAX_BACKOFF));
    }

    #[test]
    fn tables_are_bounded() {
        let l = LoginLimiter::new(u32::MAX);
        let t = Instant::now();
        for i in 0..(MAX_ENTRIES + 10) {
            let a = u32::try_from(i).unwrap();
            for _ in 0..3 {
                fail(
                    &l,
                    Client::new(Some(IpAddr::from(a.to_be_bytes())), None),
                    t,
                );
            }
        }
        assert!(l.lock().addresses.entries.len() <= MAX_ENTRIES);
    }
}
