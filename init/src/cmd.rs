//! How `hearth-init` runs external tools (`ip`, `sfdisk`, `mkfs.ext4`) and services: a
//! `PATH` when the kernel gave none, an empty signal mask in the child ([`command`]), the
//! command line logged to the console; running it and reporting a failure (the command and
//! its stderr, [`CmdError`]) is the shared `hearth-cmd` crate's job.

use std::ffi::OsStr;
use std::process::Command;

use crate::log::log_info;

/// `PATH` for programs we start when we have none: the kernel starts PID 1 without one,
/// and `sfdisk`/`mkfs.ext4` live in `sbin`.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A `Command` for `program`, with [`DEFAULT_PATH`] if the environment has no `PATH` (the
/// child's `PATH` is also the one used to find `program`).
///
/// The child also starts with an empty signal mask: the supervision loop blocks `SIGTERM`,
/// `SIGINT`, `SIGCHLD` and `SIGPWR` (to read them from a signalfd), the mask is inherited
/// across `exec`, and `std::process::Command` does not reset it — without this, `hearthd`
/// would never see the `SIGTERM` that asks it to stop.
pub(crate) fn command(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    if std::env::var_os("PATH").is_none() {
        c.env("PATH", DEFAULT_PATH);
    }
    unblock_signals_in_child(&mut c);
    c
}

#[allow(unsafe_code)]
fn unblock_signals_in_child(c: &mut Command) {
    use std::os::unix::process::CommandExt;
    let hook = || {
        nix::sys::signal::sigprocmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&nix::sys::signal::SigSet::empty()),
            None,
        )
        .map_err(std::io::Error::from)
    };
    // SAFETY: the hook runs between fork and exec; it only calls sigprocmask, which is
    // async-signal-safe, on a SigSet on the stack (a plain sigset_t), and allocates nothing.
    unsafe {
        c.pre_exec(hook);
    }
}

/// Running an external command failed (the error type shared with the imager).
pub(crate) use hearth_cmd::CmdError;

/// Runs `program args…` (through [`command`]), feeding `stdin` if given; logs the command
/// line and returns stdout.
pub(crate) fn run<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    stdin: Option<&str>,
) -> Result<String, CmdError> {
    let mut c = command(program);
    c.args(args);
    log_info!("run: {}", hearth_cmd::argv(&c));
    hearth_cmd::text(c, stdin)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_command_and_stderr() {
        let err = run("sh", &["-c", "echo boom >&2; exit 3"], None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("sh -c echo boom"), "{msg}");
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn stdin_and_stdout() {
        assert_eq!(run("cat", &[] as &[&str], Some("hi")).unwrap(), "hi");
    }
}
