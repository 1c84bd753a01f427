//! The boot sequence of `hearth-init` as PID 1 (initramfs `/init`), and the shutdown.
//!
//! # Design
//! One process from power-on to power-off, no `exec` between stages:
//! 1. initramfs: [`mounts::early`], kmsg logging, `/proc/cmdline`, modules listed in
//!    `/etc/hearth/modules` resolved through `/lib/modules/<release>/modules.dep`, wait for
//!    the slot's root partition, [`mounts::root`];
//! 2. switch root: move `/dev`, `/proc`, `/sys` under `/sysroot`, `mount --move /sysroot /`,
//!    `chroot .`;
//! 3. real root: [`mounts::volatile`], the data filesystem ([`devices::prepare_data`]),
//!    [`mounts::overlays`], what the containers need ([`mounts::kernel`]: devpts, cgroup
//!    v2; [`host`]: cgroup controllers, forwarding), hostname, network (`dhcpcd` as a supervised service, or a
//!    static address with `ip`), the slot's boot-counting state read from the ESP and
//!    published in [`slot::BOOT_STATE_FILE`], then [`supervise::run`] on `dhcpcd` and
//!    `hearthd`; when `hearthd` sends `READY=1` the slot is marked good on the ESP
//!    ([`slot::mark_good`]); if it never does, [`slot::on_unhealthy`] decides between a
//!    reboot (another try, or systemd-boot falls back to the other slot) and staying up;
//! 4. shutdown: sync, unmount in reverse, `reboot(2)`.
//!
//! Any unrecoverable error is logged to the console, then the machine reboots after a
//! delay (see [`fail`]), so boot counting can fall back to the other slot.
//!
//! # Limitations
//! The initramfs files are not freed after the switch (a few MiB of RAM). The
//! `/usr/bin/hearth-init` in the root is not re-executed.

use std::path::Path;
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags};

use crate::cmdline::{self, NetConfig, RootSource, Slot};
use crate::log::{self, log_error, log_info, log_warn};
use crate::modules;
use crate::mounts::{self, Mounter, SysMounter};
use crate::slot::{self, Scheme, SlotState};
use crate::stop::StopPolicy;
use crate::supervise::{self, Backoff, Ended, Shutdown};
use crate::{cmd, devices, host, mbr, tryboot};

/// File listing the modules the initramfs loads, one name per line.
const MODULE_LIST: &str = "/etc/hearth/modules";
/// hearthd in the root filesystem.
const HEARTHD: &str = "/usr/bin/hearthd";
/// The DHCP client (Debian's `dhcpcd-base`).
const DHCPCD: &str = "/usr/sbin/dhcpcd";
/// hearthd's readiness socket (`NOTIFY_SOCKET`).
const NOTIFY_SOCKET: &str = "/run/hearth/notify.sock";
/// Where the boot FAT partition (ESP or the Pi's `autoboot`) is mounted while it is read
/// or changed.
const BOOT_FAT_MOUNT: &str = "/run/hearth/esp";
/// sysfs directory of block devices.
const SYS_CLASS_BLOCK: &str = "/sys/class/block";
/// Time `hearthd` has to report ready before a slot on trial is given up.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// Deaths of `hearthd` before it was ever ready that give up a slot on trial.
const MAX_DEATHS: u32 = 3;
/// `dhcpcd` only releases its lease on `SIGTERM`; early in boot it was seen ignoring it.
const DHCPCD_STOP: StopPolicy = StopPolicy::term(Duration::from_secs(3));
/// `hearthd` drains its API connections (5 s grace, `ApiConfig::shutdown_grace`) and
/// stops its services task; containers are left running for the next start to adopt.
const HEARTHD_STOP: StopPolicy = StopPolicy::term(Duration::from_secs(15));
/// Everything left after the services, mostly the containers (LXC monitors and
/// `hearth-container`): `hearthd` itself gives a container 30 s to stop.
const REST_STOP: StopPolicy = StopPolicy::term(Duration::from_secs(30));
/// The whole stop, services and the rest; past it everything gets `SIGKILL`.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(60);

/// Logs an unrecoverable boot error, waits so it can be read, and reboots.
fn fail(msg: &str) -> ! {
    log_error!("BOOT FAILED: {msg}");
    log_error!("rebooting in 30 s; boot counting will fall back to the other slot");
    nix::unistd::sync();
    std::thread::sleep(Duration::from_secs(30));
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
    // reboot(2) only returns on failure; PID 1 must never exit.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Runs the whole life of the machine. Never returns.
pub(crate) fn run() -> ! {
    let mut m = SysMounter;
    if let Err(e) = execute_tolerant(&mounts::early(), &mut m) {
        fail(&e.to_string());
    }
    log::use_kmsg();
    log_info!(
        "starting (initramfs), version {}",
        env!("CARGO_PKG_VERSION")
    );
    // Ctrl-Alt-Del becomes SIGINT to us (a clean reboot) instead of an immediate reset.
    if let Err(e) = nix::sys::reboot::set_cad_enabled(false) {
        log_warn!("disabling the immediate Ctrl-Alt-Del reboot: {e}");
    }
    let raw = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let params = match cmdline::parse(&raw) {
        Ok(p) => p,
        Err(e) => fail(&e.to_string()),
    };
    load_modules();
    let (slot, source) = cmdline::select_root(&params);
    let device = match source {
        RootSource::Device(d) => d,
        RootSource::PartLabel(label) => {
            match devices::wait_for_partition(label, Duration::from_secs(15)) {
                Some(d) => d,
                None => fail(&format!(
                    "root partition {label:?} (slot {slot:?}) not found in /sys/class/block"
                )),
            }
        }
        RootSource::PartUuid(id) => match devices::wait_for(Duration::from_secs(15), || {
            mbr::find_by_partuuid(Path::new(SYS_CLASS_BLOCK), Path::new("/dev"), id)
        }) {
            Some(d) => d,
            None => fail(&format!(
                "root partition PARTUUID={:08x}-{:02} (slot {slot:?}) not found: no disk \
                 with MBR id {:08x} and that partition",
                id.disk_id, id.number, id.disk_id
            )),
        },
    };
    // The root disk's partition table decides the data partition's place and how slots
    // are committed (GPT: systemd-boot entries; MBR: the Raspberry Pi's autoboot.txt).
    let disk = devices::parent_disk(Path::new(SYS_CLASS_BLOCK), &device);
    let table = disk
        .as_deref()
        .and_then(|d| mbr::read_table(Path::new(d)).ok().flatten());
    log_info!(
        "slot {slot:?}: root squashfs {device} on {} ({})",
        disk.as_deref().unwrap_or("an unknown disk"),
        match table {
            Some(mbr::Table::Gpt) => "GPT".to_owned(),
            Some(mbr::Table::Mbr { disk_id }) => format!("MBR {disk_id:08x}"),
            None => "no partition table".to_owned(),
        }
    );
    if let Err(e) = mounts::execute(&mounts::root(&device), &mut m) {
        fail(&e.to_string());
    }
    if let Err(e) = switch_root() {
        fail(&format!("switch_root: {e}"));
    }
    log_info!("switched to the slot {slot:?} root");
    let mut plan = mounts::volatile();
    if let Err(e) = mounts::execute(&plan, &mut m) {
        fail(&e.to_string());
    }
    let data = devices::prepare_data(&device, table, &mut m);
    plan.extend(mounts::data(&data));
    let overlays = mounts::overlays();
    if let Err(e) = mounts::execute(&overlays, &mut m) {
        fail(&e.to_string());
    }
    plan.extend(overlays);
    prepare_containers(&mut m);
    let _ = std::fs::write("/proc/sys/kernel/hostname", "hearth");
    let mut services = Vec::new();
    if let Some(dhcp) = network(&params.net) {
        services.push(dhcp);
    }
    let boot_fat = boot_fat(table, disk.as_deref());
    let (own, other) = slot_states(slot, boot_fat.as_ref());
    log_info!(
        "slot {slot:?}: {}; other slot {:?}: {}",
        describe(own),
        slot.other(),
        describe(other)
    );
    publish(slot, own);
    let hearthd = match &params.test_hearthd {
        Some(path) => {
            log_warn!("TEST: hearth.test.hearthd={path} replaces {HEARTHD}");
            path.as_str()
        }
        None => HEARTHD,
    };
    services.push(supervise::Service {
        name: "hearthd".into(),
        argv: [
            hearthd,
            "--data-dir",
            mounts::DATA_DIR,
            "--listen",
            params.listen.as_str(),
            // The appliance owns its names: kernel hostname and `<hostname>.local`.
            "--mdns",
            "--set-kernel-hostname",
            // HTTPS with Hearth's own CA (hearth-tls); port 80 becomes redirect-only
            // once the VM test reaches the API over HTTPS.
            "--https-listen",
            cmdline::DEFAULT_HTTPS_LISTEN,
        ]
        .map(Into::into)
        .to_vec(),
        stop: HEARTHD_STOP,
    });
    let on_unhealthy = slot::on_unhealthy(own, other);
    let cfg = supervise::Config {
        readiness: Some(supervise::Readiness {
            service: services.len() - 1,
            socket: NOTIFY_SOCKET.into(),
            timeout: READY_TIMEOUT,
            max_deaths: MAX_DEATHS,
            on_unhealthy: match on_unhealthy {
                slot::OnUnhealthy::Reboot => supervise::Unhealthy::Return,
                slot::OnUnhealthy::StayUp => supervise::Unhealthy::Log,
            },
        }),
        services,
        backoff: Backoff::DEVICE,
        rest: Some(REST_STOP),
        shutdown_bound: SHUTDOWN_BOUND,
    };
    let kind = match supervise::run(&cfg, &mut || on_ready(slot, own, boot_fat.as_ref())) {
        Ok(Ended::Requested(kind)) => kind,
        Ok(Ended::Unhealthy) => {
            match (own, boot_fat.as_ref().map(|b| b.0)) {
                (SlotState::Trying(_), Some(Scheme::Tryboot { .. })) => log_error!(
                    "slot {slot:?} failed its trial: rebooting; the firmware boots the \
                     committed slot {:?}",
                    slot.other()
                ),
                (SlotState::Trying(c), _) => {
                    log_error!("slot {slot:?} failed this try ({} left): rebooting", c.left)
                }
                _ => log_error!(
                    "slot {slot:?} has no tries left: rebooting so systemd-boot falls back \
                     to slot {:?}",
                    slot.other()
                ),
            }
            Shutdown::Reboot
        }
        Err(e) => {
            log_error!("{e}");
            Shutdown::Reboot
        }
    };
    // A trial of the other slot asked for (Raspberry Pi): read before /run is unmounted.
    let tryboot = kind == Shutdown::Reboot
        && matches!(boot_fat, Some((Scheme::Tryboot { .. }, _)))
        && Path::new(tryboot::TRYBOOT_REQUEST).exists();
    shutdown(kind, &mounts::targets(&plan), tryboot)
}

/// Like [`mounts::execute`] but a filesystem that is already mounted (`EBUSY`, e.g. a
/// kernel that automounts devtmpfs) is fine.
fn execute_tolerant(steps: &[mounts::Step], m: &mut dyn Mounter) -> Result<(), mounts::MountError> {
    for step in steps {
        match mounts::execute(std::slice::from_ref(step), m) {
            Err(mounts::MountError::Mount {
                errno: nix::Error::EBUSY,
                ..
            })
            | Ok(()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// devpts, `/dev/shm` and cgroup v2 ([`mounts::kernel`]), the cgroup controllers and
/// forwarding ([`host`]): what `hearthd`'s LXC containers need. Failures are logged, not
/// fatal: `hearthd` and its API still run, and a container that cannot start says why.
fn prepare_containers(m: &mut dyn Mounter) {
    if let Err(e) = execute_tolerant(&mounts::kernel(), m) {
        log_error!("{e}; service containers will not start");
    }
    let (enabled, errors) = host::enable_controllers(Path::new(mounts::CGROUP_DIR));
    for e in &errors {
        log_warn!("cgroup: {e}");
    }
    log_info!(
        "cgroup2 on {}, controllers for containers: {}",
        mounts::CGROUP_DIR,
        enabled.join(" ")
    );
    for (key, value) in host::SYSCTLS {
        match host::sysctl(Path::new("/proc/sys"), key, value) {
            Ok(()) => log_info!("sysctl {key} = {value}"),
            Err(e) => log_warn!("{e}"),
        }
    }
}

fn load_modules() {
    let Ok(list) = std::fs::read_to_string(MODULE_LIST) else {
        log_info!("no {MODULE_LIST}: loading no modules");
        return;
    };
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let dir = Path::new("/lib/modules").join(release.trim());
    let dep = std::fs::read_to_string(dir.join("modules.dep")).unwrap_or_default();
    let wanted: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let order = match modules::load_order(&dep, &wanted) {
        Ok(o) => o,
        Err(e) => {
            log_error!("{e}");
            return;
        }
    };
    for e in modules::load_all(&dir, &order, &mut modules::KernelLoader) {
        log_warn!("{e}");
    }
    log_info!("loaded {} modules", order.len());
}

fn switch_root() -> Result<(), nix::Error> {
    let root = Path::new(mounts::SYSROOT);
    for dir in ["dev", "proc", "sys"] {
        nix::mount::mount(
            Some(&Path::new("/").join(dir)),
            &root.join(dir),
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )?;
    }
    nix::unistd::chdir(root)?;
    nix::mount::mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)?;
    nix::unistd::chroot(".")?;
    nix::unistd::chdir("/")
}

/// The slot scheme and the boot FAT partition holding its state: the GPT partition `esp`,
/// or partition 1 (`autoboot`) of the root's MBR disk.
fn boot_fat(table: Option<mbr::Table>, disk: Option<&str>) -> Option<(Scheme, String)> {
    let sys = Path::new(SYS_CLASS_BLOCK);
    let found = match table {
        Some(mbr::Table::Mbr { .. }) => {
            let scheme = Scheme::Tryboot {
                flag: tryboot::read_flag(Path::new(tryboot::TRYBOOT_FLAG)),
            };
            disk.and_then(|d| devices::partition_by_number(sys, d, mbr::AUTOBOOT as usize))
                .map(|dev| (scheme, dev))
        }
        _ => devices::find_partition(sys, "esp").map(|dev| (Scheme::SystemdBoot, dev)),
    };
    if found.is_none() {
        log_warn!("no boot partition (ESP or autoboot) found: no slot state, no marking good");
    }
    found
}

fn mounted(device: &str) -> slot::MountedFat {
    slot::MountedFat {
        device: device.to_owned(),
        mount_point: BOOT_FAT_MOUNT.into(),
    }
}

/// Reads both slots' states from the boot partition (`Unknown` if it cannot be read).
fn slot_states(slot: Slot, boot_fat: Option<&(Scheme, String)>) -> (SlotState, SlotState) {
    let Some((scheme, device)) = boot_fat else {
        return (SlotState::Unknown, SlotState::Unknown);
    };
    slot::read_states(*scheme, slot, &mut mounted(device)).unwrap_or_else(|e| {
        log_warn!("slot state: {e}; the slot cannot be marked good");
        (SlotState::Unknown, SlotState::Unknown)
    })
}

fn describe(state: SlotState) -> String {
    match state {
        SlotState::Trying(c) => format!("on trial ({} tries left, {} done)", c.left, c.done),
        SlotState::Bad(c) => format!("no tries left ({} done)", c.done),
        SlotState::Good => "good".into(),
        SlotState::Unknown => "unknown (no boot entry; on a Pi, not committed)".into(),
    }
}

fn publish(slot: Slot, state: SlotState) {
    let path = Path::new(slot::BOOT_STATE_FILE);
    if let Err(e) = slot::write_state(path, &slot::state_json(slot, state)) {
        log_error!("{e}");
    }
}

/// `hearthd` is ready: a slot on trial (or out of tries) becomes good.
fn on_ready(slot: Slot, own: SlotState, boot_fat: Option<&(Scheme, String)>) {
    if !matches!(own, SlotState::Trying(_) | SlotState::Bad(_)) {
        return;
    }
    let Some((scheme, device)) = boot_fat else {
        return;
    };
    match slot::commit_running(*scheme, slot, &mut mounted(device)) {
        Ok(changed) => {
            log_info!(
                "slot {slot:?} marked good ({})",
                changed.as_deref().unwrap_or("already good")
            );
            publish(slot, SlotState::Good);
        }
        Err(e) => log_error!("marking slot {slot:?} good: {e}"),
    }
}

/// Sets up loopback and a static address; returns the DHCP client service for `dhcp`.
fn network(net: &NetConfig) -> Option<supervise::Service> {
    if let Err(e) = cmd::run("ip", &["link", "set", "lo", "up"], None) {
        log_warn!("{e}");
    }
    let (address, gateway) = match net {
        NetConfig::Off => {
            log_info!("network: off (hearth.net=off)");
            return None;
        }
        NetConfig::Dhcp => {
            log_info!("network: DHCP ({DHCPCD})");
            return Some(supervise::Service {
                name: "dhcpcd".into(),
                // --nodev: no udev here; with its udev module dhcpcd waits for udev to
                // announce each interface and never configures any.
                argv: [DHCPCD, "--nobackground", "--nodev"]
                    .map(Into::into)
                    .to_vec(),
                stop: DHCPCD_STOP,
            });
        }
        NetConfig::Static { address, gateway } => (address, gateway),
    };
    let mut ifaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n != "lo")
                .collect()
        })
        .unwrap_or_default();
    ifaces.sort();
    let Some(iface) = ifaces.first() else {
        log_error!("network: no interface besides lo");
        return None;
    };
    let steps: [&[&str]; 3] = [
        &["link", "set", iface, "up"],
        &["addr", "add", address, "dev", iface],
        &["route", "add", "default", "via", gateway],
    ];
    for args in steps {
        if let Err(e) = cmd::run("ip", args, None) {
            log_error!("network: {e}");
            return None;
        }
    }
    log_info!("network: {iface} {address} via {gateway}");
    None
}

fn shutdown(kind: Shutdown, targets: &[std::path::PathBuf], tryboot: bool) -> ! {
    log_info!("syncing and unmounting");
    nix::unistd::sync();
    // What the containers left below the data dir first (their processes are gone):
    // otherwise the data filesystem stays busy and is only detached.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let nested = mounts::below(&mounts, Path::new(mounts::DATA_DIR));
    if !nested.is_empty() {
        log_info!(
            "unmounting {} mounts below {}",
            nested.len(),
            mounts::DATA_DIR
        );
    }
    for target in nested.iter().chain(targets.iter().rev()) {
        if let Err(e) = nix::mount::umount2(target, MntFlags::empty()) {
            log_warn!("unmounting {}: {e}; detaching", target.display());
            let _ = nix::mount::umount2(target, MntFlags::MNT_DETACH);
        }
    }
    nix::unistd::sync();
    let how = match kind {
        Shutdown::PowerOff => nix::sys::reboot::RebootMode::RB_POWER_OFF,
        Shutdown::Reboot => nix::sys::reboot::RebootMode::RB_AUTOBOOT,
    };
    if tryboot {
        log_info!("Reboot into the other slot on trial (\"0 tryboot\")");
        let e = tryboot::reboot_tryboot();
        log_error!("reboot(2) with \"0 tryboot\": {e}; rebooting normally");
    }
    log_info!("{kind:?}");
    let _ = nix::sys::reboot::reboot(how);
    fail("reboot(2) returned")
}
