//! The disk image: layout (pure), the `sfdisk` script, and writing the partitions.
//!
//! # Design
//! The layout is computed in 512-byte sectors with 1 MiB alignment. UEFI targets get a GPT:
//! ESP, `root-a`, `root-b`, then 1 MiB for the backup GPT. The Raspberry Pi gets an MBR
//! (its boot ROM reads MBR on every Pi 4 EEPROM; see `rpi.rs`): 1 `autoboot` (FAT16,
//! `autoboot.txt`), 2 `boot-a` and 3 `boot-b` (FAT32 firmware partitions), 4 an extended
//! partition holding 5 `root-a` and 6 `root-b` (each logical partition 1 MiB after the
//! previous one, room for its EBR). The `data` partition is not in the image:
//! `hearth-init` appends it on first boot, in whatever space the real disk has. `sfdisk`
//! writes the table on the (sparse) image file with a fixed `label-id` and (GPT) partition
//! `uuid`s derived from the inputs; the partition contents are then written at their
//! offsets (`conv=notrunc` semantics: seek and write, file length unchanged).
//!
//! # Rejected alternatives
//! Loop devices + `dd`: needs privileges and a free loop device for no gain; a hand-written
//! GPT writer: sfdisk is the well-tested tool for this.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::ids;
use crate::tool::{self, ToolError};

const SECTOR: u64 = 512;
const MIB: u64 = 1 << 20;
/// GPT type of an EFI system partition.
const TYPE_ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// MBR type: FAT16 (LBA).
pub(crate) const MBR_FAT16: &str = "e";
/// MBR type: FAT32 (LBA).
pub(crate) const MBR_FAT32: &str = "c";
/// MBR type: extended partition (LBA).
const MBR_EXTENDED: &str = "f";
/// MBR type: Linux.
const MBR_LINUX: &str = "83";

/// The partition table kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Gpt,
    Mbr,
}

/// One partition of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) name: &'static str,
    /// GPT type GUID, or MBR type byte in hex.
    pub(crate) type_guid: &'static str,
    pub(crate) start_mib: u64,
    pub(crate) size_mib: u64,
}

/// The image's partitions and total size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) table: Table,
    /// In table order (MBR: primaries 1–4, then the logical partitions 5…).
    pub(crate) parts: Vec<Part>,
    pub(crate) total_mib: u64,
}

/// GPT: ESP, root-a, root-b (of GPT type `root_type`), aligned to 1 MiB, with 1 MiB at
/// each end for the GPTs.
pub(crate) fn layout(esp_mib: u64, slot_mib: u64, root_type: &'static str) -> Layout {
    let mut start = 1;
    let mut parts = Vec::new();
    for (name, type_guid, size_mib) in [
        ("esp", TYPE_ESP, esp_mib),
        ("root-a", root_type, slot_mib),
        ("root-b", root_type, slot_mib),
    ] {
        parts.push(Part {
            name,
            type_guid,
            start_mib: start,
            size_mib,
        });
        start += size_mib;
    }
    Layout {
        table: Table::Gpt,
        parts,
        total_mib: start + 1,
    }
}

/// MBR partition number of `root-a` in [`mbr_layout`] (`root-b` is the next one).
pub(crate) const MBR_ROOT_A: u32 = 5;

/// MBR (Raspberry Pi): `autoboot` (FAT16), `boot-a`, `boot-b` (FAT32), an extended
/// partition holding `root-a` and `root-b`. The image ends with the last slot.
pub(crate) fn mbr_layout(autoboot_mib: u64, boot_mib: u64, slot_mib: u64) -> Layout {
    let mut parts = Vec::new();
    let mut start = 1;
    for (name, type_guid, size_mib) in [
        ("autoboot", MBR_FAT16, autoboot_mib),
        ("boot-a", MBR_FAT32, boot_mib),
        ("boot-b", MBR_FAT32, boot_mib),
    ] {
        parts.push(Part {
            name,
            type_guid,
            start_mib: start,
            size_mib,
        });
        start += size_mib;
    }
    // Each logical partition starts 1 MiB after the previous end: its EBR goes there.
    let ext_start = start;
    let ext_size = 2 * (1 + slot_mib);
    parts.push(Part {
        name: "extended",
        type_guid: MBR_EXTENDED,
        start_mib: ext_start,
        size_mib: ext_size,
    });
    for (i, name) in [(0, "root-a"), (1, "root-b")] {
        parts.push(Part {
            name,
            type_guid: MBR_LINUX,
            start_mib: ext_start + 1 + i * (slot_mib + 1),
            size_mib: slot_mib,
        });
    }
    Layout {
        table: Table::Mbr,
        parts,
        total_mib: ext_start + ext_size,
    }
}

/// MBR disk identifier (`0x` + 8 hex digits, never zero) derived from `seed`; partition
/// `n`'s PARTUUID is `<8 hex digits>-0n`.
pub(crate) fn mbr_disk_id(seed: &[u8]) -> String {
    let id = ids::volume_id(seed, "mbr-disk");
    if id == "00000000" {
        "0x00000001".to_owned()
    } else {
        format!("0x{id}")
    }
}

/// The `sfdisk` input for a layout, with GUIDs (or the MBR disk id) derived from `seed`.
pub(crate) fn sfdisk_script(l: &Layout, seed: &[u8]) -> String {
    let mut s = match l.table {
        Table::Gpt => format!(
            "label: gpt\nlabel-id: {}\nunit: sectors\nfirst-lba: 2048\nsector-size: 512\n\n",
            ids::guid(seed, "disk")
        ),
        Table::Mbr => format!(
            "label: dos\nlabel-id: {}\nunit: sectors\nsector-size: 512\n\n",
            mbr_disk_id(seed)
        ),
    };
    for p in &l.parts {
        let (start, size) = (p.start_mib * MIB / SECTOR, p.size_mib * MIB / SECTOR);
        s.push_str(&match l.table {
            Table::Gpt => format!(
                "start={start}, size={size}, type={}, uuid={}, name=\"{}\"\n",
                p.type_guid,
                ids::guid(seed, p.name),
                p.name
            ),
            Table::Mbr => format!("start={start}, size={size}, type={}\n", p.type_guid),
        });
    }
    s
}

/// Building the disk image failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DiskError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A partition's content is larger than the partition.
    #[error(
        "{content} ({size} bytes) does not fit partition {part} ({capacity} bytes); raise the size in the recipe"
    )]
    TooBig {
        content: PathBuf,
        size: u64,
        part: &'static str,
        capacity: u64,
    },
    /// sfdisk failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DiskError {
    let path = path.to_owned();
    move |source| DiskError::Io { op, path, source }
}

/// Creates the image at `out` and writes `contents` (partition name → file) into it.
pub(crate) fn assemble(
    out: &Path,
    l: &Layout,
    seed: &[u8],
    contents: &[(&'static str, &Path)],
    epoch: u64,
) -> Result<(), DiskError> {
    // Check sizes first: a full or too-small target fails before anything is written.
    for (name, src) in contents {
        let size = std::fs::metadata(src)
            .map_err(io("reading size of", src))?
            .len();
        if let Some(p) = l.parts.iter().find(|p| p.name == *name)
            && size > p.size_mib * MIB
        {
            return Err(DiskError::TooBig {
                content: src.to_path_buf(),
                size,
                part: p.name,
                capacity: p.size_mib * MIB,
            });
        }
    }
    let _ = std::fs::remove_file(out);
    let file = File::create(out).map_err(io("creating", out))?;
    file.set_len(l.total_mib * MIB).map_err(io("sizing", out))?;
    drop(file);
    tool::run(
        "sfdisk",
        &[
            "--quiet".as_ref(),
            "--no-reread".as_ref(),
            "--no-tell-kernel".as_ref(),
            out.as_os_str(),
        ],
        epoch,
        Some(&sfdisk_script(l, seed)),
    )?;
    let mut disk = OpenOptions::new()
        .write(true)
        .open(out)
        .map_err(io("opening", out))?;
    for (name, src) in contents {
        let Some(p) = l.parts.iter().find(|p| p.name == *name) else {
            continue;
        };
        println!("    writing {} into partition {}", src.display(), p.name);
        disk.seek(SeekFrom::Start(p.start_mib * MIB))
            .map_err(io("seeking in", out))?;
        let mut f = File::open(src).map_err(io("opening", src))?;
        std::io::copy(&mut f, &mut disk).map_err(io("writing into", out))?;
    }
    disk.sync_all().map_err(io("syncing", out))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_script() {
        let l = layout(128, 768, "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709");
        assert_eq!(l.total_mib, 1 + 128 + 768 * 2 + 1);
        assert_eq!(l.parts[1].start_mib, 129);
        let s = sfdisk_script(&l, b"seed");
        assert!(s.starts_with("label: gpt\nlabel-id: "), "{s}");
        assert!(s.contains("start=2048, size=262144, type=C12A7328"), "{s}");
        assert!(
            s.contains("start=264192, size=1572864, type=4F68BCE3"),
            "{s}"
        );
        assert!(s.contains("name=\"root-b\""), "{s}");
        assert_eq!(s, sfdisk_script(&l, b"seed"));
    }

    #[test]
    fn too_big_content_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        File::create(&big).unwrap().set_len(3 * MIB).unwrap();
        let out = dir.path().join("disk.img");
        let l = layout(2, 2, "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709");
        let err = assemble(&out, &l, b"s", &[("esp", &big)], 0).unwrap_err();
        assert!(
            matches!(err, DiskError::TooBig { part: "esp", .. }),
            "{err}"
        );
        assert!(!out.exists());
    }

    /// Needs `sfdisk` (ci/deps.sh installs fdisk).
    #[test]
    fn assembles_a_gpt_image_that_sfdisk_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let esp = dir.path().join("esp");
        std::fs::write(&esp, b"ESP-CONTENT").unwrap();
        let out = dir.path().join("disk.img");
        let l = layout(2, 4, "B921B045-1DF0-41C3-AF44-4C6F280D3FAE");
        assemble(&out, &l, b"s", &[("esp", &esp)], 0).unwrap();
        assert_eq!(std::fs::metadata(&out).unwrap().len(), l.total_mib * MIB);
        let dump = tool::run("sfdisk", &["--dump".as_ref(), out.as_os_str()], 0, None).unwrap();
        assert!(dump.contains(&ids::guid(b"s", "disk")), "{dump}");
        assert!(dump.contains("name=\"root-a\""), "{dump}");
        let bytes = std::fs::read(&out).unwrap();
        let at = usize::try_from(MIB).unwrap();
        assert_eq!(&bytes[at..at + 11], b"ESP-CONTENT");
    }

    /// Needs `sfdisk`: the MBR layout as the Raspberry Pi firmware and Linux will see it.
    #[test]
    fn mbr_image_has_fat_primaries_and_logical_slots() {
        let l = mbr_layout(16, 64, 100);
        assert_eq!(l.total_mib, 1 + 16 + 64 * 2 + 2 * 101);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::write(&root, b"hsqs-ROOT").unwrap();
        let out = dir.path().join("pi.img");
        assemble(&out, &l, b"s", &[("root-b", &root)], 0).unwrap();
        let json = tool::run("sfdisk", &["--json".as_ref(), out.as_os_str()], 0, None).unwrap();
        let id = mbr_disk_id(b"s");
        assert!(json.contains("\"label\": \"dos\""), "{json}");
        assert!(json.contains(&format!("\"id\": \"{id}\"")), "{json}");
        let dump = tool::run("sfdisk", &["--dump".as_ref(), out.as_os_str()], 0, None).unwrap();
        let rows: Vec<&str> = dump.lines().filter(|l| l.contains(" : start=")).collect();
        assert_eq!(rows.len(), 6, "{dump}");
        for (n, (row, ty)) in rows
            .iter()
            .zip(["e", "c", "c", "f", "83", "83"])
            .enumerate()
        {
            assert!(row.contains(&format!("pi.img{} ", n + 1)), "{row}");
            assert!(row.ends_with(&format!("type={ty}")), "{row}");
        }
        let b = &l.parts[5];
        assert_eq!(b.name, "root-b");
        let row6 = rows[5].replace(' ', "");
        assert!(
            row6.contains(&format!("start={},", b.start_mib * 2048)),
            "{dump}"
        );
        let bytes = std::fs::read(&out).unwrap();
        let at = usize::try_from(b.start_mib * MIB).unwrap();
        assert_eq!(&bytes[at..at + 9], b"hsqs-ROOT");
    }
}
