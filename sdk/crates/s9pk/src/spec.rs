//! The Hearth service spec: the declarative description of how a package runs,
//! stored in the package as the root file `hearth.json`.
//!
//! # Design
//! StartOS describes a service's behaviour in JavaScript run inside the container;
//! Hearth describes it as data that `hearth-container` executes: daemons with a
//! start order, readiness and health probes, network interfaces, actions, backup
//! and dependencies. Everything is plain serde data with a JSON Schema
//! (`schema/service-spec.schema.json`, checked for drift by a test) so editors can
//! complete and check specs written in TOML or JSON.
//!
//! # Invariants
//! - Unknown fields are refused (`deny_unknown_fields`): a typo in a spec is an
//!   error at pack time, never a silently ignored setting.
//! - [`ServiceSpec::validate`] passing means every reference resolves: daemons'
//!   `requires` name daemons and form a DAG; images, volumes and dependencies exist
//!   in the [`Manifest`]; ports are non-zero; durations lie in sane bounds.
//!
//! # Limitations
//! Action `input` is checked to be a JSON Schema *object*, not validated as a
//! schema. Dependency health-check ids cannot be checked against the other package.
//!
//! # Rejected alternatives
//! A flattened "process" struct shared by daemons, actions and hooks: serde's
//! `flatten` does not work with `deny_unknown_fields`, so the few fields repeat.

mod action_input;
mod duration;
mod validate;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::{Manifest, VersionRange};

pub use self::action_input::{
    InputMismatch, MAX_DEPTH as MAX_INPUT_DEPTH, MAX_EVAL_DEPTH, REGEX_SIZE_LIMIT,
    check_action_input, check_action_schema,
};
pub use self::duration::{DurationParseError, DurationSpec};
pub use self::validate::SpecError;

/// The whole service spec (`hearth.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "Hearth service spec")]
pub struct ServiceSpec {
    /// Long-running processes, started in `requires` order.
    pub daemons: Vec<DaemonSpec>,
    /// Network interfaces the service offers.
    #[serde(default)]
    pub interfaces: Vec<InterfaceSpec>,
    /// Commands a user can run on demand.
    #[serde(default)]
    pub actions: Vec<ActionSpec>,
    /// What a backup of this service contains (`None` = all volumes).
    #[serde(default)]
    pub backup: Option<BackupSpec>,
    /// Other packages this one needs, with version ranges.
    #[serde(default)]
    pub dependencies: Vec<DependencySpec>,
    /// Limits for the whole service container.
    #[serde(default)]
    pub resources: ResourceLimits,
    /// What to run when this version replaces an installed older one (an update),
    /// before its daemons start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationSpec>,
    /// Kernel capabilities the container needs beyond the default set (which lacks
    /// raw sockets and network administration, among others). Each one is shown to the
    /// user in the package's state; almost every service needs none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<Capability>,
}

/// An extra capability a service may ask for; a closed list, because each one widens
/// what a compromised service can do to the host's kernel or network.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Raw and packet sockets (ping without ICMP sockets, DHCP, packet capture).
    NetRaw,
    /// Interfaces, routes and firewall rules inside the container's own network.
    NetAdmin,
    /// Raising process priorities and real-time scheduling.
    SysNice,
    /// Locking memory beyond the default limit (databases, key stores).
    IpcLock,
}

/// The update hook: one command run in the service container (its root image, with
/// the volumes at `/media/hearth/volumes/<id>` and no daemon running), with the
/// replaced version in `HEARTH_PREVIOUS_VERSION`. A non-zero exit, or running past
/// `timeout`, fails the update: the previous version and its data come back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationSpec {
    /// Argument vector (non-empty).
    pub command: Vec<String>,
    /// Longest run time (default 10m).
    #[serde(default = "default_hook_timeout")]
    pub timeout: DurationSpec,
}

/// A long-running process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSpec {
    /// Daemon id, unique in the spec (`^[a-z0-9]+(-[a-z0-9]+)*$`).
    pub id: String,
    /// Image (manifest `images` key) whose root filesystem the daemon runs in.
    pub image: String,
    /// Argument vector; `None` runs the image's entrypoint and cmd.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Environment added to the image's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// User name or uid to run as (default: the image's user).
    #[serde(default)]
    pub user: Option<String>,
    /// Working directory (default: the image's workdir).
    #[serde(default)]
    pub workdir: Option<String>,
    /// Volumes mounted into the daemon's root filesystem.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// Daemons that must be ready before this one starts.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Signal sent to stop the daemon.
    #[serde(default)]
    pub stop_signal: StopSignal,
    /// How long to wait after the stop signal before killing (default 30s).
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: DurationSpec,
    /// When the daemon counts as ready (default: as soon as it started).
    #[serde(default)]
    pub ready: Option<ReadinessSpec>,
    /// Checks run while the daemon runs; shown to the user.
    #[serde(default)]
    pub health_checks: Vec<HealthCheckSpec>,
}

fn default_stop_timeout() -> DurationSpec {
    DurationSpec::from_secs(30)
}

/// A volume mounted into a process's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MountSpec {
    /// Volume id (manifest `volumes` entry).
    pub volume: String,
    /// Absolute mount point inside the container.
    pub path: String,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// Signals a daemon can be stopped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum StopSignal {
    /// `SIGTERM` (the default).
    #[default]
    #[serde(rename = "SIGTERM")]
    Term,
    /// `SIGINT`.
    #[serde(rename = "SIGINT")]
    Int,
    /// `SIGQUIT` (graceful stop for nginx and others).
    #[serde(rename = "SIGQUIT")]
    Quit,
    /// `SIGHUP`.
    #[serde(rename = "SIGHUP")]
    Hup,
    /// `SIGUSR1`.
    #[serde(rename = "SIGUSR1")]
    Usr1,
    /// `SIGUSR2`.
    #[serde(rename = "SIGUSR2")]
    Usr2,
    /// `SIGKILL` (no graceful stop).
    #[serde(rename = "SIGKILL")]
    Kill,
}

/// How to tell that a daemon has started up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadinessSpec {
    /// The probe; the daemon is ready at its first success.
    pub probe: Probe,
    /// Time between attempts (default 1s).
    #[serde(default = "default_ready_interval")]
    pub interval: DurationSpec,
    /// Time one attempt may take (default 5s).
    #[serde(default = "default_timeout")]
    pub timeout: DurationSpec,
    /// How long start-up may take before the daemon counts as failed (default 60s).
    #[serde(default = "default_grace_period")]
    pub grace_period: DurationSpec,
}

/// A check run periodically while the daemon runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// Check id, unique within the daemon (dependents refer to it).
    pub id: String,
    /// Name shown to the user.
    pub name: String,
    /// The probe.
    pub probe: Probe,
    /// Time between checks (default 30s).
    #[serde(default = "default_health_interval")]
    pub interval: DurationSpec,
    /// Time one check may take (default 5s).
    #[serde(default = "default_timeout")]
    pub timeout: DurationSpec,
    /// Failures within this time after start are shown as "starting" (default 60s).
    #[serde(default = "default_grace_period")]
    pub grace_period: DurationSpec,
}

fn default_ready_interval() -> DurationSpec {
    DurationSpec::from_secs(1)
}
fn default_health_interval() -> DurationSpec {
    DurationSpec::from_secs(30)
}
fn default_timeout() -> DurationSpec {
    DurationSpec::from_secs(5)
}
fn default_grace_period() -> DurationSpec {
    DurationSpec::from_secs(60)
}

/// One way of probing a daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Probe {
    /// An HTTP GET on the container's address.
    Http(HttpProbe),
    /// A TCP connect.
    Tcp(TcpProbe),
    /// A command in the daemon's environment; exit status 0 is success.
    Exec(ExecProbe),
}

/// An HTTP GET probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpProbe {
    /// Port inside the container.
    pub port: u16,
    /// Request path, starting with `/` (default `/`).
    #[serde(default = "default_http_path")]
    pub path: String,
    /// Status that counts as success (default 200).
    #[serde(default = "default_http_status")]
    pub expected_status: u16,
}

fn default_http_path() -> String {
    "/".to_owned()
}
fn default_http_status() -> u16 {
    200
}

/// A TCP connect probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpProbe {
    /// Port inside the container.
    pub port: u16,
}

/// A command probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecProbe {
    /// Argument vector, run like the daemon (same image, user, env, mounts).
    pub command: Vec<String>,
}

/// A network interface offered by the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InterfaceSpec {
    /// Interface id, unique in the spec.
    pub id: String,
    /// Name shown to the user.
    pub name: String,
    /// What the interface is for.
    #[serde(default)]
    pub description: String,
    /// Kind of interface.
    #[serde(rename = "type")]
    pub kind: InterfaceKind,
    /// Port the service listens on inside the container.
    pub port: u16,
    /// Transport protocol (default `http`).
    #[serde(default)]
    pub protocol: Protocol,
    /// Who terminates TLS (default: `host` for http, `none` otherwise).
    #[serde(default)]
    pub tls: Option<TlsTermination>,
}

impl InterfaceSpec {
    /// The effective TLS termination (the default depends on the protocol).
    pub fn tls(&self) -> TlsTermination {
        self.tls.unwrap_or(match self.protocol {
            Protocol::Http => TlsTermination::Host,
            Protocol::Tcp | Protocol::Udp => TlsTermination::None,
        })
    }
}

/// Kind of interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum InterfaceKind {
    /// A web UI for people.
    Ui,
    /// An API for programs.
    Api,
    /// A peer-to-peer port.
    P2p,
}

/// Transport protocol of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    /// HTTP (proxied by the host).
    #[default]
    Http,
    /// Raw TCP.
    Tcp,
    /// Raw UDP.
    Udp,
}

/// Who terminates TLS for an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TlsTermination {
    /// The host terminates TLS with its certificates and forwards plain traffic.
    Host,
    /// No TLS by the host (the service speaks plain or its own TLS).
    None,
}

/// A command a user can run on demand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionSpec {
    /// Action id, unique in the spec.
    pub id: String,
    /// Name shown to the user.
    pub name: String,
    /// What the action does.
    #[serde(default)]
    pub description: String,
    /// Shown before running, for actions with consequences.
    #[serde(default)]
    pub warning: Option<String>,
    /// Image the command runs in.
    pub image: String,
    /// Argument vector; the input (if any) arrives as JSON on stdin.
    pub command: Vec<String>,
    /// Environment added to the image's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// User to run as (default: the image's user).
    #[serde(default)]
    pub user: Option<String>,
    /// Working directory (default: the image's workdir).
    #[serde(default)]
    pub workdir: Option<String>,
    /// Volumes mounted for the command.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// JSON Schema (an object schema) of the form shown to the user.
    #[serde(default)]
    pub input: Option<serde_json::Value>,
    /// When the action may run (default `any`).
    #[serde(default)]
    pub allowed_statuses: AllowedStatuses,
    /// What to do with the command's output (default `text`).
    #[serde(default)]
    pub result: ActionResult,
    /// Longest run time (default 5m).
    #[serde(default = "default_action_timeout")]
    pub timeout: DurationSpec,
}

fn default_action_timeout() -> DurationSpec {
    DurationSpec::from_secs(300)
}

/// When an action may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AllowedStatuses {
    /// Only while the service runs.
    OnlyRunning,
    /// Only while the service is stopped.
    OnlyStopped,
    /// Whenever.
    #[default]
    Any,
}

/// What happens with an action's standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ActionResult {
    /// Discarded; only success or failure is shown.
    None,
    /// Shown as text.
    #[default]
    Text,
    /// Parsed as JSON and shown as structured data.
    Json,
}

/// What a backup of the service contains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupSpec {
    /// Volumes to include.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Run before the volumes are copied (e.g. to dump a database into a volume).
    #[serde(default)]
    pub hook: Option<HookSpec>,
    /// Run after the volumes were restored.
    #[serde(default)]
    pub restore_hook: Option<HookSpec>,
}

/// A one-off command run by the host (backup hooks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookSpec {
    /// Image the command runs in.
    pub image: String,
    /// Argument vector.
    pub command: Vec<String>,
    /// Environment added to the image's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// User to run as (default: the image's user).
    #[serde(default)]
    pub user: Option<String>,
    /// Volumes mounted for the command.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// Longest run time (default 10m).
    #[serde(default = "default_hook_timeout")]
    pub timeout: DurationSpec,
}

fn default_hook_timeout() -> DurationSpec {
    DurationSpec::from_secs(600)
}

/// A package this one needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DependencySpec {
    /// Package id (also a key of the manifest's `dependencies`).
    pub id: String,
    /// Acceptable versions (exver range, e.g. `>=1.2.0:0 <2.0.0:0`).
    #[schemars(with = "String")]
    pub version_range: VersionRange,
    /// Whether it only has to be installed or also running.
    pub kind: DependencyKind,
    /// Health checks of the dependency that must pass (`running` only).
    #[serde(default)]
    pub health_checks: Vec<String>,
}

/// How much of a dependency must be there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DependencyKind {
    /// Installed (e.g. to read its data or config).
    Exists,
    /// Installed and running (with the listed health checks passing).
    Running,
}

/// Limits for the service container; `None` means no limit.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceLimits {
    /// Memory limit in bytes (at least 1 MiB).
    #[serde(default)]
    pub memory: Option<u64>,
    /// CPU limit in thousandths of a core (1500 = one and a half cores).
    #[serde(default)]
    pub cpu_millicores: Option<u32>,
    /// Maximum number of processes and threads.
    #[serde(default)]
    pub pids: Option<u32>,
}

impl ServiceSpec {
    /// Parses `hearth.json` bytes (unknown fields are errors).
    pub fn from_json(bytes: &[u8]) -> Result<Self, SpecError> {
        serde_json::from_slice(bytes).map_err(|source| SpecError::Parse { source })
    }

    /// Serialises as pretty JSON with a trailing newline (deterministic).
    pub fn to_json(&self) -> Vec<u8> {
        // Plain data with string map keys: serialisation cannot fail.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// The JSON Schema of the spec, as checked in at `schema/service-spec.schema.json`.
    pub fn json_schema() -> serde_json::Value {
        schemars::schema_for!(ServiceSpec).to_value()
    }

    /// Checks the spec against itself and the package's manifest.
    pub fn validate(&self, manifest: &Manifest) -> Result<(), SpecError> {
        validate::validate(self, manifest)
    }

    /// The daemons in start order: every daemon after the ones it `requires`,
    /// ties in declaration order (stop in reverse). Fails like `validate` on an
    /// unknown `requires` entry or a cycle.
    pub fn start_order(&self) -> Result<Vec<&DaemonSpec>, SpecError> {
        validate::start_order(&self.daemons)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
