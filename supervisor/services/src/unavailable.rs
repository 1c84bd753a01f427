//! [`UnavailableRuntime`]: the runtime hearthd uses when containers cannot run here (not
//! root, or LXC missing). Every start fails with the reason, so it shows up as the
//! service's `lastError` instead of hearthd refusing to start.

use std::time::Duration;

use hearth_lxc::{
    ContainerId, ContainerRuntime, ContainerSpec, ContainerState, ContainerStatus, RuntimeError,
};

/// A [`ContainerRuntime`] that runs nothing and says why.
#[derive(Debug, Clone)]
pub struct UnavailableRuntime {
    reason: String,
}

impl UnavailableRuntime {
    /// A runtime whose lifecycle calls fail with `reason`.
    pub fn new(reason: impl Into<String>) -> UnavailableRuntime {
        UnavailableRuntime {
            reason: reason.into(),
        }
    }

    fn fail(&self, id: &ContainerId, op: &'static str) -> RuntimeError {
        RuntimeError::Other {
            id: id.clone(),
            op,
            message: format!("containers are unavailable on this host: {}", self.reason),
        }
    }
}

impl ContainerRuntime for UnavailableRuntime {
    fn create(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        Err(self.fail(&spec.id, "create"))
    }

    fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        Err(self.fail(id, "start"))
    }

    fn stop(&self, id: &ContainerId, _timeout: Duration) -> Result<(), RuntimeError> {
        Err(RuntimeError::NotFound { id: id.clone() })
    }

    fn destroy(&self, _id: &ContainerId) -> Result<(), RuntimeError> {
        Ok(())
    }

    fn state(&self, id: &ContainerId) -> Result<ContainerState, RuntimeError> {
        Err(RuntimeError::NotFound { id: id.clone() })
    }

    fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_fails_with_the_reason_and_nothing_exists() {
        let rt = UnavailableRuntime::new("hearthd is not running as root");
        let id = ContainerId::new("hello").unwrap();
        let err = rt.start(&id).unwrap_err().to_string();
        assert!(err.contains("not running as root"), "{err}");
        assert!(matches!(rt.state(&id), Err(RuntimeError::NotFound { .. })));
        assert!(rt.destroy(&id).is_ok());
        assert!(rt.list().unwrap().is_empty());
    }
}
