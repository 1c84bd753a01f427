//! In-memory fakes of Hearth's OS traits, for unit tests of the supervisor.
//!
//! Design: each fake keeps its whole state behind one mutex, records every call in order
//! ([`FakeRuntime::calls`]) and lets a test inject faults: a named operation failing the
//! next time (or every time) it is called for a container, or a running container dying
//! ([`FakeRuntime::crash`]). Fakes follow the documented contract of the trait they
//! implement — the same idempotency and error cases as the real implementation — so that
//! a test passing against the fake means something.
//!
//! Current fakes: [`FakeRuntime`] for `hearth_lxc::ContainerRuntime`, kept honest by
//! [`check_runtime_contract`], which hearth-lxc also runs against the real runtime.
//! Rejected: mock frameworks with per-call expectations (tests would restate the
//! implementation instead of checking behaviour).

mod contract;
mod runtime;

pub use contract::check_runtime_contract;
pub use runtime::{Call, FakeRuntime, Op};
