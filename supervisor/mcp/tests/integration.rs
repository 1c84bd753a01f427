//! Integration tests of hearth-mcp: real MCP messages through `McpService::handle`
//! against a fake backend and a real store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod integration {
    mod harness;
    mod protocol;
    mod subscriptions;
}
