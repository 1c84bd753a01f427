//! Putting a [`Ruleset`] into the kernel: the [`Firewall`] trait, [`Nft`] (the real one)
//! and [`RecordingFirewall`] (the fake).
//!
//! Design: `nft -f -` reads the ruleset on stdin and commits it as one transaction (all
//! or nothing), so a failed apply leaves the previous rules in place. The program runs
//! through `hearth-cmd` (argv logged, stderr in the error). [`Nft::system`] then makes
//! sure the kernel does what the rules assume: `br_netfilter` loaded and
//! `net.bridge.bridge-nf-call-iptables = 1` (bridged container traffic passes the `inet`
//! hooks, where conntrack works), and only then `net.ipv4.ip_forward = 1` (NAT), so the
//! host never forwards for containers without the rules in place.
//! Rejected: `nft -f <file>` (a temp file to clean up for what a pipe does).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::firewall::Ruleset;

/// Applying the rules failed.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// `nft` refused the ruleset or could not run; the previous rules stay.
    #[error("loading the firewall rules: {0}")]
    Nft(#[source] hearth_cmd::CmdError),
    /// A kernel setting the rules rely on could not be read or set.
    #[error("setting {path}: {source}")]
    Sysctl {
        /// The `/proc/sys` file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `br_netfilter` is not available: bridged traffic would bypass the stateful
    /// container-to-container check.
    #[error(
        "bridged traffic cannot be filtered: {path} is missing and `modprobe br_netfilter` failed: {reason}"
    )]
    BrNetfilter {
        /// The missing sysctl.
        path: PathBuf,
        /// What modprobe said.
        reason: String,
    },
    /// The fake was told to fail.
    #[error("firewall: {0}")]
    Injected(String),
}

/// Makes the kernel enforce a ruleset, replacing Hearth's previous one.
pub trait Firewall: Send + Sync + std::fmt::Debug {
    /// Replaces Hearth's tables with `rules` (atomically; idempotent).
    fn apply(&self, rules: &Ruleset) -> Result<(), FirewallError>;
}

/// The real firewall: `nft -f -`.
#[derive(Debug, Clone)]
pub struct Nft {
    argv: Vec<OsString>,
    kernel: bool,
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
const BRIDGE_NF_CALL: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

impl Nft {
    /// `nft` on this host, with the kernel settings the rules need (see the module docs).
    pub fn system() -> Nft {
        Nft {
            argv: vec!["nft".into()],
            kernel: true,
        }
    }

    /// `argv` (e.g. `ip netns exec <ns> nft`) instead of `nft`, without touching kernel
    /// settings: for tests in a network namespace.
    pub fn command<I, S>(argv: I) -> Nft
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Nft {
            argv: argv.into_iter().map(Into::into).collect(),
            kernel: false,
        }
    }

    fn nft(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(self.argv.first().map_or("nft".as_ref(), |p| p.as_os_str()));
        c.args(self.argv.iter().skip(1)).args(extra);
        c
    }

    /// Asks `nft` whether it would load `rules` (`nft -c -f -`), changing nothing.
    pub fn check(&self, rules: &Ruleset) -> Result<(), FirewallError> {
        hearth_cmd::text(self.nft(&["-c", "-f", "-"]), Some(rules.as_str()))
            .map(|_| ())
            .map_err(FirewallError::Nft)
    }

    /// The current rules of Hearth's tables as `nft` lists them (for tests and debugging).
    pub fn list(&self) -> Result<String, FirewallError> {
        hearth_cmd::text(self.nft(&["list", "ruleset"]), None).map_err(FirewallError::Nft)
    }
}

impl Firewall for Nft {
    fn apply(&self, rules: &Ruleset) -> Result<(), FirewallError> {
        hearth_cmd::text(self.nft(&["-f", "-"]), Some(rules.as_str()))
            .map_err(FirewallError::Nft)?;
        if self.kernel {
            enable_bridge_filtering()?;
            set_sysctl(Path::new(IP_FORWARD))?;
        }
        tracing::info!(bytes = rules.as_str().len(), "firewall rules applied");
        Ok(())
    }
}

/// Writes `1` to `path` unless it holds `1` already.
fn set_sysctl(path: &Path) -> Result<(), FirewallError> {
    let err = |source| FirewallError::Sysctl {
        path: path.to_owned(),
        source,
    };
    if std::fs::read_to_string(path).map_err(err)?.trim() == "1" {
        return Ok(());
    }
    std::fs::write(path, "1\n").map_err(err)?;
    tracing::info!(path = %path.display(), "kernel setting enabled");
    Ok(())
}

fn enable_bridge_filtering() -> Result<(), FirewallError> {
    let path = Path::new(BRIDGE_NF_CALL);
    if !path.exists() {
        let mut modprobe = Command::new("modprobe");
        modprobe.arg("br_netfilter");
        let loaded = hearth_cmd::text(modprobe, None);
        if !path.exists() {
            return Err(FirewallError::BrNetfilter {
                path: path.to_owned(),
                reason: loaded.err().map_or_else(
                    || "the module loaded but the setting did not appear".to_owned(),
                    |e| e.to_string(),
                ),
            });
        }
    }
    set_sysctl(path)
}

/// The fake: records every ruleset applied; can be told to fail.
#[derive(Debug, Default)]
pub struct RecordingFirewall {
    applied: Mutex<Vec<Ruleset>>,
    fail: Mutex<Option<String>>,
}

impl RecordingFirewall {
    /// A fake that accepts everything.
    pub fn new() -> RecordingFirewall {
        RecordingFirewall::default()
    }

    /// Every ruleset applied so far, oldest first.
    pub fn applied(&self) -> Vec<Ruleset> {
        self.applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Makes the next applies fail with `message` (`None`: succeed again).
    pub fn fail_with(&self, message: Option<&str>) {
        *self
            .fail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = message.map(str::to_owned);
    }
}

impl Firewall for RecordingFirewall {
    fn apply(&self, rules: &Ruleset) -> Result<(), FirewallError> {
        if let Some(message) = self
            .fail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            return Err(FirewallError::Injected(message));
        }
        self.applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(rules.clone());
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;
    use crate::firewall::{examples, render};

    #[test]
    fn the_fake_records_and_fails_on_demand() {
        let fw = RecordingFirewall::new();
        let rules = render(&examples::empty()).unwrap();
        fw.apply(&rules).unwrap();
        fw.fail_with(Some("boom"));
        assert!(matches!(fw.apply(&rules), Err(FirewallError::Injected(m)) if m == "boom"));
        assert_eq!(fw.applied(), vec![rules]);
    }

    #[test]
    fn a_failing_nft_is_a_clear_error() {
        let nft = Nft::command([
            "sh",
            "-c",
            "cat >/dev/null; echo 'Error: syntax' >&2; exit 1",
        ]);
        let err = nft.apply(&render(&examples::empty()).unwrap()).unwrap_err();
        assert!(err.to_string().contains("Error: syntax"), "{err}");
    }
}
