//! The EFI system partition: systemd-boot, its loader configuration, one boot entry per slot
//! with boot counting, kernels and initramfs; built as a FAT image with `mkfs.vfat` and
//! mtools (no mounting).
//!
//! # Design
//! Entries are named `hearth-a+3.conf` / `hearth-b+3.conf`: systemd-boot's boot assessment
//! counts down the `+3` on each try; an entry reaching `+0` is tried last, so the other
//! slot boots. Each slot has its own kernel and initramfs under `/hearth/<slot>/` so an OTA
//! can replace one slot's without touching the other. `mkfs.vfat --invariant -i <id>` and
//! mtools under `SOURCE_DATE_EPOCH` (file times are set to it first) make the FAT
//! reproducible.

use std::path::{Path, PathBuf};

use crate::ids;
use crate::tool::{self, ToolError};

/// `loader/loader.conf`.
pub(crate) fn loader_conf() -> String {
    "default hearth-a*\ntimeout 0\nconsole-mode keep\neditor no\n".to_owned()
}

/// One slot's boot entry.
pub(crate) fn entry(version: &str, slot: char, cmdline: &str) -> String {
    let options = format!("{} hearth.slot={slot}", cmdline.trim());
    format!(
        "title Hearth {version} (slot {slot})\nversion {version}\nlinux /hearth/{slot}/vmlinuz\n\
         initrd /hearth/{slot}/initrd.img\noptions {}\n",
        options.trim()
    )
}

/// Inputs of the ESP.
#[derive(Debug)]
pub(crate) struct EspInputs<'a> {
    pub(crate) boot_efi: &'a Path,
    pub(crate) kernel: &'a Path,
    pub(crate) initramfs: &'a Path,
    pub(crate) version: &'a str,
    pub(crate) cmdline: &'a str,
    pub(crate) size_mib: u64,
}

/// Building the ESP failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EspError {
    /// A staging file could not be written.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A tool failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
}

/// Builds the FAT image at `out`, staging small files in `work`.
pub(crate) fn build(
    out: &Path,
    work: &Path,
    inp: &EspInputs<'_>,
    seed: &[u8],
    epoch: u64,
) -> Result<(), EspError> {
    let io = |op, path: &Path| {
        let path = path.to_owned();
        move |source| EspError::Io { op, path, source }
    };
    std::fs::create_dir_all(work).map_err(io("creating", work))?;
    let mut files: Vec<(PathBuf, &str)> = vec![
        (inp.boot_efi.to_owned(), "EFI/BOOT/BOOTX64.EFI"),
        (inp.kernel.to_owned(), "hearth/a/vmlinuz"),
        (inp.initramfs.to_owned(), "hearth/a/initrd.img"),
        (inp.kernel.to_owned(), "hearth/b/vmlinuz"),
        (inp.initramfs.to_owned(), "hearth/b/initrd.img"),
    ];
    let texts = [
        ("loader.conf", "loader/loader.conf", loader_conf()),
        (
            "hearth-a+3.conf",
            "loader/entries/hearth-a+3.conf",
            entry(inp.version, 'a', inp.cmdline),
        ),
        (
            "hearth-b+3.conf",
            "loader/entries/hearth-b+3.conf",
            entry(inp.version, 'b', inp.cmdline),
        ),
    ];
    for (name, dest, text) in &texts {
        let p = work.join(name);
        std::fs::write(&p, text).map_err(io("writing", &p))?;
        files.push((p, dest));
    }
    let _ = std::fs::remove_file(out);
    let kib = (inp.size_mib * 1024).to_string();
    let vol = ids::volume_id(seed, "esp");
    let out_s = out.to_string_lossy().into_owned();
    tool::run(
        "mkfs.vfat",
        &[
            "-C",
            &out_s,
            &kib,
            "-F",
            "32",
            "-n",
            "HEARTH-ESP",
            "-i",
            &vol,
            "--invariant",
        ],
        epoch,
        None,
    )?;
    for dir in [
        "::EFI",
        "::EFI/BOOT",
        "::loader",
        "::loader/entries",
        "::hearth",
        "::hearth/a",
        "::hearth/b",
    ] {
        tool::run("mmd", &["-i", &out_s, dir], epoch, None)?;
    }
    for (src, dest) in &files {
        let src_s = src.to_string_lossy().into_owned();
        tool::run(
            "mcopy",
            &["-i", &out_s, "-o", &src_s, &format!("::{dest}")],
            epoch,
            None,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_carry_slot_and_files() {
        let e = entry("0.1.0", 'b', "console=ttyS0 ");
        assert_eq!(
            e,
            "title Hearth 0.1.0 (slot b)\nversion 0.1.0\nlinux /hearth/b/vmlinuz\n\
             initrd /hearth/b/initrd.img\noptions console=ttyS0 hearth.slot=b\n"
        );
        assert!(loader_conf().contains("default hearth-a*"));
    }
}
