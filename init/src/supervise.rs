//! The PID 1 loop: start the services (`dhcpcd`, `hearthd`), restart each with exponential
//! back-off when it dies, reap every zombie, follow `hearthd`'s readiness, and on a
//! shutdown signal stop them and return.
//!
//! # Design
//! Signals are blocked and read from a `signalfd`; the loop `poll`s it (and the readiness
//! socket) with a timeout equal to the time left until the next restart or the readiness
//! deadline, so there are no signal handlers and no races between `waitpid` and a handler.
//! Every `SIGCHLD` drains `waitpid(-1, WNOHANG)`: a service's pid schedules its restart,
//! any other pid is an orphan re-parented to us (PID 1, or a sub-reaper in tests) and is
//! only logged.
//!
//! [`Backoff`] is pure: `base * 2^(failures-1)` capped at `max`; a run that lasted at least
//! `reset_after` resets the count. Each service has its own count.
//!
//! **Readiness** ([`Readiness`]) uses systemd's notification protocol, so `hearthd` needs
//! nothing Hearth-specific to report it: the watched service gets `NOTIFY_SOCKET` naming a
//! datagram socket we bind with `SO_PASSCRED`; a datagram containing the line `READY=1`
//! whose sender pid (from the kernel, not the message) is the service's own pid makes it
//! ready, and the `on_ready` callback runs once (`hearth-init` marks the slot good there).
//! Not ready within `timeout` of the loop's start, or `max_deaths` deaths before ready,
//! makes it unhealthy: with [`Unhealthy::Return`] the loop stops everything and returns
//! [`Ended::Unhealthy`] (PID 1 reboots: another try, or the other slot); with
//! [`Unhealthy::Log`] it says so once and goes on.
//!
//! Signals: `SIGTERM` and `SIGPWR` mean power off, `SIGINT` (Ctrl-Alt-Del, `hearthd`'s
//! `server.restart`) means restart. On one, the services are stopped in reverse start
//! order, each by its own [`StopPolicy`] (stop signal, timeout, `SIGKILL` to it and its
//! process group), then, as PID 1 ([`Config::rest`]), every remaining process; the whole
//! stop is bounded by [`Config::shutdown_bound`] (see `stop.rs`). Each service runs in its
//! own process group (`setpgid(0, 0)` at spawn), so `SIGKILL` also takes its helpers.
//!
//! # Limitations
//! Services' stdout/stderr are inherited (the console).

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::log::{log_error, log_info, log_warn};
use crate::stop::{self, Job, Procs, StopPolicy, Target};

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

/// How a shutdown was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shutdown {
    PowerOff,
    Reboot,
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// A shutdown signal.
    Requested(Shutdown),
    /// The watched service did not become ready (with [`Unhealthy::Return`]).
    Unhealthy,
}

/// One supervised program.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    /// Name in log lines.
    pub(crate) name: String,
    pub(crate) argv: Vec<OsString>,
    /// How it is stopped at shutdown.
    pub(crate) stop: StopPolicy,
}

/// What an unhealthy watched service leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unhealthy {
    /// Stop everything and return [`Ended::Unhealthy`].
    Return,
    /// Log it once and keep supervising.
    Log,
}

/// Readiness of one service through `NOTIFY_SOCKET`.
#[derive(Debug, Clone)]
pub(crate) struct Readiness {
    /// Index of the watched service in [`Config::services`].
    pub(crate) service: usize,
    /// Path of the datagram socket to bind (removed first if it exists).
    pub(crate) socket: PathBuf,
    /// Time allowed from the start of the loop.
    pub(crate) timeout: Duration,
    /// Deaths of the service before it is ready that make it unhealthy.
    pub(crate) max_deaths: u32,
    pub(crate) on_unhealthy: Unhealthy,
}

/// What to supervise and how.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Started in this order, stopped in reverse.
    pub(crate) services: Vec<Service>,
    pub(crate) backoff: Backoff,
    /// After the services, stop every other process this way (only as PID 1).
    pub(crate) rest: Option<StopPolicy>,
    /// Bound on the whole stop (services and the rest); past it everything gets `SIGKILL`.
    pub(crate) shutdown_bound: Duration,
    pub(crate) readiness: Option<Readiness>,
}

/// The loop could not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SuperviseError {
    /// No command was given.
    #[error("supervise: empty command for service {0:?}")]
    EmptyCommand(String),
    /// Blocking signals or creating the signalfd failed.
    #[error("supervise: setting up signal handling: {0}")]
    Signals(nix::Error),
    /// Waiting on the signalfd failed.
    #[error("supervise: polling the signalfd: {0}")]
    Poll(nix::Error),
    /// The readiness socket could not be set up.
    #[error("supervise: readiness socket {path}: {source}")]
    NotifySocket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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

#[derive(Debug, Clone, Copy)]
enum State {
    Running { pid: Pid, since: Instant },
    Waiting { until: Instant },
}

struct Slot {
    state: State,
    failures: u32,
}

/// Readiness bookkeeping while the loop runs.
struct Watch {
    cfg: Readiness,
    socket: UnixDatagram,
    deadline: Instant,
    deaths: u32,
    /// Ready, or declared unhealthy with [`Unhealthy::Log`]: no deadline any more.
    settled: bool,
    ready: bool,
}

/// Binds the notification socket with `SO_PASSCRED`.
fn bind_notify(path: &PathBuf) -> Result<UnixDatagram, SuperviseError> {
    let err = |source| SuperviseError::NotifySocket {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let _ = std::fs::remove_file(path);
    let socket = UnixDatagram::bind(path).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::PassCred, &true)
        .map_err(|e| err(e.into()))?;
    Ok(socket)
}

/// Reads every pending datagram; returns whether one said `READY=1` from `pid`.
fn read_notifications(socket: &UnixDatagram, pid: Option<Pid>) -> bool {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixCredentials, recvmsg};
    let mut ready = false;
    loop {
        let mut buf = [0u8; 4096];
        let mut cmsg = nix::cmsg_space!(UnixCredentials);
        let (bytes, sender) = {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let Ok(msg) = recvmsg::<()>(
                std::os::fd::AsRawFd::as_raw_fd(socket),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT,
            ) else {
                return ready;
            };
            let sender = msg.cmsgs().ok().and_then(|mut it| {
                it.find_map(|c| match c {
                    ControlMessageOwned::ScmCredentials(cr) => Some(Pid::from_raw(cr.pid())),
                    _ => None,
                })
            });
            (msg.bytes, sender)
        };
        let text = String::from_utf8_lossy(&buf[..bytes.min(buf.len())]);
        if !text.lines().any(|l| l.trim() == "READY=1") {
            continue;
        }
        if sender.is_some() && sender == pid {
            ready = true;
        } else {
            log_warn!("ignoring READY=1 from pid {sender:?}: not the watched service ({pid:?})");
        }
    }
}

/// Supervises until a shutdown signal (or an unhealthy watched service), then stops
/// everything and returns. `on_ready` runs once, when the watched service is ready.
pub(crate) fn run(cfg: &Config, on_ready: &mut dyn FnMut()) -> Result<Ended, SuperviseError> {
    for s in &cfg.services {
        if s.argv.is_empty() {
            return Err(SuperviseError::EmptyCommand(s.name.clone()));
        }
    }
    let set = signal_set();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(SuperviseError::Signals)?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(SuperviseError::Signals)?;
    let mut watch = match &cfg.readiness {
        Some(r) => Some(Watch {
            socket: bind_notify(&r.socket)?,
            deadline: Instant::now() + r.timeout,
            cfg: r.clone(),
            deaths: 0,
            settled: false,
            ready: false,
        }),
        None => None,
    };
    let mut slots: Vec<Slot> = Vec::new();
    for (i, s) in cfg.services.iter().enumerate() {
        let mut failures = 0;
        let state = start(cfg, s, notify_for(&watch, i), &mut failures);
        slots.push(Slot { state, failures });
    }
    loop {
        let now = Instant::now();
        let mut wake: Option<Instant> = slots
            .iter()
            .filter_map(|s| match s.state {
                State::Waiting { until } => Some(until),
                State::Running { .. } => None,
            })
            .min();
        if let Some(w) = &watch
            && !w.settled
        {
            wake = Some(wake.map_or(w.deadline, |x| x.min(w.deadline)));
        }
        let timeout = match wake {
            None => PollTimeout::NONE,
            Some(t) => {
                PollTimeout::try_from(t.saturating_duration_since(now)).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(w) = &watch {
            fds.push(PollFd::new(w.socket.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(SuperviseError::Poll(e)),
        }
        drop(fds);
        while let Ok(Some(sig)) = sfd.read_signal() {
            let shutdown = match Signal::try_from(sig.ssi_signo as i32) {
                Ok(Signal::SIGTERM | Signal::SIGPWR) => Some(Shutdown::PowerOff),
                Ok(Signal::SIGINT) => Some(Shutdown::Reboot),
                _ => None,
            };
            if let Some(kind) = shutdown {
                log_info!("shutdown requested ({kind:?}): stopping services");
                stop(cfg, &slots, &sfd);
                return Ok(Ended::Requested(kind));
            }
        }
        // Readiness messages before deaths: a service that said READY=1 and then died is
        // still the one that said it.
        if let Some(w) = &mut watch {
            let pid = match slots.get(w.cfg.service).map(|s| s.state) {
                Some(State::Running { pid, .. }) => Some(pid),
                _ => None,
            };
            if read_notifications(&w.socket, pid) && !w.ready {
                w.ready = true;
                w.settled = true;
                let name = &cfg.services[w.cfg.service].name;
                log_info!("{name} is ready");
                on_ready();
            }
        }
        let exited = reap(&running(&slots));
        for (i, slot) in slots.iter_mut().enumerate() {
            let State::Running { pid, since } = slot.state else {
                continue;
            };
            if !exited.contains(&pid) {
                continue;
            }
            let name = &cfg.services[i].name;
            let ran = since.elapsed();
            if ran >= cfg.backoff.reset_after {
                slot.failures = 0;
            }
            slot.failures = slot.failures.saturating_add(1);
            let delay = cfg.backoff.delay(slot.failures);
            log_warn!(
                "{name} died after {} ms; restart #{} in {} ms",
                ran.as_millis(),
                slot.failures,
                delay.as_millis()
            );
            slot.state = State::Waiting {
                until: Instant::now() + delay,
            };
            if let Some(w) = &mut watch
                && w.cfg.service == i
                && !w.ready
            {
                w.deaths = w.deaths.saturating_add(1);
            }
        }
        if let Some(w) = &mut watch
            && !w.settled
        {
            let name = &cfg.services[w.cfg.service].name;
            let why = if w.deaths >= w.cfg.max_deaths {
                Some(format!(
                    "{name} died {} times without becoming ready",
                    w.deaths
                ))
            } else if Instant::now() >= w.deadline {
                Some(format!(
                    "{name} not ready {} s after start",
                    w.cfg.timeout.as_secs()
                ))
            } else {
                None
            };
            if let Some(why) = why {
                w.settled = true;
                match w.cfg.on_unhealthy {
                    Unhealthy::Return => {
                        log_error!("{why}: giving up on this boot");
                        stop(cfg, &slots, &sfd);
                        return Ok(Ended::Unhealthy);
                    }
                    Unhealthy::Log => log_error!("{why}; still restarting it"),
                }
            }
        }
        for (i, slot) in slots.iter_mut().enumerate() {
            if let State::Waiting { until } = slot.state
                && Instant::now() >= until
            {
                slot.state = start(
                    cfg,
                    &cfg.services[i],
                    notify_for(&watch, i),
                    &mut slot.failures,
                );
            }
        }
    }
}

fn notify_for(watch: &Option<Watch>, service: usize) -> Option<PathBuf> {
    watch
        .as_ref()
        .filter(|w| w.cfg.service == service)
        .map(|w| w.cfg.socket.clone())
}

/// Starts a service; a spawn failure counts as a death (retried with back-off).
fn start(cfg: &Config, s: &Service, notify: Option<PathBuf>, failures: &mut u32) -> State {
    let Some((program, args)) = s.argv.split_first() else {
        return State::Waiting {
            until: Instant::now() + cfg.backoff.max,
        };
    };
    let mut command = crate::cmd::command(program);
    command.args(args);
    // Its own process group: SIGKILL at shutdown reaches its helpers too.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    match notify {
        Some(path) => command.env("NOTIFY_SOCKET", path),
        None => command.env_remove("NOTIFY_SOCKET"),
    };
    match command.spawn() {
        Ok(child) => {
            let raw = i32::try_from(child.id()).unwrap_or(i32::MAX);
            log_info!(
                "started {} ({}, pid {raw})",
                s.name,
                program.to_string_lossy()
            );
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
                "starting {} ({}): {e}; retry in {} ms",
                s.name,
                program.to_string_lossy(),
                delay.as_millis()
            );
            State::Waiting {
                until: Instant::now() + delay,
            }
        }
    }
}

/// Reaps every exited child; returns the pids among `services` (others are orphans re-parented
/// to us and only logged).
fn reap(services: &[Pid]) -> Vec<Pid> {
    let mut out = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return out,
            Ok(status) => {
                let Some(pid) = status.pid() else { continue };
                if services.contains(&pid) {
                    log_info!("service exited: {status:?}");
                    out.push(pid);
                } else {
                    log_info!("reaped orphan: {status:?}");
                }
            }
        }
    }
}

fn running(slots: &[Slot]) -> Vec<Pid> {
    slots
        .iter()
        .filter_map(|s| match s.state {
            State::Running { pid, .. } => Some(pid),
            State::Waiting { .. } => None,
        })
        .collect()
}

/// The real [`Procs`]: `kill(2)`, `waitpid(2)`, and the signalfd to sleep on.
struct System<'a> {
    sfd: &'a SignalFd,
    /// The services' pids, to tell their exits from orphans' in the log.
    services: Vec<Pid>,
}

impl Procs for System<'_> {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn send(&mut self, target: Target, signal: Signal) {
        match target {
            Target::Service(pid) => {
                // The group first: once the leader is reaped its pgid may be gone.
                if signal == Signal::SIGKILL
                    && nix::unistd::getpgid(Some(pid)).is_ok_and(|g| g == pid)
                {
                    let _ = nix::sys::signal::killpg(pid, signal);
                }
                let _ = kill(pid, signal);
            }
            Target::Rest => {
                let _ = kill(Pid::from_raw(-1), signal);
            }
        }
    }

    fn gone(&mut self, target: Target) -> bool {
        match target {
            Target::Service(pid) => {
                reap(&self.services);
                kill(pid, None).is_err()
            }
            Target::Rest => {
                reap(&self.services);
                matches!(
                    waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)),
                    Err(nix::Error::ECHILD)
                )
            }
        }
    }

    fn wait(&mut self, until: Instant) {
        let left = until.saturating_duration_since(Instant::now());
        // SIGCHLD wakes us; the cap covers exits of processes that are not our children.
        let step = left.min(Duration::from_millis(100));
        let mut fds = [PollFd::new(self.sfd.as_fd(), PollFlags::POLLIN)];
        let _ = poll(
            &mut fds,
            PollTimeout::try_from(step).unwrap_or(PollTimeout::ZERO),
        );
        // SIGCHLD is handled by `gone`; another shutdown signal changes nothing now.
        while let Ok(Some(_)) = self.sfd.read_signal() {}
    }
}

/// Stops the services in reverse start order, each by its policy, then (as PID 1) every
/// other process, within `cfg.shutdown_bound`.
fn stop(cfg: &Config, slots: &[Slot], sfd: &SignalFd) {
    let mut jobs: Vec<Job> = Vec::new();
    for (i, slot) in slots.iter().enumerate().rev() {
        if let State::Running { pid, .. } = slot.state {
            let s = &cfg.services[i];
            jobs.push(Job {
                name: s.name.clone(),
                target: Target::Service(pid),
                policy: s.stop,
            });
        }
    }
    if let Some(policy) = cfg.rest {
        jobs.push(Job {
            name: "other processes".into(),
            target: Target::Rest,
            policy,
        });
    }
    let mut system = System {
        sfd,
        services: running(slots),
    };
    stop::stop_all(&jobs, cfg.shutdown_bound, &mut system);
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
