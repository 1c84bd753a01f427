//! Integration tests of `hearth-s9pk` through its public API, plus an
//! independent decoder/encoder (`mini`) that checks the bytes against the spec.
// Tests run on 64-bit hosts; offsets are small.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::type_complexity
)]

mod integration {
    mod bad_input;
    pub(crate) mod common;
    mod filter;
    mod foreign;
    mod fuzz;
    mod golden;
    pub(crate) mod mini;
    mod roundtrip;
}
