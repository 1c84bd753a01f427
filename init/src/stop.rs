//! Stopping the supervised services (and, as PID 1, every other process) at shutdown.
//!
//! # Design
//! Each [`Job`] has a [`StopPolicy`]: its stop signal, then, if it is still there after the
//! policy's timeout, `SIGKILL` (to its process group too when it leads one), then a short
//! wait ([`KILL_WAIT`]) for it to be reaped. Jobs are stopped one after the other, in the
//! order given (the caller passes services in reverse start order, then "every other
//! process"). The whole run has an overall bound: a polite wait never goes past it; once it
//! is reached the job being waited on and every later one gets `SIGKILL` at once, and
//! [`stop_all`] returns at most [`KILL_WAIT`] after the bound, whatever the processes do.
//!
//! The machine is an explicit [`State`] driven by [`stop_all`] through the narrow
//! [`Procs`] trait (clock, signals, reaping, waiting), implemented for real in
//! `supervise.rs` and by a fake process table with a fake clock in the tests below.
//! Every step is logged with the job's name, the signal and the elapsed time, e.g.
//! `dhcpcd did not stop within 3 s after SIGTERM; SIGKILL`.
//!
//! # Invariants
//! - A job gets its stop signal at most once and `SIGKILL` at most once.
//! - No wait ends later than the overall bound (polite phase) or bound + [`KILL_WAIT`].

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::log::{log_info, log_warn};

/// How long to wait for a process to be reaped after `SIGKILL`.
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(2);

/// How one service is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StopPolicy {
    /// Sent first.
    pub(crate) signal: Signal,
    /// Time allowed after `signal` before `SIGKILL`.
    pub(crate) timeout: Duration,
}

impl StopPolicy {
    /// `SIGTERM`, then `SIGKILL` after `timeout`.
    pub(crate) const fn term(timeout: Duration) -> StopPolicy {
        StopPolicy {
            signal: Signal::SIGTERM,
            timeout,
        }
    }
}

/// What a job signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// A service's main process (and, for `SIGKILL`, its process group if it leads one).
    Service(Pid),
    /// Every other process (`kill(-1)`; only as PID 1): gone when we have no child left.
    Rest,
}

/// One thing to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job {
    /// Name in log lines.
    pub(crate) name: String,
    pub(crate) target: Target,
    pub(crate) policy: StopPolicy,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It was gone before it was signalled.
    AlreadyGone,
    /// It went after its stop signal.
    Stopped,
    /// It got `SIGKILL` and went.
    Killed,
    /// It was still there [`KILL_WAIT`] after `SIGKILL` (or at the hard bound): given up.
    Lingering,
}

/// The OS as [`stop_all`] sees it.
pub(crate) trait Procs {
    fn now(&self) -> Instant;
    /// Sends `signal` to `target`; `SIGKILL` to a service also goes to its process group
    /// when it leads one.
    fn send(&mut self, target: Target, signal: Signal);
    /// Reaps exited children; whether `target` is gone.
    fn gone(&mut self, target: Target) -> bool;
    /// Sleeps until `until` or until a child exits, whichever comes first.
    fn wait(&mut self, until: Instant);
}

/// Where the machine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Job `0` is next.
    Start(usize),
    /// Job `0` got its stop signal at `since`.
    Asked(usize, Instant),
    /// Job `0` got `SIGKILL` at `since`.
    Killed(usize, Instant),
    Done,
}

fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn elapsed(since: Instant, now: Instant) -> String {
    format!(
        "{:.1} s",
        now.saturating_duration_since(since).as_secs_f64()
    )
}

/// Stops `jobs` in order within `bound` (+ [`KILL_WAIT`] for the last `SIGKILL`s); returns
/// each job's outcome.
pub(crate) fn stop_all(jobs: &[Job], bound: Duration, procs: &mut dyn Procs) -> Vec<Outcome> {
    let began = procs.now();
    let soft = began + bound;
    let hard = soft + KILL_WAIT;
    let mut outcomes = vec![Outcome::AlreadyGone; jobs.len()];
    let next = |i: usize| {
        if i + 1 < jobs.len() {
            State::Start(i + 1)
        } else {
            State::Done
        }
    };
    let mut state = if jobs.is_empty() {
        State::Done
    } else {
        State::Start(0)
    };
    loop {
        let now = procs.now();
        state = match state {
            State::Done => {
                log_info!("stopping done in {}", elapsed(began, now));
                return outcomes;
            }
            State::Start(i) => {
                let job = &jobs[i];
                let (name, sig) = (&job.name, job.policy.signal.as_str());
                if procs.gone(job.target) {
                    log_info!("{name} already gone");
                    next(i)
                } else if now >= soft {
                    log_warn!(
                        "{name}: shutdown bound of {} reached ({} in); SIGKILL without {sig}",
                        secs(bound),
                        elapsed(began, now)
                    );
                    procs.send(job.target, Signal::SIGKILL);
                    State::Killed(i, now)
                } else {
                    log_info!(
                        "stopping {name}: {sig}, SIGKILL after {}",
                        secs(job.policy.timeout)
                    );
                    procs.send(job.target, job.policy.signal);
                    State::Asked(i, now)
                }
            }
            State::Asked(i, since) => {
                let job = &jobs[i];
                let (name, sig) = (&job.name, job.policy.signal.as_str());
                let own = since + job.policy.timeout;
                let deadline = own.min(soft);
                if procs.gone(job.target) {
                    log_info!("{name} stopped {} after {sig}", elapsed(since, now));
                    outcomes[i] = Outcome::Stopped;
                    next(i)
                } else if now >= deadline {
                    if own <= soft {
                        log_warn!(
                            "{name} did not stop within {} after {sig}; SIGKILL",
                            secs(job.policy.timeout)
                        );
                    } else {
                        log_warn!(
                            "{name} still running {} after {sig}: shutdown bound of {} \
                             reached; SIGKILL",
                            elapsed(since, now),
                            secs(bound)
                        );
                    }
                    procs.send(job.target, Signal::SIGKILL);
                    State::Killed(i, now)
                } else {
                    procs.wait(deadline);
                    State::Asked(i, since)
                }
            }
            State::Killed(i, since) => {
                let name = &jobs[i].name;
                let deadline = (since + KILL_WAIT).min(hard);
                if procs.gone(jobs[i].target) {
                    log_info!("{name} gone {} after SIGKILL", elapsed(since, now));
                    outcomes[i] = Outcome::Killed;
                    next(i)
                } else if now >= deadline {
                    log_warn!(
                        "{name} still there {} after SIGKILL; going on",
                        elapsed(since, now)
                    );
                    outcomes[i] = Outcome::Lingering;
                    next(i)
                } else {
                    procs.wait(deadline);
                    State::Killed(i, since)
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake process: after receiving one of `dies_on`'s signals it exits that much later.
    struct FakeProc {
        target: Target,
        dies_on: Vec<(Signal, Duration)>,
        exits_at: Option<Instant>,
    }

    /// A process table with a fake clock: `wait` jumps to the deadline or the next exit.
    struct Fake {
        now: Instant,
        began: Instant,
        procs: Vec<FakeProc>,
        sent: Vec<(Target, Signal, Duration)>,
    }

    impl Fake {
        fn new(procs: Vec<FakeProc>) -> Fake {
            let now = Instant::now();
            Fake {
                now,
                began: now,
                procs,
                sent: Vec::new(),
            }
        }
        fn at(&self) -> Duration {
            self.now - self.began
        }
    }

    impl Procs for Fake {
        fn now(&self) -> Instant {
            self.now
        }
        fn send(&mut self, target: Target, signal: Signal) {
            self.sent.push((target, signal, self.now - self.began));
            let now = self.now;
            for p in self.procs.iter_mut().filter(|p| p.target == target) {
                if let Some((_, after)) = p.dies_on.iter().find(|(s, _)| *s == signal) {
                    let at = now + *after;
                    p.exits_at = Some(p.exits_at.map_or(at, |e| e.min(at)));
                }
            }
        }
        fn gone(&mut self, target: Target) -> bool {
            let now = self.now;
            self.procs
                .iter()
                .filter(|p| p.target == target)
                .all(|p| p.exits_at.is_some_and(|e| e <= now))
        }
        fn wait(&mut self, until: Instant) {
            assert!(until > self.now, "waiting for a deadline already passed");
            let now = self.now;
            let exit = self
                .procs
                .iter()
                .filter_map(|p| p.exits_at)
                .filter(|e| *e > now)
                .min();
            self.now = exit.map_or(until, |e| e.min(until));
        }
    }

    const DHCPCD: Target = Target::Service(Pid::from_raw(123));
    const HEARTHD: Target = Target::Service(Pid::from_raw(124));

    fn job(name: &str, target: Target, secs: u64) -> Job {
        Job {
            name: name.into(),
            target,
            policy: StopPolicy::term(Duration::from_secs(secs)),
        }
    }

    fn proc(target: Target, dies_on: &[(Signal, u64)]) -> FakeProc {
        FakeProc {
            target,
            dies_on: dies_on
                .iter()
                .map(|(s, ms)| (*s, Duration::from_millis(*ms)))
                .collect(),
            exits_at: None,
        }
    }

    const TERM: Signal = Signal::SIGTERM;
    const KILL: Signal = Signal::SIGKILL;

    #[test]
    fn a_service_that_stops_in_time_gets_only_its_stop_signal() {
        let mut fake = Fake::new(vec![proc(DHCPCD, &[(TERM, 500), (KILL, 0)])]);
        let out = stop_all(
            &[job("dhcpcd", DHCPCD, 3)],
            Duration::from_secs(60),
            &mut fake,
        );
        assert_eq!(out, [Outcome::Stopped]);
        assert_eq!(fake.sent, [(DHCPCD, TERM, Duration::ZERO)]);
        assert_eq!(fake.at(), Duration::from_millis(500));
    }

    #[test]
    fn a_service_ignoring_sigterm_is_killed_at_its_deadline() {
        let mut fake = Fake::new(vec![
            proc(DHCPCD, &[(KILL, 10)]),
            proc(HEARTHD, &[(TERM, 1000)]),
        ]);
        let out = stop_all(
            &[job("hearthd", HEARTHD, 15), job("dhcpcd", DHCPCD, 3)],
            Duration::from_secs(60),
            &mut fake,
        );
        assert_eq!(out, [Outcome::Stopped, Outcome::Killed]);
        assert_eq!(
            fake.sent,
            [
                (HEARTHD, TERM, Duration::ZERO),
                (DHCPCD, TERM, Duration::from_secs(1)),
                (DHCPCD, KILL, Duration::from_secs(4)),
            ]
        );
        assert_eq!(fake.at(), Duration::from_millis(4010));
    }

    #[test]
    fn a_custom_stop_signal_is_sent_first() {
        let mut fake = Fake::new(vec![proc(DHCPCD, &[(Signal::SIGINT, 100)])]);
        let mut j = job("svc", DHCPCD, 3);
        j.policy.signal = Signal::SIGINT;
        let out = stop_all(&[j], Duration::from_secs(60), &mut fake);
        assert_eq!(out, [Outcome::Stopped]);
        assert_eq!(fake.sent, [(DHCPCD, Signal::SIGINT, Duration::ZERO)]);
    }

    #[test]
    fn the_overall_bound_cuts_a_long_timeout_and_skips_later_stop_signals() {
        // hearthd may take 30 s, the whole shutdown only 10 s: SIGKILL at 10 s; the rest
        // then gets SIGKILL straight away, and a process surviving SIGKILL (stuck in the
        // kernel) is given up at bound + KILL_WAIT.
        let mut fake = Fake::new(vec![
            proc(HEARTHD, &[(KILL, 100)]),
            proc(DHCPCD, &[(TERM, 10), (KILL, 0)]),
            proc(Target::Rest, &[]),
        ]);
        let rest = Job {
            name: "other processes".into(),
            target: Target::Rest,
            policy: StopPolicy::term(Duration::from_secs(30)),
        };
        let out = stop_all(
            &[job("hearthd", HEARTHD, 30), job("dhcpcd", DHCPCD, 3), rest],
            Duration::from_secs(10),
            &mut fake,
        );
        assert_eq!(
            out,
            [Outcome::Killed, Outcome::Killed, Outcome::Lingering],
            "{:?}",
            fake.sent
        );
        let ten = Duration::from_secs(10);
        let after = ten + Duration::from_millis(100);
        assert_eq!(
            fake.sent,
            [
                (HEARTHD, TERM, Duration::ZERO),
                (HEARTHD, KILL, ten),
                (DHCPCD, KILL, after),
                (Target::Rest, KILL, after),
            ]
        );
        assert_eq!(fake.at(), ten + KILL_WAIT);
    }

    #[test]
    fn gone_services_are_not_signalled_and_nothing_to_do_returns_at_once() {
        let mut fake = Fake::new(vec![]);
        assert_eq!(
            stop_all(
                &[job("dhcpcd", DHCPCD, 3)],
                Duration::from_secs(60),
                &mut fake
            ),
            [Outcome::AlreadyGone]
        );
        assert!(fake.sent.is_empty());
        assert!(stop_all(&[], Duration::from_secs(60), &mut fake).is_empty());
        assert_eq!(fake.at(), Duration::ZERO);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(secs(Duration::from_secs(3)), "3 s");
        assert_eq!(secs(Duration::from_millis(100)), "0.1 s");
    }
}
