//! Integration tests of `hearth-s9pk` through its public API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod integration {
    pub(crate) mod common;
    mod roundtrip;
}
