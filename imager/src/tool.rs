//! How the imager runs external tools (`mmdebstrap`, `mksquashfs`, `mkfs.vfat`, `mcopy`,
//! `sfdisk`): prints argv, passes `SOURCE_DATE_EPOCH` (and a fixed locale and time zone),
//! and runs the command through the shared `hearth-cmd` crate, whose error names the
//! command and ends with its stderr.

use std::ffi::OsStr;
use std::process::Command;

/// Running a tool failed (the error type shared with `hearth-init`).
pub(crate) use hearth_cmd::CmdError as ToolError;

/// Runs `program args…` with `SOURCE_DATE_EPOCH=epoch` and optional stdin; returns stdout.
pub(crate) fn run<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    epoch: u64,
    stdin: Option<&str>,
) -> Result<String, ToolError> {
    run_bytes(program, args, epoch, stdin).map(|out| String::from_utf8_lossy(&out).into_owned())
}

/// [`run`], returning stdout as bytes (a decompressed file, say).
pub(crate) fn run_bytes<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    epoch: u64,
    stdin: Option<&str>,
) -> Result<Vec<u8>, ToolError> {
    let mut c = Command::new(program);
    c.args(args)
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .env("LC_ALL", "C.UTF-8")
        .env("TZ", "UTC");
    println!("    $ {}", hearth_cmd::argv(&c));
    hearth_cmd::output(c, stdin.map(str::as_bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_command_and_stderr_and_epoch_is_passed() {
        let out = run("sh", &["-c", "echo $SOURCE_DATE_EPOCH"], 42, None).unwrap();
        assert_eq!(out, "42\n");
        let err = run("sh", &["-c", "echo nope >&2; exit 2"], 0, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`sh -c echo nope >&2; exit 2` failed") && err.contains("nope"));
        let err = run("/nonexistent/tool", &["x"], 0, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("starting `/nonexistent/tool x`"), "{err}");
    }
}
