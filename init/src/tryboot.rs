//! A/B slots on the Raspberry Pi: the firmware's own `autoboot.txt` + `tryboot`.
//!
//! # Design
//! The imager writes `autoboot.txt` on the `autoboot` FAT partition (MBR partition 1):
//! `[all] tryboot_a_b=1 boot_partition=2 [tryboot] boot_partition=3`. The firmware boots the
//! `[all]` partition (the **committed** slot); after a reboot with the one-shot `tryboot`
//! flag (`reboot(2)` `LINUX_REBOOT_CMD_RESTART2` with `"0 tryboot"`) it boots the
//! `[tryboot]` partition once, and clears the flag before starting, so any reset after that
//! boots the committed slot again. Slot A's firmware partition is 2, slot B's 3.
//!
//! States ([`states`]), for the running slot:
//! - its partition is the committed one: **good**;
//! - it is the `[tryboot]` partition and the firmware reports a tryboot
//!   (`/proc/device-tree/chosen/bootloader/tryboot` = 1, or the property is absent):
//!   **trying**, with no tries left after this one (`Trying{left: 0, done: 1}`: if
//!   `hearthd` never becomes healthy, a plain reboot returns to the committed slot);
//! - anything else (a hand-edited `autoboot.txt`): **unknown**, nothing is changed.
//!
//! Marking good ([`commit`], [`mark_good`]) rewrites `autoboot.txt` with the running slot's
//! partition under `[all]` and the other slot's under `[tryboot]` (the swap the Raspberry Pi
//! documentation describes), keeping every other line. FAT has no atomic rename-over: the
//! new text goes to `autoboot.tmp`, is synced, then renamed over `autoboot.txt` (vfat
//! replaces the directory entry in one sector write), then the directory is synced. A power
//! cut between the two leaves either file complete; a missing `autoboot.txt` would make the
//! firmware boot its default partition (2, slot A), never a half-written file.
//!
//! Trying the other slot ([`reboot_tryboot`]) is requested by writing [`TRYBOOT_REQUEST`]
//! before asking for a reboot (the future updater does this after installing the other
//! slot); `hearth-init` then reboots with `"0 tryboot"`.
//!
//! # Limitations
//! The reboot argument reaches the firmware only through the Raspberry Pi kernel's
//! firmware driver (a downstream patch); mainline Linux (Debian's kernel) ignores it, so on
//! Debian's kernel the trial reboot is a plain reboot into the committed slot. Nothing here
//! can be booted on this machine: the decisions and the text edits are unit-tested, the
//! edit also on a real FAT16 image through mtools.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cmdline::Slot;
use crate::mbr;
use crate::slot::{Counter, SlotError, SlotState};

/// The firmware's A/B file on the `autoboot` partition.
pub(crate) const AUTOBOOT_TXT: &str = "autoboot.txt";
/// Temporary name of the new `autoboot.txt` while it is written.
const AUTOBOOT_TMP: &str = "autoboot.tmp";
/// The firmware reads at most this many bytes of `autoboot.txt`.
pub(crate) const AUTOBOOT_MAX: usize = 512;
/// Set by the firmware to 1 (big-endian u32) when this boot is a tryboot.
pub(crate) const TRYBOOT_FLAG: &str = "/proc/device-tree/chosen/bootloader/tryboot";
/// When this file exists at a reboot, `hearth-init` reboots with `"0 tryboot"`.
pub(crate) const TRYBOOT_REQUEST: &str = "/run/hearth/tryboot";

/// The firmware partition of `slot` (2 or 3).
pub(crate) fn boot_partition(slot: Slot) -> u32 {
    match slot {
        Slot::A => mbr::BOOT_A,
        Slot::B => mbr::BOOT_B,
    }
}

/// A section of `autoboot.txt` (the firmware's conditional filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    All,
    Tryboot,
    /// `[none]` or a filter we do not evaluate (`[pi4]`, …).
    Other,
}

fn section(line: &str) -> Option<Section> {
    let name = line.trim().strip_prefix('[')?.strip_suffix(']')?;
    Some(match name.trim() {
        "all" => Section::All,
        "tryboot" => Section::Tryboot,
        _ => Section::Other,
    })
}

fn boot_partition_value(line: &str) -> Option<Option<u32>> {
    let (key, value) = line.split_once('=')?;
    (key.trim() == "boot_partition").then(|| value.trim().parse().ok())
}

/// The partition the firmware boots with `autoboot.txt` = `text`, with or without the
/// tryboot flag: the last `boot_partition=` among the lines whose section applies (lines
/// before any filter belong to `[all]`). `None` if none applies or the value is no number.
pub(crate) fn effective_partition(text: &str, tryboot: bool) -> Option<u32> {
    let mut current = Section::All;
    let mut found = None;
    for line in text.lines() {
        if let Some(s) = section(line) {
            current = s;
            continue;
        }
        let applies = match current {
            Section::All => true,
            Section::Tryboot => tryboot,
            Section::Other => false,
        };
        if applies && let Some(v) = boot_partition_value(line) {
            found = v;
        }
    }
    found
}

/// States of (`slot`, the other slot) given `autoboot.txt` and the firmware's tryboot flag
/// (`None`: not reported).
pub(crate) fn states(text: &str, slot: Slot, tryboot: Option<bool>) -> (SlotState, SlotState) {
    let committed = effective_partition(text, false);
    let tried = effective_partition(text, true);
    let state = |s: Slot, running: bool| {
        let part = Some(boot_partition(s));
        if committed == part {
            SlotState::Good
        } else if running && tried == part && tryboot != Some(false) {
            SlotState::Trying(Counter { left: 0, done: 1 })
        } else {
            SlotState::Unknown
        }
    };
    (state(slot, true), state(slot.other(), false))
}

/// The new `autoboot.txt` committing `slot`: `boot_partition=` of `[all]` (and of lines
/// before any filter) becomes `slot`'s partition, that of `[tryboot]` the other slot's;
/// missing ones are added; other lines are kept. `None` if `text` commits `slot` already.
pub(crate) fn commit(text: &str, slot: Slot) -> Result<Option<String>, SlotError> {
    let (own, other) = (boot_partition(slot), boot_partition(slot.other()));
    let mut out = String::new();
    let mut current = Section::All;
    let (mut all_done, mut tryboot_done) = (false, false);
    let mut seen_all_header = false;
    for line in text.lines() {
        if let Some(s) = section(line) {
            // Leaving an [all] section without boot_partition: add it at its end.
            if current == Section::All && !all_done && seen_all_header {
                out.push_str(&format!("boot_partition={own}\n"));
                all_done = true;
            }
            if current == Section::Tryboot && !tryboot_done {
                out.push_str(&format!("boot_partition={other}\n"));
                tryboot_done = true;
            }
            seen_all_header |= s == Section::All;
            current = s;
            out.push_str(line);
            out.push('\n');
            continue;
        }
        match (current, boot_partition_value(line)) {
            (Section::All, Some(_)) => {
                out.push_str(&format!("boot_partition={own}\n"));
                all_done = true;
            }
            (Section::Tryboot, Some(_)) => {
                out.push_str(&format!("boot_partition={other}\n"));
                tryboot_done = true;
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if current == Section::Tryboot && !tryboot_done {
        out.push_str(&format!("boot_partition={other}\n"));
        tryboot_done = true;
    }
    if !all_done {
        let line = format!("boot_partition={own}\n");
        if current == Section::All {
            out.push_str(&line);
        } else {
            // Lines before the first filter belong to [all] and come before [tryboot].
            out.insert_str(0, &line);
        }
    }
    if !tryboot_done {
        out.push_str(&format!("[tryboot]\nboot_partition={other}\n[all]\n"));
    }
    // The result must say what we mean, whatever the input held.
    if effective_partition(&out, false) != Some(own)
        || effective_partition(&out, true) != Some(other)
    {
        return Err(SlotError::Autoboot(format!(
            "cannot commit partition {own}: {AUTOBOOT_TXT} has boot_partition lines in \
             sections hearth-init does not evaluate"
        )));
    }
    if out.len() > AUTOBOOT_MAX {
        return Err(SlotError::Autoboot(format!(
            "the new {AUTOBOOT_TXT} would be {} bytes; the firmware reads {AUTOBOOT_MAX}",
            out.len()
        )));
    }
    let unchanged = effective_partition(text, false) == Some(own)
        && effective_partition(text, true) == Some(other);
    Ok((!unchanged).then_some(out))
}

/// Reads the firmware's tryboot flag (a big-endian u32 device tree property); `None` if it
/// is absent or malformed.
pub(crate) fn read_flag(path: &Path) -> Option<bool> {
    let bytes = std::fs::read(path).ok()?;
    let word: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(word) != 0)
}

/// Reads `autoboot.txt` from the mounted `autoboot` partition at `root`.
pub(crate) fn read_autoboot(root: &Path) -> Result<String, SlotError> {
    let path = root.join(AUTOBOOT_TXT);
    std::fs::read_to_string(&path).map_err(|source| SlotError::Read { path, source })
}

/// Commits `slot` in `root/autoboot.txt` ([`commit`]), writing the new file beside it and
/// renaming it over. Returns the old text, or `None` if `slot` was committed already.
pub(crate) fn mark_good(root: &Path, slot: Slot) -> Result<Option<String>, SlotError> {
    let old = read_autoboot(root)?;
    let Some(new) = commit(&old, slot)? else {
        return Ok(None);
    };
    let (tmp, path) = (root.join(AUTOBOOT_TMP), root.join(AUTOBOOT_TXT));
    let write_err = |path: &PathBuf| {
        let path = path.clone();
        move |source| SlotError::Write { path, source }
    };
    let mut f = std::fs::File::create(&tmp).map_err(write_err(&tmp))?;
    f.write_all(new.as_bytes()).map_err(write_err(&tmp))?;
    f.sync_all().map_err(write_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|source| SlotError::Rename {
        from: tmp.clone(),
        to: path.clone(),
        source,
    })?;
    if let Ok(dir) = std::fs::File::open(root) {
        let _ = dir.sync_all();
    }
    Ok(Some(old))
}

/// Reboots with `"0 tryboot"` (`LINUX_REBOOT_CMD_RESTART2`): the firmware boots the
/// `[tryboot]` partition once. Returns only on failure.
#[allow(unsafe_code)]
pub(crate) fn reboot_tryboot() -> nix::Error {
    use nix::libc;
    const ARG: &std::ffi::CStr = c"0 tryboot";
    // SAFETY: reboot(2) with the documented magic numbers and RESTART2, whose argument is a
    // NUL-terminated string the kernel copies (at most 256 bytes); ARG is a static C string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_reboot,
            libc::LINUX_REBOOT_MAGIC1,
            libc::LINUX_REBOOT_MAGIC2,
            libc::LINUX_REBOOT_CMD_RESTART2,
            ARG.as_ptr(),
        )
    };
    if r == 0 {
        nix::Error::UnknownErrno
    } else {
        nix::Error::last()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Exactly what `imager/src/rpi.rs` (`autoboot_txt`) writes.
    const IMAGER: &str = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n";
    const B_COMMITTED: &str =
        "[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2\n";
    const TRYING: SlotState = SlotState::Trying(Counter { left: 0, done: 1 });

    #[test]
    fn effective_partitions() {
        assert_eq!(effective_partition(IMAGER, false), Some(2));
        assert_eq!(effective_partition(IMAGER, true), Some(3));
        // Lines before any filter are [all]; other filters are not ours to evaluate.
        assert_eq!(effective_partition("boot_partition=3\n", true), Some(3));
        assert_eq!(
            effective_partition("boot_partition=2\n[pi4]\nboot_partition=9\n", false),
            Some(2)
        );
        assert_eq!(
            effective_partition("[tryboot]\nboot_partition=3\n", false),
            None
        );
        assert_eq!(effective_partition("boot_partition=x\n", false), None);
    }

    #[test]
    fn state_table() {
        use Slot::*;
        use SlotState::*;
        // The fresh image: A committed, B the tryboot target.
        assert_eq!(states(IMAGER, A, Some(false)), (Good, Unknown));
        assert_eq!(states(IMAGER, A, None), (Good, Unknown));
        // B booted through tryboot: on trial; A is the committed fallback.
        assert_eq!(states(IMAGER, B, Some(true)), (TRYING, Good));
        assert_eq!(states(IMAGER, B, None), (TRYING, Good));
        // B booted without the flag while A is committed: not a trial we understand.
        assert_eq!(states(IMAGER, B, Some(false)), (Unknown, Good));
        // After B was committed.
        assert_eq!(states(B_COMMITTED, B, Some(false)), (Good, Unknown));
        assert_eq!(states(B_COMMITTED, A, Some(true)), (TRYING, Good));
        assert_eq!(states("", A, Some(true)), (Unknown, Unknown));
        // A failing trial reboots (to the committed slot); a good slot stays up.
        assert_eq!(
            crate::slot::on_unhealthy(TRYING, Good),
            crate::slot::OnUnhealthy::Reboot
        );
        assert_eq!(
            crate::slot::on_unhealthy(Good, Unknown),
            crate::slot::OnUnhealthy::StayUp
        );
    }

    #[test]
    fn commits_swap_and_keep_other_lines() {
        assert_eq!(
            commit(IMAGER, Slot::B).unwrap().as_deref(),
            Some(B_COMMITTED)
        );
        assert_eq!(
            commit(B_COMMITTED, Slot::A).unwrap().as_deref(),
            Some(IMAGER)
        );
        assert_eq!(commit(IMAGER, Slot::A).unwrap(), None);
        let hand = "# mine\n[all]\ntryboot_a_b=1\nboot_partition=2\n[pi4]\nfoo=1\n\
                    [tryboot]\nboot_partition=3\n[all]\nbar=2\n";
        let new = commit(hand, Slot::B).unwrap().unwrap();
        assert_eq!(
            new,
            "# mine\n[all]\ntryboot_a_b=1\nboot_partition=3\n[pi4]\nfoo=1\n\
             [tryboot]\nboot_partition=2\n[all]\nbar=2\n"
        );
        // Missing entries are added.
        let new = commit("[all]\ntryboot_a_b=1\n", Slot::B).unwrap().unwrap();
        assert_eq!(
            new,
            "[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2\n[all]\n"
        );
        let new = commit("[tryboot]\n", Slot::A).unwrap().unwrap();
        assert_eq!(
            (
                effective_partition(&new, false),
                effective_partition(&new, true)
            ),
            (Some(2), Some(3))
        );
    }

    #[test]
    fn commit_refuses_what_it_cannot_express() {
        let long = format!("[all]\n#{}\nboot_partition=2\n", "x".repeat(600));
        let err = commit(&long, Slot::B).unwrap_err().to_string();
        assert!(err.contains("firmware reads 512"), "{err}");
    }

    #[test]
    fn mark_good_on_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let err = mark_good(dir.path(), Slot::B).unwrap_err().to_string();
        assert!(err.contains("autoboot.txt"), "{err}");
        std::fs::write(dir.path().join(AUTOBOOT_TXT), IMAGER).unwrap();
        assert_eq!(
            mark_good(dir.path(), Slot::B).unwrap().as_deref(),
            Some(IMAGER)
        );
        assert_eq!(read_autoboot(dir.path()).unwrap(), B_COMMITTED);
        assert!(!dir.path().join(AUTOBOOT_TMP).exists());
        assert_eq!(mark_good(dir.path(), Slot::B).unwrap(), None);
    }

    #[test]
    fn tryboot_flag_property() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tryboot");
        assert_eq!(read_flag(&p), None);
        std::fs::write(&p, [0, 0, 0, 1]).unwrap();
        assert_eq!(read_flag(&p), Some(true));
        std::fs::write(&p, [0, 0, 0, 0]).unwrap();
        assert_eq!(read_flag(&p), Some(false));
        std::fs::write(&p, [1]).unwrap();
        assert_eq!(read_flag(&p), None);
    }

    /// Needs mkfs.vfat and mtools: the imager's FAT16 `autoboot` partition (same size,
    /// same text); the committed text written back through mtools reads back as slot B
    /// committed, and the file stays the only one on the partition.
    #[test]
    fn commit_round_trip_on_a_real_fat16() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("autoboot.img");
        let txt = dir.path().join(AUTOBOOT_TXT);
        std::fs::write(&txt, IMAGER).unwrap();
        let run = |p: &str, args: &[&std::ffi::OsStr]| crate::cmd::run(p, args, None).unwrap();
        run(
            "mkfs.vfat",
            &[
                "-F".as_ref(),
                "16".as_ref(),
                "-n".as_ref(),
                "HEARTH-AB".as_ref(),
                "-C".as_ref(),
                img.as_os_str(),
                "16384".as_ref(),
            ],
        );
        let on_fat = |name: &str| format!("::{name}");
        run(
            "mcopy",
            &[
                "-i".as_ref(),
                img.as_os_str(),
                txt.as_os_str(),
                on_fat(AUTOBOOT_TXT).as_ref(),
            ],
        );
        let read = || {
            run(
                "mtype",
                &[
                    "-i".as_ref(),
                    img.as_os_str(),
                    on_fat(AUTOBOOT_TXT).as_ref(),
                ],
            )
        };
        let text = read();
        let new = commit(&text, Slot::B).unwrap().unwrap();
        std::fs::write(&txt, &new).unwrap();
        run(
            "mcopy",
            &[
                "-o".as_ref(),
                "-i".as_ref(),
                img.as_os_str(),
                txt.as_os_str(),
                on_fat(AUTOBOOT_TXT).as_ref(),
            ],
        );
        let back = read();
        assert_eq!(back, B_COMMITTED);
        assert_eq!(states(&back, Slot::B, Some(false)).0, SlotState::Good);
        assert_eq!(states(&back, Slot::A, Some(true)).0, TRYING);
        let listing = run(
            "mdir",
            &["-b".as_ref(), "-i".as_ref(), img.as_os_str(), "::".as_ref()],
        );
        assert_eq!(listing.trim(), "::/autoboot.txt", "{listing}");
    }
}
