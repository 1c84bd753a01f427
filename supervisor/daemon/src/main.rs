//! `hearthd`: the Hearth supervisor daemon — wiring only.
//!
//! # Purpose
//! Parse flags, install tracing (stderr + the in-memory ring read by `server.logs`),
//! open the state store, build the API ([`hearth_api::App`]), bind the listener, and run
//! until SIGINT/SIGTERM, then shut down gracefully (one path: cancel the token, the
//! server drains, the process exits 0).
//!
//! # Design
//! Blocking start-up work (store open, local cookie) runs before the runtime serves, so
//! a failure exits with a clear message before anything listens. The first stdout line
//! is `hearthd listening on http://ADDR` (scripts and tests read the port from it when
//! `--listen` uses port 0).
//!
//! Readiness: once the listener is bound and the services supervisor started, hearthd
//! sends `READY=1` to `$NOTIFY_SOCKET` (systemd's notification protocol; nothing when the
//! variable is unset). `hearth-init` marks the boot slot good on it; a Debian unit with
//! `Type=notify` would work the same way.
//!
//! # Rejected alternatives
//! A config file: nothing needs one yet; flags (with env fallbacks) are enough and
//! visible in `ps`.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

mod mcp;
mod names;
mod services;
mod tls;

use clap::Parser;
use hearth_api::{ApiConfig, App, AppParts, LogBuffer};
use hearth_layout::{DEV_LISTEN, RPC_PATH, STORE_FILE};
use hearth_store::Store;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(name = "hearthd", version, about = "The Hearth supervisor daemon")]
struct Args {
    /// Directory holding all persistent state (created if missing).
    #[arg(long, env = "HEARTH_DATA_DIR")]
    data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "HEARTH_LISTEN", default_value = DEV_LISTEN)]
    listen: SocketAddr,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `hearth_api=debug`.
    /// Serve the API over HTTPS here too (Hearth's own CA; e.g. 0.0.0.0:443 on the image).
    #[arg(long, env = "HEARTH_HTTPS_LISTEN")]
    https_listen: Option<SocketAddr>,
    /// Plain-HTTP LAN listener: only a redirect to HTTPS, /hearth-ca.crt and /trust
    /// (e.g. 0.0.0.0:80 on the image). Needs --https-listen.
    #[arg(long, env = "HEARTH_HTTP_REDIRECT_LISTEN", requires = "https_listen")]
    http_redirect_listen: Option<SocketAddr>,
    #[arg(long, env = "HEARTH_LOG", default_value = "info")]
    log: String,
    /// Log out sessions idle for this many seconds.
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    session_idle_secs: u64,
    /// End sessions this many seconds after login.
    #[arg(long, default_value_t = 30 * 24 * 3600)]
    session_max_age_secs: u64,
    /// Close connections that have not sent complete headers within this many ms.
    #[arg(long, default_value_t = 10_000)]
    header_timeout_ms: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    body_limit: usize,
    /// `hearth-container`, bind-mounted into every service container as its init.
    #[arg(
        long,
        env = "HEARTH_CONTAINER_INIT",
        default_value = "/usr/lib/hearth/hearth-container"
    )]
    container_init: PathBuf,
    /// Largest size of one service daemon's log file on the data dir before it is
    /// rotated (each daemon keeps two); default: hearth-container's, 1 MiB.
    #[arg(long, value_parser = clap::value_parser!(u64).range(4096..))]
    service_log_max_bytes: Option<u64>,
    /// Another directory `package.install {path}` may read (besides `<data>/import`).
    #[arg(long)]
    import_dir: Vec<PathBuf>,
    /// Let `package.install {url}` fetch from this non-public range (CIDR, e.g. a LAN
    /// mirror's `192.168.1.0/24`); repeatable. The service bridge stays refused.
    #[arg(long, value_parser = check_cidr)]
    allow_package_source: Vec<String>,
    /// The web UI's built assets (`web/dist`; the .deb installs them in
    /// /usr/share/hearth/web), served on every path the API does not own.
    #[arg(long, env = "HEARTH_WEB_DIR")]
    web_dir: Option<PathBuf>,
    /// Announce `<hostname>.local` and `_https._tcp` over mDNS (on on the image).
    #[arg(long, env = "HEARTH_MDNS")]
    mdns: bool,
    /// Set the kernel hostname to the one in the state (on on the image).
    #[arg(long, env = "HEARTH_SET_KERNEL_HOSTNAME")]
    set_kernel_hostname: bool,
    /// Also write the first-boot setup code to this file, for a person to read (the
    /// image: a file on the boot FAT partition). Deleted once setup is complete.
    #[arg(long, env = "HEARTH_SETUP_CODE_FILE")]
    setup_code_file: Option<PathBuf>,
}

fn check_cidr(s: &str) -> Result<String, String> {
    hearth_services::SourcePolicy::from_cidrs(&[s]).map(|_| s.to_owned())
}

#[derive(Debug, thiserror::Error)]
enum DaemonError {
    #[error("create data directory {path}: {source}")]
    CreateDataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("open state store {path}: {source}")]
    OpenStore {
        path: PathBuf,
        #[source]
        source: hearth_store::StoreError,
    },
    #[error("start API: {0}")]
    Api(#[from] hearth_api::ApiError),
    #[error(transparent)]
    Tls(tls::TlsSetupError),
    #[error("listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("start async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("install signal handler: {0}")]
    Signal(#[source] std::io::Error),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let logs = LogBuffer::new(4096);
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(logs.layer())
        .init();
    match run(args, logs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "hearthd failed");
            eprintln!("hearthd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Creates the data dir and its private parts: the data dir `0711` (others may
/// traverse it, as containers' unprivileged root must to reach `containers/`, but not
/// list it), `db/` and `run/` `0700`, and (for installs made before) the store file
/// `0600`. Called with the umask at 077.
fn private_dirs(data_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(data_dir)?;
    // Set, not only masked: created under umask 077 it would be 0700, and LXC refuses
    // to start a container whose root cannot traverse the data dir.
    let mode = std::fs::metadata(data_dir)?.permissions().mode() & 0o7777;
    std::fs::set_permissions(
        data_dir,
        std::fs::Permissions::from_mode((mode & !0o066) | 0o011),
    )?;
    for dir in ["db", "run"] {
        let dir = data_dir.join(dir);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let store = data_dir.join(STORE_FILE);
    if store.exists() {
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn run(args: Args, logs: LogBuffer) -> Result<(), DaemonError> {
    let data_dir = args.data_dir.clone();
    // The store (password hash, session and token hashes, the device-cookie key) and
    // the local secret are created under umask 077. The umask is restored afterwards:
    // files given to containers (overlay upper dirs, volumes) keep their usual modes,
    // or a service running as a non-root user could not read its own root directory.
    // Still one thread here, so the process-wide umask affects nothing else.
    let umask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    private_dirs(&data_dir).map_err(|source| DaemonError::CreateDataDir {
        path: data_dir.clone(),
        source,
    })?;
    // `package.install {path}` reads only below this (root only, 0700).
    let import = data_dir.join(hearth_layout::PACKAGE_IMPORT_DIR);
    std::fs::create_dir_all(&import)
        .and_then(|()| std::fs::set_permissions(&import, std::fs::Permissions::from_mode(0o700)))
        .map_err(|source| DaemonError::CreateDataDir {
            path: import.clone(),
            source,
        })?;
    let _ = hearth_services::set_install_settings(hearth_services::InstallSettings {
        extra_import_dirs: args.import_dir.clone(),
        // Checked by clap: the empty (public-only) policy is never the fallback of a typo.
        sources: hearth_services::SourcePolicy::from_cidrs(&args.allow_package_source)
            .unwrap_or_default(),
    });
    let mut config = ApiConfig::new(data_dir.clone());
    config.session_idle = Duration::from_secs(args.session_idle_secs);
    config.session_max_age = Duration::from_secs(args.session_max_age_secs);
    config.header_timeout = Duration::from_millis(args.header_timeout_ms);
    config.body_limit = args.body_limit;
    config.web_dir = args.web_dir.clone();
    config.setup_code_file = args.setup_code_file.clone();

    let store_path = data_dir.join(STORE_FILE);
    let seed = App::initial_document(&config.version)?;
    let store = Store::open(&store_path, seed).map_err(|source| DaemonError::OpenStore {
        path: store_path.clone(),
        source,
    })?;
    tracing::info!(path = %store_path.display(), revision = store.revision(), "state store open");
    let app = App::new(AppParts {
        store: store.clone(),
        logs,
        config,
    })?;
    rustix::process::umask(umask);
    services::recover(&data_dir, &store);
    let services_store = store.clone();
    let names_store = store.clone();
    let mcp = mcp::endpoint(app.dispatcher(), app.authenticator(), store);
    let app = app.with_mcp(mcp);
    let setup_code = app.setup_code().map(str::to_owned);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hearthd")
        .build()
        .map_err(DaemonError::Runtime)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|source| DaemonError::Bind {
                addr: args.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| DaemonError::Bind {
            addr: args.listen,
            source,
        })?;
        // Handlers first: a signal right after the announcement must shut down cleanly.
        let cancel = CancellationToken::new();
        let (https, tls_lines) = match args.https_listen {
            None => (None, Vec::new()),
            Some(a) => {
                let (t, lines) = tls_listeners(&args, a, &data_dir, &cancel).await?;
                (Some(t), lines)
            }
        };
        let signals = wait_for_signal(cancel.clone())?;
        let supervisor = services::spawn(
            &data_dir,
            services_store,
            args.container_init.clone(),
            args.service_log_max_bytes,
            cancel.child_token(),
        );
        let names = names::spawn(
            names_store,
            names::Names::from_flags(args.mdns, args.set_kernel_hostname),
            cancel.child_token(),
        );
        announce(addr, setup_code.as_deref(), &data_dir);
        for line in tls_lines {
            println!("{line}");
        }
        if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
            tracing::warn!(error = %e, "sending READY=1 to NOTIFY_SOCKET");
        }
        let served = hearth_api::serve_with_tls(listener, https, app, cancel.clone()).await;
        // Containers keep running; the next start adopts them.
        supervisor.shutdown().await;
        let _ = names.await;
        signals.abort();
        tracing::info!("hearthd stopped");
        served.map_err(DaemonError::from)
    })
}

/// Binds the HTTPS listener (and the redirect listener when asked) and prints them.
async fn tls_listeners(
    args: &Args,
    addr: SocketAddr,
    data_dir: &Path,
    cancel: &CancellationToken,
) -> Result<(hearth_api::TlsListener, Vec<String>), DaemonError> {
    let bind = |addr| async move {
        let l = tokio::net::TcpListener::bind(addr).await;
        let l = l.and_then(|l| l.local_addr().map(|a| (l, a)));
        l.map_err(|source| DaemonError::Bind { addr, source })
    };
    let (l, https_addr) = bind(addr).await?;
    let (tls, ca) = tls::https(data_dir, l, https_addr).map_err(DaemonError::Tls)?;
    let mut lines = vec![format!("hearthd listening on https://{https_addr}")];
    if let Some(r) = args.http_redirect_listen {
        let (l, raddr) = bind(r).await?;
        tls::spawn_redirect(l, https_addr.port(), ca, cancel.clone());
        lines.push(format!(
            "hearthd redirecting http://{raddr} to https (CA at /hearth-ca.crt)"
        ));
    }
    Ok((tls, lines))
}

/// Prints where hearthd listens and, in setup mode, how to finish setup.
fn announce(addr: SocketAddr, setup_code: Option<&str>, data_dir: &std::path::Path) {
    let setup_done = setup_code.is_none();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "hearthd listening on http://{addr}");
    if let Some(code) = setup_code {
        // The one place the code is shown (console); it is never logged.
        eprintln!("hearthd: setup code {code}");
        let _ = writeln!(
            out,
            "setup mode: no password yet. Setup code: {code}. Finish setup with:\n  curl -s http://{addr}{RPC_PATH} \
             -H 'content-type: application/json' \
             -d '{{\"method\":\"setup.complete\",\"params\":{{\"password\":\"<at least 8 chars>\",\"hostname\":\"hearth\",\"setupCode\":\"{code}\"}}}}'"
        );
    } else {
        let _ = writeln!(out, "setup is complete; log in with auth.login");
    }
    let _ = writeln!(
        out,
        "data: {} (local CLI auth cookie: {}/{})",
        data_dir.display(),
        data_dir.display(),
        hearth_layout::LOCAL_COOKIE_FILE
    );
    let _ = out.flush();
    tracing::info!(%addr, setup_done, "listening");
}

/// Cancels `cancel` on the first SIGINT or SIGTERM.
fn wait_for_signal(cancel: CancellationToken) -> Result<tokio::task::JoinHandle<()>, DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    Ok(tokio::spawn(async move {
        let which = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
            () = cancel.cancelled() => return,
        };
        tracing::info!(signal = which, "shutting down");
        cancel.cancel();
    }))
}
