//! Installed services: install and trust packages, record desired state, and drive
//! containers to it.
//!
//! # Purpose
//! The `package.*` methods of the API call [`Packages`]; hearthd runs one
//! [`Supervisor`] that reconciles every installed package with a
//! [`hearth_lxc::ContainerRuntime`].
//!
//! # Design
//! * Desired vs observed: RPCs only write `statusInfo.desired` (and `stateInfo` for
//!   uninstall) under `/public/packageData/<id>`; a per-service reconcile task reads it,
//!   asks the runtime what the container is doing, and acts. The decisions are a pure
//!   state machine (`status.rs`, one unit test per transition); the observed status is
//!   persisted *before* each action (`starting`, `stopping`) and after it.
//! * Install verifies everything before writing anything (`install.rs`).
//! * No god context: [`Packages`] holds the store, the data dir and the host facts; the
//!   [`Supervisor`] holds the store, the runtime and the container plan.
//!
//! # Invariants
//! * No file is copied or unpacked from an archive whose signature and hashes were not
//!   all checked, and whose signer was not trusted or explicitly allowed.
//! * One reconcile task per package id at most; a running container found at start-up
//!   is adopted, never started twice.
//! * What a container's init reported (health, per-daemon state) counts only for the
//!   run that reported it: dropped whenever the recorded state leaves `running` and for
//!   every package when hearthd starts, so no dependent starts on stale health.
//! * Every container gets its image defaults (env, user, workdir, entrypoint + cmd)
//!   from the installed `<image>.json`/`.env`; the service spec overrides them.
//!
//! # Limitations
//! * No registry installs (a URL install downloads one package, `download.rs`). Health, per-daemon state, logs and actions come
//!   from `hearth-container` over `service.sock` (`container_client.rs`,
//!   `container_status.rs`, `service_calls.rs`); `start`/`stop` are not sent over it
//!   yet (daemons start with the container).
//! * The container root is the first daemon's image; other images are not mounted yet.
//!
//! # Rejected alternatives
//! * One global reconcile loop: a slow `lxc-stop` of one service would hold up all.
//! * Reconciling only on store changes: a container can die without any store change;
//!   a periodic tick (and back-off deadlines) catch it.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod container_client;
mod container_status;
mod deps;
mod doc;
mod download;
mod error;
mod install;
mod network;
mod notify;
mod packages;
mod progress;
mod reconcile;
mod service_calls;
mod status;
mod supervisor;
#[cfg(test)]
mod test_support;
mod trust;
mod unavailable;
mod update;
mod usage;

pub use container_client::ClientError;
pub use download::{DEFAULT_DOWNLOAD_LIMIT, DownloadError, SourcePolicy};
pub use error::{InstallError, PackageError, ReconcileError};
pub use install::{Host, InstallOptions};
pub use network::{NetworkError, NetworkPolicy};
pub use packages::{InstallSettings, Packages, set_install_settings};
pub use reconcile::ContainerPlan;
pub use service_calls::ServiceCallError;
pub use supervisor::Supervisor;
pub use trust::fingerprint;
pub use unavailable::UnavailableRuntime;
