//! [`App`] (the object graph of the API) and [`serve`] (the accept loop and lifecycle).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hearth_layout::LOCAL_COOKIE_FILE;
use hearth_store::Store;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Authenticator, secret};
use crate::dispatch::Dispatcher;
use crate::doc::{self, SERVER_INFO};
use crate::http::{Endpoint, RequestContext};
use crate::{ApiConfig, ApiError, LogBuffer};

/// What the API needs from its owner.
#[derive(Debug)]
pub struct AppParts {
    /// The state store (opened with [`App::initial_document`] as seed).
    pub store: Store,
    /// The log ring buffer fed by the process's tracing subscriber.
    pub logs: LogBuffer,
    /// Settings.
    pub config: ApiConfig,
}

/// Everything a request handler may reach; built once by [`App::new`].
pub(crate) struct Shared {
    pub(crate) dispatcher: Dispatcher,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) store: Store,
    pub(crate) config: ApiConfig,
    pub(crate) mcp: Option<Arc<dyn Endpoint>>,
    /// Connection and WebSocket tasks.
    pub(crate) tracker: TaskTracker,
    /// Serialized patch frames shared by all `/ws/db` streams.
    pub(crate) frames: Arc<crate::ws::FrameCache>,
    /// Places for unauthenticated requests ([`ApiConfig::max_anonymous`]).
    pub(crate) anonymous: Arc<tokio::sync::Semaphore>,
    /// DNS-rebinding protection, checked before routing.
    pub(crate) hosts: crate::host_check::HostCheck,
}

/// The API application: dispatcher, authenticator and routes.
pub struct App {
    shared: Shared,
    setup_code: Option<Arc<crate::setup_code::SetupCode>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("dispatcher", &self.shared.dispatcher)
            .field("mcp", &self.shared.mcp.is_some())
            .finish_non_exhaustive()
    }
}

impl App {
    /// The seed of a new state store (with a fresh random server id).
    pub fn initial_document(version: &str) -> Result<Value, ApiError> {
        Ok(doc::seed(&secret::random_id()?, version))
    }

    /// Builds the application: records the running version in the store, writes the
    /// local auth cookie, binds every method to its handler.
    pub fn new(parts: AppParts) -> Result<App, ApiError> {
        let AppParts {
            store,
            logs,
            config,
        } = parts;
        let version = config.version.clone();
        store
            .mutate(|d| {
                doc::object_mut(d, SERVER_INFO).map(|info| {
                    info.insert("version".into(), Value::String(version));
                })
            })
            .map_err(|e| match e {
                hearth_store::MutateError::Store(source) => ApiError::Store {
                    op: "record version",
                    source,
                },
                hearth_store::MutateError::Rejected(e) => ApiError::Document {
                    pointer: SERVER_INFO.into(),
                    reason: e.message,
                },
            })?;
        let auth = Authenticator::new(
            store.clone(),
            &config.data_dir.join(LOCAL_COOKIE_FILE),
            config.session_idle,
            config.session_max_age,
            config.login_failure_budget,
        )?;
        let setup_code = crate::setup_code::pending(&auth, &config)?;
        let registry = crate::handlers::registry(
            &store,
            &auth,
            &logs,
            &config,
            Instant::now(),
            setup_code.clone(),
        );
        let dispatcher = Dispatcher::new(registry)?;
        let anonymous = Arc::new(tokio::sync::Semaphore::new(config.max_anonymous.max(1)));
        let hosts = crate::host_check::HostCheck::new(
            store.clone(),
            Box::new(crate::host_check::SystemAddresses),
        );
        Ok(App {
            shared: Shared {
                dispatcher,
                auth,
                store,
                config,
                mcp: None,
                tracker: TaskTracker::new(),
                frames: Arc::default(),
                anonymous,
                hosts,
            },
            setup_code,
        })
    }

    /// Mounts an endpoint (the MCP server) at `/mcp`.
    #[must_use]
    pub fn with_mcp(mut self, endpoint: Arc<dyn Endpoint>) -> App {
        self.shared.mcp = Some(endpoint);
        self
    }

    /// The method dispatcher (for in-process transports such as MCP).
    pub fn dispatcher(&self) -> Dispatcher {
        self.shared.dispatcher.clone()
    }

    /// The authenticator (for in-process transports such as MCP).
    pub fn authenticator(&self) -> Arc<Authenticator> {
        Arc::clone(&self.shared.auth)
    }

    /// The first-boot setup code while setup is pending (printed once by hearthd).
    pub fn setup_code(&self) -> Option<&str> {
        self.setup_code
            .as_deref()
            .map(crate::setup_code::SetupCode::code)
    }

    /// Whether setup is complete.
    pub fn setup_complete(&self) -> bool {
        self.shared.auth.setup_complete()
    }
}

/// Serves `app` on `listener` until `cancel` fires, then stops accepting, lets open
/// connections finish their current request (WebSockets are closed with 1001) and
/// returns when all are done or [`ApiConfig::shutdown_grace`] has passed.
pub async fn serve(
    listener: TcpListener,
    app: App,
    cancel: CancellationToken,
) -> Result<(), ApiError> {
    serve_with_tls(listener, None, app, cancel).await
}

/// [`serve`], plus an HTTPS listener (`tls`) serving the same routes with ALPN
/// `h2` and `http/1.1` (see `crate::tls`).
pub async fn serve_with_tls(
    listener: TcpListener,
    tls: Option<crate::TlsListener>,
    app: App,
    cancel: CancellationToken,
) -> Result<(), ApiError> {
    let shared = Arc::new(app.shared);
    let tracker = shared.tracker.clone();
    loop {
        let (stream, peer, acceptor) = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = crate::tls::accept(&listener, tls.as_ref()) => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if tracker.len() >= shared.config.max_connections {
            tracing::warn!(peer = %peer, limit = shared.config.max_connections, "too many connections; closing");
            drop(stream);
            continue;
        }
        let (shared, cancel) = (Arc::clone(&shared), cancel.clone());
        match acceptor {
            None => tracker.spawn(connection(stream, peer, shared, cancel)),
            Some(a) => tracker.spawn(crate::tls::connection(a, stream, peer, shared, cancel)),
        };
    }
    tracker.close();
    tracing::info!(
        open = tracker.len(),
        "stopped accepting; draining connections"
    );
    if tokio::time::timeout(shared.config.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tracker.len(),
            "shutdown grace period over; dropping connections"
        );
    }
    Ok(())
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let ctx = RequestContext {
        peer,
        tls: shared.config.tls,
        shutdown: cancel.clone(),
    };
    let header_timeout = shared.config.header_timeout;
    let svc_shared = Arc::clone(&shared);
    let local = stream.local_addr().ok();
    let service = service_fn(move |req| {
        let (shared, ctx) = (Arc::clone(&svc_shared), ctx.clone());
        async move {
            match shared.hosts.refuse(&req, local) {
                Some(refused) => Ok(refused),
                None => crate::http::handle(shared, ctx, req).await,
            }
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}
