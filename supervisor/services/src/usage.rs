//! Resource use of running services, shown in `statusInfo.resources`.
//!
//! # Design
//! Each reconcile step of a package recorded `running` calls [`sample`]: it reads the
//! container's cgroup counters ([`ContainerRuntime::stats`]) and, when [`next`] (pure)
//! says so, writes
//!
//! ```text
//! statusInfo.resources = { memoryBytes, memoryLimitBytes?, cpuPercent?, cpuTimeNs, pids,
//!                          sampledAt }
//! ```
//!
//! `cpuPercent` is the CPU time used between the stored sample and this one over the
//! wall time between them, in percent of one CPU (above 100 when several CPUs are
//! busy), rounded to 0.1; it is absent until there is a stored sample to compare with.
//! `memoryLimitBytes` is the package's memory limit, when it has one.
//!
//! No in-memory state: the stored sample is the baseline. A patch on every tick of every
//! service would flood the state stream, so a sample is written only when memory moved
//! by more than [`MEMORY_STEP`], CPU by more than [`CPU_STEP`] points, the task count
//! changed, or the stored sample is older than [`MAX_AGE_MS`]; and none is taken within
//! [`MIN_INTERVAL_MS`] of the stored one (steps woken by store changes come in bursts).
//!
//! # Invariants
//! * `resources` belongs to the current run: it is one of the keys dropped whenever the
//!   recorded state leaves `running` (`status::forget_reports`), cleared by the
//!   supervisor once the package no longer runs and when hearthd starts, and writing it
//!   wakes no reconcile step (`container_status::REPORTED_KEYS`). It is written only
//!   while the stored state is `running`.
//! * A failed read is not a failed step: it is logged (debug) and the stored sample
//!   stays; a runtime without `stats` never writes one.
//!
//! # Limitations
//! Between writes the CPU figure is the average since the last written sample, so a
//! short burst after a long quiet stretch shows diluted (at most [`MAX_AGE_MS`]).

use hearth_lxc::{ContainerId, ContainerRuntime, ContainerStats, RuntimeError};
use hearth_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::doc::{self, PACKAGE_DATA, PackageEntry};
use crate::error::PackageError;
use crate::status::RunState;

/// The key of `statusInfo` this module writes.
pub(crate) const KEY: &str = "resources";
/// Memory change (bytes) worth a write.
pub(crate) const MEMORY_STEP: u64 = 1 << 20;
/// CPU change (percentage points) worth a write.
pub(crate) const CPU_STEP: f64 = 1.0;
/// No sample within this long of the stored one (ms).
pub(crate) const MIN_INTERVAL_MS: u64 = 2_000;
/// A stored sample older than this is replaced even if nothing moved (ms).
pub(crate) const MAX_AGE_MS: u64 = 60_000;

/// `statusInfo.resources`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Resources {
    /// Memory charged to the container (page cache included).
    pub(crate) memory_bytes: u64,
    /// The package's memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) memory_limit_bytes: Option<u64>,
    /// CPU use since the previous stored sample, percent of one CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_percent: Option<f64>,
    /// CPU time used since the container started (ns).
    pub(crate) cpu_time_ns: u64,
    /// Tasks (processes and threads).
    pub(crate) pids: u64,
    /// When it was sampled (ms since the epoch).
    pub(crate) sampled_at: u64,
}

/// The sample to store, given the stored one (`prev`), or `None` to leave it.
pub(crate) fn next(
    prev: Option<&Resources>,
    stats: &ContainerStats,
    memory_limit: Option<u64>,
    now_ms: u64,
) -> Option<Resources> {
    let cpu_time_ns = u64::try_from(stats.cpu_time.as_nanos()).unwrap_or(u64::MAX);
    let cpu_percent = prev.and_then(|p| {
        let wall_ms = now_ms.checked_sub(p.sampled_at).filter(|d| *d > 0)?;
        let cpu_ns = cpu_time_ns.checked_sub(p.cpu_time_ns)?;
        // ns / (ms * 1e6) * 100
        let percent = cpu_ns as f64 / (wall_ms as f64 * 10_000.0);
        Some((percent * 10.0).round() / 10.0)
    });
    let new = Resources {
        memory_bytes: stats.memory_bytes,
        memory_limit_bytes: memory_limit,
        cpu_percent,
        cpu_time_ns,
        pids: stats.pids,
        sampled_at: now_ms,
    };
    let Some(p) = prev else {
        return Some(new);
    };
    let age = now_ms.saturating_sub(p.sampled_at);
    if age < MIN_INTERVAL_MS {
        return None;
    }
    let cpu_moved = match (p.cpu_percent, new.cpu_percent) {
        (Some(a), Some(b)) => (a - b).abs() > CPU_STEP,
        (None, None) => false,
        _ => true,
    };
    let moved = p.memory_bytes.abs_diff(new.memory_bytes) > MEMORY_STEP
        || cpu_moved
        || p.pids != new.pids
        || p.memory_limit_bytes != new.memory_limit_bytes;
    (moved || age >= MAX_AGE_MS).then_some(new)
}

/// Samples the container of `id` and stores the result if [`next`] says so (`entry` is
/// the step's snapshot, recorded `running`). Never fails the step.
pub(crate) fn sample(
    store: &Store,
    runtime: &dyn ContainerRuntime,
    id: &str,
    cid: &ContainerId,
    entry: &PackageEntry,
    now_ms: u64,
) {
    let prev = entry
        .status_info
        .observed
        .reported
        .get(KEY)
        .and_then(|v| serde_json::from_value::<Resources>(v.clone()).ok());
    if prev
        .as_ref()
        .is_some_and(|p| now_ms.saturating_sub(p.sampled_at) < MIN_INTERVAL_MS)
    {
        return;
    }
    let stats = match runtime.stats(cid) {
        Ok(stats) => stats,
        Err(RuntimeError::Unsupported { .. }) => return,
        Err(error) => {
            tracing::debug!(package = %id, %error, "cannot read resource use");
            return;
        }
    };
    let Some(new) = next(prev.as_ref(), &stats, entry.container.memory, now_ms) else {
        return;
    };
    if let Err(error) = write(store, id, &new) {
        tracing::warn!(package = %id, %error, "cannot record resource use");
    }
}

/// Stores `resources` in the `statusInfo` of `id` if it is still recorded `running`.
fn write(store: &Store, id: &str, resources: &Resources) -> Result<(), PackageError> {
    let pointer = format!("{PACKAGE_DATA}/{id}/statusInfo");
    let value = serde_json::to_value(resources).map_err(|e| PackageError::Document {
        pointer: pointer.clone(),
        reason: e.to_string(),
    })?;
    store
        .mutate(|d| {
            let running = d
                .pointer(&format!("{pointer}/state"))
                .and_then(Value::as_str)
                == Some(RunState::Running.as_str());
            if running {
                doc::object_mut(d, &pointer)?.insert(KEY.into(), value);
            }
            Ok::<_, PackageError>(())
        })
        .map(|_| ())
        .map_err(|e| doc::mutate_error("record resource use", e))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn stats(memory_mib: u64, cpu_ms: u64, pids: u64) -> ContainerStats {
        ContainerStats {
            memory_bytes: memory_mib << 20,
            pids,
            cpu_time: Duration::from_millis(cpu_ms),
        }
    }

    #[test]
    fn first_sample_is_written_without_cpu_percent() {
        let r = next(None, &stats(10, 50, 3), Some(64 << 20), 1_000).unwrap();
        assert_eq!(
            r,
            Resources {
                memory_bytes: 10 << 20,
                memory_limit_bytes: Some(64 << 20),
                cpu_percent: None,
                cpu_time_ns: 50_000_000,
                pids: 3,
                sampled_at: 1_000,
            }
        );
    }

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time() {
        let first = next(None, &stats(10, 0, 3), None, 0).unwrap();
        // 2.5 s of CPU in 5 s: 50 %.
        let r = next(Some(&first), &stats(10, 2_500, 3), None, 5_000).unwrap();
        assert_eq!(r.cpu_percent, Some(50.0));
        // Two CPUs busy for 5 s: 200 %.
        let r = next(Some(&first), &stats(10, 10_000, 3), None, 5_000).unwrap();
        assert_eq!(r.cpu_percent, Some(200.0));
    }

    #[test]
    fn small_changes_are_not_written_until_the_sample_is_old() {
        let mut first = next(None, &stats(10, 0, 3), None, 0).unwrap();
        first.cpu_percent = Some(1.0);
        // 0.5 MiB more, 1.5 % CPU (0.5 point off), same tasks: nothing to write.
        let quiet = ContainerStats {
            memory_bytes: (10 << 20) + (1 << 19),
            ..stats(10, 75, 3)
        };
        assert_eq!(next(Some(&first), &quiet, None, 5_000), None);
        assert!(next(Some(&first), &quiet, None, MAX_AGE_MS).is_some());
    }

    #[test]
    fn memory_cpu_or_task_changes_are_written() {
        let mut first = next(None, &stats(10, 0, 3), None, 0).unwrap();
        first.cpu_percent = Some(0.0);
        assert!(next(Some(&first), &stats(12, 0, 3), None, 5_000).is_some());
        assert!(next(Some(&first), &stats(10, 500, 3), None, 5_000).is_some());
        assert!(next(Some(&first), &stats(10, 0, 4), None, 5_000).is_some());
    }

    #[test]
    fn nothing_within_the_minimum_interval() {
        let first = next(None, &stats(10, 0, 3), None, 0).unwrap();
        assert_eq!(
            next(Some(&first), &stats(500, 0, 9), None, MIN_INTERVAL_MS - 1),
            None
        );
    }

    #[test]
    fn a_counter_that_went_back_gives_no_cpu_percent() {
        let mut first = next(None, &stats(10, 9_000, 3), None, 0).unwrap();
        first.cpu_percent = Some(5.0);
        let r = next(Some(&first), &stats(10, 10, 3), None, 5_000).unwrap();
        assert_eq!(r.cpu_percent, None);
    }
}
