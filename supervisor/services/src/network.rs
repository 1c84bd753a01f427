//! The service network's firewall kept in step with the installed packages.
//!
//! # Design
//! [`NetworkPolicy`] builds a `hearth_net::Model` from the store (every installed
//! package: its address from its host number, its veth and MAC as `hearth-lxc` names
//! them, its dependencies' addresses with the ports each dependency's installed spec
//! declares in `interfaces`), renders it and applies it through a
//! `hearth_net::Firewall`, skipping an apply when the ruleset is the one applied last.
//! The supervisor applies it once at start (forced: the kernel may have lost or changed
//! the rules while hearthd was down) and wraps its runtime in [`Isolated`], which
//! applies it (if changed) before every container start. So no container starts under
//! rules that do not know it, a package's rules follow its dependencies and their
//! ports, and no reconcile or API handler runs `nft` itself.
//!
//! # Invariants
//! * A start whose rules cannot be applied fails (fail closed; recorded in `lastError`,
//!   retried with back-off); the container is not started.
//! * A dependency whose spec cannot be read declares no ports: nothing of it is
//!   reachable (deny by default), logged.
//!
//! # Limitations
//! * Rules of an uninstalled package stay until the next apply (the next start, or
//!   hearthd's): they name a veth that is gone and an address the next package to get
//!   it cannot use before its own start re-renders them.
//!
//! # Rejected alternatives
//! * Applying from the store-change loop: a start can race ahead of it; the start path
//!   is the one place that must see current rules.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hearth_lxc::{
    ContainerId, ContainerRuntime, ContainerSpec, ContainerState, ContainerStats, ContainerStatus,
    ExecOutput, RuntimeError,
};
use hearth_net::{ContainerNet, Firewall, Model, Peer, Port, Ruleset};
use hearth_store::Store;
use serde_json::Value;

use crate::doc::{self, PackageEntry};
use crate::reconcile::ContainerPlan;

/// The network policy could not be put in force.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The packages could not be read from the store.
    #[error("reading the installed packages for the firewall: {0}")]
    Store(#[source] Box<crate::error::PackageError>),
    /// A package's network place is not valid.
    #[error("package {id}: {reason}")]
    Package {
        /// The package.
        id: String,
        /// Why.
        reason: String,
    },
    /// The rendered model was refused.
    #[error("firewall model: {0}")]
    Model(#[from] hearth_net::ModelError),
    /// The firewall refused the rules.
    #[error(transparent)]
    Firewall(#[from] hearth_net::FirewallError),
}

/// Renders and applies the firewall rules of the installed packages; see the module docs.
#[derive(Debug)]
pub struct NetworkPolicy {
    firewall: Arc<dyn Firewall>,
    host_ports: Vec<Port>,
    /// The ruleset applied last (`None`: none yet); held while applying.
    applied: Mutex<Option<Ruleset>>,
}

impl NetworkPolicy {
    /// Containers may reach DNS on the gateway ([`hearth_net::DNS_PORTS`]) and
    /// `extra_host_ports` there (the proxy's), nothing else of the host.
    pub fn new(firewall: Arc<dyn Firewall>, extra_host_ports: Vec<Port>) -> NetworkPolicy {
        let mut host_ports = hearth_net::DNS_PORTS.to_vec();
        host_ports.extend(extra_host_ports);
        NetworkPolicy {
            firewall,
            host_ports,
            applied: Mutex::new(None),
        }
    }

    /// The model of every package in `all` laid out by `plan`.
    pub(crate) fn model(
        &self,
        plan: &ContainerPlan,
        all: &BTreeMap<String, PackageEntry>,
    ) -> Result<Model, NetworkError> {
        let package_err = |id: &str, reason: String| NetworkError::Package {
            id: id.to_owned(),
            reason,
        };
        let mut containers = Vec::new();
        for (id, e) in all {
            let cid = ContainerId::new(id).map_err(|e| package_err(id, e.to_string()))?;
            let address = plan
                .address(e.container.index)
                .map_err(|r| package_err(id, r))?;
            let mut peers = Vec::new();
            for dep in e.dependencies.keys() {
                let Some(d) = all.get(dep).filter(|_| dep != id) else {
                    continue;
                };
                peers.push(Peer {
                    id: dep.clone(),
                    address: plan
                        .address(d.container.index)
                        .map_err(|r| package_err(dep, r))?,
                    ports: declared_ports(&plan.data_dir, dep),
                });
            }
            containers.push(ContainerNet {
                id: id.clone(),
                veth: hearth_lxc::veth_name(&cid),
                mac: hearth_lxc::mac_address(&cid),
                address,
                peers,
            });
        }
        Ok(Model {
            bridge: plan.bridge.clone(),
            gateway: plan.gateway,
            prefix_len: plan.prefix_len,
            veth_prefix: hearth_lxc::VETH_PREFIX.to_owned(),
            host_ports: self.host_ports.clone(),
            containers,
        })
    }

    /// Renders the rules of the packages in `store` and applies them unless they are
    /// the ones applied last (`force`: apply anyway). Returns whether it applied.
    pub(crate) fn ensure(
        &self,
        store: &Store,
        plan: &ContainerPlan,
        force: bool,
    ) -> Result<bool, NetworkError> {
        let mut applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        let all = doc::all(store).map_err(|e| NetworkError::Store(Box::new(e)))?;
        let rules = hearth_net::render(&self.model(plan, &all)?)?;
        if !force && applied.as_ref() == Some(&rules) {
            return Ok(false);
        }
        self.firewall.apply(&rules)?;
        tracing::info!(
            packages = all.len(),
            "firewall rules of the service network applied"
        );
        *applied = Some(rules);
        Ok(true)
    }
}

/// The ports the installed spec of `id` declares (`interfaces[].port`; `http` and `tcp`
/// are TCP, `udp` UDP); none if it cannot be read.
fn declared_ports(data_dir: &Path, id: &str) -> Vec<Port> {
    let path = crate::install::spec_path(data_dir, id);
    let spec: Value = match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(spec) => spec,
        Err(error) => {
            tracing::warn!(package = %id, path = %path.display(), %error, "no readable spec: none of its ports is open to its dependents");
            return Vec::new();
        }
    };
    let interfaces = spec.get("interfaces").and_then(Value::as_array);
    interfaces
        .into_iter()
        .flatten()
        .filter_map(|i| {
            let port = u16::try_from(i.get("port")?.as_u64()?).ok()?;
            Some(match i.get("protocol").and_then(Value::as_str) {
                Some("udp") => Port::udp(port),
                _ => Port::tcp(port),
            })
        })
        .collect()
}

/// A runtime that puts the current firewall rules in force before every start.
pub(crate) struct Isolated {
    pub(crate) inner: Arc<dyn ContainerRuntime>,
    pub(crate) policy: Arc<NetworkPolicy>,
    pub(crate) store: Store,
    pub(crate) plan: ContainerPlan,
}

impl ContainerRuntime for Isolated {
    fn create(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        self.inner.create(spec)
    }
    fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.policy
            .ensure(&self.store, &self.plan, false)
            .map_err(|e| RuntimeError::Other {
                id: id.clone(),
                op: "firewall",
                message: e.to_string(),
            })?;
        self.inner.start(id)
    }
    fn stop(&self, id: &ContainerId, timeout: Duration) -> Result<(), RuntimeError> {
        self.inner.stop(id, timeout)
    }
    fn destroy(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.inner.destroy(id)
    }
    fn state(&self, id: &ContainerId) -> Result<ContainerState, RuntimeError> {
        self.inner.state(id)
    }
    fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError> {
        self.inner.list()
    }
    fn exec(&self, id: &ContainerId, argv: &[String]) -> Result<ExecOutput, RuntimeError> {
        self.inner.exec(id, argv)
    }
    fn stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        self.inner.stats(id)
    }
}

#[cfg(test)]
mod tests {
    use hearth_net::RecordingFirewall;
    use hearth_testkit::FakeRuntime;

    use super::*;
    use crate::doc::{DependencyInfo, DependencyKind};
    use crate::test_support::{entry, plan, put, store};

    struct T {
        _dir: tempfile::TempDir,
        store: Store,
        plan: ContainerPlan,
        fw: Arc<RecordingFirewall>,
        fake: Arc<FakeRuntime>,
        rt: Isolated,
    }

    fn setup() -> T {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let plan = plan(dir.path());
        let fw = Arc::new(RecordingFirewall::new());
        let fake = Arc::new(FakeRuntime::new());
        let policy = Arc::new(NetworkPolicy::new(
            Arc::clone(&fw) as Arc<dyn Firewall>,
            vec![],
        ));
        let rt = Isolated {
            inner: Arc::clone(&fake) as Arc<dyn ContainerRuntime>,
            policy,
            store: store.clone(),
            plan: plan.clone(),
        };
        T {
            _dir: dir,
            store,
            plan,
            fw,
            fake,
            rt,
        }
    }

    fn write_spec(t: &T, id: &str, spec: &Value) {
        let path = crate::install::spec_path(&t.plan.data_dir, id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_vec(spec).unwrap()).unwrap();
    }

    fn needs(e: &mut PackageEntry, dep: &str) {
        e.dependencies.insert(
            dep.into(),
            DependencyInfo {
                kind: DependencyKind::Running,
                optional: false,
                health_checks: vec![],
                version_range: None,
            },
        );
    }

    fn create_and_start(t: &T, id: &str) -> Result<(), RuntimeError> {
        let all = doc::all(&t.store).unwrap();
        let e = &all[id];
        let spec = t
            .plan
            .spec(id, e, &crate::deps::names(id, e, &all))
            .unwrap();
        t.rt.create(&spec)?;
        t.rt.start(&spec.id)
    }

    fn running(t: &T, id: &str) -> bool {
        matches!(
            t.fake.state(&ContainerId::new(id).unwrap()),
            Ok(ContainerState::Running { .. })
        )
    }

    #[test]
    fn a_start_applies_rules_that_know_the_container_and_its_dependency_ports() {
        let t = setup();
        write_spec(
            &t,
            "db",
            &serde_json::json!({"interfaces": [
                {"id": "pg", "name": "PG", "type": "api", "port": 5432, "protocol": "tcp"},
                {"id": "web", "name": "Web", "type": "ui", "port": 8080},
                {"id": "disc", "name": "Discovery", "type": "p2p", "port": 1900, "protocol": "udp"},
            ]}),
        );
        put(&t.store, "db", &entry(2, &[]));
        let mut app = entry(3, &[]);
        needs(&mut app, "db");
        put(&t.store, "app", &app);

        create_and_start(&t, "app").unwrap();
        let applied = t.fw.applied();
        assert_eq!(applied.len(), 1);
        let text = applied[0].as_str();
        let veth = hearth_lxc::veth_name(&ContainerId::new("app").unwrap());
        assert!(text.contains(&format!("iifname \"{veth}\" jump")), "{text}");
        assert!(
            text.contains("ip saddr 10.88.0.3 ip daddr 10.88.0.2 tcp dport { 5432, 8080 } accept"),
            "{text}"
        );
        assert!(
            text.contains("ip saddr 10.88.0.3 ip daddr 10.88.0.2 udp dport { 1900 } accept"),
            "{text}"
        );
        assert!(
            !text.contains("ip saddr 10.88.0.2 ip daddr 10.88.0.3 tcp dport"),
            "the dependency may not open connections to its dependent: {text}"
        );

        // Nothing changed: the next start applies nothing; a new package does.
        create_and_start(&t, "db").unwrap();
        assert_eq!(t.fw.applied().len(), 1);
        put(&t.store, "other", &entry(4, &[]));
        create_and_start(&t, "other").unwrap();
        assert_eq!(t.fw.applied().len(), 2);
        assert!(t.fw.applied()[1].as_str().contains("10.88.0.4"));
    }

    #[test]
    fn a_dependency_without_a_readable_spec_opens_no_port() {
        let t = setup();
        put(&t.store, "db", &entry(2, &[]));
        let mut app = entry(3, &[]);
        needs(&mut app, "db");
        put(&t.store, "app", &app);
        create_and_start(&t, "app").unwrap();
        let text = t.fw.applied()[0].as_str().to_owned();
        assert!(!text.contains("ip daddr 10.88.0.2 tcp"), "{text}");
        assert!(!text.contains("ip daddr 10.88.0.2 udp"), "{text}");
    }

    #[test]
    fn no_container_starts_when_its_rules_cannot_be_applied() {
        let t = setup();
        put(&t.store, "app", &entry(3, &[]));
        t.fw.fail_with(Some("nft is broken"));
        let err = create_and_start(&t, "app").unwrap_err();
        assert!(err.to_string().contains("nft is broken"), "{err}");
        assert!(!running(&t, "app"), "started without its rules");
        t.fw.fail_with(None);
        create_and_start(&t, "app").unwrap();
        assert!(running(&t, "app"));
    }

    #[test]
    fn a_forced_ensure_applies_even_unchanged_rules() {
        let t = setup();
        let policy = &t.rt.policy;
        assert!(policy.ensure(&t.store, &t.plan, true).unwrap());
        assert!(!policy.ensure(&t.store, &t.plan, false).unwrap());
        assert!(policy.ensure(&t.store, &t.plan, true).unwrap());
        assert_eq!(t.fw.applied().len(), 2);
        assert_eq!(t.fw.applied()[0], t.fw.applied()[1]);
    }

    /// Through the supervisor: rules applied at its start (forced, so again by a new
    /// hearthd), then before the start of a package that changed them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_supervisor_applies_the_rules_at_start_and_before_each_start() {
        let t = setup();
        write_spec(&t, "hello", &serde_json::json!({"daemons": []}));
        for sub in ["archive/hello", "data/hello/volumes/main"] {
            std::fs::create_dir_all(t.plan.data_dir.join("packages").join(sub)).unwrap();
        }
        let policy = Arc::clone(&t.rt.policy);
        let spawn = || {
            crate::Supervisor::spawn_isolated(
                t.store.clone(),
                Arc::clone(&t.fake) as Arc<dyn ContainerRuntime>,
                t.plan.clone(),
                Duration::from_millis(20),
                tokio_util::sync::CancellationToken::new(),
                Arc::clone(&policy),
            )
        };
        let wait = |what: &str, ok: &dyn Fn() -> bool| {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !ok() {
                assert!(std::time::Instant::now() < deadline, "{what}");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let sup = spawn();
        wait("no rules at start", &|| t.fw.applied().len() == 1);
        assert!(!t.fw.applied()[0].as_str().contains("10.88.0.2"));
        put(
            &t.store,
            "hello",
            &crate::test_support::hello(crate::status::RunState::Stopped),
        );
        wait("hello never started", &|| running(&t, "hello"));
        assert_eq!(t.fw.applied().len(), 2, "one apply before the start");
        assert!(
            t.fw.applied()[1]
                .as_str()
                .contains("ip saddr != 10.88.0.2 drop")
        );
        sup.shutdown().await;

        // A new hearthd: the same rules applied again at once; the running container is
        // adopted, not started.
        let sup = spawn();
        wait("no rules at the second start", &|| {
            t.fw.applied().len() == 3
        });
        assert_eq!(t.fw.applied()[2], t.fw.applied()[1]);
        sup.shutdown().await;
    }
}
