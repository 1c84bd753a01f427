//! Block devices and the data partition: finding partitions by GPT name or number through
//! sysfs, deciding what to do with the data partition, creating it on first boot (GPT:
//! appended at the end of the disk; MBR, the Raspberry Pi: a logical partition in the
//! grown extended partition, see [`mbr`]).
//!
//! # Design
//! Discovery reads `/sys/class/block/*/uevent` (`PARTNAME=`, `DEVNAME=`): there is no udev
//! and no `/dev/disk/by-partlabel`. The functions take the sysfs directory as a parameter so
//! tests run against a fake tree.
//!
//! # Invariants
//! [`prepare_data`] formats only a partition it has just created itself. A `data` partition
//! that exists but does not mount is reported and left alone; the boot continues with
//! volatile state (tmpfs) so the user can reach the UI and decide.
//!
//! # Limitations
//! First-boot creation needs `sfdisk` and `mkfs.ext4` in the root (packages `fdisk`,
//! `e2fsprogs`); without them the boot continues volatile. No LUKS, no btrfs, no resize of
//! an existing data filesystem yet.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cmd;
use crate::log::{log_error, log_info, log_warn};
use crate::mbr;
use crate::mounts::{self, DataState, Mounter};

/// GPT name of the data partition.
pub(crate) const DATA_LABEL: &str = "data";

/// Finds the device node (`/dev/vda2`) of the partition named `label`.
pub(crate) fn find_partition(sys_class_block: &Path, label: &str) -> Option<String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(sys_class_block)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        let Ok(uevent) = std::fs::read_to_string(entry.join("uevent")) else {
            continue;
        };
        let mut name = None;
        let mut devname = None;
        for line in uevent.lines() {
            if let Some(v) = line.strip_prefix("PARTNAME=") {
                name = Some(v);
            } else if let Some(v) = line.strip_prefix("DEVNAME=") {
                devname = Some(v);
            }
        }
        if name == Some(label)
            && let Some(dev) = devname
        {
            return Some(format!("/dev/{dev}"));
        }
    }
    None
}

/// Waits up to `timeout` for a partition to appear (drivers probe asynchronously).
pub(crate) fn wait_for_partition(label: &str, timeout: Duration) -> Option<String> {
    wait_for(timeout, || {
        find_partition(Path::new("/sys/class/block"), label)
    })
}

/// Polls `find` every 50 ms until it finds something or `timeout` passes.
pub(crate) fn wait_for(
    timeout: Duration,
    mut find: impl FnMut() -> Option<String>,
) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(dev) = find() {
            return Some(dev);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The whole disk holding partition `part` (`/dev/vda2` → `/dev/vda`), via sysfs.
pub(crate) fn parent_disk(sys_class_block: &Path, part: &str) -> Option<String> {
    let name = part.strip_prefix("/dev/")?;
    let real = std::fs::canonicalize(sys_class_block.join(name)).ok()?;
    let disk = real.parent()?.file_name()?.to_str()?;
    Some(format!("/dev/{disk}"))
}

/// The device node of partition number `number` of `disk` (`/dev/vda`, 4 → `/dev/vda4`).
pub(crate) fn partition_by_number(
    sys_class_block: &Path,
    disk: &str,
    number: usize,
) -> Option<String> {
    let name = disk.strip_prefix("/dev/")?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(sys_class_block.join(name))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    entries.into_iter().find_map(|p| {
        let n = std::fs::read_to_string(p.join("partition")).ok()?;
        let file_name = p.file_name()?.to_string_lossy().into_owned();
        (n.trim().parse::<usize>().ok()? == number).then(|| format!("/dev/{file_name}"))
    })
}

/// Number of partitions of `disk` (`/dev/vda`) the kernel knows.
pub(crate) fn partition_count(sys_class_block: &Path, disk: &str) -> usize {
    let Some(name) = disk.strip_prefix("/dev/") else {
        return 0;
    };
    std::fs::read_dir(sys_class_block.join(name))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().join("partition").exists())
                .count()
        })
        .unwrap_or(0)
}

/// Mounts the data filesystem on [`mounts::DATA_DIR`], creating the partition on first boot.
/// `table` is the root disk's partition table: GPT finds `data` by name, MBR (the Raspberry
/// Pi) as logical partition [`mbr::DATA`]. Never fails: every problem ends in
/// [`DataState::Volatile`] with a console message.
pub(crate) fn prepare_data(
    root_device: &str,
    table: Option<mbr::Table>,
    m: &mut dyn Mounter,
) -> DataState {
    let sys = Path::new("/sys/class/block");
    let existing = match table {
        Some(mbr::Table::Mbr { .. }) => parent_disk(sys, root_device)
            .and_then(|disk| partition_by_number(sys, &disk, mbr_number(mbr::DATA))),
        _ => find_partition(sys, DATA_LABEL),
    };
    let state = match existing {
        Some(device) => DataState::Partition { device },
        None => match create_data_partition(root_device, table) {
            Ok(device) => DataState::Partition { device },
            Err(e) => {
                log_error!("first boot: creating the data partition failed: {e}");
                DataState::Volatile
            }
        },
    };
    if let DataState::Partition { device } = &state {
        match mounts::execute(&mounts::data(&state), m) {
            Ok(()) => {
                log_info!("data partition {device} mounted on {}", mounts::DATA_DIR);
                return state;
            }
            Err(e) => {
                log_error!(
                    "data partition {device} exists but does not mount ({e}). It is NOT \
                     formatted: it may hold your data. Continuing with volatile state \
                     (lost at reboot); repair or reset it explicitly."
                );
            }
        }
    }
    log_warn!("no persistent data: using a tmpfs on {}", mounts::DATA_DIR);
    let volatile = DataState::Volatile;
    if let Err(e) = mounts::execute(&mounts::data(&volatile), m) {
        log_error!("mounting volatile data: {e}");
    }
    volatile
}

fn mbr_number(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Creating the data partition failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CreateError {
    /// The disk of the root partition could not be found in sysfs.
    #[error("finding the disk of {0} in /sys/class/block")]
    NoDisk(String),
    /// A tool failed.
    #[error(transparent)]
    Cmd(#[from] cmd::CmdError),
    /// The new partition did not show up.
    #[error("partition {label} on {disk} did not appear after sfdisk")]
    NotVisible { disk: String, label: &'static str },
    /// The MBR is not one `data` may be added to.
    #[error("{disk}: {source}")]
    Plan {
        disk: String,
        #[source]
        source: mbr::PlanError,
    },
    /// sfdisk did not make the partition the plan asked for.
    #[error("{disk}: sfdisk did not create logical partition 7 (type 83) as planned")]
    Misplaced { disk: String },
    /// The disk's size could not be read from sysfs.
    #[error("reading the size of {disk} from {path}")]
    Size { disk: String, path: PathBuf },
}

fn create_data_partition(
    root_device: &str,
    table: Option<mbr::Table>,
) -> Result<String, CreateError> {
    let sys = Path::new("/sys/class/block");
    let disk =
        parent_disk(sys, root_device).ok_or_else(|| CreateError::NoDisk(root_device.to_owned()))?;
    log_info!("first boot: creating the data partition on {disk}");
    let number = match table {
        Some(mbr::Table::Mbr { .. }) => {
            let size_path = sys.join(disk.trim_start_matches("/dev/")).join("size");
            let sectors = std::fs::read_to_string(&size_path)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| CreateError::Size {
                    disk: disk.clone(),
                    path: size_path,
                })?;
            append_mbr_data(&disk, sectors)?;
            mbr_number(mbr::DATA)
        }
        _ => {
            append_gpt_data(&disk)?;
            // It is the last one: number = existing count + 1.
            partition_count(sys, &disk) + 1
        }
    };
    // Tell the kernel about the new partition alone (the others are in use, so the table
    // cannot be re-read as a whole).
    if let Err(e) = cmd::run(
        "partx",
        &["--add", "--nr", &number.to_string(), &disk],
        None,
    ) {
        log_warn!("{e} (the kernel may know the partition already)");
    }
    // A partition added through BLKPG carries no PARTNAME until the next boot re-reads the
    // GPT, so look it up by number.
    let deadline = Instant::now() + Duration::from_secs(5);
    let part = loop {
        if let Some(p) = partition_by_number(sys, &disk, number) {
            break p;
        }
        if Instant::now() >= deadline {
            return Err(CreateError::NotVisible {
                disk: disk.clone(),
                label: DATA_LABEL,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    cmd::run("mkfs.ext4", &["-q", "-L", "hearth-data", &part], None)?;
    log_info!("first boot: data partition {part} created");
    Ok(part)
}

/// GPT: moves the backup GPT to the end of a disk larger than the image, then appends
/// `data` in the free space.
fn append_gpt_data(disk: &str) -> Result<(), CreateError> {
    cmd::run("sfdisk", &["--relocate", "gpt-bak-std", disk], None)?;
    cmd::run(
        "sfdisk",
        // --no-reread: the disk is in use (the root slot is mounted); sfdisk then tells the
        // kernel about the new partition only (BLKPG) instead of re-reading the table.
        &["--append", "--no-reread", "--wipe", "never", disk],
        Some("name=data, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n"),
    )?;
    Ok(())
}

/// MBR (Raspberry Pi): checks the table is the image's ([`mbr::plan_data`]), grows the
/// extended partition to the end of the disk (`disk_sectors` long) and appends `data` as
/// logical partition [`mbr::DATA`]. The kernel is not told (`partx` does that after). Works
/// on an image file too, which is how it is tested.
pub(crate) fn append_mbr_data(disk: &str, disk_sectors: u64) -> Result<(), CreateError> {
    let dump = mbr::parse_dump(&cmd::run("sfdisk", &["--dump", disk], None)?);
    let plan = mbr::plan_data(&dump, disk_sectors).map_err(|source| CreateError::Plan {
        disk: disk.to_owned(),
        source,
    })?;
    // --no-reread: the disk is in use; --no-tell-kernel: the kernel's view of the extended
    // partition does not matter and the other partitions are busy.
    let quiet = ["--no-reread", "--no-tell-kernel", "--wipe", "never"];
    if plan.grow_extended {
        let mut args = vec!["-N", "4"];
        args.extend(quiet);
        args.push(disk);
        // Same start, as large as possible.
        cmd::run("sfdisk", &args, Some(",+\n"))?;
    }
    let mut args = vec!["--append"];
    args.extend(quiet);
    args.push(disk);
    cmd::run("sfdisk", &args, Some("type=83\n"))?;
    // Check that sfdisk put it where the plan said (the next free slot of a table that
    // changed under us would be a different partition).
    let after = mbr::parse_dump(&cmd::run("sfdisk", &["--dump", disk], None)?);
    let made = after.parts.iter().find(|p| p.number == mbr::DATA);
    // (sfdisk may align the end down by up to 1 MiB on a disk of odd size.)
    if made.is_none_or(|p| p.kind != "83" || p.size + 2048 < plan.sectors) {
        return Err(CreateError::Misplaced {
            disk: disk.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mounts::DataState;

    #[test]
    fn finds_partitions_by_gpt_name() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("devices/vda");
        for (name, label) in [("vda1", "esp"), ("vda2", "root-a"), ("vda3", "root-b")] {
            let p = disk.join(name);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(
                p.join("uevent"),
                format!("MAJOR=254\nDEVNAME={name}\nDEVTYPE=partition\nPARTNAME={label}\n"),
            )
            .unwrap();
            std::os::unix::fs::symlink(&p, dir.path().join(name)).unwrap();
        }
        std::fs::create_dir_all(disk.join("x")).unwrap();
        std::os::unix::fs::symlink(&disk, dir.path().join("vda")).unwrap();
        std::fs::write(disk.join("uevent"), "DEVNAME=vda\nDEVTYPE=disk\n").unwrap();
        assert_eq!(
            find_partition(dir.path(), "root-b").as_deref(),
            Some("/dev/vda3")
        );
        assert_eq!(find_partition(dir.path(), "data"), None);
        assert_eq!(
            parent_disk(dir.path(), "/dev/vda2").as_deref(),
            Some("/dev/vda")
        );
        assert_eq!(find_partition(Path::new("/nonexistent"), "x"), None);
        for name in ["vda1", "vda2"] {
            std::fs::write(disk.join(name).join("partition"), "1").unwrap();
        }
        assert_eq!(partition_count(dir.path(), "/dev/vda"), 2);
        std::fs::write(disk.join("vda2").join("partition"), "2\n").unwrap();
        assert_eq!(
            partition_by_number(dir.path(), "/dev/vda", 2).as_deref(),
            Some("/dev/vda2")
        );
        assert_eq!(partition_by_number(dir.path(), "/dev/vda", 4), None);
    }

    fn sfdisk_dump(img: &Path) -> String {
        cmd::run("sfdisk", &["--dump".as_ref(), img.as_os_str()], None).unwrap()
    }

    /// Needs `sfdisk`: the imager's Pi table on a 1200 MiB "card"; first boot's table edit
    /// grows the extended partition and appends logical partition 7 up to the end, and
    /// touches nothing else (the disk id, hence every PARTUUID, is kept).
    #[test]
    fn mbr_data_partition_on_a_real_table() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("card.img");
        let sectors = 1200 * 2048;
        std::fs::File::create(&img)
            .unwrap()
            .set_len(sectors * 512)
            .unwrap();
        cmd::run(
            "sfdisk",
            &["-q".as_ref(), img.as_os_str()],
            Some(mbr::PI_TABLE),
        )
        .unwrap();
        let before = mbr::parse_dump(&sfdisk_dump(&img));
        let disk = img.to_str().unwrap();
        append_mbr_data(disk, sectors).unwrap();
        let after = mbr::parse_dump(&sfdisk_dump(&img));
        assert_eq!(after.label_id, "0x1234abcd");
        assert_eq!(after.parts.len(), 7, "{after:?}");
        for (b, a) in before.parts.iter().zip(&after.parts) {
            if b.number == mbr::EXTENDED {
                assert_eq!((a.start, a.start + a.size), (b.start, sectors), "{a:?}");
            } else {
                assert_eq!(a, b);
            }
        }
        let data = &after.parts[6];
        assert_eq!(data.number, mbr::DATA);
        assert_eq!(data.kind, "83");
        assert_eq!(data.start, 505_856 + 204_800 + 2048);
        assert_eq!(data.start + data.size, sectors);
        assert_eq!(
            mbr::read_table(&img).unwrap(),
            Some(mbr::Table::Mbr {
                disk_id: 0x1234_abcd
            })
        );
        // A second run (partition 7 exists) refuses and changes nothing.
        let err = append_mbr_data(disk, sectors).unwrap_err().to_string();
        assert!(err.contains("already in the partition table"), "{err}");
        assert_eq!(mbr::parse_dump(&sfdisk_dump(&img)), after);
    }

    /// Needs `sfdisk`: the image written to a card no larger than itself gets no data
    /// partition, and its table is left as it was.
    #[test]
    fn mbr_without_room_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("small.img");
        let sectors = 710_656 + 100 * 2048;
        std::fs::File::create(&img)
            .unwrap()
            .set_len(sectors * 512)
            .unwrap();
        cmd::run(
            "sfdisk",
            &["-q".as_ref(), img.as_os_str()],
            Some(mbr::PI_TABLE),
        )
        .unwrap();
        let before = sfdisk_dump(&img);
        let err = append_mbr_data(img.to_str().unwrap(), sectors)
            .unwrap_err()
            .to_string();
        assert!(err.contains("99 MiB free after root-b"), "{err}");
        assert_eq!(sfdisk_dump(&img), before);
    }

    /// Records mounts instead of making them.
    #[derive(Default)]
    struct RecordingMounter(Vec<String>);

    impl Mounter for RecordingMounter {
        fn mkdir(&mut self, _: &Path) -> Result<(), mounts::MountError> {
            Ok(())
        }
        fn mount(&mut self, spec: &mounts::MountSpec) -> Result<(), mounts::MountError> {
            self.0.push(format!(
                "{} {} {}",
                spec.fstype,
                spec.source,
                spec.target.display()
            ));
            Ok(())
        }
    }

    /// Detaches the loop device and unmounts on drop.
    struct LoopDisk {
        dev: String,
        mounted: Option<PathBuf>,
    }

    impl Drop for LoopDisk {
        fn drop(&mut self) {
            if let Some(m) = &self.mounted {
                let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
            }
            let _ = cmd::run("losetup", &["-d", &self.dev], None);
        }
    }

    /// Needs root, loop devices, `mksquashfs`, `partx`, `mkfs.ext4`: the Raspberry Pi image's
    /// table on a 1 GiB loop device whose `root-a` squashfs is mounted (in use, as on a
    /// booted Pi). The real first-boot path ([`prepare_data`] with the MBR table) grows the
    /// extended partition, appends logical partition 7, makes the kernel see it, formats
    /// it and mounts it; the next boot finds partition 7 and creates nothing.
    #[test]
    fn needs_root_mbr_first_boot_on_a_loop_device() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("card.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(1024 << 20)
            .unwrap();
        cmd::run(
            "sfdisk",
            &["-q".as_ref(), img.as_os_str()],
            Some(mbr::PI_TABLE),
        )
        .unwrap();
        // A real root-a: a squashfs at partition 5's offset.
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        let sq = dir.path().join("root.sqfs");
        cmd::run(
            "mksquashfs",
            &[
                tree.as_os_str(),
                sq.as_os_str(),
                "-quiet".as_ref(),
                "-noappend".as_ref(),
            ],
            None,
        )
        .unwrap();
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
            f.seek(SeekFrom::Start(299_008 * 512)).unwrap();
            f.write_all(&std::fs::read(&sq).unwrap()).unwrap();
        }
        let dev = cmd::run(
            "losetup",
            &[
                "-f".as_ref(),
                "-P".as_ref(),
                "--show".as_ref(),
                img.as_os_str(),
            ],
            None,
        )
        .unwrap()
        .trim()
        .to_owned();
        let mut disk = LoopDisk { dev, mounted: None };
        // This host's kernel does not scan partition tables itself (with or without -P):
        // tell it about them through BLKPG, as `partx` does for the data partition.
        if partition_count(Path::new("/sys/class/block"), &disk.dev) == 0 {
            cmd::run("partx", &["--add", &disk.dev], None).unwrap();
        }
        let root = wait_for(Duration::from_secs(5), || {
            partition_by_number(Path::new("/sys/class/block"), &disk.dev, 5)
        })
        .unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        nix::mount::mount(
            Some(root.as_str()),
            &mnt,
            Some("squashfs"),
            nix::mount::MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .unwrap();
        disk.mounted = Some(mnt);
        let table = mbr::read_table(Path::new(&disk.dev)).unwrap();
        assert_eq!(
            table,
            Some(mbr::Table::Mbr {
                disk_id: 0x1234_abcd
            })
        );

        let mut m = RecordingMounter::default();
        let state = prepare_data(&root, table, &mut m);
        let data = format!("{}p7", disk.dev);
        assert_eq!(
            state,
            DataState::Partition {
                device: data.clone()
            }
        );
        assert_eq!(m.0, [format!("ext4 {data} {}", mounts::DATA_DIR)]);
        let label = cmd::run("blkid", &["-o", "value", "-s", "LABEL", &data], None).unwrap();
        assert_eq!(label.trim(), "hearth-data");
        let dump = mbr::parse_dump(&cmd::run("sfdisk", &["--dump", &disk.dev], None).unwrap());
        let p7 = dump.parts.iter().find(|p| p.number == mbr::DATA).unwrap();
        assert_eq!(p7.start + p7.size, 1024 * 2048);

        // Next boot: partition 7 is found, nothing is created or formatted.
        let mut m = RecordingMounter::default();
        assert_eq!(
            prepare_data(&root, table, &mut m),
            DataState::Partition {
                device: data.clone()
            }
        );
        assert_eq!(m.0.len(), 1);
        assert_eq!(
            mbr::parse_dump(&cmd::run("sfdisk", &["--dump", &disk.dev], None).unwrap()),
            dump
        );
    }
}
