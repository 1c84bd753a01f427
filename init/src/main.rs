//! `hearth-init`: the initramfs `/init` and PID 1 of a Hearth machine.
//!
//! # Purpose
//! Boots the machine (modules, slot root, mounts, data, network), starts and supervises
//! `hearthd`, reaps zombies, and shuts down cleanly. Run as PID 1 it does all of that
//! ([`boot`]); run as any other process it offers `supervise -- CMD…`, the same supervision
//! loop under `PR_SET_CHILD_SUBREAPER`, which is how the loop is tested for real.
//!
//! # Design
//! Synchronous, no async runtime, few dependencies (`nix`, `thiserror`), built static. Every
//! decision is pure and unit-tested (`cmdline`, `modules::load_order`, the `mounts` plans,
//! `supervise::Backoff`); effects sit behind narrow traits (`Mounter`, `ModuleLoader`) or the
//! one command helper (`cmd`).
//!
//! # Invariants
//! PID 1 never exits: errors end in a console message and a reboot; a panic is logged to
//! `/dev/kmsg` by the hook in [`log`], then reboots (the workspace profile cannot set
//! `panic = "abort"` per crate; the hook gives the same effect). Nothing formats a data
//! partition that exists.
//!
//! # Rejected alternatives
//! systemd as PID 1 (does not run on these machines, far too large for the job); busybox
//! scripts (untestable, no typed errors); a separate initramfs binary plus `exec` of the
//! root's init (two copies to keep in step for no gain today).
//!
//! # Limitations
//! See `init/README.md`: no DHCP, no slot marking, no `server.restart` path yet.

mod boot;
mod cmd;
mod cmdline;
mod devices;
mod log;
mod modules;
mod mounts;
mod supervise;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use crate::log::log_error;

const USAGE: &str = "usage: hearth-init (as PID 1)\n       hearth-init supervise \
[--backoff-ms N] [--stop-timeout-ms N] -- CMD [ARG…]\n       hearth-init --version";

fn main() -> ExitCode {
    let pid1 = std::process::id() == 1;
    log::install_panic_hook(pid1);
    if pid1 {
        boot::run();
    }
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match args.first().and_then(|a| a.to_str()) {
        Some("--version") => {
            println!("hearth-init {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("supervise") => match supervise_cmd(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                log_error!("{msg}");
                ExitCode::from(1)
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn millis(v: Option<&OsString>, flag: &str) -> Result<Duration, String> {
    v.and_then(|v| v.to_str())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{flag} needs a number of milliseconds\n{USAGE}"))
}

fn supervise_cmd(args: &[OsString]) -> Result<(), String> {
    let mut backoff = supervise::Backoff::DEVICE;
    let mut stop_timeout = Duration::from_secs(10);
    let mut it = args.iter();
    let mut argv = Vec::new();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--backoff-ms") => {
                backoff.base = millis(it.next(), "--backoff-ms")?;
                backoff.max = backoff.base.saturating_mul(16);
                backoff.reset_after = backoff.max.saturating_mul(4);
            }
            Some("--stop-timeout-ms") => stop_timeout = millis(it.next(), "--stop-timeout-ms")?,
            Some("--") => {
                argv = it.cloned().collect();
                break;
            }
            _ => return Err(format!("unexpected argument {a:?}\n{USAGE}")),
        }
    }
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
    let cfg = supervise::Config {
        argv,
        backoff,
        stop_timeout,
        kill_all: false,
    };
    let kind = supervise::run(&cfg).map_err(|e| e.to_string())?;
    log::log(log::Level::Info, &format!("supervise: done ({kind:?})"));
    Ok(())
}
