//! `hearth-init`: the initramfs `/init` and PID 1 of a Hearth machine.
//!
//! # Purpose
//! Boots the machine (modules, slot root, mounts, data, network), starts and supervises
//! `hearthd`, reaps zombies, and shuts down cleanly. Run as PID 1 it does all of that
//! ([`boot`]); run as any other process it offers `supervise -- CMD…`, the same supervision
//! loop under `PR_SET_CHILD_SUBREAPER`, which is how the loop is tested for real.
//!
//! # Design
//! Synchronous, no async runtime, few dependencies (`nix`, `thiserror`, the std-only
//! `hearth-cmd`), built static. Every decision is pure and unit-tested (`cmdline`,
//! `modules::load_order`, the `mounts` plans, `supervise::Backoff`, `mbr::plan_data`,
//! `tryboot::states`/`commit`); effects sit behind narrow traits (`Mounter`,
//! `ModuleLoader`, `slot::BootFat`) or the one command helper (`cmd`). The boot-loader side
//! of A/B slots is systemd-boot's boot counting on GPT disks (`slot`) and the Raspberry Pi
//! firmware's `autoboot.txt` + `tryboot` on MBR disks (`tryboot`).
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
//! See `init/README.md`.

mod boot;
mod cmd;
mod cmdline;
mod devices;
mod host;
mod log;
mod mbr;
mod modules;
mod mounts;
mod slot;
mod stop;
mod supervise;
mod tryboot;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use crate::log::log_error;

const USAGE: &str = "usage: hearth-init (as PID 1)\n       hearth-init supervise \
[--backoff-ms N] [--stop-timeout-ms N] [--shutdown-bound-ms N] [--notify-socket PATH --ready-timeout-ms N \
[--max-deaths N]] -- CMD [ARG…]\n       hearth-init --version\n\
With --notify-socket, CMD gets NOTIFY_SOCKET and must send READY=1 within the timeout \
(and die fewer than --max-deaths times, default 3); otherwise everything is stopped and \
the exit status is 3.";

/// Exit status of `supervise` when the service did not become ready.
const EXIT_UNHEALTHY: u8 = 3;

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
            Ok(supervise::Ended::Requested(_)) => ExitCode::SUCCESS,
            Ok(supervise::Ended::Unhealthy) => ExitCode::from(EXIT_UNHEALTHY),
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

fn number(v: Option<&OsString>, flag: &str) -> Result<u32, String> {
    v.and_then(|v| v.to_str())
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| format!("{flag} needs a number\n{USAGE}"))
}

fn supervise_cmd(args: &[OsString]) -> Result<supervise::Ended, String> {
    let mut backoff = supervise::Backoff::DEVICE;
    let mut stop_timeout = Duration::from_secs(10);
    let mut shutdown_bound = Duration::from_secs(60);
    let mut notify_socket = None;
    let mut ready_timeout = None;
    let mut max_deaths = 3;
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
            Some("--shutdown-bound-ms") => {
                shutdown_bound = millis(it.next(), "--shutdown-bound-ms")?
            }
            Some("--notify-socket") => {
                notify_socket =
                    Some(std::path::PathBuf::from(it.next().ok_or_else(|| {
                        format!("--notify-socket needs a path\n{USAGE}")
                    })?))
            }
            Some("--ready-timeout-ms") => {
                ready_timeout = Some(millis(it.next(), "--ready-timeout-ms")?)
            }
            Some("--max-deaths") => max_deaths = number(it.next(), "--max-deaths")?,
            Some("--") => {
                argv = it.cloned().collect();
                break;
            }
            _ => return Err(format!("unexpected argument {a:?}\n{USAGE}")),
        }
    }
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
    let readiness = match (notify_socket, ready_timeout) {
        (Some(socket), Some(timeout)) => Some(supervise::Readiness {
            service: 0,
            socket,
            timeout,
            max_deaths,
            on_unhealthy: supervise::Unhealthy::Return,
        }),
        (None, None) => None,
        _ => {
            return Err(format!(
                "--notify-socket and --ready-timeout-ms go together\n{USAGE}"
            ));
        }
    };
    let cfg = supervise::Config {
        services: vec![supervise::Service {
            name: "service".into(),
            argv,
            stop: stop::StopPolicy::term(stop_timeout),
        }],
        backoff,
        rest: None,
        shutdown_bound,
        readiness,
    };
    let ended = supervise::run(&cfg, &mut || {
        log::log(log::Level::Info, "supervise: service ready");
    })
    .map_err(|e| e.to_string())?;
    log::log(log::Level::Info, &format!("supervise: done ({ended:?})"));
    Ok(ended)
}
