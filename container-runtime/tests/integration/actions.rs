//! `action.run` against real commands.

use serde_json::{Value, json};

use super::harness::Container;

fn spec() -> Value {
    json!({
        "daemons": [{"id": "idle", "command": ["sleep", "1000"]}],
        "actions": [
            {"id": "greet", "name": "Greet", "result": "json",
             "command": ["sh", "-c", "read -r line; printf '{\"got\":%s,\"id\":\"%s\"}' \"$line\" \"$HEARTH_ACTION_ID\""],
             "input": {"type": "object", "required": ["name"], "additionalProperties": false,
                       "properties": {"name": {"type": "string", "minLength": 1}}}},
            {"id": "fail", "name": "Fail", "command": ["sh", "-c", "echo oops >&2; exit 3"]},
            {"id": "slow", "name": "Slow", "command": ["sleep", "10"], "timeout": "300ms"},
            {"id": "stopped-only", "name": "S", "command": ["true"], "allowedStatuses": "only-stopped"}
        ]
    })
}

#[test]
fn actions_get_their_input_on_stdin_and_return_parsed_json() {
    let c = Container::start(spec(), &[]);
    let mut conn = c.connect();
    let r = conn.ok(
        "action.run",
        json!({"id": "greet", "input": {"name": "bob"}}),
    );
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["result"], json!({"got": {"name": "bob"}, "id": "greet"}));
}

#[test]
fn action_errors_are_json_rpc_errors_or_failed_results() {
    let c = Container::start(spec(), &[]);
    let mut conn = c.connect();
    let bad = conn.call("action.run", json!({"id": "greet", "input": {"name": ""}}));
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    assert_eq!(bad["error"]["data"]["path"], "input.name");
    let extra = conn.call(
        "action.run",
        json!({"id": "greet", "input": {"name": "x", "rm": true}}),
    );
    assert_eq!(extra["error"]["data"]["path"], "input.rm", "{extra}");
    let missing = conn.call("action.run", json!({"id": "nope"}));
    assert_eq!(missing["error"]["code"], 6, "{missing}");
    let failed = conn.ok("action.run", json!({"id": "fail"}));
    assert_eq!(failed["success"], false);
    assert_eq!(failed["exitCode"], 3);
    assert_eq!(failed["stderr"], "oops\n");
    let slow = conn.call("action.run", json!({"id": "slow"}));
    assert_eq!(slow["error"]["code"], 71, "{slow}");
    let refused = conn.call("action.run", json!({"id": "stopped-only"}));
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped")
    );
}
