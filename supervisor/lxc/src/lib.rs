//! Hearth's container runtime: the [`ContainerRuntime`] trait the supervisor programs
//! against, and [`LxcRuntime`], its implementation on unprivileged LXC.
//!
//! Design: a service container is an unprivileged LXC container (uid/gid 0 → its own
//! 65,536 host ids, `100000 + index * 65536`, one range per package) whose root is the service image squashfs (loop, read-only, idmapped) under
//! an overlay whose upper lives in the service's data dir; volumes and the RPC directory
//! are idmapped bind mounts at `/media/hearth/volumes/<id>` and `/media/hearth/rpc`, the
//! config dir (what the host gives the container) a read-only one at
//! `/media/hearth/config`; PID 1
//! is `hearth-container`, bind-mounted read-only; one veth on a Hearth bridge with a fixed
//! address; cgroup memory/pids/CPU limits; no host device unless the spec lists it;
//! an allow-list of capabilities and a seccomp denylist (see `config`).
//! - [`spec`](ContainerSpec): desired state, validated before use;
//! - [`render_config`]: the LXC config as a pure function (snapshot-tested);
//! - `mount`, `bridge`, `tool`: the syscalls and the few external tools (`lxc-*`, `ip`,
//!   `unshare`), each behind a typed error;
//! - the in-memory fake lives in `hearth-testkit`.
//!
//! Invariants: nothing here runs a shell; every config value comes from a validated spec.
//!
//! Limitations: volumes and the RPC dir must live on a filesystem that supports idmapped
//! mounts (ext4, xfs, btrfs, tmpfs since Linux 6.3; not NFS), the data dir on one that can
//! hold an overlay upper (xattrs); cgroup v1 and v2 keys are both rendered, but only v1
//! hosts are tested (the development machines run v1); the paths inside the container
//! (`/media/hearth/...`) are constants here until `hearth-layout` owns them; no outbound
//! NAT or firewall here (that is `hearth-net`, `supervisor/net`; this crate only names
//! each container's host veth and MAC stably so its rules can refer to them).
//!
//! Rejected: liblxc bindings (C FFI and `unsafe` across the crate for what five `lxc-*`
//! commands do); privileged containers; chown'ing images and volumes to the range (idmapped
//! mounts leave host files owned by host root and make image mounts shareable).

mod bridge;
mod config;
mod lxc;
mod mount;
mod runtime;
mod spec;
mod stats;
mod tool;

pub use bridge::{VETH_PREFIX, mac_address, veth_name};
pub use config::{
    AppArmor, BASE_CAPABILITIES, CgroupVersion, RenderPaths, SECCOMP_POLICY, render_config,
};
pub use lxc::LxcRuntime;
pub use mount::{MountError, mount_points};
pub use runtime::{ContainerRuntime, ExecOutput, RuntimeError};
pub use spec::{
    CONTAINER_CONFIG_DIR, CONTAINER_INIT_PATH, CONTAINER_RPC_DIR, CONTAINER_VOLUMES_DIR,
    Capability, ContainerId, ContainerSpec, ContainerState, ContainerStatus, DeviceKind,
    DeviceSpec, ID_MAP_BASE, ID_MAP_COUNT, ID_MAP_TOTAL, IdMap, InitSpec, Limits, NetworkSpec,
    SpecError,
};
pub use stats::{ContainerStats, StatsError};
pub use tool::ToolError;
