//! The `Supervisor` end to end: a real installed package, `FakeRuntime`, desired state
//! changes through `Packages`, observed status in the store.

use std::sync::Arc;
use std::time::Duration;

use hearth_lxc::{ContainerId, ContainerRuntime};
use hearth_services::Supervisor;
use hearth_testkit::{Call, FakeRuntime};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::common::{Pkg, World};

fn starts(rt: &FakeRuntime) -> usize {
    rt.calls()
        .iter()
        .filter(|c| matches!(c, Call::Start(_)))
        .count()
}

fn installed_world() -> World {
    let w = World::new();
    w.install_trusted(&Pkg::new("hello"));
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_crash_stop_restart_and_uninstall_through_the_supervisor() {
    let w = installed_world();
    let rt = Arc::new(FakeRuntime::new());
    // A long tick: everything below must be driven by store changes, except the crash.
    let sup = Supervisor::spawn(
        w.store.clone(),
        rt.clone(),
        w.plan(),
        Duration::from_millis(200),
        CancellationToken::new(),
    );
    let id = ContainerId::new("hello").unwrap();

    w.packages.start("hello").unwrap();
    w.wait_for("hello", "running", |e| {
        e["statusInfo"]["state"] == "running"
    })
    .await;
    assert_eq!(starts(&rt), 1);

    // The container dies without any store change: the tick notices.
    assert!(rt.crash(&id));
    let e = w
        .wait_for("hello", "restart after crash", |e| {
            e["statusInfo"]["restartCount"] == 1 && e["statusInfo"]["state"] == "running"
        })
        .await;
    assert!(
        e["statusInfo"]["lastError"]
            .as_str()
            .unwrap()
            .contains("unexpectedly")
    );

    let (_, dependents) = w.packages.stop("hello").unwrap();
    assert!(dependents.is_empty());
    w.wait_for("hello", "stopped", |e| {
        e["statusInfo"]["state"] == "stopped"
    })
    .await;
    assert_eq!(rt.state(&id).unwrap(), hearth_lxc::ContainerState::Stopped);

    w.packages.restart("hello").unwrap();
    w.wait_for("hello", "running after restart", |e| {
        e["statusInfo"]["state"] == "running" && e["statusInfo"]["desired"] == "running"
    })
    .await;

    w.packages.uninstall("hello", false).unwrap();
    w.wait_for("hello", "entry removed", Value::is_null).await;
    assert!(rt.state(&id).is_err(), "container destroyed");
    assert!(w.package_files().is_empty(), "{:?}", w.package_files());
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_supervisor_adopts_the_running_container_without_starting_it_again() {
    let w = installed_world();
    let rt = Arc::new(FakeRuntime::new());
    let sup = Supervisor::spawn(
        w.store.clone(),
        rt.clone(),
        w.plan(),
        Duration::from_millis(50),
        CancellationToken::new(),
    );
    w.packages.start("hello").unwrap();
    w.wait_for("hello", "running", |e| {
        e["statusInfo"]["state"] == "running"
    })
    .await;
    sup.shutdown().await;
    let started_at = w.entry("hello")["statusInfo"]["startedAt"].clone();

    // hearthd restarts: the container kept running.
    let sup = Supervisor::spawn(
        w.store.clone(),
        rt.clone(),
        w.plan(),
        Duration::from_millis(50),
        CancellationToken::new(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(starts(&rt), 1, "{:?}", rt.calls());
    let e = w.entry("hello");
    assert_eq!(e["statusInfo"]["state"], "running");
    assert_eq!(e["statusInfo"]["startedAt"], started_at);
    assert!(rt.calls().contains(&Call::List));
    sup.shutdown().await;
}

#[test]
fn lifecycle_calls_check_the_package_and_its_state() {
    let w = installed_world();
    assert!(w.packages.start("nope").is_err());
    w.packages.uninstall("hello", true).unwrap();
    let err = w.packages.start("hello").unwrap_err();
    assert!(err.to_string().contains("removing"), "{err}");
    let list = w.packages.list().unwrap();
    assert_eq!(list[0].state, "removing");
}

#[test]
fn recover_rolls_back_an_interrupted_install_and_clears_back_off() {
    let w = installed_world();
    // A second package whose install was cut short by a crash: entry `installing`, a
    // partial archive on disk.
    let mut entry = w.entry("hello");
    entry["stateInfo"] = serde_json::json!({"state": "installing", "phase": "copying"});
    entry["container"]["index"] = 3.into();
    w.store
        .mutate(|d| {
            d["public"]["packageData"]["half"] = entry;
            // And the installed one was backing off.
            d["public"]["packageData"]["hello"]["statusInfo"]["retryAt"] = u64::MAX.into();
            Ok::<_, ()>(())
        })
        .unwrap();
    let partial = w.data().join("packages/archive/half");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("1.0.0:0.s9pk"), b"partial").unwrap();

    assert_eq!(w.packages.recover().unwrap(), ["half"]);
    assert!(
        w.store
            .get("/public/packageData/half")
            .is_err_and(|e| e.to_string().contains("half"))
    );
    assert!(!partial.exists());
    let hello = w.entry("hello");
    assert_eq!(hello["stateInfo"]["state"], "installed");
    assert_eq!(hello["statusInfo"]["retryAt"], Value::Null);
    assert!(w.data().join("packages/archive/hello").exists());
}
