//! Filtering to one architecture keeps the signature valid.

use std::io::Cursor;

use hearth_s9pk::{EntryKind, S9pkReader, filter_arch, filter_arch_to};

use super::common::{open, sample};
use super::mini::decode_and_check;

#[test]
fn filtering_strips_other_arches_and_keeps_the_signature() {
    let bytes = sample();
    let mut r = open(&bytes).unwrap();
    let before = r.entries().unwrap();
    let mut out = Cursor::new(Vec::new());
    let stripped = filter_arch_to(&mut r, "x86_64", &mut out).unwrap();
    assert_eq!(stripped, ["images/aarch64"]);
    let filtered = out.into_inner();
    // Same signer, signature, root sighash and root maxsize; the file shrinks.
    assert_eq!(filtered[..139], bytes[..139]);
    assert!(filtered.len() < bytes.len());
    let mut f = open(&filtered).unwrap();
    let summary = f.verify_all().unwrap();
    assert_eq!(summary.missing, 1);
    let after = f.entries().unwrap();
    // aarch64 is now one MISSING entry with the same hash and signed size.
    let arm_before = before.iter().find(|e| e.path == "images/aarch64").unwrap();
    let arm_after = after.iter().find(|e| e.path == "images/aarch64").unwrap();
    assert_eq!(arm_after.kind, EntryKind::Missing);
    assert_eq!(
        (arm_after.hash, arm_after.size),
        (arm_before.hash, arm_before.size)
    );
    assert!(after.iter().all(|e| !e.path.starts_with("images/aarch64/")));
    // Everything else is unchanged, contents included.
    let kept: Vec<_> = before
        .iter()
        .filter(|e| !e.path.starts_with("images/aarch64"))
        .collect();
    let after_kept: Vec<_> = after
        .iter()
        .filter(|e| e.path != "images/aarch64")
        .collect();
    assert_eq!(kept, after_kept);
    assert_eq!(
        f.read_file("images/x86_64/main.squashfs", 1 << 20).unwrap(),
        vec![0x5a; 3000]
    );
    // The images TOC shrank below its signed size, which is kept.
    let toc_len = |file: &[u8]| {
        decode_and_check(file)
            .into_iter()
            .find(|r| r.what == "toc /images")
            .unwrap()
            .len
    };
    let images = after.iter().find(|e| e.path == "images").unwrap();
    assert_eq!(images.size, toc_len(&bytes));
    assert!(toc_len(&filtered) < images.size);
}

#[test]
fn filtering_twice_is_stable_and_unknown_arches_strip_everything() {
    let bytes = sample();
    let mut once = Cursor::new(Vec::new());
    filter_arch_to(&mut open(&bytes).unwrap(), "x86_64", &mut once).unwrap();
    let once = once.into_inner();
    let mut twice = Cursor::new(Vec::new());
    let stripped = filter_arch_to(&mut open(&once).unwrap(), "x86_64", &mut twice).unwrap();
    assert!(stripped.is_empty());
    assert_eq!(once, twice.into_inner());
    let mut none = Cursor::new(Vec::new());
    let stripped = filter_arch_to(&mut open(&bytes).unwrap(), "riscv64", &mut none).unwrap();
    assert_eq!(stripped, ["images/aarch64", "images/x86_64"]);
    let none = none.into_inner();
    assert_eq!(open(&none).unwrap().verify_all().unwrap().missing, 2);
    assert!(
        filter_arch_to(
            &mut open(&bytes).unwrap(),
            "../x",
            &mut Cursor::new(Vec::new())
        )
        .is_err()
    );
}

#[test]
fn filtering_refuses_a_corrupted_body_and_leaves_no_output() {
    let mut bytes = sample();
    // Corrupt the last body (x86_64 main.squashfs, which is kept).
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.s9pk");
    let mut r = S9pkReader::open(Cursor::new(&bytes[..]), None).unwrap();
    let err = filter_arch(&mut r, "x86_64", &out).unwrap_err();
    let mut text = err.to_string();
    let mut src = std::error::Error::source(&err);
    while let Some(s) = src {
        text.push_str(&format!(": {s}"));
        src = s.source();
    }
    assert!(text.contains("images/x86_64/main.squashfs"), "{text}");
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
