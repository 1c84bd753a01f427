//! The supervisor: one state machine per daemon, driven by events and a clock.
//!
//! # Design
//! [`Supervisor`] is pure: it never reads the clock or touches processes itself.
//! Every input is an explicit call with the current time ([`Now`]) — a process
//! exited ([`Supervisor::on_exit`]), a probe finished ([`Supervisor::on_probe`]), a
//! request (`start`, `stop`, `restart`, `shutdown`), or time passed
//! ([`Supervisor::tick`]) — and every effect goes through the narrow [`Processes`]
//! trait (spawn, signal a process group, launch a probe, note a lifecycle line). The
//! runtime loop (`runtime.rs`) owns the real clock and the real [`Processes`]; the
//! unit tests drive the same code with a fake clock and a fake.
//!
//! Per daemon: `stopped` → `waiting` (for the daemons it `requires` to be ready) →
//! `starting` (spawned; readiness probe pending) → `running` (ready; health checks
//! run) → on exit `backingOff` → `waiting` … or `crashLoop` after too many failures
//! ([`policy`]). Stopping sends the daemon's stop signal to its process group, then
//! `SIGKILL` after its stop timeout; a daemon is only signalled once every daemon that
//! requires it is down, so the stop order is the reverse of the start order. When a
//! daemon's process ends, the rest of its process group is killed.
//!
//! # Invariants
//! - Each process gets a fresh `generation`; probe results of an older generation
//!   are ignored, so a slow probe cannot mark a restarted daemon healthy.
//! - A daemon in `starting`, `running` or `stopping` has exactly one live process
//!   group whose leader is `pid`.
//!
//! # Limitations
//! A daemon whose required daemon dies keeps running (StartOS does the same); it is
//! not restarted with it.
//!
//! # Rejected alternatives
//! One thread per daemon owning its own loop: the `requires` ordering and the reverse
//! stop order need a global view, and timing-dependent threads cannot be unit-tested
//! transition by transition.

pub(crate) mod policy;
pub(crate) mod status;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

use std::fmt;
use std::time::{Duration, Instant};

use hearth_s9pk::spec::{DaemonSpec, Probe, ServiceSpec, SpecError, StopSignal};

use self::policy::{FailureHistory, RestartPolicy, Verdict};
use self::status::{DaemonStatus, Desired, HealthResult, ServiceStatus};

/// The current time, monotonic for timers and wall-clock for reports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    /// Monotonic time.
    pub(crate) mono: Instant,
    /// Unix time in milliseconds.
    pub(crate) wall_ms: u64,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitInfo {
    /// `exit(code)`.
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitInfo::Code(c) => write!(f, "exit status {c}"),
            ExitInfo::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// Which probe of a daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeKind {
    /// The readiness probe.
    Ready,
    /// Health check number `n` of the daemon.
    Health(usize),
}

/// A probe to run asynchronously; its outcome comes back through `on_probe`.
#[derive(Debug, Clone)]
pub(crate) struct ProbeRequest {
    /// Daemon index (start order).
    pub(crate) daemon: usize,
    /// Process generation the probe is for.
    pub(crate) generation: u64,
    /// Which probe.
    pub(crate) kind: ProbeKind,
    /// What to do.
    pub(crate) probe: Probe,
    /// Longest time the probe may take.
    pub(crate) timeout: Duration,
}

/// A finished probe.
#[derive(Debug, Clone)]
pub(crate) struct ProbeOutcome {
    /// Daemon index (start order).
    pub(crate) daemon: usize,
    /// Process generation the probe was for.
    pub(crate) generation: u64,
    /// Which probe.
    pub(crate) kind: ProbeKind,
    /// `Err(message)` on failure.
    pub(crate) result: Result<(), String>,
}

/// The effects the supervisor needs; the runtime implements them for real.
pub(crate) trait Processes {
    /// Starts daemon `index` in its own process group; returns its pid.
    fn spawn(&mut self, index: usize, spec: &DaemonSpec) -> Result<i32, String>;
    /// Sends `signal` to the process group led by `pid`.
    fn signal_group(&mut self, pid: i32, signal: StopSignal);
    /// Runs a probe in the background.
    fn probe(&mut self, request: ProbeRequest);
    /// Records a lifecycle line in the daemon's log.
    fn note(&mut self, daemon: &str, message: &str);
}

/// The state of one daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Not meant to run.
    Stopped,
    /// Meant to run; waits for the daemons it requires to be ready.
    Waiting,
    /// Spawned; waits for its readiness probe until `ready_deadline`.
    Starting { pid: i32, ready_deadline: Instant },
    /// Ready; health checks run.
    Running { pid: i32 },
    /// Stop signal sent; `SIGKILL` at `kill_at` (None: already sent).
    Stopping {
        pid: i32,
        kill_at: Option<Instant>,
        then_restart: bool,
    },
    /// Failed; restarts at `until`.
    BackingOff { until: Instant },
    /// Failed too often; waits for an explicit start.
    CrashLoop,
}

impl State {
    fn pid(self) -> Option<i32> {
        match self {
            State::Starting { pid, .. } | State::Running { pid } | State::Stopping { pid, .. } => {
                Some(pid)
            }
            _ => None,
        }
    }

    /// No process exists.
    fn is_down(self) -> bool {
        self.pid().is_none()
    }

    fn name(self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Waiting => "waiting",
            State::Starting { .. } => "starting",
            State::Running { .. } => "running",
            State::Stopping { .. } => "stopping",
            State::BackingOff { .. } => "backingOff",
            State::CrashLoop => "crashLoop",
        }
    }
}

#[derive(Debug, Clone)]
struct Check {
    next_due: Option<Instant>,
    in_flight: bool,
    result: HealthResult,
}

impl Check {
    fn idle() -> Self {
        Self {
            next_due: None,
            in_flight: false,
            result: HealthResult::Starting,
        }
    }

    fn due(&self, now: Instant) -> bool {
        !self.in_flight && self.next_due.is_some_and(|t| t <= now)
    }
}

#[derive(Debug)]
struct Daemon {
    spec: DaemonSpec,
    requires: Vec<usize>,
    dependents: Vec<usize>,
    state: State,
    generation: u64,
    started: Option<Now>,
    restarts: u32,
    history: FailureHistory,
    last_exit: Option<ExitInfo>,
    last_error: Option<String>,
    ready_probe: Check,
    checks: Vec<Check>,
}

/// All daemons of one service.
#[derive(Debug)]
pub(crate) struct Supervisor {
    daemons: Vec<Daemon>,
    policy: RestartPolicy,
    desired: Desired,
    restart_pending: bool,
    shutting_down: bool,
    hurry: bool,
}

/// A request the supervisor refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RequestError {
    /// `start`/`restart` after `shutdown`.
    #[error("the container is shutting down")]
    ShuttingDown,
}

impl Supervisor {
    /// Builds the daemons in start order, all `stopped`.
    pub(crate) fn new(spec: &ServiceSpec, policy: RestartPolicy) -> Result<Self, SpecError> {
        let order: Vec<DaemonSpec> = spec.start_order()?.into_iter().cloned().collect();
        let index_of = |id: &str| order.iter().position(|d| d.id == id);
        let mut daemons: Vec<Daemon> = order
            .iter()
            .map(|d| Daemon {
                requires: d.requires.iter().filter_map(|r| index_of(r)).collect(),
                dependents: Vec::new(),
                state: State::Stopped,
                generation: 0,
                started: None,
                restarts: 0,
                history: FailureHistory::default(),
                last_exit: None,
                last_error: None,
                ready_probe: Check::idle(),
                checks: d.health_checks.iter().map(|_| Check::idle()).collect(),
                spec: d.clone(),
            })
            .collect();
        for i in 0..daemons.len() {
            for r in daemons[i].requires.clone() {
                daemons[r].dependents.push(i);
            }
        }
        Ok(Self {
            daemons,
            policy,
            desired: Desired::Stopped,
            restart_pending: false,
            shutting_down: false,
            hurry: false,
        })
    }

    /// Daemon specs in start order.
    pub(crate) fn specs(&self) -> impl Iterator<Item = &DaemonSpec> {
        self.daemons.iter().map(|d| &d.spec)
    }

    /// The state of daemon `index` (start order).
    #[cfg(test)]
    pub(crate) fn state(&self, index: usize) -> State {
        self.daemons[index].state
    }

    /// Desired state.
    #[cfg(test)]
    pub(crate) fn desired(&self) -> Desired {
        self.desired
    }

    /// Wants every daemon running; a crash loop is forgotten.
    pub(crate) fn start(&mut self) -> Result<(), RequestError> {
        if self.shutting_down {
            return Err(RequestError::ShuttingDown);
        }
        self.desired = Desired::Running;
        self.restart_pending = false;
        for d in &mut self.daemons {
            if matches!(d.state, State::Stopped | State::CrashLoop) {
                d.state = State::Waiting;
                d.history.reset();
                d.restarts = 0;
            }
        }
        Ok(())
    }

    /// Wants every daemon stopped.
    pub(crate) fn stop(&mut self) {
        self.desired = Desired::Stopped;
        self.restart_pending = false;
    }

    /// Stops every daemon, then starts them again.
    pub(crate) fn restart(&mut self) -> Result<(), RequestError> {
        if self.shutting_down {
            return Err(RequestError::ShuttingDown);
        }
        self.desired = Desired::Stopped;
        self.restart_pending = true;
        Ok(())
    }

    /// Stops every daemon for good; [`Supervisor::finished`] turns true when all are down.
    pub(crate) fn shutdown(&mut self) {
        self.stop();
        self.shutting_down = true;
    }

    /// A second shutdown request: no more waiting for stop timeouts or dependents;
    /// every remaining process group gets `SIGKILL` at the next tick.
    pub(crate) fn hurry(&mut self) {
        self.shutdown();
        self.hurry = true;
    }

    /// Shutdown requested.
    pub(crate) fn shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Shutdown requested and every daemon is down.
    pub(crate) fn finished(&self) -> bool {
        self.shutting_down && self.all_down()
    }

    fn all_down(&self) -> bool {
        self.daemons.iter().all(|d| d.state.is_down())
    }

    /// A process exited. Returns false if it was none of the daemons (an orphan,
    /// a probe or an action).
    pub(crate) fn on_exit(
        &mut self,
        pid: i32,
        exit: ExitInfo,
        now: Now,
        procs: &mut dyn Processes,
    ) -> bool {
        let Some(i) = self.daemons.iter().position(|d| d.state.pid() == Some(pid)) else {
            return false;
        };
        let d = &mut self.daemons[i];
        d.last_exit = Some(exit);
        procs.note(&d.spec.id, &format!("process {pid} ended: {exit}"));
        // Whatever the daemon left behind in its process group (a wrapper's children)
        // would hold its ports and pipes across the restart.
        procs.signal_group(pid, StopSignal::Kill);
        match d.state {
            State::Stopping {
                then_restart: false,
                ..
            } => d.state = State::Stopped,
            State::Stopping {
                then_restart: true, ..
            } => self.fail(i, now, procs),
            _ => {
                d.last_error = Some(format!("exited unexpectedly ({exit})"));
                self.fail(i, now, procs);
            }
        }
        true
    }

    /// Records a failure of daemon `i` and decides between back-off and crash loop.
    fn fail(&mut self, i: usize, now: Now, procs: &mut dyn Processes) {
        let policy = self.policy;
        let desired = self.desired;
        let d = &mut self.daemons[i];
        if desired == Desired::Stopped {
            d.state = State::Stopped;
            return;
        }
        let ran_for = d
            .started
            .filter(|_| d.generation > 0)
            .map(|s| now.mono.saturating_duration_since(s.mono));
        match d.history.record(&policy, now.mono, ran_for) {
            Verdict::RetryAfter(delay) => {
                d.state = State::BackingOff {
                    until: now.mono + delay,
                };
                procs.note(&d.spec.id, &format!("restarting in {delay:?}"));
            }
            Verdict::CrashLoop => {
                let last = d.last_error.clone().unwrap_or_default();
                d.last_error = Some(format!(
                    "crash loop: {} failures within {:?}, not restarting; last: {last}",
                    d.history.recent(),
                    policy.crash_window
                ));
                d.state = State::CrashLoop;
                procs.note(&d.spec.id, "crash loop: giving up until the next start");
            }
        }
    }

    /// A probe finished.
    pub(crate) fn on_probe(&mut self, outcome: ProbeOutcome, now: Now) {
        let Some(d) = self.daemons.get_mut(outcome.daemon) else {
            return;
        };
        if outcome.generation != d.generation {
            return;
        }
        match (outcome.kind, d.state) {
            (ProbeKind::Ready, State::Starting { pid, .. }) => {
                d.ready_probe.in_flight = false;
                match outcome.result {
                    Ok(()) => Self::become_ready(d, pid, now),
                    Err(message) => {
                        let interval = d.spec.ready.as_ref().map(|r| r.interval.get());
                        d.ready_probe.next_due = Some(now.mono + interval.unwrap_or_default());
                        d.ready_probe.result = HealthResult::Failure { message };
                    }
                }
            }
            (ProbeKind::Health(c), State::Running { .. }) => {
                let (Some(check), Some(spec)) = (d.checks.get_mut(c), d.spec.health_checks.get(c))
                else {
                    return;
                };
                check.in_flight = false;
                check.next_due = Some(now.mono + spec.interval.get());
                let in_grace = d
                    .started
                    .is_some_and(|s| now.mono < s.mono + spec.grace_period.get());
                check.result = match outcome.result {
                    Ok(()) => HealthResult::Success,
                    Err(_) if in_grace => HealthResult::Starting,
                    Err(message) => HealthResult::Failure { message },
                };
            }
            _ => {}
        }
    }

    fn become_ready(d: &mut Daemon, pid: i32, now: Now) {
        d.state = State::Running { pid };
        d.ready_probe = Check::idle();
        for c in &mut d.checks {
            *c = Check {
                next_due: Some(now.mono),
                ..Check::idle()
            };
        }
    }

    /// Acts on everything that is due at `now`.
    pub(crate) fn tick(&mut self, now: Now, procs: &mut dyn Processes) {
        for i in 0..self.daemons.len() {
            self.advance(i, now, procs);
            self.launch_probes(i, now, procs);
        }
        if self.desired == Desired::Stopped {
            for i in (0..self.daemons.len()).rev() {
                self.stop_one(i, now, procs);
            }
            if self.restart_pending && self.all_down() {
                // Cannot fail: restart_pending is only set while not shutting down.
                let _ = self.start();
                for i in 0..self.daemons.len() {
                    self.advance(i, now, procs);
                }
            }
        }
    }

    fn advance(&mut self, i: usize, now: Now, procs: &mut dyn Processes) {
        let running = self.desired == Desired::Running;
        match self.daemons[i].state {
            State::BackingOff { until } if running && until <= now.mono => {
                self.daemons[i].restarts = self.daemons[i].restarts.saturating_add(1);
                self.daemons[i].state = State::Waiting;
                self.advance(i, now, procs);
            }
            // A `start` that arrived while the daemon was still stopping.
            State::Stopped if running => {
                self.daemons[i].state = State::Waiting;
                self.advance(i, now, procs);
            }
            State::Waiting if running && self.requirements_ready(i) => self.spawn(i, now, procs),
            State::Starting {
                pid,
                ready_deadline,
            } if ready_deadline <= now.mono => {
                let grace = self.daemons[i]
                    .spec
                    .ready
                    .as_ref()
                    .map(|r| r.grace_period.get());
                self.daemons[i].last_error = Some(format!(
                    "not ready within its grace period ({})",
                    grace.map(|g| format!("{g:?}")).unwrap_or_default()
                ));
                self.begin_stop(i, pid, now, true, procs);
            }
            State::Stopping {
                pid,
                kill_at: Some(t),
                then_restart,
            } if t <= now.mono => {
                let d = &mut self.daemons[i];
                procs.signal_group(pid, StopSignal::Kill);
                procs.note(&d.spec.id, "stop timeout passed: sent SIGKILL");
                d.state = State::Stopping {
                    pid,
                    kill_at: None,
                    then_restart,
                };
            }
            _ => {}
        }
    }

    fn requirements_ready(&self, i: usize) -> bool {
        self.daemons[i]
            .requires
            .iter()
            .all(|&r| matches!(self.daemons[r].state, State::Running { .. }))
    }

    fn spawn(&mut self, i: usize, now: Now, procs: &mut dyn Processes) {
        let d = &mut self.daemons[i];
        d.generation += 1;
        d.started = Some(now);
        d.ready_probe = Check::idle();
        d.checks.iter_mut().for_each(|c| *c = Check::idle());
        match procs.spawn(i, &d.spec) {
            Ok(pid) => {
                procs.note(&d.spec.id, &format!("started process {pid}"));
                match &d.spec.ready {
                    Some(ready) => {
                        d.ready_probe.next_due = Some(now.mono + ready.interval.get());
                        d.state = State::Starting {
                            pid,
                            ready_deadline: now.mono + ready.grace_period.get(),
                        };
                    }
                    None => Self::become_ready(d, pid, now),
                }
            }
            Err(message) => {
                procs.note(&d.spec.id, &message);
                d.last_error = Some(message);
                d.last_exit = None;
                self.fail(i, now, procs);
            }
        }
    }

    fn launch_probes(&mut self, i: usize, now: Now, procs: &mut dyn Processes) {
        let d = &mut self.daemons[i];
        let generation = d.generation;
        match d.state {
            State::Starting { .. } => {
                if let Some(ready) = d
                    .spec
                    .ready
                    .as_ref()
                    .filter(|_| d.ready_probe.due(now.mono))
                {
                    d.ready_probe.in_flight = true;
                    procs.probe(ProbeRequest {
                        daemon: i,
                        generation,
                        kind: ProbeKind::Ready,
                        probe: ready.probe.clone(),
                        timeout: ready.timeout.get(),
                    });
                }
            }
            State::Running { .. } => {
                for (c, (check, spec)) in d.checks.iter_mut().zip(&d.spec.health_checks).enumerate()
                {
                    if check.due(now.mono) {
                        check.in_flight = true;
                        procs.probe(ProbeRequest {
                            daemon: i,
                            generation,
                            kind: ProbeKind::Health(c),
                            probe: spec.probe.clone(),
                            timeout: spec.timeout.get(),
                        });
                    }
                }
            }
            _ => {}
        }
    }

    fn stop_one(&mut self, i: usize, now: Now, procs: &mut dyn Processes) {
        match self.daemons[i].state {
            State::Waiting | State::BackingOff { .. } => self.daemons[i].state = State::Stopped,
            State::Starting { pid, .. } | State::Running { pid } if self.hurry => {
                procs.signal_group(pid, StopSignal::Kill);
                procs.note(&self.daemons[i].spec.id, "shutdown hurried: sent SIGKILL");
                self.daemons[i].state = State::Stopping {
                    pid,
                    kill_at: None,
                    then_restart: false,
                };
            }
            State::Stopping {
                pid,
                kill_at: Some(_),
                then_restart,
            } if self.hurry => {
                procs.signal_group(pid, StopSignal::Kill);
                procs.note(&self.daemons[i].spec.id, "shutdown hurried: sent SIGKILL");
                self.daemons[i].state = State::Stopping {
                    pid,
                    kill_at: None,
                    then_restart,
                };
            }
            State::Starting { pid, .. } | State::Running { pid } => {
                let dependents_down = self.daemons[i]
                    .dependents
                    .iter()
                    .all(|&j| self.daemons[j].state.is_down());
                if dependents_down {
                    self.begin_stop(i, pid, now, false, procs);
                }
            }
            _ => {}
        }
    }

    fn begin_stop(
        &mut self,
        i: usize,
        pid: i32,
        now: Now,
        then_restart: bool,
        procs: &mut dyn Processes,
    ) {
        let d = &mut self.daemons[i];
        let signal = d.spec.stop_signal;
        procs.signal_group(pid, signal);
        procs.note(&d.spec.id, &format!("sent {}", signal_name(signal)));
        let kill_at = (signal != StopSignal::Kill).then(|| now.mono + d.spec.stop_timeout.get());
        d.state = State::Stopping {
            pid,
            kill_at,
            then_restart,
        };
    }

    /// The earliest time at which [`Supervisor::tick`] has something to do.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for d in &self.daemons {
            match d.state {
                State::BackingOff { until } => consider(Some(until)),
                State::Starting { ready_deadline, .. } => {
                    consider(Some(ready_deadline));
                    consider(d.ready_probe.next_due.filter(|_| !d.ready_probe.in_flight));
                }
                State::Running { .. } => {
                    for c in &d.checks {
                        consider(c.next_due.filter(|_| !c.in_flight));
                    }
                }
                State::Stopping { kill_at, .. } => consider(kill_at),
                _ => {}
            }
        }
        next
    }

    /// The observed status.
    pub(crate) fn status(&self, now: Now) -> ServiceStatus {
        let daemons: Vec<DaemonStatus> = self
            .daemons
            .iter()
            .map(|d| status::daemon_status(d, now))
            .collect();
        ServiceStatus {
            desired: self.desired,
            all_ready: daemons.iter().all(|d| d.state == "running"),
            all_down: self.all_down(),
            daemons,
        }
    }
}

/// The conventional name of a stop signal.
pub(crate) fn signal_name(signal: StopSignal) -> &'static str {
    match signal {
        StopSignal::Term => "SIGTERM",
        StopSignal::Int => "SIGINT",
        StopSignal::Quit => "SIGQUIT",
        StopSignal::Hup => "SIGHUP",
        StopSignal::Usr1 => "SIGUSR1",
        StopSignal::Usr2 => "SIGUSR2",
        StopSignal::Kill => "SIGKILL",
    }
}
