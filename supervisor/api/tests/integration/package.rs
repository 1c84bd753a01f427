//! `package.*` over JSON-RPC: trust, install from a path, refusals with their reasons.

use hearth_s9pk::SigningKey;
use serde_json::{Value, json};

use crate::common::*;

fn hello_spec() -> Value {
    json!({"daemons": [{"id": "web", "image": "main", "command": ["httpd"]}]})
}

#[tokio::test]
async fn trust_then_install_records_the_package_and_refusals_say_why() {
    let s = TestServer::set_up().await;
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let path = write_package(&s.import_dir(), &key, "hello", &hello_spec());

    let r = s.local_call("package.install", json!({"path": path})).await;
    assert_eq!(error_code(&r), -32602, "{r}");
    assert_eq!(r["error"]["data"]["reason"], "untrustedSigner");
    let fingerprint = r["error"]["data"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let nothing = s
        .local_call("db.dump", json!({"pointer": "/packageData/hello"}))
        .await;
    assert_eq!(error_code(&nothing), 6, "nothing recorded: {nothing}");

    let pem = hearth_s9pk::key::verifying_key_to_pem(&key.verifying_key()).unwrap();
    let r = s
        .local_call("package.trust.add", json!({"publicKey": pem, "name": "me"}))
        .await;
    assert_eq!(r["result"]["fingerprint"], fingerprint.as_str());
    let r = s.local_call("package.trust.list", json!({})).await;
    assert_eq!(r["result"].as_array().unwrap().len(), 1);

    let r = s.local_call("package.install", json!({"path": path})).await;
    assert_eq!(r["result"]["id"], "hello", "{r}");
    assert_eq!(r["result"]["signerTrusted"], true);
    let state = s
        .local_call(
            "db.dump",
            json!({"pointer": "/packageData/hello/stateInfo/state"}),
        )
        .await;
    assert_eq!(state["result"]["value"], "installed");
    let list = s.local_call("package.list", json!({})).await;
    assert_eq!(list["result"][0]["desired"], "stopped");

    let again = s.local_call("package.install", json!({"path": path})).await;
    assert_eq!(again["error"]["data"]["reason"], "alreadyInstalled");
    // A name relative to the import directory is the same file.
    let again = s
        .local_call("package.install", json!({"path": "hello.s9pk"}))
        .await;
    assert_eq!(
        again["error"]["data"]["reason"], "alreadyInstalled",
        "{again}"
    );
    // Outside the import directory, missing or not: one generic refusal, nothing of
    // the file in it.
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    std::fs::write(&secret, "top secret bytes").unwrap();
    let link = s.import_dir().join("link.s9pk");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let mut seen = Vec::new();
    for path in [
        secret.display().to_string(),
        "/nonexistent/x.s9pk".to_owned(),
        link.display().to_string(),
        "link.s9pk".to_owned(),
        "../db/hearth.redb".to_owned(),
        s.import_dir().display().to_string(),
    ] {
        let r = s.local_call("package.install", json!({"path": path})).await;
        assert_eq!(r["error"]["data"]["reason"], "notImportable", "{path}: {r}");
        assert!(!r.to_string().contains("top secret"), "{r}");
        seen.push(r["error"]["message"].clone());
    }
    seen.dedup();
    assert_eq!(seen.len(), 1, "one message for every refusal: {seen:?}");
    let r = s.local_call("package.start", json!({"id": "nope"})).await;
    assert_eq!(error_code(&r), 6);
    let r = s.local_call("package.start", json!({"id": "hello"})).await;
    assert!(r.get("revision").and_then(Value::as_u64).is_some(), "{r}");
}

#[tokio::test]
async fn upload_streams_the_body_installs_it_and_keeps_no_copy() {
    let s = TestServer::start_with(Options {
        config: Some(Box::new(|c| c.upload_limit = 64 * 1024)),
        ..Options::default()
    })
    .await;
    s.setup().await;
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_bytes(&[5u8; 32]);
    let bytes = std::fs::read(write_package(dir.path(), &key, "hello", &hello_spec())).unwrap();
    let path = hearth_layout::PACKAGE_UPLOAD_PATH;
    let local = s.local.clone();
    let auth = [("x-hearth-local-auth", local.as_str())];

    let anon = http(s.addr, "POST", path, &[], &bytes).await;
    assert_eq!(anon.status, 401);

    let r = http(s.addr, "POST", path, &auth, &bytes).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["error"]["data"]["reason"], "untrustedSigner");

    let r = http(
        s.addr,
        "POST",
        &format!("{path}?allowUntrusted=true"),
        &auth,
        &bytes,
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["result"]["id"], "hello", "{v}");
    assert_eq!(v["result"]["signerTrusted"], false);
    assert!(v["revision"].as_u64().is_some());
    let state = s
        .local_call(
            "db.dump",
            json!({"pointer": "/packageData/hello/stateInfo/state"}),
        )
        .await;
    assert_eq!(state["result"]["value"], "installed");

    let big = vec![0u8; 64 * 1024 + 1];
    let r = http(s.addr, "POST", path, &auth, &big).await;
    assert_eq!(r.status, 413);
    // Without a Content-Length (chunked), the bytes received are counted.
    let r = chunked_post(s.addr, path, &local, &big).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    let uploads = s.data_path(hearth_layout::PACKAGE_UPLOAD_DIR);
    assert_eq!(
        std::fs::read_dir(uploads).unwrap().count(),
        0,
        "uploads are deleted"
    );
}

/// A client that sends the whole body before reading (curl without `Expect`, a browser)
/// still gets the refusal: the server reads and discards the rest instead of resetting
/// the connection under the client's writes.
#[tokio::test]
async fn a_refused_upload_is_answered_after_the_client_sent_everything() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(Options {
        config: Some(Box::new(|c| c.upload_limit = 64 * 1024)),
        ..Options::default()
    })
    .await;
    s.setup().await;
    let big = vec![7u8; 16 * 1024 * 1024];
    for (what, auth) in [("over the limit", true), ("anonymous", false)] {
        let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let auth = if auth {
            format!("x-hearth-local-auth: {}\r\n", s.local)
        } else {
            String::new()
        };
        let head = format!(
            "POST {} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
             content-length: {}\r\n{auth}\r\n",
            hearth_layout::PACKAGE_UPLOAD_PATH,
            big.len()
        );
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(&big)
            .await
            .unwrap_or_else(|e| panic!("{what}: the server cut the upload off: {e}"));
        let mut out = Vec::new();
        c.read_to_end(&mut out).await.unwrap();
        let r = parse_response(&out);
        let want = if auth.is_empty() { 401 } else { 413 };
        assert_eq!(r.status, want, "{what}: {r:?}");
        assert!(r.json().get("error").is_some(), "{what}: {r:?}");
    }
}

async fn chunked_post(addr: std::net::SocketAddr, path: &str, local: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
         transfer-encoding: chunked\r\nx-hearth-local-auth: {local}\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(8192) {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if c.write_all(&frame).await.is_err() {
            break; // the server answered and closed early
        }
    }
    let _ = c.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn actions_and_logs_check_input_and_status_before_reaching_the_container() {
    let s = TestServer::set_up().await;
    let spec = json!({
        "daemons": [{"id": "web", "image": "main", "command": ["httpd"]}],
        "actions": [{"id": "sign", "name": "Sign", "image": "main", "command": ["sign"],
                     "input": {"type": "object", "required": ["name"],
                               "properties": {"name": {"type": "string"}}}}],
    });
    install_package(&s, "hello", &spec).await;

    let list = s
        .local_call("package.action.list", json!({"id": "hello"}))
        .await;
    assert_eq!(list["result"][0]["id"], "sign", "{list}");
    assert_eq!(list["result"][0]["allowedStatuses"], "any");

    let bad = s
        .local_call(
            "package.action.run",
            json!({"id": "hello", "actionId": "sign", "input": {"name": 5}}),
        )
        .await;
    assert_eq!(error_code(&bad), -32602, "{bad}");
    assert_eq!(bad["error"]["data"]["reason"], "invalidInput");
    assert_eq!(bad["error"]["data"]["path"], "input.name");

    let stopped = s
        .local_call(
            "package.action.run",
            json!({"id": "hello", "actionId": "sign", "input": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(
        stopped["error"]["data"]["reason"], "notRunning",
        "{stopped}"
    );
    let logs = s.local_call("package.logs", json!({"id": "hello"})).await;
    assert_eq!(logs["error"]["data"]["reason"], "notRunning", "{logs}");

    let unknown = s
        .local_call(
            "package.action.run",
            json!({"id": "hello", "actionId": "nope"}),
        )
        .await;
    assert_eq!(error_code(&unknown), 6, "{unknown}");
    let r = s.local_call("package.logs", json!({"id": "nope"})).await;
    assert_eq!(error_code(&r), 6, "{r}");
}
