//! The one way this crate runs external programs (`lxc-*`, `ip`, `unshare`).
//!
//! Design: every call logs its argv at debug level, captures stdout and stderr, and turns a
//! non-zero exit into [`ToolError::Failed`] carrying the program, its arguments, the exit
//! status and the trimmed stderr, so callers never parse half-failed output.
//! Rejected: a shell (`sh -c`): arguments are passed as a vector, never interpolated.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

/// A program could not be run or reported failure.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The program could not be started (missing, not executable).
    #[error("running {program} {args:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// Why it could not be started.
        source: std::io::Error,
    },
    /// The program exited unsuccessfully.
    #[error("{program} {args:?} failed ({status}): {stderr}")]
    Failed {
        /// The program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// Exit status, as printed by the standard library.
        status: String,
        /// Its stderr, trimmed.
        stderr: String,
    },
}

/// Runs `program args…` to completion; returns stdout (lossy UTF-8) on success.
pub(crate) fn run<I, S>(program: &str, args: I) -> Result<String, ToolError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    tracing::debug!(program, ?args, "running tool");
    let out = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ToolError::Spawn {
            program: program.to_owned(),
            args: args.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        tracing::debug!(program, ?args, status = %out.status, %stderr, "tool failed");
        Err(ToolError::Failed {
            program: program.to_owned(),
            args,
            status: out.status.to_string(),
            stderr,
        })
    }
}

/// Runs `program args…` to completion and returns its output whatever the exit status;
/// only a failure to start it is an error.
pub(crate) fn output(program: &str, args: &[&str]) -> Result<std::process::Output, ToolError> {
    tracing::debug!(program, ?args, "running tool");
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ToolError::Spawn {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            source,
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
mod tests {
    use super::*;

    #[test]
    fn stdout_on_success_stderr_on_failure() {
        assert_eq!(run("sh", ["-c", "echo hi"]).unwrap(), "hi\n");
        match run("sh", ["-c", "echo oops >&2; exit 3"]) {
            Err(ToolError::Failed { stderr, status, .. }) => {
                assert_eq!(stderr, "oops");
                assert!(status.contains('3'), "{status}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            run("/nonexistent/tool", ["x"]),
            Err(ToolError::Spawn { .. })
        ));
    }
}
