//! Archives from other writers: TOC order and body layout are not signed, so
//! the reader must go by positions only, accept MISSING entries and TOCs that
//! are shorter than their signed size, and the filter must keep such archives
//! valid.

use std::io::{Cursor, Read};

use hearth_s9pk::{EntryKind, filter_arch_to};

use super::common::open;
use super::mini::{E, Tail, enc, h, package, sh};

/// Root TOC in a non-canonical order (files, a MISSING entry, then the
/// directory, names unsorted); bodies laid out in reverse; the `images` TOC
/// is shorter than its signed size (as after stripping), and holds a MISSING
/// directory.
fn foreign() -> Vec<u8> {
    let manifest = br#"{"id":"foreign"}"#;
    let zeta = b"zzz";
    let squash = vec![0x33u8; 4000];
    let json = br#"{"workdir":"/"}"#;
    let root_len = |img_pos: u64, img_len: u64, img_signed: u64, img_hash: [u8; 32]| {
        vec![
            E {
                name: "zeta",
                hash: h(zeta),
                size: zeta.len() as u64,
                tail: Tail::File(0),
            },
            E {
                name: "manifest.json",
                hash: h(manifest),
                size: manifest.len() as u64,
                tail: Tail::File(0),
            },
            E {
                name: "LICENSE.md",
                hash: h(b"stripped license"),
                size: 16,
                tail: Tail::Missing,
            },
            E {
                name: "images",
                hash: img_hash,
                size: img_signed,
                tail: Tail::Dir(img_pos, img_len),
            },
        ]
    };
    let shape = root_len(0, 0, 0, [0; 32]);
    let start = 155 + enc(&shape).len() as u64;
    // Sub-directories inside images: x86_64 (present), aarch64 (MISSING).
    let x86_shape = [
        E {
            name: "main.squashfs",
            hash: h(&squash),
            size: squash.len() as u64,
            tail: Tail::File(0),
        },
        E {
            name: "main.json",
            hash: h(json),
            size: json.len() as u64,
            tail: Tail::File(0),
        },
    ];
    let x86_len = enc(&x86_shape).len() as u64;
    let images_shape = |x86_pos: u64, x86_hash: [u8; 32]| {
        vec![
            E {
                name: "x86_64",
                hash: x86_hash,
                size: x86_len,
                tail: Tail::Dir(x86_pos, x86_len),
            },
            E {
                name: "aarch64",
                hash: [0xaa; 32],
                size: 77,
                tail: Tail::Missing,
            },
        ]
    };
    let images_len = enc(&images_shape(0, [0; 32])).len() as u64;
    // Layout (reverse of the canonical one): main.json, main.squashfs,
    // x86_64 TOC, images TOC, manifest, zeta.
    let p_json = start;
    let p_squash = p_json + json.len() as u64;
    let p_x86 = p_squash + squash.len() as u64;
    let p_images = p_x86 + x86_len;
    let p_manifest = p_images + images_len;
    let p_zeta = p_manifest + manifest.len() as u64;
    let x86 = [
        E {
            tail: Tail::File(p_squash),
            ..x86_shape[0]
        },
        E {
            tail: Tail::File(p_json),
            ..x86_shape[1]
        },
    ];
    let images = images_shape(p_x86, sh(&x86));
    let mut root = root_len(p_images, images_len, images_len + 59, sh(&images));
    root[0].tail = Tail::File(p_zeta);
    root[1].tail = Tail::File(p_manifest);
    let mut rest = Vec::new();
    rest.extend_from_slice(json);
    rest.extend_from_slice(&squash);
    rest.extend_from_slice(&enc(&x86));
    rest.extend_from_slice(&enc(&images));
    rest.extend_from_slice(manifest);
    rest.extend_from_slice(zeta);
    package(&enc(&root), sh(&root), &rest)
}

#[test]
fn foreign_layouts_read_and_verify() {
    let bytes = foreign();
    let mut r = open(&bytes).unwrap();
    let s = r.verify_all().unwrap();
    assert_eq!((s.files, s.missing, s.directories), (4, 2, 3));
    let entries = r.entries().unwrap();
    let kinds: Vec<(&str, EntryKind)> = entries.iter().map(|e| (e.path.as_str(), e.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("LICENSE.md", EntryKind::Missing),
            ("images", EntryKind::Directory),
            ("images/aarch64", EntryKind::Missing),
            ("images/x86_64", EntryKind::Directory),
            ("images/x86_64/main.json", EntryKind::File),
            ("images/x86_64/main.squashfs", EntryKind::File),
            ("manifest.json", EntryKind::File),
            ("zeta", EntryKind::File),
        ]
    );
    let mut m = String::new();
    r.open_file("manifest.json")
        .unwrap()
        .read_to_string(&mut m)
        .unwrap();
    assert_eq!(m, r#"{"id":"foreign"}"#);
    assert_eq!(
        r.read_file("images/x86_64/main.squashfs", 1 << 20).unwrap(),
        vec![0x33; 4000]
    );
    assert!(matches!(
        r.open_file("LICENSE.md"),
        Err(hearth_s9pk::ReadError::NotAFile {
            kind: EntryKind::Missing,
            ..
        })
    ));
}

#[test]
fn foreign_layouts_filter_and_rewrite_canonically() {
    let bytes = foreign();
    let mut out = Cursor::new(Vec::new());
    let stripped = filter_arch_to(&mut open(&bytes).unwrap(), "x86_64", &mut out).unwrap();
    assert!(stripped.is_empty(), "aarch64 was already missing");
    let rewritten = out.into_inner();
    assert_eq!(rewritten[..139], bytes[..139]);
    // The rewrite is canonical: the independent decoder's layout checks hold.
    super::mini::decode_and_check(&rewritten);
    let mut r = open(&rewritten).unwrap();
    r.verify_all().unwrap();
    assert_eq!(
        r.entries().unwrap(),
        open(&bytes).unwrap().entries().unwrap()
    );
}
