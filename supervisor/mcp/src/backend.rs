//! The seam to `hearth-api`: authentication and in-process dispatch.

use std::future::Future;

use hearth_rpc::RpcError;
use serde_json::Value;

/// What the MCP server needs from the API server.
///
/// # Wiring in `hearthd`
/// `hearth-api` mounts any `Arc<dyn Endpoint>` at `/mcp`; the daemon adapts:
/// ```ignore
/// struct McpGlue { dispatcher: hearth_api::Dispatcher, auth: Arc<hearth_api::Authenticator> }
/// impl hearth_mcp::McpBackend for McpGlue {
///     type Principal = hearth_api::Caller;
///     async fn authenticate(&self, req: &http::request::Parts) -> Result<Caller, RpcError> {
///         let principal = self.auth.authenticate(&req.headers).await?;
///         if !principal.is_authenticated() {
///             return Err(RpcError::unauthorized("missing", "log in or send an API token"));
///         }
///         let mut caller = Caller::new(principal);
///         caller.peer = req.extensions.get::<RequestContext>().map(|c| c.peer.ip());
///         Ok(caller)
///     }
///     async fn call(&self, c: &Caller, method: &str, params: Value) -> Result<Value, RpcError> {
///         self.dispatcher.call(c, method, params).await.map(|out| out.value)
///     }
///     fn same_principal(&self, a: &Caller, b: &Caller) -> bool { a.principal == b.principal }
///     fn may_call(&self, c: &Caller, method: &str) -> bool { self.dispatcher.allows(&c.principal, method) }
///     async fn still_valid(&self, c: &Caller) -> bool { self.auth.still_valid(&c.principal).await }
/// }
/// struct McpEndpoint(hearth_mcp::McpService<McpGlue>);
/// impl hearth_api::Endpoint for McpEndpoint {
///     fn handle(&self, mut req: Request<Incoming>, ctx: RequestContext) -> Pin<Box<..>> {
///         let mcp = self.0.clone();
///         req.extensions_mut().insert(ctx);
///         Box::pin(async move { mcp.handle(req).await.map(|b| b.map_err(|n| match n {}).boxed()) })
///     }
/// }
/// // app.with_mcp(Arc::new(McpEndpoint(McpService::new(glue, store, McpConfig::default()))))
/// ``` `hearth-api` implements it with the
/// same auth check and the same dispatcher as `POST /rpc/v1`, so a tool call and a
/// JSON-RPC call of the same method behave identically.
pub trait McpBackend: Send + Sync + 'static {
    /// Who made a request (a session, an API token, the local CLI cookie …). Attached to
    /// every tool call.
    type Principal: Clone + Send + Sync + 'static;

    /// Authenticates one HTTP request exactly like the UI's requests: `session` cookie
    /// (with the Origin check for cookie auth) or `Authorization: Bearer`. Every MCP
    /// request (POST, GET, DELETE) goes through this; an error becomes `401` with the
    /// error as JSON body.
    fn authenticate(
        &self,
        request: &http::request::Parts,
    ) -> impl Future<Output = Result<Self::Principal, RpcError>> + Send;

    /// Calls `method` with `params` (a JSON object) on behalf of `principal` through the
    /// JSON-RPC dispatcher (params validation, auth requirement, handler).
    fn call(
        &self,
        principal: &Self::Principal,
        method: &str,
        params: Value,
    ) -> impl Future<Output = Result<Value, RpcError>> + Send;

    /// Whether `a` and `b` are the same principal. An MCP session belongs to the
    /// principal that opened it (`initialize`); a request on it with another one's
    /// credentials is refused.
    fn same_principal(&self, a: &Self::Principal, b: &Self::Principal) -> bool;

    /// Whether `principal` may call `method` (e.g. a read-only API token may not call
    /// methods that change state). `tools/list` shows only such tools; the call itself
    /// is still checked by [`McpBackend::call`].
    fn may_call(&self, principal: &Self::Principal, method: &str) -> bool;

    /// Whether `principal` is still valid (a session can be logged out, a token revoked).
    /// Checked periodically while a session has subscriptions; when it turns false the
    /// MCP session is closed, which ends its SSE stream.
    fn still_valid(&self, principal: &Self::Principal) -> impl Future<Output = bool> + Send;
}
