//! Block devices and the data partition: finding partitions by GPT name through sysfs,
//! deciding what to do with the data partition, creating it on first boot.
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
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(dev) = find_partition(Path::new("/sys/class/block"), label) {
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
/// Never fails: every problem ends in [`DataState::Volatile`] with a console message.
pub(crate) fn prepare_data(root_device: &str, m: &mut dyn Mounter) -> DataState {
    let state = match find_partition(Path::new("/sys/class/block"), DATA_LABEL) {
        Some(device) => DataState::Partition { device },
        None => match create_data_partition(root_device) {
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
}

fn create_data_partition(root_device: &str) -> Result<String, CreateError> {
    let disk = parent_disk(Path::new("/sys/class/block"), root_device)
        .ok_or_else(|| CreateError::NoDisk(root_device.to_owned()))?;
    log_info!("first boot: creating the data partition on {disk}");
    // The image may have been written to a larger disk: move the backup GPT to its end.
    cmd::run("sfdisk", &["--relocate", "gpt-bak-std", &disk], None)?;
    cmd::run(
        "sfdisk",
        // --no-reread: the disk is in use (the root slot is mounted); sfdisk then tells the
        // kernel about the new partition only (BLKPG) instead of re-reading the table.
        &["--append", "--no-reread", "--wipe", "never", &disk],
        Some("name=data, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n"),
    )?;
    // Tell the kernel about the new partition alone (the others are in use, so the table
    // cannot be re-read as a whole). It is the last one: number = existing count + 1.
    let number = partition_count(Path::new("/sys/class/block"), &disk) + 1;
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
        if let Some(p) = partition_by_number(Path::new("/sys/class/block"), &disk, number) {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
}
