//! Payloads of `package.*` methods (install, trust, lifecycle).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Params of `package.trust.add`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrustAddParams {
    /// The developer's Ed25519 public key, PEM (`-----BEGIN PUBLIC KEY-----`, SPKI).
    pub public_key: String,
    /// A name to recognise the key by (e.g. the developer's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One trusted package signer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustedKey {
    /// Hex BLAKE3 of the raw 32-byte key: the key's stable id.
    pub fingerprint: String,
    /// The key, PEM.
    pub public_key: String,
    /// The name given when it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it was added, ms since the Unix epoch.
    pub added_ms: u64,
}

/// Params of `package.trust.remove`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrustRemoveParams {
    /// Fingerprint of the key (from `package.trust.list`).
    pub fingerprint: String,
}

/// Params of `package.install`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstallParams {
    /// Absolute path of an `.s9pk` file on the server (give `path` or `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `http://` or `https://` URL of an `.s9pk` to download (give `path` or `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Install even if the signer is not a trusted key (its fingerprint is recorded).
    #[serde(default)]
    pub allow_untrusted: bool,
    /// Install an older version over the installed one (refused otherwise).
    #[serde(default)]
    pub allow_downgrade: bool,
}

/// Result of `package.install`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallResult {
    /// The installed package's id.
    pub id: String,
    /// Its version (exver).
    pub version: String,
    /// Fingerprint of the key that signed it.
    pub signer_fingerprint: String,
    /// Whether that key is in the trusted list.
    pub signer_trusted: bool,
}

/// Params of `package.start`, `package.stop` and `package.restart`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdParams {
    /// Package id.
    pub id: String,
}

/// Result of `package.stop`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StopResult {
    /// The services this stop affects: installed, meant to run, and needing this one
    /// running (directly or through another of them; sorted ids). They stop and wait
    /// until it runs healthy again, then start by themselves.
    pub dependents: Vec<String>,
}

/// Params of `package.uninstall`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UninstallParams {
    /// Package id.
    pub id: String,
    /// Keep the service's data (volumes) for a later reinstall.
    #[serde(default)]
    pub keep_data: bool,
}

/// One entry of `package.list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageSummary {
    /// Package id.
    pub id: String,
    /// Title from the manifest.
    pub title: String,
    /// Installed version.
    pub version: String,
    /// `installing`, `installed`, `updating` or `removing`.
    pub state: String,
    /// Desired run state: `running` or `stopped` (`restarting` while a restart is pending).
    pub desired: String,
    /// Observed run state: `stopped`, `starting`, `running`, `stopping`, `backingOff`,
    /// `waiting` (for dependencies: `statusInfo.waitingFor` names them).
    pub status: String,
    /// The last error starting or running it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Params of `package.logs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogsParams {
    /// Package id.
    pub id: String,
    /// Only this daemon's lines (default: every daemon's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<String>,
    /// Most lines returned (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Only lines after this cursor (a previous `nextCursor`); default: the latest lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<u64>,
}

/// One log line of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// Sequence number (what `cursor` refers to).
    pub seq: u64,
    /// When it was written, ms since the Unix epoch.
    pub time: u64,
    /// Daemon id.
    pub daemon: String,
    /// `stdout`, `stderr` or `hearth` (the container's own notes).
    pub stream: String,
    /// The line, without its newline.
    pub line: String,
}

/// Result of `package.logs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogsResult {
    /// Lines, oldest first.
    pub entries: Vec<LogEntry>,
    /// Pass as `cursor` to get the lines after these.
    pub next_cursor: u64,
}

/// One action of an installed package (`package.action.list`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionInfo {
    /// Action id.
    pub id: String,
    /// Name shown to the user.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Shown before running, for actions with consequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// JSON Schema of its input, if it takes any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
    /// When it may run: `any`, `only-running` or `only-stopped`.
    pub allowed_statuses: String,
}

/// Params of `package.action.run`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionRunParams {
    /// Package id.
    pub id: String,
    /// Action id (from `package.action.list`).
    pub action_id: String,
    /// Input, checked against the action's `input` schema before it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
}

/// Result of `package.action.run` (also stored as
/// `/packageData/<id>/actions/<actionId>/lastResult`, with `ranAt`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionRunResult {
    /// Whether the command exited with status 0.
    pub success: bool,
    /// Its exit status, if it exited.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// Its output (unless the action's result is `none`).
    #[serde(default)]
    pub stdout: Option<String>,
    /// The output parsed as JSON, when it is JSON.
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    /// The end of its error output.
    #[serde(default)]
    pub stderr: String,
    /// When it finished, ms since the Unix epoch.
    #[serde(default)]
    pub ran_at: u64,
}
