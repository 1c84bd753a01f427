//! Payloads of `server.*` methods.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Params of `server.echo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EchoParams {
    /// Text to send back.
    pub message: String,
}

/// Result of `server.info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    /// Stable random id of this server (created with the state database).
    pub id: String,
    /// Hearth version.
    pub version: String,
    /// Hostname chosen at setup (`null` before setup).
    pub hostname: Option<String>,
    /// The name mDNS announces on the LAN, e.g. `hearth.local.`, or `hearth-2.local.`
    /// when another machine already had `hearth.local`; `null` while nothing is
    /// announced (mDNS off, or before setup).
    #[serde(default)]
    pub mdns_name: Option<String>,
    /// CPU architecture, e.g. `x86_64`, `aarch64`.
    pub arch: String,
    /// Seconds since hearthd started.
    pub uptime_secs: u64,
    /// Absolute path of the data directory.
    pub data_dir: String,
    /// Bytes used by files under the data directory.
    pub data_dir_bytes: u64,
    /// The A/B root slot this machine booted from and its boot-counting state, as
    /// published by `hearth-init`; `null` when not running under `hearth-init` (a
    /// development machine, a plain Debian install).
    #[serde(default)]
    pub slot: Option<SlotInfo>,
}

/// Boot state of the running root slot (`server.info` → `slot`), read from the file
/// `hearth-init` writes (`/run/hearth/boot.json`, this shape plus `"init": "hearth-init"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotInfo {
    /// `a` or `b`.
    pub slot: String,
    /// Boot-counting state of this slot's boot entry.
    pub state: SlotState,
    /// Boot attempts left before the boot loader falls back to the other slot (only while
    /// `trying` or `bad`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tries_left: Option<u32>,
    /// Boot attempts of this slot so far (only while `trying` or `bad`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tries_done: Option<u32>,
}

/// Boot-counting state of a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SlotState {
    /// Marked good: `hearthd` became healthy on it; never counted again.
    Good,
    /// On trial: it becomes good once `hearthd` is healthy, or the boot loader falls back
    /// to the other slot after its tries.
    Trying,
    /// Out of tries: booted because nothing better was left (or on its last try).
    Bad,
    /// No boot entry with a counter was found (no boot counting on this machine).
    Unknown,
}

/// Result of `server.metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// CPU use.
    pub cpu: CpuMetrics,
    /// Memory use.
    pub memory: MemoryMetrics,
    /// Use of the filesystem holding the data directory.
    pub disk: DiskMetrics,
    /// Load averages.
    pub load: LoadAverage,
}

/// CPU use between two samples of `/proc/stat`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CpuMetrics {
    /// Busy share of all CPUs, 0–100.
    pub usage_percent: f64,
    /// Number of CPUs.
    pub cores: u32,
    /// Milliseconds between the two samples the percentage is computed from.
    pub sample_ms: u64,
}

/// Memory totals from `/proc/meminfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryMetrics {
    /// Total RAM in bytes.
    pub total_bytes: u64,
    /// Bytes available for new work (MemAvailable).
    pub available_bytes: u64,
    /// `total - available`.
    pub used_bytes: u64,
}

/// Filesystem totals from `statvfs` of the data directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiskMetrics {
    /// Total size in bytes.
    pub total_bytes: u64,
    /// Bytes available to unprivileged users.
    pub available_bytes: u64,
    /// `total - free`.
    pub used_bytes: u64,
}

/// Load averages from `/proc/loadavg`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadAverage {
    /// 1-minute load average.
    pub one: f64,
    /// 5-minute load average.
    pub five: f64,
    /// 15-minute load average.
    pub fifteen: f64,
}

/// Params of `server.logs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogsParams {
    /// Only lines with a cursor greater than this (a previous `endCursor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// Maximum number of lines (default 100, at most 1000). Without `after`, the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Result of `server.logs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogsResult {
    /// Lines, oldest first.
    pub entries: Vec<LogEntry>,
    /// Cursor of the last returned line (or the `after` given, if none); pass it as
    /// `after` next time.
    pub end_cursor: u64,
    /// True if lines after `after` were already evicted from the ring buffer.
    pub missed: bool,
}

/// One log line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// Monotonic sequence number (the cursor).
    pub cursor: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: String,
    /// Module that logged it.
    pub target: String,
    /// Message and structured fields, `key=value`.
    pub message: String,
}
