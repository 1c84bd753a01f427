//! One test per attack a container can play in a tree it writes.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use super::*;

/// A temp dir with `tree/` (the container-writable tree) and `host/secret` (a host
/// file the container must not reach), plus `host/sock` (another service's socket).
struct Fixture {
    _tmp: tempfile::TempDir,
    tree: PathBuf,
    secret: PathBuf,
    host: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let host = tmp.path().join("host");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::create_dir_all(&host).unwrap();
    let secret = host.join("secret");
    std::fs::write(&secret, "X").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    Fixture {
        _tmp: tmp,
        tree,
        secret,
        host,
    }
}

impl Fixture {
    fn dir(&self) -> Dir {
        Dir::open_trusted(&self.tree).unwrap()
    }

    fn secret_unchanged(&self) {
        assert_eq!(std::fs::read_to_string(&self.secret).unwrap(), "X");
        let mode = std::fs::metadata(&self.secret)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o600);
    }
}

fn fifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

#[test]
fn create_dir_all_makes_nested_dirs_and_accepts_existing_ones() {
    let f = fixture();
    let d = f.dir();
    let made = d.create_dir_all(Path::new("volumes/main"), 0o755).unwrap();
    assert_eq!(made.path(), f.tree.join("volumes/main"));
    assert!(f.tree.join("volumes/main").is_dir());
    d.create_dir_all(Path::new("volumes/main"), 0o755).unwrap();
}

#[test]
fn create_dir_all_refuses_a_symlink_in_the_middle_and_at_the_end() {
    let f = fixture();
    symlink(&f.host, f.tree.join("volumes")).unwrap();
    let err = f
        .dir()
        .create_dir_all(Path::new("volumes/main"), 0o755)
        .unwrap_err();
    assert!(matches!(err, SafeFsError::Symlink { .. }), "{err}");
    assert!(!f.host.join("main").exists(), "created through the link");
    let err = f
        .dir()
        .create_dir_all(Path::new("volumes"), 0o755)
        .unwrap_err();
    assert!(matches!(err, SafeFsError::Symlink { .. }), "{err}");
}

#[test]
fn create_dir_all_refuses_a_dangling_symlink() {
    let f = fixture();
    let target = f.host.join("new");
    symlink(&target, f.tree.join("v")).unwrap();
    let err = f.dir().create_dir_all(Path::new("v"), 0o755).unwrap_err();
    assert!(matches!(err, SafeFsError::Symlink { .. }), "{err}");
    assert!(!target.exists(), "mkdir followed a dangling link");
}

#[test]
fn dot_dot_and_absolute_paths_are_refused() {
    let f = fixture();
    let d = f.dir();
    for bad in ["../host", "a/../../host", "/etc", "", "./a"] {
        let err = d.create_dir_all(Path::new(bad), 0o755).unwrap_err();
        assert!(matches!(err, SafeFsError::BadPath { .. }), "{bad}: {err}");
        let err = d.open_dir(Path::new(bad)).unwrap_err();
        assert!(matches!(err, SafeFsError::BadPath { .. }), "{bad}: {err}");
    }
    assert!(matches!(
        d.write_file_atomic("a/b", b"", 0o644),
        Err(SafeFsError::BadPath { .. })
    ));
    assert!(matches!(
        d.open_socket(".."),
        Err(SafeFsError::BadPath { .. })
    ));
}

#[test]
fn a_fifo_where_a_directory_should_be_is_refused_without_blocking() {
    let f = fixture();
    fifo(&f.tree.join("v"));
    let start = Instant::now();
    let err = f.dir().create_dir_all(Path::new("v/x"), 0o755).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(err, SafeFsError::WrongType { found: "FIFO", .. }),
        "{err}"
    );
}

#[test]
fn open_trusted_does_not_follow_its_last_component() {
    let f = fixture();
    let link = f.tree.join("link");
    symlink(&f.host, &link).unwrap();
    let err = Dir::open_trusted(&link).unwrap_err();
    assert!(matches!(err, SafeFsError::Symlink { .. }), "{err}");
}

#[test]
fn write_file_atomic_replaces_a_planted_symlink_instead_of_writing_through_it() {
    let f = fixture();
    symlink(&f.secret, f.tree.join("spec.json")).unwrap();
    // Also the temp name, dangling and not.
    symlink(&f.secret, f.tree.join(".spec.json.tmp")).unwrap();
    f.dir()
        .write_file_atomic("spec.json", b"{}", 0o644)
        .unwrap();
    f.secret_unchanged();
    let meta = std::fs::symlink_metadata(f.tree.join("spec.json")).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
    assert_eq!(std::fs::read(f.tree.join("spec.json")).unwrap(), b"{}");
}

#[test]
fn write_file_atomic_replaces_a_hard_link_instead_of_writing_through_it() {
    let f = fixture();
    let victim = f.tree.join("victim");
    std::fs::write(&victim, "X").unwrap();
    std::fs::hard_link(&victim, f.tree.join("spec.json")).unwrap();
    f.dir()
        .write_file_atomic("spec.json", b"{}", 0o644)
        .unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "X");
    assert_eq!(std::fs::read(f.tree.join("spec.json")).unwrap(), b"{}");
}

#[test]
fn a_real_socket_is_opened_and_connected_through_its_descriptor() {
    let f = fixture();
    let listener = UnixListener::bind(f.tree.join("service.sock")).unwrap();
    let sock = f.dir().open_socket("service.sock").unwrap();
    assert_eq!(sock.path(), f.tree.join("service.sock"));
    // The entry is swapped after the check: the descriptor still reaches the checked
    // socket, not whatever the name now points at.
    std::fs::rename(f.tree.join("service.sock"), f.tree.join("moved")).unwrap();
    symlink(&f.secret, f.tree.join("service.sock")).unwrap();
    let mut client = UnixStream::connect(sock.connect_path()).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    client.write_all(b"hi").unwrap();
    let mut buf = [0u8; 2];
    std::io::Read::read_exact(&mut server, &mut buf).unwrap();
    assert_eq!(&buf, b"hi");
}

#[test]
fn a_symlink_to_another_socket_is_refused() {
    let f = fixture();
    let _other = UnixListener::bind(f.host.join("sock")).unwrap();
    symlink(f.host.join("sock"), f.tree.join("service.sock")).unwrap();
    let err = f.dir().open_socket("service.sock").unwrap_err();
    assert!(
        matches!(
            err,
            SafeFsError::WrongType {
                found: "symbolic link",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("refusing"), "{err}");
}

#[test]
fn a_dangling_symlink_socket_is_refused() {
    let f = fixture();
    symlink(f.host.join("nothing"), f.tree.join("service.sock")).unwrap();
    let err = f.dir().open_socket("service.sock").unwrap_err();
    assert!(matches!(err, SafeFsError::WrongType { .. }), "{err}");
    assert!(!err.is_not_found());
}

#[test]
fn a_fifo_socket_is_refused_without_blocking() {
    let f = fixture();
    fifo(&f.tree.join("service.sock"));
    let start = Instant::now();
    let err = f.dir().open_socket("service.sock").unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(err, SafeFsError::WrongType { found: "FIFO", .. }),
        "{err}"
    );
}

#[test]
fn a_regular_file_or_directory_socket_is_refused() {
    let f = fixture();
    std::fs::write(f.tree.join("service.sock"), "x").unwrap();
    std::fs::create_dir(f.tree.join("d.sock")).unwrap();
    let d = f.dir();
    assert!(matches!(
        d.open_socket("service.sock"),
        Err(SafeFsError::WrongType {
            found: "regular file",
            ..
        })
    ));
    assert!(matches!(
        d.open_socket("d.sock"),
        Err(SafeFsError::WrongType {
            found: "directory",
            ..
        })
    ));
}

#[test]
fn a_hard_linked_socket_is_refused() {
    let f = fixture();
    let _other = UnixListener::bind(f.tree.join("other.sock")).unwrap();
    std::fs::hard_link(f.tree.join("other.sock"), f.tree.join("service.sock")).unwrap();
    let err = f.dir().open_socket("service.sock").unwrap_err();
    assert!(
        matches!(err, SafeFsError::HardLinked { links: 2, .. }),
        "{err}"
    );
}

#[test]
fn a_missing_socket_is_not_found() {
    let f = fixture();
    let err = f.dir().open_socket("service.sock").unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn clear_removes_links_without_following_them() {
    let f = fixture();
    std::fs::create_dir_all(f.tree.join("a/b/c")).unwrap();
    std::fs::write(f.tree.join("a/b/c/file"), "x").unwrap();
    symlink(&f.host, f.tree.join("a/hostdir")).unwrap();
    symlink(&f.secret, f.tree.join("secret")).unwrap();
    std::fs::hard_link(&f.secret, f.tree.join("hard")).unwrap();
    fifo(&f.tree.join("fifo"));
    f.dir().clear().unwrap();
    assert_eq!(std::fs::read_dir(&f.tree).unwrap().count(), 0);
    f.secret_unchanged();
    assert!(f.host.is_dir());
}

#[test]
fn remove_entry_removes_one_tree_and_ignores_a_missing_one() {
    let f = fixture();
    std::fs::create_dir_all(f.tree.join("images/x")).unwrap();
    symlink(&f.host, f.tree.join("images/x/h")).unwrap();
    std::fs::write(f.tree.join("keep"), "k").unwrap();
    let d = f.dir();
    d.remove_entry("images").unwrap();
    d.remove_entry("images").unwrap();
    assert!(!f.tree.join("images").exists());
    assert!(f.tree.join("keep").exists());
    assert!(f.secret.exists());
}

#[test]
fn a_tree_deeper_than_the_limit_is_refused_not_recursed() {
    let f = fixture();
    let mut p = f.tree.join("deep");
    for _ in 0..=MAX_DEPTH {
        p.push("d");
    }
    std::fs::create_dir_all(&p).unwrap();
    let err = f.dir().clear().unwrap_err();
    assert!(matches!(err, SafeFsError::TooDeep { .. }), "{err}");
}

#[test]
fn remove_dir_all_removes_a_link_at_the_top_not_its_target() {
    let f = fixture();
    let link = f.tree.join("pkg");
    symlink(&f.host, &link).unwrap();
    remove_dir_all(&link).unwrap();
    assert!(f.secret.exists());
    remove_dir_all(&f.tree.join("absent")).unwrap();
}
