//! MBR disks (the Raspberry Pi image): telling MBR from GPT, finding a partition by its MBR
//! `PARTUUID`, and planning the `data` partition that first boot adds to the extended
//! partition.
//!
//! # Design
//! The Pi image (`imager/src/disk.rs`, `mbr_layout`) is fixed: 1 `autoboot` (FAT16,
//! `autoboot.txt`), 2 `boot-a` and 3 `boot-b` (FAT32 firmware partitions), 4 an extended
//! partition ending right after 6 `root-b`, with 5 `root-a` and 6 `root-b` inside. All four
//! primary entries are used, so `data` can only be a logical partition: first boot grows
//! the extended partition to the end of the disk and appends logical partition 7 there
//! ([`plan_data`] decides from `sfdisk --dump`, `devices` runs `sfdisk`).
//!
//! MBR partitions have no names: there is no `PARTNAME=` in sysfs, and no udev to make
//! `/dev/disk/by-partuuid`. An MBR `PARTUUID` is `<disk id>-<nn>` (the 32-bit disk
//! signature at byte 440 of sector 0, in hex, and the partition number), so
//! [`find_by_partuuid`] reads sector 0 of each whole disk in sysfs and picks partition `nn`
//! of the one whose signature matches. [`parse_sector0`] also tells a GPT disk (a protective
//! entry of type `0xEE`) from an MBR one.
//!
//! # Invariants
//! [`plan_data`] refuses any table that is not the imager's shape (a table it does not
//! understand is never edited), a table that already has a partition 7, and a disk with
//! too little room.

use std::io::Read;
use std::path::Path;

/// Partition numbers of the Raspberry Pi layout (see `imager/src/disk.rs`).
pub(crate) const AUTOBOOT: u32 = 1;
/// Slot A's firmware partition (`boot-a`).
pub(crate) const BOOT_A: u32 = 2;
/// Slot B's firmware partition (`boot-b`).
pub(crate) const BOOT_B: u32 = 3;
/// The extended partition holding the logical ones.
pub(crate) const EXTENDED: u32 = 4;
/// Slot A's root squashfs (logical).
pub(crate) const ROOT_A: u32 = 5;
/// Slot B's root squashfs (logical).
pub(crate) const ROOT_B: u32 = 6;
/// The data partition (logical), created on first boot.
pub(crate) const DATA: u32 = 7;
/// Smallest data partition first boot creates: 256 MiB in 512-byte sectors.
pub(crate) const MIN_DATA_SECTORS: u64 = 256 * 2048;
/// Room left before a logical partition for its EBR (1 MiB, as the imager does).
const EBR_GAP_SECTORS: u64 = 2048;

/// The partition table of a disk, from its first sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    /// A GPT (sector 0 is a protective MBR).
    Gpt,
    /// A DOS/MBR table with its disk signature.
    Mbr { disk_id: u32 },
}

/// Reads the table kind from sector 0 (`None`: no `55 AA` boot signature, no table).
pub(crate) fn parse_sector0(sector: &[u8]) -> Option<Table> {
    if sector.len() < 512 || sector[510..512] != [0x55, 0xAA] {
        return None;
    }
    // Four 16-byte entries from byte 446; the type is at offset 4 of an entry.
    if (0..4).any(|i| sector[446 + 16 * i + 4] == 0xEE) {
        return Some(Table::Gpt);
    }
    let id = u32::from_le_bytes([sector[440], sector[441], sector[442], sector[443]]);
    Some(Table::Mbr { disk_id: id })
}

/// Reads sector 0 of `disk` (a device node or an image file) and parses it.
pub(crate) fn read_table(disk: &Path) -> std::io::Result<Option<Table>> {
    let mut sector = [0u8; 512];
    std::fs::File::open(disk)?.read_exact(&mut sector)?;
    Ok(parse_sector0(&sector))
}

/// An MBR `PARTUUID` (`1234abcd-05`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PartUuid {
    pub(crate) disk_id: u32,
    pub(crate) number: u32,
}

/// Parses `XXXXXXXX-NN` (8 hex digits, a dash, a decimal partition number 1–255); `None`
/// for anything else (a GPT partition GUID, say).
pub(crate) fn parse_partuuid(s: &str) -> Option<PartUuid> {
    let (id, n) = s.split_once('-')?;
    if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if n.is_empty() || n.len() > 3 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number: u32 = n.parse().ok()?;
    if !(1..=255).contains(&number) {
        return None;
    }
    Some(PartUuid {
        disk_id: u32::from_str_radix(id, 16).ok()?,
        number,
    })
}

/// The device node (`/dev/mmcblk0p5`) of the partition `id` names: partition `id.number`
/// of the whole disk in `sys_class_block` whose sector 0 (read from `dev_dir/<disk>`)
/// carries the MBR signature `id.disk_id`.
pub(crate) fn find_by_partuuid(
    sys_class_block: &Path,
    dev_dir: &Path,
    id: PartUuid,
) -> Option<String> {
    let mut disks: Vec<String> = std::fs::read_dir(sys_class_block)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            // Partitions have a `partition` file; whole disks do not.
            (!e.path().join("partition").exists()).then(|| e.file_name().into_string().ok())?
        })
        .collect();
    disks.sort();
    disks
        .into_iter()
        .find_map(|name| match read_table(&dev_dir.join(&name)).ok()?? {
            Table::Mbr { disk_id } if disk_id == id.disk_id => crate::devices::partition_by_number(
                sys_class_block,
                &format!("/dev/{name}"),
                usize::try_from(id.number).ok()?,
            ),
            _ => None,
        })
}

/// One row of `sfdisk --dump`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DumpPart {
    pub(crate) number: u32,
    pub(crate) start: u64,
    pub(crate) size: u64,
    /// The MBR type in hex (`83`, `f`) or the GPT type GUID.
    pub(crate) kind: String,
}

impl DumpPart {
    fn end(&self) -> u64 {
        self.start + self.size
    }
}

/// What `sfdisk --dump` says about a disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Dump {
    /// `dos` or `gpt`.
    pub(crate) label: String,
    /// `0x1234abcd` or a GUID.
    pub(crate) label_id: String,
    pub(crate) parts: Vec<DumpPart>,
}

impl Dump {
    fn part(&self, number: u32) -> Option<&DumpPart> {
        self.parts.iter().find(|p| p.number == number)
    }
}

/// Parses `sfdisk --dump` output. Rows look like
/// `/dev/mmcblk0p7 : start=      712704, size=     1744896, type=83`; the partition number
/// is the trailing digits of the device name. Rows that do not parse are skipped (and
/// then missing from the plan, which refuses).
pub(crate) fn parse_dump(text: &str) -> Dump {
    let mut dump = Dump::default();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("label: ") {
            dump.label = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("label-id: ") {
            dump.label_id = v.trim().to_owned();
        } else if let Some((dev, fields)) = line.split_once(" : ") {
            let digits: String = dev
                .trim()
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let (mut start, mut size, mut kind) = (None, None, None);
            for field in fields.split(',') {
                let Some((k, v)) = field.trim().split_once('=') else {
                    continue;
                };
                let v = v.trim();
                match k {
                    "start" => start = v.parse::<u64>().ok(),
                    "size" => size = v.parse::<u64>().ok(),
                    "type" => kind = Some(v.to_owned()),
                    _ => {}
                }
            }
            if let (Ok(number), Some(start), Some(size), Some(kind)) =
                (digits.parse::<u32>(), start, size, kind)
            {
                dump.parts.push(DumpPart {
                    number,
                    start,
                    size,
                    kind,
                });
            }
        }
    }
    dump
}

/// What first boot does to the MBR to make room for `data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DataPlan {
    /// Grow the extended partition to the end of the disk first (it ends at `root-b` in a
    /// fresh image; an interrupted earlier boot may have grown it already).
    pub(crate) grow_extended: bool,
    /// Sectors the new partition gets (from 1 MiB after `root-b` to the end of the disk).
    pub(crate) sectors: u64,
}

/// The table is not one first boot may add `data` to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PlanError {
    /// Not a DOS table.
    #[error("the disk has a {0:?} partition table, not the Raspberry Pi image's MBR")]
    NotMbr(String),
    /// A partition of the image's layout is missing or has the wrong type.
    #[error(
        "partition {number} is missing or not {want} (the image's layout is: 1-3 FAT, \
         4 extended, 5 root-a, 6 root-b); not editing a table I do not understand"
    )]
    Layout { number: u32, want: &'static str },
    /// Partition 7 is in the table (the kernel did not show it: not ours to format).
    #[error(
        "partition {DATA} is already in the partition table but not known to the kernel; \
         leaving it alone"
    )]
    DataExists,
    /// Too little room after `root-b`.
    #[error(
        "only {free_mib} MiB free after root-b; the data partition needs at least {} MiB \
         (flash the image to a larger disk)",
        MIN_DATA_SECTORS / 2048
    )]
    NoRoom { free_mib: u64 },
}

/// Decides how to add `data` (logical partition [`DATA`]) to a disk of `disk_sectors`
/// 512-byte sectors whose table is `dump`.
pub(crate) fn plan_data(dump: &Dump, disk_sectors: u64) -> Result<DataPlan, PlanError> {
    if dump.label != "dos" {
        return Err(PlanError::NotMbr(dump.label.clone()));
    }
    let want = |number: u32, kinds: &[&str], want: &'static str| {
        dump.part(number)
            .filter(|p| kinds.iter().any(|k| p.kind.eq_ignore_ascii_case(k)))
            .ok_or(PlanError::Layout { number, want })
    };
    let extended = want(EXTENDED, &["5", "f", "85"], "an extended partition")?;
    let root_a = want(ROOT_A, &["83"], "a Linux partition (root-a)")?;
    let root_b = want(ROOT_B, &["83"], "a Linux partition (root-b)")?;
    for p in [root_a, root_b] {
        if p.start < extended.start || p.end() > extended.end() {
            return Err(PlanError::Layout {
                number: p.number,
                want: "inside the extended partition",
            });
        }
    }
    if dump.part(DATA).is_some() {
        return Err(PlanError::DataExists);
    }
    let start = root_b.end() + EBR_GAP_SECTORS;
    // An MBR cannot describe sectors beyond 2^32; the rest of a bigger disk stays unused.
    let end = disk_sectors.min(u64::from(u32::MAX));
    let sectors = end.saturating_sub(start);
    if sectors < MIN_DATA_SECTORS {
        return Err(PlanError::NoRoom {
            free_mib: sectors / 2048,
        });
    }
    Ok(DataPlan {
        grow_extended: extended.end() < end,
        sectors,
    })
}

/// The imager's Pi layout (`disk::mbr_layout(16, 64, 100)`: autoboot 16 MiB, boot 64 MiB,
/// slots 100 MiB) with disk id `0x1234abcd`, as sfdisk input, for tests on real images.
#[cfg(test)]
pub(crate) const PI_TABLE: &str = "label: dos\nlabel-id: 0x1234abcd\nunit: sectors\n\
    sector-size: 512\n\nstart=2048, size=32768, type=e\nstart=34816, size=131072, type=c\n\
    start=165888, size=131072, type=c\nstart=296960, size=413696, type=f\n\
    start=299008, size=204800, type=83\nstart=505856, size=204800, type=83\n";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sector0(id: u32, first_type: u8) -> Vec<u8> {
        let mut s = vec![0u8; 512];
        s[440..444].copy_from_slice(&id.to_le_bytes());
        s[446 + 4] = first_type;
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    }

    #[test]
    fn sector0_kinds() {
        assert_eq!(
            parse_sector0(&sector0(0x1234_abcd, 0x0e)),
            Some(Table::Mbr {
                disk_id: 0x1234_abcd
            })
        );
        assert_eq!(parse_sector0(&sector0(7, 0xEE)), Some(Table::Gpt));
        let mut blank = sector0(7, 0x0e);
        blank[511] = 0;
        assert_eq!(parse_sector0(&blank), None);
        assert_eq!(parse_sector0(&[0u8; 100]), None);
    }

    #[test]
    fn partuuids() {
        assert_eq!(
            parse_partuuid("1234abcd-05"),
            Some(PartUuid {
                disk_id: 0x1234_abcd,
                number: 5
            })
        );
        assert_eq!(parse_partuuid("DEADBEEF-6").map(|p| p.number), Some(6));
        for bad in [
            "1234abcd",
            "1234abc-05",
            "1234abcdx-05",
            "1234abcd-",
            "1234abcd-00",
            "1234abcd-256",
            "1234abcd-0x5",
            "b921b045-1df0-41c3-af44-4c6f280d3fae",
        ] {
            assert_eq!(parse_partuuid(bad), None, "{bad}");
        }
    }

    fn dump(rows: &[(u32, u64, u64, &str)]) -> Dump {
        Dump {
            label: "dos".into(),
            label_id: "0x1234abcd".into(),
            parts: rows
                .iter()
                .map(|&(number, start, size, kind)| DumpPart {
                    number,
                    start,
                    size,
                    kind: kind.into(),
                })
                .collect(),
        }
    }

    fn pi() -> Vec<(u32, u64, u64, &'static str)> {
        vec![
            (1, 2048, 32768, "e"),
            (2, 34816, 131_072, "c"),
            (3, 165_888, 131_072, "c"),
            (4, 296_960, 413_696, "f"),
            (5, 299_008, 204_800, "83"),
            (6, 505_856, 204_800, "83"),
        ]
    }

    #[test]
    fn dump_rows() {
        let text = "label: dos\nlabel-id: 0x1234abcd\ndevice: /dev/mmcblk0\nunit: sectors\n\
                    sector-size: 512\n\n/dev/mmcblk0p1 : start=        2048, size=       32768, type=e, bootable\n\
                    /dev/mmcblk0p7 : start=      712704, size=     1744896, type=83\n\
                    garbage : nothing\n";
        let d = parse_dump(text);
        assert_eq!(d.label, "dos");
        assert_eq!(d.label_id, "0x1234abcd");
        assert_eq!(
            d,
            dump(&[(1, 2048, 32768, "e"), (7, 712_704, 1_744_896, "83")])
        );
    }

    #[test]
    fn data_plans() {
        let mib = 2048;
        // A fresh image on a 1200 MiB card: grow the extended partition, then append.
        let plan = plan_data(&dump(&pi()), 1200 * mib).unwrap();
        assert_eq!(
            plan,
            DataPlan {
                grow_extended: true,
                sectors: 1200 * mib - (505_856 + 204_800 + 2048)
            }
        );
        // Already grown by an interrupted boot: append only.
        let mut grown = pi();
        grown[3].2 = 1200 * mib - 296_960;
        assert!(!plan_data(&dump(&grown), 1200 * mib).unwrap().grow_extended);
        // The image alone, not flashed to anything bigger.
        assert_eq!(
            plan_data(&dump(&pi()), 710_656),
            Err(PlanError::NoRoom { free_mib: 0 })
        );
        let mut with_data = pi();
        with_data.push((7, 712_704, 600_000, "83"));
        assert_eq!(
            plan_data(&dump(&with_data), 1200 * mib),
            Err(PlanError::DataExists)
        );
        let mut no_ext = pi();
        no_ext[3].3 = "83";
        assert!(matches!(
            plan_data(&dump(&no_ext), 1200 * mib),
            Err(PlanError::Layout { number: 4, .. })
        ));
        let mut outside = pi();
        outside[5].1 = 900_000;
        assert!(matches!(
            plan_data(&dump(&outside), 1200 * mib),
            Err(PlanError::Layout { number: 6, .. })
        ));
        let mut gpt = dump(&pi());
        gpt.label = "gpt".into();
        let err = plan_data(&gpt, 1200 * mib).unwrap_err().to_string();
        assert!(err.contains("\"gpt\" partition table"), "{err}");
    }

    /// Needs `sfdisk`: a real MBR image in the imager's layout, found by PARTUUID through a
    /// fake sysfs tree whose `/dev` entries are image files.
    #[test]
    fn real_mbr_image_is_found_by_partuuid() {
        let dir = tempfile::tempdir().unwrap();
        let (sys, dev) = (dir.path().join("sys"), dir.path().join("dev"));
        std::fs::create_dir_all(&dev).unwrap();
        let img = dev.join("mmcblk0");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(400 << 20)
            .unwrap();
        crate::cmd::run("sfdisk", &["-q".as_ref(), img.as_os_str()], Some(PI_TABLE)).unwrap();
        // A GPT disk beside it, sorted first.
        let gpt = dev.join("loop0");
        std::fs::File::create(&gpt)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        crate::cmd::run(
            "sfdisk",
            &["-q".as_ref(), gpt.as_os_str()],
            Some("label: gpt\nsize=2048, name=x\n"),
        )
        .unwrap();
        for (disk, parts) in [("loop0", 1), ("mmcblk0", 6)] {
            let d = sys.join("devices").join(disk);
            for n in 1..=parts {
                let p = d.join(format!("{disk}p{n}"));
                std::fs::create_dir_all(&p).unwrap();
                std::fs::write(p.join("partition"), format!("{n}\n")).unwrap();
            }
            std::os::unix::fs::symlink(&d, sys.join(disk)).unwrap();
        }
        assert_eq!(read_table(&gpt).unwrap(), Some(Table::Gpt));
        assert_eq!(
            read_table(&img).unwrap(),
            Some(Table::Mbr {
                disk_id: 0x1234_abcd
            })
        );
        let find = |s: &str| find_by_partuuid(&sys, &dev, parse_partuuid(s).unwrap());
        assert_eq!(find("1234abcd-05").as_deref(), Some("/dev/mmcblk0p5"));
        assert_eq!(find("1234ABCD-06").as_deref(), Some("/dev/mmcblk0p6"));
        assert_eq!(find("1234abcd-07"), None);
        assert_eq!(find("1234abce-05"), None);
        let d = parse_dump(
            &crate::cmd::run("sfdisk", &["--dump".as_ref(), img.as_os_str()], None).unwrap(),
        );
        assert_eq!(d, dump(&pi()));
    }
}
