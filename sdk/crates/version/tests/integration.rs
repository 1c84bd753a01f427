//! Integration tests of `hearth-version` through its public API only.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[path = "integration/ordering.rs"]
mod ordering;
#[path = "integration/properties.rs"]
mod properties;
#[path = "integration/satisfies.rs"]
mod satisfies;
#[path = "integration/serde.rs"]
mod serde;
#[path = "integration/vectors.rs"]
mod vectors;
