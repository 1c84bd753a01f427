//! Bounded property tests: random trees round-trip through the writer (and
//! the independent decoder), and random mutations of a valid archive never
//! panic and never verify with a different content tree.

use std::collections::BTreeMap;
use std::io::Cursor;

use hearth_s9pk::{ArchiveBuilder, EntryKind, S9pkReader, TreeEntry};
use proptest::prelude::*;

use super::common::{key, sample};
use super::mini::decode_and_check;

type Content = Vec<(TreeEntry, Option<Vec<u8>>)>;

fn content(bytes: &[u8]) -> Result<Content, hearth_s9pk::ReadError> {
    let mut r = S9pkReader::open(Cursor::new(bytes), None)?;
    r.verify_all()?;
    let mut out = Vec::new();
    for e in r.entries()? {
        let body = match e.kind {
            EntryKind::File => Some(r.read_file(&e.path, u64::MAX)?),
            _ => None,
        };
        out.push((e, body));
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum Mutation {
    Xor(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Mutation::Xor(i, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<usize>().prop_map(Mutation::Remove),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match *m {
        Mutation::Xor(i, b) => bytes[i % n] ^= b,
        Mutation::Truncate(i) => bytes.truncate(i % n),
        Mutation::Insert(i, b) => bytes.insert(i % (n + 1), b),
        Mutation::Remove(i) => {
            bytes.remove(i % n);
        }
    }
}

/// Random file trees: paths of 1–3 segments from a small alphabet so that
/// directories get shared, with small contents.
fn tree() -> impl Strategy<Value = BTreeMap<Vec<String>, Vec<u8>>> {
    let seg = prop::sample::select(vec!["a", "b", "images", "x86_64", "é", "c.d", "…"]);
    let path = prop::collection::vec(seg.prop_map(str::to_owned), 1..4);
    prop::collection::btree_map(path, prop::collection::vec(any::<u8>(), 0..300), 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn mutated_archives_fail_cleanly_or_keep_their_content(
        muts in prop::collection::vec(mutation(), 1..5)
    ) {
        let original = sample();
        let expected = content(&original).unwrap();
        let mut bytes = original;
        for m in &muts {
            apply(&mut bytes, m);
        }
        match content(&bytes) {
            Ok(c) => prop_assert_eq!(c, expected),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_round_trip(files in tree()) {
        let mut b = ArchiveBuilder::new();
        let mut added = BTreeMap::new();
        for (path, data) in &files {
            let p = path.join("/");
            // Paths that collide with a directory (or pass through a file)
            // are refused; keep the ones that went in.
            if b.add_file_bytes(&p, data.clone()).is_ok() {
                added.insert(p, data.clone());
            }
        }
        let mut out = Cursor::new(Vec::new());
        b.write_to(&key(), &mut out).unwrap();
        let bytes = out.into_inner();
        decode_and_check(&bytes);
        let got: BTreeMap<String, Vec<u8>> = content(&bytes)
            .unwrap()
            .into_iter()
            .filter_map(|(e, body)| body.map(|b| (e.path, b)))
            .collect();
        prop_assert_eq!(got, added);
    }
}
