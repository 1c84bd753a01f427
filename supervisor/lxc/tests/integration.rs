//! Integration tests of hearth-lxc against the real kernel and LXC.
//!
//! Every test here needs root, LXC 5 (`lxc`), `unshare`, `ip`, `mksquashfs`, a static
//! busybox (`busybox-static`), a C compiler with a static libc (the confinement probe,
//! `integration/probe.c`), and `/etc/subuid` + `/etc/subgid` granting
//! `root:100000:16777216`, the per-container ranges (`ci/deps.sh` installs and prepares
//! all of it); their names start with `root_lxc_`. `make test` runs them as root. They are not skipped when something is
//! missing: they fail and say what.

mod integration {
    pub(crate) mod fixture;
    mod root_lxc;
}
