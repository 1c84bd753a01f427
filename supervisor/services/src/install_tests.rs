//! Copy progress of the install (the rest is tested through `Packages` in
//! `tests/integration/install.rs`).

use std::time::Duration;

use hearth_s9pk::{ArchiveBuilder, SigningKey};

use super::*;

/// A signed archive with a 4 MiB image for two arches; returns its path.
fn archive(dir: &Path) -> PathBuf {
    let mut b = ArchiveBuilder::new();
    b.add_file_bytes("manifest.json", b"{}".to_vec()).unwrap();
    for (arch, byte) in [("x86_64", 1u8), ("aarch64", 2)] {
        b.add_file_bytes(&format!("images/{arch}/main.squashfs"), vec![byte; 4 << 20])
            .unwrap();
    }
    let path = dir.join("src.s9pk");
    b.write_file(&SigningKey::from_bytes(&[7; 32]), &path)
        .unwrap();
    path
}

#[test]
fn copy_reports_the_bytes_written_while_it_copies() {
    let dir = tempfile::tempdir().unwrap();
    let src = archive(dir.path());
    let dest = dir.path().join("archive/hello/1.s9pk");
    let mut seen = Vec::new();
    let written = copy_filtered(
        &mut open_reader(&src).unwrap(),
        "x86_64",
        &dest,
        Duration::ZERO,
        &mut |n| seen.push(n),
    )
    .unwrap();
    assert_eq!(written, std::fs::metadata(&dest).unwrap().len());
    assert!(
        written < std::fs::metadata(&src).unwrap().len(),
        "aarch64 stripped"
    );
    let between: Vec<u64> = seen
        .iter()
        .copied()
        .filter(|n| *n > 0 && *n < written)
        .collect();
    assert!(between.len() >= 3, "few intermediate reports: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "not monotonic: {seen:?}"
    );
    assert!(seen.iter().all(|n| *n <= written));
    // The copy is a valid archive (hash-checked when read).
    let mut copy = open_reader(&dest).unwrap();
    copy.verify_all().unwrap();
    assert!(!dir.path().join("archive/hello/.1.s9pk.tmp").exists());
}

#[test]
fn copy_reports_at_most_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let src = archive(dir.path());
    let mut seen = Vec::new();
    copy_filtered(
        &mut open_reader(&src).unwrap(),
        "x86_64",
        &dir.path().join("out.s9pk"),
        Duration::from_secs(3600),
        &mut |n| seen.push(n),
    )
    .unwrap();
    assert!(seen.is_empty(), "{seen:?}");
}

#[test]
fn failed_copy_leaves_no_temp_file() {
    use std::io::{Seek, SeekFrom, Write};
    let dir = tempfile::tempdir().unwrap();
    let src = archive(dir.path());
    let mut reader = open_reader(&src).unwrap();
    // Both images damaged after the table of contents was read: the copy, checked
    // while it is written, must fail.
    let len = std::fs::metadata(&src).unwrap().len();
    let mut f = std::fs::OpenOptions::new().write(true).open(&src).unwrap();
    for at in [len / 4, len / 4 * 3] {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&[9; 16]).unwrap();
    }
    drop(f);
    let dest = dir.path().join("out.s9pk");
    let err = copy_filtered(&mut reader, "x86_64", &dest, Duration::ZERO, &mut |_| {}).unwrap_err();
    assert!(matches!(err, InstallError::Copy { .. }), "{err}");
    assert!(!dest.exists());
    assert!(!dir.path().join(".out.s9pk.tmp").exists());
}

#[test]
fn spec_capabilities_map_to_the_runtime_ones_by_name() {
    use hearth_s9pk::spec::Capability as S;
    for c in [S::NetRaw, S::NetAdmin, S::SysNice, S::IpcLock] {
        let mapped = super::capability(c);
        assert_eq!(
            serde_json::to_value(c).unwrap(),
            serde_json::to_value(mapped).unwrap()
        );
        assert_eq!(
            serde_json::to_value(c).unwrap().as_str(),
            Some(mapped.lxc_name())
        );
    }
}
