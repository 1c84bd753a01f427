//! The one helper through which the imager runs external tools (`mmdebstrap`, `mksquashfs`,
//! `mkfs.vfat`, `mcopy`, `sfdisk`): prints argv, passes `SOURCE_DATE_EPOCH`, captures
//! stderr, and turns a failure into [`ToolError`] naming the command and its stderr.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Stdio};

/// Running a tool failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ToolError {
    /// The program could not be started (not installed?).
    #[error("starting `{argv}`: {source} (is it installed? see ci/deps.sh)")]
    Spawn {
        argv: String,
        #[source]
        source: std::io::Error,
    },
    /// The program failed.
    #[error("`{argv}` failed ({status}):\n{stderr}")]
    Failed {
        argv: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

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
    let argv = std::iter::once(program.to_owned())
        .chain(
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned()),
        )
        .collect::<Vec<_>>()
        .join(" ");
    println!("    $ {argv}");
    let spawn_err = |source| ToolError::Spawn {
        argv: argv.clone(),
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .env("LC_ALL", "C.UTF-8")
        .env("TZ", "UTC")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Keep the end: that is where tools explain themselves.
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        return Err(ToolError::Failed {
            argv,
            status: out.status,
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(out.stdout)
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
