//! `Packages::install_import` (`package.install {path}`): only regular files below an
//! import directory, never through a symlink, a FIFO does not block, and every refusal
//! is one generic error that tells nothing of what is outside.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use hearth_services::{InstallError, InstallOptions};

use super::common::{Pkg, World, key, pem};

fn import_dir(w: &World) -> std::path::PathBuf {
    let dir = w.data().join(hearth_layout::PACKAGE_IMPORT_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn refused(w: &World, path: &Path) -> String {
    let started = Instant::now();
    let err = w
        .packages
        .install_import(path, InstallOptions::default())
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{path:?} took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, InstallError::NotImportable { .. }),
        "{path:?}: {err}"
    );
    err.to_string()
}

#[test]
fn a_package_in_the_import_dir_installs_by_absolute_or_relative_path() {
    let w = World::new();
    let dev = key("dev");
    w.packages.trust_add(&pem(&dev), None).unwrap();
    let dir = import_dir(&w);
    std::fs::create_dir(dir.join("sub")).unwrap();
    let path = Pkg::new("hello").write(&dev, &dir.join("sub"));
    let (res, _) = w
        .packages
        .install_import(&path, InstallOptions::default())
        .unwrap();
    assert_eq!(res.id, "hello");
    let rel = path.strip_prefix(&dir).unwrap();
    let err = w
        .packages
        .install_import(rel, InstallOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, InstallError::AlreadyInstalled { .. }),
        "{err}"
    );
    // Another directory only when added (hearthd --import-dir).
    let other = tempfile::tempdir().unwrap();
    let more = Pkg::new("more").write(&dev, other.path());
    refused(&w, &more);
    let (res, _) = w
        .packages
        .clone()
        .with_import_dir(other.path().to_owned())
        .install_import(&more, InstallOptions::default())
        .unwrap();
    assert_eq!(res.id, "more");
}

#[test]
fn outside_files_links_fifos_and_directories_get_one_generic_refusal() {
    let w = World::new();
    let dev = key("dev");
    w.packages.trust_add(&pem(&dev), None).unwrap();
    let dir = import_dir(&w);
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.s9pk");
    std::fs::write(&secret, "top secret first bytes").unwrap();
    // A real package outside, linked in: not installed either.
    let pkg = Pkg::new("hello").write(&dev, outside.path());
    symlink(&pkg, dir.join("link.s9pk")).unwrap();
    symlink(outside.path(), dir.join("linkdir")).unwrap();
    std::fs::create_dir(dir.join("real")).unwrap();
    symlink(outside.path(), dir.join("real/up")).unwrap();
    let fifo = dir.join("fifo.s9pk");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let pkg_name = pkg.file_name().unwrap();
    let mut messages = Vec::new();
    for path in [
        secret.clone(),
        outside.path().join("missing.s9pk"),
        "/nonexistent/x.s9pk".into(),
        dir.join("link.s9pk"),
        "link.s9pk".into(),
        dir.join("linkdir").join(pkg_name),
        dir.join("real/up").join(pkg_name),
        dir.join("..")
            .join("..")
            .join(secret.strip_prefix("/").unwrap()),
        "../db".into(),
        dir.join("missing.s9pk"),
        fifo.clone(),
        dir.clone(),
        dir.join("real"),
        "".into(),
    ] {
        let message = refused(&w, &path);
        assert!(!message.contains("top secret"), "{message}");
        messages.push(message);
    }
    messages.dedup();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("not a package file in the import directory"));
    assert!(w.entry("hello").is_null());
}
