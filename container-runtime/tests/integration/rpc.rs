//! Malformed input on the control socket.

use serde_json::json;

use super::harness::Container;

#[test]
fn malformed_lines_get_errors_and_the_connection_survives() {
    let spec = json!({"daemons": [{"id": "idle", "command": ["sleep", "1000"]}]});
    let c = Container::start(spec, &[]);
    let mut conn = c.connect();
    conn.send_raw(b"this is not json\n");
    assert_eq!(conn.read_response()["error"]["code"], -32700);
    conn.send_raw(b"{\"id\": 7}\n");
    let r = conn.read_response();
    assert_eq!(
        (r["id"].clone(), r["error"]["code"].clone()),
        (json!(7), json!(-32600))
    );
    conn.send_raw(b"\n   \n");
    let r = conn.call("no.such", json!({}));
    assert_eq!(r["error"]["code"], -32601);
    let r = conn.call("logs", json!({"bogus": 1}));
    assert_eq!(r["error"]["code"], -32602);
    let r = conn.call("status", json!([1, 2]));
    assert_eq!(r["error"]["code"], -32602);
    let mut huge = vec![b'x'; 2 * 1024 * 1024];
    huge.push(b'\n');
    conn.send_raw(&huge);
    let r = conn.read_response();
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("longer than")
    );
    // Still answering, on this connection and on a new one.
    assert_eq!(conn.ok("status", json!({}))["desired"], "running");
    assert_eq!(c.connect().ok("status", json!(null))["desired"], "running");
}

#[test]
fn logs_page_with_a_cursor() {
    let spec = json!({"daemons": [
        {"id": "talk", "command": ["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; exec sleep 1000"]}
    ]});
    let c = Container::start(spec, &[]);
    let mut conn = c.connect();
    super::harness::wait_for(super::harness::T, || {
        conn.log_lines("talk").iter().any(|l| l["line"] == "line5")
    });
    let first = conn.ok("logs", json!({"daemon": "talk", "limit": 2, "cursor": 0}));
    let entries = first["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let next = first["nextCursor"].clone();
    assert_eq!(next, entries[1]["seq"]);
    let rest = conn.ok(
        "logs",
        json!({"daemon": "talk", "limit": 100, "cursor": next}),
    );
    let lines: Vec<_> = rest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["stream"] == "stdout")
        .map(|e| e["line"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        lines.ends_with(&["line4".to_owned(), "line5".to_owned()]) || lines.len() >= 3,
        "{lines:?}"
    );
    let tail = conn.ok("logs", json!({"limit": 1}));
    assert_eq!(tail["entries"].as_array().unwrap().len(), 1);
}
