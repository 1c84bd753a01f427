//! Shared fixtures.

use std::io::Cursor;

use hearth_s9pk::{ArchiveBuilder, S9pkReader, SigningKey};

/// A fixed test key (deterministic).
pub(crate) fn key() -> SigningKey {
    SigningKey::from_bytes(blake3::hash(b"hearth-s9pk test key").as_bytes())
}

/// Another fixed key.
pub(crate) fn other_key() -> SigningKey {
    SigningKey::from_bytes(blake3::hash(b"hearth-s9pk other key").as_bytes())
}

/// A small package with nested directories, images for two arches, an empty
/// file and an empty directory.
pub(crate) fn sample_builder() -> ArchiveBuilder {
    let mut b = ArchiveBuilder::new();
    b.add_file_bytes(
        "manifest.json",
        br#"{"id":"hello","version":"1.0.0:0"}"#.to_vec(),
    )
    .unwrap();
    b.add_file_bytes("LICENSE.md", b"MIT\n".to_vec()).unwrap();
    b.add_file_bytes("icon.svg", b"<svg/>".to_vec()).unwrap();
    b.add_file_bytes("instructions.md", b"# Hello\n".to_vec())
        .unwrap();
    b.add_file_bytes("images/x86_64/main.squashfs", vec![0x5a; 3000])
        .unwrap();
    b.add_file_bytes("images/x86_64/main.json", br#"{"workdir":"/"}"#.to_vec())
        .unwrap();
    b.add_file_bytes("images/aarch64/main.squashfs", vec![0xa5; 2000])
        .unwrap();
    b.add_file_bytes("images/aarch64/main.json", br#"{"workdir":"/"}"#.to_vec())
        .unwrap();
    b.add_file_bytes("empty.txt", Vec::new()).unwrap();
    b.add_dir("dependencies").unwrap();
    b
}

/// The sample package's bytes.
pub(crate) fn sample() -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    sample_builder().write_to(&key(), &mut out).unwrap();
    out.into_inner()
}

/// Opens bytes without a commitment.
pub(crate) fn open(bytes: &[u8]) -> Result<S9pkReader<Cursor<&[u8]>>, hearth_s9pk::ReadError> {
    S9pkReader::open(Cursor::new(bytes), None)
}
