//! Dropping `CAP_SYS_ADMIN` once PID 1's mounts are made.
//!
//! # Design
//! hearth-lxc's container config keeps `sys_admin` (in the container's user namespace)
//! only so that PID 1 can bind-mount the spec's volumes ([`crate::mounts`]). Right after,
//! [`drop_sys_admin`] removes it from the bounding set (no later `execve`, set-uid binary
//! or file capability can bring it back), from the ambient set, and from PID 1's own
//! effective, permitted and inheritable sets, before any daemon, probe or action starts.
//! So service processes cannot mount, create namespaces other than user ones (those are
//! refused by the seccomp policy), or use the other powers of `sys_admin`.
//!
//! # Limitations
//! Commands run with `lxc-attach` (a package's migration) do not descend from PID 1 and
//! keep LXC's set, `sys_admin` included.
//!
//! # Invariants
//! A process that does not hold `sys_admin` in its permitted set (any non-root run, as in
//! tests) has nothing to drop, and is left as it is; one that holds it either loses it or
//! the start fails.
#![allow(unsafe_code)]

use nix::libc;

/// `CAP_SYS_ADMIN` in `<linux/capability.h>`.
const CAP_SYS_ADMIN: u32 = 21;
/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// A capability call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CapsError {
    /// `capget`/`capset`/`prctl` refused.
    #[error("drop CAP_SYS_ADMIN ({step}): {source}")]
    Drop {
        /// Which call.
        step: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

fn err(step: &'static str) -> CapsError {
    CapsError::Drop {
        step,
        source: std::io::Error::last_os_error(),
    }
}

fn capget() -> Result<[CapData; 2], CapsError> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget(2) with a version 3 header writes exactly two `CapData` structs
    // (repr(C), the kernel's layout) into `data`, which is live and large enough.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc == 0 {
        Ok(data)
    } else {
        Err(err("capget"))
    }
}

/// Removes `CAP_SYS_ADMIN` from every capability set of this process (see the module).
pub(crate) fn drop_sys_admin() -> Result<bool, CapsError> {
    let mut data = capget()?;
    let bit = 1u32 << CAP_SYS_ADMIN;
    if data[0].permitted & bit == 0 {
        return Ok(false);
    }
    // SAFETY: prctl(2) with integer arguments only; no memory is passed.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAPBSET_DROP,
            libc::c_ulong::from(CAP_SYS_ADMIN),
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        return Err(err("PR_CAPBSET_DROP"));
    }
    // SAFETY: as above. EINVAL (no ambient capabilities in this kernel) leaves nothing to clear.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
        return Err(err("PR_CAP_AMBIENT_CLEAR_ALL"));
    }
    data[0].effective &= !bit;
    data[0].permitted &= !bit;
    data[0].inheritable &= !bit;
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: capset(2) reads the header and two `CapData` structs from live memory.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(err("capset"));
    }
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
mod tests {
    use std::os::unix::process::CommandExt;

    use super::*;

    fn mask(status: &str, field: &str) -> u64 {
        let hex = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap()
            .trim();
        u64::from_str_radix(hex, 16).unwrap()
    }

    /// A child that drops it (as PID 1 does before starting daemons) and then execs
    /// `cat` as root: sys_admin is gone from every set of the new program, while the other
    /// capabilities stay.
    #[test]
    fn sys_admin_is_gone_from_every_set_after_exec() {
        // Dropping needs root (CAP_SETPCAP); `make test` runs as root.
        // SAFETY: geteuid(2) has no arguments and cannot fail.
        assert_eq!(unsafe { libc::geteuid() }, 0, "needs root");
        let mut cmd = std::process::Command::new("cat");
        cmd.arg("/proc/self/status");
        // SAFETY: the closure runs between fork and exec and makes only system calls
        // (capget, prctl, capset); on error it builds an io::Error from an errno.
        unsafe {
            cmd.pre_exec(|| {
                drop_sys_admin()
                    .map(|_| ())
                    .map_err(|_| std::io::Error::other("drop failed"))
            });
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        let child = String::from_utf8(out.stdout).unwrap();
        let me = std::fs::read_to_string("/proc/self/status").unwrap();
        let bit = 1u64 << CAP_SYS_ADMIN;
        assert_ne!(mask(&me, "CapBnd:") & bit, 0, "the test process has it");
        for field in ["CapBnd:", "CapPrm:", "CapEff:", "CapInh:", "CapAmb:"] {
            assert_eq!(mask(&child, field) & bit, 0, "{field} still has sys_admin");
        }
        let chown = 1u64; // CAP_CHOWN stays
        assert_ne!(mask(&child, "CapEff:") & chown, 0);
        assert_ne!(mask(&child, "CapBnd:") & chown, 0);
    }
}
