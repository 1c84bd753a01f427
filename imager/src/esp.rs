//! The EFI system partition: systemd-boot, its loader configuration, one boot entry per slot
//! with boot counting, kernels and initramfs; built as a FAT image with `mkfs.vfat` and
//! mtools (no mounting).
//!
//! # Design
//! Entries are named `hearth-a+3.conf` / `hearth-b+3.conf`: systemd-boot's boot assessment
//! renames the entry before each try (`+3` → `+2-1` → `+1-2` → `+0-3`) and sorts entries
//! with no tries left after all others. `loader.conf` has **no `default`**: a `default`
//! pattern is matched against entry ids (the name without the counter) in sorted order,
//! bad entries included, so it would pin a slot that has used up its tries (systemd-boot
//! 252, `config_default_entry_select`). Without it the first entry in sort order boots,
//! and the order is set by `sort-key`: the slot to boot carries [`SORT_KEY_ACTIVE`], the
//! other [`SORT_KEY_FALLBACK`] (both entries have a sort key, so they compare by it
//! first). A fresh image boots slot A with its counter; after three failed tries A sorts
//! last and B boots. `hearth-init` marks the running slot good after `hearthd` is healthy
//! by renaming its entry to `hearth-<slot>.conf` (no counter: never counted again). An
//! update would write the new slot's entry as `hearth-<slot>+3.conf` with the active key
//! and give the running slot's entry the fallback key. Each slot has its own kernel and initramfs under `/hearth/<slot>/` so an OTA
//! can replace one slot's without touching the other. `mkfs.vfat --invariant -i <id>` and
//! mtools under `SOURCE_DATE_EPOCH` (file times are set to it first) make the FAT
//! reproducible.

use std::path::{Path, PathBuf};

use crate::ids;
use crate::tool::{self, ToolError};

/// `sort-key` of the slot systemd-boot should try first (sorts before [`SORT_KEY_FALLBACK`]).
pub(crate) const SORT_KEY_ACTIVE: &str = "hearth-1-active";
/// `sort-key` of the other slot.
pub(crate) const SORT_KEY_FALLBACK: &str = "hearth-2-fallback";
/// Boot tries of a slot not yet marked good (the `+N` in the entry name).
pub(crate) const TRIES: u32 = 3;

/// `loader/loader.conf`: no `default` (see the module docs), no menu.
pub(crate) fn loader_conf() -> String {
    "timeout 0\nconsole-mode keep\neditor no\n".to_owned()
}

/// File name of a slot's entry in a new image: `hearth-a+3.conf`.
pub(crate) fn entry_name(slot: char) -> String {
    format!("hearth-{slot}+{TRIES}.conf")
}

/// One slot's boot entry; `active` chooses its sort key.
pub(crate) fn entry(version: &str, slot: char, active: bool, cmdline: &str) -> String {
    let options = format!("{} hearth.slot={slot}", cmdline.trim());
    let key = if active {
        SORT_KEY_ACTIVE
    } else {
        SORT_KEY_FALLBACK
    };
    format!(
        "title Hearth {version} (slot {slot})\nsort-key {key}\nversion {version}\n\
         linux /hearth/{slot}/vmlinuz\ninitrd /hearth/{slot}/initrd.img\noptions {}\n",
        options.trim()
    )
}

/// Inputs of the ESP.
#[derive(Debug)]
pub(crate) struct EspInputs<'a> {
    pub(crate) boot_efi: &'a Path,
    /// Where systemd-boot goes on the ESP (`EFI/BOOT/BOOTX64.EFI`, `EFI/BOOT/BOOTAA64.EFI`).
    pub(crate) boot_efi_dest: &'a str,
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
        (inp.boot_efi.to_owned(), inp.boot_efi_dest),
        (inp.kernel.to_owned(), "hearth/a/vmlinuz"),
        (inp.initramfs.to_owned(), "hearth/a/initrd.img"),
        (inp.kernel.to_owned(), "hearth/b/vmlinuz"),
        (inp.initramfs.to_owned(), "hearth/b/initrd.img"),
    ];
    let mut texts = vec![(
        "loader.conf".to_owned(),
        "loader/loader.conf".to_owned(),
        loader_conf(),
    )];
    for (slot, active) in [('a', true), ('b', false)] {
        let name = entry_name(slot);
        let text = entry(inp.version, slot, active, inp.cmdline);
        texts.push((name.clone(), format!("loader/entries/{name}"), text));
    }
    for (name, dest, text) in &texts {
        let p = work.join(name);
        std::fs::write(&p, text).map_err(io("writing", &p))?;
        files.push((p, dest.as_str()));
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
        let e = entry("0.1.0", 'b', false, "console=ttyS0 ");
        assert_eq!(
            e,
            "title Hearth 0.1.0 (slot b)\nsort-key hearth-2-fallback\nversion 0.1.0\n\
             linux /hearth/b/vmlinuz\ninitrd /hearth/b/initrd.img\n\
             options console=ttyS0 hearth.slot=b\n"
        );
        assert_eq!(entry_name('a'), "hearth-a+3.conf");
    }

    #[test]
    fn slot_a_sorts_first_and_nothing_pins_a_slot() {
        // systemd-boot compares sort keys with strcmp: the active slot must come first.
        assert!(SORT_KEY_ACTIVE < SORT_KEY_FALLBACK);
        assert!(entry("1", 'a', true, "").contains(&format!("sort-key {SORT_KEY_ACTIVE}\n")));
        // A `default` pattern would be matched even by an entry with no tries left.
        assert!(!loader_conf().lines().any(|l| l.starts_with("default")));
    }
}
