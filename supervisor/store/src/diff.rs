//! RFC 6902 diff (add, remove, replace) tuned for the store's case: a large document in
//! which one mutation changes a few leaves.
//!
//! `json_patch::diff` builds a JSON Pointer for every node it visits, equal or not; on a
//! 1 MB document that costs several times a plain equality check. Here every child is
//! first compared with `==` (which stops at the first difference) and only differing
//! children are descended into, so the work outside the changed branches is one
//! equality pass. Arrays are diffed by index: changed elements in place, then appended
//! elements added or surplus ones removed from the end (highest index first, so every
//! path is valid when applied in order).

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::Value;

/// The patch that turns `old` into `new` (empty when they are equal).
pub(crate) fn diff(old: &Value, new: &Value) -> Patch {
    let mut ops = Vec::new();
    if old != new {
        walk(old, new, &mut PointerBuf::root(), &mut ops);
    }
    Patch(ops)
}

/// `old != new` is known; emits the operations for this node.
fn walk(old: &Value, new: &Value, path: &mut PointerBuf, ops: &mut Vec<PatchOperation>) {
    match (old, new) {
        (Value::Object(before), Value::Object(after)) => {
            for (key, value) in after {
                match before.get(key) {
                    Some(prev) if prev == value => {}
                    Some(prev) => {
                        path.push_back(key.as_str());
                        walk(prev, value, path, ops);
                        path.pop_back();
                    }
                    None => ops.push(PatchOperation::Add(AddOperation {
                        path: path.with_trailing_token(key.as_str()),
                        value: value.clone(),
                    })),
                }
            }
            for key in before.keys().filter(|k| !after.contains_key(*k)) {
                ops.push(PatchOperation::Remove(RemoveOperation {
                    path: path.with_trailing_token(key.as_str()),
                }));
            }
        }
        (Value::Array(before), Value::Array(after)) => {
            let common = before.len().min(after.len());
            for (i, (prev, value)) in before.iter().zip(after).enumerate() {
                if prev != value {
                    path.push_back(i);
                    walk(prev, value, path, ops);
                    path.pop_back();
                }
            }
            for (i, value) in after.iter().enumerate().skip(common) {
                ops.push(PatchOperation::Add(AddOperation {
                    path: path.with_trailing_token(i),
                    value: value.clone(),
                }));
            }
            for i in (common..before.len()).rev() {
                ops.push(PatchOperation::Remove(RemoveOperation {
                    path: path.with_trailing_token(i),
                }));
            }
        }
        _ => ops.push(PatchOperation::Replace(ReplaceOperation {
            path: path.clone(),
            value: new.clone(),
        })),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn apply(old: &Value, patch: &Patch) -> Value {
        let mut doc = old.clone();
        json_patch::patch(&mut doc, patch).unwrap();
        doc
    }

    #[test]
    fn touches_only_the_changed_leaves() {
        let old = json!({"a": {"b": 1, "c": [1, 2, 3]}, "d/e": "x", "gone": true});
        let new = json!({"a": {"b": 2, "c": [1, 5]}, "d/e": "x", "f~": null});
        let patch = diff(&old, &new);
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([
                {"op": "replace", "path": "/a/b", "value": 2},
                {"op": "replace", "path": "/a/c/1", "value": 5},
                {"op": "remove", "path": "/a/c/2"},
                {"op": "add", "path": "/f~0", "value": null},
                {"op": "remove", "path": "/gone"},
            ])
        );
        assert_eq!(apply(&old, &patch), new);
        assert!(diff(&new, &new).0.is_empty());
    }

    #[test]
    fn type_changes_and_the_root_are_replaced() {
        let patch = diff(&json!({"a": [1]}), &json!({"a": {"0": 1}}));
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([{"op": "replace", "path": "/a", "value": {"0": 1}}])
        );
        assert_eq!(
            apply(&json!([1, 2]), &diff(&json!([1, 2]), &json!("s"))),
            json!("s")
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..3).prop_map(Value::from),
            "[a-c/~]{0,2}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-c/~]{0,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn applying_the_diff_gives_the_new_value(old in arb_json(), new in arb_json()) {
            let patch = diff(&old, &new);
            prop_assert_eq!(apply(&old, &patch), new.clone());
            prop_assert_eq!(patch.0.is_empty(), old == new);
        }

        #[test]
        fn the_diff_has_as_many_operations_as_json_patchs(old in arb_json(), new in arb_json()) {
            // Same algorithm, so the same operations (array removals in another order).
            prop_assert_eq!(diff(&old, &new).0.len(), json_patch::diff(&old, &new).0.len());
        }
    }
}
