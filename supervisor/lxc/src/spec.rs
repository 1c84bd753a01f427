//! What a container should be (`ContainerSpec`) and what it is (`ContainerState`).
//!
//! Design: the spec is plain data, validated once by [`ContainerSpec::validate`] before any
//! runtime acts on it. Everything that ends up in an LXC config line (paths, names,
//! arguments) is restricted to characters that need no quoting there: LXC's config format
//! and its fstab-style `lxc.mount.entry` have no reliable escaping, so refusing is safer
//! than escaping.
//!
//! Invariants: a validated spec has a container id usable as an LXC name and a hostname,
//! absolute host paths without whitespace, volume ids that are single path components,
//! and an address inside the gateway's network.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where volumes appear inside the container: `<VOLUMES_DIR>/<volume id>`.
pub const CONTAINER_VOLUMES_DIR: &str = "/media/hearth/volumes";
/// Where the host↔container RPC directory appears inside the container (writable; it
/// holds only the control socket).
pub const CONTAINER_RPC_DIR: &str = hearth_layout::CONTAINER_RPC_DIR;
/// Where the config directory appears inside the container (read-only).
pub const CONTAINER_CONFIG_DIR: &str = hearth_layout::CONTAINER_CONFIG_DIR;
/// Where the init binary (`hearth-container`) appears inside the container (read-only).
pub const CONTAINER_INIT_PATH: &str = "/usr/lib/hearth/hearth-container";

/// A container's name: `[a-z0-9][a-z0-9-]{0,62}`, used as LXC name and hostname.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerId(String);

impl ContainerId {
    /// Checks the name; see the type's documentation for the accepted form.
    pub fn new(name: impl Into<String>) -> Result<Self, SpecError> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-');
        if ok {
            Ok(Self(name))
        } else {
            Err(SpecError::InvalidId { id: name })
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ContainerId {
    type Error = SpecError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<ContainerId> for String {
    fn from(value: ContainerId) -> Self {
        value.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything a runtime needs to create one service container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    /// The container's name.
    pub id: ContainerId,
    /// The service image: a squashfs root filesystem, mounted read-only.
    pub image: PathBuf,
    /// Per-container writable state; the overlay's `upper/` and `work/` live here.
    pub data_dir: PathBuf,
    /// Volume id → host directory, bind-mounted at `/media/hearth/volumes/<id>`.
    pub volumes: BTreeMap<String, PathBuf>,
    /// Host directory bind-mounted writable at `/media/hearth/rpc` (the control socket;
    /// the host must treat everything in it as the container's).
    pub rpc_dir: PathBuf,
    /// Host directory only the host writes, bind-mounted read-only at
    /// `/media/hearth/config` (the service spec, image defaults); none when absent.
    #[serde(default)]
    pub config_dir: Option<PathBuf>,
    /// The container's PID 1.
    pub init: InitSpec,
    /// The container's one network interface.
    pub network: NetworkSpec,
    /// Resource limits; `None` fields are unlimited.
    pub limits: Limits,
    /// Host devices passed through; empty unless the manifest asks.
    pub devices: Vec<DeviceSpec>,
    /// A host file bind-mounted read-only at `/etc/hosts` (the names of the service
    /// and of its dependencies); `None` leaves the image's own.
    #[serde(default)]
    pub hosts_file: Option<PathBuf>,
    /// Environment of the container's init, inherited by every process it starts
    /// (`lxc.environment`). Names `[A-Za-z_][A-Za-z0-9_]*`, values without whitespace.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

/// PID 1: a host binary bind-mounted read-only at [`CONTAINER_INIT_PATH`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitSpec {
    /// The binary on the host (normally `hearth-container`).
    pub binary: PathBuf,
    /// Arguments after the binary; no whitespace inside an argument (LXC splits on it).
    pub args: Vec<String>,
}

/// One veth on a host bridge with a fixed IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Host bridge the veth joins (created if missing, with `gateway/prefix_len`).
    pub bridge: String,
    /// The container's address.
    pub address: Ipv4Addr,
    /// Network prefix length of `address` and `gateway`.
    pub prefix_len: u8,
    /// The bridge's own address, the container's default route.
    pub gateway: Ipv4Addr,
}

/// cgroup limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory limit in bytes.
    pub memory_bytes: Option<u64>,
    /// Maximum number of tasks (processes and threads).
    pub pids: Option<u64>,
    /// Relative CPU weight in cgroup v1 `cpu.shares` units (default 1024).
    pub cpu_shares: Option<u64>,
}

/// A host device node made available at the same path inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Path of the node, e.g. `/dev/dri/renderD128`; the same inside the container.
    pub path: PathBuf,
    /// Character or block device.
    pub kind: DeviceKind,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Allow reads only.
    pub read_only: bool,
}

/// Device node type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// Character device (`c`).
    Char,
    /// Block device (`b`).
    Block,
}

/// Observed container state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum ContainerState {
    /// Created (or defined) and not running.
    Stopped,
    /// Being started; init not yet running.
    Starting,
    /// Init runs with this host pid.
    Running {
        /// Host pid of the container's PID 1.
        pid: u32,
    },
    /// Being stopped or aborting.
    Stopping,
    /// Frozen (cgroup freezer).
    Frozen,
}

/// One entry of [`crate::ContainerRuntime::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// The container.
    pub id: ContainerId,
    /// Its state at the time of listing.
    pub state: ContainerState,
}

/// Why a spec was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Names are `[a-z0-9][a-z0-9-]{0,62}`.
    #[error("invalid container id {id:?}: use 1-63 of a-z, 0-9, '-' (not first)")]
    InvalidId {
        /// The refused name.
        id: String,
    },
    /// A path is not absolute or holds characters LXC's config cannot carry.
    #[error("{what} path {path:?} must be absolute, without whitespace, ',' or ':'")]
    InvalidPath {
        /// Which field.
        what: String,
        /// The refused path.
        path: PathBuf,
    },
    /// Volume ids are single path components.
    #[error("invalid volume id {id:?}: use 1-64 of a-z, A-Z, 0-9, '-', '_', '.' (not '.' or '..')")]
    InvalidVolumeId {
        /// The refused id.
        id: String,
    },
    /// Init arguments cannot contain whitespace.
    #[error("init argument {arg:?} contains whitespace or is empty")]
    InvalidInitArg {
        /// The refused argument.
        arg: String,
    },
    /// Bridge names are network interface names.
    #[error("invalid bridge name {name:?}: use 1-15 of a-z, A-Z, 0-9, '-', '_'")]
    InvalidBridge {
        /// The refused name.
        name: String,
    },
    /// Address, gateway and prefix do not form one network.
    #[error("address {address}/{prefix_len} with gateway {gateway} is not one usable network")]
    InvalidNetwork {
        /// Container address.
        address: Ipv4Addr,
        /// Prefix length.
        prefix_len: u8,
        /// Gateway.
        gateway: Ipv4Addr,
    },
    /// A requested device is not the node the spec describes on this host.
    #[error("device {path}: {problem}")]
    DeviceMismatch {
        /// The device path.
        path: PathBuf,
        /// What differs (missing, not a device node, other type or numbers).
        problem: String,
    },
    /// An environment variable LXC's config could not carry.
    #[error(
        "environment variable {name:?}: names are [A-Za-z_][A-Za-z0-9_]*, values have no whitespace"
    )]
    InvalidEnvironment {
        /// The refused name.
        name: String,
    },
    /// A limit of zero would stop the container from running at all.
    #[error("limit {what} must be greater than zero")]
    ZeroLimit {
        /// Which limit.
        what: &'static str,
    },
}

impl ContainerSpec {
    /// Checks every field that ends up in the LXC config; see the module invariants.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_path("image", &self.image)?;
        check_path("data_dir", &self.data_dir)?;
        check_path("rpc_dir", &self.rpc_dir)?;
        if let Some(dir) = &self.config_dir {
            check_path("config_dir", dir)?;
        }
        check_path("init binary", &self.init.binary)?;
        for (id, path) in &self.volumes {
            let ok = !id.is_empty()
                && id.len() <= 64
                && id != "."
                && id != ".."
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok {
                return Err(SpecError::InvalidVolumeId { id: id.clone() });
            }
            check_path(&format!("volume {id}"), path)?;
        }
        for arg in &self.init.args {
            if arg.is_empty() || arg.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(SpecError::InvalidInitArg { arg: arg.clone() });
            }
        }
        for dev in &self.devices {
            check_path("device", &dev.path)?;
        }
        if let Some(hosts) = &self.hosts_file {
            check_path("hosts file", hosts)?;
        }
        for (name, value) in &self.environment {
            let name_ok = name.bytes().enumerate().all(|(i, b)| {
                b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit())
            }) && !name.is_empty();
            let value_ok = !value.chars().any(|c| c.is_whitespace() || c.is_control());
            if !name_ok || !value_ok {
                return Err(SpecError::InvalidEnvironment { name: name.clone() });
            }
        }
        let bridge = &self.network.bridge;
        if bridge.is_empty()
            || bridge.len() > 15
            || !bridge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        {
            return Err(SpecError::InvalidBridge {
                name: bridge.clone(),
            });
        }
        self.network.check()?;
        for (what, value) in [
            ("memory_bytes", self.limits.memory_bytes),
            ("pids", self.limits.pids),
            ("cpu_shares", self.limits.cpu_shares),
        ] {
            if value == Some(0) {
                return Err(SpecError::ZeroLimit { what });
            }
        }
        Ok(())
    }
}

impl NetworkSpec {
    fn check(&self) -> Result<(), SpecError> {
        let err = || SpecError::InvalidNetwork {
            address: self.address,
            prefix_len: self.prefix_len,
            gateway: self.gateway,
        };
        if !(8..=30).contains(&self.prefix_len) || self.address == self.gateway {
            return Err(err());
        }
        let mask = u32::MAX << (32 - u32::from(self.prefix_len));
        let (a, g) = (u32::from(self.address), u32::from(self.gateway));
        let host = |x: u32| x & !mask;
        if a & mask != g & mask || [a, g].iter().any(|&x| host(x) == 0 || host(x) == !mask) {
            return Err(err());
        }
        Ok(())
    }
}

fn check_path(what: &str, path: &Path) -> Result<(), SpecError> {
    let ok = path.is_absolute()
        && path.to_str().is_some_and(|s| {
            !s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == ':')
        });
    if ok {
        Ok(())
    } else {
        Err(SpecError::InvalidPath {
            what: what.to_owned(),
            path: path.to_owned(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
pub(crate) mod tests {
    use super::*;

    pub(crate) fn minimal_spec() -> ContainerSpec {
        ContainerSpec {
            id: ContainerId::new("hello-world").unwrap(),
            image: "/var/lib/hearth/images/hello.squashfs".into(),
            data_dir: "/var/lib/hearth/data/hello-world".into(),
            volumes: BTreeMap::new(),
            rpc_dir: "/run/hearth/rpc/hello-world".into(),
            config_dir: None,
            init: InitSpec {
                binary: "/usr/lib/hearth/hearth-container".into(),
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
        }
    }

    #[test]
    fn environment_names_and_values_fit_a_config_line() {
        for (name, value) in [
            ("", "x"),
            ("1A", "x"),
            ("A-B", "x"),
            ("A", "a b"),
            ("A", "a\nb"),
        ] {
            let mut s = minimal_spec();
            s.environment.insert(name.into(), value.into());
            assert!(
                matches!(s.validate(), Err(SpecError::InvalidEnvironment { .. })),
                "{name:?}={value:?}"
            );
        }
        let mut s = minimal_spec();
        s.environment
            .insert("HEARTH_A_HOST".into(), "10.88.0.2".into());
        s.hosts_file = Some("/srv/hosts".into());
        s.validate().unwrap();
        s.hosts_file = Some("relative".into());
        assert!(matches!(s.validate(), Err(SpecError::InvalidPath { .. })));
    }

    #[test]
    fn ids_are_lxc_and_host_names() {
        for ok in ["a", "hello-world", "x1", &"a".repeat(63)] {
            assert!(ContainerId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a.b", "a/b", "a b", &"a".repeat(64)] {
            assert!(ContainerId::new(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<ContainerId>("\"../x\"").is_err());
    }

    #[test]
    fn minimal_spec_is_valid() {
        minimal_spec().validate().unwrap();
    }

    #[test]
    fn paths_that_lxc_config_cannot_carry_are_refused() {
        for bad in [
            "relative/x.squashfs",
            "/a b",
            "/a,b",
            "/a:b",
            "/a\nlxc.x = y",
        ] {
            let mut s = minimal_spec();
            s.image = bad.into();
            assert!(
                matches!(s.validate(), Err(SpecError::InvalidPath { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn volume_ids_are_single_components() {
        for bad in ["", ".", "..", "a/b", "a b"] {
            let mut s = minimal_spec();
            s.volumes.insert(bad.into(), "/srv/v".into());
            assert!(
                matches!(s.validate(), Err(SpecError::InvalidVolumeId { .. })),
                "{bad:?}"
            );
        }
        let mut s = minimal_spec();
        s.volumes.insert("main.db_2".into(), "/srv/v".into());
        s.validate().unwrap();
    }

    #[test]
    fn init_args_without_whitespace() {
        let mut s = minimal_spec();
        s.init.args = vec!["--flag".into(), "two words".into()];
        assert!(matches!(
            s.validate(),
            Err(SpecError::InvalidInitArg { .. })
        ));
    }

    #[test]
    fn network_must_be_one_subnet() {
        let mut s = minimal_spec();
        s.network.gateway = Ipv4Addr::new(10, 88, 0, 1);
        assert!(matches!(
            s.validate(),
            Err(SpecError::InvalidNetwork { .. })
        ));
        let mut s = minimal_spec();
        s.network.address = Ipv4Addr::new(10, 87, 0, 255);
        assert!(matches!(
            s.validate(),
            Err(SpecError::InvalidNetwork { .. })
        ));
        let mut s = minimal_spec();
        s.network.address = s.network.gateway;
        assert!(matches!(
            s.validate(),
            Err(SpecError::InvalidNetwork { .. })
        ));
        let mut s = minimal_spec();
        s.network.bridge = "averyveryverylongname".into();
        assert!(matches!(s.validate(), Err(SpecError::InvalidBridge { .. })));
    }

    #[test]
    fn zero_limits_are_refused() {
        let mut s = minimal_spec();
        s.limits.pids = Some(0);
        assert!(matches!(
            s.validate(),
            Err(SpecError::ZeroLimit { what: "pids" })
        ));
    }
}
