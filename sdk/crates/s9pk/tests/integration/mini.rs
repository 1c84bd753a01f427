//! An independent, minimal S9PK v2 decoder and encoder written from the
//! format description (STARTOS.md §1), sharing no code with the crate, so a
//! mistake in the crate's writer cannot hide behind its own reader.

use ed25519_dalek::{Digest, Sha512, Signature, SigningKey, VerifyingKey};

/// One decoded TOC entry, with where it sits in the file.
#[derive(Debug, Clone)]
pub(crate) struct MiniEntry {
    pub(crate) name: String,
    pub(crate) hash: [u8; 32],
    pub(crate) size: u64,
    pub(crate) ty: u8,
    pub(crate) pos: u64,
    pub(crate) toc_size: u64,
}

/// A region of the file and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Region {
    pub(crate) what: String,
    pub(crate) start: u64,
    pub(crate) len: u64,
}

fn be(b: &[u8]) -> u64 {
    u64::from_be_bytes(b.try_into().unwrap())
}

pub(crate) fn varint(b: &[u8], i: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*i];
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return v;
        }
        assert!(shift < 70, "varint too long");
    }
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes the TOC at `pos..pos+len`, asserting it is exactly that long.
pub(crate) fn parse_toc(file: &[u8], pos: u64, len: u64) -> Vec<MiniEntry> {
    let b = &file[pos as usize..(pos + len) as usize];
    let mut i = 0;
    let count = varint(b, &mut i);
    let mut out = Vec::new();
    for _ in 0..count {
        let n = varint(b, &mut i) as usize;
        let name = String::from_utf8(b[i..i + n].to_vec()).unwrap();
        i += n;
        let hash: [u8; 32] = b[i..i + 32].try_into().unwrap();
        let size = be(&b[i + 32..i + 40]);
        let ty = b[i + 40];
        i += 41;
        let (p, t) = match ty {
            0 => (0, 0),
            1 => {
                i += 8;
                (be(&b[i - 8..i]), 0)
            }
            2 => {
                i += 16;
                (be(&b[i - 16..i - 8]), be(&b[i - 8..i]))
            }
            other => panic!("bad type {other}"),
        };
        out.push(MiniEntry {
            name,
            hash,
            size,
            ty,
            pos: p,
            toc_size: t,
        });
    }
    assert_eq!(i as u64, len, "TOC length");
    out
}

/// BLAKE3 of the all-MISSING TOC with entries sorted by name.
pub(crate) fn sighash(entries: &[(String, [u8; 32], u64)]) -> [u8; 32] {
    let mut sorted = entries.to_vec();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut buf = Vec::new();
    put_varint(&mut buf, sorted.len() as u64);
    for (name, hash, size) in sorted {
        put_varint(&mut buf, name.len() as u64);
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(&hash);
        buf.extend_from_slice(&size.to_be_bytes());
        buf.push(0);
    }
    *blake3::hash(&buf).as_bytes()
}

fn prehash(sighash: &[u8; 32], maxsize: u64) -> Sha512 {
    let mut d = Sha512::new();
    d.update(sighash);
    d.update(maxsize.to_be_bytes());
    d
}

/// Signs (Ed25519ph, context `s9pk`) and builds the 155-byte header.
pub(crate) fn header(
    key: &SigningKey,
    sighash: [u8; 32],
    maxsize: u64,
    root_pos: u64,
    root_size: u64,
) -> Vec<u8> {
    let sig = key
        .sign_prehashed(prehash(&sighash, maxsize), Some(b"s9pk"))
        .unwrap();
    let mut h = vec![0x3b, 0x3b, 0x02];
    h.extend_from_slice(key.verifying_key().as_bytes());
    h.extend_from_slice(&sig.to_bytes());
    h.extend_from_slice(&sighash);
    h.extend_from_slice(&maxsize.to_be_bytes());
    h.extend_from_slice(&root_pos.to_be_bytes());
    h.extend_from_slice(&root_size.to_be_bytes());
    assert_eq!(h.len(), 155);
    h
}

/// Fully decodes and checks a file: header fields at their offsets, the
/// signature, every TOC's sighash, every file hash, and the breadth-first
/// layout. Returns the regions (header, TOCs, bodies) in file order.
pub(crate) fn decode_and_check(file: &[u8]) -> Vec<Region> {
    assert_eq!(&file[0..2], &[0x3b, 0x3b], "magic");
    assert_eq!(file[2], 2, "version");
    let pubkey = VerifyingKey::from_bytes(file[3..35].try_into().unwrap()).unwrap();
    let sig = Signature::from_bytes(file[35..99].try_into().unwrap());
    let root_sighash: [u8; 32] = file[99..131].try_into().unwrap();
    let maxsize = be(&file[131..139]);
    let root_pos = be(&file[139..147]);
    let root_size = be(&file[147..155]);
    pubkey
        .verify_prehashed_strict(prehash(&root_sighash, maxsize), Some(b"s9pk"), &sig)
        .expect("signature");
    assert_eq!(root_pos, 155, "root TOC right after the header");
    assert!(root_size <= maxsize);
    let mut regions = vec![
        Region {
            what: "header".into(),
            start: 0,
            len: 155,
        },
        Region {
            what: "toc /".into(),
            start: root_pos,
            len: root_size,
        },
    ];
    // Breadth-first: each TOC's entries get consecutive positions.
    let mut cursor = root_pos + root_size;
    let mut queue =
        std::collections::VecDeque::from([(String::new(), root_pos, root_size, root_sighash)]);
    while let Some((path, pos, len, expected)) = queue.pop_front() {
        let entries = parse_toc(file, pos, len);
        let triples: Vec<(String, [u8; 32], u64)> = entries
            .iter()
            .map(|e| (e.name.clone(), e.hash, e.size))
            .collect();
        assert_eq!(sighash(&triples), expected, "sighash of {path:?}");
        // Directories first, then files, each by name.
        let keys: Vec<(u8, &str)> = entries
            .iter()
            .map(|e| {
                let rank = match e.ty {
                    2 => 0,
                    1 => 1,
                    _ => 2,
                };
                (rank, e.name.as_str())
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "entry order in {path:?}");
        for e in entries {
            let p = format!("{path}/{}", e.name);
            match e.ty {
                1 => {
                    assert_eq!(e.pos, cursor, "position of {p}");
                    let body = &file[e.pos as usize..(e.pos + e.size) as usize];
                    assert_eq!(*blake3::hash(body).as_bytes(), e.hash, "hash of {p}");
                    regions.push(Region {
                        what: format!("file {p}"),
                        start: e.pos,
                        len: e.size,
                    });
                    cursor += e.size;
                }
                2 => {
                    assert_eq!(e.pos, cursor, "TOC position of {p}");
                    assert!(e.toc_size <= e.size, "actual ≤ signed size for {p}");
                    regions.push(Region {
                        what: format!("toc {p}"),
                        start: e.pos,
                        len: e.toc_size,
                    });
                    cursor += e.toc_size;
                    queue.push_back((p, e.pos, e.toc_size, e.hash));
                }
                _ => {}
            }
        }
    }
    assert_eq!(cursor, file.len() as u64, "nothing after the last body");
    regions
}

/// A crafted TOC entry.
pub(crate) struct E {
    pub(crate) name: &'static str,
    pub(crate) hash: [u8; 32],
    pub(crate) size: u64,
    pub(crate) tail: Tail,
}

pub(crate) enum Tail {
    Missing,
    File(u64),
    Dir(u64, u64),
}

pub(crate) fn enc(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, entries.len() as u64);
    for e in entries {
        put_varint(&mut out, e.name.len() as u64);
        out.extend_from_slice(e.name.as_bytes());
        out.extend_from_slice(&e.hash);
        out.extend_from_slice(&e.size.to_be_bytes());
        match e.tail {
            Tail::Missing => out.push(0),
            Tail::File(p) => {
                out.push(1);
                out.extend_from_slice(&p.to_be_bytes());
            }
            Tail::Dir(p, s) => {
                out.push(2);
                out.extend_from_slice(&p.to_be_bytes());
                out.extend_from_slice(&s.to_be_bytes());
            }
        }
    }
    out
}

pub(crate) fn sh(entries: &[E]) -> [u8; 32] {
    let t: Vec<(String, [u8; 32], u64)> = entries
        .iter()
        .map(|e| (e.name.to_owned(), e.hash, e.size))
        .collect();
    sighash(&t)
}

/// Signed package: header, the root TOC bytes at 155, then `rest`.
pub(crate) fn package(root_toc: &[u8], root_sighash: [u8; 32], rest: &[u8]) -> Vec<u8> {
    let len = root_toc.len() as u64;
    let mut out = header(&super::common::key(), root_sighash, len, 155, len);
    out.extend_from_slice(root_toc);
    out.extend_from_slice(rest);
    out
}

/// Offset right after a root TOC with these entries.
pub(crate) fn base(entries: &[E]) -> u64 {
    155 + enc(entries).len() as u64
}

pub(crate) fn h(data: &[u8]) -> [u8; 32] {
    *blake3::hash(data).as_bytes()
}
