//! Write → read round trips.

use std::io::{Cursor, Read};

use hearth_s9pk::{ArchiveBuilder, EntryKind, ReadError, S9pkReader, write_dir};

use super::common::{key, open, sample, sample_builder};

#[test]
fn sample_reads_back_with_contents_and_signer() {
    let bytes = sample();
    let mut r = open(&bytes).unwrap();
    assert_eq!(r.signer(), key().verifying_key());
    let mut s = String::new();
    r.open_file("manifest.json")
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, r#"{"id":"hello","version":"1.0.0:0"}"#);
    let big = r.read_file("images/x86_64/main.squashfs", 1 << 20).unwrap();
    assert_eq!(big, vec![0x5a; 3000]);
    assert_eq!(r.read_file("empty.txt", 0).unwrap(), Vec::<u8>::new());
    let summary = r.verify_all().unwrap();
    assert_eq!(summary.files, 9);
    assert_eq!(summary.bytes, 3000 + 2000 + 4 + 6 + 8 + 15 + 15 + 34);
    assert_eq!(summary.missing, 0);
    assert_eq!(summary.directories, 5);
}

#[test]
fn listing_is_sorted_with_kinds_sizes_and_hashes() {
    let bytes = sample();
    let entries = open(&bytes).unwrap().entries().unwrap();
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "LICENSE.md",
            "dependencies",
            "empty.txt",
            "icon.svg",
            "images",
            "images/aarch64",
            "images/aarch64/main.json",
            "images/aarch64/main.squashfs",
            "images/x86_64",
            "images/x86_64/main.json",
            "images/x86_64/main.squashfs",
            "instructions.md",
            "manifest.json",
        ]
    );
    let lic = &entries[0];
    assert_eq!(lic.kind, EntryKind::File);
    assert_eq!(lic.size, 4);
    assert_eq!(lic.hash.0, *blake3::hash(b"MIT\n").as_bytes());
    assert_eq!(entries[1].kind, EntryKind::Directory);
}

#[test]
fn writing_is_deterministic() {
    assert_eq!(sample(), sample());
}

#[test]
fn open_file_errors_name_the_path() {
    let bytes = sample();
    let mut r = open(&bytes).unwrap();
    assert!(matches!(
        r.open_file("nope"),
        Err(ReadError::NotFound { .. })
    ));
    assert!(matches!(
        r.open_file("images"),
        Err(ReadError::NotAFile {
            kind: EntryKind::Directory,
            ..
        })
    ));
    assert!(matches!(
        r.open_file("../x"),
        Err(ReadError::NotFound { .. })
    ));
    assert!(matches!(
        r.read_file("images/x86_64/main.squashfs", 10),
        Err(ReadError::FileTooLarge { size: 3000, .. })
    ));
}

#[test]
fn builder_refuses_bad_paths_and_conflicts() {
    let mut b = ArchiveBuilder::new();
    b.add_file_bytes("a/b", b"x".to_vec()).unwrap();
    assert!(b.add_file_bytes("a/b", b"y".to_vec()).is_err());
    assert!(b.add_file_bytes("a/b/c", b"y".to_vec()).is_err());
    assert!(b.add_dir("a/b").is_err());
    b.add_dir("a").unwrap();
    for bad in ["", "/abs", "a//b", "a/../b", "a/./b", "nul\0", "trailing/"] {
        assert!(b.add_file_bytes(bad, b"x".to_vec()).is_err(), "{bad:?}");
    }
}

#[test]
fn write_dir_packs_a_tree_deterministically() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("images/x86_64")).unwrap();
    std::fs::create_dir_all(src.path().join("empty")).unwrap();
    std::fs::write(src.path().join("manifest.json"), b"{}").unwrap();
    std::fs::write(src.path().join("images/x86_64/a.squashfs"), vec![7u8; 5000]).unwrap();
    let out = tempfile::tempdir().unwrap();
    let a = out.path().join("a.s9pk");
    let b = out.path().join("b.s9pk");
    write_dir(src.path(), &key(), &a).unwrap();
    write_dir(src.path(), &key(), &b).unwrap();
    let bytes = std::fs::read(&a).unwrap();
    assert_eq!(bytes, std::fs::read(&b).unwrap());
    // Only the two outputs are left in the directory (no temp files).
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 2);
    let mut r = S9pkReader::open(Cursor::new(&bytes[..]), None).unwrap();
    r.verify_all().unwrap();
    assert_eq!(
        r.read_file("images/x86_64/a.squashfs", 1 << 20).unwrap(),
        vec![7u8; 5000]
    );
    assert_eq!(r.entry("empty").unwrap().kind, EntryKind::Directory);
}

#[cfg(unix)]
#[test]
fn write_dir_refuses_symlinks_and_keeps_no_output() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("real"), b"x").unwrap();
    std::os::unix::fs::symlink("real", src.path().join("link")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = write_dir(src.path(), &key(), &out.path().join("p.s9pk")).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(err.to_string().contains("link"), "{err}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[cfg(unix)]
#[test]
fn write_dir_refuses_special_files() {
    let src = tempfile::tempdir().unwrap();
    let sock = src.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = write_dir(src.path(), &key(), &out.path().join("p.s9pk")).unwrap_err();
    assert!(err.to_string().contains("special file"), "{err}");
}

#[test]
fn sample_builder_is_reusable() {
    let b = sample_builder();
    let mut one = Cursor::new(Vec::new());
    let mut two = Cursor::new(Vec::new());
    b.write_to(&key(), &mut one).unwrap();
    b.write_to(&key(), &mut two).unwrap();
    assert_eq!(one.into_inner(), two.into_inner());
}

#[test]
fn multi_megabyte_files_stream_in_chunks_and_corruption_is_found() {
    let mut data = vec![0u8; 2_500_000];
    blake3::Hasher::new()
        .update(b"seed")
        .finalize_xof()
        .fill(&mut data);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("big.bin"), &data).unwrap();
    let out = tempfile::tempdir().unwrap();
    let pkg = out.path().join("big.s9pk");
    write_dir(src.path(), &key(), &pkg).unwrap();
    let bytes = std::fs::read(&pkg).unwrap();
    let body = super::mini::decode_and_check(&bytes)
        .into_iter()
        .find(|r| r.what == "file /big.bin")
        .unwrap();
    assert_eq!(body.len, data.len() as u64);

    let mut r = open(&bytes).unwrap();
    assert_eq!(r.verify_all().unwrap().bytes, data.len() as u64);
    let mut got = Vec::new();
    std::io::copy(&mut r.open_file("big.bin").unwrap(), &mut got).unwrap();
    assert_eq!(got, data);

    // A flipped byte in the second megabyte: verify_all and the streaming
    // reader both name the file and its offset.
    let mut bad = bytes.clone();
    bad[(body.start + 1_500_000) as usize] ^= 0x40;
    let mut r = open(&bad).unwrap();
    let err = r.verify_all().unwrap_err();
    assert!(
        matches!(&err, ReadError::FileHashMismatch { path, pos, .. } if path == "big.bin" && *pos == body.start),
        "{err}"
    );
    let mut reader = r.open_file("big.bin").unwrap();
    let err = std::io::copy(&mut reader, &mut std::io::sink()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(matches!(
        err.downcast::<ReadError>().unwrap(),
        ReadError::FileHashMismatch { .. }
    ));

    // Truncated inside the body: refused before any byte is read.
    let cut = &bytes[..(body.start + 1_000_000) as usize];
    assert!(matches!(
        open(cut).err().unwrap(),
        ReadError::FileOutOfBounds { .. }
    ));
}

#[test]
fn a_reader_over_a_shrinking_source_reports_truncation() {
    // The archive claims more bytes than the reader delivers: simulate a file
    // truncated after open by handing the reader a view that ends early.
    struct Short<'a> {
        inner: Cursor<&'a [u8]>,
        len: u64,
        cut: u64,
    }
    impl Read for Short<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let left = self.cut.saturating_sub(self.inner.position());
            let n = buf.len().min(left as usize);
            self.inner.read(&mut buf[..n])
        }
    }
    impl std::io::Seek for Short<'_> {
        fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
            match pos {
                std::io::SeekFrom::End(d) => self
                    .inner
                    .seek(std::io::SeekFrom::Start((self.len as i64 + d) as u64)),
                other => self.inner.seek(other),
            }
        }
    }
    let bytes = sample();
    let len = bytes.len() as u64;
    let mut r = S9pkReader::open(
        Short {
            inner: Cursor::new(&bytes[..]),
            len,
            cut: len - 100,
        },
        None,
    )
    .unwrap();
    let err = r.verify_all().unwrap_err();
    assert!(
        matches!(&err, ReadError::FileTruncated { path, .. } if path == "images/x86_64/main.squashfs"),
        "{err}"
    );
    let mut f = r.open_file("images/x86_64/main.squashfs").unwrap();
    let err = std::io::copy(&mut f, &mut std::io::sink()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
}

#[test]
fn write_dir_skips_its_own_output_inside_the_source() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a.txt"), b"a").unwrap();
    let out = src.path().join("pkg.s9pk");
    write_dir(src.path(), &key(), &out).unwrap();
    let first = std::fs::read(&out).unwrap();
    write_dir(src.path(), &key(), &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), first);
    let names: Vec<String> = open(&first)
        .unwrap()
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(names, ["a.txt"]);
}
