//! Integration tests of hearth-api against a real server on 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[path = "integration/common.rs"]
mod common;

#[path = "integration/auth.rs"]
mod auth;
#[path = "integration/bad_input.rs"]
mod bad_input;
#[path = "integration/host.rs"]
mod host;
#[path = "integration/hostname.rs"]
mod hostname;
#[path = "integration/limits.rs"]
mod limits;
#[path = "integration/methods.rs"]
mod methods;
#[path = "integration/package.rs"]
mod package;
#[path = "integration/setup_code.rs"]
mod setup_code;
#[path = "integration/stream.rs"]
mod stream;
#[path = "integration/tls.rs"]
mod tls;
#[path = "integration/web.rs"]
mod web;
