//! What the host must offer `hearthd`'s LXC containers once the root is mounted: the
//! cgroup controllers their limits use, enabled for child cgroups, and IPv4 forwarding
//! (the bridge `hearth0` routes and NATs the containers' traffic).
//!
//! # Design
//! [`wanted_controllers`] is pure: of [`CONTROLLERS`], those the kernel offers (the root's
//! `cgroup.controllers`). [`enable_controllers`] writes each as `+name` to the root's
//! `cgroup.subtree_control`, one write per controller so one refusal does not hide the
//! others. [`sysctl`] writes one `/proc/sys` value. Both take the directory they work on,
//! so tests run them on a temporary directory standing in for `/sys/fs/cgroup` and
//! `/proc/sys`.
//!
//! # Invariants
//! The root cgroup is exempt from cgroup v2's "no internal processes" rule, so enabling
//! controllers there works while every process still lives in it. Failures are reported,
//! never fatal: without a controller, a container starts without that limit (LXC refuses
//! the `lxc.cgroup2.*` key, which the container's `lastError` then shows).

use std::path::{Path, PathBuf};

/// Controllers the container limits use (`lxc.cgroup2.cpu.weight`, `memory.max`,
/// `pids.max`; `io` when the kernel has it, for future I/O weights).
pub(crate) const CONTROLLERS: [&str; 4] = ["cpu", "io", "memory", "pids"];

/// The `/proc/sys` values the containers need: forwarding for the bridge.
pub(crate) const SYSCTLS: [(&str, &str); 1] = [("net/ipv4/ip_forward", "1")];

/// A host setting could not be applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostError {
    /// Reading or writing a kernel file failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Of [`CONTROLLERS`], those listed in `available` (the text of `cgroup.controllers`).
pub(crate) fn wanted_controllers(available: &str) -> Vec<&'static str> {
    let have: Vec<&str> = available.split_whitespace().collect();
    CONTROLLERS
        .into_iter()
        .filter(|c| have.contains(c))
        .collect()
}

/// Enables the wanted controllers for the children of the cgroup at `root`; returns the
/// ones enabled and the errors of the others (a missing `cgroup.controllers` is one error).
pub(crate) fn enable_controllers(root: &Path) -> (Vec<&'static str>, Vec<HostError>) {
    let list = root.join("cgroup.controllers");
    let available = match std::fs::read_to_string(&list) {
        Ok(text) => text,
        Err(source) => {
            let e = HostError::Io {
                op: "reading",
                path: list,
                source,
            };
            return (Vec::new(), vec![e]);
        }
    };
    let control = root.join("cgroup.subtree_control");
    let (mut enabled, mut errors) = (Vec::new(), Vec::new());
    for c in wanted_controllers(&available) {
        match std::fs::write(&control, format!("+{c}")) {
            Ok(()) => enabled.push(c),
            Err(source) => errors.push(HostError::Io {
                op: "enabling the controller in",
                path: control.clone(),
                source,
            }),
        }
    }
    (enabled, errors)
}

/// Writes `value` to `proc_sys/key` (`key` like `net/ipv4/ip_forward`).
pub(crate) fn sysctl(proc_sys: &Path, key: &str, value: &str) -> Result<(), HostError> {
    let path = proc_sys.join(key);
    std::fs::write(&path, value).map_err(|source| HostError::Io {
        op: "writing",
        path,
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_offered_controllers_are_wanted() {
        assert_eq!(
            wanted_controllers("cpuset cpu io memory hugetlb pids rdma misc\n"),
            ["cpu", "io", "memory", "pids"]
        );
        // A kernel without the io controller (or with memory turned off on the command line).
        assert_eq!(wanted_controllers("cpu pids\n"), ["cpu", "pids"]);
        assert!(wanted_controllers("").is_empty());
    }

    #[test]
    fn controllers_are_written_to_subtree_control() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cgroup.controllers"),
            "cpuset cpu memory pids\n",
        )
        .unwrap();
        // A regular file keeps only the last write: the one for `pids`.
        let (enabled, errors) = enable_controllers(dir.path());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(enabled, ["cpu", "memory", "pids"]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cgroup.subtree_control")).unwrap(),
            "+pids"
        );
    }

    #[test]
    fn no_cgroup2_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let (enabled, errors) = enable_controllers(dir.path());
        assert!(enabled.is_empty());
        let msg = errors[0].to_string();
        assert!(msg.contains("cgroup.controllers"), "{msg}");
    }

    #[test]
    fn a_refused_controller_does_not_stop_the_others() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
        // subtree_control is a directory: every write fails, each one reported.
        std::fs::create_dir(dir.path().join("cgroup.subtree_control")).unwrap();
        let (enabled, errors) = enable_controllers(dir.path());
        assert!(enabled.is_empty());
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn sysctl_writes_the_value_and_names_a_missing_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net/ipv4")).unwrap();
        for (key, value) in SYSCTLS {
            sysctl(dir.path(), key, value).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join("net/ipv4/ip_forward")).unwrap(),
            "1"
        );
        let err = sysctl(dir.path(), "net/nope/x", "1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("net/nope/x"), "{err}");
    }
}
