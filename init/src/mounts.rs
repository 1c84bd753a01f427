//! The mount plan: what is mounted where, computed as data, executed through [`Mounter`].
//!
//! # Design
//! Each boot phase has a pure function returning a list of [`Step`]s:
//! - [`early`]: `devtmpfs` on `/dev`, `proc`, `sysfs` (the initramfs has nothing else);
//! - [`root`]: the slot's squashfs, read-only, on `/sysroot`;
//! - [`volatile`]: `tmpfs` on `/run` and `/tmp` of the real root;
//! - [`kernel`]: what the service containers need of the host after the switch: `devpts`
//!   on `/dev/pts` (LXC's console and ttys), `tmpfs` on `/dev/shm`, and the cgroup v2
//!   unified hierarchy on [`CGROUP_DIR`] (the container limits, `lxc.cgroup2.*`);
//! - [`data`] and [`overlays`]: the data filesystem on [`DATA_DIR`] and overlays for `/etc`
//!   and `/var` whose upper layers live in `DATA_DIR/.os/`.
//!
//! [`execute`] runs steps in order and stops at the first failure, returning which step
//! failed. The real [`SysMounter`] calls `mount(2)`; tests use a recording fake.
//!
//! # Invariants
//! A data partition that exists but does not mount is never formatted here: [`DataState`]
//! makes the caller decide, and the boot code reports it and continues with volatile state.
//!
//! # Rejected alternatives
//! Shelling out to `mount`: the initramfs has no `mount` binary and the syscalls are simple.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

/// Where the data filesystem (or its volatile stand-in) is mounted; hearthd's data dir.
pub(crate) const DATA_DIR: &str = "/media/hearth/data";
/// Directory inside [`DATA_DIR`] holding the OS overlays' upper and work dirs.
pub(crate) const OS_STATE_DIR: &str = ".os";
/// Where the cgroup v2 unified hierarchy is mounted (sysfs provides the directory).
pub(crate) const CGROUP_DIR: &str = "/sys/fs/cgroup";
/// Where the initramfs mounts the new root before switching to it.
pub(crate) const SYSROOT: &str = "/sysroot";

/// One action of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Create a directory (and parents); an existing one is fine.
    Mkdir(PathBuf),
    /// Mount a filesystem.
    Mount(MountSpec),
}

/// Arguments of one `mount(2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountSpec {
    pub(crate) source: String,
    pub(crate) target: PathBuf,
    pub(crate) fstype: &'static str,
    pub(crate) flags: MsFlags,
    pub(crate) data: String,
}

fn mount(source: &str, target: &str, fstype: &'static str, flags: MsFlags, data: &str) -> Step {
    Step::Mount(MountSpec {
        source: source.to_owned(),
        target: PathBuf::from(target),
        fstype,
        flags,
        data: data.to_owned(),
    })
}

const NOSUID_NODEV: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);
const NOSUID_NODEV_NOEXEC: MsFlags = NOSUID_NODEV.union(MsFlags::MS_NOEXEC);

/// Kernel filesystems the initramfs needs first.
pub(crate) fn early() -> Vec<Step> {
    vec![
        Step::Mkdir("/dev".into()),
        mount(
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MsFlags::MS_NOSUID,
            "mode=0755",
        ),
        Step::Mkdir("/proc".into()),
        mount("proc", "/proc", "proc", NOSUID_NODEV_NOEXEC, ""),
        Step::Mkdir("/sys".into()),
        mount("sysfs", "/sys", "sysfs", NOSUID_NODEV_NOEXEC, ""),
    ]
}

/// The slot's root squashfs, read-only, on [`SYSROOT`].
pub(crate) fn root(device: &str) -> Vec<Step> {
    vec![
        Step::Mkdir(SYSROOT.into()),
        mount(device, SYSROOT, "squashfs", MsFlags::MS_RDONLY, ""),
    ]
}

/// Volatile directories of the real root.
pub(crate) fn volatile() -> Vec<Step> {
    vec![
        mount("tmpfs", "/run", "tmpfs", NOSUID_NODEV, "mode=0755"),
        mount("tmpfs", "/tmp", "tmpfs", NOSUID_NODEV, "mode=1777"),
    ]
}

/// Kernel filesystems of the real root that the service containers need. Not in the
/// unmount list: like `/dev`, `/proc` and `/sys` they go away with the kernel.
pub(crate) fn kernel() -> Vec<Step> {
    vec![
        Step::Mkdir("/dev/pts".into()),
        // gid 5 is Debian's `tty` group; ptmxmode so /dev/pts/ptmx works for root.
        mount(
            "devpts",
            "/dev/pts",
            "devpts",
            MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
            "gid=5,mode=0620,ptmxmode=0666",
        ),
        Step::Mkdir("/dev/shm".into()),
        mount("tmpfs", "/dev/shm", "tmpfs", NOSUID_NODEV, "mode=1777"),
        // nsdelegate: a cgroup namespace is a delegation boundary (as systemd mounts it).
        mount(
            "cgroup2",
            CGROUP_DIR,
            "cgroup2",
            NOSUID_NODEV_NOEXEC,
            "nsdelegate",
        ),
    ]
}

/// What was found for the data partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DataState {
    /// A `data` partition with a filesystem to mount.
    Partition { device: String },
    /// No usable data partition: state lives in RAM until the next boot.
    Volatile,
}

/// Mounts the data filesystem (or a tmpfs in its place) on [`DATA_DIR`].
pub(crate) fn data(state: &DataState) -> Vec<Step> {
    match state {
        DataState::Partition { device } => {
            vec![mount(device, DATA_DIR, "ext4", NOSUID_NODEV, "")]
        }
        DataState::Volatile => vec![mount("tmpfs", DATA_DIR, "tmpfs", NOSUID_NODEV, "mode=0755")],
    }
}

/// Persistent overlays for `/etc` and `/var`, upper layers in `DATA_DIR/.os/{etc,var}`.
pub(crate) fn overlays() -> Vec<Step> {
    let mut steps = Vec::new();
    for dir in ["etc", "var"] {
        let base = Path::new(DATA_DIR).join(OS_STATE_DIR).join(dir);
        let (upper, work) = (base.join("upper"), base.join("work"));
        steps.push(Step::Mkdir(upper.clone()));
        steps.push(Step::Mkdir(work.clone()));
        steps.push(Step::Mount(MountSpec {
            source: "overlay".into(),
            target: PathBuf::from("/").join(dir),
            fstype: "overlay",
            flags: MsFlags::empty(),
            data: format!(
                "lowerdir=/{dir},upperdir={},workdir={}",
                upper.display(),
                work.display()
            ),
        }));
    }
    steps
}

/// A step of a plan failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MountError {
    /// `mkdir -p` failed.
    #[error("creating directory {path}: {source}")]
    Mkdir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `mount(2)` failed.
    #[error("mounting {source_dev} ({fstype}, {data:?}) on {target}: {errno}")]
    Mount {
        source_dev: String,
        target: PathBuf,
        fstype: &'static str,
        data: String,
        errno: nix::Error,
    },
}

/// Performs steps.
pub(crate) trait Mounter {
    /// `mkdir -p`.
    fn mkdir(&mut self, path: &Path) -> Result<(), MountError>;
    /// `mount(2)`.
    fn mount(&mut self, spec: &MountSpec) -> Result<(), MountError>;
}

/// The real system.
pub(crate) struct SysMounter;

impl Mounter for SysMounter {
    fn mkdir(&mut self, path: &Path) -> Result<(), MountError> {
        std::fs::create_dir_all(path).map_err(|source| MountError::Mkdir {
            path: path.to_owned(),
            source,
        })
    }

    fn mount(&mut self, spec: &MountSpec) -> Result<(), MountError> {
        let data = (!spec.data.is_empty()).then_some(spec.data.as_str());
        nix::mount::mount(
            Some(spec.source.as_str()),
            &spec.target,
            Some(spec.fstype),
            spec.flags,
            data,
        )
        .map_err(|errno| MountError::Mount {
            source_dev: spec.source.clone(),
            target: spec.target.clone(),
            fstype: spec.fstype,
            data: spec.data.clone(),
            errno,
        })
    }
}

/// Runs steps in order, stopping at the first failure.
pub(crate) fn execute(steps: &[Step], m: &mut dyn Mounter) -> Result<(), MountError> {
    for step in steps {
        match step {
            Step::Mkdir(p) => m.mkdir(p)?,
            Step::Mount(spec) => m.mount(spec)?,
        }
    }
    Ok(())
}

/// Mount points of a plan, for unmounting in reverse at shutdown.
pub(crate) fn targets(steps: &[Step]) -> Vec<PathBuf> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Mount(spec) => Some(spec.target.clone()),
            Step::Mkdir(_) => None,
        })
        .collect()
}

/// Mount points strictly below `dir` in `mounts` (the text of `/proc/self/mounts`), last
/// mounted first: what to unmount before `dir` itself. The containers' image squashfs,
/// overlays and bind mounts live below the data directory; their loop devices hold files
/// of the data filesystem open until the squashfs is unmounted.
pub(crate) fn below(mounts: &str, dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p.starts_with(dir) && p != dir)
        .collect();
    found.reverse();
    found
}

/// `/proc/self/mounts` writes space, tab, newline and backslash as `\ooo` octal.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (b[i], octal) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mounts_below_the_data_dir_deepest_last_mounted_first() {
        let text = "\
/dev/vda4 /media/hearth/data ext4 rw 0 0
/dev/loop0 /media/hearth/data/containers/web/lower squashfs ro 0 0
overlay /media/hearth/data/containers/web/rootfs overlay rw 0 0
tmpfs /run tmpfs rw 0 0
/dev/vda4 /media/hearth/data/with\\040space ext4 rw 0 0
/dev/vda4 /media/hearth/database ext4 rw 0 0
";
        assert_eq!(
            below(text, Path::new(DATA_DIR)),
            [
                PathBuf::from("/media/hearth/data/with space"),
                "/media/hearth/data/containers/web/rootfs".into(),
                "/media/hearth/data/containers/web/lower".into(),
            ]
        );
        assert!(below("", Path::new(DATA_DIR)).is_empty());
    }

    #[derive(Default)]
    struct Fake {
        log: Vec<String>,
        fail_on: Option<&'static str>,
    }
    impl Mounter for Fake {
        fn mkdir(&mut self, path: &Path) -> Result<(), MountError> {
            self.log.push(format!("mkdir {}", path.display()));
            Ok(())
        }
        fn mount(&mut self, spec: &MountSpec) -> Result<(), MountError> {
            self.log.push(format!(
                "mount {} {} {} {}",
                spec.fstype,
                spec.source,
                spec.target.display(),
                spec.data
            ));
            if self.fail_on == Some(spec.fstype) {
                return Err(MountError::Mount {
                    source_dev: spec.source.clone(),
                    target: spec.target.clone(),
                    fstype: spec.fstype,
                    data: spec.data.clone(),
                    errno: nix::Error::EINVAL,
                });
            }
            Ok(())
        }
    }

    #[test]
    fn root_is_read_only_squashfs() {
        let steps = root("/dev/vda2");
        let Step::Mount(spec) = &steps[1] else {
            panic!("{steps:?}")
        };
        assert_eq!(spec.fstype, "squashfs");
        assert!(spec.flags.contains(MsFlags::MS_RDONLY));
        assert_eq!(spec.target, Path::new(SYSROOT));
    }

    #[test]
    fn full_root_phase_plan() {
        let mut fake = Fake::default();
        let plan: Vec<Step> = [
            volatile(),
            data(&DataState::Partition {
                device: "/dev/vda4".into(),
            }),
            overlays(),
        ]
        .concat();
        execute(&plan, &mut fake).unwrap();
        assert_eq!(
            fake.log,
            [
                "mount tmpfs tmpfs /run mode=0755",
                "mount tmpfs tmpfs /tmp mode=1777",
                "mount ext4 /dev/vda4 /media/hearth/data ",
                "mkdir /media/hearth/data/.os/etc/upper",
                "mkdir /media/hearth/data/.os/etc/work",
                "mount overlay overlay /etc lowerdir=/etc,upperdir=/media/hearth/data/.os/etc/upper,workdir=/media/hearth/data/.os/etc/work",
                "mkdir /media/hearth/data/.os/var/upper",
                "mkdir /media/hearth/data/.os/var/work",
                "mount overlay overlay /var lowerdir=/var,upperdir=/media/hearth/data/.os/var/upper,workdir=/media/hearth/data/.os/var/work",
            ]
        );
        assert_eq!(
            targets(&plan),
            [
                PathBuf::from("/run"),
                "/tmp".into(),
                DATA_DIR.into(),
                "/etc".into(),
                "/var".into()
            ]
        );
    }

    #[test]
    fn kernel_plan_mounts_cgroup2_unified() {
        let mut fake = Fake::default();
        execute(&kernel(), &mut fake).unwrap();
        assert_eq!(
            fake.log,
            [
                "mkdir /dev/pts",
                "mount devpts devpts /dev/pts gid=5,mode=0620,ptmxmode=0666",
                "mkdir /dev/shm",
                "mount tmpfs tmpfs /dev/shm mode=1777",
                "mount cgroup2 cgroup2 /sys/fs/cgroup nsdelegate",
            ]
        );
        let Some(Step::Mount(cg)) = kernel().pop() else {
            panic!()
        };
        assert!(cg.flags.contains(NOSUID_NODEV_NOEXEC));
    }

    #[test]
    fn volatile_data_is_tmpfs() {
        let steps = data(&DataState::Volatile);
        let Step::Mount(spec) = &steps[0] else {
            panic!()
        };
        assert_eq!(spec.fstype, "tmpfs");
        assert_eq!(spec.target, Path::new(DATA_DIR));
    }

    #[test]
    fn execution_stops_at_first_failure_and_names_it() {
        let mut fake = Fake {
            fail_on: Some("ext4"),
            ..Fake::default()
        };
        let plan = [
            data(&DataState::Partition {
                device: "/dev/vda4".into(),
            }),
            overlays(),
        ]
        .concat();
        let err = execute(&plan, &mut fake).unwrap_err().to_string();
        assert!(
            err.contains("/dev/vda4") && err.contains("/media/hearth/data"),
            "{err}"
        );
        assert_eq!(fake.log.len(), 1);
    }
}
