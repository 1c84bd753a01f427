//! Where packages live in the state document, and typed access to an entry.
//!
//! ```text
//! public.packageData.<id> = {
//!   stateInfo:  { state: installing|installed|updating|removing, phase?, keepData,
//!                 progress? {phase: copy|unpack, bytesDone, bytesTotal?},
//!                 update? (update.rs) },
//! (downloads for `package.install {url}`, before the id is known:
//!  public.packageDownloads.<n> = { url, progress {phase: download, bytesDone, bytesTotal?} })
//!   manifest:   <manifest.json>,
//!   signer:     { fingerprint, key (base64), trusted },
//!   archive:    "packages/archive/<id>/<version>.s9pk"   (relative to the data dir)
//!   container:  { rootImage, volumes, index, memory?, pids?, cpuMillicores?,
//!                 healthChecks? },
//!   dependencies?: { <dep id>: { kind: running|exists, optional, healthChecks?,
//!                                 versionRange? } },
//!   statusInfo: { desired, state, lastError, restartCount, startedAt, attempts, retryAt,
//!                 waitingFor?, resources? (usage.rs), container reports (container_status.rs) }
//! }
//! private.trustedPackageKeys.<fingerprint> = TrustedKey
//! ```
//!
//! Package ids are `[a-z0-9-]`, so they are used in pointers unescaped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use hearth_store::{MutateError, Store};

use crate::error::PackageError;
use crate::status::StatusInfo;

pub(crate) const PACKAGE_DATA: &str = "/public/packageData";
pub(crate) const TRUSTED_KEYS: &str = "/private/trustedPackageKeys";

/// Install state of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum InstallState {
    /// Being copied; not yet usable.
    Installing,
    /// Usable.
    Installed,
    /// Another version is being installed over it (`stateInfo.update`).
    Updating,
    /// Being removed by the reconciler.
    Removing,
}

impl InstallState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            InstallState::Installing => "installing",
            InstallState::Installed => "installed",
            InstallState::Updating => "updating",
            InstallState::Removing => "removing",
        }
    }
}

/// `stateInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StateInfo {
    pub(crate) state: InstallState,
    /// While installing: `copying`, `unpacking`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phase: Option<String>,
    /// While removing: keep the data directory.
    #[serde(default)]
    pub(crate) keep_data: bool,
    /// While copying or unpacking: bytes done of the current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) progress: Option<Progress>,
    /// While updating: what, from which version to which, and where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) update: Option<crate::update::UpdateRecord>,
}

/// `stateInfo.progress`: how far the current phase is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Progress {
    /// `copy` (the archive, filtered to this arch) or `unpack` (the root image).
    pub(crate) phase: String,
    /// Bytes written so far.
    pub(crate) bytes_done: u64,
    /// Bytes in all, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) bytes_total: Option<u64>,
}

/// `signer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Signer {
    pub(crate) fingerprint: String,
    pub(crate) key: String,
    pub(crate) trusted: bool,
}

/// `container`: what the reconciler needs to build the container spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContainerInfo {
    /// Image used as the container root (the first daemon's in start order).
    pub(crate) root_image: String,
    /// Volume ids.
    pub(crate) volumes: Vec<String>,
    /// Host number in the service network (2..=254), unique among packages.
    pub(crate) index: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pids: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_millicores: Option<u32>,
    /// Ids of the spec's health checks (every daemon's): what a dependent waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) health_checks: Vec<String>,
    /// Capabilities beyond the container's default set that the spec asked for: in the
    /// public state so the user sees every privilege a package holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) capabilities: Vec<hearth_lxc::Capability>,
}

/// How a dependency is needed (`dependencies.<id>`), from the manifest and the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DependencyInfo {
    /// `running`: the dependent starts only once it runs and is healthy; `exists`:
    /// installed is enough.
    pub(crate) kind: DependencyKind,
    /// The package works without it (never waited for, never blocks an uninstall).
    #[serde(default)]
    pub(crate) optional: bool,
    /// Health checks of the dependency that must pass, beyond its own list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) health_checks: Vec<String>,
    /// Acceptable versions (exver range; absent = any): an update of the dependency
    /// out of this range is refused while this package is installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version_range: Option<String>,
}

/// `dependencies.<id>.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum DependencyKind {
    /// Installed.
    Exists,
    /// Installed, running and healthy.
    Running,
}

impl DependencyInfo {
    /// A dependency that must run before the dependent starts.
    pub(crate) fn must_run(&self) -> bool {
        !self.optional && self.kind == DependencyKind::Running
    }
}

/// One `packageData` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PackageEntry {
    pub(crate) state_info: StateInfo,
    pub(crate) manifest: Value,
    pub(crate) signer: Signer,
    pub(crate) archive: String,
    pub(crate) container: ContainerInfo,
    /// Packages this one needs, by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) dependencies: BTreeMap<String, DependencyInfo>,
    pub(crate) status_info: StatusInfo,
}

impl PackageEntry {
    pub(crate) fn version(&self) -> String {
        self.manifest
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }
}

pub(crate) fn entry_pointer(id: &str) -> String {
    format!("{PACKAGE_DATA}/{id}")
}

fn damaged(pointer: &str, reason: impl Into<String>) -> PackageError {
    PackageError::Document {
        pointer: pointer.to_owned(),
        reason: reason.into(),
    }
}

/// The object at `pointer` (absolute, unescaped), created if missing.
pub(crate) fn object_mut<'a>(
    doc: &'a mut Value,
    pointer: &str,
) -> Result<&'a mut Map<String, Value>, PackageError> {
    let mut cur = doc;
    for seg in pointer.split('/').skip(1) {
        let map = cur
            .as_object_mut()
            .ok_or_else(|| damaged(pointer, "expected an object"))?;
        cur = map
            .entry(seg.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if cur.is_null() {
        *cur = Value::Object(Map::new());
    }
    cur.as_object_mut()
        .ok_or_else(|| damaged(pointer, "expected an object"))
}

/// Every package entry (unparseable ones are skipped with a warning).
pub(crate) fn entries(doc: &Value) -> Vec<(String, PackageEntry)> {
    doc.pointer(PACKAGE_DATA)
        .map(entries_of)
        .unwrap_or_default()
}

/// Every installed package's entry, read from the store.
pub(crate) fn all(store: &Store) -> Result<BTreeMap<String, PackageEntry>, PackageError> {
    match store.get(PACKAGE_DATA) {
        Ok(v) => Ok(entries_of(&v).into_iter().collect()),
        Err(hearth_store::StoreError::PointerNotFound { .. }) => Ok(BTreeMap::new()),
        Err(source) => Err(PackageError::Store {
            op: "read packages",
            source,
        }),
    }
}

/// The entries of a `packageData` map.
fn entries_of(map: &Value) -> Vec<(String, PackageEntry)> {
    let Some(map) = map.as_object() else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(id, v)| match serde_json::from_value(v.clone()) {
            Ok(e) => Some((id.clone(), e)),
            Err(error) => {
                tracing::warn!(package = %id, %error, "unreadable packageData entry");
                None
            }
        })
        .collect()
}

/// The entry of `id`, if present.
pub(crate) fn load(store: &Store, id: &str) -> Result<Option<PackageEntry>, PackageError> {
    let pointer = entry_pointer(id);
    match store.get(&pointer) {
        Ok(Value::Null) => Ok(None),
        Ok(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| damaged(&pointer, e.to_string())),
        Err(hearth_store::StoreError::PointerNotFound { .. }) => Ok(None),
        Err(source) => Err(PackageError::Store {
            op: "read package",
            source,
        }),
    }
}

/// Runs `f` on the entry of `id` inside one mutation and writes it back; fails with
/// `NotFound` if there is none. Returns `f`'s value and the revision.
pub(crate) fn update<T>(
    store: &Store,
    id: &str,
    op: &'static str,
    f: impl FnOnce(&mut PackageEntry) -> Result<T, PackageError>,
) -> Result<(T, u64), PackageError> {
    store
        .mutate(|d| update_in(d, id, f))
        .map(|m| (m.value, m.revision))
        .map_err(|e| mutate_error(op, e))
}

/// [`update`] inside a mutation already under way (`d` is the whole document).
pub(crate) fn update_in<T>(
    d: &mut Value,
    id: &str,
    f: impl FnOnce(&mut PackageEntry) -> Result<T, PackageError>,
) -> Result<T, PackageError> {
    let pointer = entry_pointer(id);
    let map = object_mut(d, PACKAGE_DATA)?;
    let slot = map.get_mut(id).ok_or_else(|| PackageError::NotFound {
        what: "package",
        id: id.to_owned(),
    })?;
    let mut entry: PackageEntry =
        serde_json::from_value(slot.clone()).map_err(|e| damaged(&pointer, e.to_string()))?;
    let value = f(&mut entry)?;
    *slot = serde_json::to_value(&entry).map_err(|e| damaged(&pointer, e.to_string()))?;
    Ok(value)
}

pub(crate) fn mutate_error(op: &'static str, e: MutateError<PackageError>) -> PackageError {
    match e {
        MutateError::Rejected(e) => e,
        MutateError::Store(source) => PackageError::Store { op, source },
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
