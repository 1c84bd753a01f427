//! [`Packages`]: what the `package.*` RPC handlers call. Every method is blocking (store
//! commits, file I/O): async callers use `spawn_blocking`.
//!
//! Lifecycle calls only change desired state (and `stateInfo` for uninstall); the
//! [`crate::Supervisor`] does the work and records what it observed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hearth_rpc::methods::package::{InstallResult, PackageSummary, TrustedKey};
use hearth_store::Store;

use crate::doc::{self, InstallState, PackageEntry};
use crate::download::SourcePolicy;
use crate::error::{InstallError, PackageError};
use crate::install::{Host, InstallOptions};
use crate::status::Desired;
use crate::update::UpdatePhase;

/// Package install, trust and desired-state operations over the store.
#[derive(Debug, Clone)]
pub struct Packages {
    store: Store,
    data_dir: PathBuf,
    host: Host,
    download_limit: u64,
    /// Where `package.install {path}` may read; the first is the default.
    import_dirs: Vec<PathBuf>,
    /// Which addresses `package.install {url}` may fetch from.
    sources: SourcePolicy,
}

/// What the process (hearthd's flags) allows every [`Packages`] beyond the default:
/// set once at start-up with [`set_install_settings`], before any `Packages` is made.
#[derive(Debug, Clone, Default)]
pub struct InstallSettings {
    /// Directories `package.install {path}` may read besides `<data>/import`
    /// (`hearthd --import-dir`).
    pub extra_import_dirs: Vec<PathBuf>,
    /// Addresses `package.install {url}` may fetch from although they are not public
    /// (`hearthd --allow-package-source CIDR`, e.g. a LAN mirror).
    pub sources: SourcePolicy,
}

static SETTINGS: OnceLock<InstallSettings> = OnceLock::new();

/// Sets the process-wide [`InstallSettings`] (once; a second call is refused and
/// returns the settings back).
pub fn set_install_settings(settings: InstallSettings) -> Result<(), InstallSettings> {
    SETTINGS.set(settings)
}

impl Packages {
    /// Packages stored in `store`, with files under `data_dir`, for `host`.
    pub fn new(store: Store, data_dir: PathBuf, host: Host) -> Packages {
        let settings = SETTINGS.get().cloned().unwrap_or_default();
        let mut import_dirs = vec![data_dir.join(hearth_layout::PACKAGE_IMPORT_DIR)];
        import_dirs.extend(settings.extra_import_dirs);
        Packages {
            store,
            data_dir,
            host,
            download_limit: crate::download::DEFAULT_DOWNLOAD_LIMIT,
            import_dirs,
            sources: settings.sources,
        }
    }

    /// Replaces which non-public addresses `install_url` may fetch from.
    pub fn with_sources(mut self, sources: SourcePolicy) -> Packages {
        self.sources = sources;
        self
    }

    /// Adds a directory `install_import` may read from.
    pub fn with_import_dir(mut self, dir: PathBuf) -> Packages {
        self.import_dirs.push(dir);
        self
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Trusts a signer key (PEM); returns its entry and the revision.
    pub fn trust_add(
        &self,
        pem: &str,
        name: Option<String>,
    ) -> Result<(TrustedKey, u64), PackageError> {
        crate::trust::add(&self.store, pem, name)
    }

    /// The trusted signer keys.
    pub fn trust_list(&self) -> Result<Vec<TrustedKey>, PackageError> {
        crate::trust::list(&self.store)
    }

    /// Stops trusting the key with this fingerprint.
    pub fn trust_remove(&self, fingerprint: &str) -> Result<u64, PackageError> {
        crate::trust::remove(&self.store, fingerprint)
    }

    /// Verifies and installs the `.s9pk` at `path` (see `install.rs` for the order).
    pub fn install(
        &self,
        path: &Path,
        allow_untrusted: bool,
    ) -> Result<(InstallResult, u64), InstallError> {
        self.install_with(
            path,
            InstallOptions {
                allow_untrusted,
                ..InstallOptions::default()
            },
        )
    }

    /// Downloads the package at `url` (`download.rs`: streamed to `packages/upload/`,
    /// at most the download limit) and installs it like [`Self::install_with`]; the
    /// downloaded file is deleted either way.
    pub fn install_url(
        &self,
        url: &str,
        opts: InstallOptions,
    ) -> Result<(InstallResult, u64), InstallError> {
        let path = crate::download::download(
            &self.store,
            &self.data_dir,
            url,
            self.download_limit,
            &self.sources,
        )?;
        let result = self.install_with(&path, opts);
        if let Err(error) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), %error, "cannot remove the downloaded package");
        }
        result
    }

    /// Sets the largest package `install_url` downloads (default
    /// [`crate::DEFAULT_DOWNLOAD_LIMIT`]).
    pub fn with_download_limit(mut self, bytes: u64) -> Packages {
        self.download_limit = bytes;
        self
    }

    /// `package.install {path}`: installs a package file below an import directory
    /// (`<data>/import` or a `hearthd --import-dir`; a relative `path` is taken below
    /// `<data>/import`). Opened without following links, regular files only, and every
    /// refusal is the same generic [`InstallError::NotImportable`] (`install.rs`,
    /// `open_import`).
    pub fn install_import(
        &self,
        path: &Path,
        opts: InstallOptions,
    ) -> Result<(InstallResult, u64), InstallError> {
        let (file, full) = crate::install::open_import(&self.import_dirs, path)?;
        crate::install::install_file(&self.store, &self.data_dir, &self.host, file, &full, opts)
    }

    /// [`Self::install`] with every option (any path hearthd itself chose: uploads,
    /// downloads, tests; the API's `{path}` goes through [`Self::install_import`]).
    /// A newer version of an installed package
    /// starts its update (`update.rs`) and returns once the new version is staged.
    pub fn install_with(
        &self,
        path: &Path,
        opts: InstallOptions,
    ) -> Result<(InstallResult, u64), InstallError> {
        crate::install::install(&self.store, &self.data_dir, &self.host, path, opts)
    }

    /// Cleans up after a previous hearthd process: installs it was running when it died
    /// are rolled back (files and entry), updates still staging are cancelled, updates
    /// that were migrating are turned into roll-backs (the reconciler does them; other
    /// update phases resume), and back-off deadlines are cleared so failed services are
    /// tried again at once. Call at start-up, before serving. Returns the ids of the
    /// rolled-back installs and updates.
    pub fn recover(&self) -> Result<Vec<String>, PackageError> {
        let doc = self.store.get("").map_err(|source| PackageError::Store {
            op: "read packages",
            source,
        })?;
        let mut rolled_back = Vec::new();
        for (id, e) in doc::entries(&doc) {
            if e.state_info.state == InstallState::Installing {
                tracing::warn!(package = %id, "rolling back an install interrupted by a restart");
                crate::install::rollback(&self.store, &self.data_dir, &id);
                rolled_back.push(id);
                continue;
            }
            match e.state_info.update.as_ref().map(|u| u.phase) {
                Some(phase) if phase.staging() => {
                    tracing::warn!(package = %id, "cancelling an update interrupted while staged");
                    crate::install::cancel_update(&self.store, &self.data_dir, &id);
                    rolled_back.push(id.clone());
                }
                Some(UpdatePhase::Migrating) => {
                    tracing::warn!(package = %id, "rolling back an update interrupted during its migration");
                    doc::update(&self.store, &id, "roll back interrupted update", |e| {
                        if let Some(rec) = e.state_info.update.as_mut() {
                            rec.phase = UpdatePhase::RollingBack;
                            rec.error =
                                Some("hearthd stopped while the migration was running".into());
                        }
                        e.state_info.phase = Some(UpdatePhase::RollingBack.as_str().to_owned());
                        Ok(())
                    })?;
                    rolled_back.push(id.clone());
                }
                _ => {}
            }
            if e.status_info.observed.retry_at.is_some() {
                doc::update(&self.store, &id, "clear back-off", |e| {
                    e.status_info.observed.retry_at = None;
                    Ok(())
                })?;
            }
        }
        Ok(rolled_back)
    }

    /// Every package with its states, by id.
    pub fn list(&self) -> Result<Vec<PackageSummary>, PackageError> {
        let doc = self.store.get("").map_err(|source| PackageError::Store {
            op: "list packages",
            source,
        })?;
        Ok(doc::entries(&doc)
            .into_iter()
            .map(|(id, e)| summary(id, &e))
            .collect())
    }

    /// Desired state `running`, for `id` and, in the same mutation, for every
    /// required `running` dependency it needs (transitively) that is not meant to run
    /// yet: dependencies start first, the dependent waits for them (`deps.rs`).
    pub fn start(&self, id: &str) -> Result<u64, PackageError> {
        self.run_with_dependencies(id, "start", Desired::Running)
    }

    /// Sets `desired` (running or restarting) on `id` and `running` on its stopped
    /// required `running` dependencies.
    fn run_with_dependencies(
        &self,
        id: &str,
        op: &'static str,
        desired: Desired,
    ) -> Result<u64, PackageError> {
        self.store
            .mutate(|d| {
                let all: BTreeMap<String, PackageEntry> = doc::entries(d).into_iter().collect();
                doc::update_in(d, id, |e| {
                    require_installed(id, e, op)?;
                    want_running(e, desired);
                    Ok(())
                })?;
                for other in crate::deps::to_start(id, &all) {
                    let stopped = all.get(&other).is_some_and(|e| {
                        e.state_info.state == InstallState::Installed
                            && e.status_info.desired == Desired::Stopped
                    });
                    if other != id && stopped {
                        tracing::info!(package = %other, dependent = %id, "starting a dependency first");
                        doc::update_in(d, &other, |e| {
                            want_running(e, Desired::Running);
                            Ok(())
                        })?;
                    }
                }
                Ok(())
            })
            .map(|m| m.revision)
            .map_err(|e| doc::mutate_error(op, e))
    }

    /// Desired state `stopped`. Returns the revision and the dependents this stop puts
    /// to `waiting` (meant to run and needing `id` running, transitively; sorted): the
    /// supervisor stops them and starts them again once `id` runs healthy
    /// (`deps::down`).
    pub fn stop(&self, id: &str) -> Result<(u64, Vec<String>), PackageError> {
        self.store
            .mutate(|d| {
                let all: BTreeMap<String, PackageEntry> = doc::entries(d).into_iter().collect();
                doc::update_in(d, id, |e| {
                    require_installed(id, e, "stop")?;
                    want_running(e, Desired::Stopped);
                    Ok(())
                })?;
                Ok(crate::deps::affected_by_stop(id, &all))
            })
            .map(|m| (m.revision, m.value))
            .map_err(|e| doc::mutate_error("stop", e))
    }

    /// Desired state `restarting` (stop if running, then run).
    pub fn restart(&self, id: &str) -> Result<u64, PackageError> {
        self.run_with_dependencies(id, "restart", Desired::Restarting)
    }

    /// Marks the package `removing`; the supervisor destroys the container and deletes
    /// its files (the data too unless `keep_data`), then the entry. Refused while other
    /// installed packages require it (`HasDependents`, listing them).
    pub fn uninstall(&self, id: &str, keep_data: bool) -> Result<u64, PackageError> {
        self.store
            .mutate(|d| {
                let all: BTreeMap<String, PackageEntry> = doc::entries(d).into_iter().collect();
                let dependents = crate::deps::dependents(id, &all);
                doc::update_in(d, id, |e| {
                    if matches!(
                        e.state_info.state,
                        InstallState::Installing | InstallState::Updating
                    ) {
                        return Err(wrong_state(id, e, "uninstall"));
                    }
                    if !dependents.is_empty() {
                        return Err(PackageError::HasDependents {
                            id: id.to_owned(),
                            dependents,
                        });
                    }
                    e.state_info.state = InstallState::Removing;
                    e.state_info.keep_data = keep_data;
                    e.status_info.desired = Desired::Stopped;
                    Ok(())
                })
            })
            .map(|m| m.revision)
            .map_err(|e| doc::mutate_error("uninstall", e))
    }
}

/// Sets `desired`; a start or restart also forgets the old failure (the user asks
/// again: try now).
fn want_running(e: &mut PackageEntry, desired: Desired) {
    e.status_info.desired = desired;
    if desired != Desired::Stopped {
        e.status_info.observed.last_error = None;
        e.status_info.observed.attempts = 0;
        e.status_info.observed.retry_at = None;
    }
}

fn wrong_state(id: &str, e: &PackageEntry, op: &'static str) -> PackageError {
    PackageError::WrongState {
        id: id.to_owned(),
        state: e.state_info.state.as_str(),
        op,
    }
}

fn require_installed(id: &str, e: &PackageEntry, op: &'static str) -> Result<(), PackageError> {
    if e.state_info.state == InstallState::Installed {
        Ok(())
    } else {
        Err(wrong_state(id, e, op))
    }
}

fn summary(id: String, e: &PackageEntry) -> PackageSummary {
    PackageSummary {
        title: e
            .manifest
            .get("title")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        version: e.version(),
        state: e.state_info.state.as_str().to_owned(),
        desired: e.status_info.desired.as_str().to_owned(),
        status: e.status_info.observed.state.as_str().to_owned(),
        last_error: e.status_info.observed.last_error.clone(),
        id,
    }
}
