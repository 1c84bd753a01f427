//! `db.dump` and `db.put.ui`.
//!
//! `db.dump` reads only the public half: its pointer is relative to `/public`, so no
//! pointer can reach `/private`. `db.put.ui` writes only below `/public/ui`: its pointer
//! is relative to `/ui`, and `.`/`..` segments are refused so that nobody is misled into
//! thinking they could climb out. The UI subtree is capped at [`MAX_UI_BYTES`].

use hearth_rpc::methods::db::DumpResult;
use hearth_rpc::methods::{DbDump, DbPutUi};
use hearth_rpc::{ErrorCode, RpcError};
use hearth_store::Store;
use serde_json::Value;

use crate::dispatch::{Registry, Reply};
use crate::doc::{UI, parse_pointer, resolve};
use crate::error::{blocking, mutate_error};

const MAX_UI_BYTES: usize = 1 << 20;

fn pointer_error(e: impl std::fmt::Display) -> RpcError {
    RpcError::invalid_params("pointer", e)
}

/// Sets `value` at `tokens` below `root`, creating missing parent objects.
fn put(root: &mut Value, tokens: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = tokens.split_last() else {
        if !value.is_object() {
            return Err("the pointer \"\" replaces all of /ui, which must be an object".into());
        }
        *root = value;
        return Ok(());
    };
    let mut cur = root;
    for (depth, tok) in parents.iter().enumerate() {
        cur = match cur {
            Value::Object(map) => map
                .entry(tok.clone())
                .or_insert_with(|| Value::Object(serde_json::Map::new())),
            Value::Array(items) => tok
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get_mut(i))
                .ok_or_else(|| format!("no array element {tok:?} at segment {}", depth + 1))?,
            other => {
                return Err(format!(
                    "segment {} ({tok:?}) is inside a {}, not an object or array",
                    depth + 1,
                    kind(other)
                ));
            }
        };
    }
    match cur {
        Value::Object(map) => {
            map.insert(last.clone(), value);
        }
        Value::Array(items) => {
            if last == "-" {
                items.push(value);
            } else {
                let i = last
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i <= items.len())
                    .ok_or_else(|| format!("array index {last:?} out of range"))?;
                if i == items.len() {
                    items.push(value);
                } else {
                    items[i] = value;
                }
            }
        }
        other => return Err(format!("the parent of {last:?} is a {}", kind(other))),
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(crate) fn register(r: &mut Registry, store: Store) {
    let s = store.clone();
    r.register::<DbDump, _, _>(move |_, p| {
        let s = s.clone();
        async move {
            let tokens =
                parse_pointer(p.pointer.as_deref().unwrap_or("")).map_err(pointer_error)?;
            // One consistent (revision, value) pair.
            let dump = s.subscribe().dump;
            let value = resolve(&dump.value, &tokens).cloned().ok_or_else(|| {
                RpcError::new(
                    ErrorCode::NotFound,
                    format!(
                        "nothing at {:?} in the public state",
                        p.pointer.unwrap_or_default()
                    ),
                )
                .with("what", "pointer")
            })?;
            Ok(Reply::new(DumpResult {
                rev: dump.rev,
                value,
            }))
        }
    });

    r.register::<DbPutUi, _, _>(move |_, p| {
        let s = store.clone();
        async move {
            let tokens = parse_pointer(&p.pointer).map_err(pointer_error)?;
            if tokens.iter().any(|t| t == "." || t == "..") {
                return Err(pointer_error(
                    "'.' and '..' segments are not allowed: the pointer is relative to /ui \
                     and cannot leave it",
                ));
            }
            let value = p.value;
            let rev = blocking("put ui", move || {
                s.mutate(|d| {
                    let ui = d.pointer_mut(UI).ok_or_else(RpcError::internal)?;
                    put(ui, &tokens, value).map_err(pointer_error)?;
                    let size = serde_json::to_vec(ui)
                        .map(|v| v.len())
                        .unwrap_or(usize::MAX);
                    if size > MAX_UI_BYTES {
                        return Err(RpcError::invalid_params(
                            "value",
                            format!("/ui would grow to {size} bytes (limit {MAX_UI_BYTES})"),
                        ));
                    }
                    Ok(())
                })
                .map(|m| m.revision)
                .map_err(mutate_error("put ui"))
            })
            .await?;
            Ok(Reply::at((), rev))
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn toks(p: &str) -> Vec<String> {
        parse_pointer(p).unwrap()
    }

    #[test]
    fn put_creates_parents_and_handles_arrays() {
        let mut ui = json!({});
        put(&mut ui, &toks("/a/b"), json!(1)).unwrap();
        put(&mut ui, &toks("/list"), json!([1])).unwrap();
        put(&mut ui, &toks("/list/-"), json!(2)).unwrap();
        put(&mut ui, &toks("/list/0"), json!(0)).unwrap();
        assert_eq!(ui, json!({"a": {"b": 1}, "list": [0, 2]}));
        assert!(put(&mut ui, &toks("/list/9"), json!(0)).is_err());
        assert!(put(&mut ui, &toks("/a/b/c"), json!(0)).is_err());
        assert!(put(&mut ui, &toks(""), json!(3)).is_err());
        put(&mut ui, &toks(""), json!({"x": 1})).unwrap();
        assert_eq!(ui, json!({"x": 1}));
    }
}
