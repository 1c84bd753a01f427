//! `FakeRuntime`: an in-memory `ContainerRuntime` with call recording and fault injection.
//!
//! Invariants: states move only as the trait contract says (create → Stopped, start →
//! Running with a fresh fake pid, stop → Stopped, crash → Stopped); an injected fault
//! makes the call fail before it changes anything.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hearth_lxc::{
    ContainerId, ContainerRuntime, ContainerSpec, ContainerState, ContainerStats, ContainerStatus,
    ExecOutput, RuntimeError,
};

/// A trait operation, for fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// `create`.
    Create,
    /// `start`.
    Start,
    /// `stop`.
    Stop,
    /// `destroy`.
    Destroy,
    /// `state`.
    State,
    /// `exec`.
    Exec,
    /// `stats`.
    Stats,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Start => "start",
            Op::Stop => "stop",
            Op::Destroy => "destroy",
            Op::State => "state",
            Op::Exec => "exec",
            Op::Stats => "stats",
        }
    }
}

/// One recorded call, in the order received (faulted calls included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `create(spec)`.
    Create(ContainerId),
    /// `start(id)`.
    Start(ContainerId),
    /// `stop(id, timeout)`.
    Stop(ContainerId, Duration),
    /// `destroy(id)`.
    Destroy(ContainerId),
    /// `state(id)`.
    State(ContainerId),
    /// `list()`.
    List,
    /// `exec(id, argv)`.
    Exec(ContainerId, Vec<String>),
    /// `stats(id)`.
    Stats(ContainerId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Remaining {
    Times(u32),
    Always,
}

#[derive(Debug, Default)]
struct Inner {
    containers: BTreeMap<ContainerId, (ContainerSpec, ContainerState)>,
    calls: Vec<Call>,
    faults: BTreeMap<(Op, ContainerId), Remaining>,
    exec_results: BTreeMap<ContainerId, ExecOutput>,
    stats: BTreeMap<ContainerId, ContainerStats>,
    next_pid: u32,
}

/// In-memory [`ContainerRuntime`].
#[derive(Debug, Default)]
pub struct FakeRuntime {
    inner: Mutex<Inner>,
}

impl FakeRuntime {
    /// An empty runtime.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The next `op` on `id` fails with [`RuntimeError::Other`] and changes nothing.
    pub fn fail_next(&self, op: Op, id: &ContainerId) {
        self.lock()
            .faults
            .insert((op, id.clone()), Remaining::Times(1));
    }

    /// Every `op` on `id` fails until [`FakeRuntime::clear_faults`].
    pub fn fail_always(&self, op: Op, id: &ContainerId) {
        self.lock()
            .faults
            .insert((op, id.clone()), Remaining::Always);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// The container's init dies: a running container becomes stopped. Returns whether
    /// it was running.
    pub fn crash(&self, id: &ContainerId) -> bool {
        let mut inner = self.lock();
        match inner.containers.get_mut(id) {
            Some((_, state @ ContainerState::Running { .. })) => {
                *state = ContainerState::Stopped;
                true
            }
            _ => false,
        }
    }

    /// What `exec` on `id` returns from now on (default: exit code 0, no output).
    pub fn set_exec_output(&self, id: &ContainerId, output: ExecOutput) {
        self.lock().exec_results.insert(id.clone(), output);
    }

    /// What `stats` on `id` returns from now on (default: all zero).
    pub fn set_stats(&self, id: &ContainerId, stats: ContainerStats) {
        self.lock().stats.insert(id.clone(), stats);
    }

    /// The spec a container was created with.
    pub fn spec(&self, id: &ContainerId) -> Option<ContainerSpec> {
        self.lock().containers.get(id).map(|(s, _)| s.clone())
    }
}

impl Inner {
    /// Records the call, then fails it if a fault is armed for `(op, id)`.
    fn enter(&mut self, call: Call, op: Op, id: &ContainerId) -> Result<(), RuntimeError> {
        self.calls.push(call);
        let key = (op, id.clone());
        let Some(remaining) = self.faults.get(&key).copied() else {
            return Ok(());
        };
        match remaining {
            Remaining::Times(n) if n <= 1 => {
                self.faults.remove(&key);
            }
            Remaining::Times(n) => {
                self.faults.insert(key, Remaining::Times(n - 1));
            }
            Remaining::Always => {}
        }
        Err(RuntimeError::Other {
            id: id.clone(),
            op: op.name(),
            message: "injected fault".into(),
        })
    }

    fn get_mut(
        &mut self,
        id: &ContainerId,
    ) -> Result<&mut (ContainerSpec, ContainerState), RuntimeError> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound { id: id.clone() })
    }
}

impl ContainerRuntime for FakeRuntime {
    fn create(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        let mut inner = self.lock();
        inner.enter(Call::Create(spec.id.clone()), Op::Create, &spec.id)?;
        spec.validate()?;
        match inner.containers.get_mut(&spec.id) {
            Some((existing, ContainerState::Stopped)) => *existing = spec.clone(),
            Some((existing, _)) if existing == spec => {}
            Some(_) => {
                return Err(RuntimeError::Busy {
                    id: spec.id.clone(),
                    op: "create with a different spec",
                });
            }
            None => {
                inner
                    .containers
                    .insert(spec.id.clone(), (spec.clone(), ContainerState::Stopped));
            }
        }
        Ok(())
    }

    fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let mut inner = self.lock();
        inner.enter(Call::Start(id.clone()), Op::Start, id)?;
        inner.next_pid += 1;
        let pid = 10_000 + inner.next_pid;
        let (_, state) = inner.get_mut(id)?;
        if !matches!(state, ContainerState::Running { .. }) {
            *state = ContainerState::Running { pid };
        }
        Ok(())
    }

    fn stop(&self, id: &ContainerId, timeout: Duration) -> Result<(), RuntimeError> {
        let mut inner = self.lock();
        inner.enter(Call::Stop(id.clone(), timeout), Op::Stop, id)?;
        inner.get_mut(id)?.1 = ContainerState::Stopped;
        Ok(())
    }

    fn destroy(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let mut inner = self.lock();
        inner.enter(Call::Destroy(id.clone()), Op::Destroy, id)?;
        inner.containers.remove(id);
        Ok(())
    }

    fn state(&self, id: &ContainerId) -> Result<ContainerState, RuntimeError> {
        let mut inner = self.lock();
        inner.enter(Call::State(id.clone()), Op::State, id)?;
        Ok(inner.get_mut(id)?.1)
    }

    fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let mut inner = self.lock();
        inner.calls.push(Call::List);
        Ok(inner
            .containers
            .iter()
            .map(|(id, (_, state))| ContainerStatus {
                id: id.clone(),
                state: *state,
            })
            .collect())
    }

    fn exec(&self, id: &ContainerId, argv: &[String]) -> Result<ExecOutput, RuntimeError> {
        let mut inner = self.lock();
        inner.enter(Call::Exec(id.clone(), argv.to_vec()), Op::Exec, id)?;
        if !matches!(inner.get_mut(id)?.1, ContainerState::Running { .. }) {
            return Err(RuntimeError::NotRunning {
                id: id.clone(),
                op: "exec",
            });
        }
        Ok(inner.exec_results.get(id).cloned().unwrap_or(ExecOutput {
            code: Some(0),
            ..ExecOutput::default()
        }))
    }

    fn stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        let mut inner = self.lock();
        inner.enter(Call::Stats(id.clone()), Op::Stats, id)?;
        if !matches!(inner.get_mut(id)?.1, ContainerState::Running { .. }) {
            return Err(RuntimeError::NotRunning {
                id: id.clone(),
                op: "stats",
            });
        }
        Ok(inner.stats.get(id).copied().unwrap_or_default())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
mod tests {
    use std::net::Ipv4Addr;

    use hearth_lxc::{InitSpec, Limits, NetworkSpec};

    use super::*;

    fn spec(name: &str) -> ContainerSpec {
        ContainerSpec {
            id: ContainerId::new(name).unwrap(),
            image: "/img.squashfs".into(),
            data_dir: "/data".into(),
            volumes: BTreeMap::new(),
            rpc_dir: "/rpc".into(),
            config_dir: None,
            init: InitSpec {
                binary: "/init".into(),
                args: vec![],
            },
            network: NetworkSpec {
                bridge: "hearth0".into(),
                address: Ipv4Addr::new(10, 87, 0, 2),
                prefix_len: 24,
                gateway: Ipv4Addr::new(10, 87, 0, 1),
            },
            limits: Limits::default(),
            devices: vec![],
            hosts_file: None,
            environment: BTreeMap::new(),
            id_map: hearth_lxc::IdMap::for_index(2),
            capabilities: vec![],
        }
    }

    #[test]
    fn lifecycle_follows_the_contract() {
        let rt = FakeRuntime::new();
        let s = spec("svc");
        let id = &s.id;
        assert!(matches!(rt.state(id), Err(RuntimeError::NotFound { .. })));
        rt.create(&s).unwrap();
        rt.create(&s).unwrap();
        assert_eq!(rt.state(id).unwrap(), ContainerState::Stopped);
        rt.start(id).unwrap();
        let ContainerState::Running { pid } = rt.state(id).unwrap() else {
            panic!("not running");
        };
        rt.start(id).unwrap();
        assert_eq!(rt.state(id).unwrap(), ContainerState::Running { pid });
        let mut changed = s.clone();
        changed.limits.pids = Some(10);
        assert!(matches!(
            rt.create(&changed),
            Err(RuntimeError::Busy { .. })
        ));
        rt.stop(id, Duration::from_secs(1)).unwrap();
        rt.create(&changed).unwrap();
        assert_eq!(rt.spec(id), Some(changed));
        assert_eq!(rt.list().unwrap().len(), 1);
        rt.destroy(id).unwrap();
        rt.destroy(id).unwrap();
        assert!(rt.list().unwrap().is_empty());
        assert!(matches!(rt.start(id), Err(RuntimeError::NotFound { .. })));
    }

    #[test]
    fn invalid_specs_are_refused() {
        let rt = FakeRuntime::new();
        let mut s = spec("svc");
        s.image = "relative".into();
        assert!(matches!(rt.create(&s), Err(RuntimeError::InvalidSpec(_))));
        assert!(rt.list().unwrap().is_empty());
    }

    #[test]
    fn injected_start_failure_changes_nothing_and_fires_once() {
        let rt = FakeRuntime::new();
        let s = spec("svc");
        rt.create(&s).unwrap();
        rt.fail_next(Op::Start, &s.id);
        assert!(matches!(
            rt.start(&s.id),
            Err(RuntimeError::Other { op: "start", .. })
        ));
        assert_eq!(rt.state(&s.id).unwrap(), ContainerState::Stopped);
        rt.start(&s.id).unwrap();
        assert!(matches!(
            rt.state(&s.id).unwrap(),
            ContainerState::Running { .. }
        ));
    }

    #[test]
    fn persistent_faults_until_cleared() {
        let rt = FakeRuntime::new();
        let s = spec("svc");
        rt.create(&s).unwrap();
        rt.fail_always(Op::Stop, &s.id);
        rt.start(&s.id).unwrap();
        for _ in 0..3 {
            assert!(rt.stop(&s.id, Duration::ZERO).is_err());
        }
        rt.clear_faults();
        rt.stop(&s.id, Duration::ZERO).unwrap();
    }

    #[test]
    fn crash_stops_a_running_container() {
        let rt = FakeRuntime::new();
        let s = spec("svc");
        rt.create(&s).unwrap();
        assert!(!rt.crash(&s.id));
        rt.start(&s.id).unwrap();
        assert!(rt.crash(&s.id));
        assert_eq!(rt.state(&s.id).unwrap(), ContainerState::Stopped);
    }

    #[test]
    fn calls_are_recorded_in_order() {
        let rt = FakeRuntime::new();
        let s = spec("svc");
        rt.create(&s).unwrap();
        rt.fail_next(Op::Start, &s.id);
        let _ = rt.start(&s.id);
        rt.stop(&s.id, Duration::from_secs(3)).unwrap();
        let _ = rt.list();
        assert_eq!(
            rt.calls(),
            vec![
                Call::Create(s.id.clone()),
                Call::Start(s.id.clone()),
                Call::Stop(s.id.clone(), Duration::from_secs(3)),
                Call::List,
            ]
        );
    }

    #[test]
    fn exec_needs_a_running_container_and_returns_the_set_output() {
        let rt = FakeRuntime::new();
        let s = spec("svc");
        let argv = vec!["true".to_owned()];
        assert!(matches!(
            rt.exec(&s.id, &argv),
            Err(RuntimeError::NotFound { .. })
        ));
        rt.create(&s).unwrap();
        assert!(matches!(
            rt.exec(&s.id, &argv),
            Err(RuntimeError::NotRunning { .. })
        ));
        rt.start(&s.id).unwrap();
        assert_eq!(rt.exec(&s.id, &argv).unwrap().code, Some(0));
        let out = ExecOutput {
            code: Some(3),
            stdout: b"out".to_vec(),
            stderr: vec![],
        };
        rt.set_exec_output(&s.id, out.clone());
        assert_eq!(rt.exec(&s.id, &argv).unwrap(), out);
        assert!(rt.calls().contains(&Call::Exec(s.id.clone(), argv)));
    }

    #[test]
    fn stats_of_a_running_container() {
        let rt = FakeRuntime::new();
        let s = spec("svc");
        rt.create(&s).unwrap();
        assert!(matches!(
            rt.stats(&s.id),
            Err(RuntimeError::NotRunning { .. })
        ));
        rt.start(&s.id).unwrap();
        assert_eq!(rt.stats(&s.id).unwrap(), ContainerStats::default());
        let set = ContainerStats {
            memory_bytes: 5 << 20,
            pids: 3,
            cpu_time: Duration::from_millis(250),
        };
        rt.set_stats(&s.id, set);
        assert_eq!(rt.stats(&s.id).unwrap(), set);
    }

    #[test]
    fn fake_follows_the_runtime_contract() {
        crate::check_runtime_contract(&FakeRuntime::new(), &spec("svc"));
    }

    #[test]
    fn usable_as_a_trait_object() {
        let rt: std::sync::Arc<dyn ContainerRuntime> = std::sync::Arc::new(FakeRuntime::new());
        assert!(rt.list().unwrap().is_empty());
    }
}
