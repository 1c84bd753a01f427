//! Errors of installing, trusting and controlling packages. Each variant names the
//! operation and what it was done to; `hearth-api` maps them to wire errors in one place.

use std::path::PathBuf;

use hearth_store::StoreError;

/// Why `package.install` refused or failed. Every refusal (everything up to
/// [`InstallError::AlreadyInstalled`]) happens before anything is written.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The file could not be opened.
    #[error("open package {path}: {source}")]
    Open {
        /// The package file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Bad signature, bad hash, malformed archive.
    #[error("package {path} failed verification: {source}")]
    Verify {
        /// The package file.
        path: PathBuf,
        /// What the reader found.
        #[source]
        source: Box<hearth_s9pk::ReadError>,
    },
    /// Signed by a key that is not trusted, and `allowUntrusted` was not given.
    #[error(
        "package {path} is signed by the untrusted key {fingerprint}; trust the developer's \
         key with package.trust.add, or pass allowUntrusted"
    )]
    UntrustedSigner {
        /// The package file.
        path: PathBuf,
        /// Fingerprint of the signer.
        fingerprint: String,
    },
    /// `manifest.json` is missing or invalid.
    #[error("package {path}: manifest.json: {reason}")]
    Manifest {
        /// The package file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `hearth.json` (the service spec) is missing or invalid.
    #[error("package {path}: hearth.json: {reason}")]
    Spec {
        /// The package file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The package has no images for this server's architecture.
    #[error("package {id} does not run on this server's architecture {arch}: {reason}")]
    Arch {
        /// Package id.
        id: String,
        /// Host architecture.
        arch: String,
        /// Which image or requirement is missing.
        reason: String,
    },
    /// The package needs a newer OS.
    #[error("package {id} needs OS version {needed} or later; this server provides {ours}")]
    OsVersion {
        /// Package id.
        id: String,
        /// The manifest's `osVersion`.
        needed: String,
        /// Ours.
        ours: String,
    },
    /// Required dependencies are not installed or not in range.
    #[error("package {id} needs: {}", missing.join("; "))]
    Dependencies {
        /// Package id.
        id: String,
        /// One line per missing or unsuitable dependency.
        missing: Vec<String>,
    },
    /// This very version of the package is already installed.
    #[error("package {id} {version} is already installed")]
    AlreadyInstalled {
        /// Package id.
        id: String,
        /// The installed version.
        version: String,
    },
    /// The offered version is older than (or not comparable with) the installed one,
    /// and `allowDowngrade` was not given.
    #[error(
        "package {id} {offered} is not newer than the installed {installed}; pass \
         allowDowngrade to install it anyway"
    )]
    Downgrade {
        /// Package id.
        id: String,
        /// The installed version.
        installed: String,
        /// The version in the archive.
        offered: String,
    },
    /// The new version is outside the range installed dependents need.
    #[error("package {id} {version} would break: {}", dependents.join("; "))]
    BreaksDependents {
        /// Package id.
        id: String,
        /// The version in the archive.
        version: String,
        /// One line per dependent and the range it needs.
        dependents: Vec<String>,
    },
    /// The installed package is being installed, updated or removed.
    #[error("package {id} is {state}; try again when that is finished")]
    Busy {
        /// Package id.
        id: String,
        /// Its install state.
        state: &'static str,
    },
    /// Copying the archive or extracting the image failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing the arch-filtered copy failed.
    #[error("copy package to {path}: {source}")]
    Copy {
        /// The destination.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<hearth_s9pk::FilterError>,
    },
    /// Extracting the image failed verification or I/O.
    #[error("extract {entry} to {path}: {source}")]
    Extract {
        /// Path inside the archive.
        entry: String,
        /// The destination.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<hearth_s9pk::ReadError>,
    },
    /// `package.install {path}`: not a regular file below an import directory (or not
    /// openable there). Deliberately says no more: neither whether something exists
    /// elsewhere nor what it holds.
    #[error("not a package file in the import directory ({dir})")]
    NotImportable {
        /// The (default) import directory.
        dir: PathBuf,
    },
    /// `package.install {url}`: the download failed (nothing was installed).
    #[error(transparent)]
    Download(#[from] crate::download::DownloadError),
    /// The state store failed.
    #[error("store: {op}: {source}")]
    Store {
        /// What was being recorded.
        op: &'static str,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// Another install of this id is running, or the state document is damaged.
    #[error("record package {id}: {reason}")]
    Record {
        /// Package id.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

/// Errors of trust and lifecycle calls (`package.trust.*`, start/stop/restart/uninstall).
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// No such package (or trusted key).
    #[error("{what} {id:?} not found")]
    NotFound {
        /// "package" or "trusted key".
        what: &'static str,
        /// The id or fingerprint.
        id: String,
    },
    /// The call does not fit the package's current state.
    #[error("package {id} is {state}; {op} is not possible now")]
    WrongState {
        /// Package id.
        id: String,
        /// Its install state.
        state: &'static str,
        /// The refused operation.
        op: &'static str,
    },
    /// Other installed packages require this one; uninstall them first.
    #[error("package {id} is required by {}; uninstall those first", dependents.join(", "))]
    HasDependents {
        /// Package id.
        id: String,
        /// The installed packages that require it.
        dependents: Vec<String>,
    },
    /// A public key was not a valid Ed25519 PEM key.
    #[error("public key: {0}")]
    Key(#[source] hearth_s9pk::key::KeyError),
    /// The state store failed.
    #[error("store: {op}: {source}")]
    Store {
        /// What was being done.
        op: &'static str,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The state document does not have the expected shape.
    #[error("state document at {pointer}: {reason}")]
    Document {
        /// Where.
        pointer: String,
        /// What is wrong.
        reason: String,
    },
}

/// Errors of one reconcile step; recorded as `lastError` and retried.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A container operation failed.
    #[error("{op} container {id}: {source}")]
    Runtime {
        /// The operation.
        op: &'static str,
        /// Package id.
        id: String,
        /// Why (boxed: runtime errors carry tool output).
        #[source]
        source: Box<hearth_lxc::RuntimeError>,
    },
    /// Preparing or removing a package's files failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file operation in a package's directory (below trees the container writes)
    /// was refused or failed (`hearth-safefs`).
    #[error("{op}: {source}")]
    Files {
        /// What was being done.
        op: &'static str,
        /// Why (names the path).
        #[source]
        source: hearth_safefs::SafeFsError,
    },
    /// The container spec could not be built.
    #[error("container spec for {id}: {reason}")]
    Spec {
        /// Package id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// Recording state failed.
    #[error(transparent)]
    Package(#[from] PackageError),
}
