//! The GPT disk image: layout (pure), the `sfdisk` script, and writing the partitions.
//!
//! # Design
//! The layout is computed in 512-byte sectors with 1 MiB alignment: ESP, `root-a`, `root-b`,
//! then 1 MiB for the backup GPT. The `data` partition is not in the image: `hearth-init`
//! appends it on first boot, in whatever space the real disk has. `sfdisk` writes the GPT
//! on the (sparse) image file with fixed `label-id` and partition `uuid`s derived from the
//! inputs; the partition contents are then written at their offsets (`conv=notrunc`
//! semantics: seek and write, file length unchanged).
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
/// GPT type "Linux root (x86-64)" (Discoverable Partitions Specification).
const TYPE_ROOT_X86_64: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";

/// One partition of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) name: &'static str,
    pub(crate) type_guid: &'static str,
    pub(crate) start_mib: u64,
    pub(crate) size_mib: u64,
}

/// The image's partitions and total size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) parts: Vec<Part>,
    pub(crate) total_mib: u64,
}

/// ESP, root-a, root-b, aligned to 1 MiB, with 1 MiB at each end for the GPTs.
pub(crate) fn layout(esp_mib: u64, slot_mib: u64) -> Layout {
    let mut start = 1;
    let mut parts = Vec::new();
    for (name, type_guid, size_mib) in [
        ("esp", TYPE_ESP, esp_mib),
        ("root-a", TYPE_ROOT_X86_64, slot_mib),
        ("root-b", TYPE_ROOT_X86_64, slot_mib),
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
        parts,
        total_mib: start + 1,
    }
}

/// The `sfdisk` input for a layout, with GUIDs derived from `seed`.
pub(crate) fn sfdisk_script(l: &Layout, seed: &[u8]) -> String {
    let mut s = format!(
        "label: gpt\nlabel-id: {}\nunit: sectors\nfirst-lba: 2048\nsector-size: 512\n\n",
        ids::guid(seed, "disk")
    );
    for p in &l.parts {
        s.push_str(&format!(
            "start={}, size={}, type={}, uuid={}, name=\"{}\"\n",
            p.start_mib * MIB / SECTOR,
            p.size_mib * MIB / SECTOR,
            p.type_guid,
            ids::guid(seed, p.name),
            p.name
        ));
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
        let l = layout(128, 768);
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
        let err = assemble(&out, &layout(2, 2), b"s", &[("esp", &big)], 0).unwrap_err();
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
        let l = layout(2, 4);
        assemble(&out, &l, b"s", &[("esp", &esp)], 0).unwrap();
        assert_eq!(std::fs::metadata(&out).unwrap().len(), l.total_mib * MIB);
        let dump = tool::run("sfdisk", &["--dump".as_ref(), out.as_os_str()], 0, None).unwrap();
        assert!(dump.contains(&ids::guid(b"s", "disk")), "{dump}");
        assert!(dump.contains("name=\"root-a\""), "{dump}");
        let bytes = std::fs::read(&out).unwrap();
        let at = usize::try_from(MIB).unwrap();
        assert_eq!(&bytes[at..at + 11], b"ESP-CONTENT");
    }
}
