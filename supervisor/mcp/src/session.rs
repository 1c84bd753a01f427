//! One MCP session: the `ServerHandler` rmcp runs per `Mcp-Session-Id` (tools,
//! resources, subscriptions; the subscription task itself is in `watch`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hearth_rpc::RpcError;
use hearth_store::{Store, StoreError};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, InitializeResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    ResourceContents, ServerCapabilities, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::Value;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::backend::McpBackend;
use crate::resources::{self, pointer_of};
use crate::tools::{self, ToolTable};
use crate::watch::{Subscriptions, Watcher};

/// The protocol revisions served. Both use `initialize` and `Mcp-Session-Id`; newer
/// revisions are answered with the newest of these (the client may then accept it).
const PROTOCOL_VERSIONS: &[ProtocolVersion] =
    &[ProtocolVersion::V_2025_03_26, ProtocolVersion::V_2025_06_18];

/// State shared by every session of one [`crate::McpService`].
pub(crate) struct Shared<B: McpBackend> {
    pub(crate) backend: Arc<B>,
    pub(crate) store: Store,
    pub(crate) tools: ToolTable,
    pub(crate) debounce: Duration,
    pub(crate) revalidate_every: Duration,
    /// The transport's sessions, so a watcher can close its session.
    pub(crate) sessions: Arc<LocalSessionManager>,
    /// Who opened each session (by `Mcp-Session-Id`); requests by anyone else on it
    /// are refused.
    pub(crate) owners: Mutex<HashMap<String, B::Principal>>,
    /// Cancelled when the service shuts down; parent of every session's watcher.
    pub(crate) shutdown: CancellationToken,
}

/// The authenticated principal, put into the HTTP request's extensions by
/// [`crate::McpService::handle`] and read back by tool calls.
#[derive(Clone)]
pub(crate) struct Caller<P>(pub(crate) P);

/// One session's handler. rmcp creates it at `initialize` and drops it when the
/// session ends (DELETE, idle timeout, shutdown), which stops its watcher.
pub(crate) struct Session<B: McpBackend> {
    shared: Arc<Shared<B>>,
    subscriptions: Subscriptions,
    watcher: Mutex<Option<DropGuard>>,
}

impl<B: McpBackend> Session<B> {
    pub(crate) fn new(shared: Arc<Shared<B>>) -> Self {
        Session {
            shared,
            subscriptions: Arc::default(),
            watcher: Mutex::new(None),
        }
    }

    fn caller(context: &RequestContext<RoleServer>) -> Result<B::Principal, McpError> {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller<B::Principal>>())
            .map(|c| c.0.clone())
            .ok_or_else(|| {
                tracing::error!("MCP request without an authenticated caller");
                McpError::internal_error("request was not authenticated", None)
            })
    }

    /// Starts the watcher on the first subscription; it lives as long as the session
    /// and acts on behalf of the principal that subscribed first.
    fn ensure_watcher(&self, context: &RequestContext<RoleServer>) -> Result<(), McpError> {
        let mut slot = self.watcher.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            return Ok(());
        }
        let principal = Self::caller(context)?;
        let session_id = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .map(Arc::<str>::from);
        let stop = self.shared.shutdown.child_token();
        let watcher = Watcher {
            peer: context.peer.clone(),
            shared: Arc::clone(&self.shared),
            principal,
            session_id,
            subscriptions: Arc::clone(&self.subscriptions),
            stop: stop.clone(),
        };
        tokio::spawn(watcher.run());
        *slot = Some(stop.drop_guard());
        Ok(())
    }
}

fn store_error(uri: &str, e: StoreError) -> McpError {
    match e {
        StoreError::PointerNotFound { .. } => {
            McpError::resource_not_found(format!("nothing at {uri}"), None)
        }
        StoreError::InvalidPointer { reason, .. } => {
            McpError::invalid_params(format!("{uri}: {reason}"), None)
        }
        other => {
            tracing::error!(error = %other, uri, "reading the store failed");
            McpError::internal_error("reading the state failed", None)
        }
    }
}

// `resources/subscribe` and `unsubscribe` are what protocol 2025-03-26/06-18 define;
// rmcp marks them deprecated in favour of 2026's `subscriptions/listen`.
#[allow(deprecated)]
impl<B: McpBackend> ServerHandler for Session<B> {
    fn get_info(&self) -> InitializeResult {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_subscribe()
            .build();
        InitializeResult::new(capabilities)
            .with_protocol_version(ProtocolVersion::V_2025_06_18)
            .with_server_info(Implementation::new("hearth", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Hearth is a personal server OS. Tools are its RPC methods (same names, \
                 same params). The resource hearth:///public is the state the UI shows; \
                 subscribe to it (or a sub-path) to be told when it changes.",
            )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(PROTOCOL_VERSIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        // Only the tools this caller may use (a read-only token sees read-only tools).
        let caller = Self::caller(&context)?;
        let tools = self
            .shared
            .tools
            .tools()
            .into_iter()
            .filter(|t| self.shared.backend.may_call(&caller, &t.name))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let name = request.name.as_ref();
        if !self.shared.tools.contains(name) {
            return Err(McpError::invalid_params(
                format!("unknown tool {name:?}"),
                None,
            ));
        }
        let caller = Self::caller(&context)?;
        if !self.shared.backend.may_call(&caller, name) {
            let e = RpcError::unauthorized(
                "scope",
                format!(
                    "these credentials may not call {name:?} (it changes state or reveals secrets)"
                ),
            );
            return Ok(tools::failure(&e).into());
        }
        let params = Value::Object(request.arguments.clone().unwrap_or_default());
        let result: Result<Value, RpcError> = self.shared.backend.call(&caller, name, params).await;
        tracing::debug!(tool = name, ok = result.is_ok(), "MCP tool call");
        Ok(match result {
            Ok(value) => tools::success(value),
            Err(error) => tools::failure(&error),
        }
        .into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let public = self
            .shared
            .store
            .get("/public")
            .map_err(|e| store_error(resources::ROOT_URI, e))?;
        Ok(ListResourcesResult::with_all_items(resources::list(
            &public,
        )))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri.as_str();
        let pointer = pointer_of(uri).map_err(|e| McpError::invalid_params(e.0, None))?;
        let value = self
            .shared
            .store
            .get(&format!("/public{pointer}"))
            .map_err(|e| store_error(uri, e))?;
        let text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
        let contents = ResourceContents::text(text, uri).with_mime_type("application/json");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let pointer = pointer_of(&request.uri).map_err(|e| McpError::invalid_params(e.0, None))?;
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request.uri.clone(), pointer);
        self.ensure_watcher(&context)?;
        tracing::debug!(uri = request.uri, "MCP resource subscribed");
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&request.uri);
        Ok(())
    }
}
