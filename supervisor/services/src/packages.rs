//! [`Packages`]: what the `package.*` RPC handlers call. Every method is blocking (store
//! commits, file I/O): async callers use `spawn_blocking`.
//!
//! Lifecycle calls only change desired state (and `stateInfo` for uninstall); the
//! [`crate::Supervisor`] does the work and records what it observed.

use std::path::{Path, PathBuf};

use hearth_rpc::methods::package::{InstallResult, PackageSummary, TrustedKey};
use hearth_store::Store;

use crate::doc::{self, InstallState, PackageEntry};
use crate::error::{InstallError, PackageError};
use crate::install::Host;
use crate::status::Desired;

/// Package install, trust and desired-state operations over the store.
#[derive(Debug, Clone)]
pub struct Packages {
    store: Store,
    data_dir: PathBuf,
    host: Host,
}

impl Packages {
    /// Packages stored in `store`, with files under `data_dir`, for `host`.
    pub fn new(store: Store, data_dir: PathBuf, host: Host) -> Packages {
        Packages {
            store,
            data_dir,
            host,
        }
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
        crate::install::install(
            &self.store,
            &self.data_dir,
            &self.host,
            path,
            allow_untrusted,
        )
    }

    /// Cleans up after a previous hearthd process: installs it was running when it died
    /// are rolled back (files and entry), and back-off deadlines are cleared so failed
    /// services are tried again at once. Call at start-up, before serving. Returns the
    /// ids of the rolled-back installs.
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
            } else if e.status_info.observed.retry_at.is_some() {
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

    fn set_desired(
        &self,
        id: &str,
        op: &'static str,
        desired: Desired,
    ) -> Result<u64, PackageError> {
        doc::update(&self.store, id, op, |e| {
            require_installed(id, e, op)?;
            e.status_info.desired = desired;
            if desired != Desired::Stopped {
                // The user asks again: try now, forget the old failure.
                e.status_info.observed.last_error = None;
                e.status_info.observed.attempts = 0;
                e.status_info.observed.retry_at = None;
            }
            Ok(())
        })
        .map(|(_, rev)| rev)
    }

    /// Desired state `running`.
    pub fn start(&self, id: &str) -> Result<u64, PackageError> {
        self.set_desired(id, "start", Desired::Running)
    }

    /// Desired state `stopped`.
    pub fn stop(&self, id: &str) -> Result<u64, PackageError> {
        self.set_desired(id, "stop", Desired::Stopped)
    }

    /// Desired state `restarting` (stop if running, then run).
    pub fn restart(&self, id: &str) -> Result<u64, PackageError> {
        self.set_desired(id, "restart", Desired::Restarting)
    }

    /// Marks the package `removing`; the supervisor destroys the container and deletes
    /// its files (the data too unless `keep_data`), then the entry.
    pub fn uninstall(&self, id: &str, keep_data: bool) -> Result<u64, PackageError> {
        doc::update(&self.store, id, "uninstall", |e| {
            if e.state_info.state == InstallState::Installing {
                return Err(wrong_state(id, e, "uninstall"));
            }
            e.state_info.state = InstallState::Removing;
            e.state_info.keep_data = keep_data;
            e.status_info.desired = Desired::Stopped;
            Ok(())
        })
        .map(|(_, rev)| rev)
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
