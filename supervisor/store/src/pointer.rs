//! RFC 6901 JSON Pointer lookup with errors that tell "malformed" from "absent".
//!
//! `serde_json::Value::pointer` returns `None` for both, which would make a typo in a
//! client's pointer look like missing data; the API maps the two to different RPC errors.

use serde_json::Value;

use crate::error::StoreError;

/// Resolves `pointer` in `doc`.
pub(crate) fn resolve<'v>(doc: &'v Value, pointer: &str) -> Result<&'v Value, StoreError> {
    let tokens = parse(pointer)?;
    let mut cur = doc;
    for token in &tokens {
        let next = match cur {
            Value::Object(map) => map.get(token.as_str()),
            Value::Array(items) => array_index(token).and_then(|i| items.get(i)),
            _ => None,
        };
        cur = next.ok_or_else(|| StoreError::PointerNotFound {
            pointer: pointer.to_owned(),
        })?;
    }
    Ok(cur)
}

/// Splits a pointer into decoded reference tokens ("" is the root: no tokens).
fn parse(pointer: &str) -> Result<Vec<String>, StoreError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let invalid = |reason: &str| StoreError::InvalidPointer {
        pointer: pointer.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| invalid("must be empty or start with '/'"))?;
    rest.split('/')
        .map(|raw| {
            let mut out = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err(invalid("'~' must be followed by '0' or '1'")),
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

/// An array index token: decimal digits without leading zeros ("-" names no element).
fn array_index(token: &str) -> Option<usize> {
    let canonical = token == "0" || (!token.is_empty() && !token.starts_with('0'));
    if canonical && token.bytes().all(|b| b.is_ascii_digit()) {
        token.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_objects_arrays_and_escapes() {
        let doc = json!({"a": {"b/c": [10, {"~d": true}]}, "": 1});
        assert_eq!(resolve(&doc, "").ok(), Some(&doc));
        assert_eq!(resolve(&doc, "/a/b~1c/0").ok(), Some(&json!(10)));
        assert_eq!(resolve(&doc, "/a/b~1c/1/~0d").ok(), Some(&json!(true)));
        assert_eq!(resolve(&doc, "/").ok(), Some(&json!(1)));
    }

    fn escape(key: &str) -> String {
        key.replace('~', "~0").replace('/', "~1")
    }

    proptest::proptest! {
        #[test]
        fn finds_every_value_by_its_escaped_path(keys in proptest::collection::vec(".{0,6}", 1..5)) {
            let mut doc = json!(42);
            for k in keys.iter().rev() {
                doc = json!({ k.as_str(): doc });
            }
            let pointer: String = keys.iter().map(|k| format!("/{}", escape(k))).collect();
            proptest::prop_assert_eq!(resolve(&doc, &pointer).ok(), Some(&json!(42)));
        }

        #[test]
        fn arbitrary_pointers_never_panic(pointer in ".{0,30}") {
            let doc = json!({"a": [1, {"b": null}], "~": {"/": true}});
            let _ = resolve(&doc, &pointer);
        }
    }

    #[test]
    fn distinguishes_missing_from_malformed() {
        let doc = json!({"a": [1, 2]});
        for missing in ["/b", "/a/2", "/a/-", "/a/01", "/a/x", "/a/0/deeper"] {
            assert!(
                matches!(
                    resolve(&doc, missing),
                    Err(StoreError::PointerNotFound { .. })
                ),
                "{missing}"
            );
        }
        for bad in ["a", "/a~2", "/a~"] {
            assert!(
                matches!(resolve(&doc, bad), Err(StoreError::InvalidPointer { .. })),
                "{bad}"
            );
        }
    }
}
