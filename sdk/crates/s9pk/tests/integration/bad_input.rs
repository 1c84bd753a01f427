//! Malformed and hostile archives: each must fail with an error naming what
//! failed and where, never panic or hang. Structural attacks are crafted with
//! valid signatures (by the independent encoder in `mini.rs`) so that the
//! structural check itself, not the signature, is what rejects them.

use std::io::Cursor;

use hearth_s9pk::{
    ArchiveBuilder, Commitment, DecodeError, Hash, MAX_DEPTH, ReadError, S9pkReader, TocError,
    TreeEntry,
};

use super::common::{key, open, other_key, sample};
use super::mini::{E, Region, Tail, base, decode_and_check, enc, h, package, sh, sighash};

/// Opens and verifies everything.
fn check(bytes: &[u8]) -> Result<(), ReadError> {
    open(bytes)?.verify_all().map(|_| ())
}

/// Entries and file contents of a verified archive.
fn content(bytes: &[u8]) -> Result<Vec<(TreeEntry, Option<Vec<u8>>)>, ReadError> {
    let mut r = open(bytes)?;
    r.verify_all()?;
    let mut out = Vec::new();
    for e in r.entries()? {
        let body = match e.kind {
            hearth_s9pk::EntryKind::File => Some(r.read_file(&e.path, u64::MAX)?),
            _ => None,
        };
        out.push((e, body));
    }
    Ok(out)
}

/// The error and its sources, as the CLI prints them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

fn assert_one_line(e: &ReadError) {
    let text = chain(e);
    assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
}

#[test]
fn names_that_are_not_single_segments_are_refused() {
    for bad in ["a/b", "..", ".", "a\0b", "", "/"] {
        let mut root = vec![E {
            name: bad,
            hash: h(b"x"),
            size: 1,
            tail: Tail::File(0),
        }];
        root[0].tail = Tail::File(base(&root));
        let bytes = package(&enc(&root), sh(&root), b"x");
        let err = open(&bytes).err().unwrap();
        assert!(
            matches!(
                &err,
                ReadError::Toc {
                    source: TocError::Name { offset: 156, .. },
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
        assert!(chain(&err).contains("invalid name"), "{}", chain(&err));
    }
}

#[test]
fn duplicate_names_are_refused() {
    let mut root = vec![
        E {
            name: "a",
            hash: h(b"x"),
            size: 1,
            tail: Tail::File(0),
        },
        E {
            name: "a",
            hash: h(b"x"),
            size: 1,
            tail: Tail::File(0),
        },
    ];
    let b = base(&root);
    root[0].tail = Tail::File(b);
    root[1].tail = Tail::File(b);
    let err = open(&package(&enc(&root), sh(&root), b"x")).err().unwrap();
    assert!(
        matches!(&err, ReadError::Toc { source: TocError::Duplicate { name, .. }, .. } if name == "a"),
        "{err}"
    );
}

#[test]
fn file_positions_and_sizes_past_eof_are_refused() {
    let shape = [E {
        name: "f",
        hash: h(b"0123456789"),
        size: 0,
        tail: Tail::File(0),
    }];
    let b = base(&shape);
    for (pos, size) in [(b, 100u64), (b + 5, 10), (u64::MAX - 2, 10)] {
        let root = vec![E {
            name: "f",
            hash: h(b"0123456789"),
            size,
            tail: Tail::File(pos),
        }];
        let err = open(&package(&enc(&root), sh(&root), b"0123456789"))
            .err()
            .unwrap();
        assert!(
            matches!(&err, ReadError::FileOutOfBounds { path, size: s, .. } if path == "f" && *s == size),
            "{err}"
        );
        assert!(err.to_string().contains("past the end"), "{err}");
    }
}

#[test]
fn directory_tocs_past_eof_or_over_their_signed_size_are_refused() {
    let mut root = vec![E {
        name: "d",
        hash: [0; 32],
        size: 50,
        tail: Tail::Dir(0, 50),
    }];
    root[0].tail = Tail::Dir(base(&root), 50);
    let err = open(&package(&enc(&root), sh(&root), &[0u8; 10]))
        .err()
        .unwrap();
    assert!(
        matches!(&err, ReadError::TocOutOfBounds { path, .. } if path == "d"),
        "{err}"
    );
    root[0].size = 10;
    root[0].tail = Tail::Dir(base(&root), 20);
    let err = open(&package(&enc(&root), sh(&root), &[0u8; 30]))
        .err()
        .unwrap();
    assert!(
        matches!(&err, ReadError::TocTooLarge { path, actual: 20, bound: 10, .. } if path == "d"),
        "{err}"
    );
}

#[test]
fn toc_cycles_and_shared_tocs_are_refused() {
    // "a" → its TOC holds "b" → pointing back at the root TOC.
    let root_shape = [E {
        name: "a",
        hash: [0; 32],
        size: 0,
        tail: Tail::Dir(0, 0),
    }];
    let root_len = enc(&root_shape).len() as u64;
    let a_entries = [E {
        name: "b",
        hash: [7; 32],
        size: root_len,
        tail: Tail::Dir(155, root_len),
    }];
    let a_toc = enc(&a_entries);
    let root = [E {
        name: "a",
        hash: sh(&a_entries),
        size: a_toc.len() as u64,
        tail: Tail::Dir(155 + root_len, a_toc.len() as u64),
    }];
    let bytes = package(&enc(&root), sh(&root), &a_toc);
    let mut r = open(&bytes).unwrap();
    let err = r.verify_all().unwrap_err();
    assert!(
        matches!(&err, ReadError::Overlap { path, other, other_pos: 155, .. } if path == "a/b" && other == "/"),
        "{err}"
    );
    // A directory whose TOC is the root's own TOC.
    let root_len = enc(&root_shape).len() as u64;
    let root = [E {
        name: "a",
        hash: [1; 32],
        size: root_len,
        tail: Tail::Dir(155, root_len),
    }];
    let err = check(&package(&enc(&root), sh(&root), &[])).unwrap_err();
    assert!(matches!(err, ReadError::Overlap { .. }), "{err}");
    // Two directories sharing one (valid, empty) TOC.
    let empty = [0u8];
    let shape = [
        E {
            name: "a",
            hash: sighash(&[]),
            size: 1,
            tail: Tail::Dir(0, 1),
        },
        E {
            name: "b",
            hash: sighash(&[]),
            size: 1,
            tail: Tail::Dir(0, 1),
        },
    ];
    let b = base(&shape);
    let root = [
        E {
            tail: Tail::Dir(b, 1),
            ..shape[0]
        },
        E {
            tail: Tail::Dir(b, 1),
            ..shape[1]
        },
    ];
    let err = check(&package(&enc(&root), sh(&root), &empty)).unwrap_err();
    assert!(
        matches!(&err, ReadError::Overlap { path, other, .. } if path == "b" && other == "a"),
        "{err}"
    );
}

#[test]
fn a_varint_longer_than_ten_bytes_is_refused() {
    let mut toc = vec![0x80; 10];
    toc.push(0x00);
    let bytes = package(&toc, sighash(&[]), &[]);
    let err = open(&bytes).err().unwrap();
    assert!(
        matches!(
            &err,
            ReadError::Toc {
                source: TocError::Field {
                    offset: 155,
                    source: DecodeError::VarintTooLong
                },
                ..
            }
        ),
        "{err}"
    );
    // A canonical empty TOC with the same sighash opens.
    open(&package(&[0], sighash(&[]), &[])).unwrap();
}

/// A chain of `levels` nested directories named `d`, properly hashed.
fn nested(levels: usize) -> Vec<u8> {
    // TOC i (0 = root) lives at 155 + 60 * i; each holds one dir entry (60
    // bytes) except the innermost, which is empty (1 byte).
    let mut tocs: Vec<Vec<u8>> = Vec::new();
    let mut child: Option<([u8; 32], u64)> = None;
    for i in (0..=levels).rev() {
        let entries: Vec<E> = child
            .map(|(hash, len)| E {
                name: "d",
                hash,
                size: len,
                tail: Tail::Dir(155 + 60 * (i as u64 + 1), len),
            })
            .into_iter()
            .collect();
        let toc = enc(&entries);
        child = Some((sh(&entries), toc.len() as u64));
        tocs.push(toc);
    }
    tocs.reverse();
    let root = tocs.remove(0);
    let root_hash = child.unwrap().0;
    package(&root, root_hash, &tocs.concat())
}

#[test]
fn nesting_deeper_than_the_limit_is_refused() {
    check(&nested(MAX_DEPTH - 1)).unwrap();
    let err = check(&nested(MAX_DEPTH)).unwrap_err();
    assert!(matches!(err, ReadError::TooDeep { .. }), "{err}");
    // The writer refuses what the reader would.
    let deep = vec!["d"; MAX_DEPTH].join("/");
    assert!(ArchiveBuilder::new().add_dir(&deep).is_err());
    assert!(ArchiveBuilder::new().add_dir(&deep[2..]).is_ok());
}

#[test]
fn a_root_toc_over_one_mib_needs_a_commitment() {
    let mut b = ArchiveBuilder::new();
    for i in 0..20_000 {
        b.add_file_bytes(&format!("file-{i:05}"), Vec::new())
            .unwrap();
    }
    let mut out = Cursor::new(Vec::new());
    let c = b.write_to(&key(), &mut out).unwrap();
    assert!(c.root_maxsize > 1024 * 1024);
    let bytes = out.into_inner();
    let err = open(&bytes).err().unwrap();
    assert!(
        matches!(err, ReadError::RootTooLarge { maxsize, .. } if maxsize == c.root_maxsize),
        "{err}"
    );
    let mut r = S9pkReader::open(Cursor::new(&bytes[..]), Some(c)).unwrap();
    assert_eq!(r.verify_all().unwrap().files, 20_000);
    // The cap applies before anything else is trusted: a forged header is
    // refused for its size, not only for its signature.
    let mut forged = sample();
    forged[131..139].copy_from_slice(&(1024u64 * 1024 + 1).to_be_bytes());
    assert!(matches!(
        open(&forged).err().unwrap(),
        ReadError::RootTooLarge { .. }
    ));
}

#[test]
fn commitments_must_match_the_header() {
    let bytes = sample();
    let c = open(&bytes).unwrap().commitment();
    let wrong = Commitment {
        root_sighash: Hash([0; 32]),
        ..c
    };
    assert!(matches!(
        S9pkReader::open(Cursor::new(&bytes[..]), Some(wrong))
            .err()
            .unwrap(),
        ReadError::CommitmentMismatch { .. }
    ));
    let smaller = Commitment {
        root_maxsize: c.root_maxsize - 1,
        ..c
    };
    assert!(matches!(
        S9pkReader::open(Cursor::new(&bytes[..]), Some(smaller))
            .err()
            .unwrap(),
        ReadError::CommitmentMaxsize { .. }
    ));
    S9pkReader::open(Cursor::new(&bytes[..]), Some(c)).unwrap();
}

#[test]
fn signer_checks() {
    let bytes = sample();
    let r = open(&bytes).unwrap();
    let err = r.check_signer(&[other_key().verifying_key()]).unwrap_err();
    assert!(matches!(err, ReadError::UntrustedSigner { .. }), "{err}");
    r.check_signer(&[other_key().verifying_key(), key().verifying_key()])
        .unwrap();
    // Another key's public key in place of the signer's.
    let mut swapped = bytes.clone();
    swapped[3..35].copy_from_slice(other_key().verifying_key().as_bytes());
    assert!(matches!(
        open(&swapped).err().unwrap(),
        ReadError::BadSignature
    ));
}

#[test]
fn wrong_magic_and_versions() {
    let mut b = sample();
    b[2] = 1;
    let err = open(&b).err().unwrap();
    assert!(matches!(err, ReadError::V1Unsupported));
    assert!(err.to_string().contains("S9PK v1 is not supported"));
    b[2] = 3;
    assert!(matches!(
        open(&b).err().unwrap(),
        ReadError::UnsupportedVersion(3)
    ));
    b[0] = b'P';
    assert!(matches!(open(&b).err().unwrap(), ReadError::NotS9pk { .. }));
    assert!(matches!(
        open(&[]).err().unwrap(),
        ReadError::TruncatedHeader { file_len: 0 }
    ));
}

#[test]
fn truncation_at_every_byte_fails() {
    let bytes = sample();
    let regions = decode_and_check(&bytes);
    for len in 0..bytes.len() {
        let err = check(&bytes[..len]).expect_err(&format!("truncated to {len}"));
        assert_one_line(&err);
    }
    // At structural boundaries the error names the structure that ends early.
    for r in &regions {
        if r.start == 0 || r.len == 0 {
            continue;
        }
        let err = check(&bytes[..r.start as usize]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("past the end") || text.contains("truncated"),
            "{}: {text}",
            r.what
        );
    }
}

fn flipped(bytes: &[u8], at: u64, mask: u8) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at as usize] ^= mask;
    b
}

#[test]
fn a_flipped_byte_in_each_region_is_named() {
    let bytes = sample();
    let regions: Vec<Region> = decode_and_check(&bytes);
    // Header fields.
    let at = |i: u64| check(&flipped(&bytes, i, 0xff)).unwrap_err();
    let name_flip = |i: u64| check(&flipped(&bytes, i, 0x01)).unwrap_err();
    assert!(matches!(at(0), ReadError::NotS9pk { .. }));
    assert!(matches!(at(2), ReadError::UnsupportedVersion(0xfd)));
    assert!(matches!(
        at(3),
        ReadError::BadSignature | ReadError::InvalidSignerKey
    ));
    assert!(matches!(at(35), ReadError::BadSignature));
    assert!(matches!(at(98), ReadError::BadSignature));
    assert!(matches!(at(99), ReadError::BadSignature));
    assert!(matches!(at(131), ReadError::RootTooLarge { .. }));
    assert!(matches!(at(138), ReadError::BadSignature));
    assert!(matches!(at(139), ReadError::TocOutOfBounds { .. }));
    assert!(matches!(at(146), ReadError::Overlap { .. }));
    assert!(matches!(at(147), ReadError::TocTooLarge { .. }));
    assert!(matches!(at(154), ReadError::Toc { .. }));
    // Each TOC: a flipped name byte (count varint, name length, then name).
    for r in regions
        .iter()
        .filter(|r| r.what.starts_with("toc ") && r.len > 1)
    {
        let path = r.what.trim_start_matches("toc /");
        let expect = if path.is_empty() { "/" } else { path };
        let err = name_flip(r.start + 2);
        assert!(
            matches!(&err, ReadError::DirHashMismatch { path: p, pos, .. } if p == expect && *pos == r.start),
            "{}: {err}",
            r.what
        );
        assert!(err.to_string().contains(&format!("offset {}", r.start)));
    }
    // Each file body.
    for r in regions
        .iter()
        .filter(|r| r.what.starts_with("file ") && r.len > 0)
    {
        let path = r.what.trim_start_matches("file /");
        let err = at(r.start + r.len / 2);
        assert!(
            matches!(&err, ReadError::FileHashMismatch { path: p, pos, .. } if p == path && *pos == r.start),
            "{}: {err}",
            r.what
        );
    }
}

#[test]
fn any_single_flip_fails_or_leaves_the_content_unchanged() {
    let bytes = sample();
    let original = content(&bytes).unwrap();
    let mut accepted = 0;
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[i] ^= mask;
            match content(&b) {
                Err(e) => assert_one_line(&e),
                Ok(c) => {
                    accepted += 1;
                    assert_eq!(c, original, "flip at {i} changed the content");
                }
            }
        }
    }
    // Only position fields of empty bodies can change harmlessly.
    assert!(accepted <= 16, "{accepted} flips accepted");
}
