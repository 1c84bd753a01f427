//! Actions: check the input, run the command with the input as JSON on stdin, report.
//!
//! # Design
//! The input is checked against the action's JSON Schema with
//! [`hearth_s9pk::spec::check_action_input`] (the JSON Schema keywords forms use,
//! references never fetched), the same check `hearthd` makes before it calls us, so a
//! caller that bypasses hearthd is checked the same way.

use hearth_rpc::{ErrorCode, RpcError};
use hearth_s9pk::spec::{ActionResult, ActionSpec, check_action_input as check_input};
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
        assert_eq!(
            err(json!({"name": "a", "count": 11})).1,
            "must be at most 10"
        );
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
