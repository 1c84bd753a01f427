//! The `ContainerRuntime` trait: the supervisor's only view of containers.
//!
//! Design: synchronous, object-safe (`Arc<dyn ContainerRuntime>`), `Send + Sync`. Every
//! operation is a handful of syscalls and short-lived processes, so the tokio supervisor
//! calls it through `tokio::task::spawn_blocking`; this keeps the crate free of an async
//! runtime and the fake trivially usable from plain unit tests.
//! Rejected: `async fn` in the trait (not dyn-compatible without boxing every future, and
//! the work underneath is blocking anyway).
//!
//! Contract (the fake in `hearth-testkit` follows it too):
//! - `create` is idempotent: the same spec again is a no-op; a different spec replaces
//!   the definition while stopped and is refused ([`RuntimeError::Busy`]) while running;
//! - `start` of a running container and `stop` of a stopped one succeed without effect;
//! - `destroy` stops (killing), removes everything `create` made, and succeeds for an
//!   unknown id;
//! - `state` and the lifecycle calls of an unknown id fail with [`RuntimeError::NotFound`];
//! - `exec` and `stats` are optional (default: [`RuntimeError::Unsupported`]); where
//!   implemented they need a running container ([`RuntimeError::NotRunning`]) and reports the
//!   command's exit code, not an error, when the command fails;
//! - `list` reports every created container, including ones a previous process created
//!   and started (containers outlive the supervisor).

use std::time::Duration;

use crate::mount::MountError;
use crate::spec::{ContainerId, ContainerSpec, ContainerState, ContainerStatus, SpecError};
use crate::stats::{ContainerStats, StatsError};
use crate::tool::ToolError;

/// Creates, runs and removes service containers.
pub trait ContainerRuntime: Send + Sync {
    /// Defines the container and prepares its root filesystem; does not start it.
    fn create(&self, spec: &ContainerSpec) -> Result<(), RuntimeError>;
    /// Starts init; returns once the container runs (or start failed).
    fn start(&self, id: &ContainerId) -> Result<(), RuntimeError>;
    /// Asks init to stop (SIGTERM) and kills everything after `timeout`.
    fn stop(&self, id: &ContainerId, timeout: Duration) -> Result<(), RuntimeError>;
    /// Stops (without grace) and removes the container and its host mounts. Keeps the data
    /// dir and volumes, which belong to the service.
    fn destroy(&self, id: &ContainerId) -> Result<(), RuntimeError>;
    /// The container's current state.
    fn state(&self, id: &ContainerId) -> Result<ContainerState, RuntimeError>;
    /// Every created container with its state, sorted by id.
    fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError>;
    /// Runs `argv` in the running container as its root with an empty environment and
    /// waits for it (debugging and one-off commands; services use the RPC socket).
    ///
    /// Optional: the default answers [`RuntimeError::Unsupported`].
    fn exec(&self, id: &ContainerId, argv: &[String]) -> Result<ExecOutput, RuntimeError> {
        let _ = argv;
        Err(RuntimeError::Unsupported {
            id: id.clone(),
            op: "exec",
        })
    }
    /// Resource use of the running container.
    ///
    /// Optional: the default answers [`RuntimeError::Unsupported`].
    fn stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        Err(RuntimeError::Unsupported {
            id: id.clone(),
            op: "stats",
        })
    }
}

/// What a command run by [`ContainerRuntime::exec`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code; `None` if killed by a signal.
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: Vec<u8>,
}

/// A runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No container with this id was created.
    #[error("container {id} does not exist")]
    NotFound {
        /// The container.
        id: ContainerId,
    },
    /// The spec was refused before anything happened.
    #[error("invalid container spec: {0}")]
    InvalidSpec(#[from] SpecError),
    /// The operation needs the container stopped.
    #[error("container {id} is running; {op} needs it stopped")]
    Busy {
        /// The container.
        id: ContainerId,
        /// The refused operation.
        op: &'static str,
    },
    /// The operation needs the container running.
    #[error("container {id} is not running; {op} needs it running")]
    NotRunning {
        /// The container.
        id: ContainerId,
        /// The refused operation.
        op: &'static str,
    },
    /// This runtime does not implement an optional operation.
    #[error("container {id}: {op} is not supported by this runtime")]
    Unsupported {
        /// The container.
        id: ContainerId,
        /// The operation.
        op: &'static str,
    },
    /// A file operation on the runtime's own state failed.
    #[error("{op} {path} for container {id}: {source}")]
    Io {
        /// The operation, e.g. "creating directory".
        op: &'static str,
        /// The container.
        id: ContainerId,
        /// The path.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Listing the runtime's containers failed.
    #[error("listing containers in {path}: {source}")]
    List {
        /// The directory listed.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Preparing or removing the root filesystem failed.
    #[error("container {id}: {source}")]
    Mount {
        /// The container.
        id: ContainerId,
        /// Why.
        source: MountError,
    },
    /// Reading the container's cgroup counters failed.
    #[error("container {id}: reading resource use: {source}")]
    Stats {
        /// The container.
        id: ContainerId,
        /// Why.
        source: StatsError,
    },
    /// An external tool (`lxc-start`, `ip` …) failed.
    #[error("container {id}: {op}: {source}")]
    Tool {
        /// The container.
        id: ContainerId,
        /// The operation, e.g. "start".
        op: &'static str,
        /// Why (boxed: tool errors carry argv and stderr).
        source: Box<ToolError>,
    },
    /// `lxc-start` failed; `log` holds the error lines of the container's LXC log.
    #[error("container {id}: start failed: {source}; LXC log: {log}")]
    StartFailed {
        /// The container.
        id: ContainerId,
        /// The failed `lxc-start`.
        source: Box<ToolError>,
        /// ERROR lines of `lxc.log` written during this start (last 10).
        log: String,
    },
    /// The container did not reach the expected state in time.
    #[error("container {id}: {op} timed out after {after:?} (state {state:?})")]
    Timeout {
        /// The container.
        id: ContainerId,
        /// The operation.
        op: &'static str,
        /// How long we waited.
        after: Duration,
        /// The last state seen.
        state: ContainerState,
    },
    /// A runtime-specific failure without a richer type (the fake's injected faults).
    #[error("container {id}: {op} failed: {message}")]
    Other {
        /// The container.
        id: ContainerId,
        /// The operation.
        op: &'static str,
        /// What happened.
        message: String,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
mod tests {
    use super::*;

    /// A runtime with only the required operations.
    struct Minimal;

    impl ContainerRuntime for Minimal {
        fn create(&self, _: &ContainerSpec) -> Result<(), RuntimeError> {
            Ok(())
        }
        fn start(&self, _: &ContainerId) -> Result<(), RuntimeError> {
            Ok(())
        }
        fn stop(&self, _: &ContainerId, _: Duration) -> Result<(), RuntimeError> {
            Ok(())
        }
        fn destroy(&self, _: &ContainerId) -> Result<(), RuntimeError> {
            Ok(())
        }
        fn state(&self, _: &ContainerId) -> Result<ContainerState, RuntimeError> {
            Ok(ContainerState::Stopped)
        }
        fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError> {
            Ok(vec![])
        }
    }

    #[test]
    fn optional_operations_default_to_unsupported() {
        let id = ContainerId::new("a").unwrap();
        let rt: &dyn ContainerRuntime = &Minimal;
        assert!(matches!(
            rt.exec(&id, &[]),
            Err(RuntimeError::Unsupported { op: "exec", .. })
        ));
        assert!(matches!(
            rt.stats(&id),
            Err(RuntimeError::Unsupported { op: "stats", .. })
        ));
    }
}
