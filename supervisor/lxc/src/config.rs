//! Rendering a [`ContainerSpec`] into an LXC config file: a pure function, snapshot-tested.
//!
//! Design: the config is self-contained — it includes neither `common.conf` nor
//! `userns.conf` from the distribution, so what a container gets is exactly what this file
//! says, on every host. The pieces:
//! - unprivileged: `lxc.idmap` maps uid/gid 0 to [`ID_MAP_BASE`] for [`ID_MAP_COUNT`] ids;
//! - the rootfs is a directory prepared by the runtime (idmapped squashfs + overlay);
//! - the init binary is bind-mounted read-only at [`CONTAINER_INIT_PATH`]; the RPC
//!   directory and volumes are bind mounts made idmapped by LXC (`idmap=container`), so
//!   host files owned by uid 0 are owned by root inside and nothing is chown'd. These mounts
//!   exist only in the container's mount namespace and vanish with it;
//! - an optional hosts file is bind-mounted read-only at `/etc/hosts` (the supervisor
//!   writes the names of the service and its dependencies there) and
//!   `lxc.environment` lines give init, and so every process, the spec's environment;
//! - limits use the cgroup version the host runs: v1 keys (`lxc.cgroup.*`,
//!   `memory.limit_in_bytes`, `pids.max`, `cpu.shares`) or v2 keys (`lxc.cgroup2.*`,
//!   `memory.max`, `pids.max`, `cpu.weight` converted from shares);
//! - devices: everything denied except the pseudo-devices every program expects
//!   (null, zero, full, random, urandom, tty, console, ptmx, pts); each requested device is
//!   allowed in the devices cgroup and bind-mounted from the host.
//!
//! Invariants: the input spec has been validated ([`ContainerSpec::validate`]), so no
//! value contains whitespace or a newline that could inject a config line.
//!
//! - seccomp: [`SECCOMP_POLICY`], a small denylist written beside the config;
//! - the console log (PID 1's stdout/stderr, for when `hearth-container` itself fails) is
//!   capped at 1 MiB.
//!
//! Rejected: `lxc.include` of the distribution's `common.conf` (its content changes with the
//! LXC package, and `userns.conf` empties the device list meant for root-started
//! containers); AppArmor profiles (the hosts run without AppArmor; `unconfined` is explicit).

use std::fmt::Write as _;
use std::path::Path;

use crate::spec::{
    CONTAINER_INIT_PATH, CONTAINER_RPC_DIR, CONTAINER_VOLUMES_DIR, ContainerSpec, DeviceKind,
};

/// First host uid/gid of every container's id range (container uid 0).
pub const ID_MAP_BASE: u32 = 100_000;
/// Number of ids mapped.
pub const ID_MAP_COUNT: u32 = 65_536;

/// Which cgroup hierarchy the host runs; decides the limit keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Legacy per-controller hierarchies under `/sys/fs/cgroup/<controller>`.
    V1,
    /// Unified hierarchy.
    V2,
}

/// Host paths the runtime chose for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderPaths<'a> {
    /// The prepared root directory (overlay mount point).
    pub rootfs: &'a Path,
    /// LXC's own log.
    pub log_file: &'a Path,
    /// Where the container console (init's stdout/stderr) is written.
    pub console_log: &'a Path,
    /// Where the runtime wrote [`SECCOMP_POLICY`].
    pub seccomp: &'a Path,
}

/// The seccomp policy every container gets (LXC's format): the calls LXC's own
/// `common.seccomp` denies — loading kernel code, and `open_by_handle_at`, which escaped
/// containers before — plus refusing forced unmounts.
pub const SECCOMP_POLICY: &str = "2
denylist
reject_force_umount
[all]
kexec_load errno 1
kexec_file_load errno 1
open_by_handle_at errno 1
init_module errno 1
finit_module errno 1
delete_module errno 1
";

/// Pseudo-devices every container gets (major, minor), as in LXC's `common.conf`.
const BASE_DEVICES: &[(char, &str)] = &[
    ('c', "1:3"),   // null
    ('c', "1:5"),   // zero
    ('c', "1:7"),   // full
    ('c', "1:8"),   // random
    ('c', "1:9"),   // urandom
    ('c', "5:0"),   // tty
    ('c', "5:1"),   // console
    ('c', "5:2"),   // ptmx
    ('c', "136:*"), // pts
];

/// Renders the LXC config for `spec` (validated) with the runtime's paths.
pub fn render_config(
    spec: &ContainerSpec,
    paths: &RenderPaths<'_>,
    cgroup: CgroupVersion,
) -> String {
    let mut c = String::new();
    // `writeln!` into a String cannot fail; the results are ignored on purpose.
    let mut line = |k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(c, "{k} = {v}");
    };
    let id = spec.id.as_str();
    line("lxc.uts.name", &id);
    line(
        "lxc.rootfs.path",
        &format!("dir:{}", paths.rootfs.display()),
    );
    line("lxc.idmap", &format!("u 0 {ID_MAP_BASE} {ID_MAP_COUNT}"));
    line("lxc.idmap", &format!("g 0 {ID_MAP_BASE} {ID_MAP_COUNT}"));
    line("lxc.apparmor.profile", &"unconfined");
    line("lxc.seccomp.profile", &paths.seccomp.display());
    line(
        "lxc.cap.drop",
        &"mac_admin mac_override sys_time sys_module sys_rawio",
    );
    line("lxc.mount.auto", &"proc:mixed sys:mixed cgroup:mixed");
    line("lxc.autodev", &1);
    line("lxc.pty.max", &16);
    line("lxc.tty.max", &0);
    line("lxc.log.file", &paths.log_file.display());
    line("lxc.log.level", &"WARN");
    line("lxc.console.logfile", &paths.console_log.display());
    // PID 1's own output only (daemons log over RPC); capped so it cannot fill the disk.
    line("lxc.console.size", &"1MB");
    let mut init = CONTAINER_INIT_PATH.to_owned();
    for arg in &spec.init.args {
        init.push(' ');
        init.push_str(arg);
    }
    line("lxc.init.cmd", &init);
    line("lxc.signal.halt", &"SIGTERM");

    let net = &spec.network;
    line("lxc.net.0.type", &"veth");
    line("lxc.net.0.link", &net.bridge);
    line("lxc.net.0.name", &"eth0");
    line("lxc.net.0.flags", &"up");
    line("lxc.net.0.hwaddr", &stable_mac(id));
    line("lxc.net.0.veth.pair", &crate::bridge::veth_name(&spec.id));
    line(
        "lxc.net.0.ipv4.address",
        &format!("{}/{}", net.address, net.prefix_len),
    );
    line("lxc.net.0.ipv4.gateway", &net.gateway);

    let mount = |host: &Path, inside: &str, opts: &str| {
        format!(
            "{} {} none {opts} 0 0",
            host.display(),
            inside.trim_start_matches('/')
        )
    };
    line(
        "lxc.mount.entry",
        &mount(
            &spec.init.binary,
            CONTAINER_INIT_PATH,
            "bind,ro,create=file",
        ),
    );
    line(
        "lxc.mount.entry",
        &mount(
            &spec.rpc_dir,
            CONTAINER_RPC_DIR,
            "bind,create=dir,idmap=container",
        ),
    );
    if let Some(hosts) = &spec.hosts_file {
        line(
            "lxc.mount.entry",
            &mount(hosts, "/etc/hosts", "bind,ro,create=file"),
        );
    }
    for (name, value) in &spec.environment {
        line("lxc.environment", &format!("{name}={value}"));
    }
    for (vol, host) in &spec.volumes {
        line(
            "lxc.mount.entry",
            &mount(
                host,
                &format!("{CONTAINER_VOLUMES_DIR}/{vol}"),
                "bind,create=dir,idmap=container",
            ),
        );
    }

    let cg = match cgroup {
        CgroupVersion::V1 => "lxc.cgroup",
        CgroupVersion::V2 => "lxc.cgroup2",
    };
    let limits = &spec.limits;
    if let Some(bytes) = limits.memory_bytes {
        match cgroup {
            CgroupVersion::V1 => line(&format!("{cg}.memory.limit_in_bytes"), &bytes),
            CgroupVersion::V2 => line(&format!("{cg}.memory.max"), &bytes),
        }
    }
    if let Some(pids) = limits.pids {
        line(&format!("{cg}.pids.max"), &pids);
    }
    if let Some(shares) = limits.cpu_shares {
        match cgroup {
            CgroupVersion::V1 => line(&format!("{cg}.cpu.shares"), &shares),
            CgroupVersion::V2 => line(&format!("{cg}.cpu.weight"), &shares_to_weight(shares)),
        }
    }

    line(&format!("{cg}.devices.deny"), &"a");
    for (kind, numbers) in BASE_DEVICES {
        line(
            &format!("{cg}.devices.allow"),
            &format!("{kind} {numbers} rwm"),
        );
    }
    for dev in &spec.devices {
        let kind = match dev.kind {
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        };
        let access = if dev.read_only { "r" } else { "rw" };
        line(
            &format!("{cg}.devices.allow"),
            &format!("{kind} {}:{} {access}", dev.major, dev.minor),
        );
        let opts = if dev.read_only {
            "bind,ro,create=file"
        } else {
            "bind,create=file"
        };
        let inside = dev.path.display().to_string();
        line("lxc.mount.entry", &mount(&dev.path, &inside, opts));
    }
    c
}

/// 64-bit FNV-1a of `s`: the stable hash behind the MAC and the veth name.
pub(crate) fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// cgroup v1 `cpu.shares` (2..=262144, default 1024) → v2 `cpu.weight` (1..=10000,
/// default 100), the conversion systemd and the kernel documentation use.
fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + (shares - 2) * 9_999 / 262_142
}

/// A locally administered unicast MAC derived from the name (FNV-1a), so a container keeps
/// its MAC (and neighbours' ARP entries stay right) across restarts.
pub(crate) fn stable_mac(name: &str) -> String {
    let b = fnv1a(name).to_be_bytes();
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4]
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
mod tests {
    use super::*;
    use crate::spec::tests::minimal_spec;
    use crate::spec::{DeviceSpec, Limits};

    fn paths() -> RenderPaths<'static> {
        RenderPaths {
            rootfs: Path::new("/var/lib/hearth/lxc/hello-world/rootfs"),
            log_file: Path::new("/var/lib/hearth/lxc/hello-world/lxc.log"),
            console_log: Path::new("/var/lib/hearth/lxc/hello-world/console.log"),
            seccomp: Path::new("/var/lib/hearth/lxc/hello-world/seccomp"),
        }
    }

    #[test]
    fn minimal() {
        insta::assert_snapshot!(render_config(&minimal_spec(), &paths(), CgroupVersion::V1));
    }

    #[test]
    fn with_volumes_and_init_args() {
        let mut s = minimal_spec();
        s.volumes
            .insert("main".into(), "/var/lib/hearth/volumes/hello/main".into());
        s.volumes
            .insert("cache".into(), "/var/lib/hearth/volumes/hello/cache".into());
        s.init.args = vec!["--spec".into(), "/media/hearth/rpc/spec.json".into()];
        s.hosts_file = Some("/var/lib/hearth/data/hello/hosts".into());
        s.environment
            .insert("HEARTH_DB_HOST".into(), "10.87.0.3".into());
        insta::assert_snapshot!(render_config(&s, &paths(), CgroupVersion::V1));
    }

    #[test]
    fn with_limits_cgroup_v1() {
        let mut s = minimal_spec();
        s.limits = Limits {
            memory_bytes: Some(512 << 20),
            pids: Some(256),
            cpu_shares: Some(512),
        };
        insta::assert_snapshot!(render_config(&s, &paths(), CgroupVersion::V1));
    }

    #[test]
    fn with_limits_cgroup_v2() {
        let mut s = minimal_spec();
        s.limits = Limits {
            memory_bytes: Some(512 << 20),
            pids: Some(256),
            cpu_shares: Some(512),
        };
        insta::assert_snapshot!(render_config(&s, &paths(), CgroupVersion::V2));
    }

    #[test]
    fn with_devices() {
        let mut s = minimal_spec();
        s.devices = vec![
            DeviceSpec {
                path: "/dev/dri/renderD128".into(),
                kind: DeviceKind::Char,
                major: 226,
                minor: 128,
                read_only: false,
            },
            DeviceSpec {
                path: "/dev/sdb".into(),
                kind: DeviceKind::Block,
                major: 8,
                minor: 16,
                read_only: true,
            },
        ];
        insta::assert_snapshot!(render_config(&s, &paths(), CgroupVersion::V1));
    }

    #[test]
    fn no_device_beyond_the_base_set_unless_asked() {
        let c = render_config(&minimal_spec(), &paths(), CgroupVersion::V1);
        let allowed: Vec<_> = c
            .lines()
            .filter(|l| l.starts_with("lxc.cgroup.devices.allow"))
            .collect();
        assert_eq!(allowed.len(), BASE_DEVICES.len());
        assert!(c.contains("lxc.cgroup.devices.deny = a\n"));
        assert!(!c.contains(" dev/"), "no device bind mounts: {c}");
    }

    #[test]
    fn mac_is_stable_and_locally_administered() {
        assert_eq!(stable_mac("a"), stable_mac("a"));
        assert_ne!(stable_mac("a"), stable_mac("b"));
        assert!(stable_mac("a").starts_with("02:"));
    }

    #[test]
    fn shares_map_onto_weights() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(u64::MAX), 10_000);
    }
}
