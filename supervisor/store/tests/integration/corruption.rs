//! A damaged store file is reported, never silently reset.

use hearth_store::{Store, StoreError};
use serde_json::json;

#[test]
fn truncated_file_is_an_error_and_not_reset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let store = Store::open(&path, json!({"public": {}, "private": {}})).unwrap();
    for i in 0..20 {
        store
            .mutate(|doc| {
                doc["public"]["i"] = json!(i);
                Ok::<_, std::convert::Infallible>(())
            })
            .unwrap();
    }
    drop(store);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let damaged = std::fs::read(&path).unwrap();
    match Store::open(&path, json!({"public": {}, "private": {}})) {
        Err(StoreError::Database { .. } | StoreError::Corrupted { .. }) => {}
        Err(other) => panic!("unexpected error kind: {other}"),
        Ok(store) => panic!("opened a truncated store at revision {}", store.revision()),
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        damaged,
        "the file was modified"
    );
}
