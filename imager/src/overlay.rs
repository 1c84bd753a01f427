//! `overlays/`: directory trees copied over the image root after the packages (the recipe's
//! `overlays = [...]`, paths relative to the recipe file, applied in order).
//!
//! # Design
//! Entries are applied in sorted order, parents before children. Every created file and
//! directory is owned by 0:0 with a normalised mode (0755 for directories and executables,
//! 0644 otherwise: git keeps only the executable bit) and mtime `source_date_epoch`;
//! symlinks are recreated as symlinks. The root is never written through a symlink: an
//! overlay path whose counterpart in the root is a symlink (`/lib` on merged-/usr, or an
//! `/etc` link) is an error, since following it would write outside the root (the build
//! runs as root on the host). Existing directories keep their mode; existing files are
//! replaced. Only regular files, directories and symlinks are accepted.

use std::path::{Path, PathBuf};

/// Applying an overlay failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OverlayError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The overlay cannot be applied safely.
    #[error("overlay {overlay}: {path}: {reason}")]
    Refused {
        overlay: PathBuf,
        path: PathBuf,
        reason: &'static str,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OverlayError {
    let path = path.to_owned();
    move |source| OverlayError::Io { op, path, source }
}

/// Checks that `dir` is an existing directory (the recipe step, before any slow step).
pub(crate) fn check(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("overlay {} is not a directory", dir.display())),
        Err(e) => Err(format!("overlay {}: {e}", dir.display())),
    }
}

/// Copies the tree `overlay` over `root`; returns the number of entries applied.
pub(crate) fn apply(overlay: &Path, root: &Path, epoch: u64) -> Result<usize, OverlayError> {
    let mut n = 0;
    walk(overlay, overlay, root, epoch, &mut n)?;
    Ok(n)
}

fn walk(
    overlay: &Path,
    dir: &Path,
    root: &Path,
    epoch: u64,
    n: &mut usize,
) -> Result<(), OverlayError> {
    use std::os::unix::fs::{PermissionsExt, lchown, symlink};
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io("listing", dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io("listing", dir))?;
    entries.sort();
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
    for src in entries {
        let rel = src.strip_prefix(overlay).unwrap_or(&src);
        let dest = root.join(rel);
        let refused = |reason| OverlayError::Refused {
            overlay: overlay.to_owned(),
            path: rel.to_owned(),
            reason,
        };
        let meta = std::fs::symlink_metadata(&src).map_err(io("reading", &src))?;
        let existing = std::fs::symlink_metadata(&dest).ok();
        if existing
            .as_ref()
            .is_some_and(|m| m.file_type().is_symlink())
            && !meta.is_symlink()
        {
            return Err(refused(
                "is a symlink in the root; an overlay never writes through symlinks",
            ));
        }
        let ft = meta.file_type();
        if ft.is_dir() {
            match &existing {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    return Err(refused("is a directory in the overlay but not in the root"));
                }
                None => {
                    std::fs::create_dir(&dest).map_err(io("creating", &dest))?;
                    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))
                        .map_err(io("chmod", &dest))?;
                }
            }
            walk(overlay, &src, root, epoch, n)?;
            std::fs::File::open(&dest)
                .and_then(|f| f.set_modified(t))
                .map_err(io("setting mtime of", &dest))?;
        } else if ft.is_file() || ft.is_symlink() {
            if existing.as_ref().is_some_and(|m| m.is_dir()) {
                return Err(refused("is a directory in the root"));
            }
            if existing.is_some() {
                std::fs::remove_file(&dest).map_err(io("replacing", &dest))?;
            }
            if ft.is_symlink() {
                let target = std::fs::read_link(&src).map_err(io("reading link", &src))?;
                symlink(&target, &dest).map_err(io("creating symlink", &dest))?;
            } else {
                std::fs::copy(&src, &dest).map_err(io("copying", &src))?;
                let mode = if meta.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                };
                std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))
                    .map_err(io("chmod", &dest))?;
                std::fs::File::options()
                    .write(true)
                    .open(&dest)
                    .and_then(|f| f.set_modified(t))
                    .map_err(io("setting mtime of", &dest))?;
            }
        } else {
            return Err(refused("is not a regular file, directory or symlink"));
        }
        lchown(&dest, Some(0), Some(0))
            .or_else(|e| {
                // Unprivileged runs (unit tests) cannot chown; the image build runs as root.
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(io("chown", &dest))?;
        *n += 1;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    use super::*;

    #[test]
    fn applies_files_dirs_links_with_fixed_modes_and_times() {
        let t = tempfile::tempdir().unwrap();
        let (ov, root) = (t.path().join("ov"), t.path().join("root"));
        std::fs::create_dir_all(ov.join("etc/hearth")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hostname"), "old\n").unwrap();
        std::fs::write(ov.join("etc/hostname"), "hearth\n").unwrap();
        std::fs::write(ov.join("etc/hearth/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            ov.join("etc/hearth/run.sh"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        symlink("hostname", ov.join("etc/name")).unwrap();
        assert_eq!(apply(&ov, &root, 1_000_000).unwrap(), 5);
        assert_eq!(
            std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
            "hearth\n"
        );
        let m = std::fs::metadata(root.join("etc/hearth/run.sh")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o755);
        assert_eq!(m.mtime(), 1_000_000);
        let m = std::fs::metadata(root.join("etc/hostname")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o644);
        assert_eq!(
            std::fs::metadata(root.join("etc/hearth")).unwrap().mtime(),
            1_000_000
        );
        assert_eq!(
            std::fs::read_link(root.join("etc/name")).unwrap(),
            Path::new("hostname")
        );
    }

    #[test]
    fn never_writes_through_a_symlink_in_the_root() {
        let t = tempfile::tempdir().unwrap();
        let (ov, root, outside) = (
            t.path().join("ov"),
            t.path().join("root"),
            t.path().join("out"),
        );
        std::fs::create_dir_all(ov.join("lib")).unwrap();
        std::fs::write(ov.join("lib/x"), "x").unwrap();
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        symlink(&outside, root.join("lib")).unwrap();
        let err = apply(&ov, &root, 0).unwrap_err().to_string();
        assert!(err.contains("lib: is a symlink in the root"), "{err}");
        assert!(!outside.join("x").exists());
        assert!(
            check(&t.path().join("missing"))
                .unwrap_err()
                .contains("missing")
        );
    }
}
