//! [`Supervisor`]: one reconcile task per installed package, woken by store changes to
//! its entry, by its back-off deadline, and by a periodic tick (a container can die
//! without any store change).
//!
//! Tasks live in a `JoinSet` owned by the supervisor's main task and end on its
//! `CancellationToken`; containers keep running when hearthd stops (they are detached)
//! and are adopted at the next start: the first step of each task finds them running
//! and records that, without a second start.
//!
//! With a [`NetworkPolicy`] ([`Supervisor::spawn_isolated`]) the service network's
//! firewall rules are applied at start, before anything is adopted or started, and the
//! runtime is wrapped so every container start applies them first (`network.rs`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use hearth_lxc::ContainerRuntime;
use hearth_store::Store;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::container_status::{self, REPORTED_KEYS, SocketConnector};
use crate::doc::{self, PACKAGE_DATA};
use crate::network::{Isolated, NetworkPolicy};
use crate::reconcile::{ContainerPlan, Outcome, reconcile_once};
use crate::status::RunState;

struct Ctx {
    store: Store,
    runtime: Arc<dyn ContainerRuntime>,
    plan: ContainerPlan,
    tick: Duration,
    connector: SocketConnector,
    network: Option<Arc<NetworkPolicy>>,
}

/// The running reconcile loops; see the module docs.
#[derive(Debug)]
pub struct Supervisor {
    cancel: CancellationToken,
    main: tokio::task::JoinHandle<()>,
}

impl Supervisor {
    /// Starts supervising every package in `store` with `runtime`; `tick` is the longest
    /// time between two checks of one container. Must be called inside a tokio runtime.
    pub fn spawn(
        store: Store,
        runtime: Arc<dyn ContainerRuntime>,
        plan: ContainerPlan,
        tick: Duration,
        cancel: CancellationToken,
    ) -> Supervisor {
        Self::start(store, runtime, plan, tick, cancel, None)
    }

    /// [`Supervisor::spawn`] with the service network's firewall: `network`'s rules are
    /// applied at start and before every container start.
    pub fn spawn_isolated(
        store: Store,
        runtime: Arc<dyn ContainerRuntime>,
        plan: ContainerPlan,
        tick: Duration,
        cancel: CancellationToken,
        network: Arc<NetworkPolicy>,
    ) -> Supervisor {
        let runtime = Arc::new(Isolated {
            inner: runtime,
            policy: Arc::clone(&network),
            store: store.clone(),
            plan: plan.clone(),
        });
        Self::start(store, runtime, plan, tick, cancel, Some(network))
    }

    fn start(
        store: Store,
        runtime: Arc<dyn ContainerRuntime>,
        plan: ContainerPlan,
        tick: Duration,
        cancel: CancellationToken,
        network: Option<Arc<NetworkPolicy>>,
    ) -> Supervisor {
        let ctx = Arc::new(Ctx {
            store,
            runtime,
            plan,
            tick,
            connector: SocketConnector {
                wait: container_status::CONNECT_WAIT,
            },
            network,
        });
        let main = tokio::spawn(run(ctx, cancel.clone()));
        Supervisor { cancel, main }
    }

    /// Stops every reconcile task (containers keep running) and waits for them.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        if let Err(error) = self.main.await {
            tracing::error!(%error, "service supervisor task failed");
        }
    }
}

fn installed_ids(store: &Store) -> BTreeSet<String> {
    store
        .get(PACKAGE_DATA)
        .ok()
        .and_then(|v| v.as_object().map(|m| m.keys().cloned().collect()))
        .unwrap_or_default()
}

/// Packages a change of the packages in `changed` (`None`: any) may concern beyond
/// their own entries: those recorded `waiting` (for their dependencies: one may now be
/// ready) and those that require one of `changed` running (it may be down now:
/// `deps::down`).
fn dependency_watchers(store: &Store, changed: Option<&BTreeSet<String>>) -> BTreeSet<String> {
    let Ok(Value::Object(map)) = store.get(PACKAGE_DATA) else {
        return BTreeSet::new();
    };
    map.into_iter()
        .filter(|(_, e)| {
            let waiting = e.pointer("/statusInfo/state").and_then(Value::as_str)
                == Some(RunState::Waiting.as_str());
            let needs_changed = e
                .get("dependencies")
                .and_then(Value::as_object)
                .is_some_and(|deps| {
                    deps.iter().any(|(dep, info)| {
                        changed.is_none_or(|c| c.contains(dep))
                            && info.get("kind").and_then(Value::as_str) == Some("running")
                            && info.get("optional").and_then(Value::as_bool) != Some(true)
                    })
                });
            waiting || needs_changed
        })
        .map(|(id, _)| id)
        .collect()
}

/// Package ids any path of a public patch is under (`None` = possibly all), reports
/// included.
fn changed_ids(patch: &json_patch_paths::Patch) -> Option<BTreeSet<String>> {
    ids_under(patch, |_| false)
}

/// Package ids touched by a public patch (`None` = possibly all), leaving out what
/// the status monitor writes (it needs no reconcile step).
fn touched(patch: &json_patch_paths::Patch) -> Option<BTreeSet<String>> {
    ids_under(patch, |rest| {
        let mut segs = rest.split('/').skip(2);
        segs.next() == Some("statusInfo") && segs.next().is_some_and(|k| REPORTED_KEYS.contains(&k))
    })
}

/// The ids of the `/packageData/<id>…` paths of `patch` not `skip`ped (`skip` sees
/// the path after `/packageData`); `None` when the whole map is touched.
fn ids_under(
    patch: &json_patch_paths::Patch,
    skip: impl Fn(&str) -> bool,
) -> Option<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    for path in patch {
        let Some(rest) = path.strip_prefix("/packageData") else {
            continue;
        };
        if skip(rest) {
            continue;
        }
        match rest.split('/').nth(1) {
            Some(id) if !id.is_empty() => {
                ids.insert(id.to_owned());
            }
            _ => return None,
        }
    }
    Some(ids)
}

mod json_patch_paths {
    /// The `path`s of a serialized RFC 6902 patch.
    pub(super) type Patch = Vec<String>;

    pub(super) fn paths(patch: &serde_json::Value) -> Patch {
        patch
            .as_array()
            .map(|ops| {
                ops.iter()
                    .filter_map(|op| op.get("path").and_then(|p| p.as_str()).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Applies the firewall rules, unchanged or not: the kernel may have lost them (a reboot)
/// or someone changed them while hearthd was down. A failure is logged; every start
/// tries again and fails while it lasts.
async fn apply_network(ctx: &Arc<Ctx>) {
    let Some(network) = ctx.network.clone() else {
        return;
    };
    let c = Arc::clone(ctx);
    match tokio::task::spawn_blocking(move || network.ensure(&c.store, &c.plan, true)).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::error!(%error, "cannot apply the service network's firewall"),
        Err(error) => tracing::error!(%error, "applying the firewall panicked"),
    }
}

async fn adopt(ctx: &Ctx) {
    // Reports stored by the previous hearthd may be from containers that are gone:
    // no dependent may start on them (`deps::healthy`).
    if let Err(error) = container_status::clear_all(&ctx.store) {
        tracing::warn!(%error, "cannot clear stale container status");
    }
    let runtime = Arc::clone(&ctx.runtime);
    let listed = tokio::task::spawn_blocking(move || runtime.list()).await;
    let known = installed_ids(&ctx.store);
    match listed {
        Ok(Ok(list)) => {
            for c in list {
                if known.contains(c.id.as_str()) {
                    tracing::info!(container = %c.id, state = ?c.state, "adopting container");
                } else {
                    tracing::warn!(container = %c.id, "container of no installed package; left alone");
                }
            }
        }
        Ok(Err(error)) => tracing::warn!(%error, "cannot list containers"),
        Err(error) => tracing::warn!(%error, "listing containers panicked"),
    }
}

async fn run(ctx: Arc<Ctx>, cancel: CancellationToken) {
    let mut updates = ctx.store.subscribe().updates;
    apply_network(&ctx).await;
    adopt(&ctx).await;
    let mut tasks: JoinSet<String> = JoinSet::new();
    let mut wakers: HashMap<String, Arc<Notify>> = HashMap::new();
    ensure_tasks(&ctx, &mut tasks, &mut wakers, &cancel);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            update = updates.recv() => {
                let (mut ids, changed) = match update {
                    Ok(rev) => {
                        let patch = serde_json::to_value(&rev.patch).unwrap_or(Value::Null);
                        let paths = json_patch_paths::paths(&patch);
                        (touched(&paths), changed_ids(&paths))
                    }
                    Err(RecvError::Lagged(_)) => (None, None),
                    Err(RecvError::Closed) => break,
                };
                // A dependency that changed (state, health) may let a waiting
                // dependent start, or make a running one stop.
                if changed.as_ref().is_none_or(|c| !c.is_empty())
                    && let Some(ids) = ids.as_mut()
                {
                    ids.extend(dependency_watchers(&ctx.store, changed.as_ref()));
                }
                if ids.as_ref().is_some_and(BTreeSet::is_empty) {
                    continue;
                }
                ensure_tasks(&ctx, &mut tasks, &mut wakers, &cancel);
                for (id, waker) in &wakers {
                    if ids.as_ref().is_none_or(|ids| ids.contains(id)) {
                        waker.notify_one();
                    }
                }
            }
            Some(done) = tasks.join_next() => {
                match done {
                    Ok(id) => { wakers.remove(&id); }
                    Err(error) => tracing::error!(%error, "reconcile task failed"),
                }
                // A package removed and installed again needs a new task.
                ensure_tasks(&ctx, &mut tasks, &mut wakers, &cancel);
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}

fn ensure_tasks(
    ctx: &Arc<Ctx>,
    tasks: &mut JoinSet<String>,
    wakers: &mut HashMap<String, Arc<Notify>>,
    cancel: &CancellationToken,
) {
    for id in installed_ids(&ctx.store) {
        if wakers.contains_key(&id) {
            continue;
        }
        let waker = Arc::new(Notify::new());
        wakers.insert(id.clone(), Arc::clone(&waker));
        tasks.spawn(service_task(Arc::clone(ctx), id, waker, cancel.clone()));
    }
}

async fn service_task(
    ctx: Arc<Ctx>,
    id: String,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) -> String {
    tracing::debug!(package = %id, "reconcile task started");
    let mut monitor = MonitorSlot::default();
    let id = reconcile_loop(&ctx, id, &wake, &cancel, &mut monitor).await;
    monitor.stop().await;
    id
}

async fn reconcile_loop(
    ctx: &Arc<Ctx>,
    id: String,
    wake: &Notify,
    cancel: &CancellationToken,
    monitor: &mut MonitorSlot,
) -> String {
    loop {
        let step_ctx = Arc::clone(ctx);
        let step_id = id.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            reconcile_once(
                &step_ctx.store,
                step_ctx.runtime.as_ref(),
                &step_ctx.plan,
                &step_id,
                doc::now_ms(),
            )
        })
        .await;
        let wait = match outcome {
            Ok(Ok(Outcome::Gone)) => return id,
            Ok(Ok(Outcome::Again)) => continue,
            Ok(Ok(Outcome::Idle)) => ctx.tick,
            Ok(Ok(Outcome::WaitUntil(at))) => {
                Duration::from_millis(at.saturating_sub(doc::now_ms())).min(ctx.tick)
            }
            Ok(Err(error)) => {
                tracing::warn!(package = %id, %error, "reconcile failed; retrying");
                let message = error.to_string();
                let recorded = doc::update(&ctx.store, &id, "record error", |e| {
                    e.status_info.observed.last_error = Some(message);
                    Ok(())
                });
                if let Err(error) = recorded {
                    tracing::warn!(package = %id, %error, "cannot record the error");
                }
                ctx.tick
            }
            Err(error) => {
                tracing::error!(package = %id, %error, "reconcile step panicked");
                ctx.tick
            }
        };
        monitor.follow(ctx, &id, cancel).await;
        tokio::select! {
            () = cancel.cancelled() => return id,
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// The status monitor of one package (at most one task), run while it is `running`.
#[derive(Default)]
struct MonitorSlot {
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl MonitorSlot {
    /// Starts the monitor if the package runs and none is following it; stops it and
    /// clears what it reported otherwise.
    async fn follow(&mut self, ctx: &Arc<Ctx>, id: &str, parent: &CancellationToken) {
        while self.tasks.try_join_next().is_some() {}
        let running = doc::load(&ctx.store, id)
            .ok()
            .flatten()
            .is_some_and(|e| e.status_info.observed.state == RunState::Running);
        if running {
            if self.tasks.is_empty() {
                self.cancel = parent.child_token();
                let (ctx, id, cancel) = (Arc::clone(ctx), id.to_owned(), self.cancel.clone());
                let rpc_dir = crate::container_client::rpc_dir(&ctx.plan.data_dir, &id);
                self.tasks.spawn(async move {
                    container_status::monitor(&ctx.connector, &ctx.store, &id, rpc_dir, &cancel)
                        .await;
                });
            }
            return;
        }
        self.stop().await;
        if let Err(error) = container_status::clear(&ctx.store, id) {
            tracing::warn!(package = %id, %error, "cannot clear the container's status");
        }
    }

    async fn stop(&mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(paths: &[&str]) -> Option<BTreeSet<String>> {
        touched(&paths.iter().map(|p| (*p).to_owned()).collect())
    }

    #[test]
    fn waiting_packages_and_dependents_of_a_change_are_found_for_waking() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("db"),
            serde_json::json!({"public": {"packageData": {
                "app": {"statusInfo": {"state": "waiting", "waitingFor": ["db"]}},
                "db": {"statusInfo": {"state": "starting"}},
                "web": {"statusInfo": {"state": "running"},
                        "dependencies": {"db": {"kind": "running", "optional": false}}},
                "opt": {"statusInfo": {"state": "running"},
                        "dependencies": {"db": {"kind": "running", "optional": true}}},
                "cfg": {"statusInfo": {"state": "running"},
                        "dependencies": {"db": {"kind": "exists", "optional": false}}},
            }}, "private": {}}),
        )
        .unwrap();
        let set = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        assert_eq!(
            dependency_watchers(&store, Some(&set(&["app"]))),
            set(&["app"])
        );
        assert_eq!(
            dependency_watchers(&store, Some(&set(&["db"]))),
            set(&["app", "web"])
        );
        assert_eq!(dependency_watchers(&store, None), set(&["app", "web"]));
        let paths = ["/packageData/db/statusInfo/health".to_owned()].into();
        assert_eq!(changed_ids(&paths), Some(set(&["db"])), "reports count");
        assert_eq!(changed_ids(&["/ui/x".to_owned()].into()), Some(set(&[])));
        assert_eq!(changed_ids(&["/packageData".to_owned()].into()), None);
    }

    #[test]
    fn patches_wake_only_the_packages_they_touch() {
        let one: BTreeSet<String> = ["a".to_owned()].into();
        assert_eq!(ids(&["/packageData/a/statusInfo/state"]), Some(one.clone()));
        assert_eq!(ids(&["/serverInfo/hostname", "/packageData/a"]), Some(one));
        assert_eq!(ids(&["/ui/theme"]), Some(BTreeSet::new()));
        // What the status monitor writes does not wake the reconciler.
        let status_only = [
            "/packageData/a/statusInfo/health",
            "/packageData/a/statusInfo/reportedAt",
        ];
        assert_eq!(ids(&status_only), Some(BTreeSet::new()));
        assert_eq!(
            ids(&["/packageData/a/statusInfo/desired"]).map(|s| s.len()),
            Some(1)
        );
        // The whole map replaced (first install, restore): everyone.
        assert_eq!(ids(&["/packageData"]), None);
        let patch = serde_json::json!([{"op": "add", "path": "/packageData/b", "value": {}}]);
        assert_eq!(json_patch_paths::paths(&patch), ["/packageData/b"]);
    }
}
