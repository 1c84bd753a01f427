//! Bad input gets a clear error and changes nothing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// Sends `body` as the local (authenticated) caller; asserts the state did not change.
async fn rejected(s: &TestServer, body: &str) -> (u16, Value) {
    let before = s.revision().await;
    let local = s.local.clone();
    let r = s.post(&[("x-hearth-local-auth", &local)], body).await;
    assert_eq!(
        s.revision().await,
        before,
        "bad input changed the state: {body}"
    );
    let status = r.status;
    (status, r.json())
}

#[tokio::test]
async fn malformed_json_is_a_parse_error() {
    let s = TestServer::set_up().await;
    for body in [
        "{",
        "{\"method\": }",
        "",
        "nul",
        "{\"method\":\"server.echo\"}}",
    ] {
        let (status, r) = rejected(&s, body).await;
        assert_eq!(status, 200);
        assert_eq!(error_code(&r), -32700, "{body:?} -> {r}");
        assert_eq!(r["id"], Value::Null);
    }
}

#[tokio::test]
async fn deep_nesting_is_refused_before_parsing() {
    let s = TestServer::set_up().await;
    let deep = format!(
        "{{\"method\":\"db.put.ui\",\"params\":{{\"pointer\":\"/x\",\"value\":{}1{}}}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let (_, r) = rejected(&s, &deep).await;
    assert_eq!(error_code(&r), -32700);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deeper than 64"),
        "{r}"
    );
    // Brackets inside strings do not count.
    let ok = json!({"method": "server.echo", "params": {"message": "[".repeat(500)}}).to_string();
    let (_, r) = rejected(&s, &ok).await;
    assert_eq!(r["result"].as_str().unwrap().len(), 500);
}

#[tokio::test]
async fn structurally_invalid_requests() {
    let s = TestServer::set_up().await;
    let cases = [
        ("[]", "empty batch"),
        ("42", "not a JSON-RPC request"),
        ("{\"params\":{}}", "missing field `method`"),
        (
            "{\"method\":\"server.echo\",\"id\":{\"a\":1},\"params\":{\"message\":\"x\"}}",
            "id must be",
        ),
        (
            "{\"jsonrpc\":\"1.0\",\"method\":\"server.echo\",\"params\":{\"message\":\"x\"}}",
            "2.0",
        ),
    ];
    for (body, expect) in cases {
        let (_, r) = rejected(&s, body).await;
        let r = if r.is_array() { r[0].clone() } else { r };
        assert_eq!(error_code(&r), -32600, "{body} -> {r}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains(expect),
            "{body} -> {r}"
        );
    }
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"method": "server.echo", "params": {"message": "x"}}))
        .collect();
    let (_, r) = rejected(&s, &Value::Array(many).to_string()).await;
    assert_eq!(error_code(&r), -32600);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit of 100")
    );
}

#[tokio::test]
async fn wrong_params_name_the_field() {
    let s = TestServer::set_up().await;
    let cases = [
        (
            json!({"method": "server.echo", "params": {"message": 5}}),
            "message",
        ),
        (json!({"method": "server.echo", "params": {}}), ""),
        (json!({"method": "server.echo", "params": ["x"]}), ""),
        (
            json!({"method": "notification.mark-seen", "params": {"ids": [1, "two"]}}),
            "ids[1]",
        ),
        (
            json!({"method": "server.echo", "params": {"message": "x", "extra": 1}}),
            "extra",
        ),
        (
            json!({"method": "db.put.ui", "params": {"pointer": 3, "value": 1}}),
            "pointer",
        ),
    ];
    for (body, path) in cases {
        let (_, r) = rejected(&s, &body.to_string()).await;
        assert_eq!(error_code(&r), -32602, "{body} -> {r}");
        assert_eq!(r["error"]["data"]["path"], path, "{body} -> {r}");
    }
    let (_, r) = rejected(
        &s,
        &json!({"method": "server.echo", "params": {"message": "x", "extra": 1}}).to_string(),
    )
    .await;
    assert!(
        r["error"]["message"].as_str().unwrap().contains("extra"),
        "{r}"
    );
}

#[tokio::test]
async fn unknown_methods_are_named() {
    let s = TestServer::set_up().await;
    let (_, r) = rejected(
        &s,
        &json!({"id": 3, "method": "server.reboot-everything"}).to_string(),
    )
    .await;
    assert_eq!(error_code(&r), -32601);
    assert_eq!(r["id"], 3);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.reboot-everything")
    );
}

#[tokio::test]
async fn invalid_pointers_and_writes_outside_ui_are_refused() {
    let s = TestServer::set_up().await;
    for p in ["no-slash", "/a~2b", "/a~"] {
        let (_, r) = rejected(
            &s,
            &json!({"method": "db.dump", "params": {"pointer": p}}).to_string(),
        )
        .await;
        assert_eq!(error_code(&r), -32602, "{p}: {r}");
        let (_, r) = rejected(
            &s,
            &json!({"method": "db.put.ui", "params": {"pointer": p, "value": 1}}).to_string(),
        )
        .await;
        assert_eq!(error_code(&r), -32602, "{p}: {r}");
    }
    for p in ["/..", "/../private/passwordHash", "/./x"] {
        let (_, r) = rejected(
            &s,
            &json!({"method": "db.put.ui", "params": {"pointer": p, "value": "pwned"}}).to_string(),
        )
        .await;
        assert_eq!(error_code(&r), -32602, "{p}: {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("cannot leave"),
            "{r}"
        );
    }
    // /ui itself must stay an object; writing through a scalar is refused.
    let (_, r) = rejected(
        &s,
        &json!({"method": "db.put.ui", "params": {"pointer": "", "value": 5}}).to_string(),
    )
    .await;
    assert_eq!(error_code(&r), -32602);
    s.local_call("db.put.ui", json!({"pointer": "/n", "value": 1}))
        .await;
    let (_, r) = rejected(
        &s,
        &json!({"method": "db.put.ui", "params": {"pointer": "/n/deeper", "value": 1}}).to_string(),
    )
    .await;
    assert_eq!(error_code(&r), -32602);
    // A pointer that looks absolute is still relative to /ui: the private half is untouched.
    let hash_before = s.store.get("/private/passwordHash").unwrap();
    let r = s
        .local_call(
            "db.put.ui",
            json!({"pointer": "/private/passwordHash", "value": "x"}),
        )
        .await;
    assert!(r.get("result").is_some());
    assert_eq!(s.store.get("/private/passwordHash").unwrap(), hash_before);
    assert_eq!(s.store.get("/public/ui/private/passwordHash").unwrap(), "x");
    s.login().await;
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let s = TestServer::start_with(Options {
        config: Some(Box::new(|c| c.body_limit = 4096)),
        ..Options::default()
    })
    .await;
    s.setup().await;
    let big =
        json!({"method": "db.put.ui", "params": {"pointer": "/big", "value": "x".repeat(10_000)}})
            .to_string();
    let before = s.revision().await;
    let local = s.local.clone();
    let r = s.post(&[("x-hearth-local-auth", &local)], &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(error_code(&r.json()), -32600);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4096 bytes")
    );
    // Chunked bodies without a Content-Length are cut at the limit too.
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /rpc/v1 HTTP/1.1\r\nhost: {}\r\nconnection: close\r\nx-hearth-local-auth: {local}\r\ntransfer-encoding: chunked\r\n\r\n",
        s.addr
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..3 {
        let _ = conn
            .write_all(format!("{:x}\r\n{}\r\n", 2000, "y".repeat(2000)).as_bytes())
            .await;
    }
    let _ = conn.write_all(b"0\r\n\r\n").await;
    let mut raw = Vec::new();
    let _ = conn.read_to_end(&mut raw).await;
    assert_eq!(parse_response(&raw).status, 413);
    assert_eq!(s.revision().await, before);
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let s = TestServer::start_with(Options {
        config: Some(Box::new(|c| {
            c.header_timeout = Duration::from_millis(500);
            c.body_timeout = Duration::from_millis(500);
        })),
        ..Options::default()
    })
    .await;
    // Headers never completed: the connection is closed.
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    conn.write_all(b"POST /rpc/v1 HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the server kept a slow client's connection open"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // Body promised but never sent: 408 after the body timeout.
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    conn.write_all(
        b"POST /rpc/v1 HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\n{\"meth",
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let r = parse_response(&raw);
    assert_eq!(r.status, 408);
    assert_eq!(error_code(&r.json()), 71);
}
