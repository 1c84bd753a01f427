//! Observed status as reported by the `status` RPC and `status.changed` notifications.

use serde::Serialize;

use super::{Daemon, Now, State};

/// Result of one health check, as StartOS shows it (`statusInfo.health.<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub(crate) enum HealthResult {
    /// Not yet passed, or failing within its grace period.
    Starting,
    /// The last check passed.
    Success,
    /// The last check failed after the grace period.
    Failure {
        /// What failed.
        message: String,
    },
    /// The daemon waits for the daemons it requires (or to be restarted).
    Waiting,
    /// The daemon is not meant to run.
    Disabled,
}

/// Desired state of the whole service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Desired {
    /// Daemons should run.
    Running,
    /// Daemons should not run.
    Stopped,
}

/// One health check's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HealthStatus {
    /// Check id.
    pub(crate) id: String,
    /// Name shown to the user.
    pub(crate) name: String,
    /// The result.
    #[serde(flatten)]
    pub(crate) result: HealthResult,
}

/// One daemon's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DaemonStatus {
    /// Daemon id.
    pub(crate) id: String,
    /// `stopped`, `waiting`, `starting`, `running`, `stopping`, `backingOff`, `crashLoop`.
    pub(crate) state: &'static str,
    /// Process id while a process exists.
    pub(crate) pid: Option<i32>,
    /// Whether the readiness probe passed (always true while `running`).
    pub(crate) ready: bool,
    /// When the current (or last) process started, Unix milliseconds.
    pub(crate) started_at: Option<u64>,
    /// Restarts since the last explicit start.
    pub(crate) restarts: u32,
    /// How the last process ended (`exit status 1`, `signal 9`).
    pub(crate) last_exit: Option<String>,
    /// The last failure (spawn error, exit, readiness timeout, crash loop).
    pub(crate) last_error: Option<String>,
    /// Why the last readiness probe failed, while `starting`.
    pub(crate) readiness_failure: Option<String>,
    /// Milliseconds until the next restart while `backingOff`.
    pub(crate) retry_in_ms: Option<u64>,
    /// Health checks.
    pub(crate) health: Vec<HealthStatus>,
}

/// The whole service's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServiceStatus {
    /// Desired state.
    pub(crate) desired: Desired,
    /// Whether every daemon is running and ready.
    pub(crate) all_ready: bool,
    /// Whether no daemon process exists.
    pub(crate) all_down: bool,
    /// Daemons in start order.
    pub(crate) daemons: Vec<DaemonStatus>,
}

/// The status of one daemon.
pub(super) fn daemon_status(d: &Daemon, now: Now) -> DaemonStatus {
    let health = d
        .spec
        .health_checks
        .iter()
        .zip(&d.checks)
        .map(|(spec, check)| HealthStatus {
            id: spec.id.clone(),
            name: spec.name.clone(),
            result: match d.state {
                State::Running { .. } => check.result.clone(),
                State::Starting { .. } => HealthResult::Starting,
                State::Waiting | State::BackingOff { .. } => HealthResult::Waiting,
                State::Stopped | State::Stopping { .. } | State::CrashLoop => {
                    HealthResult::Disabled
                }
            },
        })
        .collect();
    let retry_in_ms = match d.state {
        State::BackingOff { until } => {
            u64::try_from(until.saturating_duration_since(now.mono).as_millis()).ok()
        }
        _ => None,
    };
    DaemonStatus {
        id: d.spec.id.clone(),
        state: d.state.name(),
        pid: d.state.pid(),
        ready: matches!(d.state, State::Running { .. }),
        started_at: d.started.map(|s| s.wall_ms),
        restarts: d.restarts,
        last_exit: d.last_exit.map(|e| e.to_string()),
        last_error: d.last_error.clone(),
        readiness_failure: match (&d.state, &d.ready_probe.result) {
            (State::Starting { .. }, HealthResult::Failure { message }) => Some(message.clone()),
            _ => None,
        },
        retry_in_ms,
        health,
    }
}
