//! A/B slots and systemd-boot's boot counting: what state the running slot is in, what to
//! do when `hearthd` never becomes healthy, and marking the slot good.
//!
//! # Design
//! The imager writes one entry per slot on the ESP, `loader/entries/hearth-<slot>+3.conf`
//! (see `imager/src/esp.rs`). Before booting an entry with a counter, systemd-boot renames
//! it (`+3` → `+2-1` → … → `+0-3`); entries with no tries left sort after all others, so
//! the other slot boots. This module reads the entry names ([`parse_entry_name`],
//! [`scan`]) and turns them into a [`SlotState`]:
//! - `hearth-a.conf` (no counter): **good**, never counted again;
//! - `hearth-a+2-1.conf`: **trying**, 2 tries left after this one;
//! - `hearth-a+0-3.conf`: **bad** (no tries left) — this is the last try, or the slot was
//!   booted because nothing better was left.
//!
//! The running slot is marked good ([`mark_good`]: rename to `hearth-<slot>.conf`) only
//! after `hearthd` reported ready (see `supervise`). If it never does, [`on_unhealthy`]
//! decides: reboot while this slot has tries left or the other slot could still boot (good
//! or tries left); otherwise stay up (a reboot loop helps nobody; the console says why).
//!
//! The ESP is FAT: it is mounted only for the moment of reading or renaming
//! ([`BootFat`]), then synced and unmounted, so a power cut rarely finds it mounted.
//!
//! The Raspberry Pi has no systemd-boot: its firmware's `autoboot.txt` + `tryboot` play the
//! same part (see `tryboot`), and [`Scheme`] picks one or the other from the root disk's
//! partition table; [`read_states`] and [`commit_running`] are the scheme-independent entry
//! points the boot code uses.
//!
//! The state is published to `hearthd` in [`BOOT_STATE_FILE`] as JSON (the shape of
//! `hearth_rpc::methods::server::SlotInfo` plus `"init": "hearth-init"`, which also tells
//! `hearthd` that PID 1 is `hearth-init` and understands `SIGTERM`/`SIGINT`).
//!
//! # Invariants
//! Only the running slot's entry is ever renamed, and only to drop its counter.

use std::path::{Path, PathBuf};

use crate::cmdline::Slot;

/// Where `hearth-init` publishes the running slot's state for `hearthd`.
pub(crate) const BOOT_STATE_FILE: &str = "/run/hearth/boot.json";
/// Directory of the boot entries on the ESP.
pub(crate) const ENTRIES_DIR: &str = "loader/entries";

/// systemd-boot's counter in an entry name: `+LEFT-DONE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counter {
    pub(crate) left: u32,
    pub(crate) done: u32,
}

/// What the running slot's entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// No counter: marked good.
    Good,
    /// Being tried; `left` more tries after this boot.
    Trying(Counter),
    /// No tries left.
    Bad(Counter),
    /// No entry found (no ESP, `root=` override, hand-made entries): no boot counting.
    Unknown,
}

impl SlotState {
    fn of(counter: Option<Counter>) -> SlotState {
        match counter {
            None => SlotState::Good,
            Some(c) if c.left > 0 => SlotState::Trying(c),
            Some(c) => SlotState::Bad(c),
        }
    }

    /// Could systemd-boot pick this slot on a later boot before a bad one?
    fn can_boot(self) -> bool {
        matches!(self, SlotState::Good | SlotState::Trying(_))
    }

    /// Wire name (`good`, `trying`, `bad`, `unknown`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            SlotState::Good => "good",
            SlotState::Trying(_) => "trying",
            SlotState::Bad(_) => "bad",
            SlotState::Unknown => "unknown",
        }
    }
}

/// Parses `hearth-a.conf`, `hearth-b+3.conf`, `hearth-a+2-1.conf`; `None` for other files.
pub(crate) fn parse_entry_name(name: &str) -> Option<(Slot, Option<Counter>)> {
    let stem = name.strip_suffix(".conf")?;
    let rest = stem.strip_prefix("hearth-")?;
    let (slot, counter) = match rest.split_once('+') {
        None => (rest, None),
        Some((slot, c)) => {
            let (left, done) = c.split_once('-').unwrap_or((c, "0"));
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if !digits(left) || !digits(done) {
                return None;
            }
            let counter = Counter {
                left: left.parse().ok()?,
                done: done.parse().ok()?,
            };
            (slot, Some(counter))
        }
    };
    let slot = match slot {
        "a" => Slot::A,
        "b" => Slot::B,
        _ => return None,
    };
    Some((slot, counter))
}

/// The entries of both slots, as found on the ESP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Entries {
    /// `(file name, counter)` of slot A's entry.
    pub(crate) a: Option<(String, Option<Counter>)>,
    /// `(file name, counter)` of slot B's entry.
    pub(crate) b: Option<(String, Option<Counter>)>,
}

impl Entries {
    fn get(&self, slot: Slot) -> Option<&(String, Option<Counter>)> {
        match slot {
            Slot::A => self.a.as_ref(),
            Slot::B => self.b.as_ref(),
        }
    }

    /// State of `slot`'s entry.
    pub(crate) fn state(&self, slot: Slot) -> SlotState {
        self.get(slot)
            .map_or(SlotState::Unknown, |(_, c)| SlotState::of(*c))
    }
}

/// Reading or renaming entries failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SlotError {
    /// The entries directory could not be listed.
    #[error("listing boot entries in {path}: {source}")]
    List {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Renaming an entry failed.
    #[error("renaming boot entry {from} to {to}: {source}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The running slot has no entry.
    #[error("no boot entry for slot {slot:?} in {path}")]
    NoEntry { slot: Slot, path: PathBuf },
    /// The boot FAT partition (ESP, or the Pi's `autoboot`) could not be found or mounted.
    #[error("boot partition: {0}")]
    Esp(String),
    /// A file on the boot partition could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `autoboot.txt` cannot be rewritten as asked.
    #[error("autoboot.txt: {0}")]
    Autoboot(String),
    /// Writing the state file failed.
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Lists `ESP/loader/entries`. Several entries for one slot (hand-made): the first by name.
pub(crate) fn scan(esp: &Path) -> Result<Entries, SlotError> {
    let dir = esp.join(ENTRIES_DIR);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|source| SlotError::List {
            path: dir.clone(),
            source,
        })?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut out = Entries::default();
    for name in names {
        let Some((slot, counter)) = parse_entry_name(&name) else {
            continue;
        };
        let place = match slot {
            Slot::A => &mut out.a,
            Slot::B => &mut out.b,
        };
        if place.is_none() {
            *place = Some((name, counter));
        }
    }
    Ok(out)
}

/// Renames the running slot's entry to `hearth-<slot>.conf`. Returns the old name, or
/// `None` if it was already good.
pub(crate) fn mark_good(esp: &Path, slot: Slot) -> Result<Option<String>, SlotError> {
    let entries = scan(esp)?;
    let dir = esp.join(ENTRIES_DIR);
    let Some((name, counter)) = entries.get(slot) else {
        return Err(SlotError::NoEntry { slot, path: dir });
    };
    if counter.is_none() {
        return Ok(None);
    }
    let (from, to) = (dir.join(name), dir.join(good_name(slot)));
    std::fs::rename(&from, &to).map_err(|source| SlotError::Rename { from, to, source })?;
    Ok(Some(name.clone()))
}

/// Entry name of a good slot.
pub(crate) fn good_name(slot: Slot) -> String {
    format!("hearth-{}.conf", slot.letter())
}

/// What to do when `hearthd` does not become healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnUnhealthy {
    /// Reboot: this slot gets another try, or systemd-boot falls back to the other.
    Reboot,
    /// Keep running and keep restarting `hearthd`: nothing better would boot.
    StayUp,
}

/// Decides what an unhealthy boot of `own` should do, given the other slot's state.
pub(crate) fn on_unhealthy(own: SlotState, other: SlotState) -> OnUnhealthy {
    match own {
        // A good slot stays good: a failing hearthd there is not a boot failure.
        SlotState::Good | SlotState::Unknown => OnUnhealthy::StayUp,
        SlotState::Trying(_) => OnUnhealthy::Reboot,
        SlotState::Bad(_) if other.can_boot() => OnUnhealthy::Reboot,
        SlotState::Bad(_) => OnUnhealthy::StayUp,
    }
}

/// The JSON of [`BOOT_STATE_FILE`] (written by hand: `hearth-init` has no serde; every
/// value is a fixed word or a number).
pub(crate) fn state_json(slot: Slot, state: SlotState) -> String {
    let counter = match state {
        SlotState::Trying(c) | SlotState::Bad(c) => {
            format!(",\"triesLeft\":{},\"triesDone\":{}", c.left, c.done)
        }
        SlotState::Good | SlotState::Unknown => String::new(),
    };
    format!(
        "{{\"init\":\"hearth-init\",\"slot\":\"{}\",\"state\":\"{}\"{counter}}}\n",
        slot.letter(),
        state.name()
    )
}

/// Writes `json` to `path` atomically (temporary file + rename).
pub(crate) fn write_state(path: &Path, json: &str) -> Result<(), SlotError> {
    let err = |source| SlotError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// How this machine chooses and commits slots (from the root disk's partition table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// GPT: systemd-boot entries with boot counting on the ESP (this module).
    SystemdBoot,
    /// MBR (Raspberry Pi): the firmware's `autoboot.txt` + `tryboot` (`crate::tryboot`);
    /// `flag` is the firmware's tryboot flag for this boot, if it reported one.
    Tryboot { flag: Option<bool> },
}

/// States of (`slot`, the other slot), read from the boot partition.
pub(crate) fn read_states(
    scheme: Scheme,
    slot: Slot,
    fat: &mut dyn BootFat,
) -> Result<(SlotState, SlotState), SlotError> {
    let mut states = (SlotState::Unknown, SlotState::Unknown);
    fat.with_fat(&mut |root| {
        states = match scheme {
            Scheme::SystemdBoot => {
                let entries = scan(root)?;
                (entries.state(slot), entries.state(slot.other()))
            }
            Scheme::Tryboot { flag } => {
                crate::tryboot::states(&crate::tryboot::read_autoboot(root)?, slot, flag)
            }
        };
        Ok(())
    })?;
    Ok(states)
}

/// Marks the running `slot` good on the boot partition. Returns what changed (for the
/// log), or `None` if it was good already.
pub(crate) fn commit_running(
    scheme: Scheme,
    slot: Slot,
    fat: &mut dyn BootFat,
) -> Result<Option<String>, SlotError> {
    let mut changed = None;
    fat.with_fat(&mut |root| {
        changed = match scheme {
            Scheme::SystemdBoot => {
                mark_good(root, slot)?.map(|old| format!("{old} -> {}", good_name(slot)))
            }
            Scheme::Tryboot { .. } => crate::tryboot::mark_good(root, slot)?.map(|_| {
                format!(
                    "{}: [all] boot_partition={}",
                    crate::tryboot::AUTOBOOT_TXT,
                    crate::tryboot::boot_partition(slot)
                )
            }),
        };
        Ok(())
    })?;
    Ok(changed)
}

/// Gives temporary access to the files of the boot FAT partition (the ESP, or the
/// Raspberry Pi's `autoboot` partition). Tests use a directory.
pub(crate) trait BootFat {
    /// Runs `f` with the partition's root directory; writes are on disk when this returns.
    fn with_fat(
        &mut self,
        f: &mut dyn FnMut(&Path) -> Result<(), SlotError>,
    ) -> Result<(), SlotError>;
}

/// The real partition `device` (vfat), mounted on `mount_point` for the duration of one
/// call, then synced and unmounted.
pub(crate) struct MountedFat {
    pub(crate) device: String,
    pub(crate) mount_point: PathBuf,
}

impl BootFat for MountedFat {
    fn with_fat(
        &mut self,
        f: &mut dyn FnMut(&Path) -> Result<(), SlotError>,
    ) -> Result<(), SlotError> {
        use nix::mount::{MntFlags, MsFlags, mount, umount2};
        let device = self.device.as_str();
        std::fs::create_dir_all(&self.mount_point)
            .map_err(|e| SlotError::Esp(format!("creating {}: {e}", self.mount_point.display())))?;
        mount(
            Some(device),
            &self.mount_point,
            Some("vfat"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("umask=0077"),
        )
        .map_err(|e| {
            SlotError::Esp(format!(
                "mounting {device} (vfat) on {}: {e}",
                self.mount_point.display()
            ))
        })?;
        let result = f(&self.mount_point);
        nix::unistd::sync();
        if let Err(e) = umount2(&self.mount_point, MntFlags::empty()) {
            crate::log::log_warn!("unmounting {device}: {e}; detaching");
            let _ = umount2(&self.mount_point, MntFlags::MNT_DETACH);
        }
        result
    }
}

/// A directory standing in for the boot partition (tests).
#[cfg(test)]
pub(crate) struct DirFat(pub(crate) PathBuf);

#[cfg(test)]
impl BootFat for DirFat {
    fn with_fat(
        &mut self,
        f: &mut dyn FnMut(&Path) -> Result<(), SlotError>,
    ) -> Result<(), SlotError> {
        f(&self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const fn c(left: u32, done: u32) -> Counter {
        Counter { left, done }
    }

    #[test]
    fn entry_names() {
        assert_eq!(parse_entry_name("hearth-a.conf"), Some((Slot::A, None)));
        assert_eq!(
            parse_entry_name("hearth-b+3.conf"),
            Some((Slot::B, Some(c(3, 0))))
        );
        assert_eq!(
            parse_entry_name("hearth-a+2-1.conf"),
            Some((Slot::A, Some(c(2, 1))))
        );
        assert_eq!(
            parse_entry_name("hearth-a+0-3.conf"),
            Some((Slot::A, Some(c(0, 3))))
        );
        for bad in [
            "hearth-c.conf",
            "hearth-a+.conf",
            "hearth-a+x-1.conf",
            "hearth-a+1-.conf",
            "hearth-a",
            "other-a.conf",
            "loader.conf",
        ] {
            assert_eq!(parse_entry_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn states() {
        assert_eq!(SlotState::of(None), SlotState::Good);
        assert_eq!(SlotState::of(Some(c(2, 1))), SlotState::Trying(c(2, 1)));
        assert_eq!(SlotState::of(Some(c(0, 3))), SlotState::Bad(c(0, 3)));
    }

    #[test]
    fn unhealthy_decisions() {
        use OnUnhealthy::*;
        use SlotState::*;
        // Tries left: reboot (another try of this slot).
        assert_eq!(on_unhealthy(Trying(c(1, 2)), Bad(c(0, 3))), Reboot);
        // Last try used: reboot only if the other slot can boot.
        assert_eq!(on_unhealthy(Bad(c(0, 3)), Trying(c(3, 0))), Reboot);
        assert_eq!(on_unhealthy(Bad(c(0, 3)), Good), Reboot);
        assert_eq!(on_unhealthy(Bad(c(0, 4)), Bad(c(0, 3))), StayUp);
        assert_eq!(on_unhealthy(Bad(c(0, 3)), Unknown), StayUp);
        // A good slot, or no boot counting at all, never reboots for hearthd.
        assert_eq!(on_unhealthy(Good, Trying(c(3, 0))), StayUp);
        assert_eq!(on_unhealthy(Unknown, Good), StayUp);
    }

    #[test]
    fn scan_and_mark_good_on_a_directory() {
        let esp = tempfile::tempdir().unwrap();
        let dir = esp.path().join(ENTRIES_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["hearth-a+2-1.conf", "hearth-b+3.conf", "notes.txt"] {
            std::fs::write(dir.join(name), name).unwrap();
        }
        let e = scan(esp.path()).unwrap();
        assert_eq!(e.state(Slot::A), SlotState::Trying(c(2, 1)));
        assert_eq!(e.state(Slot::B), SlotState::Trying(c(3, 0)));
        assert_eq!(
            mark_good(esp.path(), Slot::A).unwrap().as_deref(),
            Some("hearth-a+2-1.conf")
        );
        // The content moved with the name; the other slot is untouched.
        assert_eq!(
            std::fs::read_to_string(dir.join("hearth-a.conf")).unwrap(),
            "hearth-a+2-1.conf"
        );
        assert!(dir.join("hearth-b+3.conf").exists());
        assert_eq!(scan(esp.path()).unwrap().state(Slot::A), SlotState::Good);
        // Marking a good slot again changes nothing.
        assert_eq!(mark_good(esp.path(), Slot::A).unwrap(), None);
        std::fs::remove_file(dir.join("hearth-b+3.conf")).unwrap();
        let err = mark_good(esp.path(), Slot::B).unwrap_err().to_string();
        assert!(err.contains("no boot entry for slot B"), "{err}");
        let err = scan(Path::new("/nonexistent")).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/loader/entries"), "{err}");
    }

    #[test]
    fn state_file_json() {
        assert_eq!(
            state_json(Slot::B, SlotState::Trying(c(2, 1))),
            "{\"init\":\"hearth-init\",\"slot\":\"b\",\"state\":\"trying\",\"triesLeft\":2,\"triesDone\":1}\n"
        );
        assert_eq!(
            state_json(Slot::A, SlotState::Good),
            "{\"init\":\"hearth-init\",\"slot\":\"a\",\"state\":\"good\"}\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/hearth/boot.json");
        write_state(&path, "{}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
    }

    #[test]
    fn both_schemes_through_the_boot_fat_trait() {
        let dir = tempfile::tempdir().unwrap();
        let mut fat = DirFat(dir.path().to_owned());
        let entries = dir.path().join(ENTRIES_DIR);
        std::fs::create_dir_all(&entries).unwrap();
        std::fs::write(entries.join("hearth-a+2-1.conf"), "").unwrap();
        std::fs::write(entries.join("hearth-b+3.conf"), "").unwrap();
        let gpt = Scheme::SystemdBoot;
        assert_eq!(
            read_states(gpt, Slot::A, &mut fat).unwrap(),
            (SlotState::Trying(c(2, 1)), SlotState::Trying(c(3, 0)))
        );
        assert_eq!(
            commit_running(gpt, Slot::A, &mut fat).unwrap().as_deref(),
            Some("hearth-a+2-1.conf -> hearth-a.conf")
        );
        assert_eq!(commit_running(gpt, Slot::A, &mut fat).unwrap(), None);

        let pi = Scheme::Tryboot { flag: Some(true) };
        let err = read_states(pi, Slot::B, &mut fat).unwrap_err().to_string();
        assert!(err.contains("autoboot.txt"), "{err}");
        std::fs::write(
            dir.path().join("autoboot.txt"),
            "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n",
        )
        .unwrap();
        assert_eq!(
            read_states(pi, Slot::B, &mut fat).unwrap(),
            (SlotState::Trying(c(0, 1)), SlotState::Good)
        );
        assert_eq!(
            commit_running(pi, Slot::B, &mut fat).unwrap().as_deref(),
            Some("autoboot.txt: [all] boot_partition=3")
        );
        assert_eq!(
            read_states(Scheme::Tryboot { flag: Some(false) }, Slot::B, &mut fat).unwrap(),
            (SlotState::Good, SlotState::Unknown)
        );
        assert_eq!(commit_running(pi, Slot::B, &mut fat).unwrap(), None);
    }
}
