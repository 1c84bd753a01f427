//! `hearth-safefs`: the one small, audited module through which `hearthd` touches files
//! in or below a directory a container can write.
//!
//! # Threat
//! Root inside a service container owns its volumes, its socket directory and its
//! overlay upper (`<pkg>/volumes/*`, `<pkg>/rpc/`, `<pkg>/container/upper`): it can
//! plant symlinks (to `/etc/shadow`, dangling, in a middle component), hard links,
//! FIFOs and sockets there at any time, also while `hearthd` looks. Anything `hearthd`
//! (host root) does through a path below such a tree must therefore never follow a link
//! and never block on a special file, or the container gets host root's hands.
//!
//! # Design
//! A [`Dir`] is an open directory file descriptor plus its path (for messages). It is
//! obtained once from a path `hearthd` alone writes ([`Dir::open_trusted`], whose last
//! component is not followed either), and everything below it is reached with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` and
//! `O_NOFOLLOW`: no `..`, no symlink in any component (dangling or not), no escape by
//! a rename race, because each step is relative to a descriptor, not a path.
//! - [`Dir::create_dir_all`] makes one component at a time (`mkdirat`, then opens it
//!   with the flags above: a planted symlink or FIFO is refused, never followed);
//! - [`Dir::write_file_atomic`] writes `.<name>.tmp` with `O_CREAT | O_EXCL |
//!   O_NOFOLLOW`, syncs it and `renameat`s it over `<name>` (a symlink or hard link at
//!   `<name>` is replaced, its target untouched);
//! - [`Dir::open_socket`] opens a socket with `O_PATH | O_NOFOLLOW` (never blocks, even
//!   on a FIFO), `fstat`s the descriptor and accepts only `S_IFSOCK` with exactly one
//!   link; the caller then connects to [`CheckedSocket::connect_path`]
//!   (`/proc/self/fd/<n>`): connecting through an `O_PATH` descriptor's magic link
//!   reaches exactly the inode that was checked, whatever the directory holds by then;
//! - [`Dir::clear`] and [`Dir::remove_entry`] remove trees with `unlinkat`, descending
//!   only through directories opened as above (a symlink is removed, never followed;
//!   depth is bounded by [`MAX_DEPTH`], so a deep tree cannot exhaust the stack).
//!
//! # Invariants
//! - No function here takes a path below a container-writable tree and hands it to a
//!   path-based syscall; only single names relative to a checked descriptor.
//! - Hard links: a container can only link files it can see, and `link(2)` never
//!   crosses a mount (`EXDEV`), so a link in its bind mounts points at its own files.
//!   Still, a socket must have exactly one link ([`SafeFsError::HardLinked`]), so a
//!   socket hard-linked from elsewhere on the same mount is refused, not trusted.
//!
//! # Limitations
//! Linux ≥ 5.6 (`openat2`); without it every operation fails (closed, not open).
//! Whole-package removal on uninstall uses `std::fs::remove_dir_all`, which has been
//! symlink-safe since Rust 1.58.1 (CVE-2022-21658: `openat` + `O_NOFOLLOW` +
//! `unlinkat`); see [`remove_dir_all`].
//!
//! # Rejected alternatives
//! `lstat` then open by path: racy (the container swaps the entry in between). Chrooting
//! or forking a helper into the container's namespaces: more moving parts for the same
//! guarantee `openat2` gives in one call.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

/// How deep [`Dir::clear`] and [`Dir::remove_entry`] descend before refusing.
pub const MAX_DEPTH: usize = 64;

/// How every lookup below a [`Dir`] resolves.
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);
/// How a directory is opened (readable, so it can be listed).
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Errors of this module; each names the path it was about.
#[derive(Debug, thiserror::Error)]
pub enum SafeFsError {
    /// A system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The path is or passes through a symbolic link.
    #[error("{}: is or passes through a symbolic link; refusing to follow it", path.display())]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// The entry is not of the expected type.
    #[error("{}: is a {found}, not a {expected}; refusing it", path.display())]
    WrongType {
        /// The path.
        path: PathBuf,
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: &'static str,
    },
    /// The entry has more than one hard link.
    #[error("{}: has {links} hard links (expected 1); refusing it", path.display())]
    HardLinked {
        /// The path.
        path: PathBuf,
        /// Its link count.
        links: u64,
    },
    /// The relative path is empty, absolute or has `.`/`..` components.
    #[error("{}: not a plain relative path ({reason})", path.display())]
    BadPath {
        /// The path as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A tree to remove is nested deeper than [`MAX_DEPTH`].
    #[error("{}: nested deeper than {MAX_DEPTH} directories; refusing to descend", path.display())]
    TooDeep {
        /// Where the limit was reached.
        path: PathBuf,
    },
}

impl SafeFsError {
    /// Whether the error means "no such file" (a caller may wait for it to appear).
    pub fn is_not_found(&self) -> bool {
        matches!(self, SafeFsError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(rustix::io::Errno) -> SafeFsError + 'a {
    move |errno| {
        let path = path.to_owned();
        match errno {
            // RESOLVE_NO_SYMLINKS / O_NOFOLLOW refused a link.
            rustix::io::Errno::LOOP => SafeFsError::Symlink { path },
            // RESOLVE_BENEATH refused an escape.
            rustix::io::Errno::XDEV => SafeFsError::BadPath {
                path,
                reason: "leaves its directory",
            },
            e => SafeFsError::Io {
                op,
                path,
                source: e.into(),
            },
        }
    }
}

/// Maps a failed `O_DIRECTORY | O_NOFOLLOW` open: `ENOTDIR` says what the entry is
/// (`lstat`, for the message only).
fn not_a_dir(
    errno: rustix::io::Errno,
    path: &Path,
    lstat: impl FnOnce() -> rustix::io::Result<rustix::fs::Stat>,
) -> SafeFsError {
    if errno == rustix::io::Errno::NOTDIR
        && let Ok(st) = lstat()
    {
        let found = FileType::from_raw_mode(st.st_mode);
        return if found == FileType::Symlink {
            SafeFsError::Symlink {
                path: path.to_owned(),
            }
        } else {
            SafeFsError::WrongType {
                path: path.to_owned(),
                expected: "directory",
                found: type_name(found),
            }
        };
    }
    io_err("open directory", path)(errno)
}

/// The name of a file type, for messages.
fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "file of unknown type",
    }
}

/// Checks that `rel` is a non-empty path of plain names only.
fn check_rel(rel: &Path) -> Result<(), SafeFsError> {
    let bad = |reason| {
        Err(SafeFsError::BadPath {
            path: rel.to_owned(),
            reason,
        })
    };
    if rel.as_os_str().is_empty() {
        return bad("empty");
    }
    for c in rel.components() {
        match c {
            Component::Normal(_) => {}
            Component::ParentDir => return bad("has `..`"),
            Component::CurDir => return bad("has `.`"),
            Component::RootDir | Component::Prefix(_) => return bad("is absolute"),
        }
    }
    Ok(())
}

/// Checks that `name` is one plain file name.
fn check_name(name: &OsStr) -> Result<(), SafeFsError> {
    let path = Path::new(name);
    check_rel(path)?;
    if path.components().count() != 1 {
        return Err(SafeFsError::BadPath {
            path: path.to_owned(),
            reason: "not a single name",
        });
    }
    Ok(())
}

/// An open directory; everything below it is reached without following links.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// A socket checked by [`Dir::open_socket`]; keep it alive until connected.
#[derive(Debug)]
pub struct CheckedSocket {
    fd: OwnedFd,
    path: PathBuf,
}

impl CheckedSocket {
    /// The path to connect to: `/proc/self/fd/<n>` of the checked `O_PATH` descriptor,
    /// which resolves to exactly the socket inode that was checked.
    pub fn connect_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// The socket's path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Dir {
    /// Opens `path`, a directory whose every component only `hearthd` writes (the
    /// package dir, say); its last component is not followed if it is a symlink.
    pub fn open_trusted(path: &Path) -> Result<Dir, SafeFsError> {
        let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty()).map_err(|e| {
            not_a_dir(e, path, || {
                rustix::fs::statat(rustix::fs::CWD, path, AtFlags::SYMLINK_NOFOLLOW)
            })
        })?;
        Ok(Dir {
            fd,
            path: path.to_owned(),
        })
    }

    /// The directory's path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the directory `rel` below this one (no link followed, no escape).
    pub fn open_dir(&self, rel: &Path) -> Result<Dir, SafeFsError> {
        check_rel(rel)?;
        let path = self.path.join(rel);
        let fd =
            rustix::fs::openat2(&self.fd, rel, DIR_FLAGS, Mode::empty(), RESOLVE).map_err(|e| {
                not_a_dir(e, &path, || {
                    // Only for the message: RESOLVE_NO_SYMLINKS already refused any
                    // link before the last component.
                    rustix::fs::statat(&self.fd, rel, AtFlags::SYMLINK_NOFOLLOW)
                })
            })?;
        Ok(Dir { fd, path })
    }

    /// Creates `rel` and its missing parents below this directory with `mode` (before
    /// the umask) and opens it. An existing component must be a real directory: a
    /// symlink (dangling or not), FIFO or file there is refused.
    pub fn create_dir_all(&self, rel: &Path, mode: u32) -> Result<Dir, SafeFsError> {
        check_rel(rel)?;
        let mut cur: Option<Dir> = None;
        for c in rel.components() {
            let name = Path::new(c.as_os_str());
            let parent = cur.as_ref().unwrap_or(self);
            let path = parent.path.join(name);
            match rustix::fs::mkdirat(&parent.fd, name, Mode::from_raw_mode(mode)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(io_err("create directory", &path)(e)),
            }
            let next = parent.open_dir(name)?;
            cur = Some(next);
        }
        // `rel` has at least one component (check_rel).
        cur.ok_or_else(|| SafeFsError::BadPath {
            path: rel.to_owned(),
            reason: "empty",
        })
    }

    /// Writes `bytes` to `name` in this directory: to `.<name>.tmp` (created anew,
    /// never through a link), synced, then renamed over `name`. Whatever `name` was —
    /// a symlink, a hard link — is replaced, not written through.
    pub fn write_file_atomic(
        &self,
        name: &str,
        bytes: &[u8],
        mode: u32,
    ) -> Result<(), SafeFsError> {
        check_name(OsStr::new(name))?;
        let tmp = format!(".{name}.tmp");
        let tmp_path = self.path.join(&tmp);
        match rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(io_err("remove", &tmp_path)(e)),
        }
        let flags = OFlags::WRONLY
            .union(OFlags::CREATE)
            .union(OFlags::EXCL)
            .union(OFlags::NOFOLLOW)
            .union(OFlags::CLOEXEC);
        let fd = rustix::fs::openat2(
            &self.fd,
            tmp.as_str(),
            flags,
            Mode::from_raw_mode(mode),
            RESOLVE,
        )
        .map_err(io_err("create", &tmp_path))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(io_err("chmod", &tmp_path))?;
        let mut file = File::from(fd);
        let io = |source| SafeFsError::Io {
            op: "write",
            path: tmp_path.clone(),
            source,
        };
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        rustix::fs::renameat(&self.fd, tmp.as_str(), &self.fd, name)
            .map_err(io_err("rename into place", &self.path.join(name)))
    }

    /// Renames `from` to `to`, both plain names in this directory.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), SafeFsError> {
        check_name(OsStr::new(from))?;
        check_name(OsStr::new(to))?;
        rustix::fs::renameat(&self.fd, from, &self.fd, to)
            .map_err(io_err("rename", &self.path.join(from)))
    }

    /// Opens the socket `name` in this directory for connecting, after checking
    /// without following links that it is a socket with one link. Never blocks.
    pub fn open_socket(&self, name: &str) -> Result<CheckedSocket, SafeFsError> {
        check_name(OsStr::new(name))?;
        let path = self.path.join(name);
        // O_PATH | O_NOFOLLOW: a trailing symlink yields a descriptor of the link
        // itself (refused below by its type); a FIFO is not opened for I/O.
        let flags = OFlags::PATH.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);
        let fd = rustix::fs::openat2(&self.fd, name, flags, Mode::empty(), RESOLVE)
            .map_err(io_err("open socket", &path))?;
        let st = rustix::fs::fstat(&fd).map_err(io_err("stat", &path))?;
        let found = FileType::from_raw_mode(st.st_mode);
        if found != FileType::Socket {
            return Err(SafeFsError::WrongType {
                path,
                expected: "socket",
                found: type_name(found),
            });
        }
        #[allow(clippy::useless_conversion)] // nlink_t is u32 on some targets
        let links = u64::from(st.st_nlink);
        if links != 1 {
            return Err(SafeFsError::HardLinked { path, links });
        }
        Ok(CheckedSocket { fd, path })
    }

    /// Removes everything in this directory (not the directory itself); links are
    /// removed, never followed.
    pub fn clear(&self) -> Result<(), SafeFsError> {
        self.clear_at(0)
    }

    /// Removes the entry `name` of this directory, a whole tree if it is a directory;
    /// nothing if it does not exist.
    pub fn remove_entry(&self, name: &str) -> Result<(), SafeFsError> {
        check_name(OsStr::new(name))?;
        let c = CString::new(name).map_err(|_| SafeFsError::BadPath {
            path: PathBuf::from(name),
            reason: "has a NUL byte",
        })?;
        self.remove_at(&c, 0)
    }

    fn clear_at(&self, depth: usize) -> Result<(), SafeFsError> {
        let names: Vec<CString> = rustix::fs::Dir::read_from(&self.fd)
            .map_err(io_err("list", &self.path))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_owned()))
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .collect();
        for name in names {
            self.remove_at(&name, depth)?;
        }
        Ok(())
    }

    fn remove_at(&self, name: &CString, depth: usize) -> Result<(), SafeFsError> {
        let path = self.path.join(OsStr::from_bytes(name.as_bytes()));
        let st = match rustix::fs::statat(&self.fd, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(e) => return Err(io_err("stat", &path)(e)),
        };
        let flags = if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            if depth >= MAX_DEPTH {
                return Err(SafeFsError::TooDeep { path });
            }
            let fd =
                rustix::fs::openat2(&self.fd, name.as_c_str(), DIR_FLAGS, Mode::empty(), RESOLVE)
                    .map_err(io_err("open directory", &path))?;
            Dir {
                fd,
                path: path.clone(),
            }
            .clear_at(depth + 1)?;
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        match rustix::fs::unlinkat(&self.fd, name.as_c_str(), flags) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(io_err("remove", &path)(e)),
        }
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Removes the tree at `path` (nothing if absent) with `std::fs::remove_dir_all`,
/// which does not follow symlinks inside the tree (Rust ≥ 1.58.1, CVE-2022-21658:
/// it descends with `openat(O_NOFOLLOW)` and removes with `unlinkat`) and removes a
/// symlink at `path` itself rather than its target. For whole package trees whose
/// root `hearthd` owns (uninstall); its parents must be trusted.
pub fn remove_dir_all(path: &Path) -> Result<(), SafeFsError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SafeFsError::Io {
            op: "remove",
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
