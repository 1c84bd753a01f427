//! Real unprivileged containers (root + LXC; see `tests/integration.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hearth_lxc::{ContainerRuntime, ContainerState, Limits, LxcRuntime, mount_points};

use super::fixture::{Fixture, wait_for};

/// Init: records who it is and what it sees, serves HTTP, ticks into the volume, and
/// leaves cleanly on SIGTERM.
const SERVICE_INIT: &str = r#"#!/bin/sh
V=/media/hearth/volumes/main
trap 'echo bye > $V/stopped; exit 0' TERM
id -u > $V/uid.tmp && mv $V/uid.tmp $V/uid
ls /dev > $V/dev.tmp; mv $V/dev.tmp $V/dev
echo written-in-container > /written-in-container
stat -c %a /tmp > $V/tmpmode.tmp; mv $V/tmpmode.tmp $V/tmpmode
ls /media/hearth/rpc > $V/rpc.tmp; mv $V/rpc.tmp $V/rpc
echo from-container > /media/hearth/rpc/from-container
httpd -p 8080 -h /www
echo up > $V/ready
while true; do date +%s >> $V/ticks; sleep 1; done
"#;

fn running_pid(rt: &LxcRuntime, f: &Fixture) -> u32 {
    match rt.state(&f.spec.id).unwrap() {
        ContainerState::Running { pid } => pid,
        other => panic!("container not running: {other:?}"),
    }
}

fn status_ids(pid: u32, field: &str) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} missing in /proc/{pid}/status"));
    line.split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect()
}

/// The cgroup v1 directory of `controller` for process `pid`.
fn cgroup_dir(pid: u32, controller: &str) -> std::path::PathBuf {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = text
        .lines()
        .filter_map(|l| l.split_once(':').and_then(|(_, rest)| rest.split_once(':')))
        .find(|(ctrls, _)| ctrls.split(',').any(|c| c == controller))
        .map(|(_, p)| p.trim_start_matches('/').to_owned())
        .unwrap_or_else(|| panic!("no {controller} cgroup for {pid}:\n{text}"));
    Path::new("/sys/fs/cgroup").join(controller).join(rel)
}

fn read_trim(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_owned()
}

fn http_get(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Whether some loop device is backed by `image`.
fn loop_attached(image: &Path) -> bool {
    fs::read_dir("/sys/block").unwrap().flatten().any(|e| {
        fs::read_to_string(e.path().join("loop/backing_file"))
            .is_ok_and(|b| Path::new(b.trim()) == image)
    })
}

fn mounts_under(dir: &Path) -> Vec<std::path::PathBuf> {
    mount_points()
        .unwrap()
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .collect()
}

#[test]
fn root_lxc_unprivileged_container_lifecycle() {
    let mut f = Fixture::new("life", 2, SERVICE_INIT);
    f.spec.limits = Limits {
        memory_bytes: Some(64 << 20),
        pids: Some(64),
        cpu_shares: Some(512),
    };
    let rt = &f.runtime;
    let id = &f.spec.id;
    rt.create(&f.spec).unwrap();
    rt.create(&f.spec).unwrap(); // idempotent
    assert_eq!(rt.state(id).unwrap(), ContainerState::Stopped);
    rt.start(id).unwrap();
    let vol = f.volume().to_owned();
    let ready = wait_for(Duration::from_secs(15), || {
        vol.join("ready").exists().then_some(())
    });
    let console = fs::read_to_string(f.lxc_path().join(id.as_str()).join("console.log"));
    assert!(
        ready.is_some(),
        "init never got ready; console: {console:?}"
    );
    let pid = running_pid(rt, &f);

    // Unprivileged: uid 0 inside is the spec's host base (100000 + index * 65536).
    let base = f.spec.id_map.host_base;
    assert_eq!(base, 231_072);
    assert_eq!(status_ids(pid, "Uid:"), vec![base; 4]);
    assert_eq!(status_ids(pid, "Gid:"), vec![base; 4]);
    assert_eq!(read_trim(&vol.join("uid")), "0");
    // Confined by the seccomp policy (mode 2 = filter).
    assert_eq!(status_ids(pid, "Seccomp:"), vec![2]);

    // The volume is an idmapped bind: container root's files are host root's.
    assert_eq!(fs::metadata(vol.join("uid")).unwrap().uid(), 0);
    let ticks = wait_for(Duration::from_secs(5), || {
        let t = fs::read_to_string(vol.join("ticks")).ok()?;
        (t.lines().count() >= 2).then_some(t)
    });
    assert!(ticks.is_some(), "volume writes did not show up on the host");

    // The RPC dir is an idmapped bind too: host files visible inside, writable by root.
    assert_eq!(read_trim(&vol.join("rpc")), "host-marker");
    let from_container = f.spec.rpc_dir.join("from-container");
    assert_eq!(read_trim(&from_container), "from-container");
    assert_eq!(fs::metadata(&from_container).unwrap().uid(), 0);
    eprintln!("devices seen inside: {}", read_trim(&vol.join("dev")));

    // Root: the image is read-only; container writes land in the overlay upper.
    // The image has no /tmp; the runtime made a sticky, world-writable one.
    assert_eq!(read_trim(&vol.join("tmpmode")), "1777");
    let upper_file = f.spec.data_dir.join("upper/written-in-container");
    assert_eq!(read_trim(&upper_file), "written-in-container");
    assert_eq!(fs::metadata(&upper_file).unwrap().uid(), base);
    let (lower, _rootfs) = rt.mount_points(id);
    let err = fs::write(lower.join("etc/new"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    // Image files are owned by the container's root through the idmapped lower.
    assert_eq!(
        fs::metadata(lower.join("etc/image-file")).unwrap().uid(),
        base
    );

    // No host devices: only the pseudo-devices LXC's autodev provides.
    let devs = read_trim(&vol.join("dev"));
    for d in devs.split_whitespace() {
        assert!(
            [
                "console",
                "full",
                "null",
                "ptmx",
                "pts",
                "random",
                "shm",
                "tty",
                "urandom",
                "zero",
                "fd",
                "stdin",
                "stdout",
                "stderr",
                "mqueue",
                "lxc",
                "hugepages"
            ]
            .contains(&d),
            "unexpected device {d} in {devs}"
        );
    }

    // Network: the host reaches the container's fixed address on the bridge.
    let addr = SocketAddr::from((f.spec.network.address, 8080));
    let body = wait_for(Duration::from_secs(10), || http_get(addr));
    assert!(
        body.as_deref()
            .is_some_and(|b| b.contains("hello from the container")),
        "no HTTP answer from {addr}: {body:?}"
    );

    // Limits are in the container's cgroups (v1 on the test hosts).
    assert_eq!(rt.cgroup_version(), hearth_lxc::CgroupVersion::V1);
    assert_eq!(
        read_trim(&cgroup_dir(pid, "memory").join("memory.limit_in_bytes")),
        (64u64 << 20).to_string()
    );
    assert_eq!(read_trim(&cgroup_dir(pid, "pids").join("pids.max")), "64");
    assert_eq!(read_trim(&cgroup_dir(pid, "cpu").join("cpu.shares")), "512");

    // The container does not hang off this process: it outlives it (hearthd restarts).
    let me = std::process::id();
    let mut p = pid;
    while p > 1 {
        assert_ne!(p, me, "container {pid} descends from the test process");
        p = status_ids(p, "PPid:")[0];
    }
    // Resource use comes from the same cgroups (sh, sleep and httpd at least).
    let stats = rt.stats(id).unwrap();
    assert!(stats.memory_bytes > 0, "{stats:?}");
    assert!(stats.memory_bytes <= 64 << 20, "{stats:?}");
    assert!(stats.pids >= 3, "{stats:?}");
    assert!(stats.cpu_time > Duration::ZERO, "{stats:?}");

    // A new runtime on the same path (hearthd restarted) adopts the running container.
    let again = LxcRuntime::new(f.lxc_path()).unwrap();
    let listed = again.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(&listed[0].id, id);
    assert_eq!(listed[0].state, ContainerState::Running { pid });
    // Same spec while running: still fine; a different one is refused.
    rt.create(&f.spec).unwrap();
    let mut other = f.spec.clone();
    other.limits.pids = Some(65);
    assert!(matches!(
        rt.create(&other),
        Err(hearth_lxc::RuntimeError::Busy { .. })
    ));

    // exec runs as the container's root and reports exit codes.
    let argv = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let out = rt.exec(id, &argv(&["id", "-u"])).unwrap();
    assert_eq!((out.code, out.stdout.as_slice()), (Some(0), &b"0\n"[..]));
    let out = rt
        .exec(id, &argv(&["sh", "-c", "echo oops >&2; exit 3"]))
        .unwrap();
    assert_eq!((out.code, out.stderr.as_slice()), (Some(3), &b"oops\n"[..]));

    // Graceful stop: init gets SIGTERM and exits well within the timeout.
    let t0 = Instant::now();
    rt.stop(id, Duration::from_secs(10)).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    assert_eq!(rt.state(id).unwrap(), ContainerState::Stopped);
    assert_eq!(read_trim(&vol.join("stopped")), "bye");
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    rt.stop(id, Duration::from_secs(1)).unwrap(); // stopping a stopped container is fine
    assert!(matches!(
        rt.exec(id, &argv(&["true"])),
        Err(hearth_lxc::RuntimeError::NotRunning { .. })
    ));
    assert!(matches!(
        rt.stats(id),
        Err(hearth_lxc::RuntimeError::NotRunning { .. })
    ));

    // Restart keeps the overlay contents.
    rt.start(id).unwrap();
    let pid2 = running_pid(rt, &f);
    assert!(loop_attached(&f.spec.image), "no loop device for the image");
    assert_ne!(pid, pid2);

    // Destroy kills, unmounts and removes; data and volumes stay; twice is fine.
    let lxc_path = f.lxc_path();
    assert_eq!(mounts_under(&lxc_path).len(), 2);
    rt.destroy(id).unwrap();
    assert!(
        mounts_under(&lxc_path).is_empty(),
        "{:?}",
        mounts_under(&lxc_path)
    );
    assert!(mounts_under(f.dir.path()).is_empty());
    assert!(!lxc_path.join(id.as_str()).exists());
    // The loop device went away with the mount (autoclear).
    let detached = wait_for(Duration::from_secs(5), || {
        (!loop_attached(&f.spec.image)).then_some(())
    });
    assert!(
        detached.is_some(),
        "loop device still attached after destroy"
    );
    assert!(upper_file.exists());
    assert!(vol.join("ticks").exists());
    rt.destroy(id).unwrap();
    assert!(matches!(
        rt.state(id),
        Err(hearth_lxc::RuntimeError::NotFound { .. })
    ));
    assert!(rt.list().unwrap().is_empty());
}

/// An init that ignores SIGTERM is killed after the timeout.
#[test]
fn root_lxc_stop_kills_after_timeout() {
    let init = "#!/bin/sh\ntrap '' TERM\nwhile true; do sleep 1; done\n";
    let f = Fixture::new("stubborn", 3, init);
    let rt = &f.runtime;
    rt.create(&f.spec).unwrap();
    rt.start(&f.spec.id).unwrap();
    let pid = running_pid(rt, &f);
    let t0 = Instant::now();
    rt.stop(&f.spec.id, Duration::from_secs(2)).unwrap();
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "stopped too early: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
    assert_eq!(rt.state(&f.spec.id).unwrap(), ContainerState::Stopped);
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

/// A container whose init does not exist fails to start with an error naming the cause
/// (from LXC's log), not a hang.
#[test]
fn root_lxc_start_failure_is_reported() {
    let mut f = Fixture::new("broken", 4, "#!/bin/sh\n");
    f.spec.init.binary = f.dir.path().join("missing-init");
    let rt = &f.runtime;
    rt.create(&f.spec).unwrap();
    let err = rt.start(&f.spec.id).unwrap_err();
    match &err {
        hearth_lxc::RuntimeError::StartFailed { log, .. } => {
            assert!(
                log.contains("missing-init"),
                "LXC log lacks the cause: {err}"
            )
        }
        other => panic!("expected StartFailed, got {other}"),
    }
    assert_eq!(rt.state(&f.spec.id).unwrap(), ContainerState::Stopped);
}

/// When init exits the container is reported stopped; after the host mounts vanished (as
/// after a reboot) `start` mounts the root again and the overlay contents are still there.
#[test]
fn root_lxc_init_exit_then_restart_remounts() {
    // `seen` gets what the previous run left in the overlay; `runs` is written last.
    let init = "#!/bin/sh\nV=/media/hearth/volumes/main\n\
                cat /kept-in-overlay >> $V/seen 2>/dev/null\necho kept > /kept-in-overlay\n\
                echo run >> $V/runs\nsleep 1\n";
    let f = Fixture::new("dies", 5, init);
    let rt = &f.runtime;
    let id = &f.spec.id;
    rt.create(&f.spec).unwrap();
    rt.start(id).unwrap();
    let stopped = wait_for(Duration::from_secs(10), || {
        (rt.state(id).unwrap() == ContainerState::Stopped).then_some(())
    });
    assert!(
        stopped.is_some(),
        "container did not stop after init exited"
    );
    assert_eq!(
        rt.list().unwrap()[0].state,
        ContainerState::Stopped,
        "list agrees"
    );

    let (lower, rootfs) = rt.mount_points(id);
    for m in [&rootfs, &lower] {
        rustix::mount::unmount(m.as_path(), rustix::mount::UnmountFlags::DETACH).unwrap();
    }
    assert!(mounts_under(&f.lxc_path()).is_empty());
    rt.start(id).unwrap();
    assert_eq!(mounts_under(&f.lxc_path()).len(), 2);
    let twice = wait_for(Duration::from_secs(10), || {
        let runs = fs::read_to_string(f.volume().join("runs")).ok()?;
        (runs.lines().count() == 2).then_some(())
    });
    assert!(twice.is_some(), "second run did not happen");
    assert_eq!(read_trim(&f.volume().join("seen")), "kept");
}

/// A requested host device is allowed in the devices cgroup and bind-mounted; a spec whose
/// numbers do not match the host node is refused before anything is created.
#[test]
fn root_lxc_requested_device_is_passed_through() {
    let init = "#!/bin/sh\nV=/media/hearth/volumes/main\nls /dev > $V/dev.tmp; mv $V/dev.tmp $V/dev\n\
         while true; do sleep 1; done\n";
    let mut f = Fixture::new("device", 6, init);
    let device = hearth_lxc::DeviceSpec {
        path: "/dev/loop-control".into(),
        kind: hearth_lxc::DeviceKind::Char,
        major: 10,
        minor: 237,
        read_only: false,
    };
    f.spec.devices = vec![hearth_lxc::DeviceSpec {
        minor: 238,
        ..device.clone()
    }];
    let rt = &f.runtime;
    assert!(matches!(
        rt.create(&f.spec),
        Err(hearth_lxc::RuntimeError::InvalidSpec(
            hearth_lxc::SpecError::DeviceMismatch { .. }
        ))
    ));
    assert!(rt.list().unwrap().is_empty());

    f.spec.devices = vec![device];
    rt.create(&f.spec).unwrap();
    rt.start(&f.spec.id).unwrap();
    let pid = running_pid(rt, &f);
    let dev = f.volume().join("dev");
    let listing = wait_for(Duration::from_secs(10), || fs::read_to_string(&dev).ok());
    assert!(
        listing.is_some_and(|l| l.lines().any(|d| d == "loop-control")),
        "device missing inside"
    );
    let allowed = read_trim(&cgroup_dir(pid, "devices").join("devices.list"));
    assert!(allowed.lines().any(|l| l == "c 10:237 rw"), "{allowed}");
    assert!(!allowed.lines().any(|l| l.starts_with("b ")), "{allowed}");
}

/// A create that fails half-way (the image is missing) leaves a container that `list`
/// shows as stopped and `destroy` removes without leaving mounts or files.
#[test]
fn root_lxc_failed_create_is_listed_and_destroyable() {
    let mut f = Fixture::new("halfmade", 7, "#!/bin/sh\n");
    f.spec.image = f.dir.path().join("no-such-image.squashfs");
    let rt = &f.runtime;
    let err = rt.create(&f.spec).unwrap_err();
    assert!(
        matches!(
            &err,
            hearth_lxc::RuntimeError::Mount {
                source: hearth_lxc::MountError::Open { .. },
                ..
            }
        ),
        "{err}"
    );
    let listed = rt.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, ContainerState::Stopped);
    rt.destroy(&f.spec.id).unwrap();
    assert!(rt.list().unwrap().is_empty());
    assert!(mounts_under(f.dir.path()).is_empty());
    assert!(!f.lxc_path().join(f.spec.id.as_str()).exists());
}

/// Several containers created and started at once on one runtime (loop devices, bridge
/// setup and user namespaces raced for) all run, each on its own address.
#[test]
fn root_lxc_parallel_containers_on_one_runtime() {
    let init = "#!/bin/sh\nhttpd -p 8080 -h /www\nwhile true; do sleep 1; done\n";
    let f = Fixture::new("par", 10, init);
    let specs: Vec<_> = (0..3u8)
        .map(|i| {
            let mut s = f.spec.clone();
            s.id = hearth_lxc::ContainerId::new(format!("{}-{i}", f.spec.id)).unwrap();
            s.network.address = std::net::Ipv4Addr::new(10, 89, super::fixture::subnet(), 11 + i);
            s.data_dir = f.dir.path().join(format!("data-{i}"));
            s.id_map = hearth_lxc::IdMap::for_index(20 + i);
            s
        })
        .collect();
    struct DestroyAll<'a>(&'a LxcRuntime, &'a [hearth_lxc::ContainerSpec]);
    impl Drop for DestroyAll<'_> {
        fn drop(&mut self) {
            for s in self.1 {
                let _ = self.0.destroy(&s.id);
            }
        }
    }
    let rt = &f.runtime;
    let _cleanup = DestroyAll(rt, &specs);
    std::thread::scope(|scope| {
        for s in &specs {
            scope.spawn(move || {
                rt.create(s).unwrap();
                rt.start(&s.id).unwrap();
            });
        }
    });
    let listed = rt.list().unwrap();
    assert_eq!(listed.len(), 3);
    for s in &specs {
        assert!(matches!(
            rt.state(&s.id).unwrap(),
            ContainerState::Running { .. }
        ));
        let addr = SocketAddr::from((s.network.address, 8080));
        let body = wait_for(Duration::from_secs(10), || http_get(addr));
        assert!(
            body.is_some_and(|b| b.contains("hello from the container")),
            "{addr}"
        );
        // Each runs in its own id range, its image idmapped to it.
        let ContainerState::Running { pid } = rt.state(&s.id).unwrap() else {
            panic!("{} not running", s.id)
        };
        assert_eq!(status_ids(pid, "Uid:"), vec![s.id_map.host_base; 4]);
        let (lower, _) = rt.mount_points(&s.id);
        let owner = fs::metadata(lower.join("etc/image-file")).unwrap().uid();
        assert_eq!(owner, s.id_map.host_base, "{}", s.id);
    }
    std::thread::scope(|scope| {
        for s in &specs {
            scope.spawn(move || rt.destroy(&s.id).unwrap());
        }
    });
    assert!(rt.list().unwrap().is_empty());
    assert!(mounts_under(f.dir.path()).is_empty());
}

/// PID 1's console output is kept, but capped (1 MiB) so a chatty init cannot fill the disk.
#[test]
fn root_lxc_console_log_is_capped() {
    let init = "#!/bin/sh\nline=0123456789012345678901234567890123456789012345678901234567890123\n\
                i=0\nwhile [ $i -lt 40000 ]; do echo $line$line; i=$((i+1)); done\n\
                echo done > /media/hearth/volumes/main/done\nwhile true; do sleep 1; done\n";
    let f = Fixture::new("chatty", 8, init);
    let rt = &f.runtime;
    rt.create(&f.spec).unwrap();
    rt.start(&f.spec.id).unwrap();
    let done = wait_for(Duration::from_secs(30), || {
        f.volume().join("done").exists().then_some(())
    });
    assert!(done.is_some(), "init did not finish writing");
    let log = f.lxc_path().join(f.spec.id.as_str()).join("console.log");
    let len = fs::metadata(&log).unwrap().len();
    assert!(len > 0, "console output was not kept");
    assert!(
        len <= 1 << 20,
        "console log grew to {len} bytes (5 MiB written)"
    );
}

/// The real runtime follows the same contract as the fake (`hearth-testkit`).
#[test]
fn root_lxc_runtime_contract() {
    let init = "#!/bin/sh\ntrap 'exit 0' TERM\nwhile true; do sleep 1; done\n";
    let f = Fixture::new("contract", 9, init);
    hearth_testkit::check_runtime_contract(&f.runtime, &f.spec);
}

/// Capability numbers (`<linux/capability.h>`) of the names LXC's `lxc.cap.keep` takes.
fn cap_number(name: &str) -> u32 {
    let all = [
        "chown",
        "dac_override",
        "dac_read_search",
        "fowner",
        "fsetid",
        "kill",
        "setgid",
        "setuid",
        "setpcap",
        "linux_immutable",
        "net_bind_service",
        "net_broadcast",
        "net_admin",
        "net_raw",
        "ipc_lock",
        "ipc_owner",
        "sys_module",
        "sys_rawio",
        "sys_chroot",
        "sys_ptrace",
        "sys_pacct",
        "sys_admin",
        "sys_boot",
        "sys_nice",
        "sys_resource",
        "sys_time",
        "sys_tty_config",
        "mknod",
        "lease",
        "audit_write",
        "audit_control",
        "setfcap",
    ];
    let n = all
        .iter()
        .position(|c| *c == name)
        .unwrap_or_else(|| panic!("{name}"));
    u32::try_from(n).unwrap()
}

/// The capability bounding set of `pid`, as names' numbers.
fn bounding_set(pid: u32) -> std::collections::BTreeSet<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    let mask = u64::from_str_radix(hex, 16).unwrap();
    (0..64).filter(|b| mask & (1 << b) != 0).collect()
}

fn expected_caps(extra: &[hearth_lxc::Capability]) -> std::collections::BTreeSet<u32> {
    hearth_lxc::BASE_CAPABILITIES
        .iter()
        .copied()
        .chain(extra.iter().map(|c| c.lxc_name()))
        .map(cap_number)
        .collect()
}

/// Init for the confinement tests: the probe's results (and a try at adding an address to
/// eth0, as an address spoofer would) land in the volume; then it serves HTTP.
fn probe_init(spoof: &str) -> String {
    format!(
        "#!/bin/sh\nV=/media/hearth/volumes/main\n\
         probe > $V/probe.tmp 2>&1; mv $V/probe.tmp $V/probe\n\
         ip addr add {spoof}/24 dev eth0 2> $V/spoof.err; echo $? > $V/spoof\n\
         httpd -p 8080 -h /www\nwhile true; do sleep 1; done\n"
    )
}

const ENOSYS: i32 = libc::ENOSYS;
const EPERM: i32 = libc::EPERM;

/// The calls the seccomp policy answers with ENOSYS, which the kernel itself never gives
/// for a call it has: so the host answering otherwise proves the filter did it.
const FILTERED_ENOSYS: &[&str] = &[
    "keyctl",
    "add_key",
    "bpf",
    "userfaultfd",
    "perf_event_open",
    "io_uring_setup",
    "clone3",
];

fn check_confined(inside: &BTreeMap<String, i32>, host: &BTreeMap<String, i32>, how: &str) {
    for name in FILTERED_ENOSYS {
        assert_ne!(host[*name], ENOSYS, "{name} is missing on the host kernel");
        assert_eq!(
            inside[*name], ENOSYS,
            "{how}: {name} not filtered: {inside:?}"
        );
    }
    // New user namespaces (they would give back every capability) are refused by the
    // argument filter; a network namespace is not (the filter is on the flag).
    for name in ["unshare_user", "clone_user"] {
        assert_eq!(host[name], 0, "{name} fails on the host too");
        assert_eq!(inside[name], EPERM, "{how}: {name}: {inside:?}");
    }
    assert_eq!(inside["unshare_net"], 0, "{how}: {inside:?}");
    // Dropped capabilities: mknod, net_raw (raw and packet sockets), net_admin (MTU).
    for name in ["mknod", "raw_socket", "packet_socket", "set_mtu"] {
        assert_eq!(host[name], 0, "{name} fails on the host too");
        assert_eq!(inside[name], EPERM, "{how}: {name}: {inside:?}");
    }
    assert_eq!(
        inside["tcp_socket"], 0,
        "{how}: ordinary sockets work: {inside:?}"
    );
}

/// The container cannot reach the kernel's risky surfaces (seccomp), create devices, raw
/// sockets or user namespaces, or change its network (capabilities), both in PID 1's
/// processes and in `lxc-attach`ed commands; its bounding set is exactly the allow-list;
/// a normal daemon still serves.
#[test]
fn root_lxc_container_is_confined() {
    let spoof = std::net::Ipv4Addr::new(10, 89, super::fixture::subnet(), 250);
    let mut f = Fixture::new("confined", 12, &probe_init(&spoof.to_string()));
    f.spec.id_map = hearth_lxc::IdMap::for_index(12);
    let host_probe = f.dir.path().join("probe");
    super::fixture::build_probe(&host_probe);
    let out = std::process::Command::new(&host_probe).output().unwrap();
    let host = super::fixture::parse_probe(&String::from_utf8_lossy(&out.stdout));
    let rt = &f.runtime;
    rt.create(&f.spec).unwrap();
    rt.start(&f.spec.id).unwrap();
    let vol = f.volume().to_owned();
    let probe = wait_for(Duration::from_secs(15), || {
        fs::read_to_string(vol.join("probe")).ok()
    });
    let log = fs::read_to_string(f.lxc_path().join(f.spec.id.as_str()).join("lxc.log"));
    let probe = probe.unwrap_or_else(|| panic!("probe never ran; lxc.log: {log:?}"));
    let inside = super::fixture::parse_probe(&probe);
    check_confined(&inside, &host, "init's child");

    let pid = running_pid(rt, &f);
    assert_eq!(bounding_set(pid), expected_caps(&[]));
    assert_eq!(status_ids(pid, "Seccomp:"), vec![2]);
    let uid_map = read_trim(Path::new(&format!("/proc/{pid}/uid_map")));
    let words: Vec<&str> = uid_map.split_whitespace().collect();
    assert_eq!(words, ["0", &f.spec.id_map.host_base.to_string(), "65536"]);

    // No address spoofing: adding an address to eth0 needs net_admin.
    let spoofed = wait_for(Duration::from_secs(5), || {
        fs::read_to_string(vol.join("spoof")).ok()
    });
    assert_ne!(
        spoofed.as_deref().map(str::trim),
        Some("0"),
        "ip addr add worked"
    );
    assert!(
        read_trim(&vol.join("spoof.err")).contains("not permitted"),
        "{:?}",
        fs::read_to_string(vol.join("spoof.err"))
    );

    // Commands run with lxc-attach (migrations) are confined the same way.
    let out = rt.exec(&f.spec.id, &["probe".to_owned()]).unwrap();
    let attached = super::fixture::parse_probe(&String::from_utf8_lossy(&out.stdout));
    check_confined(&attached, &host, "lxc-attach");

    // And the service still serves.
    let addr = SocketAddr::from((f.spec.network.address, 8080));
    let body = wait_for(Duration::from_secs(10), || http_get(addr));
    assert!(
        body.is_some_and(|b| b.contains("hello from the container")),
        "no HTTP answer from {addr}"
    );
}

/// A capability the spec asks for (here `net_raw`) is granted, and only that one.
#[test]
fn root_lxc_requested_capability_is_granted() {
    let spoof = std::net::Ipv4Addr::new(10, 89, super::fixture::subnet(), 251);
    let mut f = Fixture::new("netraw", 13, &probe_init(&spoof.to_string()));
    f.spec.capabilities = vec![hearth_lxc::Capability::NetRaw];
    let rt = &f.runtime;
    rt.create(&f.spec).unwrap();
    rt.start(&f.spec.id).unwrap();
    let vol = f.volume().to_owned();
    let probe = wait_for(Duration::from_secs(15), || {
        fs::read_to_string(vol.join("probe")).ok()
    })
    .expect("probe never ran");
    let inside = super::fixture::parse_probe(&probe);
    assert_eq!(inside["raw_socket"], 0, "{inside:?}");
    assert_eq!(inside["packet_socket"], 0, "{inside:?}");
    assert_eq!(inside["set_mtu"], EPERM, "{inside:?}");
    let pid = running_pid(rt, &f);
    assert_eq!(
        bounding_set(pid),
        expected_caps(&[hearth_lxc::Capability::NetRaw])
    );
}

/// A container moved to another id range (as every container is, once, when ranges became
/// per package) keeps its overlay files: they move to the new range with it.
#[test]
fn root_lxc_id_range_change_moves_the_overlay_upper() {
    let init = "#!/bin/sh\nV=/media/hearth/volumes/main\n\
                cat /etc/kept >> $V/seen 2>/dev/null\n\
                echo again >> /etc/kept && echo ok >> $V/appended\n\
                echo run >> $V/runs\nwhile true; do sleep 1; done\n";
    let mut f = Fixture::new("shift", 14, init);
    f.spec.id_map = hearth_lxc::IdMap::LEGACY;
    let rt = &f.runtime;
    let id = f.spec.id.clone();
    rt.create(&f.spec).unwrap();
    rt.start(&id).unwrap();
    let vol = f.volume().to_owned();
    let runs = |n: usize| {
        wait_for(Duration::from_secs(15), || {
            let r = fs::read_to_string(vol.join("runs")).ok()?;
            (r.lines().count() == n).then_some(())
        })
    };
    assert!(runs(1).is_some(), "first run did not happen");
    rt.stop(&id, Duration::ZERO).unwrap();
    let kept = f.spec.data_dir.join("upper/etc/kept");
    assert_eq!(fs::metadata(&kept).unwrap().uid(), 100_000);

    f.spec.id_map = hearth_lxc::IdMap::for_index(14);
    let base = f.spec.id_map.host_base;
    rt.create(&f.spec).unwrap();
    assert_eq!(fs::metadata(&kept).unwrap().uid(), base);
    assert_eq!(
        fs::metadata(f.spec.data_dir.join("upper")).unwrap().uid(),
        base
    );
    rt.start(&id).unwrap();
    assert!(runs(2).is_some(), "second run did not happen");
    assert_eq!(status_ids(running_pid(rt, &f), "Uid:"), vec![base; 4]);
    // The file written in the old range is still the container's: read and appended to.
    assert_eq!(read_trim(&vol.join("seen")), "again");
    assert_eq!(read_trim(&vol.join("appended")), "ok\nok");
}
