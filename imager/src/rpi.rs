//! Raspberry Pi 4 and 5 images: the firmware's own A/B (`autoboot.txt` + `tryboot`) on an
//! MBR disk, with the same `root-a`/`root-b` squashfs slots as the UEFI targets.
//!
//! # Layout (see `disk::mbr_layout`)
//! 1. `autoboot` (FAT16): only `autoboot.txt`. The boot ROM/EEPROM reads it from the first
//!    FAT partition; `[all] boot_partition=2` boots slot A, `[tryboot] boot_partition=3`
//!    boots slot B when the one-shot `tryboot` flag is set (`reboot "0 tryboot"`), and
//!    `tryboot_a_b=1` makes the firmware read the normal `config.txt` in the tried
//!    partition (not `tryboot.txt`), so both boot partitions are identical in shape.
//! 2. `boot-a`, 3. `boot-b` (FAT32): the firmware blobs from Debian's `raspi-firmware`
//!    (`start4.elf`, `fixup4.dat`, …; the Pi 5 keeps its firmware in EEPROM and only needs
//!    `config.txt`), `config.txt`, `cmdline.txt`, the kernel (`vmlinuz`: the firmware
//!    loads an uncompressed or gzip arm64 image), `initrd.img` and the device trees named
//!    in the recipe (`bcm2711-rpi-4-b.dtb`, `bcm2712-rpi-5-b.dtb`).
//! 4. an extended partition with 5 `root-a` and 6 `root-b` (raw squashfs).
//!
//! Each slot's `cmdline.txt` names its root as `root=PARTUUID=<disk id>-05` (or `-06`)
//! plus `hearth.slot=a|b`. Committing an update means rewriting `autoboot.txt` with the
//! partitions swapped (the firmware documents this flow); the tryboot flag is cleared by
//! the firmware itself, so a slot that never commits falls back at the next reset.
//!
//! # Limitations
//! Nothing here can be booted on this machine: the layout and contents are checked by
//! `imager/tests/rpi_layout.rs`, not by a Pi.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::disk::{self, DiskError};
use crate::fat::{self, FatError, FatSpec};

/// Size of the `autoboot` partition in MiB (FAT16 needs about 9 MiB at least).
pub(crate) const AUTOBOOT_MIB: u64 = 16;
/// MBR partition numbers of the two firmware partitions.
pub(crate) const BOOT_PARTITION: [u32; 2] = [2, 3];

/// The recipe's `[raspberrypi]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RpiRecipe {
    /// Size of each firmware partition (`boot-a`, `boot-b`) in MiB.
    pub(crate) boot_mib: u64,
    /// Device trees copied to each firmware partition, per board.
    pub(crate) device_trees: Vec<DeviceTree>,
    /// Extra `config.txt` lines, added to the `[all]` section.
    #[serde(default)]
    pub(crate) config: Vec<String>,
}

/// One board's device tree.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceTree {
    /// `config.txt` filter of the board (`pi4`, `pi5`).
    pub(crate) board: String,
    /// Path under the kernel's `/usr/lib/linux-image-<release>/` (`broadcom/….dtb`).
    pub(crate) file: String,
}

impl DeviceTree {
    /// The file name the firmware partition holds (the last path component).
    pub(crate) fn name(&self) -> &str {
        self.file.rsplit('/').next().unwrap_or(&self.file)
    }
}

/// Boards whose `config.txt` filter we write (the firmware's own names).
const BOARDS: &[&str] = &["pi4", "pi400", "cm4", "pi5", "cm5"];

impl RpiRecipe {
    /// Checks sizes, boards and names; the error is the reason.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(64..=4096).contains(&self.boot_mib) {
            return Err("raspberrypi.boot_mib must be 64..=4096 (FAT32)".into());
        }
        if self.device_trees.is_empty() {
            return Err("raspberrypi.device_trees must name at least one board".into());
        }
        for dt in &self.device_trees {
            if !BOARDS.contains(&dt.board.as_str()) {
                return Err(format!(
                    "raspberrypi.device_trees: unknown board {:?} (known: {})",
                    dt.board,
                    BOARDS.join(", ")
                ));
            }
            let ok = dt.file.ends_with(".dtb")
                && dt.file.split('/').all(|c| {
                    !c.is_empty()
                        && c != ".."
                        && c.chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || "-_.+".contains(ch))
                });
            if !ok {
                return Err(format!(
                    "raspberrypi.device_trees: bad file {:?} (a relative .dtb path)",
                    dt.file
                ));
            }
        }
        for line in &self.config {
            if line.contains('\n') || line.trim_start().starts_with('[') {
                return Err(format!(
                    "raspberrypi.config: {line:?} must be one line and not a [filter]"
                ));
            }
        }
        Ok(())
    }
}

/// `autoboot.txt`: slot A by default, slot B on a `tryboot` reboot.
pub(crate) fn autoboot_txt() -> String {
    format!(
        "[all]\ntryboot_a_b=1\nboot_partition={}\n[tryboot]\nboot_partition={}\n",
        BOOT_PARTITION[0], BOOT_PARTITION[1]
    )
}

/// One slot's `config.txt` (identical in both slots but for the comment).
pub(crate) fn config_txt(r: &RpiRecipe, version: &str, slot: char) -> String {
    let mut s = format!(
        "# Hearth {version}, slot {slot} (written by hearth-imager)\n[all]\narm_64bit=1\n\
         enable_uart=1\nupstream_kernel=1\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n\
         cmdline=cmdline.txt\n"
    );
    for line in &r.config {
        s.push_str(line.trim());
        s.push('\n');
    }
    for dt in &r.device_trees {
        s.push_str(&format!("[{}]\ndevice_tree={}\n", dt.board, dt.name()));
    }
    s.push_str("[all]\n");
    s
}

/// One slot's `cmdline.txt` (one line): the recipe's command line, the slot's root by
/// MBR PARTUUID and `hearth.slot`.
pub(crate) fn cmdline_txt(cmdline: &str, disk_id: &str, slot: char) -> String {
    let n = if slot == 'a' {
        disk::MBR_ROOT_A
    } else {
        disk::MBR_ROOT_A + 1
    };
    let id = disk_id.trim_start_matches("0x");
    format!(
        "{} root=PARTUUID={id}-{n:02} hearth.slot={slot}\n",
        cmdline.trim()
    )
    .trim_start()
    .to_owned()
}

/// Inputs of the Raspberry Pi image.
#[derive(Debug)]
pub(crate) struct RpiInputs<'a> {
    pub(crate) recipe: &'a RpiRecipe,
    pub(crate) version: &'a str,
    pub(crate) cmdline: &'a str,
    pub(crate) kernel: &'a Path,
    pub(crate) initramfs: &'a Path,
    /// `/usr/lib/linux-image-<release>` in the root.
    pub(crate) dtb_dir: &'a Path,
    /// `/usr/lib/raspi-firmware` in the root.
    pub(crate) firmware_dir: &'a Path,
    pub(crate) squashfs: &'a Path,
    pub(crate) slot_mib: u64,
}

/// Building the Raspberry Pi image failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RpiError {
    /// A file could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A device tree the recipe names is not shipped by the kernel.
    #[error(
        "device tree {path} is missing (is the kernel new enough for board {board}? the Pi 5 needs bookworm-backports)"
    )]
    MissingDtb { path: PathBuf, board: String },
    /// raspi-firmware's directory is empty or missing.
    #[error("no Raspberry Pi firmware in {dir} (is raspi-firmware in the recipe?)")]
    NoFirmware { dir: PathBuf },
    #[error(transparent)]
    Fat(#[from] FatError),
    #[error(transparent)]
    Disk(#[from] DiskError),
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RpiError {
    let path = path.to_owned();
    move |source| RpiError::Io { op, path, source }
}

/// The firmware blobs: every regular file of `dir`, sorted by name.
fn firmware_files(dir: &Path) -> Result<Vec<(PathBuf, String)>, RpiError> {
    let mut files = Vec::new();
    if dir.is_dir() {
        for e in std::fs::read_dir(dir).map_err(io("listing", dir))? {
            let e = e.map_err(io("listing", dir))?;
            if e.file_type().map_err(io("reading", &e.path()))?.is_file() {
                files.push((e.path(), e.file_name().to_string_lossy().into_owned()));
            }
        }
    }
    files.sort_by(|a, b| a.1.cmp(&b.1));
    if !files
        .iter()
        .any(|(_, n)| n.starts_with("start4") && n.ends_with(".elf"))
    {
        return Err(RpiError::NoFirmware {
            dir: dir.to_owned(),
        });
    }
    Ok(files)
}

/// Builds the MBR image at `out` (work files under `work`).
pub(crate) fn build(
    out: &Path,
    work: &Path,
    inp: &RpiInputs<'_>,
    seed: &[u8],
    epoch: u64,
) -> Result<(), RpiError> {
    std::fs::create_dir_all(work).map_err(io("creating", work))?;
    let layout = disk::mbr_layout(AUTOBOOT_MIB, inp.recipe.boot_mib, inp.slot_mib);
    let disk_id = disk::mbr_disk_id(seed);
    let firmware = firmware_files(inp.firmware_dir)?;
    let mut dtbs = Vec::new();
    for dt in &inp.recipe.device_trees {
        let path = inp.dtb_dir.join(&dt.file);
        if !path.is_file() {
            return Err(RpiError::MissingDtb {
                path,
                board: dt.board.clone(),
            });
        }
        dtbs.push((path, dt.name().to_owned()));
    }
    let text = |name: &str, body: String| -> Result<PathBuf, RpiError> {
        let p = work.join(name);
        std::fs::write(&p, body).map_err(io("writing", &p))?;
        Ok(p)
    };
    let autoboot_img = work.join("autoboot.img");
    println!("    autoboot partition: autoboot.txt (A = partition 2, tryboot B = partition 3)");
    fat::build(
        &autoboot_img,
        &work.join("stage-autoboot"),
        &FatSpec {
            size_mib: AUTOBOOT_MIB,
            bits: 16,
            label: "HEARTH-AB",
            files: vec![(text("autoboot.txt", autoboot_txt())?, "autoboot.txt".into())],
        },
        epoch,
    )?;
    let boot_partition = |slot: char| -> Result<PathBuf, RpiError> {
        println!("    firmware partition boot-{slot}");
        let mut files = firmware.clone();
        files.extend(dtbs.iter().cloned());
        files.push((inp.kernel.to_owned(), "vmlinuz".into()));
        files.push((inp.initramfs.to_owned(), "initrd.img".into()));
        files.push((
            text(
                &format!("config-{slot}.txt"),
                config_txt(inp.recipe, inp.version, slot),
            )?,
            "config.txt".into(),
        ));
        files.push((
            text(
                &format!("cmdline-{slot}.txt"),
                cmdline_txt(inp.cmdline, &disk_id, slot),
            )?,
            "cmdline.txt".into(),
        ));
        let img = work.join(format!("boot-{slot}.img"));
        let label = format!("HEARTH-{}", slot.to_ascii_uppercase());
        fat::build(
            &img,
            &work.join(format!("stage-boot-{slot}")),
            &FatSpec {
                size_mib: inp.recipe.boot_mib,
                bits: 32,
                label: &label,
                files,
            },
            epoch,
        )?;
        Ok(img)
    };
    let (boot_a, boot_b) = (boot_partition('a')?, boot_partition('b')?);
    disk::assemble(
        out,
        &layout,
        seed,
        &[
            ("autoboot", autoboot_img.as_path()),
            ("boot-a", boot_a.as_path()),
            ("boot-b", boot_b.as_path()),
            ("root-a", inp.squashfs),
            ("root-b", inp.squashfs),
        ],
        epoch,
    )?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn recipe() -> RpiRecipe {
        RpiRecipe {
            boot_mib: 256,
            device_trees: vec![
                DeviceTree {
                    board: "pi4".into(),
                    file: "broadcom/bcm2711-rpi-4-b.dtb".into(),
                },
                DeviceTree {
                    board: "pi5".into(),
                    file: "broadcom/bcm2712-rpi-5-b.dtb".into(),
                },
            ],
            config: vec!["disable_overscan=1".into()],
        }
    }

    #[test]
    fn autoboot_switches_partitions_on_tryboot() {
        let a = autoboot_txt();
        let (all, tryboot) = a.split_once("[tryboot]\n").unwrap();
        assert!(all.starts_with("[all]\n") && all.contains("tryboot_a_b=1\n"));
        assert!(all.contains("boot_partition=2\n"));
        assert_eq!(tryboot, "boot_partition=3\n");
        assert!(a.len() <= 512, "the firmware reads at most 512 bytes");
    }

    #[test]
    fn config_and_cmdline_per_slot() {
        let c = config_txt(&recipe(), "0.1.0", 'b');
        for want in [
            "arm_64bit=1\n",
            "kernel=vmlinuz\n",
            "initramfs initrd.img followkernel\n",
            "disable_overscan=1\n",
            "[pi4]\ndevice_tree=bcm2711-rpi-4-b.dtb\n",
            "[pi5]\ndevice_tree=bcm2712-rpi-5-b.dtb\n",
        ] {
            assert!(c.contains(want), "{want}: {c}");
        }
        assert!(c.ends_with("[all]\n"));
        assert_eq!(
            cmdline_txt("console=tty1 ", "0x1234abcd", 'b'),
            "console=tty1 root=PARTUUID=1234abcd-06 hearth.slot=b\n"
        );
        assert!(cmdline_txt("", "0x1234abcd", 'a').starts_with("root=PARTUUID=1234abcd-05 "));
    }

    #[test]
    fn bad_pi_recipes_are_refused() {
        assert!(recipe().validate().is_ok());
        let mut r = recipe();
        r.device_trees[0].board = "pi9".into();
        assert!(r.validate().unwrap_err().contains("unknown board"));
        let mut r = recipe();
        r.device_trees[1].file = "../etc/passwd.dtb".into();
        assert!(r.validate().unwrap_err().contains("bad file"));
        let mut r = recipe();
        r.config.push("[pi3]".into());
        assert!(r.validate().unwrap_err().contains("[filter]"));
        let mut r = recipe();
        r.boot_mib = 8;
        assert!(r.validate().unwrap_err().contains("boot_mib"));
    }
}
