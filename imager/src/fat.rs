//! Reproducible FAT filesystem images made with `mkfs.vfat` and mtools (no mounting), for the
//! Raspberry Pi firmware partitions.
//!
//! # Design
//! Every input is first staged (copied) under a work directory with its mtime set to the
//! recipe's epoch, so the FAT directory entries do not depend on the build host's clock or
//! on the package's file times; `mkfs.vfat --invariant` fixes the volume id and the boot
//! sector, and mtools runs under `SOURCE_DATE_EPOCH` (the tool helper sets it). Directories
//! are created in sorted order, files copied in the order given.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::tool::{self, ToolError};

/// One FAT image to build.
#[derive(Debug)]
pub(crate) struct FatSpec<'a> {
    /// Size in MiB.
    pub(crate) size_mib: u64,
    /// FAT type: 12, 16 or 32.
    pub(crate) bits: u8,
    /// Volume label (at most 11 characters).
    pub(crate) label: &'a str,
    /// Files: source path and destination inside the FAT (`dir/file`, `/`-separated).
    pub(crate) files: Vec<(PathBuf, String)>,
}

/// Building a FAT image failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FatError {
    /// A staging file could not be written.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A destination name cannot be stored.
    #[error("FAT image {image}: bad destination path {dest:?}")]
    BadPath { image: PathBuf, dest: String },
    /// The files do not fit.
    #[error(
        "FAT image {image}: {needed} bytes of files do not fit in {size_mib} MiB; raise the size in the recipe"
    )]
    TooBig {
        image: PathBuf,
        needed: u64,
        size_mib: u64,
    },
    /// mkfs.vfat or an mtools command failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FatError {
    let path = path.to_owned();
    move |source| FatError::Io { op, path, source }
}

/// The directories to create for `dests`, parents first.
pub(crate) fn dirs_of<'a>(dests: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut dirs = BTreeSet::new();
    for d in dests {
        let mut parts: Vec<&str> = d.split('/').collect();
        parts.pop();
        for i in 1..=parts.len() {
            dirs.insert(parts[..i].join("/"));
        }
    }
    dirs.into_iter().collect()
}

fn dest_ok(d: &str) -> bool {
    !d.is_empty()
        && !d.starts_with('/')
        && d.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_.+".contains(ch))
        })
}

/// Builds the FAT image `out` from `spec`, staging copies of the files in `stage`.
pub(crate) fn build(
    out: &Path,
    stage: &Path,
    spec: &FatSpec<'_>,
    epoch: u64,
) -> Result<(), FatError> {
    let mut needed = 0;
    for (src, dest) in &spec.files {
        if !dest_ok(dest) {
            return Err(FatError::BadPath {
                image: out.to_owned(),
                dest: dest.clone(),
            });
        }
        needed += std::fs::metadata(src)
            .map_err(io("reading size of", src))?
            .len();
    }
    // FAT and directory overhead are small next to kernels and firmware; this catches a
    // partition that is plainly too small before mtools fails half-way.
    if needed + needed / 32 + (1 << 20) > spec.size_mib << 20 {
        return Err(FatError::TooBig {
            image: out.to_owned(),
            needed,
            size_mib: spec.size_mib,
        });
    }
    if stage.exists() {
        std::fs::remove_dir_all(stage).map_err(io("removing", stage))?;
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
    let mut staged = Vec::new();
    for (src, dest) in &spec.files {
        let to = stage.join(dest);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
        }
        std::fs::copy(src, &to).map_err(io("copying", src))?;
        std::fs::File::options()
            .write(true)
            .open(&to)
            .and_then(|f| f.set_modified(t))
            .map_err(io("setting mtime of", &to))?;
        staged.push((to, dest.as_str()));
    }
    let _ = std::fs::remove_file(out);
    let kib = (spec.size_mib * 1024).to_string();
    let bits = spec.bits.to_string();
    let out_s = out.to_string_lossy().into_owned();
    tool::run(
        "mkfs.vfat",
        &[
            "-C",
            &out_s,
            &kib,
            "-F",
            &bits,
            "-n",
            spec.label,
            "--invariant",
        ],
        epoch,
        None,
    )?;
    for dir in dirs_of(spec.files.iter().map(|(_, d)| d.as_str())) {
        tool::run("mmd", &["-i", &out_s, &format!("::{dir}")], epoch, None)?;
    }
    for (src, dest) in &staged {
        let src_s = src.to_string_lossy().into_owned();
        tool::run(
            "mcopy",
            &["-i", &out_s, "-m", "-o", &src_s, &format!("::{dest}")],
            epoch,
            None,
        )?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_bad_paths_are_refused() {
        assert_eq!(
            dirs_of(["a/b/c.dtb", "a/x", "top.txt", "overlays/y.dtbo"]),
            ["a", "a/b", "overlays"]
        );
        for bad in ["", "/abs", "a/../b", "a//b", "sp ace"] {
            assert!(!dest_ok(bad), "{bad}");
        }
        assert!(dest_ok("broadcom/bcm2711-rpi-4-b.dtb"));
    }

    /// Needs mkfs.vfat and mtools (ci/deps.sh): build twice, same bytes; mdir lists files.
    #[test]
    fn builds_a_reproducible_fat_that_mtools_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        std::fs::write(&a, b"hello").unwrap();
        let spec = FatSpec {
            size_mib: 16,
            bits: 16,
            label: "TEST",
            files: vec![(a.clone(), "sub/dir/a.txt".into()), (a, "b.txt".into())],
        };
        let (one, two) = (dir.path().join("1.img"), dir.path().join("2.img"));
        build(&one, &dir.path().join("s1"), &spec, 1_700_000_000).unwrap();
        build(&two, &dir.path().join("s2"), &spec, 1_700_000_000).unwrap();
        assert_eq!(std::fs::read(&one).unwrap(), std::fs::read(&two).unwrap());
        let one_s = one.to_string_lossy().into_owned();
        let out = tool::run("mtype", &["-i", &one_s, "::sub/dir/a.txt"], 0, None).unwrap();
        assert_eq!(out, "hello");
        let small = FatSpec {
            size_mib: 1,
            ..spec
        };
        let err = build(&one, &dir.path().join("s3"), &small, 0).unwrap_err();
        assert!(matches!(err, FatError::TooBig { .. }), "{err}");
    }
}
