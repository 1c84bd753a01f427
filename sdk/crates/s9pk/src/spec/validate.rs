//! `ServiceSpec::validate`: every reference resolves, every value is sane.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{
    ActionSpec, DaemonSpec, DurationSpec, HookSpec, InterfaceSpec, MountSpec, Probe, Protocol,
    ServiceSpec, TlsTermination,
};
use crate::manifest::{Manifest, is_valid_id};

/// The service spec is malformed or inconsistent with the manifest.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// `hearth.json` is not valid JSON for a spec.
    #[error("parsing hearth.json: {source}")]
    Parse {
        /// The JSON error, with line and column.
        source: serde_json::Error,
    },
    /// Two entries of one list share an id.
    #[error("service field `{field}`: id {id:?} is used twice")]
    DuplicateId {
        /// Path of the second entry's id.
        field: String,
        /// The id.
        id: String,
    },
    /// A reference names something that does not exist.
    #[error("service field `{field}`: {what} {id:?} does not exist")]
    UnknownReference {
        /// Path of the reference.
        field: String,
        /// What kind of thing is referenced (`daemon`, `image`, `volume`, …).
        what: &'static str,
        /// The dangling id.
        id: String,
    },
    /// Daemons' `requires` form a cycle.
    #[error("service field `daemons`: `requires` forms a cycle: {cycle}")]
    RequiresCycle {
        /// The cycle, e.g. `a -> b -> a`.
        cycle: String,
    },
    /// Any other bad value.
    #[error("service field `{field}`: {reason}")]
    Invalid {
        /// Path of the field.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn check_id(field: String, id: &str) -> Result<(), SpecError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{id:?} is not a valid id (lowercase letters, digits and single dashes)"),
        ))
    }
}

/// Checks ids for format and uniqueness.
fn check_unique_ids<'a>(
    list: &str,
    ids: impl Iterator<Item = &'a str>,
) -> Result<BTreeSet<&'a str>, SpecError> {
    let mut seen = BTreeSet::new();
    for (i, id) in ids.enumerate() {
        let field = format!("{list}[{i}].id");
        check_id(field.clone(), id)?;
        if !seen.insert(id) {
            return Err(SpecError::DuplicateId {
                field,
                id: id.to_owned(),
            });
        }
    }
    Ok(seen)
}

fn check_duration(
    field: String,
    value: DurationSpec,
    min: Duration,
    max: Duration,
) -> Result<(), SpecError> {
    let d = value.get();
    if d < min || d > max {
        return Err(invalid(
            field,
            format!(
                "{value} is outside {} … {}",
                DurationSpec::from_millis(duration_millis(min)),
                DurationSpec::from_millis(duration_millis(max))
            ),
        ));
    }
    Ok(())
}

fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86400);

fn check_port(field: String, port: u16) -> Result<(), SpecError> {
    if port == 0 {
        return Err(invalid(field, "port 0 is not a port"));
    }
    Ok(())
}

fn check_command(field: String, command: &[String]) -> Result<(), SpecError> {
    match command.first() {
        None => Err(invalid(field, "the command is empty")),
        Some(program) if program.is_empty() => Err(invalid(field, "the program name is empty")),
        Some(_) if command.iter().any(|a| a.contains('\0')) => {
            Err(invalid(field, "an argument contains a NUL byte"))
        }
        Some(_) => Ok(()),
    }
}

fn check_env(field: &str, env: &BTreeMap<String, String>) -> Result<(), SpecError> {
    for (key, value) in env {
        let bad_key = key.is_empty()
            || key.starts_with(|c: char| c.is_ascii_digit())
            || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if bad_key {
            return Err(invalid(
                format!("{field}.{key}"),
                "environment names are letters, digits and `_`, not starting with a digit",
            ));
        }
        if value.contains('\0') {
            return Err(invalid(
                format!("{field}.{key}"),
                "the value contains a NUL byte",
            ));
        }
    }
    Ok(())
}

fn check_abs_path(field: String, path: &str) -> Result<(), SpecError> {
    if !path.starts_with('/') || path.split('/').any(|c| c == "..") || path.contains('\0') {
        return Err(invalid(
            field,
            format!("{path:?} must be an absolute path without `..`"),
        ));
    }
    Ok(())
}

fn check_image(field: String, image: &str, manifest: &Manifest) -> Result<(), SpecError> {
    if manifest.images.contains_key(image) {
        Ok(())
    } else {
        Err(SpecError::UnknownReference {
            field,
            what: "image (manifest `images`)",
            id: image.to_owned(),
        })
    }
}

fn check_volume(field: String, volume: &str, manifest: &Manifest) -> Result<(), SpecError> {
    if manifest.volumes.contains(volume) {
        Ok(())
    } else {
        Err(SpecError::UnknownReference {
            field,
            what: "volume (manifest `volumes`)",
            id: volume.to_owned(),
        })
    }
}

fn check_mounts(field: &str, mounts: &[MountSpec], manifest: &Manifest) -> Result<(), SpecError> {
    let mut paths = BTreeSet::new();
    for (i, mount) in mounts.iter().enumerate() {
        check_volume(format!("{field}[{i}].volume"), &mount.volume, manifest)?;
        check_abs_path(format!("{field}[{i}].path"), &mount.path)?;
        if !paths.insert(mount.path.as_str()) {
            return Err(invalid(
                format!("{field}[{i}].path"),
                format!("{:?} is mounted twice", mount.path),
            ));
        }
    }
    Ok(())
}

fn check_probe(field: &str, probe: &Probe) -> Result<(), SpecError> {
    match probe {
        Probe::Http(http) => {
            check_port(format!("{field}.http.port"), http.port)?;
            if !http.path.starts_with('/') {
                return Err(invalid(format!("{field}.http.path"), "must start with `/`"));
            }
            if !(100..=599).contains(&http.expected_status) {
                return Err(invalid(
                    format!("{field}.http.expectedStatus"),
                    format!("{} is not an HTTP status", http.expected_status),
                ));
            }
            Ok(())
        }
        Probe::Tcp(tcp) => check_port(format!("{field}.tcp.port"), tcp.port),
        Probe::Exec(exec) => check_command(format!("{field}.exec.command"), &exec.command),
    }
}

fn check_timing(
    field: &str,
    interval: DurationSpec,
    timeout: DurationSpec,
    grace: DurationSpec,
) -> Result<(), SpecError> {
    check_duration(
        format!("{field}.interval"),
        interval,
        Duration::from_millis(100),
        DAY,
    )?;
    check_duration(
        format!("{field}.timeout"),
        timeout,
        Duration::from_millis(100),
        HOUR,
    )?;
    check_duration(format!("{field}.gracePeriod"), grace, Duration::ZERO, DAY)
}

fn check_daemon(
    field: &str,
    daemon: &DaemonSpec,
    daemons: &BTreeSet<&str>,
    manifest: &Manifest,
) -> Result<(), SpecError> {
    check_image(format!("{field}.image"), &daemon.image, manifest)?;
    if let Some(command) = &daemon.command {
        check_command(format!("{field}.command"), command)?;
    }
    check_env(&format!("{field}.env"), &daemon.env)?;
    if let Some(workdir) = &daemon.workdir {
        check_abs_path(format!("{field}.workdir"), workdir)?;
    }
    check_mounts(&format!("{field}.mounts"), &daemon.mounts, manifest)?;
    for (i, required) in daemon.requires.iter().enumerate() {
        let rfield = format!("{field}.requires[{i}]");
        if !daemons.contains(required.as_str()) {
            return Err(SpecError::UnknownReference {
                field: rfield,
                what: "daemon",
                id: required.clone(),
            });
        }
        if *required == daemon.id {
            return Err(invalid(rfield, "a daemon cannot require itself"));
        }
    }
    check_duration(
        format!("{field}.stopTimeout"),
        daemon.stop_timeout,
        Duration::ZERO,
        10 * MINUTE,
    )?;
    if let Some(ready) = &daemon.ready {
        let rfield = format!("{field}.ready");
        check_probe(&format!("{rfield}.probe"), &ready.probe)?;
        check_timing(&rfield, ready.interval, ready.timeout, ready.grace_period)?;
    }
    check_unique_ids(
        &format!("{field}.healthChecks"),
        daemon.health_checks.iter().map(|c| c.id.as_str()),
    )?;
    for (i, check) in daemon.health_checks.iter().enumerate() {
        let cfield = format!("{field}.healthChecks[{i}]");
        if check.name.trim().is_empty() {
            return Err(invalid(format!("{cfield}.name"), "must not be empty"));
        }
        check_probe(&format!("{cfield}.probe"), &check.probe)?;
        check_timing(&cfield, check.interval, check.timeout, check.grace_period)?;
    }
    Ok(())
}

/// Finds a cycle in the `requires` graph (depth-first, three colours).
fn find_cycle(daemons: &[DaemonSpec]) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let index: BTreeMap<&str, usize> = daemons
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();
    let mut marks = vec![Mark::New; daemons.len()];
    let mut path: Vec<usize> = Vec::new();

    fn visit(
        node: usize,
        daemons: &[DaemonSpec],
        index: &BTreeMap<&str, usize>,
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        marks[node] = Mark::Active;
        path.push(node);
        for required in &daemons[node].requires {
            let Some(&next) = index.get(required.as_str()) else {
                continue;
            };
            match marks[next] {
                Mark::Active => {
                    let start = path.iter().position(|&n| n == next).unwrap_or(0);
                    let mut cycle: Vec<String> = path[start..]
                        .iter()
                        .map(|&n| daemons[n].id.clone())
                        .collect();
                    cycle.push(daemons[next].id.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(next, daemons, index, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[node] = Mark::Done;
        None
    }

    (0..daemons.len()).find_map(|start| {
        if marks[start] == Mark::New {
            visit(start, daemons, &index, &mut marks, &mut path)
        } else {
            None
        }
    })
}

fn check_interfaces(interfaces: &[InterfaceSpec]) -> Result<(), SpecError> {
    check_unique_ids("interfaces", interfaces.iter().map(|i| i.id.as_str()))?;
    let mut ports = BTreeSet::new();
    for (i, interface) in interfaces.iter().enumerate() {
        let field = format!("interfaces[{i}]");
        if interface.name.trim().is_empty() {
            return Err(invalid(format!("{field}.name"), "must not be empty"));
        }
        check_port(format!("{field}.port"), interface.port)?;
        let transport = match interface.protocol {
            Protocol::Udp => "udp",
            Protocol::Http | Protocol::Tcp => "tcp",
        };
        if !ports.insert((transport, interface.port)) {
            return Err(invalid(
                format!("{field}.port"),
                format!(
                    "{transport} port {} is used by another interface",
                    interface.port
                ),
            ));
        }
        if interface.protocol == Protocol::Udp && interface.tls() == TlsTermination::Host {
            return Err(invalid(
                format!("{field}.tls"),
                "the host cannot terminate TLS for udp",
            ));
        }
    }
    Ok(())
}

fn check_action(field: &str, action: &ActionSpec, manifest: &Manifest) -> Result<(), SpecError> {
    if action.name.trim().is_empty() {
        return Err(invalid(format!("{field}.name"), "must not be empty"));
    }
    check_image(format!("{field}.image"), &action.image, manifest)?;
    check_command(format!("{field}.command"), &action.command)?;
    check_env(&format!("{field}.env"), &action.env)?;
    if let Some(workdir) = &action.workdir {
        check_abs_path(format!("{field}.workdir"), workdir)?;
    }
    check_mounts(&format!("{field}.mounts"), &action.mounts, manifest)?;
    if let Some(input) = &action.input {
        let is_object_schema = input.as_object().is_some_and(|schema| {
            schema
                .get("type")
                .is_none_or(|t| t == &serde_json::Value::from("object"))
        });
        if !is_object_schema {
            return Err(invalid(
                format!("{field}.input"),
                "must be a JSON Schema object with `\"type\": \"object\"`",
            ));
        }
        super::action_input::check_action_schema(input).map_err(|why| {
            invalid(
                format!("{field}.input"),
                format!("not a usable JSON Schema: {why}"),
            )
        })?;
    }
    check_duration(format!("{field}.timeout"), action.timeout, SECOND, DAY)
}

fn check_hook(field: &str, hook: &HookSpec, manifest: &Manifest) -> Result<(), SpecError> {
    check_image(format!("{field}.image"), &hook.image, manifest)?;
    check_command(format!("{field}.command"), &hook.command)?;
    check_env(&format!("{field}.env"), &hook.env)?;
    check_mounts(&format!("{field}.mounts"), &hook.mounts, manifest)?;
    check_duration(format!("{field}.timeout"), hook.timeout, SECOND, DAY)
}

/// Kahn's algorithm, always picking the first ready daemon in declaration order.
pub(super) fn start_order(daemons: &[DaemonSpec]) -> Result<Vec<&DaemonSpec>, SpecError> {
    let index: BTreeMap<&str, usize> = daemons
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();
    let mut pending: Vec<usize> = vec![0; daemons.len()];
    for (i, daemon) in daemons.iter().enumerate() {
        for (j, required) in daemon.requires.iter().enumerate() {
            if !index.contains_key(required.as_str()) {
                return Err(SpecError::UnknownReference {
                    field: format!("daemons[{i}].requires[{j}]"),
                    what: "daemon",
                    id: required.clone(),
                });
            }
        }
        let unique: BTreeSet<&str> = daemon.requires.iter().map(String::as_str).collect();
        pending[i] = unique.len();
    }
    let mut order = Vec::with_capacity(daemons.len());
    let mut started = vec![false; daemons.len()];
    while order.len() < daemons.len() {
        let Some(next) = (0..daemons.len()).find(|&i| !started[i] && pending[i] == 0) else {
            let cycle = find_cycle(daemons).unwrap_or_default();
            return Err(SpecError::RequiresCycle {
                cycle: cycle.join(" -> "),
            });
        };
        started[next] = true;
        order.push(&daemons[next]);
        let id = daemons[next].id.as_str();
        for (i, daemon) in daemons.iter().enumerate() {
            if !started[i] && daemon.requires.iter().any(|r| r == id) {
                pending[i] -= 1;
            }
        }
    }
    Ok(order)
}

pub(super) fn validate(spec: &ServiceSpec, manifest: &Manifest) -> Result<(), SpecError> {
    if spec.daemons.is_empty() {
        return Err(invalid("daemons", "a service needs at least one daemon"));
    }
    let daemon_ids = check_unique_ids("daemons", spec.daemons.iter().map(|d| d.id.as_str()))?;
    for (i, daemon) in spec.daemons.iter().enumerate() {
        check_daemon(&format!("daemons[{i}]"), daemon, &daemon_ids, manifest)?;
    }
    if let Some(cycle) = find_cycle(&spec.daemons) {
        return Err(SpecError::RequiresCycle {
            cycle: cycle.join(" -> "),
        });
    }
    check_interfaces(&spec.interfaces)?;
    let mut caps = std::collections::BTreeSet::new();
    for cap in &spec.capabilities {
        if !caps.insert(cap) {
            return Err(invalid("capabilities", format!("{cap:?} is listed twice")));
        }
    }
    check_unique_ids("actions", spec.actions.iter().map(|a| a.id.as_str()))?;
    for (i, action) in spec.actions.iter().enumerate() {
        check_action(&format!("actions[{i}]"), action, manifest)?;
    }
    if let Some(backup) = &spec.backup {
        if backup.volumes.is_empty() && backup.hook.is_none() {
            return Err(invalid(
                "backup",
                "name the volumes to include, a hook, or both",
            ));
        }
        for (i, volume) in backup.volumes.iter().enumerate() {
            check_volume(format!("backup.volumes[{i}]"), volume, manifest)?;
        }
        if let Some(hook) = &backup.hook {
            check_hook("backup.hook", hook, manifest)?;
        }
        if let Some(hook) = &backup.restore_hook {
            check_hook("backup.restoreHook", hook, manifest)?;
        }
    }
    check_unique_ids(
        "dependencies",
        spec.dependencies.iter().map(|d| d.id.as_str()),
    )?;
    for (i, dependency) in spec.dependencies.iter().enumerate() {
        let field = format!("dependencies[{i}]");
        if !manifest.dependencies.contains_key(&dependency.id) {
            return Err(SpecError::UnknownReference {
                field: format!("{field}.id"),
                what: "dependency (manifest `dependencies`)",
                id: dependency.id.clone(),
            });
        }
        if dependency.kind == super::DependencyKind::Exists && !dependency.health_checks.is_empty()
        {
            return Err(invalid(
                format!("{field}.healthChecks"),
                "health checks can only be required of a `running` dependency",
            ));
        }
    }
    let limits = &spec.resources;
    if limits.memory.is_some_and(|m| m < 1 << 20) {
        return Err(invalid(
            "resources.memory",
            "less than 1 MiB (the unit is bytes)",
        ));
    }
    if limits.cpu_millicores == Some(0) {
        return Err(invalid("resources.cpuMillicores", "must be positive"));
    }
    if limits.pids == Some(0) {
        return Err(invalid("resources.pids", "must be positive"));
    }
    Ok(())
}
