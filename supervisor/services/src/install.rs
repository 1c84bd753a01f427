//! `package.install` from a file on the server.
//!
//! # Order (what makes it safe)
//! 1. Open the archive: signature checked before the root TOC is trusted.
//! 2. `verify_all`: every TOC and every file hash.
//! 3. Signer against the trusted keys (refused unless `allowUntrusted`).
//! 4. Manifest and service spec parsed and validated; architecture (an image for this
//!    host's arch, in the archive), OS version, required dependencies (all problems
//!    listed at once).
//! 5. Only then: an `installing` entry is recorded (the id is reserved atomically), the
//!    archive is copied filtered to this arch (`filter_arch`, verified while copied,
//!    temp file + rename) to `packages/archive/<id>/<version>.s9pk`, the root image is
//!    extracted verified to `packages/images/<id>/<image>.squashfs` (temp + rename),
//!    each image's defaults (`images/<arch>/<image>.json` and `.env`: entrypoint, cmd,
//!    user, workdir, environment, as `hearth s9pk pack` writes them) to
//!    `packages/images/<id>/config/` (given to `hearth-container` as its
//!    `--images-dir` at every start), and the entry becomes `installed` with desired
//!    state `stopped`.
//!
//! A failure in step 5 removes what was written and the entry. Steps 1–4 write nothing.
//!
//! # Limitations
//! * Installing over an installed id is an update (`update.rs`).
//! * Progress: `stateInfo.phase` (`copying`, `unpacking`) and `stateInfo.progress
//!   {phase: copy|unpack, bytesDone, bytesTotal}` (bytes written at most every 250 ms,
//!   `progress.rs`); the verification before the entry exists is not visible in the
//!   state.
//! * Packages without `hearth.json` (StartOS JavaScript packages) are refused.
//! * Images that would need emulation (`emulateMissingAs`) are refused.
//!
//! # Rejected alternatives
//! Mounting the squashfs straight out of the archive (loop device with an offset): no
//! extra disk space, but the reader does not expose body offsets yet and a loop device
//! bypasses the hash check on every later read. Extraction verifies once.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use hearth_layout::{PACKAGE_ARCHIVE_DIR, PACKAGE_DATA_DIR, PACKAGE_IMAGE_DIR};
use hearth_rpc::methods::package::InstallResult;
use hearth_s9pk::manifest::{ExtendedVersion, Manifest, Version, VersionRange};
use hearth_s9pk::spec::ServiceSpec;
use hearth_s9pk::{S9pkReader, VerifyingKey};
use hearth_store::{MutateError, Store};
use serde_json::Value;

use crate::doc::{
    self, ContainerInfo, DependencyInfo, DependencyKind, InstallState, PACKAGE_DATA, PackageEntry,
    Signer, StateInfo,
};
use crate::error::InstallError;
use crate::progress;
use crate::status::StatusInfo;
use crate::update::{Release, UpdatePhase, UpdateRecord};

/// Largest `manifest.json` / `hearth.json` read.
const MAX_META: u64 = 1 << 20;

/// What the host offers packages.
#[derive(Debug, Clone)]
pub struct Host {
    /// CPU architecture as packages name it (`x86_64`, `aarch64`, `riscv64`).
    pub arch: String,
    /// The OS version packages' `osVersion` is compared with.
    pub os_version: Version,
}

impl Host {
    /// This machine: its architecture and the StartOS API level Hearth implements
    /// (`hearth_s9pk::manifest::DEFAULT_OS_VERSION`, what `hearth s9pk pack` writes).
    pub fn this_machine() -> Host {
        Host {
            arch: std::env::consts::ARCH.to_owned(),
            os_version: Version::release(hearth_s9pk::manifest::DEFAULT_OS_VERSION),
        }
    }
}

/// Everything checked and read before anything is written.
struct Checked {
    manifest: Manifest,
    manifest_json: Value,
    spec: ServiceSpec,
    /// `hearth.json` as read (verified) from the archive.
    spec_json: Vec<u8>,
    root_image: String,
    signer: Signer,
    /// Size of the package file.
    source_len: u64,
}

type Reader = S9pkReader<BufReader<File>>;

fn open_reader(path: &Path) -> Result<Reader, InstallError> {
    let file = File::open(path).map_err(|source| InstallError::Open {
        path: path.to_owned(),
        source,
    })?;
    reader_of(file, path)
}

fn reader_of(file: File, path: &Path) -> Result<Reader, InstallError> {
    S9pkReader::open(BufReader::new(file), None).map_err(|source| InstallError::Verify {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// Opens `path` for `package.install {path}`: only a regular file below one of
/// `dirs` (the first is the default; a relative `path` is taken below it), reached
/// without following any symlink below the directory (`openat2` with
/// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`, `O_NOFOLLOW`),
/// opened `O_NONBLOCK` (a FIFO cannot park the thread) and checked with `fstat`
/// after the open (no race with a swap). Every refusal is the same
/// [`InstallError::NotImportable`]: it says nothing about what exists outside, or
/// what a file holds.
pub(crate) fn open_import(dirs: &[PathBuf], path: &Path) -> Result<(File, PathBuf), InstallError> {
    use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
    let default = dirs.first().cloned().unwrap_or_default();
    let refused = || InstallError::NotImportable {
        dir: default.clone(),
    };
    let full = if path.is_absolute() {
        path.to_owned()
    } else {
        default.join(path)
    };
    let (dir, rest) = dirs
        .iter()
        .find_map(|d| Some((d, full.strip_prefix(d).ok()?)))
        .ok_or_else(refused)?;
    let plain = rest
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if rest.as_os_str().is_empty() || !plain {
        return Err(refused());
    }
    let dir_fd = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|_| refused())?;
    let fd = rustix::fs::openat2(
        &dir_fd,
        rest,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|_| refused())?;
    let stat = rustix::fs::fstat(&fd).map_err(|_| refused())?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(refused());
    }
    Ok((File::from(fd), full))
}

/// What an install may do beyond the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstallOptions {
    /// Install even if the signer is not trusted (its fingerprint is recorded).
    pub allow_untrusted: bool,
    /// Install an older version over an installed newer one.
    pub allow_downgrade: bool,
}

/// Installs the package at `path` (or starts the update of an installed older
/// version, see `update.rs`); returns the result and the final revision.
pub(crate) fn install(
    store: &Store,
    data_dir: &Path,
    host: &Host,
    path: &Path,
    opts: InstallOptions,
) -> Result<(InstallResult, u64), InstallError> {
    let file = File::open(path).map_err(|source| InstallError::Open {
        path: path.to_owned(),
        source,
    })?;
    install_file(store, data_dir, host, file, path, opts)
}

/// [`install`] of an open package file (`path` names it in messages).
pub(crate) fn install_file(
    store: &Store,
    data_dir: &Path,
    host: &Host,
    file: File,
    path: &Path,
    opts: InstallOptions,
) -> Result<(InstallResult, u64), InstallError> {
    let source_len = file.metadata().map_or(0, |m| m.len());
    let mut reader = reader_of(file, path)?;
    let trusted = crate::trust::keys(store).map_err(|e| InstallError::Record {
        id: String::new(),
        reason: e.to_string(),
    })?;
    let mut checked = check(
        store,
        host,
        path,
        &mut reader,
        &trusted,
        opts.allow_untrusted,
    )?;
    checked.source_len = source_len;
    let id = checked.manifest.id.clone();
    let version = checked.manifest.version.to_string();
    let result = InstallResult {
        id: id.clone(),
        version: version.clone(),
        signer_fingerprint: checked.signer.fingerprint.clone(),
        signer_trusted: checked.signer.trusted,
    };
    let current = doc::load(store, &id).map_err(|e| doc_err(&id, e))?;
    if let Some(current) = current {
        let rev = update(store, data_dir, host, &mut reader, &checked, &current, opts)?;
        return Ok((result, rev));
    }
    reserve(store, &checked)?;
    tracing::info!(package = %id, %version, signer = %checked.signer.fingerprint, "installing");
    match copy_and_register(store, data_dir, host, &mut reader, &checked) {
        Ok(rev) => Ok((result, rev)),
        Err(e) => {
            tracing::warn!(package = %id, error = %e, "install failed; rolling back");
            rollback(store, data_dir, &id);
            Err(e)
        }
    }
}

/// Refuses the same version, and an older (or incomparable) one without
/// `allow_downgrade`.
fn check_version(
    id: &str,
    installed: &str,
    offered: &ExtendedVersion,
    allow_downgrade: bool,
) -> Result<(), InstallError> {
    let order = installed
        .parse::<ExtendedVersion>()
        .ok()
        .and_then(|old| offered.partial_cmp(&old));
    match order {
        Some(std::cmp::Ordering::Greater) => Ok(()),
        Some(std::cmp::Ordering::Equal) => Err(InstallError::AlreadyInstalled {
            id: id.to_owned(),
            version: installed.to_owned(),
        }),
        _ if allow_downgrade => Ok(()),
        _ => Err(InstallError::Downgrade {
            id: id.to_owned(),
            installed: installed.to_owned(),
            offered: offered.to_string(),
        }),
    }
}

/// The update path of [`install`]: reserve (`updating`, phase `copying`), copy the
/// archive, stage the image and spec in `packages/update/<id>/next`, hand over to the
/// reconciler (phase `stopping`). A failure here cancels the update; the installed
/// version was never touched.
fn update(
    store: &Store,
    data_dir: &Path,
    host: &Host,
    reader: &mut Reader,
    c: &Checked,
    current: &PackageEntry,
    opts: InstallOptions,
) -> Result<u64, InstallError> {
    let id = c.manifest.id.as_str();
    let from = current.version();
    check_version(id, &from, &c.manifest.version, opts.allow_downgrade)?;
    check_dependents(store, id, &c.manifest.version)?;
    reserve_update(store, c, &from)?;
    let to = c.manifest.version.to_string();
    tracing::info!(package = %id, %from, %to, "updating");
    match stage(store, data_dir, host, reader, c) {
        Ok(rev) => Ok(rev),
        Err(e) => {
            tracing::warn!(package = %id, error = %e, "update failed before the old version was touched");
            cancel_update(store, data_dir, id);
            Err(e)
        }
    }
}

/// Refuses an update that takes `id` out of the version range an installed dependent
/// (required) asks for; lists every such dependent.
fn check_dependents(
    store: &Store,
    id: &str,
    offered: &ExtendedVersion,
) -> Result<(), InstallError> {
    let all = doc::all(store).map_err(|e| doc_err(id, e))?;
    let broken: Vec<String> = all
        .iter()
        .filter(|(other, _)| other.as_str() != id)
        .filter_map(|(other, e)| {
            let info = e.dependencies.get(id).filter(|i| !i.optional)?;
            let range = info.version_range.as_deref()?;
            let ok = range
                .parse::<VersionRange>()
                .is_ok_and(|r| r.satisfies(offered));
            (!ok).then(|| format!("{other} needs {id} {range}"))
        })
        .collect();
    if broken.is_empty() {
        Ok(())
    } else {
        Err(InstallError::BreaksDependents {
            id: id.to_owned(),
            version: offered.to_string(),
            dependents: broken,
        })
    }
}

/// Marks the installed entry `updating` with its update record (atomically: it must
/// still be `installed` at version `from`).
fn reserve_update(store: &Store, c: &Checked, from: &str) -> Result<u64, InstallError> {
    let id = c.manifest.id.as_str();
    let to = c.manifest.version.to_string();
    store
        .mutate(|d| {
            let current = doc::entries(d)
                .into_iter()
                .find(|(i, _)| i == id)
                .map(|(_, e)| e);
            let Some(current) = current else {
                return Err(doc_err(id, "uninstalled meanwhile"));
            };
            if current.state_info.state != InstallState::Installed || current.version() != from {
                return Err(InstallError::Busy {
                    id: id.to_owned(),
                    state: current.state_info.state.as_str(),
                });
            }
            let mut next = new_entry(c);
            next.container.index = current.container.index;
            let record = UpdateRecord {
                from: from.to_owned(),
                to: to.clone(),
                phase: UpdatePhase::Copying,
                deadline: None,
                error: None,
                previous: Release::of(&current),
                next: Release::of(&next),
            };
            doc::update_in(d, id, |e| {
                e.state_info.state = InstallState::Updating;
                e.state_info.phase = Some(UpdatePhase::Copying.as_str().to_owned());
                e.state_info.update = Some(record);
                Ok(())
            })
            .map_err(|e| doc_err(id, e))
        })
        .map(|m| m.revision)
        .map_err(record_err)
}

fn set_update_phase(store: &Store, id: &str, phase: UpdatePhase) -> Result<u64, InstallError> {
    doc::update(store, id, "record update progress", |e| {
        if let Some(rec) = e.state_info.update.as_mut() {
            rec.phase = phase;
        }
        if !phase.staging() {
            e.state_info.progress = None;
        }
        e.state_info.phase = Some(phase.as_str().to_owned());
        Ok(())
    })
    .map(|(_, rev)| rev)
    .map_err(|e| doc_err(id, e))
}

fn stage(
    store: &Store,
    data_dir: &Path,
    host: &Host,
    reader: &mut Reader,
    c: &Checked,
) -> Result<u64, InstallError> {
    let id = c.manifest.id.as_str();
    let staging = crate::update::update_dir(data_dir, id);
    if let Err(e) = std::fs::remove_dir_all(&staging)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(io_err("remove stale update files", &staging)(e));
    }
    let archive = data_dir.join(archive_rel(id, &c.manifest.version.to_string()));
    let dir = archive.parent().unwrap_or(data_dir);
    std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    copy_archive(store, id, reader, &host.arch, c.source_len, &archive)?;
    set_update_phase(store, id, UpdatePhase::Unpacking)?;
    let next = crate::update::next_dir(data_dir, id);
    unpack_image(
        store,
        id,
        &archive,
        &image_entry(&host.arch, &c.root_image),
        &next.join(format!("{}.squashfs", c.root_image)),
    )?;
    write_file(&next.join("hearth.json"), &c.spec_json)?;
    write_image_configs(
        reader,
        &host.arch,
        &c.manifest,
        &next.join(IMAGE_CONFIG_DIR),
    )?;
    set_update_phase(store, id, UpdatePhase::Stopping)
}

/// Ends an update that never got past staging: staged files removed, `installed`.
pub(crate) fn cancel_update(store: &Store, data_dir: &Path, id: &str) {
    let result = doc::update(store, id, "cancel update", |e| {
        if let Some(rec) = e.state_info.update.take() {
            crate::update::discard_staging(data_dir, &rec);
        }
        e.state_info.state = InstallState::Installed;
        e.state_info.phase = None;
        e.state_info.progress = None;
        Ok(())
    });
    if let Err(error) = result {
        tracing::warn!(package = %id, %error, "cannot cancel the update");
    }
}

fn check(
    store: &Store,
    host: &Host,
    path: &Path,
    reader: &mut Reader,
    trusted: &[VerifyingKey],
    allow_untrusted: bool,
) -> Result<Checked, InstallError> {
    let verify = |source| InstallError::Verify {
        path: path.to_owned(),
        source: Box::new(source),
    };
    reader.verify_all().map_err(verify)?;
    let key = reader.signer();
    let fingerprint = crate::trust::fingerprint(&key);
    let is_trusted = reader.check_signer(trusted).is_ok();
    if !is_trusted && !allow_untrusted {
        return Err(InstallError::UntrustedSigner {
            path: path.to_owned(),
            fingerprint,
        });
    }
    let manifest_err = |reason: String| InstallError::Manifest {
        path: path.to_owned(),
        reason,
    };
    let bytes = reader
        .read_file("manifest.json", MAX_META)
        .map_err(|e| manifest_err(e.to_string()))?;
    let manifest = Manifest::from_json(&bytes).map_err(|e| manifest_err(e.to_string()))?;
    manifest
        .validate()
        .map_err(|e| manifest_err(e.to_string()))?;
    hearth_lxc::ContainerId::new(manifest.id.as_str())
        .map_err(|e| manifest_err(format!("id cannot name a container: {e}")))?;
    let manifest_json: Value =
        serde_json::from_slice(&bytes).map_err(|e| manifest_err(e.to_string()))?;
    let spec_err = |reason: String| InstallError::Spec {
        path: path.to_owned(),
        reason,
    };
    let bytes = reader.read_file("hearth.json", MAX_META).map_err(|e| {
        spec_err(format!(
            "{e} (packages without a Hearth service spec cannot run yet)"
        ))
    })?;
    let spec = ServiceSpec::from_json(&bytes).map_err(|e| spec_err(e.to_string()))?;
    let spec_json = bytes;
    spec.validate(&manifest)
        .map_err(|e| spec_err(e.to_string()))?;
    let root_image = spec
        .start_order()
        .map_err(|e| spec_err(e.to_string()))?
        .first()
        .map(|d| d.image.clone())
        .ok_or_else(|| spec_err("no daemons".into()))?;
    check_arch(host, &manifest, reader)?;
    if manifest.os_version > host.os_version {
        return Err(InstallError::OsVersion {
            id: manifest.id.clone(),
            needed: manifest.os_version.to_string(),
            ours: host.os_version.to_string(),
        });
    }
    check_dependencies(store, &manifest, &spec)?;
    Ok(Checked {
        manifest_json,
        spec,
        spec_json,
        root_image,
        signer: Signer {
            fingerprint,
            key: hearth_s9pk::base64_encode(key.as_bytes()),
            trusted: is_trusted,
        },
        source_len: 0,
        manifest,
    })
}

fn image_entry(arch: &str, image: &str) -> String {
    format!("images/{arch}/{image}.squashfs")
}

fn check_arch(host: &Host, manifest: &Manifest, reader: &mut Reader) -> Result<(), InstallError> {
    let err = |reason: String| InstallError::Arch {
        id: manifest.id.clone(),
        arch: host.arch.clone(),
        reason,
    };
    if let Some(arches) = &manifest.hardware_requirements.arch
        && !arches.contains(&host.arch)
    {
        let list: Vec<&str> = arches.iter().map(String::as_str).collect();
        return Err(err(format!("it supports only {}", list.join(", "))));
    }
    for (id, image) in &manifest.images {
        if !image.arch.contains(&host.arch) {
            let list: Vec<&str> = image.arch.iter().map(String::as_str).collect();
            return Err(err(format!(
                "image {id} is built for {} only{}",
                list.join(", "),
                if image.emulate_missing_as.is_some() {
                    " (emulation is not supported)"
                } else {
                    ""
                }
            )));
        }
        let entry = image_entry(&host.arch, id);
        match reader.entry(&entry) {
            Ok(e) if e.kind == hearth_s9pk::EntryKind::File => {}
            _ => return Err(err(format!("the archive has no {entry}"))),
        }
    }
    Ok(())
}

fn check_dependencies(
    store: &Store,
    manifest: &Manifest,
    spec: &ServiceSpec,
) -> Result<(), InstallError> {
    let doc = store.get("").map_err(|source| InstallError::Store {
        op: "read installed packages",
        source,
    })?;
    let installed = doc::entries(&doc);
    let mut missing = Vec::new();
    for (dep, info) in &manifest.dependencies {
        if info.optional {
            continue;
        }
        let range = spec
            .dependencies
            .iter()
            .find(|d| d.id == *dep)
            .map_or_else(VersionRange::any, |d| d.version_range.clone());
        let found = installed
            .iter()
            .find(|(id, e)| id == dep && e.state_info.state == InstallState::Installed);
        match found {
            None => missing.push(format!("{dep} {range} (not installed)")),
            Some((_, e)) => {
                let v = e.version();
                let ok = v
                    .parse::<ExtendedVersion>()
                    .is_ok_and(|v| range.satisfies(&v));
                if !ok {
                    missing.push(format!("{dep} {range} (installed: {v})"));
                }
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(InstallError::Dependencies {
            id: manifest.id.clone(),
            missing,
        })
    }
}

/// `dependencies` of the entry: every manifest dependency, with the spec's kind
/// (`exists` when the spec does not mention it) and health checks.
fn dependency_infos(manifest: &Manifest, spec: &ServiceSpec) -> BTreeMap<String, DependencyInfo> {
    manifest
        .dependencies
        .iter()
        .map(|(id, info)| {
            let in_spec = spec.dependencies.iter().find(|d| d.id == *id);
            let kind = match in_spec.map(|d| d.kind) {
                Some(hearth_s9pk::spec::DependencyKind::Running) => DependencyKind::Running,
                _ => DependencyKind::Exists,
            };
            let health_checks = in_spec.map(|d| d.health_checks.clone()).unwrap_or_default();
            (
                id.clone(),
                DependencyInfo {
                    kind,
                    optional: info.optional,
                    health_checks,
                    version_range: in_spec.map(|d| d.version_range.to_string()),
                },
            )
        })
        .collect()
}

fn record_err(e: MutateError<InstallError>) -> InstallError {
    match e {
        MutateError::Rejected(e) => e,
        MutateError::Store(source) => InstallError::Store {
            op: "record package",
            source,
        },
    }
}

fn doc_err(id: &str, e: impl std::fmt::Display) -> InstallError {
    InstallError::Record {
        id: id.to_owned(),
        reason: e.to_string(),
    }
}

/// The entry a fresh install of `c` records (host number 0: assigned by `reserve`).
/// The spec's capability name as the container runtime's (the same closed list).
fn capability(c: hearth_s9pk::spec::Capability) -> hearth_lxc::Capability {
    use hearth_s9pk::spec::Capability as S;
    match c {
        S::NetRaw => hearth_lxc::Capability::NetRaw,
        S::NetAdmin => hearth_lxc::Capability::NetAdmin,
        S::SysNice => hearth_lxc::Capability::SysNice,
        S::IpcLock => hearth_lxc::Capability::IpcLock,
    }
}

fn new_entry(c: &Checked) -> PackageEntry {
    let id = c.manifest.id.as_str();
    PackageEntry {
        state_info: StateInfo {
            state: InstallState::Installing,
            phase: Some("copying".into()),
            keep_data: false,
            progress: None,
            update: None,
        },
        manifest: c.manifest_json.clone(),
        signer: c.signer.clone(),
        archive: archive_rel(id, &c.manifest.version.to_string()),
        container: ContainerInfo {
            root_image: c.root_image.clone(),
            volumes: c.manifest.volumes.iter().cloned().collect(),
            index: 0,
            memory: c.spec.resources.memory,
            pids: c.spec.resources.pids,
            cpu_millicores: c.spec.resources.cpu_millicores,
            health_checks: c
                .spec
                .daemons
                .iter()
                .flat_map(|d| d.health_checks.iter().map(|h| h.id.clone()))
                .collect(),
            capabilities: c.spec.capabilities.iter().map(|&c| capability(c)).collect(),
        },
        dependencies: dependency_infos(&c.manifest, &c.spec),
        status_info: StatusInfo::stopped(),
    }
}

/// Records the `installing` entry; refuses an id that is already present.
fn reserve(store: &Store, c: &Checked) -> Result<u64, InstallError> {
    let id = c.manifest.id.as_str();
    let entry = new_entry(c);
    store
        .mutate(|d| {
            let existing = doc::entries(d);
            if let Some((_, e)) = existing.iter().find(|(i, _)| i == id) {
                return Err(InstallError::AlreadyInstalled {
                    id: id.to_owned(),
                    version: e.version(),
                });
            }
            let used: BTreeSet<u8> = existing.iter().map(|(_, e)| e.container.index).collect();
            let index = (2..=254u8)
                .find(|i| !used.contains(i))
                .ok_or_else(|| doc_err(id, "no free container address (253 services)"))?;
            let mut entry = entry;
            entry.container.index = index;
            let v = serde_json::to_value(&entry).map_err(|e| doc_err(id, e))?;
            doc::object_mut(d, PACKAGE_DATA)
                .map_err(|e| doc_err(id, e))?
                .insert(id.to_owned(), v);
            Ok(())
        })
        .map(|m| m.revision)
        .map_err(record_err)
}

pub(crate) fn archive_rel(id: &str, version: &str) -> String {
    format!("{PACKAGE_ARCHIVE_DIR}/{id}/{version}.s9pk")
}

/// `packages/images/<id>/<image>.squashfs` under `data_dir`.
pub(crate) fn image_path(data_dir: &Path, id: &str, image: &str) -> PathBuf {
    data_dir
        .join(PACKAGE_IMAGE_DIR)
        .join(id)
        .join(format!("{image}.squashfs"))
}

fn set_phase(
    store: &Store,
    id: &str,
    phase: Option<&str>,
    state: InstallState,
) -> Result<u64, InstallError> {
    doc::update(store, id, "record install progress", |e| {
        e.state_info.phase = phase.map(str::to_owned);
        e.state_info.state = state;
        if state == InstallState::Installed {
            e.state_info.progress = None;
        }
        Ok(())
    })
    .map(|(_, rev)| rev)
    .map_err(|e| doc_err(id, e))
}

fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> InstallError + 'a {
    move |source| InstallError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn copy_and_register(
    store: &Store,
    data_dir: &Path,
    host: &Host,
    reader: &mut Reader,
    c: &Checked,
) -> Result<u64, InstallError> {
    let id = c.manifest.id.as_str();
    let archive = data_dir.join(archive_rel(id, &c.manifest.version.to_string()));
    let dir = archive.parent().unwrap_or(data_dir);
    std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    copy_archive(store, id, reader, &host.arch, c.source_len, &archive)?;

    set_phase(store, id, Some("unpacking"), InstallState::Installing)?;
    let image = image_path(data_dir, id, &c.root_image);
    unpack_image(
        store,
        id,
        &archive,
        &image_entry(&host.arch, &c.root_image),
        &image,
    )?;
    write_file(&spec_path(data_dir, id), &c.spec_json)?;
    write_image_configs(
        reader,
        &host.arch,
        &c.manifest,
        &image_config_dir(data_dir, id),
    )?;
    let data = data_dir.join(PACKAGE_DATA_DIR).join(id);
    std::fs::create_dir_all(&data).map_err(io_err("create directory", &data))?;
    set_phase(store, id, None, InstallState::Installed)
}

/// The directory (beside the root image) holding each image's `<image>.json` and
/// `<image>.env`; a subdirectory, so no image id can clash with `hearth.json`.
const IMAGE_CONFIG_DIR: &str = "config";

/// `packages/images/<id>/config`: the image defaults of an installed package.
pub(crate) fn image_config_dir(data_dir: &Path, id: &str) -> PathBuf {
    data_dir
        .join(PACKAGE_IMAGE_DIR)
        .join(id)
        .join(IMAGE_CONFIG_DIR)
}

/// Writes `<image>.json` and `<image>.env` of every image of `manifest` for `arch`
/// (read verified from the archive; a file the archive lacks is skipped: the spec
/// alone then decides) into `dest`.
fn write_image_configs(
    reader: &mut Reader,
    arch: &str,
    manifest: &Manifest,
    dest: &Path,
) -> Result<(), InstallError> {
    std::fs::create_dir_all(dest).map_err(io_err("create directory", dest))?;
    for image in manifest.images.keys() {
        for ext in ["json", "env"] {
            let entry = format!("images/{arch}/{image}.{ext}");
            let path = dest.join(format!("{image}.{ext}"));
            let extract_err = |source| InstallError::Extract {
                entry: entry.clone(),
                path: path.clone(),
                source: Box::new(source),
            };
            match reader.entry(&entry) {
                Ok(e) if e.kind == hearth_s9pk::EntryKind::File => {}
                Ok(_) | Err(hearth_s9pk::ReadError::NotFound { .. }) => continue,
                Err(e) => return Err(extract_err(e)),
            }
            let bytes = reader.read_file(&entry, MAX_META).map_err(extract_err)?;
            write_file(&path, &bytes)?;
        }
    }
    Ok(())
}

/// `packages/images/<id>/hearth.json`: the service spec `hearth-container` runs.
pub(crate) fn spec_path(data_dir: &Path, id: &str) -> PathBuf {
    data_dir
        .join(PACKAGE_IMAGE_DIR)
        .join(id)
        .join("hearth.json")
}

/// Writes `bytes` to `dest` via temp + fsync + rename.
fn write_file(dest: &Path, bytes: &[u8]) -> Result<(), InstallError> {
    use std::io::Write as _;
    write_via_temp(dest, |out, tmp| {
        out.write_all(bytes).map_err(io_err("write", tmp))
    })
    .map(|_| ())
}

/// Creates `dest`'s directory and `.<name>.tmp` beside `dest`, lets `write` fill it,
/// then fsync + rename; the temp file is removed on failure. Returns the size written.
fn write_via_temp(
    dest: &Path,
    write: impl FnOnce(&mut File, &Path) -> Result<(), InstallError>,
) -> Result<u64, InstallError> {
    let dir = dest.parent().unwrap_or(dest);
    std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        dest.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    let result = (|| {
        let mut out = File::create(&tmp).map_err(io_err("create", &tmp))?;
        write(&mut out, &tmp)?;
        let written = out.metadata().map_err(io_err("stat", &tmp))?.len();
        out.sync_all().map_err(io_err("sync", &tmp))?;
        std::fs::rename(&tmp, dest).map_err(io_err("rename into place", dest))?;
        Ok(written)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Copies one archive file (hash-checked while read) to `dest` via temp + rename,
/// reporting bytes written to `report` (at most every 250 ms, and at the end).
fn extract(
    reader: &mut Reader,
    entry: &str,
    dest: &Path,
    report: &mut dyn FnMut(u64),
) -> Result<(), InstallError> {
    let done = write_via_temp(dest, |file, tmp| {
        let mut out = progress::Progressing::new(file, progress::EVERY, &mut *report);
        let mut body = reader
            .open_file(entry)
            .map_err(|source| InstallError::Extract {
                entry: entry.to_owned(),
                path: dest.to_owned(),
                source: Box::new(source),
            })?;
        std::io::copy(&mut body, &mut out).map_err(io_err("extract image to", tmp))?;
        Ok(())
    })?;
    report(done);
    Ok(())
}

/// Copies the archive filtered to this host's arch (temp + rename), with `copy`
/// progress: the source's size as total (the filtered copy is at most that), the
/// bytes written at most every [`progress::EVERY`], then the copy's own size.
fn copy_archive(
    store: &Store,
    id: &str,
    reader: &mut Reader,
    arch: &str,
    source_len: u64,
    archive: &Path,
) -> Result<(), InstallError> {
    progress::record(store, id, "copy", 0, Some(source_len));
    let written = copy_filtered(reader, arch, archive, progress::EVERY, &mut |done| {
        progress::record(store, id, "copy", done, Some(source_len));
    })?;
    progress::record(store, id, "copy", written, Some(written));
    Ok(())
}

/// Writes `reader`'s archive filtered to `arch` to `archive` (temp + rename, removed on
/// failure), reporting the bytes written at most every `every`; returns its size.
fn copy_filtered(
    reader: &mut Reader,
    arch: &str,
    archive: &Path,
    every: std::time::Duration,
    report: &mut dyn FnMut(u64),
) -> Result<u64, InstallError> {
    write_via_temp(archive, |file, _| {
        let mut out = progress::Progressing::new(file, every, report);
        hearth_s9pk::filter_arch_to(reader, arch, &mut out)
            .map(|_| ())
            .map_err(|source| InstallError::Copy {
                path: archive.to_owned(),
                source: Box::new(source),
            })
    })
}

/// Extracts the root image with `unpack` progress.
fn unpack_image(
    store: &Store,
    id: &str,
    archive: &Path,
    entry: &str,
    dest: &Path,
) -> Result<(), InstallError> {
    let mut copy = open_reader(archive)?;
    let total = copy.entry(entry).ok().map(|e| e.size);
    progress::record(store, id, "unpack", 0, total);
    extract(&mut copy, entry, dest, &mut |done| {
        progress::record(store, id, "unpack", done, total);
    })
}

/// Removes what a failed install wrote, and its entry. The data directory is kept: it
/// may hold data of an earlier install uninstalled with `keepData`.
pub(crate) fn rollback(store: &Store, data_dir: &Path, id: &str) {
    for dir in [PACKAGE_ARCHIVE_DIR, PACKAGE_IMAGE_DIR] {
        let path = data_dir.join(dir).join(id);
        if let Err(error) = std::fs::remove_dir_all(&path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), %error, "rollback: cannot remove");
        }
    }
    let removed = store.mutate(|d| {
        doc::object_mut(d, PACKAGE_DATA).map(|m| {
            m.remove(id);
        })
    });
    if let Err(error) = removed {
        tracing::warn!(package = %id, %error, "rollback: cannot remove the entry");
    }
}

#[cfg(test)]
#[path = "install_tests.rs"]
mod tests;
