//! Integration tests of hearth-services through its public API, with real signed
//! packages built in the test and a real store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod integration {
    mod common;
    mod download;
    mod import;
    mod install;
    mod lifecycle;
}
