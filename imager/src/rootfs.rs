//! The root filesystem: `mmdebstrap --variant=essential` plus the recipe's packages (and
//! our `.deb`, installed by a hook), then the pieces the boot needs from it (kernel,
//! modules, systemd-boot).
//!
//! # Design
//! An appliance root: the `Essential: yes` set, the recipe's packages and their
//! dependencies, nothing else — no apt, no `Priority: required` extras (`minbase`), no
//! `usrmerge` (and with it perl): `/bin`, `/sbin`, `/lib` are made `/usr` symlinks up front
//! by mmdebstrap's own `merged-usr` hook, as debootstrap does. dpkg runs with
//! `force-unsafe-io` (no fsync per file): the root is packed into a squashfs afterwards and
//! a crashed build is thrown away, so the syncs buy nothing, and under qemu-user (foreign
//! architectures) they made each package cost seconds.
//! Downloaded `.deb`s are kept in a cache directory (mmdebstrap's documented `sync-in` /
//! `sync-out` hooks), so a second build does not download again.

use std::path::{Path, PathBuf};

use crate::arch::{Firmware, Target};
use crate::recipe::Recipe;
use crate::tool::{self, ToolError};

/// Building or inspecting the root filesystem failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RootfsError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// mmdebstrap or mksquashfs failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// The root has no kernel or more than one.
    #[error("expected exactly one kernel in {dir}, found {found:?}")]
    Kernel { dir: PathBuf, found: Vec<String> },
    /// A file the image needs is missing from the root.
    #[error("{path} is missing from the root filesystem (is package {package} in the recipe?)")]
    Missing {
        path: PathBuf,
        package: &'static str,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RootfsError {
    let path = path.to_owned();
    move |source| RootfsError::Io { op, path, source }
}

/// mmdebstrap's hooks that set up merged `/usr` with symlinks and install `usr-is-merged`
/// (instead of `usrmerge`, which converts an existing root with perl).
const MERGED_USR_HOOKS: &str = "/usr/share/mmdebstrap/hooks/merged-usr";

/// Runs mmdebstrap into `root` (which must not exist yet), for the target's Debian
/// architecture (a foreign one runs its maintainer scripts through qemu-user-static and
/// binfmt_misc, prepared by `ci/deps.sh`). Downloaded `.deb`s are cached in
/// `cache/<debian arch>`.
pub(crate) fn debootstrap(
    r: &Recipe,
    target: Target,
    root: &Path,
    cache: &Path,
    extra: &[String],
) -> Result<(), RootfsError> {
    let cache = cache.join(target.debian_arch());
    std::fs::create_dir_all(&cache).map_err(io("creating", &cache))?;
    let cache = std::fs::canonicalize(&cache).map_err(io("resolving", &cache))?;
    let c = cache.to_string_lossy();
    let components = r.components.join(",");
    let mut args: Vec<String> = vec![
        "--variant=essential".into(),
        "--mode=root".into(),
        "--format=directory".into(),
        format!("--architectures={}", target.debian_arch()),
        format!("--components={components}"),
        format!("--include={}", r.packages.join(",")),
        "--skip=download/empty".into(),
        "--skip=essential/unlink".into(),
        format!("--hook-dir={MERGED_USR_HOOKS}"),
        "--dpkgopt=force-unsafe-io".into(),
        "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/".into(),
        format!("--setup-hook=sync-in '{c}' /var/cache/apt/archives/"),
        format!("--customize-hook=sync-out /var/cache/apt/archives '{c}'"),
        "--customize-hook=rm -f \"$1\"/var/cache/apt/archives/*.deb".into(),
        // The kernel package pulls in initramfs-tools, whose initrd we never use (ours is
        // built here): divert update-initramfs to `true` while packages install.
        "--essential-hook=chroot \"$1\" dpkg-divert --quiet --local --rename --add \
         /usr/sbin/update-initramfs && ln -s /bin/true \"$1\"/usr/sbin/update-initramfs"
            .into(),
        "--customize-hook=rm -f \"$1\"/usr/sbin/update-initramfs && chroot \"$1\" \
         dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs"
            .into(),
    ];
    for glob in &r.path_exclude {
        args.push(format!("--dpkgopt=path-exclude={glob}"));
    }
    args.extend(extra.iter().cloned());
    args.push(r.suite.clone());
    args.push(root.to_string_lossy().into_owned());
    args.push(r.mirror.clone());
    // Further suites (bookworm-backports) as extra sources lines; apt still prefers the
    // main suite unless a package names its release (`pkg/bookworm-backports`).
    for suite in &r.extra_suites {
        args.push(format!(
            "deb {} {suite} {}",
            r.mirror,
            r.components.join(" ")
        ));
    }
    tool::run("mmdebstrap", &args, r.source_date_epoch, None)?;
    // apt gives its scratch directories to `_apt` only when that user can reach the root
    // (mmdebstrap turns the sandbox off otherwise, e.g. for an --out below a 0700
    // directory, and its final `apt-get clean` recreates them): their owner depended on
    // where the image was built. Root owns them in every build.
    for dir in [
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
    ] {
        let p = root.join(dir);
        if p.is_dir() {
            std::os::unix::fs::chown(&p, Some(0), Some(0)).map_err(io("chown", &p))?;
        }
    }
    Ok(())
}

/// Creates the directories the boot mounts onto and the version file (the binaries come
/// from the `.deb`, see `deb.rs`; `overlays/` may replace `/etc/hostname`).
pub(crate) fn install_hearth(root: &Path, version: &str) -> Result<(), RootfsError> {
    for dir in ["media/hearth/data", "etc/hearth"] {
        let p = root.join(dir);
        std::fs::create_dir_all(&p).map_err(io("creating", &p))?;
    }
    for (file, text) in [
        ("etc/hostname", "hearth\n".to_owned()),
        ("etc/hearth/version", format!("{version}\n")),
        ("etc/machine-id", String::new()),
    ] {
        let p = root.join(file);
        std::fs::write(&p, text).map_err(io("writing", &p))?;
    }
    Ok(())
}

/// What the boot needs from the root.
#[derive(Debug)]
pub(crate) struct BootFiles {
    pub(crate) kernel: PathBuf,
    pub(crate) release: String,
    pub(crate) modules_dir: PathBuf,
    /// systemd-boot (UEFI targets only).
    pub(crate) boot_efi: Option<PathBuf>,
    /// Device trees shipped with the kernel, `/usr/lib/linux-image-<release>` (arm64 only).
    pub(crate) dtb_dir: Option<PathBuf>,
}

/// Finds the kernel, its modules and the target's boot loader files in `root`.
pub(crate) fn boot_files(root: &Path, target: Target) -> Result<BootFiles, RootfsError> {
    let boot = root.join("boot");
    let mut found: Vec<String> = std::fs::read_dir(&boot)
        .map_err(io("listing", &boot))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("vmlinuz-"))
        .collect();
    found.sort();
    let [name] = found.as_slice() else {
        return Err(RootfsError::Kernel { dir: boot, found });
    };
    let release = name.trim_start_matches("vmlinuz-").to_owned();
    let modules_dir = root.join("lib/modules").join(&release);
    let mut needed = vec![(modules_dir.clone(), "linux-image-*")];
    let boot_efi = match target.firmware() {
        Firmware::Uefi {
            boot_efi_in_root, ..
        } => {
            let p = root.join(boot_efi_in_root);
            needed.push((p.clone(), "systemd-boot-efi"));
            Some(p)
        }
        Firmware::RaspberryPi => None,
    };
    let dtb_dir = (target.debian_arch() == "arm64").then(|| {
        let p = root.join("usr/lib").join(format!("linux-image-{release}"));
        needed.push((p.clone(), "linux-image-*"));
        p
    });
    for (path, package) in needed {
        if !path.exists() {
            return Err(RootfsError::Missing { path, package });
        }
    }
    Ok(BootFiles {
        kernel: boot.join(name),
        release,
        modules_dir,
        boot_efi,
        dtb_dir,
    })
}

/// Packs the root into a reproducible squashfs. `SOURCE_DATE_EPOCH` (set by the tool
/// helper) fixes every file time and the filesystem time; mksquashfs refuses it together
/// with `-all-time`/`-mkfs-time`.
pub(crate) fn squashfs(root: &Path, out: &Path, epoch: u64) -> Result<(), RootfsError> {
    let _ = std::fs::remove_file(out);
    let args: Vec<&std::ffi::OsStr> = vec![
        root.as_os_str(),
        out.as_os_str(),
        "-noappend".as_ref(),
        "-comp".as_ref(),
        "zstd".as_ref(),
        "-no-xattrs".as_ref(),
        "-reproducible".as_ref(),
        "-quiet".as_ref(),
        "-no-progress".as_ref(),
    ];
    tool::run("mksquashfs", &args, epoch, None)?;
    Ok(())
}
