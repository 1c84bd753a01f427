//! Checks an action's input against its JSON Schema: `hearthd` before it asks the
//! container to run an action, and `hearth-container` again before it runs the command
//! (so a caller that bypasses hearthd is checked too). One implementation for both.
//!
//! # Design
//! A documented subset of JSON Schema (draft 2020-12 keywords as forms use them):
//! `type` (string or list), `enum`, `const`, `required`, `properties`,
//! `additionalProperties` (`false` or a schema), `minProperties`/`maxProperties`,
//! `items`, `minItems`/`maxItems`, `uniqueItems`, `minimum`/`maximum`,
//! `exclusiveMinimum`/`exclusiveMaximum` (numbers), `multipleOf`,
//! `minLength`/`maxLength` (characters), and `allOf`/`anyOf`/`oneOf`/`not`.
//! Errors name the failing place as a path from `input` (`input.name`,
//! `input.tags[2]`).
//!
//! # Limitations
//! `pattern`, `patternProperties`, `format`, `$ref`/`$defs` and `if`/`then`/`else`
//! are not checked (accepted as if absent): the action command must still treat its
//! input as untrusted.
//!
//! # Rejected alternatives
//! The `jsonschema` crate: full coverage, but a regex engine, URL and IDNA handling
//! and dozens of crates to build on the supervisor's two shared cores for forms that
//! use the keywords above (and in `hearth-container`, whose point is to be small).

use serde_json::{Map, Value};

/// Where and why `value` does not match `schema`.
pub type InputMismatch = (String, String);

/// Checks `value` (at `path`) against `schema`; see the module docs for the keywords.
pub fn check_action_input(schema: &Value, value: &Value, path: &str) -> Result<(), InputMismatch> {
    let Some(schema) = schema.as_object() else {
        // `true` accepts everything; `false` nothing.
        return if schema == &Value::Bool(false) {
            Err((path.to_owned(), "no value is allowed here".into()))
        } else {
            Ok(())
        };
    };
    let fail = |why: String| Err((path.to_owned(), why));
    if let Some(ty) = schema.get("type") {
        let types: Vec<&str> = match ty {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|t| has_type(value, t)) {
            return fail(format!("expected {}", types.join(" or ")));
        }
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        return fail("not one of the allowed values".into());
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        return fail(format!("must be {c}"));
    }
    combinators(schema, value, path)?;
    match value {
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or(f64::NAN), path),
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if count(schema, "minLength").is_some_and(|m| len < m) {
                return fail(format!(
                    "shorter than {} characters",
                    count(schema, "minLength").unwrap_or(0)
                ));
            }
            if count(schema, "maxLength").is_some_and(|m| len > m) {
                return fail(format!(
                    "longer than {} characters",
                    count(schema, "maxLength").unwrap_or(0)
                ));
            }
            Ok(())
        }
        Value::Array(items) => check_array(schema, items, path),
        Value::Object(fields) => check_object(schema, fields, path),
        Value::Null | Value::Bool(_) => Ok(()),
    }
}

fn count(schema: &Map<String, Value>, key: &str) -> Option<u64> {
    schema.get(key).and_then(Value::as_u64)
}

fn combinators(
    schema: &Map<String, Value>,
    value: &Value,
    path: &str,
) -> Result<(), InputMismatch> {
    let list = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    for s in list("allOf") {
        check_action_input(s, value, path)?;
    }
    let any = list("anyOf");
    if !any.is_empty()
        && !any
            .iter()
            .any(|s| check_action_input(s, value, path).is_ok())
    {
        return Err((path.to_owned(), "matches none of the allowed forms".into()));
    }
    let one = list("oneOf");
    if !one.is_empty()
        && one
            .iter()
            .filter(|s| check_action_input(s, value, path).is_ok())
            .count()
            != 1
    {
        return Err((
            path.to_owned(),
            "must match exactly one of the allowed forms".into(),
        ));
    }
    if let Some(not) = schema.get("not")
        && check_action_input(not, value, path).is_ok()
    {
        return Err((path.to_owned(), "matches a form that is not allowed".into()));
    }
    Ok(())
}

fn check_number(schema: &Map<String, Value>, n: f64, path: &str) -> Result<(), InputMismatch> {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let out = bound("minimum").is_some_and(|m| n < m)
        || bound("maximum").is_some_and(|m| n > m)
        || bound("exclusiveMinimum").is_some_and(|m| n <= m)
        || bound("exclusiveMaximum").is_some_and(|m| n >= m);
    if out {
        return Err((path.to_owned(), "out of range".into()));
    }
    if let Some(m) = bound("multipleOf")
        && m > 0.0
        && ((n / m) - (n / m).round()).abs() > 1e-9
    {
        return Err((path.to_owned(), format!("not a multiple of {m}")));
    }
    Ok(())
}

fn check_array(
    schema: &Map<String, Value>,
    items: &[Value],
    path: &str,
) -> Result<(), InputMismatch> {
    let len = items.len() as u64;
    if count(schema, "minItems").is_some_and(|m| len < m)
        || count(schema, "maxItems").is_some_and(|m| len > m)
    {
        return Err((path.to_owned(), "number of items out of range".into()));
    }
    if schema.get("uniqueItems") == Some(&Value::Bool(true)) {
        for (i, item) in items.iter().enumerate() {
            if items[..i].contains(item) {
                return Err((format!("{path}[{i}]"), "duplicate item".into()));
            }
        }
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check_action_input(item_schema, item, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

fn check_object(
    schema: &Map<String, Value>,
    fields: &Map<String, Value>,
    path: &str,
) -> Result<(), InputMismatch> {
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                return Err((format!("{path}.{name}"), "required".into()));
            }
        }
    }
    let len = fields.len() as u64;
    if count(schema, "minProperties").is_some_and(|m| len < m)
        || count(schema, "maxProperties").is_some_and(|m| len > m)
    {
        return Err((path.to_owned(), "number of fields out of range".into()));
    }
    for (name, field) in fields {
        let field_path = format!("{path}.{name}");
        match (
            properties.and_then(|p| p.get(name)),
            schema.get("additionalProperties"),
        ) {
            (Some(field_schema), _) => check_action_input(field_schema, field, &field_path)?,
            (None, Some(Value::Bool(false))) => {
                return Err((field_path, "unknown field".into()));
            }
            (None, Some(extra)) => check_action_input(extra, field, &field_path)?,
            (None, None) => {}
        }
    }
    Ok(())
}

fn has_type(value: &Value, ty: &str) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(schema: &Value, value: &Value) -> String {
        check_action_input(schema, value, "input").unwrap_err().0
    }

    #[test]
    fn hello_oci_sign_input() {
        // As in sdk/examples/hello-oci/hearth.toml.
        let schema = json!({"type": "object", "properties": {"name": {"type": "string", "title": "Your name"}}, "required": ["name"]});
        assert!(check_action_input(&schema, &json!({"name": "Ada"}), "input").is_ok());
        assert_eq!(err(&schema, &json!({})), "input.name");
        assert_eq!(err(&schema, &json!({"name": 5})), "input.name");
        assert_eq!(err(&schema, &json!("Ada")), "input");
    }

    #[test]
    fn keywords_of_the_subset() {
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "n": {"type": "integer", "exclusiveMinimum": 0, "maximum": 10, "multipleOf": 2},
                "s": {"type": "string", "minLength": 2, "maxLength": 3, "enum": ["ab", "abc"]},
                "t": {"type": "array", "items": {"type": "string"}, "uniqueItems": true, "maxItems": 2},
                "m": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "k": {"not": {"const": "x"}},
            },
        });
        let ok = json!({"n": 4, "s": "ab", "t": ["a", "b"], "m": 3, "k": "y"});
        assert!(check_action_input(&schema, &ok, "input").is_ok());
        for (field, bad) in [
            ("n", json!(0)),
            ("n", json!(12)),
            ("n", json!(3)),
            ("n", json!(2.5)),
            ("s", json!("a")),
            ("s", json!("abd")),
            ("t", json!(["a", 1])),
            ("t", json!(["a", "a"])),
            ("t", json!(["a", "b", "c"])),
            ("m", json!(true)),
            ("k", json!("x")),
        ] {
            let mut v = ok.clone();
            v[field] = bad.clone();
            assert!(
                err(&schema, &v).starts_with(&format!("input.{field}")),
                "{field} = {bad} accepted"
            );
        }
        let mut extra = ok.clone();
        extra["zzz"] = json!(1);
        assert_eq!(err(&schema, &extra), "input.zzz");
        assert!(check_action_input(&json!(true), &json!(1), "input").is_ok());
        assert!(check_action_input(&json!(false), &json!(1), "input").is_err());
    }
}
