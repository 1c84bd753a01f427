//! The PID 1 loop: start one service (`hearthd`), restart it with exponential back-off when
//! it dies, reap every zombie, and on a shutdown signal stop it and return.
//!
//! # Design
//! Signals are blocked and read from a `signalfd`; the loop `poll`s it with a timeout equal
//! to the time left until the next restart, so there are no signal handlers and no races
//! between `waitpid` and a handler. Every `SIGCHLD` drains `waitpid(-1, WNOHANG)`: the
//! service's pid schedules a restart, any other pid is an orphan re-parented to us (PID 1,
//! or a sub-reaper in tests) and is only logged. `std::process::Command` resets the signal
//! mask in the child, so the service starts with normal signals.
//!
//! [`Backoff`] is pure: `base * 2^(failures-1)` capped at `max`; a run that lasted at least
//! `reset_after` resets the count.
//!
//! Signals: `SIGTERM` and `SIGPWR` mean power off, `SIGINT` (Ctrl-Alt-Del) means restart.
//! On one, the service gets `SIGTERM`, then `SIGKILL` after `stop_timeout`; as PID 1
//! (`kill_all`) every remaining process gets the same treatment.
//!
//! # Limitations
//! One service. Its stdout/stderr are inherited (the console).

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::log::{log_error, log_info, log_warn};

/// Exponential restart delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) base: Duration,
    pub(crate) max: Duration,
    pub(crate) reset_after: Duration,
}

impl Backoff {
    /// Defaults for a device: 1 s, 2 s, 4 s … 60 s; a minute of uptime resets.
    pub(crate) const DEVICE: Backoff = Backoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
        reset_after: Duration::from_secs(60),
    };

    /// Delay before restart number `failures` (1 = first restart).
    pub(crate) fn delay(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(20);
        self.base.saturating_mul(1u32 << shift).min(self.max)
    }
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shutdown {
    PowerOff,
    Reboot,
}

/// What to supervise and how.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) argv: Vec<OsString>,
    pub(crate) backoff: Backoff,
    pub(crate) stop_timeout: Duration,
    /// Also signal every other process at shutdown (only as PID 1).
    pub(crate) kill_all: bool,
}

/// The loop could not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SuperviseError {
    /// No command was given.
    #[error("supervise: empty command")]
    EmptyCommand,
    /// Blocking signals or creating the signalfd failed.
    #[error("supervise: setting up signal handling: {0}")]
    Signals(nix::Error),
    /// Waiting on the signalfd failed.
    #[error("supervise: polling the signalfd: {0}")]
    Poll(nix::Error),
}

fn signal_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGPWR,
    ] {
        set.add(s);
    }
    set
}

enum State {
    Running { pid: Pid, since: Instant },
    Waiting { until: Instant },
}

/// Supervises until a shutdown signal, then stops everything and returns.
pub(crate) fn run(cfg: &Config) -> Result<Shutdown, SuperviseError> {
    if cfg.argv.is_empty() {
        return Err(SuperviseError::EmptyCommand);
    }
    let set = signal_set();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(SuperviseError::Signals)?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(SuperviseError::Signals)?;
    let mut failures = 0u32;
    let mut state = start(cfg, &mut failures);
    loop {
        let timeout = match &state {
            State::Running { .. } => PollTimeout::NONE,
            State::Waiting { until } => {
                let left = until.saturating_duration_since(Instant::now());
                PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(SuperviseError::Poll(e)),
        }
        while let Ok(Some(sig)) = sfd.read_signal() {
            let shutdown = match Signal::try_from(sig.ssi_signo as i32) {
                Ok(Signal::SIGTERM | Signal::SIGPWR) => Some(Shutdown::PowerOff),
                Ok(Signal::SIGINT) => Some(Shutdown::Reboot),
                _ => None,
            };
            if let Some(kind) = shutdown {
                log_info!("shutdown requested ({kind:?}): stopping services");
                let pid = match state {
                    State::Running { pid, .. } => Some(pid),
                    State::Waiting { .. } => None,
                };
                stop(cfg, pid, &sfd);
                return Ok(kind);
            }
        }
        if let State::Running { pid, since } = state {
            if reap(Some(pid)) {
                let ran = since.elapsed();
                if ran >= cfg.backoff.reset_after {
                    failures = 0;
                }
                failures = failures.saturating_add(1);
                let delay = cfg.backoff.delay(failures);
                log_warn!(
                    "service died after {} ms; restart #{failures} in {} ms",
                    ran.as_millis(),
                    delay.as_millis()
                );
                state = State::Waiting {
                    until: Instant::now() + delay,
                };
            }
        } else {
            reap(None);
        }
        if let State::Waiting { until } = state
            && Instant::now() >= until
        {
            state = start(cfg, &mut failures);
        }
    }
}

/// Starts the service; a spawn failure counts as a death (retried with back-off).
fn start(cfg: &Config, failures: &mut u32) -> State {
    let Some((program, args)) = cfg.argv.split_first() else {
        return State::Waiting {
            until: Instant::now() + cfg.backoff.max,
        };
    };
    match crate::cmd::command(program).args(args).spawn() {
        Ok(child) => {
            let raw = i32::try_from(child.id()).unwrap_or(i32::MAX);
            log_info!("started {} (pid {raw})", program.to_string_lossy());
            // The Child handle is dropped without waiting: waitpid(-1) reaps it.
            State::Running {
                pid: Pid::from_raw(raw),
                since: Instant::now(),
            }
        }
        Err(e) => {
            *failures = failures.saturating_add(1);
            let delay = cfg.backoff.delay(*failures);
            log_error!(
                "starting {}: {e}; retry in {} ms",
                program.to_string_lossy(),
                delay.as_millis()
            );
            State::Waiting {
                until: Instant::now() + delay,
            }
        }
    }
}

/// Reaps every exited child; returns whether `watched` was among them.
fn reap(watched: Option<Pid>) -> bool {
    let mut hit = false;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return hit,
            Ok(status) => {
                let pid = status.pid();
                if pid.is_some() && pid == watched {
                    log_info!("service exited: {status:?}");
                    hit = true;
                } else {
                    log_info!("reaped orphan: {status:?}");
                }
            }
        }
    }
}

fn wait_until_gone(pid: Option<Pid>, deadline: Instant, sfd: &SignalFd) -> bool {
    loop {
        let gone = match pid {
            Some(p) => {
                reap(Some(p));
                kill(p, None).is_err()
            }
            None => {
                reap(None);
                matches!(
                    waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)),
                    Err(nix::Error::ECHILD)
                )
            }
        };
        if gone {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let step = left.min(Duration::from_millis(100));
        let _ = poll(
            &mut fds,
            PollTimeout::try_from(step).unwrap_or(PollTimeout::ZERO),
        );
        while let Ok(Some(_)) = sfd.read_signal() {}
    }
}

/// Stops the service (and, as PID 1, everything else): TERM, wait, KILL.
fn stop(cfg: &Config, pid: Option<Pid>, sfd: &SignalFd) {
    if let Some(pid) = pid {
        let _ = kill(pid, Signal::SIGTERM);
        if !wait_until_gone(Some(pid), Instant::now() + cfg.stop_timeout, sfd) {
            log_warn!("service (pid {pid}) ignored SIGTERM; sending SIGKILL");
            let _ = kill(pid, Signal::SIGKILL);
            wait_until_gone(Some(pid), Instant::now() + cfg.stop_timeout, sfd);
        }
        log_info!("service stopped");
    }
    if cfg.kill_all {
        let all = Pid::from_raw(-1);
        let _ = kill(all, Signal::SIGTERM);
        if !wait_until_gone(None, Instant::now() + cfg.stop_timeout, sfd) {
            let _ = kill(all, Signal::SIGKILL);
            wait_until_gone(None, Instant::now() + Duration::from_secs(2), sfd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            reset_after: Duration::from_secs(5),
        };
        let delays: Vec<u128> = (1..=6).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(0).as_millis(), 100);
        assert_eq!(Backoff::DEVICE.delay(u32::MAX), Duration::from_secs(60));
    }
}
