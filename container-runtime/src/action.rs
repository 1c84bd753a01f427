//! Actions: check the input, run the command with the input as JSON on stdin, report.
//!
//! # Design
//! The input is checked against the action's JSON Schema with a deliberately small
//! subset ([`check_input`]): `type`, `enum`, `const`, `required`, `properties`,
//! `additionalProperties: false`, `items`, `minimum`/`maximum`,
//! `minLength`/`maxLength`, `minItems`/`maxItems`. That catches the mistakes a form
//! can make; full validation (formats, `pattern`, `$ref`, combinators) is `hearthd`'s
//! job before it calls us.
//!
//! # Rejected alternatives
//! The `jsonschema` crate: dozens of dependencies (regex engines, URL parsing,
//! optional HTTP) in a binary whose point is to be small, for checks hearthd repeats.

use hearth_rpc::{ErrorCode, RpcError};
use hearth_s9pk::spec::{ActionResult, ActionSpec};
use serde_json::{Map, Value, json};

use crate::image::ImageConfig;
use crate::process::{Invocation, Reaper, RunError, run_command};
use crate::supervisor::ExitInfo;

/// Most output kept per stream.
const OUTPUT_CAP: usize = 1024 * 1024;

/// Runs `action` with `input`; the result object carries the exit status and output.
pub(crate) fn run_action(
    action: &ActionSpec,
    input: Option<Value>,
    image: Option<&ImageConfig>,
    reaper: &Reaper,
) -> Result<Value, RpcError> {
    let input = match (&action.input, input) {
        (Some(schema), input) => {
            let input = input.unwrap_or_else(|| Value::Object(Map::new()));
            check_input(schema, &input, "input")
                .map_err(|(path, message)| RpcError::invalid_params(&path, message))?;
            Some(input)
        }
        (None, None | Some(Value::Null)) => None,
        (None, Some(_)) => {
            return Err(RpcError::invalid_params(
                "input",
                format!("action {} takes no input", action.id),
            ));
        }
    };
    let mut invocation = Invocation::with_image(
        &format!("action {}", action.id),
        Some(&action.command),
        &action.env,
        action.user.as_ref(),
        action.workdir.as_ref(),
        image,
    )
    .map_err(|e| RpcError::new(ErrorCode::Internal, e))?;
    invocation
        .env
        .push(("HEARTH_ACTION_ID".into(), action.id.clone()));
    let stdin = input.map(|v| {
        let mut bytes = v.to_string().into_bytes();
        bytes.push(b'\n');
        bytes
    });
    tracing::info!(action = %action.id, "running action");
    let output = run_command(reaper, &invocation, stdin, action.timeout.get(), OUTPUT_CAP)
        .map_err(|e| match e {
            RunError::Timeout { .. } => RpcError::new(ErrorCode::Timeout, e.to_string()),
            RunError::Spawn { .. } => RpcError::new(ErrorCode::Internal, e.to_string()),
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let parsed = serde_json::from_str::<Value>(&stdout).ok();
    let (exit_code, signal) = match output.exit {
        ExitInfo::Code(c) => (Some(c), None),
        ExitInfo::Signal(s) => (None, Some(s)),
    };
    let (stdout, result) = match action.result {
        ActionResult::None => (None, None),
        ActionResult::Text | ActionResult::Json => (Some(stdout), parsed),
    };
    Ok(json!({
        "success": exit_code == Some(0),
        "exitCode": exit_code,
        "signal": signal,
        "stdout": stdout,
        "result": result,
        "stderr": tail(&String::from_utf8_lossy(&output.stderr), 4096),
    }))
}

fn tail(text: &str, max: usize) -> String {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

/// Checks `value` against the supported subset of JSON Schema; `Err((path, why))`.
pub(crate) fn check_input(
    schema: &Value,
    value: &Value,
    path: &str,
) -> Result<(), (String, String)> {
    let fail = |why: String| Err((path.to_owned(), why));
    let Some(schema) = schema.as_object() else {
        return Ok(());
    };
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
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let count_bound = |key: &str| schema.get(key).and_then(Value::as_u64);
    match value {
        Value::Number(n) => {
            let n = n.as_f64().unwrap_or(f64::NAN);
            if bound("minimum").is_some_and(|m| n < m) || bound("maximum").is_some_and(|m| n > m) {
                return fail("out of range".into());
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if count_bound("minLength").is_some_and(|m| len < m)
                || count_bound("maxLength").is_some_and(|m| len > m)
            {
                return fail("length out of range".into());
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if count_bound("minItems").is_some_and(|m| len < m)
                || count_bound("maxItems").is_some_and(|m| len > m)
            {
                return fail("number of items out of range".into());
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_input(item_schema, item, &format!("{path}[{i}]"))?;
                }
            }
        }
        Value::Object(fields) => check_object(schema, fields, path)?,
        Value::Null | Value::Bool(_) => {}
    }
    Ok(())
}

fn check_object(
    schema: &Map<String, Value>,
    fields: &Map<String, Value>,
    path: &str,
) -> Result<(), (String, String)> {
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                return Err((format!("{path}.{name}"), "required".into()));
            }
        }
    }
    for (name, field) in fields {
        let field_path = format!("{path}.{name}");
        match properties.and_then(|p| p.get(name)) {
            Some(field_schema) => check_input(field_schema, field, &field_path)?,
            None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                return Err((field_path, "unknown field".into()));
            }
            None => {}
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

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["name"],
            "additionalProperties": false,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 8},
                "count": {"type": "integer", "minimum": 1, "maximum": 10},
                "mode": {"enum": ["fast", "safe"]},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}
            }
        })
    }

    fn err(value: Value) -> (String, String) {
        check_input(&schema(), &value, "input").unwrap_err()
    }

    #[test]
    fn valid_input_passes() {
        let ok = json!({"name": "bob", "count": 3, "mode": "safe", "tags": ["a"]});
        assert_eq!(check_input(&schema(), &ok, "input"), Ok(()));
    }

    #[test]
    fn each_rule_names_the_offending_field() {
        assert_eq!(err(json!({})).0, "input.name");
        assert_eq!(err(json!("x")).1, "expected object");
        assert_eq!(err(json!({"name": ""})).0, "input.name");
        assert_eq!(err(json!({"name": "a", "count": 1.5})).0, "input.count");
        assert_eq!(err(json!({"name": "a", "count": 11})).1, "out of range");
        assert_eq!(err(json!({"name": "a", "mode": "slow"})).0, "input.mode");
        assert_eq!(
            err(json!({"name": "a", "tags": ["x", 1]})).0,
            "input.tags[1]"
        );
        assert_eq!(
            err(json!({"name": "a", "tags": ["x", "y", "z"]})).0,
            "input.tags"
        );
        assert_eq!(
            err(json!({"name": "a", "extra": 1})),
            ("input.extra".into(), "unknown field".into())
        );
    }
}
