//! Updates: `package.install` of another version of an installed package.
//!
//! # Order
//! The call (`install::update`, blocking, from the RPC) checks the new archive exactly
//! like an install (signature, hashes, signer, manifest, spec, arch, OS, dependencies),
//! then refuses the same version, an older one unless `allowDowngrade`, and one outside
//! the range an installed dependent needs. It records
//! `stateInfo {state: updating, phase, update {from, to, phase, previous, next}}`
//! (the id is reserved atomically; the old version keeps running), copies the archive
//! to `packages/archive/<id>/<to>.s9pk` (phase `copying`) and stages the new root image
//! and `hearth.json` in `packages/update/<id>/next/` (phase `unpacking`), then hands
//! over to the reconciler with phase `stopping` and returns.
//!
//! The reconciler ([`step`]) then drives one phase per step, persisting the next phase
//! before it acts, every action idempotent so that a hearthd restart resumes it:
//!
//! | phase          | action                                                        |
//! |----------------|---------------------------------------------------------------|
//! | `stopping`     | stop the old container                                        |
//! | `snapshotting` | copy `volumes/` to `snapshots/<from>` (`cp -a --reflink=auto` into `<from>.tmp`, then rename) |
//! | `swapping`     | destroy the container definition (the image is remounted), move `images/<id>` and the overlay upper aside to `packages/update/<id>/prev*`, move `next/` to `images/<id>`, switch the entry to the new release |
//! | `migrating`    | if the spec has `migration`: start the container without its daemons, with `HEARTH_PREVIOUS_VERSION`, run the command (timeout), stop it |
//! | `starting`     | start the new version (skipped, with the health check, if the package was stopped) |
//! | `checking`     | wait until every health check is `success`; past the deadline (largest health check grace period + interval + timeout, at least 10 s) roll back |
//! | `committing`   | delete the old archive, image, upper and the snapshot; `installed` |
//! | `rollingBack`  | stop, destroy, put back the old image, upper and the volume snapshot, delete the new archive, restore the entry; `installed` with `lastError` |
//!
//! Both ends add a notification (`/notifications`) saying what happened and why.
//!
//! # Crash safety
//! `Packages::recover` (hearthd start-up) cancels updates still `copying`/`unpacking`
//! (the staged files are deleted, the old version was never touched) and turns an
//! update that was `migrating` into a roll-back (a half-run migration is not trusted).
//! Every other phase is resumed: each action checks what is already done (renames
//! are atomic; a snapshot exists only once complete).
//!
//! # Limitations
//! * Dependents' version ranges are checked against the new version at the call
//!   (`breaksDependents` refusal, listing them); a dependent is not restarted.
//! * The snapshot is a full copy where reflinks are not available (ext4): an update
//!   needs free space for the volumes once more. It is deleted once the update is
//!   committed.
//! * Start/stop/restart/uninstall are refused while an update runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_layout::{PACKAGE_DATA_DIR, PACKAGE_IMAGE_DIR};
use hearth_lxc::{ContainerId, ContainerRuntime, RuntimeError};
use hearth_rpc::methods::notification::NotificationLevel;
use hearth_s9pk::spec::{MigrationSpec, ServiceSpec};
use hearth_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::doc::{self, ContainerInfo, DependencyInfo, InstallState, PackageEntry, Signer};
use crate::error::ReconcileError;
use crate::reconcile::{ContainerPlan, Outcome};
use crate::status::{self, Desired, RunState};

/// Where updates stage the new image and keep the old one: `packages/update/<id>/`.
pub(crate) const UPDATE_DIR: &str = "packages/update";
/// Env var holding the replaced version while the migration runs.
pub(crate) const PREVIOUS_VERSION_ENV: &str = "HEARTH_PREVIOUS_VERSION";
/// Shortest wait for a new version to become healthy.
const MIN_HEALTH_WAIT_MS: u64 = 10_000;
/// How often `checking` looks at the health reports.
const CHECK_EVERY_MS: u64 = 1_000;

/// `stateInfo.update.phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum UpdatePhase {
    /// The new archive is being copied (the old version runs).
    Copying,
    /// The new image is being staged (the old version runs).
    Unpacking,
    /// The old container is being stopped.
    Stopping,
    /// The volumes are being copied to the snapshot.
    Snapshotting,
    /// Image, overlay upper and entry are being switched to the new version.
    Swapping,
    /// The new version's migration runs.
    Migrating,
    /// The new version is being started.
    Starting,
    /// Waiting for the new version's health checks.
    Checking,
    /// Deleting what the old version left.
    Committing,
    /// Putting the old version and its data back.
    RollingBack,
}

impl UpdatePhase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            UpdatePhase::Copying => "copying",
            UpdatePhase::Unpacking => "unpacking",
            UpdatePhase::Stopping => "stopping",
            UpdatePhase::Snapshotting => "snapshotting",
            UpdatePhase::Swapping => "swapping",
            UpdatePhase::Migrating => "migrating",
            UpdatePhase::Starting => "starting",
            UpdatePhase::Checking => "checking",
            UpdatePhase::Committing => "committing",
            UpdatePhase::RollingBack => "rollingBack",
        }
    }

    /// Phases run by the install call while the old version keeps running.
    pub(crate) fn staging(self) -> bool {
        matches!(self, UpdatePhase::Copying | UpdatePhase::Unpacking)
    }
}

/// What a version of a package is, as recorded in its entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Release {
    pub(crate) manifest: Value,
    pub(crate) signer: Signer,
    pub(crate) archive: String,
    pub(crate) container: ContainerInfo,
    #[serde(default)]
    pub(crate) dependencies: BTreeMap<String, DependencyInfo>,
}

impl Release {
    pub(crate) fn of(e: &PackageEntry) -> Release {
        Release {
            manifest: e.manifest.clone(),
            signer: e.signer.clone(),
            archive: e.archive.clone(),
            container: e.container.clone(),
            dependencies: e.dependencies.clone(),
        }
    }

    fn apply(&self, e: &mut PackageEntry) {
        e.manifest = self.manifest.clone();
        e.signer = self.signer.clone();
        e.archive = self.archive.clone();
        e.container = self.container.clone();
        e.dependencies = self.dependencies.clone();
    }
}

/// `stateInfo.update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpdateRecord {
    /// The installed version being replaced.
    pub(crate) from: String,
    /// The version being installed.
    pub(crate) to: String,
    /// Where the update is.
    pub(crate) phase: UpdatePhase,
    /// While `checking`: roll back if not healthy by then (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deadline: Option<u64>,
    /// While `rollingBack`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// The old release (restored by a roll-back).
    pub(crate) previous: Release,
    /// The new release (recorded by `swapping`).
    pub(crate) next: Release,
}

/// `packages/update/<id>` under `data_dir`.
pub(crate) fn update_dir(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join(UPDATE_DIR).join(id)
}

/// Where the new image and spec are staged.
pub(crate) fn next_dir(data_dir: &Path, id: &str) -> PathBuf {
    update_dir(data_dir, id).join("next")
}

fn prev_images(data_dir: &Path, id: &str) -> PathBuf {
    update_dir(data_dir, id).join("prev-images")
}

fn prev_upper(data_dir: &Path, id: &str) -> PathBuf {
    update_dir(data_dir, id).join("prev-container")
}

fn package_dir(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join(PACKAGE_DATA_DIR).join(id)
}

/// `packages/data/<id>/snapshots/<version>`: the volumes before the update.
pub(crate) fn snapshot_dir(data_dir: &Path, id: &str, version: &str) -> PathBuf {
    package_dir(data_dir, id).join("snapshots").join(version)
}

/// Where a snapshot is copied before it is renamed into place.
fn snapshot_tmp(data_dir: &Path, id: &str, version: &str) -> PathBuf {
    package_dir(data_dir, id)
        .join("snapshots")
        .join(format!("{version}.tmp"))
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ReconcileError + 'a {
    move |source| ReconcileError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn remove_all(path: &Path) -> Result<(), ReconcileError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", path)(e)),
        _ => Ok(()),
    }
}

fn remove_file(path: &Path) -> Result<(), ReconcileError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", path)(e)),
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), ReconcileError> {
    std::fs::rename(from, to).map_err(io("rename", from))
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

/// Removes what an unfinished staging (`copying`/`unpacking`) wrote: the new archive
/// (unless it is the installed one) and the staging dir.
pub(crate) fn discard_staging(data_dir: &Path, rec: &UpdateRecord) {
    if rec.next.archive != rec.previous.archive {
        let _ = std::fs::remove_file(data_dir.join(&rec.next.archive));
    }
    if let Some(id) = rec.next.manifest.get("id").and_then(Value::as_str) {
        let _ = std::fs::remove_dir_all(update_dir(data_dir, id));
    }
}

/// Sets the update phase (mirrored in `stateInfo.phase`), with `f` for more changes.
fn set_phase(
    store: &Store,
    id: &str,
    phase: UpdatePhase,
    f: impl FnOnce(&mut PackageEntry, &mut UpdateRecord),
) -> Result<(), ReconcileError> {
    doc::update(store, id, "record update progress", |e| {
        let mut rec =
            e.state_info
                .update
                .take()
                .ok_or_else(|| crate::error::PackageError::Document {
                    pointer: doc::entry_pointer(id),
                    reason: "updating without an update record".into(),
                })?;
        rec.phase = phase;
        f(e, &mut rec);
        e.state_info.phase = Some(phase.as_str().to_owned());
        e.state_info.update = Some(rec);
        Ok(())
    })?;
    tracing::info!(package = %id, phase = phase.as_str(), "update");
    Ok(())
}

fn begin_rollback(store: &Store, id: &str, why: String) -> Result<Outcome, ReconcileError> {
    tracing::warn!(package = %id, error = %why, "update failed; rolling back");
    set_phase(store, id, UpdatePhase::RollingBack, |_, rec| {
        rec.error = Some(why);
        rec.deadline = None;
    })?;
    Ok(Outcome::Again)
}

fn is_running(runtime: &dyn ContainerRuntime, cid: &ContainerId) -> Result<bool, ReconcileError> {
    match runtime.state(cid) {
        Ok(hearth_lxc::ContainerState::Stopped) | Err(RuntimeError::NotFound { .. }) => Ok(false),
        Ok(_) => Ok(true),
        Err(e) => Err(runtime_err("query", cid.as_str())(e)),
    }
}

fn stop(
    runtime: &dyn ContainerRuntime,
    plan: &ContainerPlan,
    cid: &ContainerId,
) -> Result<(), ReconcileError> {
    if is_running(runtime, cid)? {
        runtime
            .stop(cid, plan.stop_timeout)
            .map_err(runtime_err("stop", cid.as_str()))?;
    }
    Ok(())
}

/// One step of the update of `id` (state `updating`, phase past staging).
pub(crate) fn step(
    store: &Store,
    runtime: &dyn ContainerRuntime,
    plan: &ContainerPlan,
    id: &str,
    entry: &PackageEntry,
    all: &BTreeMap<String, PackageEntry>,
    now_ms: u64,
) -> Result<Outcome, ReconcileError> {
    let Some(rec) = entry.state_info.update.clone() else {
        return Err(ReconcileError::Spec {
            id: id.to_owned(),
            reason: "updating without an update record".into(),
        });
    };
    let cid = ContainerId::new(id).map_err(|e| ReconcileError::Spec {
        id: id.to_owned(),
        reason: e.to_string(),
    })?;
    let data = &plan.data_dir;
    match rec.phase {
        UpdatePhase::Copying | UpdatePhase::Unpacking => Ok(Outcome::Idle),
        UpdatePhase::Stopping => {
            stop(runtime, plan, &cid)?;
            set_phase(store, id, UpdatePhase::Snapshotting, |e, _| {
                e.status_info.observed = status::after_stop(&e.status_info.observed, Ok(()));
            })?;
            Ok(Outcome::Again)
        }
        UpdatePhase::Snapshotting => match snapshot(data, id, &rec.from) {
            Ok(()) => {
                set_phase(store, id, UpdatePhase::Swapping, |_, _| {})?;
                Ok(Outcome::Again)
            }
            Err(e) => begin_rollback(store, id, format!("snapshot of the volumes failed: {e}")),
        },
        UpdatePhase::Swapping => {
            // The container would keep the old image mounted: drop its definition.
            runtime.destroy(&cid).map_err(runtime_err("destroy", id))?;
            swap(data, id)?;
            set_phase(store, id, UpdatePhase::Migrating, |e, rec| {
                rec.next.apply(e);
            })?;
            Ok(Outcome::Again)
        }
        UpdatePhase::Migrating => {
            let spec = installed_spec(data, id)?;
            match &spec.migration {
                None => {}
                Some(m) => {
                    if let Err(why) = migrate(runtime, plan, id, entry, all, m, &rec.from) {
                        return begin_rollback(store, id, why);
                    }
                }
            }
            set_phase(store, id, UpdatePhase::Starting, |_, _| {})?;
            Ok(Outcome::Again)
        }
        UpdatePhase::Starting => {
            if entry.status_info.desired == Desired::Stopped {
                set_phase(store, id, UpdatePhase::Committing, |_, _| {})?;
                return Ok(Outcome::Again);
            }
            let spec = installed_spec(data, id)?;
            match crate::reconcile::start_container(runtime, plan, id, entry, all) {
                Ok(()) => {
                    let deadline = now_ms + health_wait_ms(&spec);
                    set_phase(store, id, UpdatePhase::Checking, |e, rec| {
                        e.status_info.observed =
                            status::after_start(&e.status_info.observed, Ok(()), now_ms);
                        rec.deadline = Some(deadline);
                    })?;
                    Ok(Outcome::WaitUntil(now_ms + CHECK_EVERY_MS))
                }
                Err(e) => begin_rollback(store, id, format!("the new version did not start: {e}")),
            }
        }
        UpdatePhase::Checking => {
            let deadline = rec.deadline.unwrap_or(now_ms);
            if !is_running(runtime, &cid)? {
                return begin_rollback(store, id, "the new version's container stopped".into());
            }
            if entry.status_info.observed.state == RunState::Running
                && crate::deps::checks_pass(entry, &[])
            {
                set_phase(store, id, UpdatePhase::Committing, |_, _| {})?;
                return Ok(Outcome::Again);
            }
            if now_ms >= deadline {
                return begin_rollback(store, id, unhealthy_reason(entry));
            }
            Ok(Outcome::WaitUntil(deadline.min(now_ms + CHECK_EVERY_MS)))
        }
        UpdatePhase::Committing => {
            if rec.previous.archive != rec.next.archive {
                remove_file(&data.join(&rec.previous.archive))?;
            }
            remove_all(&update_dir(data, id))?;
            remove_all(&snapshot_dir(data, id, &rec.from))?;
            finish(
                store,
                id,
                NotificationLevel::Success,
                &format!("{id} updated"),
                &format!("{id} was updated from {} to {}.", rec.from, rec.to),
                |_| {},
            )?;
            tracing::info!(package = %id, from = %rec.from, to = %rec.to, "update committed");
            Ok(Outcome::Again)
        }
        UpdatePhase::RollingBack => {
            stop(runtime, plan, &cid)?;
            runtime.destroy(&cid).map_err(runtime_err("destroy", id))?;
            restore(data, id, &rec)?;
            let why = rec
                .error
                .clone()
                .unwrap_or_else(|| "unknown failure".into());
            let message = format!(
                "The update of {id} from {} to {} failed and was rolled back to {} with its \
                 data as it was before the update: {why}",
                rec.from, rec.to, rec.from
            );
            finish(
                store,
                id,
                NotificationLevel::Error,
                &format!("Update of {id} rolled back"),
                &message,
                |e| {
                    rec.previous.apply(e);
                    e.status_info.observed = status::after_stop(&e.status_info.observed, Ok(()));
                    e.status_info.observed.last_error =
                        Some(format!("update to {} rolled back: {why}", rec.to));
                },
            )?;
            tracing::warn!(package = %id, from = %rec.from, to = %rec.to, error = %why, "update rolled back");
            Ok(Outcome::Again)
        }
    }
}

/// Ends the update: `installed`, no update record, `f` applied, a notification.
fn finish(
    store: &Store,
    id: &str,
    level: NotificationLevel,
    title: &str,
    message: &str,
    f: impl FnOnce(&mut PackageEntry),
) -> Result<(), ReconcileError> {
    store
        .mutate(|d| {
            doc::update_in(d, id, |e| {
                e.state_info.state = InstallState::Installed;
                e.state_info.phase = None;
                e.state_info.update = None;
                f(e);
                Ok(())
            })?;
            crate::notify::add(d, level, title, message)
        })
        .map_err(|e| doc::mutate_error("finish update", e))?;
    Ok(())
}

/// The spec installed in `images/<id>/hearth.json`.
fn installed_spec(data: &Path, id: &str) -> Result<ServiceSpec, ReconcileError> {
    let path = crate::install::spec_path(data, id);
    let bytes = std::fs::read(&path).map_err(io("read service spec", &path))?;
    ServiceSpec::from_json(&bytes).map_err(|e| ReconcileError::Spec {
        id: id.to_owned(),
        reason: format!("{}: {e}", path.display()),
    })
}

/// How long `checking` waits: the slowest health check's grace period + interval +
/// timeout, at least [`MIN_HEALTH_WAIT_MS`] (readiness probes do not count: a daemon
/// that is never ready fails its health checks too).
pub(crate) fn health_wait_ms(spec: &ServiceSpec) -> u64 {
    let ms = |d: &hearth_s9pk::spec::DurationSpec| {
        u64::try_from(d.get().as_millis()).unwrap_or(u64::MAX)
    };
    spec.daemons
        .iter()
        .flat_map(|d| &d.health_checks)
        .map(|h| ms(&h.grace_period) + ms(&h.interval) + ms(&h.timeout))
        .max()
        .unwrap_or(0)
        .max(MIN_HEALTH_WAIT_MS)
}

fn unhealthy_reason(entry: &PackageEntry) -> String {
    let health = entry.status_info.observed.reported.get("health");
    let failing: Vec<String> = entry
        .container
        .health_checks
        .iter()
        .filter_map(|check| {
            let c = health.and_then(|h| h.get(check));
            let result = c
                .and_then(|c| c.get("result"))
                .and_then(Value::as_str)
                .unwrap_or("not reported");
            (result != "success").then(|| {
                match c.and_then(|c| c.get("message")).and_then(Value::as_str) {
                    Some(m) => format!("{check}: {result} ({m})"),
                    None => format!("{check}: {result}"),
                }
            })
        })
        .collect();
    if failing.is_empty() {
        "the new version did not report running in time".into()
    } else {
        format!(
            "the new version was not healthy within its grace period: {}",
            failing.join("; ")
        )
    }
}

/// `volumes/` → `snapshots/<version>` (complete or absent: copied to `.tmp`, renamed).
fn snapshot(data: &Path, id: &str, version: &str) -> Result<(), ReconcileError> {
    let dest = snapshot_dir(data, id, version);
    if dest.exists() {
        return Ok(());
    }
    let volumes = package_dir(data, id).join("volumes");
    std::fs::create_dir_all(&volumes).map_err(io("create directory", &volumes))?;
    let parent = dest.parent().unwrap_or(data);
    std::fs::create_dir_all(parent).map_err(io("create directory", parent))?;
    let tmp = snapshot_tmp(data, id, version);
    remove_all(&tmp)?;
    let out = std::process::Command::new("cp")
        .args(["-a", "--reflink=auto", "--"])
        .arg(&volumes)
        .arg(&tmp)
        .output()
        .map_err(io("run cp for", &volumes))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(ReconcileError::Io {
            op: "copy volumes to snapshot",
            path: tmp,
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        });
    }
    let dir = std::fs::File::open(parent).map_err(io("open", parent))?;
    rename(&tmp, &dest)?;
    dir.sync_all().map_err(io("sync", parent))
}

/// Old image dir and overlay upper aside, staged image dir into place (resumable).
fn swap(data: &Path, id: &str) -> Result<(), ReconcileError> {
    let images = data.join(PACKAGE_IMAGE_DIR).join(id);
    let next = next_dir(data, id);
    let prev = prev_images(data, id);
    let upper = package_dir(data, id).join("container");
    let prev_up = prev_upper(data, id);
    if next.exists() {
        if images.exists() && !prev.exists() {
            rename(&images, &prev)?;
        }
        if upper.exists() && !prev_up.exists() {
            rename(&upper, &prev_up)?;
        }
        remove_all(&images)?;
        rename(&next, &images)?;
    }
    Ok(())
}

/// The old image dir, overlay upper and volumes back (resumable).
fn restore(data: &Path, id: &str, rec: &UpdateRecord) -> Result<(), ReconcileError> {
    let images = data.join(PACKAGE_IMAGE_DIR).join(id);
    let prev = prev_images(data, id);
    if prev.exists() {
        remove_all(&images)?;
        rename(&prev, &images)?;
    }
    let upper = package_dir(data, id).join("container");
    let prev_up = prev_upper(data, id);
    if prev_up.exists() {
        remove_all(&upper)?;
        rename(&prev_up, &upper)?;
    }
    let snap = snapshot_dir(data, id, &rec.from);
    if snap.exists() {
        let volumes = package_dir(data, id).join("volumes");
        remove_all(&volumes)?;
        rename(&snap, &volumes)?;
    }
    remove_all(&snapshot_tmp(data, id, &rec.from))?;
    if rec.next.archive != rec.previous.archive {
        remove_file(&data.join(&rec.next.archive))?;
    }
    remove_all(&update_dir(data, id))
}

/// Runs the migration in the package's container, started without its daemons.
fn migrate(
    runtime: &dyn ContainerRuntime,
    plan: &ContainerPlan,
    id: &str,
    entry: &PackageEntry,
    all: &BTreeMap<String, PackageEntry>,
    m: &MigrationSpec,
    from: &str,
) -> Result<(), String> {
    let cid = ContainerId::new(id).map_err(|e| e.to_string())?;
    let names = crate::deps::names(id, entry, all);
    let mut spec = plan.spec(id, entry, &names).map_err(|e| e.to_string())?;
    spec.init.args.retain(|a| a != "--autostart");
    spec.environment
        .insert(PREVIOUS_VERSION_ENV.to_owned(), from.to_owned());
    crate::reconcile::prepare(plan, id, &spec, &names).map_err(|e| e.to_string())?;
    runtime
        .create(&spec)
        .map_err(|e| format!("migration: {e}"))?;
    runtime.start(&cid).map_err(|e| format!("migration: {e}"))?;
    tracing::info!(package = %id, command = ?m.command, %from, "running the migration");
    let timeout = m.timeout.get();
    let result = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let (cid, command) = (&cid, &m.command);
        s.spawn(move || {
            let _ = tx.send(runtime.exec(cid, command));
        });
        match rx.recv_timeout(timeout) {
            Ok(r) => r.map_err(|e| format!("migration: {e}")),
            Err(_) => {
                // Stopping the container ends the command; the thread then returns.
                let _ = runtime.stop(cid, Duration::ZERO);
                Err(format!(
                    "the migration ran longer than {}s",
                    timeout.as_secs()
                ))
            }
        }
    });
    let stopped = runtime
        .stop(&cid, plan.stop_timeout)
        .map_err(|e| format!("stop after the migration: {e}"));
    // A new spec (with --autostart) is created at start; drop this one.
    let destroyed = runtime
        .destroy(&cid)
        .map_err(|e| format!("after the migration: {e}"));
    let out = result?;
    stopped?;
    destroyed?;
    if out.code == Some(0) {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr
            .trim()
            .chars()
            .rev()
            .take(500)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(match out.code {
            Some(code) => format!("the migration exited with status {code}: {tail}"),
            None => format!("the migration was killed: {tail}"),
        })
    }
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
