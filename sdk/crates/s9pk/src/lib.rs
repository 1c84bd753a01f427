//! S9PK v2 package archives (work in progress).

pub mod manifest;
pub mod spec;
