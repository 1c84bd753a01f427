//! Checks made before the slow steps of a build, and the clean-up after a failed one.
//!
//! # Design
//! - Free space: the output directory must hold the root tree, the squashfs, the disk
//!   image (sparse: its slots are written, the rest is not) and the bundle. The estimate
//!   is deliberately conservative and derived from the recipe's sizes
//!   ([`required_mib`]); `df` reports what is available.
//! - Unknown packages: apt's `E: Unable to locate package NAME` lines in a failed
//!   mmdebstrap run (the `--simulate` run made before the real one answers in seconds,
//!   the real one after minutes) become one error naming every unknown package.
//! - A failed build removes its work directory and every output it may have started
//!   writing, so no half-written image or bundle is left behind for someone to flash.

use std::path::{Path, PathBuf};

use crate::tool::{self, ToolError};

/// Space (MiB) a build needs in its output directory: the root tree and the squashfs are
/// bounded by a slot each, the image holds the squashfs twice (sparse), plus the ESP
/// (file and copy in the image), a slot for the v2 bundle (it holds the squashfs) and
/// 256 MiB for the v1 bundle, initramfs and kernel.
pub(crate) fn required_mib(slot_mib: u64, esp_mib: u64) -> u64 {
    3 * slot_mib + 2 * esp_mib + 256
}

/// A pre-flight check failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PreflightError {
    /// Not enough free space in the output directory.
    #[error(
        "not enough space in {path}: {available} MiB free, a build of this recipe needs up to {required} MiB (3 x slot_mib + 2 x esp_mib + 256); nothing was written"
    )]
    NoSpace {
        path: PathBuf,
        available: u64,
        required: u64,
    },
    /// `df` failed or printed something unexpected.
    #[error("checking free space in {path}: {reason}")]
    Df { path: PathBuf, reason: String },
}

/// Fails if `dir` has less than `required` MiB available.
pub(crate) fn check_space(dir: &Path, required: u64) -> Result<(), PreflightError> {
    let df = |reason: String| PreflightError::Df {
        path: dir.to_owned(),
        reason,
    };
    let out = tool::run(
        "df",
        &["-P".as_ref(), "-B1M".as_ref(), dir.as_os_str()],
        0,
        None,
    )
    .map_err(|e| df(e.to_string()))?;
    let available = out
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| df(format!("unexpected output {out:?}")))?;
    if available < required {
        return Err(PreflightError::NoSpace {
            path: dir.to_owned(),
            available,
            required,
        });
    }
    Ok(())
}

/// The packages apt could not find, from a failed mmdebstrap run's stderr.
pub(crate) fn unknown_packages(err: &ToolError) -> Vec<String> {
    let ToolError::Failed { stderr, .. } = err else {
        return Vec::new();
    };
    let mut names: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("E: Unable to locate package "))
        .map(|n| n.trim().to_owned())
        .collect();
    names.dedup();
    names
}

/// Removes `work` (if given: `--keep-work` keeps it for inspection) and the given output
/// files (errors ignored: best effort after a failure).
pub(crate) fn remove_partial(work: Option<&Path>, outputs: &[PathBuf]) {
    if let Some(work) = work {
        let _ = std::fs::remove_dir_all(work);
    }
    for f in outputs {
        if std::fs::remove_file(f).is_ok() {
            eprintln!("hearth-imager: removed partial output {}", f.display());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unknown_packages_are_read_from_apt_errors() {
        let err = tool::run(
            "sh",
            &[
                "-c",
                "printf 'Reading package lists...\\nE: Unable to locate package foo-bar\\nE: Unable to locate package baz\\nE: setup failed\\n' >&2; exit 1",
            ],
            0,
            None,
        )
        .unwrap_err();
        assert_eq!(unknown_packages(&err), ["foo-bar", "baz"]);
        let other = tool::run("sh", &["-c", "echo E: other >&2; exit 1"], 0, None).unwrap_err();
        assert!(unknown_packages(&other).is_empty());
    }

    #[test]
    fn space_check_compares_df_with_the_estimate() {
        let dir = tempfile::tempdir().unwrap();
        check_space(dir.path(), 1).unwrap();
        let err = check_space(dir.path(), u64::MAX / 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not enough space in") && err.contains("MiB free"),
            "{err}"
        );
        assert_eq!(required_mib(768, 128), 2816);
    }
}
