//! Integration tests of hearth-lxc against the real kernel and LXC.
//!
//! Every test here needs root, LXC 5 (`lxc`), `unshare`, `ip`, `mksquashfs` and a static
//! busybox (`busybox-static`), and `/etc/subuid` + `/etc/subgid` granting
//! `root:100000:65536` (`ci/deps.sh` installs and prepares all of it); their names start
//! with `root_lxc_`. `make test` runs them as root. They are not skipped when something is
//! missing: they fail and say what.

mod integration {
    pub(crate) mod fixture;
    mod root_lxc;
}
