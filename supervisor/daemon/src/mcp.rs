//! Mounts the MCP server (`hearth-mcp`) at `/mcp`: the JSON-RPC dispatcher and the
//! authenticator of `hearth-api` seen through [`hearth_mcp::McpBackend`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hearth_api::{Authenticator, Body, Caller, Dispatcher, Endpoint, RequestContext};
use hearth_mcp::{McpBackend, McpConfig, McpService};
use hearth_rpc::RpcError;
use hearth_store::Store;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

/// The API's dispatcher and authenticator, as the MCP server needs them.
struct Backend {
    dispatcher: Dispatcher,
    auth: Arc<Authenticator>,
}

impl McpBackend for Backend {
    type Principal = Caller;

    async fn authenticate(&self, request: &http::request::Parts) -> Result<Caller, RpcError> {
        let principal = self.auth.authenticate(&request.headers).await?;
        if !principal.is_authenticated() {
            return Err(RpcError::unauthorized(
                "missing",
                "MCP requires authentication: send an API token (Authorization: Bearer, \
                 see auth.token.create) or a session cookie",
            ));
        }
        let mut caller = Caller::new(principal);
        caller.peer = request
            .extensions
            .get::<RequestContext>()
            .map(|c| c.peer.ip());
        caller.user_agent = request
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(caller)
    }

    async fn call(&self, caller: &Caller, method: &str, params: Value) -> Result<Value, RpcError> {
        self.dispatcher
            .call(caller, method, params)
            .await
            .map(|out| out.value)
    }

    fn same_principal(&self, a: &Caller, b: &Caller) -> bool {
        a.principal == b.principal
    }

    fn may_call(&self, caller: &Caller, method: &str) -> bool {
        self.dispatcher.allows(&caller.principal, method)
    }

    async fn still_valid(&self, caller: &Caller) -> bool {
        self.auth.still_valid(&caller.principal).await
    }
}

/// The MCP service as an [`Endpoint`] of the API server.
struct Mcp {
    service: McpService<Backend>,
    /// Set once the task that ends MCP sessions at server shutdown is running.
    shutdown_watch: AtomicBool,
}

impl Endpoint for Mcp {
    fn handle(
        &self,
        mut req: http::Request<Incoming>,
        ctx: RequestContext,
    ) -> Pin<Box<dyn Future<Output = http::Response<Body>> + Send>> {
        if !self.shutdown_watch.swap(true, Ordering::AcqRel) {
            // Open SSE streams must end when the server drains, or shutdown would wait
            // for its grace period.
            let (service, shutdown) = (self.service.clone(), ctx.shutdown.clone());
            tokio::spawn(async move {
                shutdown.cancelled().await;
                service.shutdown();
            });
        }
        let service = self.service.clone();
        req.extensions_mut().insert(ctx);
        Box::pin(async move {
            service
                .handle(req)
                .await
                .map(|body| body.map_err(|never| match never {}).boxed())
        })
    }
}

/// The `/mcp` endpoint over `app`'s dispatcher and authenticator. Needs no runtime yet.
pub(crate) fn endpoint(
    dispatcher: Dispatcher,
    auth: Arc<Authenticator>,
    store: Store,
) -> Arc<dyn Endpoint> {
    let backend = Arc::new(Backend { dispatcher, auth });
    Arc::new(Mcp {
        service: McpService::new(backend, store, McpConfig::default()),
        shutdown_watch: AtomicBool::new(false),
    })
}
