//! A tiny busybox image, an init script and a spec for a real container.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hearth_lxc::{
    ContainerId, ContainerRuntime, ContainerSpec, InitSpec, Limits, LxcRuntime, NetworkSpec,
};

/// Bridge used by tests (not `hearth0`, so a running hearthd is not disturbed).
pub(crate) const TEST_BRIDGE: &str = "hearthtest0";

/// This test process's /24 on the test bridge (10.89.<n>.0/24, n from the pid), so that
/// two test runs at once on one machine do not fight over addresses. Each run leaves its
/// gateway address on `hearthtest0`; there are at most 250 of them.
pub(crate) fn subnet() -> u8 {
    u8::try_from(std::process::id() % 250 + 1).unwrap()
}

/// Applets linked in the test image.
const APPLETS: &[&str] = &[
    "sh", "sleep", "echo", "cat", "id", "ls", "touch", "mkdir", "httpd", "date", "ip", "rm",
    "stat", "mv",
];

/// One container's world: temp dir, image, runtime; destroys the container on drop.
pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) runtime: LxcRuntime,
    pub(crate) spec: ContainerSpec,
}

impl Fixture {
    /// `name` must be unique per test; `host` picks the address 10.89.<subnet()>.<host>.
    pub(crate) fn new(name: &str, host: u8, init_script: &str) -> Self {
        assert!(
            rustix::process::geteuid().is_root(),
            "root_lxc_* tests need root"
        );
        let dir = tempfile::Builder::new()
            .prefix("hearth-lxc-test")
            .tempdir_in("/var/tmp")
            .unwrap();
        // Container root (uid 100000) must traverse to its rootfs.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
        let image = build_image(dir.path());
        let init = dir.path().join("init.sh");
        fs::write(&init, init_script).unwrap();
        fs::set_permissions(&init, fs::Permissions::from_mode(0o755)).unwrap();
        let volume = dir.path().join("volumes/main");
        let rpc = dir.path().join("rpc");
        fs::create_dir_all(&volume).unwrap();
        fs::create_dir_all(&rpc).unwrap();
        fs::write(rpc.join("host-marker"), "").unwrap();
        let id = ContainerId::new(format!("hlxc-{}-{name}", std::process::id())).unwrap();
        let spec = ContainerSpec {
            id,
            image,
            data_dir: dir.path().join("data"),
            volumes: BTreeMap::from([("main".to_owned(), volume)]),
            rpc_dir: rpc,
            config_dir: None,
            init: InitSpec {
                binary: init,
                args: vec![],
            },
            network: NetworkSpec {
                bridge: TEST_BRIDGE.into(),
                address: Ipv4Addr::new(10, 89, subnet(), host),
                prefix_len: 24,
                gateway: Ipv4Addr::new(10, 89, subnet(), 1),
            },
            limits: Limits::default(),
            devices: vec![],
            hosts_file: None,
            environment: BTreeMap::new(),
            id_map: hearth_lxc::IdMap::for_index(2),
            capabilities: vec![],
        };
        let runtime = LxcRuntime::new(dir.path().join("lxc")).unwrap();
        Self { dir, runtime, spec }
    }

    pub(crate) fn volume(&self) -> &Path {
        &self.spec.volumes["main"]
    }

    pub(crate) fn lxc_path(&self) -> PathBuf {
        self.dir.path().join("lxc")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Err(e) = self.runtime.destroy(&self.spec.id) {
            eprintln!("fixture cleanup: {e}");
        }
    }
}

/// busybox + applet symlinks + empty mount points, as a squashfs owned by root.
fn build_image(dir: &Path) -> PathBuf {
    let root = dir.join("image-root");
    // No dev/, proc/, sys/ or tmp/: the runtime adds what LXC and programs need.
    for d in ["bin", "etc", "www"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "needs a static /bin/busybox (apt busybox-static)"
    );
    fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    build_probe(&root.join("bin/probe"));
    fs::write(root.join("www/index.html"), "hello from the container\n").unwrap();
    fs::write(root.join("etc/image-file"), "from the image\n").unwrap();
    let image = dir.join("image.squashfs");
    let status = Command::new("mksquashfs")
        .arg(&root)
        .arg(&image)
        .args(["-all-root", "-noappend", "-quiet", "-no-progress"])
        .status()
        .expect("needs mksquashfs (apt squashfs-tools)");
    assert!(status.success(), "mksquashfs failed");
    image
}

/// Compiles `probe.c` (the confinement checks) statically to `out`.
pub(crate) fn build_probe(out: &Path) {
    let src = out.with_extension("c");
    fs::write(&src, include_str!("probe.c")).unwrap();
    let status = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(out)
        .arg(&src)
        .status()
        .expect("needs a C compiler with a static libc (cc, libc6-dev)");
    assert!(status.success(), "compiling probe.c failed");
    fs::remove_file(&src).unwrap();
}

/// Parses the probe (`probe.c`) output into `check -> errno` (0: the call succeeded).
pub(crate) fn parse_probe(out: &str) -> BTreeMap<String, i32> {
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.trim().parse().unwrap()))
        .collect()
}

/// Polls `f` every 50 ms until it returns `Some` or `timeout` passes.
pub(crate) fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
