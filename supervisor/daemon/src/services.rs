//! Wiring of the service supervisor: pick the container runtime and start reconciling.
//!
//! The real [`hearth_lxc::LxcRuntime`] needs root and LXC. Without them hearthd still
//! runs (API, installs, desired state) with [`hearth_services::UnavailableRuntime`]:
//! starting a service then fails with the reason in its `statusInfo.lastError`, not with
//! a crash of hearthd.
//!
//! With the real runtime the supervisor also keeps the service network's firewall
//! (`hearth-net` rules through `nft`) in force: applied at start and before every
//! container start. Containers reach DNS on the gateway (no other host port yet: the
//! proxy will add its own), their dependencies' declared ports and the outside via NAT.
//!
//! Container images: each container's root is the squashfs extracted (verified) at
//! install to `packages/images/<id>/<image>.squashfs`. Mounting it straight out of the
//! installed archive (`images/<arch>/<image>.squashfs` at its body offset, via a loop
//! device with an offset) would save the copy; it needs the reader to expose body
//! offsets and gives up re-verification.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hearth_lxc::{ContainerRuntime, LxcRuntime};
use hearth_net::{Firewall, Nft};
use hearth_services::{ContainerPlan, NetworkPolicy, Supervisor, UnavailableRuntime};
use hearth_store::Store;
use tokio_util::sync::CancellationToken;

/// Where `LxcRuntime` keeps container definitions and mounts, relative to the data dir.
const CONTAINERS_DIR: &str = "containers";
/// Longest time between two checks of one container.
const TICK: Duration = Duration::from_secs(5);

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// The runtime for this host (`true`: the real one), or an unavailable one saying why.
fn runtime(data_dir: &Path) -> (Arc<dyn ContainerRuntime>, bool) {
    // /proc/self is owned by the effective uid.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let reason = if !root {
        "hearthd is not running as root".to_owned()
    } else if !on_path("lxc-start") {
        "lxc-start is not installed (ci/deps.sh installs LXC)".to_owned()
    } else {
        let path = data_dir.join(CONTAINERS_DIR);
        match LxcRuntime::new(&path) {
            Ok(rt) => {
                tracing::info!(path = %path.display(), "containers run with LXC");
                return (Arc::new(rt), true);
            }
            Err(e) => format!("cannot prepare {}: {e}", path.display()),
        }
    };
    tracing::warn!(%reason, "service containers are unavailable");
    (Arc::new(UnavailableRuntime::new(reason)), false)
}

/// Rolls back installs a previous process did not finish (blocking; call before serving).
pub(crate) fn recover(data_dir: &Path, store: &Store) {
    let packages = hearth_services::Packages::new(
        store.clone(),
        data_dir.to_path_buf(),
        hearth_services::Host::this_machine(),
    );
    match packages.recover() {
        Ok(ids) if !ids.is_empty() => tracing::warn!(?ids, "rolled back interrupted installs"),
        Ok(_) => {}
        Err(error) => tracing::error!(%error, "cannot check for interrupted installs"),
    }
}

/// Starts the supervisor; call inside the tokio runtime.
pub(crate) fn spawn(
    data_dir: &Path,
    store: Store,
    init_binary: PathBuf,
    log_max_bytes: Option<u64>,
    cancel: CancellationToken,
) -> Supervisor {
    let plan = ContainerPlan {
        data_dir: data_dir.to_path_buf(),
        init_binary,
        bridge: hearth_net::SERVICE_BRIDGE.into(),
        gateway: hearth_net::SERVICE_GATEWAY,
        prefix_len: hearth_net::SERVICE_PREFIX_LEN,
        stop_timeout: Duration::from_secs(30),
        log_max_bytes,
    };
    match runtime(data_dir) {
        (runtime, true) => {
            // No host port beyond DNS yet: the proxy (issue 11) will list its own.
            let firewall: Arc<dyn Firewall> = Arc::new(Nft::system());
            let network = Arc::new(NetworkPolicy::new(firewall, Vec::new()));
            Supervisor::spawn_isolated(store, runtime, plan, TICK, cancel, network)
        }
        // No container can start: no rules to keep.
        (runtime, false) => Supervisor::spawn(store, runtime, plan, TICK, cancel),
    }
}
