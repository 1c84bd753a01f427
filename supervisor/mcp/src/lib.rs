//! Hearth's MCP server: `/mcp`, Streamable HTTP, protocol revisions 2025-03-26 and
//! 2025-06-18.
//!
//! # Purpose
//! Lets an AI agent operate a Hearth server with the same powers and the same checks as
//! the web UI: every RPC method is a tool, the public state is a resource that can be
//! read and subscribed to.
//!
//! # Design
//! - Built on the official Rust SDK, `rmcp`: its `StreamableHttpService` does the
//!   transport (sessions with `Mcp-Session-Id`, SSE, DELETE, body limit, protocol
//!   version negotiation); this crate implements `ServerHandler` per session.
//! - Tools are generated from [`hearth_rpc::catalogue`] (name, description, params JSON
//!   Schema, `readOnlyHint` from `mutates`, `destructiveHint` from `destructive`),
//!   minus `setup.*` and `auth.login`. `tools/list` shows a caller only the tools
//!   [`McpBackend::may_call`] allows it (a read-scoped token: read-only tools). A
//!   call goes through [`McpBackend::call`], i.e. the JSON-RPC dispatcher, so
//!   validation and handlers are shared; failures are `isError` results carrying the
//!   RPC error.
//! - Auth: [`McpService::handle`] authenticates every HTTP request (POST, GET, DELETE)
//!   with [`McpBackend::authenticate`], the UI's check (session cookie or bearer
//!   token), and passes the principal to tool calls through the request extensions.
//! - Resources: `hearth:///public` + an RFC 6901 pointer (percent-encoded). Only the
//!   public half is reachable. `resources/subscribe` starts one watcher task per
//!   session on the store's revision stream; a revision whose public patch overlaps a
//!   subscribed pointer marks that URI dirty, and dirty URIs are notified once per
//!   [`McpConfig::debounce`] window over the session's SSE stream.
//! - Dependency direction: `hearth-api` depends on this crate and implements
//!   [`McpBackend`]; this crate knows nothing of hyper or the API's auth internals.
//!
//! # Invariants
//! - No request reaches a handler without a principal from [`McpBackend::authenticate`].
//! - A session's watcher ends with the session (DELETE, idle timeout) or at
//!   [`McpService::shutdown`].
//! - A session belongs to the principal that initialized it: every request is
//!   authenticated on its own, and one with another principal's credentials on an
//!   existing `Mcp-Session-Id` is refused with 403 (`data.reason` `sessionOwner`).
//!
//! # Limitations
//! - An open SSE stream of a session without subscriptions is not closed when its
//!   session cookie is logged out (sessions with subscriptions are revalidated).
//! - Sessions live in memory; after a restart clients get 404 and initialize again.
//!
//! # Rejected alternatives
//! - Writing the protocol by hand (as StartOS did): `rmcp` serves a tool list built at
//!   run time from the method table, so hand-rolling would only add code to maintain.
//! - A hand-written tool registry (StartOS's 89 entries): it drifts from the API.
//! - `rmcp`'s `#[tool]` macros: they want one Rust function per tool; ours are data.

mod backend;
mod resources;
mod service;
mod session;
mod tools;
mod watch;

pub use backend::McpBackend;
pub use service::{McpBody, McpConfig, McpService};
