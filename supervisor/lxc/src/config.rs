//! Rendering a [`ContainerSpec`] into an LXC config file: a pure function, snapshot-tested.
//!
//! Design: the config is self-contained — it includes neither `common.conf` nor
//! `userns.conf` from the distribution, so what a container gets is exactly what this file
//! says, on every host. The pieces:
//! - unprivileged: `lxc.idmap` maps uid/gid 0 to the spec's own range
//!   ([`crate::IdMap`]: 65,536 ids at `100000 + index * 65536`, one per package);
//! - capabilities: an allow-list (`lxc.cap.keep`, see [`BASE_CAPABILITIES`]) plus what the
//!   spec lists ([`crate::Capability`]); everything else (`net_admin`, `net_raw`, `mknod`,
//!   `sys_module`, `sys_boot`, `sys_time`, `sys_ptrace`, ...) is dropped from the bounding
//!   set of every process in the container;
//! - the rootfs is a directory prepared by the runtime (idmapped squashfs + overlay);
//! - the init binary is bind-mounted read-only at [`CONTAINER_INIT_PATH`]; the RPC
//!   directory (the control socket only) and volumes are bind mounts made idmapped by LXC
//!   (`idmap=container`), so host files owned by uid 0 are owned by root inside and
//!   nothing is chown'd; the config directory (spec, image defaults: what the host gives
//!   the container) is bind-mounted read-only, `nosuid,nodev,noexec`, at
//!   [`CONTAINER_CONFIG_DIR`]. These mounts exist only in the container's mount
//!   namespace and vanish with it;
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
//! - seccomp: [`SECCOMP_POLICY`], a denylist of the kernel's riskiest surfaces, written
//!   beside the config;
//! - the console log (PID 1's stdout/stderr, for when `hearth-container` itself fails) is
//!   capped at 1 MiB.
//!
//! Rejected: `lxc.include` of the distribution's `common.conf` (its content changes with the
//! LXC package, and `userns.conf` empties the device list meant for root-started
//! containers); `lxc.cap.drop` (a deny-list keeps whatever a newer kernel adds);
//! `lxc.no_new_privs` (it breaks set-uid programs such as `su` in service images, and the
//! capability bounding set already caps what they can gain).
//!
//! AppArmor: LXC's generated profile where the host enforces AppArmor and has
//! `apparmor_parser` ([`AppArmor::detect`]), an explicit `unconfined` elsewhere (the
//! development hosts' kernel has no AppArmor; the image's Debian kernel has it enabled but
//! the image carries no `apparmor_parser`, so it is `unconfined` there too for now).

use std::fmt::Write as _;
use std::path::Path;

use crate::spec::{
    CONTAINER_CONFIG_DIR, CONTAINER_INIT_PATH, CONTAINER_RPC_DIR, CONTAINER_VOLUMES_DIR,
    ContainerSpec, DeviceKind,
};

/// Capabilities every container keeps (inside its user namespace): Docker's default set
/// without `net_raw` (raw sockets: spoofing on the bridge) and `mknod` (device nodes; the
/// devices a container gets are bind-mounted by LXC), plus `sys_admin` for PID 1 alone:
/// `hearth-container` makes the spec's volume bind mounts with it and then drops it from
/// its bounding set before any service process exists (see `container-runtime`).
/// Without `sys_admin` those mounts would fail; nothing else here needs it.
pub const BASE_CAPABILITIES: &[&str] = &[
    "audit_write",
    "chown",
    "dac_override",
    "fowner",
    "fsetid",
    "kill",
    "net_bind_service",
    "setfcap",
    "setgid",
    "setpcap",
    "setuid",
    "sys_admin",
    "sys_chroot",
];

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
    /// The AppArmor profile the host can enforce ([`AppArmor::detect`]).
    pub apparmor: AppArmor,
}

/// Which AppArmor profile containers get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppArmor {
    /// No profile: the kernel has no AppArmor (the development hosts), or the host lacks
    /// `apparmor_parser` (the image, so far: its Debian kernel enables AppArmor, but the
    /// parser is not installed).
    Unconfined,
    /// LXC's generated profile (`lxc.apparmor.profile = generated`, no nesting): denies
    /// writes to `/proc/sys`, `/sys` and mounts beyond what LXC itself sets up.
    Generated,
}

impl AppArmor {
    /// [`AppArmor::Generated`] when the kernel enforces AppArmor
    /// (`/sys/kernel/security/apparmor`) and LXC can compile its profile
    /// (`apparmor_parser` in `/sbin` or `/usr/sbin`); [`AppArmor::Unconfined`] otherwise.
    pub fn detect() -> Self {
        let kernel = Path::new("/sys/kernel/security/apparmor/profiles").exists();
        let parser = ["/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"]
            .iter()
            .any(|p| Path::new(p).exists());
        if kernel && parser {
            Self::Generated
        } else {
            Self::Unconfined
        }
    }
}

/// The seccomp policy every container gets (LXC's v2 format; `[all]` applies it to the
/// native and the compat ABIs, e.g. x86_64, i386 and x32, or aarch64 and arm; a call a
/// given ABI lacks is skipped by LXC). Two answers:
/// - ENOSYS (38), "this kernel has no such call", for surfaces a service can live
///   without and programs probe and fall back from: `bpf`, `userfaultfd`,
///   `perf_event_open`, the keyring (`keyctl`, `add_key`, `request_key`: not
///   namespaced), `io_uring_*`, file handles (`open_by_handle_at` escaped containers
///   before, `name_to_handle_at`), the new mount API (`mount(8)` falls back to `mount(2)`,
///   which PID 1 needs) and `clone3` (its flags are behind a pointer seccomp cannot read;
///   libc falls back to `clone`, which is filtered). The kernel never answers ENOSYS for a
///   call it has, so a test can tell this policy from the kernel's own checks;
/// - EPERM (1), "not permitted", for privileged operations: loading kernel code
///   (`kexec_*`, `*init_module`, `delete_module`), new user namespaces (`unshare` and
///   `clone` with `CLONE_NEWUSER`, 0x10000000: inside one a process regains every
///   capability), `pivot_root`, `swapon`/`swapoff`, `reboot`, `acct`, `lookup_dcookie`,
///   `quotactl`, setting the clock, `syslog`, `vhangup`, x86 port I/O (`iopl`,
///   `ioperm`); and forced unmounts (EACCES, `reject_force_umount`).
///
/// Kept on purpose: `ptrace` (same-uid debugging of a service's own processes; touching
/// another process needs `sys_ptrace`, which is dropped) and `personality`.
/// LXC loads the filter after its own setup (mounts, namespaces) and just before it
/// executes PID 1, so the rules bind the init and every process it starts; `lxc-attach`
/// loads it too.
pub const SECCOMP_POLICY: &str = "2
denylist
reject_force_umount
[all]
bpf errno 38
userfaultfd errno 38
perf_event_open errno 38
keyctl errno 38
add_key errno 38
request_key errno 38
io_uring_setup errno 38
io_uring_enter errno 38
io_uring_register errno 38
open_by_handle_at errno 38
name_to_handle_at errno 38
fsopen errno 38
fsconfig errno 38
fsmount errno 38
fspick errno 38
move_mount errno 38
open_tree errno 38
mount_setattr errno 38
clone3 errno 38
kexec_load errno 1
kexec_file_load errno 1
init_module errno 1
finit_module errno 1
delete_module errno 1
unshare errno 1 [0,0x10000000,SCMP_CMP_MASKED_EQ,0x10000000]
clone errno 1 [0,0x10000000,SCMP_CMP_MASKED_EQ,0x10000000]
pivot_root errno 1
swapon errno 1
swapoff errno 1
reboot errno 1
acct errno 1
lookup_dcookie errno 1
quotactl errno 1
settimeofday errno 1
clock_settime errno 1
clock_adjtime errno 1
adjtimex errno 1
syslog errno 1
vhangup errno 1
iopl errno 1
ioperm errno 1
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
    let map = spec.id_map;
    line("lxc.idmap", &format!("u 0 {} {}", map.host_base, map.count));
    line("lxc.idmap", &format!("g 0 {} {}", map.host_base, map.count));
    match paths.apparmor {
        AppArmor::Unconfined => line("lxc.apparmor.profile", &"unconfined"),
        AppArmor::Generated => {
            line("lxc.apparmor.profile", &"generated");
            line("lxc.apparmor.allow_nesting", &0);
        }
    }
    line("lxc.seccomp.profile", &paths.seccomp.display());
    let mut caps: Vec<&str> = BASE_CAPABILITIES.to_vec();
    caps.extend(spec.capabilities.iter().map(|c| c.lxc_name()));
    line("lxc.cap.keep", &caps.join(" "));
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
    // What hearthd gives the container: read-only, not idmapped (the host's root-owned
    // files are read as "other"); the rpc dir above is the only writable share.
    if let Some(config) = &spec.config_dir {
        line(
            "lxc.mount.entry",
            &mount(
                config,
                CONTAINER_CONFIG_DIR,
                "bind,ro,nosuid,nodev,noexec,create=dir",
            ),
        );
    }
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
            apparmor: AppArmor::Unconfined,
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
        s.init.args = vec!["--spec".into(), "/media/hearth/config/spec.json".into()];
        s.config_dir = Some("/var/lib/hearth/data/hello/config".into());
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
    fn with_capabilities() {
        let mut s = minimal_spec();
        s.capabilities = vec![crate::Capability::NetRaw, crate::Capability::IpcLock];
        s.id_map = crate::IdMap::for_index(7);
        insta::assert_snapshot!(render_config(&s, &paths(), CgroupVersion::V1));
    }

    #[test]
    fn with_apparmor_generated() {
        let p = RenderPaths {
            apparmor: AppArmor::Generated,
            ..paths()
        };
        insta::assert_snapshot!(render_config(&minimal_spec(), &p, CgroupVersion::V2));
    }

    #[test]
    fn seccomp_policy() {
        insta::assert_snapshot!(SECCOMP_POLICY);
    }

    #[test]
    fn capabilities_are_an_allow_list_without_the_dangerous_ones() {
        let c = render_config(&minimal_spec(), &paths(), CgroupVersion::V1);
        assert!(
            !c.contains("lxc.cap.drop"),
            "keep and drop are exclusive in LXC"
        );
        let keep: Vec<&str> = c
            .lines()
            .find_map(|l| l.strip_prefix("lxc.cap.keep = "))
            .unwrap()
            .split(' ')
            .collect();
        for bad in [
            "net_admin",
            "net_raw",
            "sys_module",
            "sys_boot",
            "sys_time",
            "mknod",
            "sys_ptrace",
            "sys_rawio",
            "mac_admin",
            "mac_override",
            "sys_resource",
            "dac_read_search",
            "syslog",
            "bpf",
            "perfmon",
            "checkpoint_restore",
        ] {
            assert!(!keep.contains(&bad), "{bad} kept: {keep:?}");
        }
        let mut s = minimal_spec();
        s.capabilities = vec![crate::Capability::NetAdmin];
        let c = render_config(&s, &paths(), CgroupVersion::V1);
        assert!(c.contains(" net_admin\n"), "{c}");
    }

    #[test]
    fn seccomp_policy_blocks_the_risky_surfaces() {
        let lines: Vec<&str> = SECCOMP_POLICY.lines().collect();
        assert_eq!(
            &lines[..4],
            ["2", "denylist", "reject_force_umount", "[all]"]
        );
        let rule = |name: &str| {
            lines
                .iter()
                .find(|l| l.split(' ').next() == Some(name))
                .unwrap_or_else(|| panic!("{name} not in the policy"))
        };
        for name in [
            "bpf",
            "userfaultfd",
            "perf_event_open",
            "keyctl",
            "add_key",
            "request_key",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "clone3",
            "open_by_handle_at",
        ] {
            assert_eq!(*rule(name), format!("{name} errno 38"));
        }
        for name in [
            "kexec_load",
            "init_module",
            "finit_module",
            "swapon",
            "reboot",
        ] {
            assert_eq!(*rule(name), format!("{name} errno 1"));
        }
        for name in ["unshare", "clone"] {
            assert!(rule(name).ends_with("errno 1 [0,0x10000000,SCMP_CMP_MASKED_EQ,0x10000000]"));
        }
        // PID 1 (hearth-container) binds volumes with mount(2).
        assert!(!lines.iter().any(|l| l.starts_with("mount ")));
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
