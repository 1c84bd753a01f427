//! Integration tests of hearth-store through its public API only.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod integration {
    mod corruption;
    mod crash;
}
