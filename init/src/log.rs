//! Console logging and the panic hook.
//!
//! # Design
//! As PID 1 there is no syslog and no journal: every line goes to `/dev/kmsg` (so `dmesg`
//! has it) with a `hearth-init:` prefix and a priority; the kernel echoes errors to the
//! console, and warnings and info are also written to stderr, which for PID 1 is
//! `/dev/console` (with `loglevel=4` the kernel would hide them; with a higher loglevel
//! they appear twice).
//! Outside PID 1 (tests, `supervise`), or if `/dev/kmsg` cannot be opened, lines go to
//! stderr. Logging never fails: a message that cannot be written is dropped.
//!
//! # Invariants
//! A panic is a boot failure, never a silent hang: the hook writes the panic message at
//! emergency priority, then as PID 1 syncs and reboots (so systemd-boot's boot counting
//! moves towards the other slot), otherwise aborts the process.
//!
//! # Rejected alternatives
//! `tracing` + a subscriber: too much machinery for a tiny synchronous PID 1 whose only
//! sink is the kernel ring buffer.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static USE_KMSG: AtomicBool = AtomicBool::new(false);

/// Kernel log priorities used here.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Level {
    Emerg = 0,
    Err = 3,
    Warn = 4,
    Info = 6,
}

/// Sends further log lines to `/dev/kmsg` (after `/dev` is mounted, as PID 1).
pub(crate) fn use_kmsg() {
    USE_KMSG.store(true, Ordering::Relaxed);
}

/// Writes one line.
pub(crate) fn log(level: Level, msg: &str) {
    if USE_KMSG.load(Ordering::Relaxed)
        && let Ok(mut f) = OpenOptions::new().write(true).open("/dev/kmsg")
    {
        // kmsg takes one record per write; keep each line a separate record.
        for line in msg.lines() {
            let _ = f.write_all(format!("<{}>hearth-init: {line}\n", level as u8).as_bytes());
        }
        // The kernel shows errors on the console itself; with the usual `loglevel=4` it
        // hides warnings and info, so those also go to stderr (the console for PID 1).
        if (level as u8) <= Level::Err as u8 {
            return;
        }
    }
    let _ = writeln!(std::io::stderr(), "hearth-init: {msg}");
}

/// Logs at info level.
macro_rules! log_info {
    ($($t:tt)*) => { $crate::log::log($crate::log::Level::Info, &format!($($t)*)) };
}
/// Logs at warning level.
macro_rules! log_warn {
    ($($t:tt)*) => { $crate::log::log($crate::log::Level::Warn, &format!($($t)*)) };
}
/// Logs at error level.
macro_rules! log_error {
    ($($t:tt)*) => { $crate::log::log($crate::log::Level::Err, &format!($($t)*)) };
}
pub(crate) use {log_error, log_info, log_warn};

/// Installs the panic hook (see the module docs).
pub(crate) fn install_panic_hook(pid1: bool) {
    std::panic::set_hook(Box::new(move |info| {
        log(Level::Emerg, &format!("PANIC (boot failure): {info}"));
        if pid1 {
            log(
                Level::Emerg,
                "rebooting in 10 s; boot counting will fall back to the other slot",
            );
            nix::unistd::sync();
            std::thread::sleep(std::time::Duration::from_secs(10));
            let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
        }
        std::process::abort();
    }));
}
