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
    /// The container's uid/gid range on the host. Specs stored before the field existed
    /// read as [`IdMap::LEGACY`].
    #[serde(default = "IdMap::legacy")]
    pub id_map: IdMap,
    /// Capabilities beyond the base set (`config::BASE_CAPABILITIES`) that the package
    /// asked for and the user was shown; empty for almost every service.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
}

/// Container uid/gid 0 is host id `host_base`, for `count` ids (the same map for uids and
/// gids). Each package gets its own range ([`IdMap::for_index`]), so a process escaping one
/// container owns none of another's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdMap {
    /// Host id of the container's root.
    pub host_base: u32,
    /// Number of ids mapped; always [`ID_MAP_COUNT`].
    pub count: u32,
}

/// First host id delegated to containers (`/etc/subuid`: `root:100000:16777216`).
pub const ID_MAP_BASE: u32 = 100_000;
/// Ids per container: a full 16-bit range, so images' `nobody` (65534) maps.
pub const ID_MAP_COUNT: u32 = 65_536;
/// Ids delegated in all: one range for each possible container index (0..=255).
pub const ID_MAP_TOTAL: u32 = ID_MAP_COUNT * 256;

impl IdMap {
    /// The single range every container shared before ranges were per package.
    pub const LEGACY: IdMap = IdMap {
        host_base: ID_MAP_BASE,
        count: ID_MAP_COUNT,
    };

    /// [`IdMap::LEGACY`], for serde.
    pub fn legacy() -> Self {
        Self::LEGACY
    }

    /// The range of the container with index `n`: host ids
    /// `ID_MAP_BASE + n * 65536 ..` (65,536 of them), disjoint for distinct `n`.
    pub fn for_index(n: u8) -> Self {
        Self {
            host_base: ID_MAP_BASE + u32::from(n) * ID_MAP_COUNT,
            count: ID_MAP_COUNT,
        }
    }

    /// Whether `host_id` (a host uid or gid) belongs to this range.
    pub fn contains(&self, host_id: u32) -> bool {
        host_id >= self.host_base && host_id - self.host_base < self.count
    }

    /// Whether this is one of the delegated per-container ranges (see [`IdMap::for_index`]).
    pub fn is_delegated(&self) -> bool {
        self.count == ID_MAP_COUNT
            && self.host_base >= ID_MAP_BASE
            && (self.host_base - ID_MAP_BASE).is_multiple_of(ID_MAP_COUNT)
            && self.host_base - ID_MAP_BASE < ID_MAP_TOTAL
    }

    fn check(&self) -> Result<(), SpecError> {
        if self.is_delegated() {
            Ok(())
        } else {
            Err(SpecError::InvalidIdMap { id_map: *self })
        }
    }
}

/// A capability a package may ask for beyond the base set; a closed list, because each
/// one widens what a compromised service can do to the host's kernel or network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Raw and packet sockets (ping without ICMP sockets, DHCP servers, packet capture).
    NetRaw,
    /// Interface, route and firewall changes inside the container's network namespace.
    NetAdmin,
    /// Raising priorities and real-time scheduling.
    SysNice,
    /// Locking memory beyond `RLIMIT_MEMLOCK` (databases, key stores).
    IpcLock,
}

impl Capability {
    /// The name LXC's `lxc.cap.keep` takes.
    pub fn lxc_name(self) -> &'static str {
        match self {
            Self::NetRaw => "net_raw",
            Self::NetAdmin => "net_admin",
            Self::SysNice => "sys_nice",
            Self::IpcLock => "ipc_lock",
        }
    }
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
    /// An id range other than one of the delegated per-container ranges.
    #[error(
        "id map {id_map:?}: must be 65536 ids at 100000 + n * 65536 (n < 256), the delegated ranges"
    )]
    InvalidIdMap {
        /// The refused map.
        id_map: IdMap,
    },
    /// A capability listed twice.
    #[error("capability {capability:?} listed twice")]
    DuplicateCapability {
        /// The repeated capability.
        capability: Capability,
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
        self.id_map.check()?;
        let mut seen = std::collections::BTreeSet::new();
        for &capability in &self.capabilities {
            if !seen.insert(capability) {
                return Err(SpecError::DuplicateCapability { capability });
            }
        }
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
            id_map: IdMap::for_index(2),
            capabilities: vec![],
        }
    }

    #[test]
    fn id_maps_are_the_delegated_per_container_ranges() {
        assert_eq!(IdMap::for_index(0), IdMap::LEGACY);
        assert_eq!(IdMap::for_index(2).host_base, 231_072);
        assert_eq!(IdMap::for_index(255).host_base, 100_000 + 255 * 65_536);
        assert!(IdMap::for_index(2).contains(231_072 + 65_535));
        assert!(!IdMap::for_index(2).contains(231_072 + 65_536));
        assert!(!IdMap::for_index(3).contains(231_072));
        for n in [0, 1, 2, 200, 255] {
            let mut s = minimal_spec();
            s.id_map = IdMap::for_index(n);
            s.validate().unwrap();
        }
        for bad in [
            IdMap {
                host_base: 0,
                count: ID_MAP_COUNT,
            },
            IdMap {
                host_base: 99_999,
                count: ID_MAP_COUNT,
            },
            IdMap {
                host_base: 100_001,
                count: ID_MAP_COUNT,
            },
            IdMap {
                host_base: 231_072,
                count: 1_000,
            },
            IdMap {
                host_base: 231_072,
                count: 131_072,
            },
            IdMap {
                host_base: ID_MAP_BASE + ID_MAP_TOTAL,
                count: ID_MAP_COUNT,
            },
            IdMap {
                host_base: u32::MAX,
                count: ID_MAP_COUNT,
            },
        ] {
            let mut s = minimal_spec();
            s.id_map = bad;
            assert!(
                matches!(s.validate(), Err(SpecError::InvalidIdMap { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn stored_specs_without_the_new_fields_still_load() {
        let mut v = serde_json::to_value(minimal_spec()).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("id_map");
        o.remove("capabilities");
        let s: ContainerSpec = serde_json::from_value(v).unwrap();
        assert_eq!(s.id_map, IdMap::LEGACY);
        assert!(s.capabilities.is_empty());
    }

    #[test]
    fn capabilities_are_a_closed_list_without_repeats() {
        let caps: Vec<Capability> =
            serde_json::from_str(r#"["net_raw","net_admin","sys_nice","ipc_lock"]"#).unwrap();
        assert_eq!(caps.len(), 4);
        assert!(serde_json::from_str::<Capability>(r#""sys_admin""#).is_err());
        let mut s = minimal_spec();
        s.capabilities = vec![Capability::NetRaw, Capability::NetRaw];
        assert!(matches!(
            s.validate(),
            Err(SpecError::DuplicateCapability { .. })
        ));
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
