//! Hearth's RPC contract: one table of methods with typed params and results.
//!
//! # Purpose
//! Every method `hearthd` answers is declared exactly once, in [`methods`], as a
//! zero-sized type implementing [`Method`]: its `noun.verb` name, a description written
//! for humans *and* LLMs, who may call it ([`Auth`]), whether it changes state, and the
//! Rust types of its params and result (with JSON Schema via `schemars`). The JSON-RPC
//! dispatcher (`hearth-api`), the MCP tool list, `rpc.discover` ([`openrpc_document`])
//! and the CLI are all derived from [`catalogue`]. Errors crossing the wire are one type,
//! [`RpcError`], with stable numeric codes ([`ErrorCode`], append-only).
//!
//! # Design
//! * Contract crate: only `serde`, `serde_json` and `schemars`; no async runtime and no
//!   HTTP library, so the CLI and tests can depend on it cheaply.
//! * Methods are declared with one macro invocation so the catalogue cannot forget one;
//!   binding handlers is the server's job (`hearth-api` has a test that every entry of
//!   [`catalogue`] has exactly one handler).
//! * Params are JSON objects with camelCase keys and `deny_unknown_fields`, as StartOS's
//!   UI sends them; a misspelt field is an error, not silently ignored.
//!
//! # Invariants
//! * Method names are unique and match `noun(.noun)*.verb` in lowercase with dashes.
//! * Numeric error codes never change meaning; new ones are appended.
//!
//! # Rejected alternatives
//! * A proc-macro attribute on handler functions (StartOS's rpc-toolkit): it ties the
//!   contract to the server crate and hides the table; the CLI could not use it.
//! * One big enum of requests: matching on it is fine for dispatch but cannot carry
//!   per-method schema and metadata as associated constants.
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod catalogue;
mod error;
pub mod hostname;
pub mod methods;
mod openrpc;
mod wire;

pub use catalogue::{Auth, Method, MethodInfo, catalogue, method_info, read_scope};
pub use error::{ErrorCode, RpcError};
pub use hostname::{Hostname, HostnameError};
pub use openrpc::openrpc_document;
pub use wire::{Id, Request, Response, ResponsePayload};

/// Version of the JSON-RPC protocol spoken (`"2.0"`).
pub const JSONRPC_VERSION: &str = "2.0";
