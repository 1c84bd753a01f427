//! hearthd's HTTP surface: the JSON-RPC dispatcher over the method table, the live
//! state stream, authentication and the HTTP server that carries them.
//!
//! # Purpose
//! Turn the method table of `hearth-rpc` into a running API. [`Dispatcher`] binds every
//! [`hearth_rpc::Method`] to exactly one typed handler and answers
//! [`Dispatcher::call`] for a [`Caller`]; [`Authenticator`] turns request headers
//! (session cookie, `Authorization: Bearer`, local cookie, `Origin`) into a
//! [`Principal`]. [`serve`] runs the hyper server: `POST /rpc/v1` (JSON-RPC 2.0, single
//! and batch), `GET /ws/db` (dump + patches), `GET /ws/logs/<id>` (a service's log
//! lines, followed), a slot for `/mcp` ([`Endpoint`]) and the web UI's files on every
//! other `GET` (`static_files.rs`, when [`ApiConfig::web_dir`] is set). The
//! MCP server reuses `Dispatcher` and `Authenticator` in-process.
//!
//! # Design
//! * No god context: each handler module registers closures that capture only the
//!   services they use (the store, the auth service, the log buffer, …).
//! * Params are decoded with `serde_path_to_error`, so `-32602` names the field.
//! * Internal errors are mapped to the wire [`hearth_rpc::RpcError`] in one place
//!   (`error.rs`); the details go to the log, not to the client.
//! * Every connection and WebSocket task is tracked by a `TaskTracker` and listens to the
//!   server's `CancellationToken`; [`serve`] returns after they finished or the grace
//!   period ran out.
//! * Durable state lives in `hearth-store`: the public half is what the UI sees and what
//!   `/ws/db` streams; the private half holds the password hash, sessions and token
//!   hashes (see `doc.rs` for the layout).
//!
//! # Invariants
//! * A method not marked `Auth::Public` never runs for an anonymous caller.
//! * A `read`-scoped API token runs only methods with `MUTATES = false` and
//!   `READS_SECRETS = false` (checked in [`Dispatcher::call`]); it cannot upload
//!   packages or open a service's log stream. A password change revokes every token.
//! * A password is hashed only after a login attempt was reserved with the rate
//!   limiter (per address, IPv6 by /64, plus a global budget; known devices — a signed
//!   `device` cookie from an earlier login — per device instead), and only while a slot
//!   of the bounded hashing queue is free (else code 37 "busy, retry after").
//! * Unauthenticated requests without a known-device cookie take one of
//!   [`ApiConfig::max_anonymous`] places (else 503); a batch holds at most one
//!   `rpc.discover` and its responses stop at [`ApiConfig::max_batch_response`] bytes.
//! * The local secret is accepted only as the `x-hearth-local-auth` header.
//! * Secrets (session tokens, API tokens, the local cookie) are stored only as SHA-256
//!   hashes; passwords only as argon2id PHC strings.
//! * A request carrying cookies with a foreign `Origin` is refused before dispatch.
//!
//! # Limitations
//! * The plain listener is HTTP/1.1 only; the HTTPS listener ([`serve_with_tls`])
//!   offers `h2` and `http/1.1` by ALPN and marks the session cookie `Secure`.
//! * Batches run sequentially, in order.
//!
//! # Rejected alternatives
//! * axum/tower: a router and middleware stack for four routes; plain hyper keeps the
//!   dependency tree small and the per-request path obvious.
//! * Session state only in memory (StartOS `ephemeral`): sessions must survive restarts.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod auth;
mod config;
mod dispatch;
mod doc;
mod error;
mod handlers;
mod host_check;
mod http;
mod logs;
mod logs_stream;
mod metrics;
mod server;
mod setup_code;
mod static_files;
mod tls;
mod upload;
mod ws;

pub use auth::{Authenticator, Principal};
pub use config::ApiConfig;
pub use dispatch::{CallOutput, Caller, Dispatcher, SessionCookie};
pub use error::ApiError;
pub use http::{Body, Endpoint, RequestContext};
pub use logs::{LogBuffer, LogLayer};
pub use server::{App, AppParts, serve, serve_with_tls};
pub use tls::TlsListener;
