//! Updates driven by the reconciler with `FakeRuntime`, a real store, real files and
//! a fake clock: success, failed migration, never healthy, and hearthd restarts.

use std::path::Path;
use std::sync::Arc;

use hearth_lxc::{ContainerId, ContainerState, ExecOutput};
use hearth_testkit::{Call, FakeRuntime};
use serde_json::json;

use super::*;
use crate::doc::ContainerInfo;
use crate::reconcile::reconcile_once;

const V1: &str = "1.0.0:0";
const V2: &str = "2.0.0:0";

struct T {
    _dir: tempfile::TempDir,
    store: Store,
    rt: Arc<FakeRuntime>,
    plan: ContainerPlan,
}

fn cid() -> ContainerId {
    ContainerId::new("hello").unwrap()
}

fn spec_json(migration: bool) -> Vec<u8> {
    let mut spec = json!({
        "daemons": [{"id": "web", "image": "main", "command": ["httpd"],
            "healthChecks": [{"id": "http", "name": "Page",
                "probe": {"http": {"port": 80}}, "gracePeriod": "20s", "interval": "5s",
                "timeout": "5s"}]}],
    });
    if migration {
        spec["migration"] = json!({"command": ["/bin/migrate", "--all"], "timeout": "30s"});
    }
    serde_json::to_vec(&spec).unwrap()
}

fn release(version: &str) -> Release {
    Release {
        manifest: json!({"id": "hello", "version": version}),
        signer: Signer {
            fingerprint: "f".into(),
            key: "k".into(),
            trusted: true,
        },
        archive: format!("packages/archive/hello/{version}.s9pk"),
        container: ContainerInfo {
            root_image: "main".into(),
            volumes: vec!["main".into()],
            index: 5,
            memory: None,
            pids: None,
            cpu_millicores: None,
            health_checks: vec!["http".into()],
            capabilities: vec![],
        },
        dependencies: BTreeMap::new(),
    }
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

impl T {
    /// `hello` 1.0.0 installed and running with a volume file, and 2.0.0 staged as
    /// the install call leaves it (phase `stopping`).
    fn new(migration: bool) -> T {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_support::store(dir.path());
        let data = dir.path().join("data");
        let plan = crate::test_support::plan(&data);
        write(
            &data.join("packages/images/hello/main.squashfs"),
            b"v1 image",
        );
        write(
            &data.join("packages/images/hello/hearth.json"),
            &spec_json(false),
        );
        write(
            &data.join(format!("packages/archive/hello/{V1}.s9pk")),
            b"v1",
        );
        write(
            &data.join(format!("packages/archive/hello/{V2}.s9pk")),
            b"v2",
        );
        write(
            &data.join("packages/update/hello/next/main.squashfs"),
            b"v2 image",
        );
        write(
            &data.join("packages/update/hello/next/hearth.json"),
            &spec_json(migration),
        );
        write(
            &data.join("packages/data/hello/volumes/main/db"),
            b"v1 data",
        );
        write(
            &data.join("packages/data/hello/container/upper/etc/x"),
            b"v1 upper",
        );

        let mut entry = crate::test_support::entry(5, &[]);
        entry.status_info.desired = Desired::Running;
        release(V1).apply(&mut entry);
        crate::test_support::put(&store, "hello", &entry);
        let t = T {
            _dir: dir,
            store,
            rt: Arc::new(FakeRuntime::new()),
            plan,
        };
        // v1 runs.
        assert_eq!(t.step(1_000), Outcome::Idle);
        assert_eq!(t.entry().status_info.observed.state, RunState::Running);
        doc::update(&t.store, "hello", "test", |e| {
            e.state_info.state = InstallState::Updating;
            e.state_info.phase = Some("stopping".into());
            e.state_info.update = Some(UpdateRecord {
                from: V1.into(),
                to: V2.into(),
                phase: UpdatePhase::Stopping,
                deadline: None,
                error: None,
                previous: release(V1),
                next: release(V2),
            });
            Ok(())
        })
        .unwrap();
        t
    }

    fn data(&self) -> &Path {
        &self.plan.data_dir
    }

    fn step(&self, now: u64) -> Outcome {
        reconcile_once(&self.store, self.rt.as_ref(), &self.plan, "hello", now).unwrap()
    }

    fn entry(&self) -> PackageEntry {
        doc::load(&self.store, "hello").unwrap().unwrap()
    }

    fn phase(&self) -> Option<UpdatePhase> {
        self.entry().state_info.update.map(|u| u.phase)
    }

    /// Steps until the update leaves `phase`... or is over; returns the phase reached.
    fn run_until(&self, target: Option<UpdatePhase>, now: u64) -> Option<UpdatePhase> {
        for _ in 0..20 {
            if self.phase() == target {
                return target;
            }
            self.step(now);
        }
        self.phase()
    }

    fn report_health(&self, result: &str, message: Option<&str>) {
        doc::update(&self.store, "hello", "test", |e| {
            let mut check = json!({"daemon": "web", "name": "Page", "result": result});
            if let Some(m) = message {
                check["message"] = json!(m);
            }
            e.status_info
                .observed
                .reported
                .insert("health".into(), json!({"http": check}));
            Ok(())
        })
        .unwrap();
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.data().join(rel)).unwrap_or_else(|_| "<missing>".into())
    }

    fn notifications(&self) -> Vec<serde_json::Value> {
        self.store
            .get("/public/notifications")
            .ok()
            .and_then(|v| v.as_object().map(|m| m.values().cloned().collect()))
            .unwrap_or_default()
    }

    fn assert_old_version_back(&self) {
        let e = self.entry();
        assert_eq!(e.state_info.state, InstallState::Installed);
        assert!(e.state_info.update.is_none());
        assert_eq!(e.version(), V1);
        assert_eq!(self.read("packages/images/hello/main.squashfs"), "v1 image");
        assert_eq!(
            self.read("packages/images/hello/hearth.json"),
            String::from_utf8(spec_json(false)).unwrap()
        );
        assert_eq!(self.read("packages/data/hello/volumes/main/db"), "v1 data");
        assert_eq!(
            self.read("packages/data/hello/container/upper/etc/x"),
            "v1 upper"
        );
        assert_eq!(
            self.read(&format!("packages/archive/hello/{V1}.s9pk")),
            "v1"
        );
        assert!(
            !self
                .data()
                .join(format!("packages/archive/hello/{V2}.s9pk"))
                .exists()
        );
        assert!(!self.data().join("packages/update/hello").exists());
        assert!(
            !self
                .data()
                .join("packages/data/hello/snapshots")
                .join(V1)
                .exists()
        );
        let last = e.status_info.observed.last_error.unwrap();
        assert!(last.contains("rolled back"), "{last}");
    }
}

#[test]
fn successful_update_keeps_volumes_swaps_image_and_commits() {
    let t = T::new(false);
    assert_eq!(
        t.run_until(Some(UpdatePhase::Checking), 2_000),
        Some(UpdatePhase::Checking)
    );
    // The old container was stopped, then the new one started with the new image.
    assert!(t.rt.calls().iter().any(|c| matches!(c, Call::Stop(..))));
    assert!(t.rt.calls().iter().any(|c| matches!(c, Call::Destroy(_))));
    assert_eq!(t.read("packages/images/hello/main.squashfs"), "v2 image");
    assert!(matches!(
        t.rt.state(&cid()).unwrap(),
        ContainerState::Running { .. }
    ));
    assert_eq!(t.entry().version(), V2);
    assert_eq!(t.entry().state_info.phase.as_deref(), Some("checking"));
    // The snapshot holds the volumes as they were.
    assert_eq!(
        t.read(&format!("packages/data/hello/snapshots/{V1}/main/db")),
        "v1 data"
    );
    // Not healthy yet: it waits.
    t.report_health("starting", None);
    assert!(matches!(t.step(3_000), Outcome::WaitUntil(_)));
    assert_eq!(t.phase(), Some(UpdatePhase::Checking));
    t.report_health("success", None);
    assert_eq!(t.run_until(None, 4_000), None);
    let e = t.entry();
    assert_eq!(e.state_info.state, InstallState::Installed);
    assert_eq!(e.state_info.phase, None);
    assert_eq!(e.version(), V2);
    assert_eq!(e.archive, format!("packages/archive/hello/{V2}.s9pk"));
    assert_eq!(t.read("packages/data/hello/volumes/main/db"), "v1 data");
    assert!(
        !t.data()
            .join(format!("packages/archive/hello/{V1}.s9pk"))
            .exists()
    );
    assert!(!t.data().join("packages/update/hello").exists());
    assert!(
        !t.data()
            .join("packages/data/hello/snapshots")
            .join(V1)
            .exists()
    );
    let n = t.notifications();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0]["level"], "success");
    // It keeps running as the new version: no further start.
    let starts =
        t.rt.calls()
            .iter()
            .filter(|c| matches!(c, Call::Start(_)))
            .count();
    assert_eq!(t.step(5_000), Outcome::Idle);
    assert_eq!(
        t.rt.calls()
            .iter()
            .filter(|c| matches!(c, Call::Start(_)))
            .count(),
        starts
    );
}

#[test]
fn failed_migration_rolls_back_image_and_data_with_a_notification() {
    let t = T::new(true);
    assert_eq!(
        t.run_until(Some(UpdatePhase::Migrating), 2_000),
        Some(UpdatePhase::Migrating)
    );
    // What the new version would have changed in the volume before failing.
    write(
        &t.data().join("packages/data/hello/volumes/main/db"),
        b"half migrated",
    );
    t.rt.set_exec_output(
        &cid(),
        ExecOutput {
            code: Some(3),
            stdout: Vec::new(),
            stderr: b"schema 7 unknown".to_vec(),
        },
    );
    assert_eq!(t.run_until(None, 3_000), None);
    let execs: Vec<_> =
        t.rt.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Exec(_, argv) => Some(argv),
                _ => None,
            })
            .collect();
    assert_eq!(execs, [vec!["/bin/migrate".to_owned(), "--all".to_owned()]]);
    t.assert_old_version_back();
    let n = t.notifications();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0]["level"], "error");
    let msg = n[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("status 3") && msg.contains("schema 7 unknown"),
        "{msg}"
    );
    // The old version is started again (desired running).
    t.step(4_000);
    assert_eq!(t.entry().status_info.observed.state, RunState::Running);
    assert_eq!(
        t.rt.spec(&cid()).unwrap().image,
        t.data().join("packages/images/hello/main.squashfs")
    );
}

#[test]
fn migration_runs_without_daemons_and_with_the_previous_version() {
    let t = T::new(true);
    assert_eq!(
        t.run_until(Some(UpdatePhase::Migrating), 2_000),
        Some(UpdatePhase::Migrating)
    );
    // Look at the spec the migration container is created with, before it is destroyed.
    t.rt.fail_next(hearth_testkit::Op::Destroy, &cid());
    let _ = reconcile_once(&t.store, t.rt.as_ref(), &t.plan, "hello", 3_000);
    let spec = t.rt.spec(&cid()).unwrap();
    assert_eq!(spec.environment[PREVIOUS_VERSION_ENV], V1);
    assert!(!spec.init.args.iter().any(|a| a == "--autostart"));
}

#[test]
fn never_healthy_rolls_back_after_the_grace_period() {
    let t = T::new(false);
    assert_eq!(
        t.run_until(Some(UpdatePhase::Checking), 10_000),
        Some(UpdatePhase::Checking)
    );
    let deadline = t.entry().state_info.update.unwrap().deadline.unwrap();
    // gracePeriod 20 s + interval 5 s + timeout 5 s.
    assert_eq!(deadline, 10_000 + 30_000);
    t.report_health("failure", Some("connection refused"));
    assert!(matches!(t.step(deadline - 1), Outcome::WaitUntil(_)));
    assert_eq!(t.phase(), Some(UpdatePhase::Checking));
    assert_eq!(t.run_until(None, deadline), None);
    t.assert_old_version_back();
    let msg = t.notifications()[0]["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("not healthy within its grace period") && msg.contains("connection refused"),
        "{msg}"
    );
}

#[test]
fn restart_while_staged_cancels_and_leaves_the_old_version_untouched() {
    let t = T::new(false);
    doc::update(&t.store, "hello", "test", |e| {
        e.state_info.update.as_mut().unwrap().phase = UpdatePhase::Unpacking;
        Ok(())
    })
    .unwrap();
    // While staging, the old version is reconciled as usual.
    assert!(t.rt.crash(&cid()));
    t.step(2_000);
    assert_eq!(t.entry().status_info.observed.restart_count, 1);
    let packages = crate::Packages::new(
        t.store.clone(),
        t.data().to_owned(),
        crate::Host::this_machine(),
    );
    assert_eq!(packages.recover().unwrap(), ["hello"]);
    let e = t.entry();
    assert_eq!(
        (e.state_info.state, e.version()),
        (InstallState::Installed, V1.to_owned())
    );
    assert!(e.state_info.update.is_none());
    assert!(!t.data().join("packages/update/hello").exists());
    assert!(
        !t.data()
            .join(format!("packages/archive/hello/{V2}.s9pk"))
            .exists()
    );
    assert_eq!(t.read("packages/images/hello/main.squashfs"), "v1 image");
}

#[test]
fn restart_during_the_migration_rolls_back() {
    let t = T::new(true);
    assert_eq!(
        t.run_until(Some(UpdatePhase::Migrating), 2_000),
        Some(UpdatePhase::Migrating)
    );
    write(
        &t.data().join("packages/data/hello/volumes/main/db"),
        b"half migrated",
    );
    // hearthd dies here; the next one recovers before reconciling.
    let packages = crate::Packages::new(
        t.store.clone(),
        t.data().to_owned(),
        crate::Host::this_machine(),
    );
    assert_eq!(packages.recover().unwrap(), ["hello"]);
    assert_eq!(t.phase(), Some(UpdatePhase::RollingBack));
    assert_eq!(t.run_until(None, 3_000), None);
    t.assert_old_version_back();
    assert!(t.rt.calls().iter().all(|c| !matches!(c, Call::Exec(..))));
}

#[test]
fn restart_half_way_through_the_swap_resumes_it() {
    let t = T::new(false);
    assert_eq!(
        t.run_until(Some(UpdatePhase::Swapping), 2_000),
        Some(UpdatePhase::Swapping)
    );
    // The first rename happened, then hearthd died.
    std::fs::create_dir_all(t.data().join("packages/update/hello")).unwrap();
    std::fs::rename(
        t.data().join("packages/images/hello"),
        t.data().join("packages/update/hello/prev-images"),
    )
    .unwrap();
    let packages = crate::Packages::new(
        t.store.clone(),
        t.data().to_owned(),
        crate::Host::this_machine(),
    );
    assert!(packages.recover().unwrap().is_empty());
    assert_eq!(
        t.run_until(Some(UpdatePhase::Checking), 3_000),
        Some(UpdatePhase::Checking)
    );
    assert_eq!(t.read("packages/images/hello/main.squashfs"), "v2 image");
    // A failure now still finds the old image to go back to.
    t.report_health("failure", None);
    assert_eq!(t.run_until(None, 1_000_000), None);
    t.assert_old_version_back();
}

#[test]
fn start_stop_and_uninstall_wait_for_the_update() {
    let t = T::new(false);
    let packages = crate::Packages::new(
        t.store.clone(),
        t.data().to_owned(),
        crate::Host::this_machine(),
    );
    assert!(packages.stop("hello").is_err());
    assert!(packages.start("hello").is_err());
    assert!(packages.uninstall("hello", false).is_err());
    assert_eq!(t.entry().state_info.state, InstallState::Updating);
}
