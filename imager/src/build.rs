//! `hearth-imager build`: the ordered steps from a recipe to the output directory.
//!
//! Output (in `--out`): `hearth-<version>-<target>.img` (GPT: ESP, root-a, root-b),
//! `hearth-<version>-<target>.root.squashfs`, `vmlinuz`, `initrd.img`, `SHA256SUMS`.
//! Work files live in `--out/work` and are removed after a successful build.

use std::path::{Path, PathBuf};

use crate::arch::Firmware;
use crate::bundle::{self, BundleError, KeyFileError};
use crate::bundle2;
use crate::deb::{self, DebError};
use crate::disk::{self, DiskError};
use crate::esp::{self, EspError};
use crate::ids;
use crate::initramfs::{self, InitramfsError};
use crate::kernel::{self, KernelError};
use crate::overlay::{self, OverlayError};
use crate::preflight::{self, PreflightError};
use crate::recipe::{self, RecipeError};
use crate::rootfs::{self, RootfsError};
use crate::rpi::{self, RpiError};

/// Inputs of one build.
#[derive(Debug)]
pub(crate) struct BuildArgs {
    pub(crate) recipe: PathBuf,
    pub(crate) out: PathBuf,
    pub(crate) hearth_init: PathBuf,
    pub(crate) hearthd: PathBuf,
    /// Static `hearth-container` (PID 1 of service containers), into the `.deb`.
    pub(crate) hearth_container: Option<PathBuf>,
    /// The `hearth` CLI, into the `.deb`.
    pub(crate) hearth_cli: Option<PathBuf>,
    /// Ed25519 key (PEM PKCS#8) signing the OTA bundle; no key, no bundle.
    pub(crate) signing_key: Option<PathBuf>,
    pub(crate) cache: PathBuf,
    pub(crate) extra_cmdline: String,
    pub(crate) keep_work: bool,
}

/// A build step failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error("root filesystem: {0}")]
    Rootfs(#[from] RootfsError),
    #[error("initramfs: {0}")]
    Initramfs(#[from] InitramfsError),
    #[error("ESP: {0}")]
    Esp(#[from] EspError),
    #[error("disk image: {0}")]
    Disk(#[from] DiskError),
    #[error("package from debian/: {0}")]
    Deb(#[from] DebError),
    #[error(transparent)]
    Overlay(#[from] OverlayError),
    #[error("OTA bundle: {0}")]
    Bundle(#[from] BundleError),
    #[error("OTA signing key: {0}")]
    Key(#[from] KeyFileError),
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// apt does not know some recipe packages.
    #[error(
        "recipe {recipe}: unknown package(s) {names} (not in {suite} at {mirror}; found by mmdebstrap --simulate before building)"
    )]
    UnknownPackages {
        recipe: PathBuf,
        names: String,
        suite: String,
        mirror: String,
    },
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("Raspberry Pi image: {0}")]
    Rpi(#[from] RpiError),
    /// A file operation of the build itself failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.to_owned();
    move |source| BuildError::Io { op, path, source }
}

/// Prints a step's heading with the time since the build started, so the cost of each
/// step is the difference between two headings (and the last one to `done in`).
fn step(started: std::time::Instant, n: u32, what: &str) {
    println!(
        "[{n}/7] {what} (at {:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

/// Runs the whole build; returns the disk image path. A failed build leaves no output
/// file and no work directory behind (unless `keep_work`).
pub(crate) fn build(a: &BuildArgs) -> Result<PathBuf, BuildError> {
    let mut outputs = Vec::new();
    let result = build_steps(a, &mut outputs);
    if result.is_err() && !outputs.is_empty() {
        let work = a.out.join("work");
        preflight::remove_partial((!a.keep_work).then_some(work.as_path()), &outputs);
    }
    result
}

fn build_steps(a: &BuildArgs, outputs: &mut Vec<PathBuf>) -> Result<PathBuf, BuildError> {
    let started = std::time::Instant::now();
    step(started, 1, &format!("recipe {}", a.recipe.display()));
    let (r, recipe_bytes) = recipe::load(&a.recipe)?;
    let mut binaries = std::collections::BTreeMap::new();
    binaries.insert("hearth-init", a.hearth_init.clone());
    binaries.insert("hearthd", a.hearthd.clone());
    if let Some(p) = &a.hearth_container {
        binaries.insert("hearth-container", p.clone());
    }
    if let Some(p) = &a.hearth_cli {
        binaries.insert("hearth", p.clone());
    }
    for bin in binaries.values() {
        std::fs::metadata(bin).map_err(io("reading binary", bin))?;
    }
    let deb_inputs = deb::DebInputs {
        debian_dir: &r.debian,
        version: &r.version,
        arch: r.target().debian_arch(),
        binaries: &binaries,
        epoch: r.source_date_epoch,
    };
    deb::check(&deb_inputs, &r.packages)?;
    let signing_key = match &a.signing_key {
        Some(p) => Some(bundle::load_signing_key(p)?),
        None => None,
    };
    let target = r.target();
    let epoch = r.source_date_epoch;
    let mut seed = recipe_bytes.clone();
    seed.extend_from_slice(a.extra_cmdline.as_bytes());
    let cmdline = format!("{} {}", r.cmdline, a.extra_cmdline)
        .trim()
        .to_owned();

    std::fs::create_dir_all(&a.out).map_err(io("creating", &a.out))?;
    preflight::check_space(&a.out, preflight::required_mib(r.slot_mib, r.esp_mib))?;
    let name = format!("hearth-{}-{}", r.version, r.target);
    for f in [
        format!("{name}.img"),
        format!("{name}.root.squashfs"),
        format!("{name}.ota"),
        format!("{name}.ota.tmp"),
        format!("{name}.ota2"),
        format!("{name}.ota2.tmp"),
        format!("hearth_{}_{}.deb", r.version, target.debian_arch()),
        "vmlinuz".into(),
        "initrd.img".into(),
        "SHA256SUMS".into(),
    ] {
        outputs.push(a.out.join(f));
    }
    let work = a.out.join("work");
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(io("removing", &work))?;
    }
    std::fs::create_dir_all(&work).map_err(io("creating", &work))?;
    let root = work.join("rootfs");

    step(
        started,
        2,
        &format!(
            "root filesystem: mmdebstrap {} ({} packages)",
            r.suite,
            r.packages.len()
        ),
    );
    let unknown = |e: RootfsError| match &e {
        RootfsError::Tool(t) if !preflight::unknown_packages(t).is_empty() => {
            BuildError::UnknownPackages {
                recipe: a.recipe.clone(),
                names: preflight::unknown_packages(t).join(", "),
                suite: r.suite.clone(),
                mirror: r.mirror.clone(),
            }
        }
        _ => BuildError::Rootfs(e),
    };
    println!("    package list check (mmdebstrap --simulate)");
    let simulate = work.join("simulate");
    rootfs::debootstrap(&r, target, &simulate, &a.cache, &["--simulate".into()])
        .map_err(unknown)?;
    std::fs::remove_dir_all(&simulate).map_err(io("removing", &simulate))?;
    let deb = deb::build(&deb_inputs, &work, &a.out)?;
    println!(
        "    {} (installed by dpkg in a customize hook)",
        deb.display()
    );
    let t = std::time::Instant::now();
    rootfs::debootstrap(&r, target, &root, &a.cache, &deb::install_hooks(&deb)).map_err(unknown)?;
    println!("    mmdebstrap took {:.1} s", t.elapsed().as_secs_f64());
    step(started, 3, "overlays and version");
    rootfs::install_hearth(&root, &r.version)?;
    for o in &r.overlays {
        let n = overlay::apply(o, &root, epoch)?;
        println!("    overlay {} ({n} entries)", o.display());
    }
    let boot = rootfs::boot_files(&root, target)?;
    println!("    kernel {}", boot.release);

    step(started, 4, "root squashfs");
    let squashfs = a.out.join(format!("{name}.root.squashfs"));
    rootfs::squashfs(&root, &squashfs, epoch)?;

    step(started, 5, "initramfs");
    let initrd = a.out.join("initrd.img");
    let bytes = initramfs::build(
        &a.hearth_init,
        &boot.modules_dir,
        &boot.release,
        &r.initramfs_modules,
        epoch,
    )?;
    std::fs::write(&initrd, bytes).map_err(io("writing", &initrd))?;
    let kernel = a.out.join("vmlinuz");
    if kernel::install(&boot.kernel, &kernel, target.needs_uncompressed_kernel())? {
        println!("    kernel decompressed (UEFI starts the plain Image's EFI stub)");
    }
    for f in [&initrd, &kernel] {
        set_mtime(f, epoch)?;
    }
    let img = a.out.join(format!("{name}.img"));
    let total_mib = match (target.firmware(), &boot.boot_efi, &r.raspberrypi) {
        (Firmware::RaspberryPi, _, Some(pi)) => {
            step(
                started,
                6,
                "Raspberry Pi firmware partitions (autoboot.txt A/B, tryboot)",
            );
            let firmware_dir = root.join("usr/lib/raspi-firmware");
            let dtb_dir = boot.dtb_dir.clone().unwrap_or_default();
            rpi::build(
                &img,
                &work.join("rpi"),
                &rpi::RpiInputs {
                    recipe: pi,
                    version: &r.version,
                    cmdline: &cmdline,
                    kernel: &kernel,
                    initramfs: &initrd,
                    dtb_dir: &dtb_dir,
                    firmware_dir: &firmware_dir,
                    squashfs: &squashfs,
                    slot_mib: r.slot_mib,
                },
                &seed,
                epoch,
            )?;
            step(started, 7, "MBR disk image written");
            disk::mbr_layout(rpi::AUTOBOOT_MIB, pi.boot_mib, r.slot_mib).total_mib
        }
        (Firmware::Uefi { esp_path, .. }, Some(boot_efi), _) => {
            let efi = work.join("boot.efi");
            std::fs::copy(boot_efi, &efi).map_err(io("copying", boot_efi))?;
            set_mtime(&efi, epoch)?;

            step(
                started,
                6,
                "ESP (systemd-boot, entries for slots a and b with boot counting)",
            );
            let esp_img = work.join("esp.img");
            esp::build(
                &esp_img,
                &work.join("esp"),
                &esp::EspInputs {
                    boot_efi: &efi,
                    boot_efi_dest: esp_path,
                    kernel: &kernel,
                    initramfs: &initrd,
                    version: &r.version,
                    cmdline: &cmdline,
                    size_mib: r.esp_mib,
                },
                &seed,
                epoch,
            )?;

            step(started, 7, "GPT disk image");
            let layout = disk::layout(r.esp_mib, r.slot_mib, target.root_type_guid());
            disk::assemble(
                &img,
                &layout,
                &seed,
                &[
                    ("esp", esp_img.as_path()),
                    ("root-a", squashfs.as_path()),
                    ("root-b", squashfs.as_path()),
                ],
                epoch,
            )?;
            layout.total_mib
        }
        _ => {
            return Err(BuildError::Io {
                op: "finding the boot loader of",
                path: root.clone(),
                source: std::io::Error::other("the recipe's target and boot files disagree"),
            });
        }
    };

    let mut sums_of = vec![
        img.clone(),
        squashfs.clone(),
        kernel.clone(),
        initrd.clone(),
        deb,
    ];
    match &signing_key {
        Some(key) => {
            let ota = a.out.join(format!("{name}.ota"));
            bundle::write(
                &ota,
                &r.version,
                &r.target,
                &bundle::standard_files(&squashfs, &kernel, &initrd),
                key,
                epoch,
            )?;
            println!("    OTA bundle {} (signed)", ota.display());
            sums_of.push(ota);
            let ota2 = a.out.join(format!("{name}.ota2"));
            let spec = bundle2::Spec {
                version: &r.version,
                target: &r.target,
                kernel_release: &boot.release,
                source_versions: None,
            };
            let files = bundle::standard_files(&squashfs, &kernel, &initrd);
            bundle2::write(&ota2, &spec, &files, key, epoch)?;
            println!(
                "    OTA bundle v2 {} (signed, with chunk index)",
                ota2.display()
            );
            sums_of.push(ota2);
        }
        None => println!(
            "    OTA bundle: not written, no --signing-key given (bundles are always signed; \
             make a key with `hearth key generate --out KEY`)"
        ),
    }
    let mut sums = String::new();
    for f in &sums_of {
        let h = ids::sha256_file(f).map_err(io("hashing", f))?;
        let file_name = f
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        sums.push_str(&format!("{h}  {file_name}\n"));
    }
    let sums_path = a.out.join("SHA256SUMS");
    std::fs::write(&sums_path, &sums).map_err(io("writing", &sums_path))?;
    if !a.keep_work {
        std::fs::remove_dir_all(&work).map_err(io("removing", &work))?;
    }
    print!("{sums}");
    println!(
        "done in {:.0} s: {} ({} MiB)",
        started.elapsed().as_secs_f64(),
        img.display(),
        total_mib
    );
    Ok(img)
}

fn set_mtime(path: &Path, epoch: u64) -> Result<(), BuildError> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(t))
        .map_err(io("setting mtime of", path))
}
