//! The kernel hostname, behind [`KernelHostname`].

use std::sync::Mutex;

use hearth_rpc::Hostname;

use crate::MdnsError;

/// Sets the kernel's hostname (the UTS namespace's).
pub trait KernelHostname: Send + Sync {
    /// Sets it to `hostname`.
    fn set(&self, hostname: &Hostname) -> Result<(), MdnsError>;
}

/// The real one: `sethostname(2)` (needs `CAP_SYS_ADMIN` in the UTS namespace).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sethostname;

impl KernelHostname for Sethostname {
    fn set(&self, hostname: &Hostname) -> Result<(), MdnsError> {
        rustix::system::sethostname(hostname.as_str().as_bytes()).map_err(|e| {
            MdnsError::Sethostname {
                hostname: hostname.to_string(),
                source: e.into(),
            }
        })
    }
}

/// A fake that records every name it is given.
#[derive(Debug, Default)]
pub struct FakeKernelHostname {
    set: Mutex<Vec<String>>,
}

impl FakeKernelHostname {
    /// Every name set so far, oldest first.
    pub fn history(&self) -> Vec<String> {
        self.set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl KernelHostname for FakeKernelHostname {
    fn set(&self, hostname: &Hostname) -> Result<(), MdnsError> {
        self.set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(hostname.to_string());
        Ok(())
    }
}
