//! The `ContainerRuntime` contract as one executable check, run against the fake (unit
//! tests here) and against `LxcRuntime` (hearth-lxc's root integration tests), so the fake
//! cannot drift from the real runtime.

use std::time::Duration;

use hearth_lxc::{ContainerRuntime, ContainerSpec, ContainerState, RuntimeError};

/// Panics with a message naming the broken rule unless `rt` follows the documented
/// contract for `spec`, whose init must keep running until stopped. Leaves nothing behind.
pub fn check_runtime_contract(rt: &dyn ContainerRuntime, spec: &ContainerSpec) {
    let id = &spec.id;
    let is = |r: Result<ContainerState, RuntimeError>| match r {
        Ok(s) => s,
        Err(e) => panic!("state of {id}: {e}"),
    };
    assert!(
        matches!(rt.state(id), Err(RuntimeError::NotFound { .. })),
        "state of an unknown container must be NotFound"
    );
    assert!(
        matches!(rt.start(id), Err(RuntimeError::NotFound { .. })),
        "start of an unknown container must be NotFound"
    );
    ok(rt.destroy(id), "destroy of an unknown container succeeds");
    ok(rt.create(spec), "create");
    ok(rt.create(spec), "create again with the same spec");
    assert_eq!(
        is(rt.state(id)),
        ContainerState::Stopped,
        "created is stopped"
    );
    assert!(
        rt.list().is_ok_and(|l| l.iter().any(|c| &c.id == id)),
        "list shows a created container"
    );
    assert!(
        matches!(
            rt.exec(id, &["true".to_owned()]),
            Err(RuntimeError::NotRunning { .. })
        ),
        "exec needs a running container"
    );
    ok(rt.start(id), "start");
    let ContainerState::Running { pid } = is(rt.state(id)) else {
        panic!("started container is not running");
    };
    ok(rt.start(id), "start of a running container");
    assert_eq!(
        is(rt.state(id)),
        ContainerState::Running { pid },
        "a second start changes nothing"
    );
    let mut changed = spec.clone();
    changed.limits.pids = Some(changed.limits.pids.map_or(1000, |p| p + 1));
    assert!(
        matches!(rt.create(&changed), Err(RuntimeError::Busy { .. })),
        "a different spec is refused while running"
    );
    assert!(rt.stats(id).is_ok(), "stats of a running container");
    ok(rt.stop(id, Duration::from_secs(5)), "stop");
    assert_eq!(
        is(rt.state(id)),
        ContainerState::Stopped,
        "stopped after stop"
    );
    ok(
        rt.stop(id, Duration::from_secs(5)),
        "stop of a stopped container",
    );
    assert!(
        matches!(rt.stats(id), Err(RuntimeError::NotRunning { .. })),
        "stats needs a running container"
    );
    ok(
        rt.create(&changed),
        "a different spec replaces a stopped container's",
    );
    ok(rt.create(spec), "and back");
    ok(rt.start(id), "start after stop");
    ok(rt.destroy(id), "destroy of a running container");
    assert!(
        matches!(rt.state(id), Err(RuntimeError::NotFound { .. })),
        "destroyed is NotFound"
    );
    assert!(
        rt.list().is_ok_and(|l| l.iter().all(|c| &c.id != id)),
        "list forgets a destroyed container"
    );
    ok(rt.destroy(id), "destroy twice");
}

fn ok<T>(r: Result<T, RuntimeError>, what: &str) {
    if let Err(e) = r {
        panic!("{what}: {e}");
    }
}
