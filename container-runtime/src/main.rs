//! `hearth-container`: PID 1 inside each service container.
//!
//! # Purpose
//! Executes a Hearth service spec: starts the daemons in `requires` order, runs
//! readiness and health probes, restarts failed daemons with back-off and reports a
//! crash loop, stops them with their stop signal (then `SIGKILL`), reaps every
//! zombie, captures output, runs actions, and answers `hearthd` over newline-delimited
//! JSON-RPC on `<rpc-dir>/service.sock`.
//!
//! # Design
//! Synchronous: a handful of small threads (signals, RPC accept, a reader and a writer
//! per connection, two output readers per daemon, one per running probe or action) around
//! one loop that owns the pure state machine in [`supervisor`]. Resident memory is what
//! matters in every container, and threads with 64–256 KiB stacks plus `std` and
//! `nix` cost less, and are simpler to reason about as PID 1, than an async runtime;
//! the concurrency is a few dozen blocking operations at most.
//!
//! # Invariants
//! - Signals are blocked before any thread starts (see [`process`]).
//! - Only the reaper calls `waitpid` (besides the standard library's own wait for a
//!   child whose `exec` failed, which happens under the same lock as our spawns).
//!
//! # Limitations
//! Daemons run in the container's root filesystem (the service image, as hearth-lxc
//! sets it up) with their env, user and workdir; spec `mounts` are bind-mounted for
//! the whole container at start-up ([`mounts`]); image defaults (entrypoint, cmd,
//! user, workdir, env) come from `<images-dir>/<id>.json|.env` ([`image`]). Several
//! image root filesystems per service are not supported yet.
//!
//! # Rejected alternatives
//! A current-thread tokio runtime: fine for sockets, but process reaping, signal
//! masking and blocking probes still need threads or careful wrappers, for more code
//! and more memory.

mod action;
mod caps;
mod health;
mod image;
mod logs;
mod mounts;
mod process;
mod rpc;
mod runtime;
mod supervisor;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use hearth_s9pk::spec::{DurationSpec, ServiceSpec};

use crate::process::Reaper;
use crate::runtime::{Event, RealProcesses};
use crate::supervisor::Supervisor;
use crate::supervisor::policy::RestartPolicy;

/// Default spec path inside the container (in the read-only config dir hearthd mounts).
const DEFAULT_SPEC: &str = hearth_layout::CONTAINER_SPEC_FILE;
/// Default RPC directory inside the container (bind-mounted writable by hearthd; it
/// holds only `service.sock`).
const DEFAULT_RPC_DIR: &str = hearth_layout::CONTAINER_RPC_DIR;
/// Default log directory inside the container.
const DEFAULT_LOG_DIR: &str = "/media/hearth/logs";

/// Runs a Hearth service spec as PID 1 of a service container.
#[derive(Debug, Parser)]
#[command(name = "hearth-container", version)]
struct Args {
    /// Service spec (JSON, as `hearth.json` in the package).
    #[arg(long, default_value = DEFAULT_SPEC)]
    spec: PathBuf,
    /// Directory for the control socket `service.sock`.
    #[arg(long, default_value = DEFAULT_RPC_DIR)]
    rpc_dir: PathBuf,
    /// Directory for daemon logs (`<daemon>.log`, rotated to `.log.1`).
    #[arg(long, default_value = DEFAULT_LOG_DIR)]
    log_dir: PathBuf,
    /// Where the host mounted the package's volumes (`<dir>/<volume id>`); spec
    /// `mounts` are bind-mounted from here at start-up.
    #[arg(long, default_value = mounts::DEFAULT_VOLUMES_DIR)]
    volumes_dir: PathBuf,
    /// Where the host put each image's `<id>.json` (entrypoint, cmd, user, workdir) and
    /// `<id>.env`; daemons and actions default to them.
    #[arg(long, default_value = hearth_layout::CONTAINER_IMAGES_DIR)]
    images_dir: PathBuf,
    /// Largest size of one log file before it is rotated, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    log_max_bytes: u64,
    /// Bytes of recent output kept in memory for the `logs` method.
    #[arg(long, default_value_t = 256 * 1024)]
    log_ring_bytes: usize,
    /// Start the daemons at once instead of waiting for a `start` request.
    #[arg(long)]
    autostart: bool,
    /// Adopt orphaned descendants (PR_SET_CHILD_SUBREAPER) when not running as PID 1.
    #[arg(long)]
    subreaper: bool,
    /// First restart delay (doubles per consecutive failure).
    #[arg(long, default_value = "1s")]
    restart_delay: DurationSpec,
    /// Longest restart delay.
    #[arg(long, default_value = "60s")]
    restart_delay_max: DurationSpec,
    /// A run this long resets the restart delay.
    #[arg(long, default_value = "60s")]
    stable_after: DurationSpec,
    /// Failures within `--crash-window` that make a crash loop.
    #[arg(long, default_value_t = 5)]
    crash_limit: u32,
    /// Window for counting failures.
    #[arg(long, default_value = "5m")]
    crash_window: DurationSpec,
}

/// Errors that end the program at start-up.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("read service spec {path}: {source}")]
    ReadSpec {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("service spec {path}: {source}")]
    ParseSpec {
        path: PathBuf,
        source: hearth_s9pk::spec::SpecError,
    },
    #[error(transparent)]
    Process(#[from] process::ProcessError),
    #[error(transparent)]
    Logs(#[from] logs::LogError),
    #[error(transparent)]
    Socket(#[from] rpc::SocketError),
    #[error(transparent)]
    Mount(#[from] mounts::MountError),
    #[error(transparent)]
    Caps(#[from] caps::CapsError),
    #[error(transparent)]
    Image(#[from] image::ImageError),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "hearth-container failed");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), StartError> {
    // Before any thread exists, so every thread inherits the mask.
    let signals = process::block_signals()?;
    if args.subreaper {
        process::become_subreaper()?;
    }
    let bytes = std::fs::read(&args.spec).map_err(|source| StartError::ReadSpec {
        path: args.spec.clone(),
        source,
    })?;
    let parse_err = |source| StartError::ParseSpec {
        path: args.spec.clone(),
        source,
    };
    let spec = ServiceSpec::from_json(&bytes).map_err(parse_err)?;
    let policy = RestartPolicy {
        initial: args.restart_delay.get(),
        max: args.restart_delay_max.get(),
        stable_after: args.stable_after.get(),
        crash_limit: args.crash_limit.max(1),
        crash_window: args.crash_window.get(),
    };
    let mut sup = Supervisor::new(&spec, policy).map_err(parse_err)?;
    mounts::apply(
        &mounts::plan(&spec, &args.volumes_dir)?,
        &mut mounts::SysMounter,
    )?;
    // The mounts were all sys_admin was kept for: no service process gets it.
    if caps::drop_sys_admin()? {
        tracing::debug!("dropped CAP_SYS_ADMIN");
    }

    let mut images = BTreeMap::new();
    let ids = spec.daemons.iter().map(|d| &d.image);
    for id in ids.chain(spec.actions.iter().map(|a| &a.image)) {
        if !images.contains_key(id)
            && let Some(config) = image::load(&args.images_dir, id)?
        {
            images.insert(id.clone(), config);
        }
    }

    let (tx, rx) = mpsc::channel();
    let exits = Mutex::new(tx.clone());
    let reaper = Arc::new(Reaper::new(move |pid, exit| {
        let tx = exits.lock().unwrap_or_else(|p| p.into_inner());
        let _ = tx.send(Event::Exited { pid, exit });
    }));
    let stops = Mutex::new(tx.clone());
    process::spawn_signal_thread(signals, Arc::clone(&reaper), move |name| {
        let tx = stops.lock().unwrap_or_else(|p| p.into_inner());
        let _ = tx.send(Event::Signal(name));
    })?;

    let logs = Arc::new(Mutex::new(logs::LogStore::new(
        &args.log_dir,
        args.log_max_bytes,
        args.log_ring_bytes,
    )?));
    let ctx = Arc::new(rpc::Context {
        events: tx.clone(),
        logs: Arc::clone(&logs),
        actions: spec.actions.clone(),
        images: images.clone(),
        running_actions: std::sync::atomic::AtomicUsize::new(0),
        reaper: Arc::clone(&reaper),
    });
    let socket = rpc::serve(&args.rpc_dir, ctx)?;
    tracing::info!(socket = %socket.display(), daemons = spec.daemons.len(), "listening");

    let procs = RealProcesses {
        invocations: RealProcesses::invocations(sup.specs(), &images),
        reaper,
        events: tx,
        logs,
    };
    if args.autostart {
        // Cannot fail: nothing has asked for a shutdown yet.
        let _ = sup.start();
    }
    runtime::run(sup, procs, rx);
    let _ = std::fs::remove_file(&socket);
    // Give the last notifications a moment to leave.
    std::thread::sleep(Duration::from_millis(10));
    Ok(())
}
