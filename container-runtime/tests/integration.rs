//! Integration tests: the real `hearth-container` binary (with `--subreaper` instead of
//! being PID 1) runs real programs from a spec in a temp dir and is driven over its
//! real Unix socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod integration {
    mod actions;
    mod daemons;
    pub(crate) mod harness;
    mod rpc;
}
