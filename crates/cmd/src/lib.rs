//! `hearth-cmd`: runs an external program and turns its failure into a typed error that
//! names the command line and ends with the program's own explanation (its stderr).
//!
//! # Purpose
//! `hearth-imager` (`mmdebstrap`, `mksquashfs`, `sfdisk`, mtools) and `hearth-init`
//! (`sfdisk`, `mkfs.ext4`, `ip`) both shell out where a well-tested tool is the right call.
//! This crate is the single place that spawns such a tool, feeds its stdin, collects its
//! output and reports a failure, so both report failures the same way.
//!
//! # Design
//! The caller builds the [`Command`] (environment, `PATH`, a `pre_exec` hook — whatever its
//! context needs) and logs [`argv`] in its own way (the imager prints to stdout, init to the
//! kernel console); [`output`]/[`text`] only run it. stdin is written from a separate
//! thread so a tool that writes a lot before reading all of its input cannot deadlock us.
//! Only the last [`STDERR_TAIL_LINES`] lines of stderr are kept in the error: that is where
//! tools explain themselves.
//!
//! # Invariants
//! std and `thiserror` only: `hearth-init` links this into a small static binary.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, ExitStatus, Stdio};

/// Lines of stderr kept in [`CmdError::Failed`].
pub const STDERR_TAIL_LINES: usize = 30;

/// Running an external program failed.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The program could not be started (not installed?), or its pipes failed.
    #[error("starting `{argv}`: {source}{}", not_found_hint(source))]
    Spawn {
        /// The command line, space-separated.
        argv: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{argv}` failed ({status}): {stderr}")]
    Failed {
        /// The command line, space-separated.
        argv: String,
        /// Its exit status.
        status: ExitStatus,
        /// The end of its stderr, trimmed.
        stderr: String,
    },
}

fn not_found_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::NotFound {
        " (is it installed?)"
    } else {
        ""
    }
}

/// The command line of `c` as one string (program and arguments, space-separated, lossy
/// UTF-8), for logs and errors.
pub fn argv(c: &Command) -> String {
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `c` to completion with `stdin` as its input (or `/dev/null`); returns its stdout.
/// stdout and stderr are captured whatever `c` had set.
pub fn output(mut c: Command, stdin: Option<&[u8]>) -> Result<Vec<u8>, CmdError> {
    let argv = argv(&c);
    let spawn_err = |source| CmdError::Spawn {
        argv: argv.clone(),
        source,
    };
    let mut child = c
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    let writer = match (stdin, child.stdin.take()) {
        (Some(input), Some(mut pipe)) => {
            let input = input.to_vec();
            // A program that exits without reading all of its input closes the pipe: that
            // is its business (its exit status tells), not a spawn error.
            Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            }))
        }
        _ => None,
    };
    let out = child.wait_with_output().map_err(spawn_err)?;
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    if !out.status.success() {
        return Err(CmdError::Failed {
            argv,
            status: out.status,
            stderr: tail(&String::from_utf8_lossy(&out.stderr), STDERR_TAIL_LINES),
        });
    }
    Ok(out.stdout)
}

/// [`output`] as text (lossy UTF-8).
pub fn text(c: Command, stdin: Option<&str>) -> Result<String, CmdError> {
    output(c, stdin.map(str::as_bytes)).map(|out| String::from_utf8_lossy(&out).into_owned())
}

/// The last `lines` lines of `s`, trimmed.
fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.trim().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn stdout_and_stdin() {
        assert_eq!(text(Command::new("cat"), Some("hi")).unwrap(), "hi");
        assert_eq!(output(sh("printf '\\001\\377'"), None).unwrap(), [1, 255]);
        // Without stdin the program reads /dev/null, not our terminal.
        assert_eq!(text(Command::new("cat"), None).unwrap(), "");
    }

    #[test]
    fn large_stdin_and_stdout_do_not_deadlock() {
        // 1 MiB through `cat`: both pipes fill long before either side finishes.
        let input = "x".repeat(1 << 20);
        assert_eq!(
            text(Command::new("cat"), Some(&input)).unwrap().len(),
            1 << 20
        );
    }

    #[test]
    fn failure_names_command_status_and_stderr_tail() {
        let err = text(sh("seq 1 40 >&2; echo boom >&2; exit 3"), None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("`sh -c seq 1 40 >&2; echo boom >&2; exit 3` failed"),
            "{msg}"
        );
        assert!(msg.contains("exit status: 3"), "{msg}");
        let CmdError::Failed { stderr, .. } = err else {
            panic!("{msg}")
        };
        assert_eq!(stderr.lines().count(), STDERR_TAIL_LINES);
        assert!(
            stderr.ends_with("40\nboom") && !stderr.contains("\n10\n"),
            "{stderr}"
        );
    }

    #[test]
    fn missing_program_is_a_spawn_error_with_a_hint() {
        let mut c = Command::new("/nonexistent/tool");
        c.arg("x");
        let msg = text(c, None).unwrap_err().to_string();
        assert!(msg.starts_with("starting `/nonexistent/tool x`: "), "{msg}");
        assert!(msg.ends_with("(is it installed?)"), "{msg}");
    }

    #[test]
    fn a_program_ignoring_its_input_is_judged_by_its_status() {
        let big = "y".repeat(1 << 20);
        assert_eq!(text(sh("exit 0"), Some(&big)).unwrap(), "");
        assert!(matches!(
            text(sh("exit 4"), Some(&big)),
            Err(CmdError::Failed { .. })
        ));
    }
}
