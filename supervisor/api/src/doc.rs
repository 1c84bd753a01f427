//! Layout of the state document, its seed, and helpers for editing it in a mutation.
//!
//! ```text
//! {
//!   "public": {                         // streamed to the UI on /ws/db
//!     "serverInfo": { "id", "version", "hostname", "setupComplete",
//!                     "unreadNotificationCount" },
//!     "notifications": { "<id>": Notification },
//!     "ui": { … }                        // free-form, written by db.put.ui
//!   },
//!   "private": {                        // never leaves the server
//!     "passwordHash": null | "$argon2id$…",
//!     "sessions": { "<sha256(token) hex>": Session },
//!     "apiTokens": { "<id>": ApiToken },  // ApiToken has `scope`: read | admin
//!     "deviceKey": "<base64 HMAC key of known-device cookies>",
//!     "nextNotificationId": 1
//!   }
//! }
//! ```

use serde_json::{Map, Value, json};

use hearth_rpc::RpcError;

pub(crate) const PASSWORD_HASH: &str = "/private/passwordHash";
pub(crate) const SESSIONS: &str = "/private/sessions";
pub(crate) const API_TOKENS: &str = "/private/apiTokens";
/// Key of the known-device cookies' HMAC (base64), created on first start.
pub(crate) const DEVICE_KEY: &str = "/private/deviceKey";
pub(crate) const SERVER_INFO: &str = "/public/serverInfo";
pub(crate) const NOTIFICATIONS: &str = hearth_rpc::methods::notification::NOTIFICATIONS_POINTER;
pub(crate) const UI: &str = "/public/ui";

/// The document a new store starts with.
pub(crate) fn seed(server_id: &str, version: &str) -> Value {
    json!({
        "public": {
            "serverInfo": {
                "id": server_id,
                "version": version,
                "hostname": null,
                "setupComplete": false,
                "unreadNotificationCount": 0,
            },
            "notifications": {},
            "ui": {},
        },
        "private": {
            "passwordHash": null,
            "sessions": {},
            "apiTokens": {},
            "nextNotificationId": 1,
        },
    })
}

/// The object at `pointer` (absolute, no escapes needed), created if missing.
///
/// Fails if something that is not an object is in the way: the document is damaged.
pub(crate) fn object_mut<'a>(
    doc: &'a mut Value,
    pointer: &str,
) -> Result<&'a mut Map<String, Value>, RpcError> {
    let mut cur = doc;
    for seg in pointer.split('/').skip(1) {
        let map = cur.as_object_mut().ok_or_else(|| damaged(pointer))?;
        cur = map
            .entry(seg.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if cur.is_null() {
        *cur = Value::Object(Map::new());
    }
    cur.as_object_mut().ok_or_else(|| damaged(pointer))
}

/// Sets the value at `pointer` (absolute, no escapes needed), creating parents.
pub(crate) fn set(doc: &mut Value, pointer: &str, value: Value) -> Result<(), RpcError> {
    let (parent, key) = pointer.rsplit_once('/').ok_or_else(|| damaged(pointer))?;
    object_mut(doc, parent)?.insert(key.to_owned(), value);
    Ok(())
}

fn damaged(pointer: &str) -> RpcError {
    crate::ApiError::Document {
        pointer: pointer.to_owned(),
        reason: "expected an object".into(),
    }
    .to_rpc()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Splits an RFC 6901 pointer into unescaped reference tokens, validating its syntax.
pub(crate) fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err("a JSON pointer must be empty or start with '/'".into());
    };
    rest.split('/')
        .map(|tok| {
            let mut out = String::with_capacity(tok.len());
            let mut chars = tok.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err("'~' must be followed by '0' or '1'".to_owned()),
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

/// The value at already-parsed `tokens` under `root`.
pub(crate) fn resolve<'a>(root: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    tokens.iter().try_fold(root, |cur, tok| match cur {
        Value::Object(map) => map.get(tok),
        Value::Array(items) => tok.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_syntax() {
        assert_eq!(parse_pointer("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_pointer("/a~1b/c~0").unwrap(), vec!["a/b", "c~"]);
        assert_eq!(parse_pointer("/").unwrap(), vec![""]);
        assert!(parse_pointer("a").is_err());
        assert!(parse_pointer("/a~2").is_err());
        assert!(parse_pointer("/a~").is_err());
    }

    #[test]
    fn resolve_objects_and_arrays() {
        let v = json!({"a": [10, {"b": true}]});
        let t = parse_pointer("/a/1/b").unwrap();
        assert_eq!(resolve(&v, &t), Some(&Value::Bool(true)));
        assert_eq!(resolve(&v, &parse_pointer("/a/7").unwrap()), None);
    }

    #[test]
    fn set_creates_parents() {
        let mut v = seed("id", "0");
        set(&mut v, "/private/sessions/x", json!(1)).unwrap();
        assert_eq!(v["private"]["sessions"]["x"], 1);
        set(&mut v, "/public/ui/a/b", json!(2)).unwrap();
        assert_eq!(v["public"]["ui"]["a"]["b"], 2);
    }
}
