//! File-system steps for building an image root in a staging directory.
//!
//! Every write goes to a path under the image root whose parents were checked to
//! be real directories: a symlink on the way is refused rather than followed, so
//! nothing from an archive or a project folder can write outside the root.
//! Existing entries are removed before a file is created (never opened for
//! writing), which also breaks hard links instead of writing through them.
//!
//! Rejected alternative: resolving symlinked parents inside the root (like
//! `securejoin`). Image layers list real paths (`usr/lib/…`, not `lib/…` through
//! a symlink), so refusing costs nothing in practice and is simpler to trust.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::{Component, Path, PathBuf};

/// A file-system step failed or a path would leave the image root.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FsError {
    /// An I/O operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`creating directory`, `copying`, …).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A path is absolute, contains `..`, or goes through a symlink.
    #[error("unsafe path {path:?}: {reason}")]
    Unsafe {
        /// The path as given.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
}

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FsError {
    let path = path.to_path_buf();
    move |source| FsError::Io { op, path, source }
}

fn unsafe_path(path: &Path, reason: &'static str) -> FsError {
    FsError::Unsafe {
        path: path.display().to_string(),
        reason,
    }
}

/// Normalises a path from an archive: strips `.` components, refuses absolute
/// paths and `..`. The empty result stands for the root itself.
pub(crate) fn safe_relative(raw: &Path) -> Result<PathBuf, FsError> {
    let mut out = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_path(raw, "contains `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_path(raw, "is absolute"));
            }
        }
    }
    Ok(out)
}

/// Walks the parents of `rel` under `root`, creating missing ones as root-owned
/// `0755` directories when `create` is set. Returns `None` if a parent is missing
/// and `create` is not set. A symlink or a non-directory on the way is an error.
fn walk_parents(root: &Path, rel: &Path, create: bool) -> Result<Option<PathBuf>, FsError> {
    let mut current = root.to_path_buf();
    let parent = rel.parent().unwrap_or(Path::new(""));
    for part in parent.components() {
        current.push(part);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(unsafe_path(
                    rel,
                    "a parent directory is a symlink; nothing is written through symlinks \
                     (use the real path, e.g. usr/lib/… rather than lib/…)",
                ));
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(unsafe_path(rel, "a parent is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !create {
                    return Ok(None);
                }
                fs::create_dir(&current).map_err(io_err("creating directory", &current))?;
                set_owner_mode(&current, 0, 0, Some(0o755))?;
            }
            Err(e) => return Err(io_err("inspecting", &current)(e)),
        }
    }
    Ok(Some(root.join(rel)))
}

/// The full path for `rel` with all parents present as real directories.
pub(crate) fn prepare_parents(root: &Path, rel: &Path) -> Result<PathBuf, FsError> {
    walk_parents(root, rel, true)?.ok_or_else(|| unsafe_path(rel, "parent could not be created"))
}

/// The full path for `rel` if all its parents exist as real directories.
pub(crate) fn existing_parents(root: &Path, rel: &Path) -> Result<Option<PathBuf>, FsError> {
    walk_parents(root, rel, false)
}

/// Removes whatever is at `path` (a directory recursively), never following a
/// symlink. Missing paths are fine.
pub(crate) fn remove_any(path: &Path) -> Result<(), FsError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspecting", path)(e)),
    };
    if meta.is_dir() {
        fs::remove_dir_all(path).map_err(io_err("removing directory", path))
    } else {
        fs::remove_file(path).map_err(io_err("removing", path))
    }
}

/// Removes everything inside the directory at `path`, keeping the directory.
pub(crate) fn clear_dir(path: &Path) -> Result<(), FsError> {
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("listing", path)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("listing", path))?;
        remove_any(&entry.path())?;
    }
    Ok(())
}

/// Sets owner (without following symlinks) and, for non-symlinks, the mode.
/// The owner is set first because `chown` clears set-id bits.
pub(crate) fn set_owner_mode(
    path: &Path,
    uid: u32,
    gid: u32,
    mode: Option<u32>,
) -> Result<(), FsError> {
    lchown(path, Some(uid), Some(gid)).map_err(io_err("changing owner of", path))?;
    if let Some(mode) = mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
            .map_err(io_err("changing mode of", path))?;
    }
    Ok(())
}

/// Makes sure a directory exists at `path` (replacing a non-directory).
pub(crate) fn ensure_dir(path: &Path) -> Result<(), FsError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => remove_any(path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspecting", path)(e)),
    }
    fs::create_dir(path).map_err(io_err("creating directory", path))
}

/// Copies the tree at `src` (a project folder) over `root`. Entries become
/// root-owned; modes are kept minus group/other write (so a checkout's umask does
/// not leak into the image). Symlinks are copied as symlinks; other special
/// files are skipped. Entries are visited in name order.
pub(crate) fn copy_tree(src: &Path, root: &Path) -> Result<(), FsError> {
    copy_dir_contents(src, root, Path::new(""))
}

fn copy_dir_contents(src: &Path, root: &Path, rel: &Path) -> Result<(), FsError> {
    let dir = src.join(rel);
    let mut entries = fs::read_dir(&dir)
        .map_err(io_err("listing", &dir))?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err("listing", &dir))?;
    entries.sort();
    for name in entries {
        let rel = rel.join(&name);
        let from = src.join(&rel);
        let meta = fs::symlink_metadata(&from).map_err(io_err("inspecting", &from))?;
        let to = prepare_parents(root, &rel)?;
        let mode = meta.permissions().mode() & !0o022;
        let file_type = meta.file_type();
        if file_type.is_dir() {
            ensure_dir(&to)?;
            set_owner_mode(&to, 0, 0, Some(mode))?;
            copy_dir_contents(src, root, &rel)?;
        } else if file_type.is_file() {
            remove_any(&to)?;
            fs::copy(&from, &to).map_err(io_err("copying into the image", &from))?;
            set_owner_mode(&to, 0, 0, Some(mode))?;
        } else if file_type.is_symlink() {
            let target = fs::read_link(&from).map_err(io_err("reading link", &from))?;
            remove_any(&to)?;
            symlink(&target, &to).map_err(io_err("creating symlink", &to))?;
            set_owner_mode(&to, 0, 0, None)?;
        } else {
            tracing::warn!(path = %from.display(), "skipping special file");
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_normalised_and_escapes_refused() {
        assert_eq!(
            safe_relative(Path::new("./a/./b")).unwrap(),
            Path::new("a/b")
        );
        assert_eq!(safe_relative(Path::new("./")).unwrap(), Path::new(""));
        assert!(safe_relative(Path::new("a/../../etc")).is_err());
        assert!(safe_relative(Path::new("/etc/passwd")).is_err());
    }

    #[test]
    fn parents_through_symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        symlink("/tmp", dir.path().join("link")).unwrap();
        let err = prepare_parents(dir.path(), Path::new("link/x")).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        let full = prepare_parents(dir.path(), Path::new("a/b/c")).unwrap();
        assert!(dir.path().join("a/b").is_dir());
        assert_eq!(full, dir.path().join("a/b/c"));
    }

    #[test]
    fn copy_tree_keeps_links_and_masks_group_write() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("bin")).unwrap();
        fs::write(src.path().join("bin/tool"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(
            src.path().join("bin/tool"),
            fs::Permissions::from_mode(0o775),
        )
        .unwrap();
        symlink("bin/tool", src.path().join("tool")).unwrap();
        copy_tree(src.path(), dst.path()).unwrap();
        let meta = fs::metadata(dst.path().join("bin/tool")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        assert_eq!(
            fs::read_link(dst.path().join("tool")).unwrap(),
            Path::new("bin/tool")
        );
    }
}
