//! `hearth-imager`: builds reproducible Hearth OS disk images from a recipe.
//!
//! # Purpose
//! `hearth-imager build --recipe imager/recipes/x86_64-uefi.toml --out DIR --hearth-init
//! BIN --hearthd BIN` produces a GPT disk image (ESP with systemd-boot and one boot entry
//! per slot with boot counting, `root-a` and `root-b` as raw squashfs), the root squashfs,
//! kernel, initramfs and `SHA256SUMS`.
//!
//! # Design
//! Pure pieces (recipe validation, cpio writer, module resolution, GPT layout and sfdisk
//! script, boot entries, derived ids) are unit-tested; external tools (`mmdebstrap`,
//! `mksquashfs`, `mkfs.vfat`, mtools, `sfdisk`) run through one helper (`tool`) that prints
//! argv and reports stderr. Nothing is loop-mounted. Every id (disk and partition GUIDs, FAT
//! volume id) is derived from the recipe, every timestamp is `source_date_epoch`.
//!
//! # Rejected alternatives
//! `live-build` (StartOS): an ISO/live-system toolchain, heavy and hard to make
//! reproducible; `dracut`/`initramfs-tools`: they build a shell-based initramfs around
//! systemd or busybox, while ours is one static binary.
//!
//! # Limitations
//! Targets x86_64-uefi, aarch64-uefi and raspberrypi (never booted on a Pi); nothing on
//! the device applies the OTA bundle yet. See `imager/README.md` ("Not done yet").

mod arch;
mod build;
mod bundle;
mod bundle2;
mod cpio;
mod deb;
mod disk;
mod esp;
mod fat;
mod ids;
mod initramfs;
mod kernel;
mod overlay;
mod preflight;
mod recipe;
mod rootfs;
mod rpi;
mod tool;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hearth-imager",
    version,
    about = "Builds Hearth OS disk images"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Builds a disk image from a recipe.
    Build {
        /// Recipe file (imager/recipes/<target>.toml).
        #[arg(long)]
        recipe: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Static hearth-init binary (initramfs /init).
        #[arg(long)]
        hearth_init: PathBuf,
        /// hearthd binary.
        #[arg(long)]
        hearthd: PathBuf,
        /// Static hearth-container binary (PID 1 of service containers).
        #[arg(long)]
        hearth_container: Option<PathBuf>,
        /// The `hearth` CLI binary.
        #[arg(long = "hearth")]
        hearth_cli: Option<PathBuf>,
        /// Ed25519 private key (PEM PKCS#8, `hearth key generate`) signing the OTA bundle.
        /// Without it no bundle is written (bundles are never unsigned).
        #[arg(long)]
        signing_key: Option<PathBuf>,
        /// Cache of downloaded .deb files.
        #[arg(
            long,
            env = "HEARTH_CACHE_DIR",
            default_value = "/var/cache/hearth/imager-debs"
        )]
        cache: PathBuf,
        /// Appended to the recipe's kernel command line (e.g. `hearth.net=static:…`).
        #[arg(long, default_value = "")]
        extra_cmdline: String,
        /// Keep OUT/work (the root filesystem, the ESP image) for inspection.
        #[arg(long)]
        keep_work: bool,
    },
    /// OTA bundles: create one from files, or verify one.
    #[command(subcommand)]
    Bundle(BundleCommand),
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Checks a bundle: the manifest signature with KEY, then every file's size and hash.
    Verify {
        /// Public key (PEM SPKI, `hearth key public`).
        #[arg(long)]
        key: PathBuf,
        /// The `.ota` file.
        file: PathBuf,
        /// Also write the verified files into this directory.
        #[arg(long)]
        extract: Option<PathBuf>,
    },
    /// Writes a signed bundle from a root squashfs, kernel and initramfs (what `build`
    /// does after building them).
    Create {
        #[arg(long)]
        version: String,
        #[arg(long)]
        target: String,
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        kernel: PathBuf,
        #[arg(long)]
        initrd: PathBuf,
        /// Private key (PEM PKCS#8, `hearth key generate`).
        #[arg(long)]
        signing_key: PathBuf,
        /// Timestamp of every archive entry.
        #[arg(long, env = "SOURCE_DATE_EPOCH")]
        source_date_epoch: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Also write the v2 bundle (signed manifest + chunk index) to this file; needs
        /// `--kernel-release`.
        #[arg(long, requires = "kernel_release")]
        out_v2: Option<PathBuf>,
        /// `uname -r` of the kernel (the v2 manifest records it).
        #[arg(long, requires = "out_v2")]
        kernel_release: Option<String>,
    },
}

fn bundle_command(cmd: BundleCommand) -> Result<(), String> {
    match cmd {
        BundleCommand::Verify { key, file, extract } => {
            let key = bundle::load_verifying_key(&key).map_err(|e| e.to_string())?;
            let m = bundle::verify(&file, &key, extract.as_deref()).map_err(|e| e.to_string())?;
            println!(
                "{}: signature and {} files ok (hearth {} for {})",
                file.display(),
                m.files.len(),
                m.version,
                m.target
            );
            for f in &m.files {
                println!("  {}  {} bytes  {}", f.sha256, f.size, f.name);
            }
            Ok(())
        }
        BundleCommand::Create {
            version,
            target,
            root,
            kernel,
            initrd,
            signing_key,
            source_date_epoch,
            out,
            out_v2,
            kernel_release,
        } => {
            let key = bundle::load_signing_key(&signing_key).map_err(|e| e.to_string())?;
            let files = bundle::standard_files(&root, &kernel, &initrd);
            bundle::write(&out, &version, &target, &files, &key, source_date_epoch)
                .map_err(|e| e.to_string())?;
            println!("{}", out.display());
            if let (Some(out2), Some(release)) = (out_v2, kernel_release) {
                let spec = bundle2::Spec {
                    version: &version,
                    target: &target,
                    kernel_release: &release,
                    source_versions: None,
                };
                bundle2::write(&out2, &spec, &files, &key, source_date_epoch)
                    .map_err(|e| e.to_string())?;
                println!("{}", out2.display());
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // The caller's umask would reach the modes of the files the build creates (ours,
    // mmdebstrap's, the maintainer scripts'), which the image records: fix it.
    rustix::process::umask(rustix::fs::Mode::WGRP | rustix::fs::Mode::WOTH);
    let cli = Cli::parse();
    match cli.command {
        Command::Build {
            recipe,
            out,
            hearth_init,
            hearthd,
            hearth_container,
            hearth_cli,
            signing_key,
            cache,
            extra_cmdline,
            keep_work,
        } => {
            let args = build::BuildArgs {
                recipe,
                out,
                hearth_init,
                hearthd,
                hearth_container,
                hearth_cli,
                signing_key,
                cache,
                extra_cmdline,
                keep_work,
            };
            match build::build(&args) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hearth-imager: build failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bundle(cmd) => match bundle_command(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hearth-imager: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
