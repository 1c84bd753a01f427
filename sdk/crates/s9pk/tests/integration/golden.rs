//! Golden file: a small package from fixed inputs and a fixed key, pinned
//! byte for byte, and checked with the independent decoder in `mini.rs`.
//!
//! To accept an intended format change: `HEARTH_UPDATE_GOLDEN=1 cargo test -p
//! hearth-s9pk golden`, then update `GOLDEN_BLAKE3` and review the diff.

use std::path::PathBuf;

use super::common::{key, open, sample};
use super::mini::{Region, decode_and_check};

/// BLAKE3 of `tests/golden/small.s9pk`.
const GOLDEN_BLAKE3: &str = "5454e13bea39e6f87aad067f5668644fde4ba1c7ff2a0b2f185862bf6f3a2cab";

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/small.s9pk")
}

fn region_hashes(file: &[u8]) -> Vec<String> {
    let regions = std::panic::catch_unwind(|| decode_and_check(file)).unwrap_or_else(|_| {
        vec![Region {
            what: "undecodable file".into(),
            start: 0,
            len: file.len() as u64,
        }]
    });
    regions
        .iter()
        .map(|r| {
            let body = &file[r.start as usize..(r.start + r.len) as usize];
            format!(
                "{:<40} @{:<6} len {:<6} {}",
                r.what,
                r.start,
                r.len,
                blake3::hash(body).to_hex()
            )
        })
        .collect()
}

#[test]
fn golden_bytes_are_pinned() {
    let fresh = sample();
    if std::env::var_os("HEARTH_UPDATE_GOLDEN").is_some() {
        std::fs::write(golden_path(), &fresh).unwrap();
    }
    let pinned = std::fs::read(golden_path()).unwrap();
    if fresh != pinned {
        let old = region_hashes(&pinned);
        let new = region_hashes(&fresh);
        let mut diff = String::new();
        for i in 0..old.len().max(new.len()) {
            let (o, n) = (old.get(i), new.get(i));
            if o != n {
                diff.push_str(&format!(
                    "- {}\n+ {}\n",
                    o.map_or("", String::as_str),
                    n.map_or("", String::as_str)
                ));
            }
        }
        panic!(
            "the writer's output drifted from tests/golden/small.s9pk \
             ({} → {} bytes); differing regions:\n{diff}",
            pinned.len(),
            fresh.len()
        );
    }
    assert_eq!(
        blake3::hash(&pinned).to_hex().as_str(),
        GOLDEN_BLAKE3,
        "tests/golden/small.s9pk changed"
    );
}

#[test]
fn golden_matches_the_spec_per_independent_decoder() {
    let file = std::fs::read(golden_path()).unwrap();
    let regions = decode_and_check(&file);
    let names: Vec<&str> = regions.iter().map(|r| r.what.as_str()).collect();
    // Breadth-first layout: root TOC, then the root's entries (directories
    // first, then files, by name), then each sub-directory's entries.
    assert_eq!(
        names,
        [
            "header",
            "toc /",
            "toc /dependencies",
            "toc /images",
            "file /LICENSE.md",
            "file /empty.txt",
            "file /icon.svg",
            "file /instructions.md",
            "file /manifest.json",
            "toc /images/aarch64",
            "toc /images/x86_64",
            "file /images/aarch64/main.json",
            "file /images/aarch64/main.squashfs",
            "file /images/x86_64/main.json",
            "file /images/x86_64/main.squashfs",
        ]
    );
    // Header fields at their fixed offsets.
    assert_eq!(&file[0..3], &[0x3b, 0x3b, 0x02]);
    assert_eq!(&file[3..35], key().verifying_key().as_bytes());
    let root_size = u64::from_be_bytes(file[147..155].try_into().unwrap());
    assert_eq!(
        u64::from_be_bytes(file[131..139].try_into().unwrap()),
        root_size
    );
    assert_eq!(u64::from_be_bytes(file[139..147].try_into().unwrap()), 155);
    // Root TOC: 7 entries: 2 directories (41+16+name) and 5 files (41+8+name).
    let names_len: u64 = ["dependencies", "images"]
        .iter()
        .map(|n| 1 + n.len() as u64 + 57)
        .chain(
            [
                "LICENSE.md",
                "empty.txt",
                "icon.svg",
                "instructions.md",
                "manifest.json",
            ]
            .iter()
            .map(|n| 1 + n.len() as u64 + 49),
        )
        .sum();
    assert_eq!(root_size, 1 + names_len);
    assert_eq!(file[155], 7, "root entry count");
}

#[test]
fn golden_reads_with_the_crate_reader() {
    let file = std::fs::read(golden_path()).unwrap();
    let mut r = open(&file).unwrap();
    assert_eq!(r.signer(), key().verifying_key());
    let c = r.commitment();
    assert_eq!(&c.root_sighash.0[..], &file[99..131]);
    r.verify_all().unwrap();
}
