//! [`McpService`]: the `/mcp` endpoint as one async function for the API router.

use std::convert::Infallible;
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hearth_rpc::RpcError;
use hearth_store::Store;
use http::{Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, SessionConfig};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::backend::McpBackend;
use crate::session::{Caller, Session, Shared};
use crate::tools::ToolTable;

/// The response body type of [`McpService::handle`] (SSE streams stay open).
pub type McpBody = BoxBody<Bytes, Infallible>;

/// Settings of the MCP endpoint; [`Default`] is what `hearthd` uses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct McpConfig {
    /// Quiet time collected into one `notifications/resources/updated` per URI.
    pub debounce: Duration,
    /// A session with no request and no notification for this long is closed; the
    /// client then gets `404` and initializes again.
    pub session_idle_timeout: Duration,
    /// How often a session with subscriptions re-checks that its subscriber is still
    /// logged in (also checked before each notification).
    pub revalidate_every: Duration,
    /// Largest accepted POST body.
    pub max_body_bytes: usize,
    /// `Host` values accepted (DNS-rebinding guard). `None`: any Host. A personal server
    /// is reached as `hostname.local`, by IP and by onion address, and every request is
    /// authenticated (the `session` cookie is not sent to a rebound name), so the default
    /// is `None`.
    pub allowed_hosts: Option<Vec<String>>,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            debounce: Duration::from_millis(500),
            session_idle_timeout: Duration::from_secs(30 * 60),
            revalidate_every: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            allowed_hosts: None,
        }
    }
}

/// The MCP server. Cheap to clone; mount it at `/mcp` for GET, POST and DELETE:
/// `mcp.handle(request).await`.
pub struct McpService<B: McpBackend> {
    shared: Arc<Shared<B>>,
    http: StreamableHttpService<Session<B>, LocalSessionManager>,
}

impl<B: McpBackend> Clone for McpService<B> {
    fn clone(&self) -> Self {
        McpService {
            shared: Arc::clone(&self.shared),
            http: self.http.clone(),
        }
    }
}

impl<B: McpBackend> std::fmt::Debug for McpService<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpService").finish_non_exhaustive()
    }
}

impl<B: McpBackend> McpService<B> {
    /// Builds the service: the tool list from [`hearth_rpc::catalogue`], resources from
    /// `store`. Spawns nothing (no runtime needed).
    pub fn new(backend: Arc<B>, store: Store, config: McpConfig) -> Self {
        let shutdown = CancellationToken::new();
        let mut sessions = LocalSessionManager::default();
        sessions.session_config = {
            let mut c = SessionConfig::default();
            c.keep_alive = Some(config.session_idle_timeout);
            c
        };
        let sessions = Arc::new(sessions);
        let shared = Arc::new(Shared {
            backend,
            store,
            tools: ToolTable::from_catalogue(&hearth_rpc::catalogue()),
            debounce: config.debounce,
            revalidate_every: config.revalidate_every,
            sessions: Arc::clone(&sessions),
            owners: std::sync::Mutex::default(),
            shutdown: shutdown.clone(),
        });
        let mut http_config = StreamableHttpServerConfig::default()
            .with_max_request_body_bytes(config.max_body_bytes)
            .with_cancellation_token(shutdown.child_token());
        http_config = match config.allowed_hosts {
            Some(hosts) => http_config.with_allowed_hosts(hosts),
            None => http_config.disable_allowed_hosts(),
        };
        let factory_shared = Arc::clone(&shared);
        let http = StreamableHttpService::new(
            move || Ok(Session::new(Arc::clone(&factory_shared))),
            sessions,
            http_config,
        );
        McpService { shared, http }
    }

    /// Serves one request to `/mcp`: authenticates it through the backend (401 with the
    /// RPC error as JSON body on failure), then hands it to the Streamable HTTP
    /// transport. POST carries JSON-RPC messages (`initialize` answers with
    /// `Mcp-Session-Id`), GET opens the session's SSE stream, DELETE ends the session.
    pub async fn handle<Body>(&self, request: Request<Body>) -> Response<McpBody>
    where
        Body: http_body::Body + Send + 'static,
        Body::Data: Send + 'static,
        Body::Error: Display,
    {
        let (mut parts, body) = request.into_parts();
        let principal = match self.shared.backend.authenticate(&parts).await {
            Ok(principal) => principal,
            Err(error) => {
                tracing::debug!(method = %parts.method, error = %error, "MCP request refused");
                return unauthorized(&error);
            }
        };
        let session = parts
            .headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(id) = &session {
            let owner = self.owner_of(id);
            if let Some(owner) = owner
                && !self.shared.backend.same_principal(&owner, &principal)
            {
                tracing::warn!(method = %parts.method, "MCP request on a session opened by another principal; refused");
                return refused(&RpcError::unauthorized(
                    "sessionOwner",
                    "this MCP session was opened with other credentials; initialize a \
                     session of your own",
                ));
            }
        }
        parts.extensions.insert(Caller(principal.clone()));
        let is_delete = parts.method == http::Method::DELETE;
        let mut response = self.http.handle(Request::from_parts(parts, body)).await;
        if session.is_none()
            && let Some(new_id) = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
        {
            // A session was just created (initialize): it belongs to this principal.
            // Forget the owners of sessions that ended.
            let live: Vec<String> = {
                let sessions = self.shared.sessions.sessions.read().await;
                sessions.keys().map(|k| k.to_string()).collect()
            };
            let mut owners = self
                .shared
                .owners
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            owners.retain(|k, _| live.iter().any(|l| l == k));
            owners.insert(new_id.to_owned(), principal);
        }
        // rmcp answers a successful DELETE with 202; clients (the Python SDK) expect
        // 200 or 204 for "session ended", and nothing is pending, so say 204.
        if is_delete && response.status() == StatusCode::ACCEPTED {
            *response.status_mut() = StatusCode::NO_CONTENT;
        }
        response
    }

    fn owner_of(&self, session: &str) -> Option<B::Principal> {
        self.shared
            .owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(session)
            .cloned()
    }

    /// Ends every session and its subscriptions (graceful shutdown of `hearthd`).
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }
}

/// The header naming the MCP session.
const SESSION_HEADER: &str = "mcp-session-id";

/// 403 with the RPC error as JSON body.
fn refused(error: &RpcError) -> Response<McpBody> {
    let mut response = unauthorized(error);
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

/// 401, or 403 for a request from a foreign `Origin` (as `/rpc/v1` answers).
fn unauthorized(error: &RpcError) -> Response<McpBody> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": error});
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = if error.data_field("reason") == Some(&"foreignOrigin".into()) {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::UNAUTHORIZED
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
