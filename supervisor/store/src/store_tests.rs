use std::convert::Infallible;

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn seed() -> Value {
    json!({"public": {"serverInfo": {"name": "hearth"}, "ui": {}}, "private": {"sessions": {}}})
}

fn open_tmp(options: StoreOptions) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(&dir.path().join("db.redb"), seed(), options).unwrap();
    (dir, store)
}

fn set(store: &Store, pointer: &str, value: Value) -> u64 {
    store
        .mutate(|doc| {
            *doc.pointer_mut(pointer).unwrap() = value;
            Ok::<_, Infallible>(())
        })
        .unwrap()
        .revision
}

fn apply(value: &mut Value, rev: &Revision) {
    json_patch::patch(value, &rev.patch).unwrap();
}

#[test]
fn new_store_starts_from_the_seed_at_revision_zero() {
    let (_dir, store) = open_tmp(StoreOptions::default());
    assert_eq!(store.revision(), 0);
    assert_eq!(store.get("").unwrap(), seed());
    assert_eq!(
        store.get("/public/serverInfo/name").unwrap(),
        json!("hearth")
    );
    assert!(matches!(
        store.get("/public/nope"),
        Err(StoreError::PointerNotFound { .. })
    ));
    assert!(matches!(
        store.get("public"),
        Err(StoreError::InvalidPointer { .. })
    ));
}

#[test]
fn open_refuses_a_seed_of_the_wrong_shape() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        json!([]),
        json!({"public": {}}),
        json!({"public": 1, "private": {}}),
        json!({"public": {}, "private": {}, "x": 1}),
    ] {
        let err = Store::open(&dir.path().join("db.redb"), bad).unwrap_err();
        assert!(matches!(err, StoreError::InvalidDocument { .. }), "{err}");
    }
}

#[test]
fn mutate_returns_the_value_and_a_new_revision() {
    let (_dir, store) = open_tmp(StoreOptions::default());
    let m = store
        .mutate(|doc| {
            doc["public"]["ui"]["theme"] = json!("dark");
            Ok::<_, Infallible>("done")
        })
        .unwrap();
    assert_eq!((m.value, m.revision), ("done", 1));
    assert_eq!(store.revision(), 1);
    assert_eq!(store.get("/public/ui/theme").unwrap(), json!("dark"));
}

#[test]
fn mutate_without_change_keeps_the_revision() {
    let (_dir, store) = open_tmp(StoreOptions::default());
    set(&store, "/public/ui", json!({"a": 1}));
    let mut sub = store.subscribe();
    let m = store
        .mutate(|doc| {
            doc["public"]["ui"]["a"] = json!(1);
            Ok::<_, Infallible>(7)
        })
        .unwrap();
    assert_eq!((m.value, m.revision), (7, 1));
    assert_eq!(store.revision(), 1);
    assert!(
        sub.updates.try_recv().is_err(),
        "no-op mutation must not publish"
    );
}

#[test]
fn rejected_mutation_changes_nothing() {
    let (_dir, store) = open_tmp(StoreOptions::default());
    let err = store
        .mutate(|doc| {
            doc["public"]["ui"]["x"] = json!(1);
            Err::<(), _>("no")
        })
        .unwrap_err();
    assert!(matches!(err, MutateError::Rejected("no")));
    assert_eq!(store.revision(), 0);
    assert_eq!(store.get("").unwrap(), seed());
}

#[test]
fn mutation_breaking_the_shape_is_refused() {
    let (_dir, store) = open_tmp(StoreOptions::default());
    let err = store
        .mutate(|doc| {
            doc["extra"] = json!(1);
            Ok::<_, Infallible>(())
        })
        .unwrap_err();
    assert!(matches!(
        err,
        MutateError::Store(StoreError::InvalidDocument { .. })
    ));
    let err = store
        .mutate(|doc| {
            doc["public"] = json!("flat");
            Ok::<_, Infallible>(())
        })
        .unwrap_err();
    assert!(matches!(
        err,
        MutateError::Store(StoreError::InvalidDocument { .. })
    ));
    assert_eq!(store.revision(), 0);
    assert_eq!(store.get("").unwrap(), seed());
}

#[test]
fn a_panicking_mutation_leaves_the_store_usable() {
    let (_dir, store) = open_tmp(StoreOptions::default());
    let s2 = store.clone();
    let res = std::thread::spawn(move || {
        let _ = s2.mutate(|doc| -> Result<(), Infallible> {
            doc["public"]["ui"]["x"] = json!(1);
            panic!("handler bug")
        });
    })
    .join();
    assert!(res.is_err());
    assert_eq!(store.get("").unwrap(), seed());
    assert_eq!(set(&store, "/public/ui", json!({"y": 2})), 1);
}

#[test]
fn subscribers_get_public_patches_relative_to_public() {
    let (_dir, store) = open_tmp(StoreOptions::default());
    let mut sub = store.subscribe();
    assert_eq!(sub.dump.rev, 0);
    assert_eq!(sub.dump.value, seed()["public"]);
    set(&store, "/public/ui", json!({"theme": "dark"}));
    let rev = sub.updates.try_recv().unwrap();
    assert_eq!(rev.rev, 1);
    assert_eq!(
        serde_json::to_value(&rev.patch).unwrap(),
        json!([{"op": "add", "path": "/ui/theme", "value": "dark"}])
    );
    let mut replica = sub.dump.value.clone();
    apply(&mut replica, &rev);
    assert_eq!(replica, store.get("/public").unwrap());
}

#[test]
fn dropping_a_subscription_releases_it() {
    let (_dir, store) = open_tmp(StoreOptions::default());
    assert_eq!(store.subscribers(), 0);
    let a = store.subscribe();
    let b = store.subscribe();
    assert_eq!(store.subscribers(), 2);
    drop(a);
    drop(b);
    assert_eq!(store.subscribers(), 0);
}

#[test]
fn private_only_mutations_are_not_published_but_consume_a_revision() {
    let (_dir, store) = open_tmp(StoreOptions::default());
    let mut sub = store.subscribe();
    assert_eq!(
        set(&store, "/private/sessions", json!({"abc": {"hash": "x"}})),
        1
    );
    assert!(sub.updates.try_recv().is_err());
    // A mixed mutation publishes only its public operations.
    store
        .mutate(|doc| {
            doc["private"]["sessions"]["def"] = json!({});
            doc["public"]["ui"]["n"] = json!(1);
            Ok::<_, Infallible>(())
        })
        .unwrap();
    let rev = sub.updates.try_recv().unwrap();
    assert_eq!(
        rev.rev, 2,
        "revisions are global: the private one left a gap"
    );
    assert_eq!(
        serde_json::to_value(&rev.patch).unwrap(),
        json!([{"op": "add", "path": "/ui/n", "value": 1}])
    );
    assert_eq!(store.public_since(0).unwrap().len(), 1);
}

#[test]
fn public_since_returns_later_public_revisions() {
    let (_dir, store) = open_tmp(StoreOptions::default());
    for i in 0..5 {
        set(&store, "/public/ui", json!({"i": i}));
    }
    set(&store, "/private/sessions", json!({"s": 1}));
    let since = store.public_since(2).unwrap();
    assert_eq!(
        since.iter().map(|r| r.rev).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert!(store.public_since(6).unwrap().is_empty());
    assert!(
        store.public_since(7).is_none(),
        "a revision from the future"
    );
}

#[test]
fn public_since_is_none_once_the_history_ring_dropped_revisions() {
    let options = StoreOptions {
        history: 3,
        ..StoreOptions::default()
    };
    let (_dir, store) = open_tmp(options);
    for i in 0..5 {
        set(&store, "/public/ui", json!({"i": i}));
    }
    // Kept: 3, 4, 5.
    assert!(store.public_since(1).is_none());
    assert_eq!(
        store
            .public_since(2)
            .unwrap()
            .iter()
            .map(|r| r.rev)
            .collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
}

#[test]
fn the_history_ring_is_bounded_in_bytes_too() {
    let options = StoreOptions {
        history_bytes: 10_000,
        ..StoreOptions::default()
    };
    let (_dir, store) = open_tmp(options);
    // Each patch is a little over 3 kB: three fit, the fourth evicts the first.
    for i in 0..4 {
        set(
            &store,
            "/public/ui",
            json!({"blob": format!("{i}{}", "x".repeat(3000))}),
        );
    }
    assert!(store.public_since(0).is_none());
    let kept: Vec<u64> = store
        .public_since(1)
        .unwrap()
        .iter()
        .map(|r| r.rev)
        .collect();
    assert_eq!(kept, vec![2, 3, 4]);
    // A single revision over the budget is not kept at all; its predecessors go too.
    set(&store, "/public/ui", json!({"blob": "y".repeat(20_000)}));
    assert!(store.public_since(4).is_none());
    assert!(store.public_since(5).unwrap().is_empty());
}

#[test]
fn reopen_returns_the_same_document_and_revision() {
    for snapshot_every in [1, 3, 1024] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let options = StoreOptions {
            snapshot_every,
            ..StoreOptions::default()
        };
        let store = Store::open_with(&path, seed(), options.clone()).unwrap();
        for i in 0..7 {
            set(&store, "/public/ui", json!({"i": i}));
            set(&store, "/private/sessions", json!({"i": i}));
        }
        let doc = store.get("").unwrap();
        drop(store);
        // The seed of a later open is ignored.
        let other_seed = json!({"public": {}, "private": {}});
        let store = Store::open_with(&path, other_seed, options).unwrap();
        assert_eq!(store.revision(), 14, "snapshot_every={snapshot_every}");
        assert_eq!(store.get("").unwrap(), doc);
        // History starts afresh after a restart.
        assert!(store.public_since(13).is_none());
        assert!(store.public_since(14).unwrap().is_empty());
        assert_eq!(set(&store, "/public/ui", json!("after")), 15);
    }
}

#[test]
fn a_file_that_is_not_a_store_is_an_error_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let garbage = vec![0xA5u8; 8192];
    std::fs::write(&path, &garbage).unwrap();
    let err = Store::open(&path, seed()).unwrap_err();
    assert!(matches!(err, StoreError::Database { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn concurrent_subscribers_see_no_gap_and_no_duplicate() {
    let (_dir, store) = open_tmp(StoreOptions::default());
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..200u32 {
                store
                    .mutate(|doc| {
                        let list = doc["public"]["ui"]
                            .as_object_mut()
                            .unwrap()
                            .entry("list")
                            .or_insert(json!([]));
                        list.as_array_mut().unwrap().push(json!(i));
                        if i % 7 == 0 {
                            doc["private"]["sessions"]["n"] = json!(i);
                        }
                        Ok::<_, Infallible>(())
                    })
                    .unwrap();
            }
        })
    };
    let mut subs = Vec::new();
    while !writer.is_finished() {
        subs.push(store.subscribe());
        std::thread::sleep(std::time::Duration::from_micros(300));
    }
    writer.join().unwrap();
    subs.push(store.subscribe());
    let expected = store.get("/public").unwrap();
    for mut sub in subs {
        let mut replica = sub.dump.value.clone();
        let mut last = sub.dump.rev;
        while let Ok(rev) = sub.updates.try_recv() {
            assert!(rev.rev > last, "revision {} after {}", rev.rev, last);
            last = rev.rev;
            apply(&mut replica, &rev);
        }
        // Appending to an array: a duplicated or missing patch changes the list.
        assert_eq!(replica, expected);
    }
}

#[derive(Debug, Clone)]
enum Op {
    SetPublic(Vec<String>, i64),
    RemovePublic(Vec<String>),
    SetPrivate(String, i64),
    Push(i64),
    Subscribe,
}

fn op() -> impl Strategy<Value = Op> {
    let key = prop::sample::select(vec!["a", "b", "c", "~x", "y/z"]).prop_map(String::from);
    let path = prop::collection::vec(key.clone(), 1..4);
    prop_oneof![
        (path.clone(), any::<i64>()).prop_map(|(p, v)| Op::SetPublic(p, v)),
        path.prop_map(Op::RemovePublic),
        (key, any::<i64>()).prop_map(|(k, v)| Op::SetPrivate(k, v)),
        any::<i64>().prop_map(Op::Push),
        Just(Op::Subscribe),
    ]
}

fn run(doc: &mut Value, op: &Op) {
    match op {
        Op::SetPublic(path, v) => {
            let mut cur = &mut doc["public"];
            for k in path {
                if !cur.is_object() {
                    *cur = json!({});
                }
                cur = &mut cur[k.as_str()];
            }
            *cur = json!(v);
        }
        Op::RemovePublic(path) => {
            let (last, parents) = path.split_last().unwrap();
            let mut cur = &mut doc["public"];
            for k in parents {
                match cur.get_mut(k.as_str()) {
                    Some(next) => cur = next,
                    None => return,
                }
            }
            if let Some(map) = cur.as_object_mut() {
                map.remove(last.as_str());
            }
        }
        Op::SetPrivate(k, v) => doc["private"][k.as_str()] = json!(v),
        Op::Push(v) => {
            let slot = &mut doc["public"]["list"];
            if !slot.is_array() {
                *slot = json!([]);
            }
            if let Some(a) = slot.as_array_mut() {
                a.insert(0, json!(v));
            }
        }
        Op::Subscribe => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn published_patches_replayed_on_the_dump_reproduce_public(ops in prop::collection::vec(op(), 1..40)) {
        let (_dir, store) = open_tmp(StoreOptions { snapshot_every: 5, ..StoreOptions::default() });
        let mut subs = vec![store.subscribe()];
        for op in &ops {
            if let Op::Subscribe = op {
                subs.push(store.subscribe());
                continue;
            }
            store.mutate(|doc| { run(doc, op); Ok::<_, Infallible>(()) }).unwrap();
        }
        let expected = store.get("/public").unwrap();
        for mut sub in subs {
            let mut replica = sub.dump.value.clone();
            while let Ok(rev) = sub.updates.try_recv() {
                apply(&mut replica, &rev);
            }
            prop_assert_eq!(&replica, &expected);
        }
        // public_since(0) replays onto the seed the same way.
        let mut replica = seed()["public"].clone();
        for rev in store.public_since(0).unwrap() {
            apply(&mut replica, &rev);
        }
        prop_assert_eq!(&replica, &expected);
        // And the persisted log reproduces the whole document.
        let doc = store.get("").unwrap();
        let path = _dir.path().join("db.redb");
        drop(store);
        let reopened = Store::open(&path, seed()).unwrap();
        prop_assert_eq!(reopened.get("").unwrap(), doc);
    }
}
