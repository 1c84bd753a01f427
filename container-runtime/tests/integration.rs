//! Integration tests: the real `hearth-container` binary (with `--subreaper` instead of
//! being PID 1) runs real programs from a spec in a temp dir and is driven over its
//! real Unix socket. `root_*` tests need root and `unshare` (util-linux): they run the
//! binary as real PID 1 of a PID namespace, fail without them, and run under `make test`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod integration {
    mod actions;
    mod daemons;
    pub(crate) mod harness;
    mod root_pid1;
    mod rpc;
}
