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
//! x86_64 UEFI only; no OTA bundle; no `overlays/`; binaries are copied into the root, not
//! installed from a `.deb`. See `imager/README.md`.

mod build;
mod cpio;
mod disk;
mod esp;
mod ids;
mod initramfs;
mod recipe;
mod rootfs;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Build {
            recipe,
            out,
            hearth_init,
            hearthd,
            cache,
            extra_cmdline,
            keep_work,
        } => {
            let args = build::BuildArgs {
                recipe,
                out,
                hearth_init,
                hearthd,
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
    }
}
