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
//!    [`mounts::overlays`], hostname, network, then [`supervise::run`] on `hearthd`;
//! 4. shutdown: sync, unmount in reverse, `reboot(2)`.
//!
//! Any unrecoverable error is logged to the console, then the machine reboots after a
//! delay (see [`fail`]), so boot counting can fall back to the other slot.
//!
//! # Limitations
//! The initramfs files are not freed after the switch (a few MiB of RAM). Static network
//! only (`hearth.net=`), no DHCP yet. The slot is not marked good (boot counting only
//! decrements). The `/usr/bin/hearth-init` in the root is not re-executed.

use std::path::Path;
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags};

use crate::cmdline::{self, NetConfig, RootSource};
use crate::log::{self, log_error, log_info, log_warn};
use crate::modules;
use crate::mounts::{self, Mounter, SysMounter};
use crate::supervise::{self, Backoff, Shutdown};
use crate::{cmd, devices};

/// File listing the modules the initramfs loads, one name per line.
const MODULE_LIST: &str = "/etc/hearth/modules";
/// hearthd in the root filesystem.
const HEARTHD: &str = "/usr/bin/hearthd";

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
    };
    log_info!("slot {slot:?}: root squashfs {device}");
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
    let data = devices::prepare_data(&device, &mut m);
    plan.extend(mounts::data(&data));
    let overlays = mounts::overlays();
    if let Err(e) = mounts::execute(&overlays, &mut m) {
        fail(&e.to_string());
    }
    plan.extend(overlays);
    let _ = std::fs::write("/proc/sys/kernel/hostname", "hearth");
    network(&params.net);
    let cfg = supervise::Config {
        argv: [
            HEARTHD,
            "--data-dir",
            mounts::DATA_DIR,
            "--listen",
            params.listen.as_str(),
        ]
        .map(Into::into)
        .to_vec(),
        backoff: Backoff::DEVICE,
        stop_timeout: Duration::from_secs(10),
        kill_all: true,
    };
    let kind = match supervise::run(&cfg) {
        Ok(kind) => kind,
        Err(e) => {
            log_error!("{e}");
            Shutdown::Reboot
        }
    };
    shutdown(kind, &mounts::targets(&plan))
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

fn network(net: &NetConfig) {
    if let Err(e) = cmd::run("ip", &["link", "set", "lo", "up"], None) {
        log_warn!("{e}");
    }
    let NetConfig::Static { address, gateway } = net else {
        log_info!("network: off (hearth.net not set)");
        return;
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
        return;
    };
    let steps: [&[&str]; 3] = [
        &["link", "set", iface, "up"],
        &["addr", "add", address, "dev", iface],
        &["route", "add", "default", "via", gateway],
    ];
    for args in steps {
        if let Err(e) = cmd::run("ip", args, None) {
            log_error!("network: {e}");
            return;
        }
    }
    log_info!("network: {iface} {address} via {gateway}");
}

fn shutdown(kind: Shutdown, targets: &[std::path::PathBuf]) -> ! {
    log_info!("syncing and unmounting");
    nix::unistd::sync();
    for target in targets.iter().rev() {
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
    log_info!("{kind:?}");
    let _ = nix::sys::reboot::reboot(how);
    fail("reboot(2) returned")
}
