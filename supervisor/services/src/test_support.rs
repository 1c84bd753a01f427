//! Builders the unit tests share: a package entry, a container plan, a store holding
//! entries. (`tests/integration/common.rs` is the same for the integration tests,
//! which build real signed archives.)

use std::path::Path;
use std::time::Duration;

use hearth_store::Store;
use serde_json::json;

use crate::doc::{
    self, ContainerInfo, InstallState, PACKAGE_DATA, PackageEntry, Signer, StateInfo,
};
use crate::reconcile::ContainerPlan;
use crate::status::{Desired, RunState, StatusInfo};

/// An installed, stopped package at host number `index` with a `main` volume and the
/// given health check ids, no dependencies.
pub(crate) fn entry(index: u8, checks: &[&str]) -> PackageEntry {
    PackageEntry {
        state_info: StateInfo {
            state: InstallState::Installed,
            phase: None,
            keep_data: false,
            progress: None,
            update: None,
        },
        manifest: json!({}),
        signer: Signer {
            fingerprint: "f".into(),
            key: "k".into(),
            trusted: true,
        },
        archive: String::new(),
        container: ContainerInfo {
            root_image: "main".into(),
            volumes: vec!["main".into()],
            index,
            memory: None,
            pids: None,
            cpu_millicores: None,
            health_checks: checks.iter().map(|c| (*c).to_owned()).collect(),
            capabilities: vec![],
        },
        dependencies: std::collections::BTreeMap::new(),
        status_info: StatusInfo::stopped(),
    }
}

/// `hello` 1.0.0 (host number 2) desired `running`, recorded `state`, started at 5.
pub(crate) fn hello(state: RunState) -> PackageEntry {
    let mut e = entry(2, &[]);
    e.manifest = json!({"id": "hello", "version": "1.0.0:0"});
    e.archive = "a.s9pk".into();
    e.status_info.desired = Desired::Running;
    e.status_info.observed.state = state;
    e.status_info.observed.started_at = Some(5);
    e
}

/// The container plan of hearthd's defaults with its data under `data_dir`.
pub(crate) fn plan(data_dir: &Path) -> ContainerPlan {
    ContainerPlan {
        data_dir: data_dir.to_owned(),
        init_binary: "/usr/lib/hearth/hearth-container".into(),
        bridge: "hearth0".into(),
        gateway: "10.88.0.1".parse().unwrap(),
        prefix_len: 24,
        stop_timeout: Duration::from_secs(5),
        log_max_bytes: None,
    }
}

/// A store at `dir/db` with an empty document.
pub(crate) fn store(dir: &Path) -> Store {
    Store::open(&dir.join("db"), json!({"public": {}, "private": {}})).unwrap()
}

/// Puts `entry` at `/public/packageData/<id>`.
pub(crate) fn put(store: &Store, id: &str, entry: &PackageEntry) {
    store
        .mutate(|d| {
            doc::object_mut(d, PACKAGE_DATA)?
                .insert(id.into(), serde_json::to_value(entry).unwrap());
            Ok::<_, crate::error::PackageError>(())
        })
        .unwrap();
}
