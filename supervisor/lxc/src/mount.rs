//! Host-side mounts of a container's root: the image squashfs (loop, read-only, idmapped)
//! and the overlay with its writable upper on the data dir.
//!
//! Design: everything uses the new mount API through syscalls, never `mount(8)`:
//! - loop: `LOOP_CTL_GET_FREE` + `LOOP_CONFIGURE` with `LO_FLAGS_READ_ONLY |
//!   LO_FLAGS_AUTOCLEAR`, so the loop device detaches by itself when the squashfs is
//!   unmounted — there is no loop device to leak;
//! - squashfs: `fsopen` + `fsconfig` + `fsmount` give a detached mount, which
//!   `mount_setattr(MOUNT_ATTR_IDMAP)` idmaps with a user namespace mapping 0 → the
//!   container's host base id (image files owned by root are owned by the container's
//!   root) before `move_mount`
//!   attaches it. util-linux 2.38's `X-mount.idmap` silently does nothing, hence syscalls;
//! - the user namespace fd comes from a short-lived `unshare --user sleep` child whose
//!   maps we write; the fd keeps the namespace alive, and `LxcRuntime` makes one per id
//!   range and reuses it for every image mount with that range;
//! - overlay: `fsopen("overlay")` with `lowerdir`/`upperdir`/`workdir` set one key at a
//!   time (no option-string escaping). Overlayfs accepts idmapped lower layers; the
//!   overlay itself cannot be idmapped, so the upper dir holds the container's host ids
//!   on disk ([`shift_ids`] moves them when a container's range changes).
//!
//! Invariants: [`MountGuard`] unmounts (lazily, detaching) what it holds when dropped unless
//! [`MountGuard::keep`] hands the mount over to the on-disk state.
//!
//! `unsafe` is allowed here for three things rustix 1.1 lacks: the loop ioctls and the
//! `mount_setattr` syscall. Each block says why it is sound.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::fs::CWD;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags, fsconfig_create,
    fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount, unmount,
};

use crate::spec::IdMap;

/// A mount step failed; each variant names the step and the path involved.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// Opening the image or a loop device node.
    #[error("opening {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Attaching the image to a loop device.
    #[error("attaching {image} to a loop device: {source}")]
    AttachLoop {
        /// The image.
        image: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Creating the user namespace that describes the id mapping.
    #[error("creating the idmap user namespace: {source}")]
    UserNamespace {
        /// Why.
        source: io::Error,
    },
    /// Mounting the squashfs image.
    #[error("mounting squashfs {image} at {target}: {source}")]
    MountSquashfs {
        /// The image.
        image: PathBuf,
        /// The mount point.
        target: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Mounting the overlay.
    #[error("mounting overlay at {target} (upper {upper}): {source}")]
    MountOverlay {
        /// The mount point.
        target: PathBuf,
        /// The upper dir.
        upper: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Unmounting.
    #[error("unmounting {target}: {source}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Moving an overlay upper's files to another id range.
    #[error("shifting ids of {path}: {source}")]
    ShiftIds {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Reading `/proc/self/mountinfo`.
    #[error("reading /proc/self/mountinfo: {source}")]
    MountInfo {
        /// Why.
        source: io::Error,
    },
}

/// Unmounts `target` on drop unless [`MountGuard::keep`] was called.
#[derive(Debug)]
pub(crate) struct MountGuard {
    target: Option<PathBuf>,
}

impl MountGuard {
    pub(crate) fn new(target: &Path) -> Self {
        Self {
            target: Some(target.to_owned()),
        }
    }

    /// The mount stays; it is now owned by the container's on-disk state.
    pub(crate) fn keep(mut self) {
        self.target = None;
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Some(target) = self.target.take()
            && let Err(e) = unmount_detach(&target)
        {
            tracing::warn!(error = %e, "cleanup unmount failed");
        }
    }
}

/// Mounts `image` read-only at `target`, idmapped by `userns` (0 → its host base id).
pub(crate) fn mount_squashfs_idmapped(
    image: &Path,
    target: &Path,
    userns: &IdmapUserns,
) -> Result<MountGuard, MountError> {
    let err = |source| MountError::MountSquashfs {
        image: image.to_owned(),
        target: target.to_owned(),
        source,
    };
    let (loop_path, _loop_fd) = attach_loop_read_only(image)?;
    let fs = fsopen("squashfs", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| err(e.into()))?;
    fsconfig_set_string(&fs, "source", &loop_path).map_err(|e| err(e.into()))?;
    fsconfig_set_flag(&fs, "ro").map_err(|e| err(e.into()))?;
    fsconfig_create(&fs).map_err(|e| err(e.into()))?;
    let attrs = MountAttrFlags::MOUNT_ATTR_RDONLY
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOSUID;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(|e| err(e.into()))?;
    mount_setattr_idmap(&mnt, &userns.0).map_err(err)?;
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| err(e.into()))?;
    // `_loop_fd` closes here; with AUTOCLEAR the device now lives exactly as long as the mount.
    Ok(MountGuard::new(target))
}

/// Mounts an overlay of `lower` (read-only) and `upper`/`work` at `target`.
pub(crate) fn mount_overlay(
    lower: &Path,
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<MountGuard, MountError> {
    let err = |source: io::Error| MountError::MountOverlay {
        target: target.to_owned(),
        upper: upper.to_owned(),
        source,
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| err(e.into()))?;
    fsconfig_set_string(&fs, "source", "hearth").map_err(|e| err(e.into()))?;
    fsconfig_set_string(&fs, "lowerdir", lower).map_err(|e| err(e.into()))?;
    fsconfig_set_string(&fs, "upperdir", upper).map_err(|e| err(e.into()))?;
    fsconfig_set_string(&fs, "workdir", work).map_err(|e| err(e.into()))?;
    fsconfig_create(&fs).map_err(|e| err(e.into()))?;
    let mnt = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NODEV,
    )
    .map_err(|e| err(e.into()))?;
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| err(e.into()))?;
    Ok(MountGuard::new(target))
}

/// Detaches the mount at `target` (`MNT_DETACH`); not mounted is not an error.
pub(crate) fn unmount_detach(target: &Path) -> Result<(), MountError> {
    if !is_mount_point(target)? {
        return Ok(());
    }
    tracing::debug!(target = %target.display(), "unmounting");
    unmount(target, UnmountFlags::DETACH).map_err(|e| MountError::Unmount {
        target: target.to_owned(),
        source: e.into(),
    })
}

/// Whether some mount's mount point is exactly `path` (per `/proc/self/mountinfo`).
pub(crate) fn is_mount_point(path: &Path) -> Result<bool, MountError> {
    Ok(mount_points()?.iter().any(|p| p == path))
}

/// All mount points of this mount namespace, unescaped.
pub fn mount_points() -> Result<Vec<PathBuf>, MountError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|source| MountError::MountInfo { source })?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .collect())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A user namespace mapping uid and gid 0 → an [`IdMap`]'s host base for its count,
/// kept alive by this fd (no process lives in it). One per id range is enough.
#[derive(Debug)]
pub(crate) struct IdmapUserns(OwnedFd);

/// Creates an [`IdmapUserns`] for `map`.
pub(crate) fn idmap_userns(map: IdMap) -> Result<IdmapUserns, MountError> {
    let err = |source| MountError::UserNamespace { source };
    let args = ["--user", "--", "sleep", "30"];
    tracing::debug!(program = "unshare", ?args, "spawning idmap holder");
    let child = Command::new("unshare")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(err)?;
    let mut holder = KillOnDrop(child);
    let proc_dir = PathBuf::from(format!("/proc/{}", holder.0.id()));
    let own = std::fs::read_link("/proc/self/ns/user").map_err(err)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    // The child has unshared once its user namespace differs from ours.
    loop {
        if let Ok(Some(status)) = holder.0.try_wait() {
            return Err(err(io::Error::other(format!("unshare exited: {status}"))));
        }
        match std::fs::read_link(proc_dir.join("ns/user")) {
            Ok(ns) if ns != own => break,
            _ if Instant::now() > deadline => {
                return Err(err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "unshare --user did not enter a new user namespace",
                )));
            }
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    let map = format!("0 {} {}\n", map.host_base, map.count);
    std::fs::write(proc_dir.join("uid_map"), &map).map_err(err)?;
    std::fs::write(proc_dir.join("gid_map"), &map).map_err(err)?;
    let ns = File::open(proc_dir.join("ns/user")).map_err(err)?;
    drop(holder);
    Ok(IdmapUserns(ns.into()))
}

/// Moves every file under `root` whose uid or gid lies in `from` to the same offset in
/// `to` (uids and gids separately), for an overlay upper whose container changed id range.
/// Links are never followed and other filesystems never entered; `root` itself is done
/// last, so its owner says whether the shift finished (an interrupted one is redone).
/// `chown` clears set-uid/set-gid bits; they are put back. Returns the entries changed.
/// The container must not run (nothing else may change the tree meanwhile).
pub(crate) fn shift_ids(root: &Path, from: IdMap, to: IdMap) -> Result<u64, MountError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown};
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| MountError::ShiftIds { path, source }
    };
    let shift = |id: u32| {
        from.contains(id)
            .then(|| id - from.host_base + to.host_base)
    };
    let root_meta = std::fs::symlink_metadata(root).map_err(err(root))?;
    let dev = root_meta.dev();
    let mut changed = 0u64;
    let mut fix = |path: &Path, meta: &std::fs::Metadata| -> Result<(), MountError> {
        let (uid, gid) = (shift(meta.uid()), shift(meta.gid()));
        if uid.is_none() && gid.is_none() {
            return Ok(());
        }
        lchown(path, uid, gid).map_err(err(path))?;
        if meta.is_file() && meta.mode() & 0o6000 != 0 {
            let mode = std::fs::Permissions::from_mode(meta.mode() & 0o7777);
            std::fs::set_permissions(path, mode).map_err(err(path))?;
        }
        changed += 1;
        Ok(())
    };
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(err(&dir))? {
            let path = entry.map_err(err(&dir))?.path();
            let meta = std::fs::symlink_metadata(&path).map_err(err(&path))?;
            if meta.is_dir() && meta.dev() == dev {
                stack.push(path.clone());
            }
            fix(&path, &meta)?;
        }
    }
    fix(root, &root_meta)?;
    tracing::info!(root = %root.display(), from = from.host_base, to = to.host_base, changed, "shifted ids");
    Ok(changed)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `struct mount_attr` from `<linux/mount.h>`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn mount_setattr_idmap(mnt: &OwnedFd, userns: &OwnedFd) -> Result<(), io::Error> {
    let attr = MountAttr {
        attr_set: u64::from(MountAttrFlags::MOUNT_ATTR_IDMAP.bits()),
        attr_clr: 0,
        propagation: 0,
        userns_fd: u64::try_from(userns.as_raw_fd()).map_err(io::Error::other)?,
    };
    let empty = c"";
    // SAFETY: mount_setattr(2) reads `size_of::<MountAttr>()` bytes from `&attr`, a live,
    // properly laid out `struct mount_attr`; `empty` is a NUL-terminated string; both fds
    // are owned and open for the duration of the call. No memory is written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64` from `<linux/loop.h>`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` from `<linux/loop.h>`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Attaches `image` read-only with autoclear; returns the device path and its open fd
/// (the device stays attached while the fd or a mount holds it).
fn attach_loop_read_only(image: &Path) -> Result<(PathBuf, File), MountError> {
    let attach_err = |source| MountError::AttachLoop {
        image: image.to_owned(),
        source,
    };
    let backing = File::open(image).map_err(|source| MountError::Open {
        path: image.to_owned(),
        source,
    })?;
    let ctl_path = Path::new("/dev/loop-control");
    let ctl = File::open(ctl_path).map_err(|source| MountError::Open {
        path: ctl_path.to_owned(),
        source,
    })?;
    // Another process may take the free device between the two ioctls: retry.
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and only returns an integer.
        let n = unsafe { libc::ioctl(ctl.as_fd().as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(attach_err(io::Error::last_os_error()));
        }
        let dev_path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = OpenOptions::new()
            .read(true)
            .open(&dev_path)
            .map_err(|source| MountError::Open {
                path: dev_path.clone(),
                source,
            })?;
        let mut name = [0u8; 64];
        let bytes = image.as_os_str().as_encoded_bytes();
        let len = bytes.len().min(63);
        name[..len].copy_from_slice(&bytes[..len]);
        let config = LoopConfig {
            fd: u32::try_from(backing.as_raw_fd()).map_err(|e| attach_err(io::Error::other(e)))?,
            block_size: 0,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
                lo_file_name: name,
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: LOOP_CONFIGURE reads one `struct loop_config`, which `config` is (repr(C),
        // same field layout as <linux/loop.h>), alive for the call; it writes nothing.
        let rc = unsafe {
            libc::ioctl(
                dev.as_raw_fd(),
                LOOP_CONFIGURE,
                &config as *const LoopConfig,
            )
        };
        if rc == 0 {
            tracing::debug!(image = %image.display(), device = %dev_path.display(), "loop attached");
            return Ok((dev_path, dev));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(attach_err(e));
        }
    }
    Err(attach_err(io::Error::other(
        "no free loop device after 16 tries",
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
mod tests {
    use super::*;

    #[test]
    fn mountinfo_octal_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/a\\134b"), "/a\\b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/trail\\04"), "/trail\\04");
    }

    #[test]
    fn root_is_a_mount_point() {
        assert!(is_mount_point(Path::new("/")).unwrap());
        assert!(!is_mount_point(Path::new("/definitely/not/mounted")).unwrap());
    }

    #[test]
    fn shift_ids_moves_one_range_and_leaves_the_rest() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown};
        // chown to other ids needs root; `make test` runs the suite as root.
        assert!(rustix::process::geteuid().is_root(), "needs root");
        let (from, to) = (IdMap::for_index(0), IdMap::for_index(3));
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("upper");
        std::fs::create_dir_all(root.join("etc/deep")).unwrap();
        std::fs::write(root.join("etc/deep/f"), "x").unwrap();
        std::fs::write(root.join("suid"), "x").unwrap();
        std::fs::write(root.join("host-owned"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        let base = from.host_base;
        for (p, uid, gid) in [
            ("", base, base),
            ("etc", base, base),
            ("etc/deep", base + 1000, base + 1000),
            ("etc/deep/f", base + 65_534, base + 33),
            ("suid", base, base + 7),
            ("link", base + 5, base + 5),
            ("host-owned", 0, 0),
        ] {
            lchown(root.join(p), Some(uid), Some(gid)).unwrap();
        }
        std::fs::set_permissions(root.join("suid"), std::fs::Permissions::from_mode(0o4755))
            .unwrap();
        let passwd_uid = std::fs::metadata("/etc/passwd").unwrap().uid();
        assert_eq!(shift_ids(&root, from, to).unwrap(), 6);
        let ids = |p: &str| {
            let m = std::fs::symlink_metadata(root.join(p)).unwrap();
            (m.uid(), m.gid())
        };
        let b = to.host_base;
        assert_eq!(ids(""), (b, b));
        assert_eq!(ids("etc/deep"), (b + 1000, b + 1000));
        assert_eq!(ids("etc/deep/f"), (b + 65_534, b + 33));
        assert_eq!(ids("link"), (b + 5, b + 5));
        assert_eq!(ids("host-owned"), (0, 0), "ids outside the range stay");
        let suid = std::fs::metadata(root.join("suid")).unwrap();
        assert_eq!(suid.mode() & 0o7777, 0o4755, "set-uid bit restored");
        assert_eq!(std::fs::metadata("/etc/passwd").unwrap().uid(), passwd_uid);
        assert_eq!(
            shift_ids(&root, from, to).unwrap(),
            0,
            "nothing left to move"
        );
    }

    #[test]
    fn loop_structs_match_the_kernel_abi() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
        assert_eq!(std::mem::size_of::<MountAttr>(), 32);
    }
}
