//! The one seam through which `pack` runs external tools (`mksquashfs`,
//! `mmdebstrap`, `git`).
//!
//! Every call logs its argument vector, captures stderr, and turns a failed spawn or
//! a non-zero exit into a [`ToolError`] that names the command and quotes its stderr.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

/// Longest stderr excerpt kept in an error.
const STDERR_TAIL: usize = 4000;

/// An external tool could not be run or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ToolError {
    /// The program could not be started (not installed?).
    #[error("running `{command}`: {source} (is it installed? `make deps` installs it)")]
    Spawn {
        /// The command line.
        command: String,
        /// Why spawning failed.
        source: std::io::Error,
    },
    /// The program exited unsuccessfully.
    #[error("`{command}` failed ({status}):\n{stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Exit status as printed by the OS.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
}

fn render(program: &OsStr, args: &[&OsStr]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .map(|a| {
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `program args…` with extra environment `env`, stdout discarded, and
/// returns an error carrying stderr if it fails.
pub(crate) fn run(program: &str, args: &[&OsStr], env: &[(&str, &str)]) -> Result<(), ToolError> {
    execute(program, args, env, false).map(|_| ())
}

/// Like [`run`], but returns the program's standard output.
pub(crate) fn output(program: &str, args: &[&OsStr]) -> Result<Vec<u8>, ToolError> {
    execute(program, args, &[], true)
}

fn execute(
    program: &str,
    args: &[&OsStr],
    env: &[(&str, &str)],
    capture_stdout: bool,
) -> Result<Vec<u8>, ToolError> {
    let command = render(OsStr::new(program), args);
    tracing::info!(command = %command, "running");
    let output = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(if capture_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| ToolError::Spawn {
            command: command.clone(),
            source,
        })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let start = stderr
        .char_indices()
        .rev()
        .nth(STDERR_TAIL)
        .map_or(0, |(i, _)| i);
    Err(ToolError::Failed {
        command,
        status: output.status.to_string(),
        stderr: stderr[start..].trim_end().to_owned(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn failure_carries_command_and_stderr() {
        let args = [OsStr::new("-c"), OsStr::new("echo boom >&2; exit 3")];
        let err = run("sh", &args, &[]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`sh -c 'echo boom >&2; exit 3'` failed"),
            "{text}"
        );
        assert!(
            text.contains("exit status: 3") && text.ends_with("boom"),
            "{text}"
        );
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = run("hearth-no-such-tool", &[], &[]).unwrap_err();
        assert!(matches!(err, ToolError::Spawn { .. }), "{err}");
    }

    #[test]
    fn output_returns_stdout() {
        let args = [OsStr::new("-c"), OsStr::new("printf 'a b'")];
        assert_eq!(output("sh", &args).unwrap(), b"a b");
    }

    #[test]
    fn environment_is_passed() {
        let args = [OsStr::new("-c"), OsStr::new("test \"$X\" = yes")];
        run("sh", &args, &[("X", "yes")]).unwrap();
        assert!(run("sh", &args, &[("X", "no")]).is_err());
    }
}
