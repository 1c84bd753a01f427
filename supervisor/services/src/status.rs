//! The service lifecycle state machine: desired state (set by RPCs) and observed status
//! (written by the reconciler), and the pure decisions between them.
//!
//! # Design
//! [`plan`] looks at the recorded status and what the runtime reports and returns the
//! status to persist *before* acting plus the one action to take (start, stop, wait or
//! nothing); [`after_start`] and [`after_stop`] give the status to persist after the
//! action. No I/O here, so every transition has a unit test without a runtime.
//!
//! # Invariants
//! * Only RPCs change `desired`, with one exception: a successful stop while
//!   `restarting` turns it into `running` (the restart is half done).
//! * Failed starts back off exponentially (1 s, 2 s, 4 s … at most 60 s) via `retryAt`.
//! * `lastError` is history, not health: it stays after a successful restart (with
//!   `restartCount`) and is cleared only when the user asks again (start/restart).
//! * A container that was recorded `running` and is found stopped while desired
//!   `running` died: `restartCount` grows, `lastError` says so, and it is started again
//!   at once.
//! * Dependencies: a container is started only when every dependency it must wait for
//!   (required, kind `running`) runs and is healthy. Until then the state is `waiting`
//!   and `waitingFor` lists those dependency ids (sorted); nothing else is done (the
//!   supervisor wakes waiting packages on every package change). A dependent that
//!   runs while one of those dependencies is *down* (stopped, died, gone, a check
//!   failing: `deps::down`) is stopped, `waitingFor` naming them, desired unchanged;
//!   it then waits like any other and starts by itself once they are ready again.
//!   (StartOS only flags such a dependent; an appliance at home should rather not leave
//!   a service running against a database that is gone, and bring it back on its own.)
//! * What a container's init reported (`reported`: health, per-daemon state) belongs
//!   to one run of one container: every transition to a state other than `running`
//!   (starting, stopping, stopped, waiting, backing off, found dead) drops it, so a
//!   dependency is never judged healthy by results of a container that is gone or
//!   was started again since ([`forget_reports`]). The supervisor drops them for every
//!   package when hearthd starts, too (they may be from before the restart).
//!
//! # Rejected alternatives
//! Keeping the machine in memory only: after a hearthd restart the reconciler must know
//! whether a stopped container crashed or was never started; the record says so.

use serde::{Deserialize, Serialize};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Desired {
    /// Keep it running.
    Running,
    /// Keep it stopped.
    Stopped,
    /// Stop it, then keep it running.
    Restarting,
}

impl Desired {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Desired::Running => "running",
            Desired::Stopped => "stopped",
            Desired::Restarting => "restarting",
        }
    }
}

/// The recorded run state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum RunState {
    /// Not running.
    Stopped,
    /// A start is under way.
    Starting,
    /// Running (started or adopted).
    Running,
    /// A stop is under way (or failed and will be retried).
    Stopping,
    /// The last start failed; the next one waits until `retryAt`.
    BackingOff,
    /// Meant to run, not started: dependencies (`waitingFor`) do not run healthy yet.
    Waiting,
}

impl RunState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunState::Stopped => "stopped",
            RunState::Starting => "starting",
            RunState::Running => "running",
            RunState::Stopping => "stopping",
            RunState::BackingOff => "backingOff",
            RunState::Waiting => "waiting",
        }
    }
}

/// `/public/packageData/<id>/statusInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatusInfo {
    /// What the user asked for.
    pub(crate) desired: Desired,
    /// What the reconciler observed and did.
    #[serde(flatten)]
    pub(crate) observed: Observed,
}

impl StatusInfo {
    pub(crate) fn stopped() -> StatusInfo {
        StatusInfo {
            desired: Desired::Stopped,
            observed: Observed::default(),
        }
    }
}

/// The reconciler-owned part of [`StatusInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Observed {
    /// Recorded run state.
    pub(crate) state: RunState,
    /// The last failure starting, stopping or running it.
    pub(crate) last_error: Option<String>,
    /// How many times it died while meant to run and was restarted.
    pub(crate) restart_count: u64,
    /// When the current run started (ms since the epoch), if running.
    pub(crate) started_at: Option<u64>,
    /// Failed starts in a row.
    pub(crate) attempts: u32,
    /// No start before this time (ms since the epoch).
    pub(crate) retry_at: Option<u64>,
    /// While `waiting`: the dependencies it waits for (not running, or not healthy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) waiting_for: Vec<String>,
    /// What the container's init reported (`daemons`, `health`, `crashLoop`, …; see
    /// `container_status.rs`): kept as is through every reconcile step, written only
    /// by the status monitor.
    #[serde(flatten)]
    pub(crate) reported: serde_json::Map<String, serde_json::Value>,
}

impl Default for Observed {
    fn default() -> Observed {
        Observed {
            state: RunState::Stopped,
            last_error: None,
            restart_count: 0,
            started_at: None,
            attempts: 0,
            retry_at: None,
            waiting_for: Vec::new(),
            reported: serde_json::Map::new(),
        }
    }
}

/// What the runtime reports about the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not created (or destroyed).
    Absent,
    /// Created, not running.
    Stopped,
    /// Starting, stopping or frozen: wait for it to settle.
    Transient,
    /// Init runs.
    Running,
}

/// The one thing to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing until something changes.
    None,
    /// Create (idempotent) and start the container.
    Start,
    /// Stop the container.
    Stop,
    /// Nothing before this time (ms since the epoch).
    WaitUntil(u64),
}

/// What the dependencies it must wait for say (`deps.rs`; sorted ids).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DepState {
    /// Not running healthy: a container that is not running waits for these.
    pub(crate) unready: Vec<String>,
    /// Down (a subset of `unready`): a running container is stopped for these.
    pub(crate) down: Vec<String>,
}

/// A decision: what to persist first (if it changed), then what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The observed status to persist before acting, if different.
    pub(crate) record: Option<Observed>,
    /// The action.
    pub(crate) action: Action,
}

const BACKOFF_BASE_MS: u64 = 1_000;
const BACKOFF_MAX_MS: u64 = 60_000;
pub(crate) const DIED: &str = "the container stopped unexpectedly; restarted";

/// Delay before the next start after `attempts` failures in a row.
pub(crate) fn backoff_ms(attempts: u32) -> u64 {
    let shift = attempts.saturating_sub(1).min(16);
    (BACKOFF_BASE_MS << shift).min(BACKOFF_MAX_MS)
}

/// Drops what the container reported unless `o` is recorded `running` (see the module
/// invariants): those results were taken from a run that is over or not yet begun.
pub(crate) fn forget_reports(o: &mut Observed) {
    if o.state != RunState::Running {
        o.reported.clear();
    }
}

fn changed(old: &Observed, new: Observed) -> Option<Observed> {
    (*old != new).then_some(new)
}

/// Decides the next step from the record, what the runtime reports, and what the
/// dependencies it must wait for say.
pub(crate) fn plan(status: &StatusInfo, seen: Seen, deps: &DepState, now_ms: u64) -> Plan {
    let unready = &deps.unready;
    let old = &status.observed;
    let mut new = old.clone();
    if seen != Seen::Transient {
        new.waiting_for.clear();
    }
    let action = match (status.desired, seen) {
        (_, Seen::Transient) => Action::None,
        (Desired::Restarting, Seen::Running) | (Desired::Stopped, Seen::Running) => {
            new.state = RunState::Stopping;
            Action::Stop
        }
        (Desired::Running, Seen::Running) if !deps.down.is_empty() => {
            // Its dependency went away: stop it, then wait for the dependency.
            new.state = RunState::Stopping;
            new.waiting_for = deps.down.clone();
            Action::Stop
        }
        (Desired::Running, Seen::Running) => {
            if old.state != RunState::Running {
                // Started by us earlier or adopted after a hearthd restart.
                new.state = RunState::Running;
                new.started_at = old.started_at.or(Some(now_ms));
                new.attempts = 0;
                new.retry_at = None;
            }
            Action::None
        }
        (Desired::Running | Desired::Restarting, Seen::Stopped | Seen::Absent) => {
            let died = old.state == RunState::Running && status.desired == Desired::Running;
            if died {
                new.restart_count += 1;
                new.last_error = Some(DIED.into());
                new.started_at = None;
            }
            if let Some(at) = old.retry_at.filter(|at| *at > now_ms && !died) {
                Action::WaitUntil(at)
            } else if !unready.is_empty() {
                new.state = RunState::Waiting;
                new.waiting_for = unready.to_vec();
                Action::None
            } else {
                new.state = RunState::Starting;
                new.retry_at = None;
                Action::Start
            }
        }
        (Desired::Stopped, Seen::Stopped | Seen::Absent) => {
            new.state = RunState::Stopped;
            new.started_at = None;
            new.attempts = 0;
            new.retry_at = None;
            Action::None
        }
    };
    forget_reports(&mut new);
    Plan {
        record: changed(old, new),
        action,
    }
}

/// The status after a start attempt (`Err` carries the message).
pub(crate) fn after_start(old: &Observed, result: Result<(), String>, now_ms: u64) -> Observed {
    let mut new = old.clone();
    match result {
        Ok(()) => {
            new.state = RunState::Running;
            new.waiting_for.clear();
            new.started_at = Some(now_ms);
            new.attempts = 0;
            new.retry_at = None;
        }
        Err(message) => {
            new.state = RunState::BackingOff;
            new.attempts = old.attempts.saturating_add(1);
            new.retry_at = Some(now_ms + backoff_ms(new.attempts));
            new.last_error = Some(message);
            new.started_at = None;
        }
    }
    forget_reports(&mut new);
    new
}

/// The status after a stop attempt, and whether a pending restart may now start.
pub(crate) fn after_stop(old: &Observed, result: Result<(), String>) -> Observed {
    let mut new = old.clone();
    match result {
        Ok(()) => {
            new.state = RunState::Stopped;
            new.started_at = None;
            new.attempts = 0;
            new.retry_at = None;
        }
        Err(message) => new.last_error = Some(message),
    }
    forget_reports(&mut new);
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(desired: Desired, state: RunState) -> StatusInfo {
        StatusInfo {
            desired,
            observed: Observed {
                state,
                ..Observed::default()
            },
        }
    }

    #[test]
    fn stopped_wanting_running_starts_after_recording_starting() {
        let p = plan(
            &status(Desired::Running, RunState::Stopped),
            Seen::Absent,
            READY,
            5,
        );
        assert_eq!(p.action, Action::Start);
        assert_eq!(p.record.unwrap().state, RunState::Starting);
    }

    #[test]
    fn successful_start_is_running_with_start_time() {
        let o = after_start(&Observed::default(), Ok(()), 42);
        assert_eq!(o.state, RunState::Running);
        assert_eq!(o.started_at, Some(42));
    }

    #[test]
    fn failed_start_backs_off_exponentially_and_waits() {
        let o1 = after_start(&Observed::default(), Err("boom".into()), 1_000);
        assert_eq!(o1.state, RunState::BackingOff);
        assert_eq!(o1.last_error.as_deref(), Some("boom"));
        assert_eq!(o1.retry_at, Some(2_000));
        let o2 = after_start(&o1, Err("boom".into()), 2_000);
        assert_eq!(o2.retry_at, Some(4_000));
        let s = StatusInfo {
            desired: Desired::Running,
            observed: o2,
        };
        assert_eq!(
            plan(&s, Seen::Stopped, READY, 3_999).action,
            Action::WaitUntil(4_000)
        );
        assert_eq!(plan(&s, Seen::Stopped, READY, 4_000).action, Action::Start);
        assert_eq!(backoff_ms(40), BACKOFF_MAX_MS);
    }

    #[test]
    fn running_that_died_is_counted_and_restarted_at_once() {
        let mut s = status(Desired::Running, RunState::Running);
        s.observed.retry_at = Some(u64::MAX);
        let p = plan(&s, Seen::Stopped, READY, 10);
        assert_eq!(p.action, Action::Start);
        let r = p.record.unwrap();
        assert_eq!(r.restart_count, 1);
        assert_eq!(r.last_error.as_deref(), Some(DIED));
    }

    #[test]
    fn running_found_running_is_adopted_without_action() {
        let p = plan(
            &status(Desired::Running, RunState::Stopped),
            Seen::Running,
            READY,
            7,
        );
        assert_eq!(p.action, Action::None);
        let r = p.record.unwrap();
        assert_eq!((r.state, r.started_at), (RunState::Running, Some(7)));
        let steady = plan(
            &status(Desired::Running, RunState::Running),
            Seen::Running,
            READY,
            8,
        );
        assert_eq!(
            steady,
            Plan {
                record: None,
                action: Action::None
            }
        );
    }

    #[test]
    fn stop_wanted_while_running_records_stopping_then_stops() {
        let p = plan(
            &status(Desired::Stopped, RunState::Running),
            Seen::Running,
            READY,
            1,
        );
        assert_eq!(p.action, Action::Stop);
        assert_eq!(p.record.unwrap().state, RunState::Stopping);
        let after = after_stop(&Observed::default(), Ok(()));
        assert_eq!(after.state, RunState::Stopped);
        let failed = after_stop(&Observed::default(), Err("stuck".into()));
        assert_eq!(failed.last_error.as_deref(), Some("stuck"));
    }

    #[test]
    fn stopped_and_wanting_stopped_settles_without_action() {
        let p = plan(
            &status(Desired::Stopped, RunState::BackingOff),
            Seen::Absent,
            READY,
            1,
        );
        assert_eq!(p.action, Action::None);
        assert_eq!(p.record.unwrap().state, RunState::Stopped);
    }

    #[test]
    fn restarting_stops_a_running_container_then_starts_a_stopped_one() {
        let p = plan(
            &status(Desired::Restarting, RunState::Running),
            Seen::Running,
            READY,
            1,
        );
        assert_eq!(p.action, Action::Stop);
        let p = plan(
            &status(Desired::Restarting, RunState::Stopped),
            Seen::Stopped,
            READY,
            1,
        );
        assert_eq!(p.action, Action::Start);
        assert_eq!(
            p.record.unwrap().restart_count,
            0,
            "a restart is not a crash"
        );
    }

    #[test]
    fn transient_container_is_left_alone() {
        let p = plan(
            &status(Desired::Stopped, RunState::Running),
            Seen::Transient,
            READY,
            1,
        );
        assert_eq!(
            p,
            Plan {
                record: None,
                action: Action::None
            }
        );
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    /// These dependencies are not ready (none down).
    fn unready(unready: &[&str]) -> DepState {
        DepState {
            unready: ids(unready),
            down: vec![],
        }
    }

    const READY: &DepState = &DepState {
        unready: vec![],
        down: vec![],
    };

    #[test]
    fn unready_dependencies_make_it_wait_without_starting() {
        let p = plan(
            &status(Desired::Running, RunState::Stopped),
            Seen::Absent,
            &unready(&["db"]),
            5,
        );
        assert_eq!(p.action, Action::None);
        let r = p.record.unwrap();
        assert_eq!(r.state, RunState::Waiting);
        assert_eq!(r.waiting_for, ["db"]);
        // Still waiting, same list: nothing to record, nothing to do.
        let s = StatusInfo {
            desired: Desired::Running,
            observed: r,
        };
        assert_eq!(
            plan(&s, Seen::Absent, &unready(&["db"]), 6),
            Plan {
                record: None,
                action: Action::None
            }
        );
    }

    #[test]
    fn waiting_starts_once_dependencies_are_ready_and_forgets_the_list() {
        let mut s = status(Desired::Running, RunState::Waiting);
        s.observed.waiting_for = ids(&["db", "web"]);
        let p = plan(&s, Seen::Absent, READY, 7);
        assert_eq!(p.action, Action::Start);
        let r = p.record.unwrap();
        assert_eq!(r.state, RunState::Starting);
        assert!(r.waiting_for.is_empty());
    }

    #[test]
    fn waiting_list_follows_what_is_still_unready() {
        let mut s = status(Desired::Running, RunState::Waiting);
        s.observed.waiting_for = ids(&["db", "web"]);
        let r = plan(&s, Seen::Absent, &unready(&["web"]), 7)
            .record
            .unwrap();
        assert_eq!((r.state, r.waiting_for), (RunState::Waiting, ids(&["web"])));
    }

    #[test]
    fn waiting_wanting_stopped_is_stopped() {
        let mut s = status(Desired::Stopped, RunState::Waiting);
        s.observed.waiting_for = ids(&["db"]);
        let p = plan(&s, Seen::Absent, &unready(&["db"]), 7);
        assert_eq!(p.action, Action::None);
        let r = p.record.unwrap();
        assert_eq!(r.state, RunState::Stopped);
        assert!(r.waiting_for.is_empty());
    }

    #[test]
    fn running_dependent_is_left_running_while_a_dependency_is_only_not_ready() {
        // E.g. its checks not reported yet after a hearthd restart.
        let p = plan(
            &status(Desired::Running, RunState::Running),
            Seen::Running,
            &unready(&["db"]),
            8,
        );
        assert_eq!(
            p,
            Plan {
                record: None,
                action: Action::None
            }
        );
    }

    #[test]
    fn running_dependent_of_a_down_dependency_stops_then_waits_then_starts_again() {
        let down = DepState {
            unready: ids(&["db"]),
            down: ids(&["db"]),
        };
        let mut s = status(Desired::Running, RunState::Running);
        s.observed.started_at = Some(1);
        s.observed
            .reported
            .insert("health".into(), serde_json::json!({}));
        let p = plan(&s, Seen::Running, &down, 8);
        assert_eq!(p.action, Action::Stop);
        let stopping = p.record.unwrap();
        assert_eq!(
            (stopping.state, &stopping.waiting_for),
            (RunState::Stopping, &ids(&["db"]))
        );
        assert!(stopping.reported.is_empty());
        let stopped = after_stop(&stopping, Ok(()));
        s = StatusInfo {
            desired: Desired::Running,
            observed: stopped,
        };
        let p = plan(&s, Seen::Stopped, &down, 9);
        assert_eq!(p.action, Action::None);
        let waiting = p.record.unwrap();
        assert_eq!(
            (waiting.state, &waiting.waiting_for),
            (RunState::Waiting, &ids(&["db"]))
        );
        assert_eq!(
            (waiting.restart_count, &waiting.last_error),
            (0, &None),
            "not a crash"
        );
        s.observed = waiting;
        let p = plan(&s, Seen::Stopped, READY, 10);
        assert_eq!(p.action, Action::Start);
        assert!(p.record.unwrap().waiting_for.is_empty());
        assert_eq!(s.desired, Desired::Running, "desired never changes");
    }

    #[test]
    fn dependent_that_died_is_counted_then_waits_for_its_dependency() {
        let p = plan(
            &status(Desired::Running, RunState::Running),
            Seen::Stopped,
            &unready(&["db"]),
            9,
        );
        assert_eq!(p.action, Action::None);
        let r = p.record.unwrap();
        assert_eq!(r.restart_count, 1);
        assert_eq!(r.last_error.as_deref(), Some(DIED));
        assert_eq!((r.state, r.waiting_for), (RunState::Waiting, ids(&["db"])));
    }

    #[test]
    fn reports_are_dropped_whenever_the_state_leaves_running() {
        let mut s = status(Desired::Running, RunState::Running);
        s.observed.reported.insert(
            "health".into(),
            serde_json::json!({"ping": {"result": "success"}}),
        );
        let kept = plan(&s, Seen::Running, READY, 1);
        assert_eq!(kept.record, None, "running and seen running: kept");
        // Found dead (e.g. after a hearthd restart): restarted without the old reports.
        let dead = plan(&s, Seen::Absent, READY, 2).record.unwrap();
        assert_eq!(dead.state, RunState::Starting);
        assert!(dead.reported.is_empty());
        let waiting = plan(&s, Seen::Stopped, &unready(&["db"]), 2)
            .record
            .unwrap();
        assert!(waiting.reported.is_empty());
        s.desired = Desired::Stopped;
        let stopping = plan(&s, Seen::Running, READY, 3).record.unwrap();
        assert_eq!(stopping.state, RunState::Stopping);
        assert!(stopping.reported.is_empty());
        assert!(after_stop(&s.observed, Ok(())).reported.is_empty());
        let mut stuck = s.observed.clone();
        stuck.state = RunState::Stopping;
        assert!(after_stop(&stuck, Err("x".into())).reported.is_empty());
        assert!(
            after_start(&s.observed, Err("x".into()), 4)
                .reported
                .is_empty()
        );
        // A successful start keeps what the caller holds (the monitor may already
        // have written the new container's first report).
        assert_eq!(
            after_start(&s.observed, Ok(()), 4).reported,
            s.observed.reported
        );
    }

    #[test]
    fn back_off_comes_before_waiting_for_dependencies() {
        let mut s = status(Desired::Running, RunState::BackingOff);
        s.observed.retry_at = Some(100);
        assert_eq!(
            plan(&s, Seen::Stopped, &unready(&["db"]), 50).action,
            Action::WaitUntil(100)
        );
    }
}
