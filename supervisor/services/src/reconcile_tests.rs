//! One test per reconcile transition, with `FakeRuntime`, a real store and a fake clock.

use std::sync::Arc;
use std::time::Duration;

use hearth_lxc::ContainerId;
use hearth_testkit::{Call, FakeRuntime, Op};
use serde_json::json;

use super::*;
use crate::status::{RunState, StatusInfo};

struct T {
    dir: tempfile::TempDir,
    store: Store,
    rt: Arc<FakeRuntime>,
    plan: ContainerPlan,
}

fn cid() -> ContainerId {
    ContainerId::new("hello").unwrap()
}

impl T {
    fn new(desired: Desired) -> T {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_support::store(dir.path());
        let data = dir.path().join("data");
        let mut entry = crate::test_support::entry(7, &[]);
        entry.manifest = json!({"id": "hello", "version": "1.0.0:0"});
        entry.archive = "packages/archive/hello/1.0.0:0.s9pk".into();
        entry.container.memory = Some(1 << 28);
        entry.container.cpu_millicores = Some(500);
        entry.status_info.desired = desired;
        crate::test_support::put(&store, "hello", &entry);
        for sub in ["archive/hello", "images/hello", "data/hello/volumes/main"] {
            std::fs::create_dir_all(data.join("packages").join(sub)).unwrap();
        }
        std::fs::write(
            data.join("packages/images/hello/hearth.json"),
            b"{\"daemons\": []}",
        )
        .unwrap();
        let plan = crate::test_support::plan(&data);
        T {
            dir,
            store,
            rt: Arc::new(FakeRuntime::new()),
            plan,
        }
    }

    fn step(&self, now: u64) -> Outcome {
        reconcile_once(&self.store, self.rt.as_ref(), &self.plan, "hello", now).unwrap()
    }

    fn status(&self) -> StatusInfo {
        doc::load(&self.store, "hello")
            .unwrap()
            .unwrap()
            .status_info
    }

    fn set_desired(&self, desired: Desired) {
        doc::update(&self.store, "hello", "test", |e| {
            e.status_info.desired = desired;
            Ok(())
        })
        .unwrap();
    }

    fn count(&self, f: impl Fn(&Call) -> bool) -> usize {
        self.rt.calls().iter().filter(|c| f(c)).count()
    }

    fn starts(&self) -> usize {
        self.count(|c| matches!(c, Call::Start(_)))
    }
}

#[test]
fn desired_running_creates_and_starts_with_the_package_spec() {
    let t = T::new(Desired::Running);
    assert_eq!(t.step(1_000), Outcome::Idle);
    let s = t.status();
    assert_eq!(s.observed.state, RunState::Running);
    assert_eq!(s.observed.started_at, Some(1_000));
    assert_eq!(t.starts(), 1);
    let spec = t.rt.spec(&cid()).unwrap();
    assert_eq!(spec.network.address.to_string(), "10.88.0.7");
    assert!(spec.image.ends_with("packages/images/hello/main.squashfs"));
    assert!(spec.volumes["main"].ends_with("packages/data/hello/volumes/main"));
    assert_eq!(spec.limits.memory_bytes, Some(1 << 28));
    assert_eq!(spec.limits.cpu_shares, Some(512));
    // Its own id range, from its index; no capability beyond the base set.
    assert_eq!(spec.id_map, hearth_lxc::IdMap::for_index(7));
    assert!(spec.capabilities.is_empty());
    // hearth-container reads the installed spec from the read-only config dir.
    assert_eq!(
        spec.init.args,
        [
            "--spec",
            "/media/hearth/config/spec.json",
            "--autostart",
            "--images-dir",
            "/media/hearth/config/images"
        ]
    );
    let config = spec.config_dir.clone().unwrap();
    assert!(config.ends_with("packages/data/hello/config"));
    assert!(spec.rpc_dir.ends_with("packages/data/hello/rpc"));
    assert_eq!(
        std::fs::read(config.join("spec.json")).unwrap(),
        b"{\"daemons\": []}"
    );
    assert_eq!(std::fs::read_dir(&spec.rpc_dir).unwrap().count(), 0);
    // Steady state: nothing more happens.
    assert_eq!(t.step(2_000), Outcome::Idle);
    assert_eq!(t.starts(), 1);
}

#[test]
fn failed_start_records_error_and_retries_after_backoff() {
    let t = T::new(Desired::Running);
    t.rt.fail_next(Op::Start, &cid());
    assert_eq!(t.step(10_000), Outcome::WaitUntil(11_000));
    let s = t.status();
    assert_eq!(s.observed.state, RunState::BackingOff);
    assert!(
        s.observed
            .last_error
            .as_deref()
            .unwrap()
            .contains("injected fault")
    );
    assert_eq!(t.step(10_500), Outcome::WaitUntil(11_000));
    assert_eq!(t.starts(), 1, "no start before the back-off deadline");
    assert_eq!(t.step(11_000), Outcome::Idle);
    assert_eq!(t.status().observed.state, RunState::Running);
    assert_eq!(t.starts(), 2);
}

#[test]
fn container_that_dies_is_restarted_and_counted() {
    let t = T::new(Desired::Running);
    t.step(1);
    assert!(t.rt.crash(&cid()));
    t.step(2);
    let s = t.status();
    assert_eq!(s.observed.state, RunState::Running);
    assert_eq!(s.observed.restart_count, 1);
    assert_eq!(s.observed.last_error.as_deref(), Some(crate::status::DIED));
    assert_eq!(t.starts(), 2);
}

#[test]
fn desired_stopped_stops_a_running_container() {
    let t = T::new(Desired::Running);
    t.step(1);
    t.set_desired(Desired::Stopped);
    assert_eq!(t.step(2), Outcome::Again);
    assert_eq!(
        t.count(|c| matches!(c, Call::Stop(_, d) if *d == Duration::from_secs(5))),
        1
    );
    let s = t.status();
    assert_eq!(
        (s.observed.state, s.observed.started_at),
        (RunState::Stopped, None)
    );
    assert_eq!(t.step(3), Outcome::Idle);
    assert_eq!(
        t.rt.state(&cid()).unwrap(),
        hearth_lxc::ContainerState::Stopped
    );
}

#[test]
fn failed_stop_keeps_the_error_and_tries_again() {
    let t = T::new(Desired::Running);
    t.step(1);
    t.set_desired(Desired::Stopped);
    t.rt.fail_next(Op::Stop, &cid());
    assert_eq!(t.step(2), Outcome::Idle);
    assert!(t.status().observed.last_error.is_some());
    assert_eq!(t.step(3), Outcome::Again);
    assert_eq!(t.status().observed.state, RunState::Stopped);
}

#[test]
fn restart_stops_then_starts_and_ends_desired_running() {
    let t = T::new(Desired::Running);
    t.step(1);
    t.set_desired(Desired::Restarting);
    assert_eq!(t.step(2), Outcome::Again);
    assert_eq!(t.status().desired, Desired::Running);
    assert_eq!(t.step(3), Outcome::Idle);
    let s = t.status();
    assert_eq!(s.observed.state, RunState::Running);
    assert_eq!(s.observed.restart_count, 0);
    assert_eq!(t.starts(), 2);
}

#[test]
fn running_container_is_adopted_without_a_second_start() {
    let t = T::new(Desired::Running);
    let spec = t
        .plan
        .spec(
            "hello",
            &doc::load(&t.store, "hello").unwrap().unwrap(),
            &[("hello".into(), 7)],
        )
        .unwrap();
    t.rt.create(&spec).unwrap();
    t.rt.start(&cid()).unwrap();
    assert_eq!(t.step(5), Outcome::Idle);
    assert_eq!(t.status().observed.state, RunState::Running);
    assert_eq!(t.starts(), 1, "only the pre-existing start");
}

fn uninstall(t: &T, keep_data: bool) {
    doc::update(&t.store, "hello", "test", |e| {
        e.state_info.state = InstallState::Removing;
        e.state_info.keep_data = keep_data;
        Ok(())
    })
    .unwrap();
}

#[test]
fn uninstall_destroys_and_removes_archive_image_and_data() {
    let t = T::new(Desired::Running);
    t.step(1);
    uninstall(&t, false);
    assert_eq!(t.step(2), Outcome::Gone);
    assert_eq!(t.count(|c| matches!(c, Call::Destroy(_))), 1);
    assert!(t.rt.state(&cid()).is_err());
    let pkgs = t.plan.data_dir.join("packages");
    for sub in ["archive/hello", "images/hello", "data/hello"] {
        assert!(!pkgs.join(sub).exists(), "{sub} left behind");
    }
    assert!(doc::load(&t.store, "hello").unwrap().is_none());
    assert_eq!(t.step(3), Outcome::Gone);
    drop(t.dir);
}

#[test]
fn uninstall_with_keep_data_keeps_the_data_dir() {
    let t = T::new(Desired::Stopped);
    uninstall(&t, true);
    assert_eq!(t.step(2), Outcome::Gone);
    let pkgs = t.plan.data_dir.join("packages");
    assert!(!pkgs.join("archive/hello").exists());
    assert!(pkgs.join("data/hello/volumes/main").exists());
}

#[test]
fn installing_package_is_left_alone() {
    let t = T::new(Desired::Running);
    doc::update(&t.store, "hello", "test", |e| {
        e.state_info.state = InstallState::Installing;
        Ok(())
    })
    .unwrap();
    assert_eq!(t.step(1), Outcome::Idle);
    assert!(t.rt.calls().is_empty());
}

// --- dependencies --------------------------------------------------------------

/// Adds an installed `db` (host number 2, health check `ping`) that `hello` requires
/// with kind `running`.
fn with_db(t: &T) {
    let mut db = doc::load(&t.store, "hello").unwrap().unwrap();
    db.container.index = 2;
    db.container.health_checks = vec!["ping".into()];
    db.status_info = StatusInfo::stopped();
    t.store
        .mutate(|d| {
            doc::object_mut(d, PACKAGE_DATA)?
                .insert("db".into(), serde_json::to_value(&db).unwrap());
            Ok::<_, crate::error::PackageError>(())
        })
        .unwrap();
    doc::update(&t.store, "hello", "test", |e| {
        e.dependencies.insert(
            "db".into(),
            crate::doc::DependencyInfo {
                kind: crate::doc::DependencyKind::Running,
                optional: false,
                health_checks: vec![],
                version_range: None,
            },
        );
        Ok(())
    })
    .unwrap();
}

fn set_db(t: &T, state: RunState, ping: Option<&str>) {
    doc::update(&t.store, "db", "test", |e| {
        e.status_info.observed.state = state;
        e.status_info.observed.reported.clear();
        if let Some(result) = ping {
            e.status_info.observed.reported.insert(
                "health".into(),
                json!({"ping": {"daemon": "d", "name": "p", "result": result}}),
            );
            e.status_info
                .observed
                .reported
                .insert("reportedAt".into(), json!(1));
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn dependent_waits_until_its_dependency_runs_healthy_then_starts() {
    let t = T::new(Desired::Running);
    with_db(&t);
    assert_eq!(t.step(1), Outcome::Idle);
    let s = t.status();
    assert_eq!(s.observed.state, RunState::Waiting);
    assert_eq!(s.observed.waiting_for, ["db"]);
    assert_eq!(t.starts(), 0, "not started before its dependency");

    set_db(&t, RunState::Running, Some("starting"));
    t.step(2);
    assert_eq!(
        t.status().observed.state,
        RunState::Waiting,
        "running but not healthy"
    );
    set_db(&t, RunState::Running, Some("failure"));
    t.step(3);
    assert_eq!(t.starts(), 0);

    set_db(&t, RunState::Running, Some("success"));
    assert_eq!(t.step(4), Outcome::Idle);
    let s = t.status();
    assert_eq!(s.observed.state, RunState::Running);
    assert!(s.observed.waiting_for.is_empty());
    assert_eq!(t.starts(), 1);
}

#[test]
fn container_gets_stable_names_of_itself_and_its_dependencies() {
    let t = T::new(Desired::Running);
    with_db(&t);
    set_db(&t, RunState::Running, Some("success"));
    t.step(1);
    let spec = t.rt.spec(&cid()).unwrap();
    assert_eq!(spec.environment["HEARTH_DB_HOST"], "10.88.0.2");
    assert_eq!(spec.environment["HEARTH_HELLO_HOST"], "10.88.0.7");
    let hosts = std::fs::read_to_string(spec.hosts_file.as_ref().unwrap()).unwrap();
    assert!(hosts.contains("10.88.0.2\tdb.hearth db\n"), "{hosts}");
    assert!(hosts.contains("10.88.0.7\thello.hearth hello\n"), "{hosts}");
    assert!(
        spec.hosts_file
            .unwrap()
            .ends_with("packages/data/hello/hosts")
    );
}

#[test]
fn start_starts_stopped_dependencies_first_and_uninstall_of_a_dependency_is_refused() {
    let t = T::new(Desired::Stopped);
    with_db(&t);
    let packages = crate::Packages::new(
        t.store.clone(),
        t.plan.data_dir.clone(),
        crate::Host::this_machine(),
    );
    packages.start("hello").unwrap();
    let db = doc::load(&t.store, "db").unwrap().unwrap();
    assert_eq!(db.status_info.desired, Desired::Running);
    assert_eq!(t.status().desired, Desired::Running);

    let err = packages.uninstall("db", false).unwrap_err();
    match &err {
        crate::error::PackageError::HasDependents { dependents, .. } => {
            assert_eq!(dependents, &["hello"]);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("required by hello"), "{err}");
    let db = doc::load(&t.store, "db").unwrap().unwrap();
    assert_eq!(
        db.state_info.state,
        InstallState::Installed,
        "nothing changed"
    );
    // Once the dependent is gone, the dependency may go.
    packages.uninstall("hello", false).unwrap();
    packages.uninstall("db", false).unwrap();
}

/// `db` persisted `running` with `ping` `success` by a container that is gone (hearthd
/// restarted, every container dead), with the files a start of `db` needs.
fn db_left_running_healthy(t: &T) {
    with_db(t);
    for sub in ["images/db", "data/db/volumes/main"] {
        std::fs::create_dir_all(t.plan.data_dir.join("packages").join(sub)).unwrap();
    }
    std::fs::write(
        t.plan.data_dir.join("packages/images/db/hearth.json"),
        b"{\"daemons\": []}",
    )
    .unwrap();
    doc::update(&t.store, "db", "test", |e| {
        e.status_info.desired = Desired::Running;
        e.status_info.observed.started_at = Some(1);
        Ok(())
    })
    .unwrap();
    set_db(t, RunState::Running, Some("success"));
}

fn db_starts(t: &T) -> usize {
    t.count(|c| matches!(c, Call::Start(id) if id.as_str() == "db"))
}

fn hello_starts(t: &T) -> usize {
    t.count(|c| matches!(c, Call::Start(id) if id.as_str() == "hello"))
}

fn fresh_db_report(t: &T, result: &str) {
    let wire = json!({"allReady": true, "daemons": [{"id": "d", "state": "running",
        "health": [{"id": "ping", "name": "p", "result": result}]}]});
    let keys = crate::container_status::report(&wire, 99).unwrap();
    crate::container_status::write(&t.store, "db", keys).unwrap();
}

#[test]
fn health_of_a_dependency_container_that_is_gone_does_not_count() {
    let t = T::new(Desired::Running);
    db_left_running_healthy(&t);
    // The new hearthd drops every stored report first; the dependent's step may come
    // before the dependency's.
    crate::container_status::clear_all(&t.store).unwrap();
    t.step(10);
    assert_eq!(t.status().observed.state, RunState::Waiting);
    assert_eq!(hello_starts(&t), 0);

    // Even a stale report that survived: the dependency's step finds its container
    // gone, restarts it and drops what the old container reported.
    set_db(&t, RunState::Running, Some("success"));
    reconcile_once(&t.store, t.rt.as_ref(), &t.plan, "db", 11).unwrap();
    let db = doc::load(&t.store, "db").unwrap().unwrap();
    assert_eq!(db.status_info.observed.state, RunState::Running);
    assert_eq!(db.status_info.observed.started_at, Some(11));
    assert!(
        db.status_info.observed.reported.is_empty(),
        "old reports kept"
    );
    assert_eq!(db_starts(&t), 1);
    t.step(12);
    assert_eq!(t.status().observed.state, RunState::Waiting);
    assert_eq!(hello_starts(&t), 0, "started on the old container's health");

    // The new container reports: starting, then success.
    fresh_db_report(&t, "starting");
    t.step(13);
    assert_eq!(hello_starts(&t), 0);
    fresh_db_report(&t, "success");
    t.step(14);
    assert_eq!(t.status().observed.state, RunState::Running);
    assert_eq!(hello_starts(&t), 1);
}

#[test]
fn reports_written_while_running_survive_the_reconcilers_writes() {
    let t = T::new(Desired::Running);
    db_left_running_healthy(&t);
    crate::container_status::clear_all(&t.store).unwrap();
    reconcile_once(&t.store, t.rt.as_ref(), &t.plan, "db", 5).unwrap();
    fresh_db_report(&t, "success");
    // A restart request: stopping drops the reports, the new run starts without any.
    doc::update(&t.store, "db", "test", |e| {
        e.status_info.desired = Desired::Restarting;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        reconcile_once(&t.store, t.rt.as_ref(), &t.plan, "db", 6).unwrap(),
        Outcome::Again
    );
    let db = doc::load(&t.store, "db").unwrap().unwrap();
    assert_eq!(db.status_info.observed.state, RunState::Stopped);
    assert!(db.status_info.observed.reported.is_empty());
    reconcile_once(&t.store, t.rt.as_ref(), &t.plan, "db", 7).unwrap();
    fresh_db_report(&t, "success");
    // A later step that records something (here: nothing to do) keeps them.
    doc::update(&t.store, "db", "test", |e| {
        e.status_info.observed.last_error = Some("x".into());
        Ok(())
    })
    .unwrap();
    reconcile_once(&t.store, t.rt.as_ref(), &t.plan, "db", 8).unwrap();
    let db = doc::load(&t.store, "db").unwrap().unwrap();
    assert_eq!(db.status_info.observed.state, RunState::Running);
    assert_eq!(
        db.status_info.observed.reported["health"]["ping"]["result"],
        "success"
    );
}

/// The field scenario end to end through the supervisor: a new hearthd (new
/// `Supervisor`, same store) whose runtime has no containers left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_hearthd_restart_the_dependent_waits_for_fresh_health() {
    let t = T::new(Desired::Running);
    db_left_running_healthy(&t);
    doc::update(&t.store, "hello", "test", |e| {
        e.status_info.observed.state = RunState::Running;
        e.status_info.observed.started_at = Some(2);
        Ok(())
    })
    .unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let supervisor = crate::Supervisor::spawn(
        t.store.clone(),
        Arc::clone(&t.rt) as Arc<dyn hearth_lxc::ContainerRuntime>,
        t.plan.clone(),
        Duration::from_millis(20),
        cancel,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while db_starts(&t) == 0 || t.status().observed.state != RunState::Waiting {
        assert!(
            std::time::Instant::now() < deadline,
            "db not started or hello not waiting: {:?}, hello started {} times",
            t.status().observed.state,
            hello_starts(&t)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Many ticks later: still waiting, never started.
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(hello_starts(&t), 0, "dependent started on stale health");
        assert_eq!(t.status().observed.state, RunState::Waiting);
        assert_eq!(t.status().observed.waiting_for, ["db"]);
    }
    fresh_db_report(&t, "success");
    while hello_starts(&t) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "dependent never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    supervisor.shutdown().await;
    assert_eq!(db_starts(&t), 1);
    assert_eq!(t.status().observed.state, RunState::Running);
}

#[test]
fn image_defaults_are_given_to_the_container_and_replaced_at_each_start() {
    let t = T::new(Desired::Running);
    let config = t.plan.data_dir.join("packages/images/hello/config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("main.env"), "PATH=/usr/bin:/bin\n").unwrap();
    std::fs::write(config.join("main.json"), r#"{"workdir":"/srv"}"#).unwrap();
    t.step(1);
    let spec = t.rt.spec(&cid()).unwrap();
    let images = spec.config_dir.clone().unwrap().join("images");
    assert!(
        spec.init
            .args
            .windows(2)
            .any(|w| w == ["--images-dir", "/media/hearth/config/images"])
    );
    assert_eq!(
        std::fs::read_to_string(images.join("main.env")).unwrap(),
        "PATH=/usr/bin:/bin\n"
    );
    assert_eq!(
        std::fs::read_to_string(images.join("main.json")).unwrap(),
        r#"{"workdir":"/srv"}"#
    );
    // A new version without a `.json`: the old one does not linger.
    std::fs::remove_file(config.join("main.json")).unwrap();
    t.set_desired(Desired::Restarting);
    assert_eq!(t.step(2), Outcome::Again);
    t.step(3);
    assert_eq!(t.starts(), 2);
    assert!(images.join("main.env").is_file());
    assert!(!images.join("main.json").exists());
    // Installed before image defaults were kept: an empty directory, spec alone.
    std::fs::remove_dir_all(&config).unwrap();
    t.set_desired(Desired::Restarting);
    t.step(4);
    t.step(5);
    assert_eq!(t.starts(), 3);
    assert_eq!(std::fs::read_dir(&images).unwrap().count(), 0);
}

fn resources(t: &T) -> Option<serde_json::Value> {
    t.status().observed.reported.get(crate::usage::KEY).cloned()
}

#[test]
fn resource_use_is_shown_while_running_and_cleared_after_stop() {
    let t = T::new(Desired::Running);
    let use_of = |memory_mib: u64, cpu_ms: u64, pids: u64| hearth_lxc::ContainerStats {
        memory_bytes: memory_mib << 20,
        pids,
        cpu_time: Duration::from_millis(cpu_ms),
    };
    t.step(1_000);
    assert_eq!(t.status().observed.state, RunState::Running);
    t.rt.set_stats(&cid(), use_of(40, 100, 4));
    assert_eq!(t.step(6_000), Outcome::Idle);
    assert_eq!(
        resources(&t),
        Some(
            json!({"memoryBytes": 40u64 << 20, "memoryLimitBytes": 1u64 << 28,
                    "cpuTimeNs": 100_000_000u64, "pids": 4, "sampledAt": 6_000})
        )
    );
    // 2.5 s of CPU in 5 s.
    t.rt.set_stats(&cid(), use_of(41, 2_600, 5));
    t.step(11_000);
    let r = resources(&t).unwrap();
    assert_eq!(
        (r["cpuPercent"].as_f64(), &r["pids"]),
        (Some(50.0), &json!(5))
    );
    // Too soon after the stored sample: nothing is written.
    t.rt.set_stats(&cid(), use_of(200, 2_600, 9));
    t.step(12_000);
    assert_eq!(resources(&t).unwrap()["sampledAt"], 11_000);
    t.set_desired(Desired::Stopped);
    assert_eq!(t.step(13_000), Outcome::Again);
    assert_eq!(resources(&t), None);
    assert_eq!(t.step(20_000), Outcome::Idle);
    assert_eq!(resources(&t), None);
}

// --- a dependency that goes down -------------------------------------------------

/// `db` and `hello` (which requires it) both started and running, `db` healthy.
fn both_running(t: &T) -> crate::Packages {
    db_left_running_healthy(t);
    crate::container_status::clear_all(&t.store).unwrap();
    reconcile_once(&t.store, t.rt.as_ref(), &t.plan, "db", 1).unwrap();
    fresh_db_report(t, "success");
    t.step(2);
    assert_eq!(t.status().observed.state, RunState::Running);
    assert_eq!((db_starts(t), hello_starts(t)), (1, 1));
    crate::Packages::new(
        t.store.clone(),
        t.plan.data_dir.clone(),
        crate::Host::this_machine(),
    )
}

fn db_step(t: &T, now: u64) -> Outcome {
    reconcile_once(&t.store, t.rt.as_ref(), &t.plan, "db", now).unwrap()
}

fn hello_seen(t: &T) -> hearth_lxc::ContainerState {
    t.rt.state(&cid()).unwrap()
}

#[test]
fn dependent_stops_and_waits_while_its_dependency_is_stopped_then_comes_back() {
    let t = T::new(Desired::Running);
    let packages = both_running(&t);
    let (_, dependents) = packages.stop("db").unwrap();
    assert_eq!(dependents, ["hello"], "the stop names who is affected");
    // Before the dependency's own step, it is still recorded running: nothing yet.
    assert_eq!(t.step(3), Outcome::Idle);
    assert_eq!(t.status().observed.state, RunState::Running);
    assert_eq!(db_step(&t, 4), Outcome::Again);
    db_step(&t, 5);

    assert_eq!(t.step(6), Outcome::Again, "stopped, look again at once");
    t.step(7);
    let s = t.status();
    assert_eq!(s.desired, Desired::Running, "desired unchanged");
    assert_eq!(s.observed.state, RunState::Waiting);
    assert_eq!(s.observed.waiting_for, ["db"]);
    assert_eq!(s.observed.restart_count, 0, "not a crash");
    assert_eq!(s.observed.last_error, None);
    assert_eq!(hello_seen(&t), hearth_lxc::ContainerState::Stopped);
    t.step(8);
    assert_eq!(
        hello_starts(&t),
        1,
        "not started while its dependency is stopped"
    );

    packages.start("db").unwrap();
    db_step(&t, 9);
    t.step(10);
    assert_eq!(hello_starts(&t), 1, "dependency running, not yet healthy");
    fresh_db_report(&t, "success");
    t.step(11);
    let s = t.status();
    assert_eq!(s.observed.state, RunState::Running);
    assert!(s.observed.waiting_for.is_empty());
    assert_eq!(hello_starts(&t), 2, "back by itself");
}

#[test]
fn dependent_stops_when_its_dependency_fails_its_check_or_dies() {
    let t = T::new(Desired::Running);
    both_running(&t);
    fresh_db_report(&t, "failure");
    assert_eq!(t.step(3), Outcome::Again);
    t.step(4);
    assert_eq!(t.status().observed.state, RunState::Waiting);
    assert_eq!(hello_seen(&t), hearth_lxc::ContainerState::Stopped);
    fresh_db_report(&t, "success");
    t.step(5);
    assert_eq!(t.status().observed.state, RunState::Running);
    assert_eq!(hello_starts(&t), 2);

    // The dependency's container dies: its step starts it again (reports dropped),
    // the dependent stops and waits for the new run's health.
    assert!(t.rt.crash(&ContainerId::new("db").unwrap()));
    let before = doc::load(&t.store, "db").unwrap().unwrap();
    db_step(&t, 6);
    let db = doc::load(&t.store, "db").unwrap().unwrap();
    assert_eq!(
        db.status_info.observed.restart_count,
        before.status_info.observed.restart_count + 1
    );
    assert_eq!(
        db.status_info.observed.state,
        RunState::Running,
        "already back"
    );
    assert_eq!(t.step(7), Outcome::Again);
    t.step(8);
    assert_eq!(t.status().observed.state, RunState::Waiting);
    fresh_db_report(&t, "success");
    t.step(9);
    assert_eq!(hello_starts(&t), 3);
    assert_eq!(t.status().observed.restart_count, 0);
}

#[test]
fn running_dependent_is_left_alone_while_its_running_dependency_has_not_reported() {
    // What a new hearthd sees: both adopted running, every report dropped.
    let t = T::new(Desired::Running);
    both_running(&t);
    crate::container_status::clear_all(&t.store).unwrap();
    assert_eq!(t.step(3), Outcome::Idle);
    assert_eq!(t.status().observed.state, RunState::Running);
    assert_eq!(t.count(|c| matches!(c, Call::Stop(..))), 0);
}

async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Through the supervisor with a tick far away: the dependency's changes alone wake
/// the dependent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_wakes_a_running_dependent_when_its_dependency_stops_and_returns() {
    let t = T::new(Desired::Running);
    let packages = both_running(&t);
    let supervisor = crate::Supervisor::spawn(
        t.store.clone(),
        Arc::clone(&t.rt) as Arc<dyn hearth_lxc::ContainerRuntime>,
        t.plan.clone(),
        Duration::from_secs(3600),
        tokio_util::sync::CancellationToken::new(),
    );
    // Let the first steps (adoption) settle, then report db healthy again.
    until("hello adopted", || {
        t.status().observed.state == RunState::Running
    })
    .await;
    fresh_db_report(&t, "success");
    packages.stop("db").unwrap();
    until("hello waiting", || {
        t.status().observed.state == RunState::Waiting
            && hello_seen(&t) == hearth_lxc::ContainerState::Stopped
    })
    .await;
    assert_eq!(t.status().observed.waiting_for, ["db"]);
    packages.start("db").unwrap();
    until("db running", || {
        doc::load(&t.store, "db")
            .unwrap()
            .unwrap()
            .status_info
            .observed
            .state
            == RunState::Running
    })
    .await;
    fresh_db_report(&t, "success");
    until("hello back", || {
        t.status().observed.state == RunState::Running && hello_starts(&t) == 2
    })
    .await;
    supervisor.shutdown().await;
}

/// Container root plants links where hearthd used to write (the socket dir) and in its
/// volume and overlay upper, then the container is started again: no host file
/// changes, the socket dir is emptied, the config dir is written afresh.
#[test]
fn links_planted_by_the_container_are_never_followed_at_a_start() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let t = T::new(Desired::Running);
    t.step(1);
    let spec = t.rt.spec(&cid()).unwrap();
    let canary = t.plan.data_dir.join("canary");
    std::fs::write(&canary, "X").unwrap();
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o600)).unwrap();
    let outside = t.plan.data_dir.join("outside");
    std::fs::create_dir(&outside).unwrap();
    let rpc = &spec.rpc_dir;
    symlink(&canary, rpc.join("spec.json")).unwrap();
    symlink(&canary, rpc.join(".spec.json.tmp")).unwrap();
    symlink(&outside, rpc.join("images")).unwrap();
    symlink(&canary, rpc.join("service.sock")).unwrap();
    std::fs::hard_link(&canary, rpc.join("hard")).unwrap();
    let volume = &spec.volumes["main"];
    symlink(&canary, volume.join("link")).unwrap();
    let upper = spec.data_dir.join("upper");
    std::fs::create_dir_all(&upper).unwrap();
    symlink(&outside, upper.join("tmp")).unwrap();

    t.set_desired(Desired::Restarting);
    for now in 2..6 {
        t.step(now);
    }
    assert_eq!(t.starts(), 2);
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "X");
    let mode = std::fs::metadata(&canary).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o600);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(rpc).unwrap().count(),
        0,
        "socket dir not emptied"
    );
    let config = spec.config_dir.unwrap();
    assert_eq!(
        std::fs::read(config.join("spec.json")).unwrap(),
        b"{\"daemons\": []}"
    );
    // The container's own files stay as it left them.
    assert!(
        std::fs::symlink_metadata(volume.join("link"))
            .unwrap()
            .is_symlink()
    );
}
