//! One reconcile step for one package: read the record, ask the runtime, decide
//! (`status::plan`), persist, act, persist. Blocking; the supervisor runs it in
//! `spawn_blocking`, tests call it directly with a fake runtime and a fake clock.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_layout::{PACKAGE_ARCHIVE_DIR, PACKAGE_DATA_DIR, PACKAGE_IMAGE_DIR};
use hearth_lxc::{
    CONTAINER_RPC_DIR, ContainerId, ContainerRuntime, ContainerSpec, ContainerState, InitSpec,
    Limits, NetworkSpec, RuntimeError,
};
use hearth_store::Store;

use crate::doc::{self, InstallState, PACKAGE_DATA, PackageEntry};
use crate::error::ReconcileError;
use crate::status::{self, Action, Desired, Observed, Seen};

/// The service spec's name in the RPC dir, where `hearth-container` reads it.
const SPEC_FILE: &str = "spec.json";
/// The hosts file's name in the package's data dir (mounted at `/etc/hosts`).
const HOSTS_FILE: &str = "hosts";
/// The directory in the RPC dir holding each image's `<image>.json` / `.env`, where
/// `hearth-container --images-dir` reads the image defaults (env, user, workdir,
/// entrypoint + cmd).
const IMAGES_DIR: &str = "images";

/// How containers are laid out on this host.
#[derive(Debug, Clone)]
pub struct ContainerPlan {
    /// hearthd's data directory (packages live under `packages/`).
    pub data_dir: PathBuf,
    /// The init binary (`hearth-container`) bind-mounted into each container.
    pub init_binary: PathBuf,
    /// The bridge service containers join.
    pub bridge: String,
    /// The bridge's address; container `n` gets host number `n` in its network.
    pub gateway: Ipv4Addr,
    /// Prefix length of the service network (at most 24, so 253 services fit).
    pub prefix_len: u8,
    /// How long a stop waits before killing.
    pub stop_timeout: Duration,
    /// Largest size of one daemon log file in a container before it is rotated
    /// (`hearth-container --log-max-bytes`; a daemon keeps at most two files); `None`
    /// keeps hearth-container's default (1 MiB).
    pub log_max_bytes: Option<u64>,
}

/// What the caller should do after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The package is gone; end its task.
    Gone,
    /// Nothing to do until the store changes or the next tick.
    Idle,
    /// Run another step at once (a restart's stop finished).
    Again,
    /// Nothing to do before this time (ms since the epoch).
    WaitUntil(u64),
}

impl ContainerPlan {
    fn package_dir(&self, id: &str) -> PathBuf {
        self.data_dir.join(PACKAGE_DATA_DIR).join(id)
    }

    /// The host file bind-mounted at `/etc/hosts` in the container of `id`.
    pub(crate) fn hosts_path(&self, id: &str) -> PathBuf {
        self.package_dir(id).join(HOSTS_FILE)
    }

    /// The address of host number `index` in the service network.
    pub(crate) fn address(&self, index: u8) -> Result<Ipv4Addr, String> {
        if self.prefix_len > 24 {
            return Err(format!("prefix /{} leaves no room", self.prefix_len));
        }
        let mask = u32::MAX << (32 - u32::from(self.prefix_len));
        let address = Ipv4Addr::from((u32::from(self.gateway) & mask) | u32::from(index));
        if address == self.gateway {
            return Err(format!("address {address} is the gateway"));
        }
        Ok(address)
    }

    /// The container spec of a package; `names` are the packages whose addresses it
    /// resolves (`deps::names`): each becomes `HEARTH_<ID>_HOST` in its environment
    /// and a line of its hosts file (written by the caller at [`Self::hosts_path`]).
    pub(crate) fn spec(
        &self,
        id: &str,
        e: &PackageEntry,
        names: &[(String, u8)],
    ) -> Result<ContainerSpec, ReconcileError> {
        let err = |reason: String| ReconcileError::Spec {
            id: id.to_owned(),
            reason,
        };
        let cid = ContainerId::new(id).map_err(|e| err(e.to_string()))?;
        let address = self.address(e.container.index).map_err(err)?;
        let mut environment = BTreeMap::new();
        for (name, index) in names {
            let addr = self.address(*index).map_err(err)?;
            environment.insert(crate::deps::env_name(name), addr.to_string());
        }
        let dir = self.package_dir(id);
        Ok(ContainerSpec {
            id: cid,
            image: crate::install::image_path(&self.data_dir, id, &e.container.root_image),
            data_dir: dir.join("container"),
            volumes: e
                .container
                .volumes
                .iter()
                .map(|v| (v.clone(), dir.join("volumes").join(v)))
                .collect(),
            rpc_dir: dir.join("rpc"),
            init: InitSpec {
                binary: self.init_binary.clone(),
                // Daemons start with the container until hearthd drives `start`/`stop`
                // over `service.sock`.
                args: {
                    let mut args = vec![
                        "--spec".into(),
                        format!("{CONTAINER_RPC_DIR}/{SPEC_FILE}"),
                        "--autostart".into(),
                        "--images-dir".into(),
                        format!("{CONTAINER_RPC_DIR}/{IMAGES_DIR}"),
                    ];
                    if let Some(n) = self.log_max_bytes {
                        args.extend(["--log-max-bytes".into(), n.to_string()]);
                    }
                    args
                },
            },
            network: NetworkSpec {
                bridge: self.bridge.clone(),
                address,
                prefix_len: self.prefix_len,
                gateway: self.gateway,
            },
            limits: Limits {
                memory_bytes: e.container.memory,
                pids: e.container.pids.map(u64::from),
                cpu_shares: e
                    .container
                    .cpu_millicores
                    .map(|m| (u64::from(m) * 1024 / 1000).max(2)),
            },
            devices: Vec::new(),
            hosts_file: Some(self.hosts_path(id)),
            environment,
            id_map: hearth_lxc::IdMap::for_index(e.container.index),
            capabilities: e.container.capabilities.clone(),
        })
    }

    /// The hosts file content for `names` (see `deps::hosts_file`).
    pub(crate) fn hosts(&self, names: &[(String, u8)]) -> Result<String, String> {
        let resolved = names
            .iter()
            .map(|(id, index)| Ok((id.clone(), self.address(*index)?)))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(crate::deps::hosts_file(&resolved))
    }
}

fn runtime_err<'a>(
    op: &'static str,
    id: &'a str,
) -> impl FnOnce(RuntimeError) -> ReconcileError + 'a {
    move |source| ReconcileError::Runtime {
        op,
        id: id.to_owned(),
        source: Box::new(source),
    }
}

fn seen(runtime: &dyn ContainerRuntime, id: &ContainerId) -> Result<Seen, ReconcileError> {
    match runtime.state(id) {
        Ok(ContainerState::Running { .. }) => Ok(Seen::Running),
        Ok(ContainerState::Stopped) => Ok(Seen::Stopped),
        Ok(ContainerState::Starting | ContainerState::Stopping | ContainerState::Frozen) => {
            Ok(Seen::Transient)
        }
        Err(RuntimeError::NotFound { .. }) => Ok(Seen::Absent),
        Err(e) => Err(runtime_err("query", id.as_str())(e)),
    }
}

/// Persists `observed`; if `restart_done`, a still-`restarting` desired becomes `running`.
/// What the container reported is the status monitor's: while `running` the stored
/// reports are kept (they may be newer than the step's snapshot); otherwise they go
/// (`status::forget_reports`).
fn record(
    store: &Store,
    id: &str,
    observed: &Observed,
    restart_done: bool,
) -> Result<(), ReconcileError> {
    doc::update(store, id, "record status", |e| {
        let reported = std::mem::take(&mut e.status_info.observed.reported);
        e.status_info.observed = observed.clone();
        if observed.state == status::RunState::Running {
            e.status_info.observed.reported = reported;
        } else {
            status::forget_reports(&mut e.status_info.observed);
        }
        if restart_done && e.status_info.desired == Desired::Restarting {
            e.status_info.desired = Desired::Running;
        }
        Ok(())
    })?;
    Ok(())
}

/// One step for package `id` at time `now_ms`.
pub(crate) fn reconcile_once(
    store: &Store,
    runtime: &dyn ContainerRuntime,
    plan: &ContainerPlan,
    id: &str,
    now_ms: u64,
) -> Result<Outcome, ReconcileError> {
    let all = doc::all(store)?;
    let Some(entry) = all.get(id).cloned() else {
        return Ok(Outcome::Gone);
    };
    match entry.state_info.state {
        InstallState::Installing => return Ok(Outcome::Idle),
        // While the new version is staged the old one is reconciled as usual.
        InstallState::Updating
            if !entry
                .state_info
                .update
                .as_ref()
                .is_some_and(|u| u.phase.staging()) =>
        {
            return crate::update::step(store, runtime, plan, id, &entry, &all, now_ms);
        }
        InstallState::Updating => {}
        InstallState::Removing => {
            remove(store, runtime, plan, id, entry.state_info.keep_data)?;
            return Ok(Outcome::Gone);
        }
        InstallState::Installed => {}
    }
    let cid = ContainerId::new(id).map_err(|e| ReconcileError::Spec {
        id: id.to_owned(),
        reason: e.to_string(),
    })?;
    let deps = status::DepState {
        unready: crate::deps::unready(&entry, &all),
        down: crate::deps::down(&entry, &all),
    };
    let step = status::plan(&entry.status_info, seen(runtime, &cid)?, &deps, now_ms);
    let mut observed = entry.status_info.observed.clone();
    if let Some(new) = step.record {
        record(store, id, &new, false)?;
        if new.state == status::RunState::Waiting && new.waiting_for != observed.waiting_for {
            tracing::info!(package = %id, waiting_for = ?new.waiting_for, "waiting for dependencies");
        }
        observed = new;
    }
    match step.action {
        Action::None => {
            if observed.state == status::RunState::Running {
                crate::usage::sample(store, runtime, id, &cid, &entry, now_ms);
            }
            Ok(Outcome::Idle)
        }
        Action::WaitUntil(at) => Ok(Outcome::WaitUntil(at)),
        Action::Start => {
            let result = start_container(runtime, plan, id, &entry, &all);
            let failed = result.as_ref().err().map(ToString::to_string);
            if let Some(error) = &failed {
                tracing::warn!(package = %id, %error, "start failed");
            } else {
                tracing::info!(package = %id, "started");
            }
            let after = status::after_start(&observed, result.map_err(|e| e.to_string()), now_ms);
            record(store, id, &after, true)?;
            Ok(match after.retry_at {
                Some(at) if failed.is_some() => Outcome::WaitUntil(at),
                _ => Outcome::Idle,
            })
        }
        Action::Stop => {
            if !observed.waiting_for.is_empty() {
                tracing::info!(package = %id, dependencies = ?observed.waiting_for, "stopping: a dependency it needs is down");
            }
            let result = runtime
                .stop(&cid, plan.stop_timeout)
                .map_err(runtime_err("stop", id));
            let ok = result.is_ok();
            if let Err(error) = &result {
                tracing::warn!(package = %id, %error, "stop failed");
            } else {
                tracing::info!(package = %id, "stopped");
            }
            let after = status::after_stop(&observed, result.map_err(|e| e.to_string()));
            record(store, id, &after, ok)?;
            Ok(if ok { Outcome::Again } else { Outcome::Idle })
        }
    }
}

/// Creates (or re-creates) and starts the container of `id` with its current spec.
pub(crate) fn start_container(
    runtime: &dyn ContainerRuntime,
    plan: &ContainerPlan,
    id: &str,
    entry: &PackageEntry,
    all: &BTreeMap<String, PackageEntry>,
) -> Result<(), ReconcileError> {
    let names = crate::deps::names(id, entry, all);
    let spec = plan.spec(id, entry, &names)?;
    prepare(plan, id, &spec, &names)?;
    runtime.create(&spec).map_err(runtime_err("create", id))?;
    runtime.start(&spec.id).map_err(runtime_err("start", id))
}

/// The host side of a start: directories, the spec and the image defaults in the RPC
/// dir, the hosts file.
pub(crate) fn prepare(
    plan: &ContainerPlan,
    id: &str,
    spec: &ContainerSpec,
    names: &[(String, u8)],
) -> Result<(), ReconcileError> {
    prepare_dirs(spec)?;
    copy_spec(&plan.data_dir, id, &spec.rpc_dir)?;
    copy_image_configs(&plan.data_dir, id, &spec.rpc_dir)?;
    write_hosts(plan, id, names)
}

fn prepare_dirs(spec: &ContainerSpec) -> Result<(), ReconcileError> {
    for dir in std::iter::once(&spec.data_dir)
        .chain(std::iter::once(&spec.rpc_dir))
        .chain(spec.volumes.values())
    {
        std::fs::create_dir_all(dir).map_err(|source| ReconcileError::Io {
            op: "create directory",
            path: dir.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Writes the hosts file in place (it is bind-mounted: a rename would leave a running
/// container with the old inode; it is only written before a start).
fn write_hosts(
    plan: &ContainerPlan,
    id: &str,
    names: &[(String, u8)],
) -> Result<(), ReconcileError> {
    let content = plan.hosts(names).map_err(|reason| ReconcileError::Spec {
        id: id.to_owned(),
        reason,
    })?;
    let path = plan.hosts_path(id);
    std::fs::write(&path, content).map_err(|source| ReconcileError::Io {
        op: "write hosts file",
        path,
        source,
    })
}

/// Puts the installed service spec where the container's init reads it.
fn copy_spec(data_dir: &Path, id: &str, rpc_dir: &Path) -> Result<(), ReconcileError> {
    let from = crate::install::spec_path(data_dir, id);
    std::fs::copy(&from, rpc_dir.join(SPEC_FILE))
        .map(|_| ())
        .map_err(|source| ReconcileError::Io {
            op: "copy service spec",
            path: from,
            source,
        })
}

/// Replaces `<rpc dir>/images` with the installed image defaults
/// (`packages/images/<id>/config`; none for a package installed before they were
/// kept: then the spec alone decides, as before).
fn copy_image_configs(data_dir: &Path, id: &str, rpc_dir: &Path) -> Result<(), ReconcileError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| ReconcileError::Io { op, path, source }
    };
    let to = rpc_dir.join(IMAGES_DIR);
    remove_dir(&to)?;
    std::fs::create_dir_all(&to).map_err(io("create directory", &to))?;
    let from = crate::install::image_config_dir(data_dir, id);
    let entries = match std::fs::read_dir(&from) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("read image defaults", &from)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io("read image defaults", &from))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            let path = entry.path();
            std::fs::copy(&path, to.join(entry.file_name()))
                .map_err(io("copy image defaults", &path))?;
        }
    }
    Ok(())
}

fn remove_dir(path: &Path) -> Result<(), ReconcileError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ReconcileError::Io {
            op: "remove",
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Destroys the container, removes archive and image (and data unless `keep_data`),
/// then the entry. Each step is idempotent, so a failure is retried from the start.
fn remove(
    store: &Store,
    runtime: &dyn ContainerRuntime,
    plan: &ContainerPlan,
    id: &str,
    keep_data: bool,
) -> Result<(), ReconcileError> {
    if let Ok(cid) = ContainerId::new(id) {
        runtime.destroy(&cid).map_err(runtime_err("destroy", id))?;
    }
    remove_dir(&plan.data_dir.join(PACKAGE_ARCHIVE_DIR).join(id))?;
    remove_dir(&plan.data_dir.join(PACKAGE_IMAGE_DIR).join(id))?;
    if !keep_data {
        remove_dir(&plan.package_dir(id))?;
    }
    store
        .mutate(|d| {
            doc::object_mut(d, PACKAGE_DATA).map(|m| {
                m.remove(id);
            })
        })
        .map_err(|e| doc::mutate_error("remove package entry", e))?;
    tracing::info!(package = %id, keep_data, "uninstalled");
    Ok(())
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
