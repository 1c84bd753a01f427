//! One reconcile step for one package: read the record, ask the runtime, decide
//! (`status::plan`), persist, act, persist. Blocking; the supervisor runs it in
//! `spawn_blocking`, tests call it directly with a fake runtime and a fake clock.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_layout::{
    CONTAINER_IMAGES_DIR, CONTAINER_SPEC_FILE, PACKAGE_ARCHIVE_DIR, PACKAGE_DATA_DIR,
    PACKAGE_IMAGE_DIR,
};
use hearth_lxc::{
    ContainerId, ContainerRuntime, ContainerSpec, ContainerState, InitSpec, Limits, NetworkSpec,
    RuntimeError,
};
use hearth_safefs::{Dir, SafeFsError};
use hearth_store::Store;

use crate::doc::{self, InstallState, PACKAGE_DATA, PackageEntry};
use crate::error::ReconcileError;
use crate::status::{self, Action, Desired, Observed, Seen};

/// The service spec's name in the config dir, where `hearth-container` reads it.
const SPEC_FILE: &str = "spec.json";
/// The package's config dir (host side of `/media/hearth/config`, mounted read-only):
/// what hearthd gives the container. Only hearthd writes it.
pub(crate) const CONFIG_DIR: &str = "config";
/// The package's socket dir (host side of `/media/hearth/rpc`, container-writable):
/// only `service.sock`; hearthd never follows anything in it (`hearth-safefs`).
pub(crate) const RPC_DIR: &str = "rpc";
/// The hosts file's name in the package's data dir (mounted at `/etc/hosts`).
const HOSTS_FILE: &str = "hosts";
/// The directory in the config dir holding each image's `<image>.json` / `.env`, where
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
            rpc_dir: dir.join(RPC_DIR),
            config_dir: Some(dir.join(CONFIG_DIR)),
            init: InitSpec {
                binary: self.init_binary.clone(),
                // Daemons start with the container until hearthd drives `start`/`stop`
                // over `service.sock`.
                args: {
                    let mut args = vec![
                        "--spec".into(),
                        CONTAINER_SPEC_FILE.into(),
                        "--autostart".into(),
                        "--images-dir".into(),
                        CONTAINER_IMAGES_DIR.into(),
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

/// The host side of a start: directories, the spec and the image defaults in the
/// config dir, the socket dir emptied, the hosts file.
///
/// The package dir is hearthd's; below it, the socket dir, the volumes and the
/// overlay upper are the container's (its root writes them, also while this runs), so
/// every operation there goes through `hearth-safefs`: nothing is followed, nothing
/// is written into them. What the container gets is written to the config dir, which
/// it sees read-only, with a temp file and a rename.
pub(crate) fn prepare(
    plan: &ContainerPlan,
    id: &str,
    spec: &ContainerSpec,
    names: &[(String, u8)],
) -> Result<(), ReconcileError> {
    let pkg_path = plan.package_dir(id);
    std::fs::create_dir_all(&pkg_path).map_err(|source| ReconcileError::Io {
        op: "create directory",
        path: pkg_path.clone(),
        source,
    })?;
    let pkg = Dir::open_trusted(&pkg_path).map_err(files("open package directory"))?;
    prepare_dirs(&pkg, spec)?;
    write_config(&plan.data_dir, id, &pkg)?;
    write_hosts(plan, id, names)
}

fn files(op: &'static str) -> impl FnOnce(SafeFsError) -> ReconcileError {
    move |source| ReconcileError::Files { op, source }
}

/// Creates the overlay dir, the socket dir (emptied: a socket, link or FIFO left by
/// the last run must not be what hearthd finds) and the volumes, below `pkg`.
fn prepare_dirs(pkg: &Dir, spec: &ContainerSpec) -> Result<(), ReconcileError> {
    let below = |dir: &Path| {
        dir.strip_prefix(pkg.path())
            .map(Path::to_owned)
            .map_err(|_| ReconcileError::Io {
                op: "create directory",
                path: dir.to_owned(),
                source: std::io::Error::other("not in the package directory"),
            })
    };
    pkg.create_dir_all(&below(&spec.data_dir)?, 0o755)
        .map_err(files("create the container directory"))?;
    pkg.create_dir_all(&below(&spec.rpc_dir)?, 0o755)
        .map_err(files("create the socket directory"))?
        .clear()
        .map_err(files("empty the socket directory"))?;
    for dir in spec.volumes.values() {
        pkg.create_dir_all(&below(dir)?, 0o755)
            .map_err(files("create a volume"))?;
    }
    Ok(())
}

/// Writes the hosts file in place (it is bind-mounted: a rename would leave a running
/// container with the old inode; it is only written before a start). The package dir
/// is hearthd's and the file is mounted read-only, so the path is not the container's.
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

/// Puts the installed service spec and image defaults where the container's init
/// reads them: `<pkg>/config/spec.json` and `<pkg>/config/images/` (replaced whole:
/// built as `.images.tmp`, renamed). The image defaults are
/// `packages/images/<id>/config` (none for a package installed before they were
/// kept: then the spec alone decides, as before).
fn write_config(data_dir: &Path, id: &str, pkg: &Dir) -> Result<(), ReconcileError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| ReconcileError::Io { op, path, source }
    };
    let config = pkg
        .create_dir_all(Path::new(CONFIG_DIR), 0o755)
        .map_err(files("create the config directory"))?;
    let from = crate::install::spec_path(data_dir, id);
    let bytes = std::fs::read(&from).map_err(io("read service spec", &from))?;
    config
        .write_file_atomic(SPEC_FILE, &bytes, 0o644)
        .map_err(files("write service spec"))?;
    let tmp = ".images.tmp";
    config
        .remove_entry(tmp)
        .map_err(files("remove old image defaults"))?;
    let staged = config
        .create_dir_all(Path::new(tmp), 0o755)
        .map_err(files("create image defaults"))?;
    let from = crate::install::image_config_dir(data_dir, id);
    match std::fs::read_dir(&from) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(io("read image defaults", &from))?;
                let path = entry.path();
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if entry.file_type().is_ok_and(|t| t.is_file()) {
                    let bytes = std::fs::read(&path).map_err(io("read image defaults", &path))?;
                    staged
                        .write_file_atomic(&name, &bytes, 0o644)
                        .map_err(files("write image defaults"))?;
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("read image defaults", &from)(e)),
    }
    config
        .remove_entry(IMAGES_DIR)
        .map_err(files("remove old image defaults"))?;
    config
        .rename(tmp, IMAGES_DIR)
        .map_err(files("put image defaults in place"))
}

/// Removes a package tree (its volumes and overlay upper are the container's):
/// `hearth_safefs::remove_dir_all`, which never follows a link inside the tree.
fn remove_dir(path: &Path) -> Result<(), ReconcileError> {
    hearth_safefs::remove_dir_all(path).map_err(files("remove"))
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
