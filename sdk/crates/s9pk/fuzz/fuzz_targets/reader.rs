//! Fuzzes the S9PK reader: open, list, verify and read every file of an
//! arbitrary byte string. Must never panic, hang or allocate unboundedly.
//!
//! Random bytes rarely pass the signature check, so seed the corpus with
//! `../tests/golden/small.s9pk`: mutations of it still exercise TOC decoding,
//! name validation and the bounds, overlap and depth checks, which all run
//! before a TOC's hash is compared.
#![no_main]

use std::io::{Cursor, Read};

use hearth_s9pk::{EntryKind, S9pkReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = S9pkReader::open(Cursor::new(data), None) else {
        return;
    };
    let verified = reader.verify_all();
    let Ok(entries) = reader.entries() else {
        return;
    };
    for entry in entries {
        if entry.kind == EntryKind::File {
            if let Ok(mut file) = reader.open_file(&entry.path) {
                let mut sink = Vec::new();
                let read = file.read_to_end(&mut sink);
                // A fully verified archive yields exactly the recorded bytes.
                if verified.is_ok() {
                    assert!(read.is_ok());
                    assert_eq!(sink.len() as u64, entry.size);
                }
            }
        }
    }
});
