//! hearthd's log cap reaches each container's init: `ContainerPlan::log_max_bytes`
//! becomes `hearth-container --log-max-bytes` (a real installed package, `FakeRuntime`
//! recording the container spec). `ci/systest/faults.sh` checks the files on the data
//! dir with a real container.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "integration/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Pkg, World};
use hearth_lxc::ContainerId;
use hearth_services::{ContainerPlan, Supervisor};
use hearth_testkit::FakeRuntime;
use tokio_util::sync::CancellationToken;

async fn init_args(log_max_bytes: Option<u64>) -> Vec<String> {
    let w = World::new();
    w.install_trusted(&Pkg::new("hello"));
    let rt = Arc::new(FakeRuntime::new());
    let plan = ContainerPlan {
        log_max_bytes,
        ..w.plan()
    };
    let sup = Supervisor::spawn(
        w.store.clone(),
        rt.clone(),
        plan,
        Duration::from_millis(100),
        CancellationToken::new(),
    );
    w.packages.start("hello").unwrap();
    let id = ContainerId::new("hello").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let spec = loop {
        if let Some(spec) = rt.spec(&id) {
            break spec;
        }
        assert!(Instant::now() < deadline, "container never created");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    sup.shutdown().await;
    spec.init.args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_log_cap_is_passed_to_the_container_init() {
    let args = init_args(Some(65536)).await;
    let at = args
        .iter()
        .position(|a| a == "--log-max-bytes")
        .expect("flag");
    assert_eq!(args[at + 1], "65536", "{args:?}");
    let default = init_args(None).await;
    assert!(
        !default.iter().any(|a| a == "--log-max-bytes"),
        "{default:?}"
    );
}
