//! Fuzzes action input checking: an input is a JSON schema and a JSON value
//! separated by the first NUL byte (no NUL: the whole input is the schema, checked
//! against `null`). `check_action_schema` and `check_action_input` must never panic,
//! hang (patterns are size-limited, `$ref` loops refused) or recurse without bound.
#![no_main]

use hearth_s9pk::spec::{check_action_input, check_action_schema};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (schema, value) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"null"[..]),
    };
    let Ok(schema) = serde_json::from_slice::<Value>(schema) else {
        return;
    };
    let usable = check_action_schema(&schema).is_ok();
    let Ok(value) = serde_json::from_slice::<Value>(value) else {
        return;
    };
    let checked = check_action_input(&schema, &value, "input");
    if !usable {
        // An unusable schema is reported as such, never as a pass.
        let (_, message) = checked.expect_err("unusable schema accepted an input");
        assert!(
            message.starts_with("the action's input schema is unusable"),
            "{message}"
        );
    }
});
