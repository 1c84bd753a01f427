//! The `hearth` client commands on the wire, against a scripted fake server.
//!
//! The real `hearthd` is exercised by `ci/systest/cli-client.sh`; this binary checks
//! what the CLI puts on the wire (method, params, which credential in which header,
//! no `Origin`) and how it reports what comes back, cases a real server cannot easily
//! be made to produce (a proxy's HTML error page, a session that just expired).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;

use serde_json::{Value, json};

/// One request as the fake server saw it.
#[derive(Debug)]
struct Seen {
    request_line: String,
    /// Header names lowercased.
    headers: Vec<(String, String)>,
    body: Value,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A canned HTTP response.
struct Canned {
    status: &'static str,
    extra_headers: Vec<String>,
    content_type: &'static str,
    body: String,
}

fn rpc_result(result: Value) -> Canned {
    Canned {
        status: "200 OK",
        extra_headers: Vec::new(),
        content_type: "application/json",
        body: json!({"jsonrpc": "2.0", "id": 1, "result": result}).to_string(),
    }
}

fn rpc_error(error: Value) -> Canned {
    Canned {
        status: "200 OK",
        extra_headers: Vec::new(),
        content_type: "application/json",
        body: json!({"jsonrpc": "2.0", "id": 1, "error": error}).to_string(),
    }
}

/// Serves `responses` in order, one connection each; returns the URL and the requests.
fn fake_server(responses: Vec<Canned>) -> (String, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for canned in responses {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (k, v) = line.split_once(':').unwrap();
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let mut stream = reader.into_inner();
            let mut response = format!(
                "HTTP/1.1 {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n",
                canned.status,
                canned.content_type,
                canned.body.len()
            );
            for h in &canned.extra_headers {
                response.push_str(h);
                response.push_str("\r\n");
            }
            response.push_str("\r\n");
            response.push_str(&canned.body);
            stream.write_all(response.as_bytes()).unwrap();
            let _ = tx.send(Seen {
                request_line: request_line.trim_end().to_owned(),
                headers,
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            });
        }
    });
    (url, rx)
}

/// Runs `hearth` with isolated config and data dirs (both under `home`).
fn hearth(home: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .env_remove("HEARTH_URL")
        .env_remove("HEARTH_TOKEN")
        .env("HEARTH_DATA_DIR", home.join("no-data-dir"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn rpc_posts_json_rpc_2_without_origin_and_prints_pretty_json() {
    let home = tempfile::tempdir().unwrap();
    let (url, seen) = fake_server(vec![rpc_result(json!({"b": 2}))]);
    let out = hearth(
        home.path(),
        &["--url", &url, "rpc", "x.y", r#"{"a": 1}"#],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "{\n  \"b\": 2\n}\n");

    let req = seen.recv().unwrap();
    assert_eq!(req.request_line, "POST /rpc/v1 HTTP/1.1");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.body["jsonrpc"], "2.0");
    assert_eq!(req.body["method"], "x.y");
    assert_eq!(req.body["params"], json!({"a": 1}));
    assert!(req.body.get("id").is_some());
    // hearthd refuses a foreign Origin; the CLI sends none at all.
    assert_eq!(req.header("origin"), None);
    assert_eq!(req.header("cookie"), None);
    assert_eq!(req.header("authorization"), None);
}

#[test]
fn json_rpc_error_is_one_line_with_the_code_and_exit_status_1() {
    let home = tempfile::tempdir().unwrap();
    let (url, _seen) = fake_server(vec![rpc_error(json!({
        "code": 37,
        "message": "too many login attempts;\nretry after 8 s",
        "data": {"kind": "rateLimited", "retryable": true, "retryAfter": 8}
    }))]);
    let out = hearth(
        home.path(),
        &["--url", &url, "server", "echo", "--message", "m"],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "error: server.echo: too many login attempts; retry after 8 s (code 37)\n"
    );
}

#[test]
fn a_proxy_error_page_is_reported_with_its_status() {
    let home = tempfile::tempdir().unwrap();
    let (url, _seen) = fake_server(vec![Canned {
        status: "502 Bad Gateway",
        extra_headers: Vec::new(),
        content_type: "text/html",
        body: "<html>Bad gateway</html>".into(),
    }]);
    let out = hearth(home.path(), &["--url", &url, "rpc", "server.echo"], "");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("HTTP 502"), "{err}");
    assert!(err.contains("not a JSON-RPC response"), "{err}");
    assert!(err.contains("Bad gateway"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn login_saves_the_session_and_later_calls_send_it() {
    let home = tempfile::tempdir().unwrap();
    let mut login = rpc_result(json!({"sessionId": "sid", "expiresAtMs": u64::MAX / 2}));
    login
        .extra_headers
        .push("set-cookie: session=tok123; Path=/; HttpOnly; SameSite=Strict".into());
    let (url, seen) = fake_server(vec![
        login,
        rpc_result(json!({"hostname": "box"})),
        rpc_result(json!("hi")),
    ]);

    let out = hearth(
        home.path(),
        &["--url", &url, "auth", "login", "--password-stdin"],
        "pass word\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let req = seen.recv().unwrap();
    assert_eq!(req.body["method"], "auth.login");
    assert_eq!(req.body["params"], json!({"password": "pass word"}));
    assert_eq!(req.header("cookie"), None);

    let file = home.path().join("config/hearth/sessions.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(std::fs::read_to_string(&file).unwrap().contains("tok123"));

    let out = hearth(home.path(), &["--url", &url, "server", "info"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hostname: box\n");
    let req = seen.recv().unwrap();
    assert_eq!(req.body["method"], "server.info");
    assert_eq!(req.header("cookie"), Some("session=tok123"));

    // Public methods go out without any credential.
    let out = hearth(
        home.path(),
        &["--url", &url, "server", "echo", "--message", "hi"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(seen.recv().unwrap().header("cookie"), None);
}

#[test]
fn without_a_session_the_local_cookie_is_sent_in_its_header() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    std::fs::create_dir_all(data.join("run")).unwrap();
    std::fs::write(data.join("run/local.cookie"), "s3cret\n").unwrap();
    let (url, seen) = fake_server(vec![rpc_result(json!({"ok": true}))]);
    let out = hearth(
        home.path(),
        &[
            "--url",
            &url,
            "--data-dir",
            data.to_str().unwrap(),
            "server",
            "info",
            "--json",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "{\n  \"ok\": true\n}\n");
    let req = seen.recv().unwrap();
    assert_eq!(req.header("x-hearth-local-auth"), Some("s3cret"));
    assert_eq!(req.header("cookie"), None);
}

#[test]
fn an_expired_session_is_forgotten_and_the_local_cookie_takes_over() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    std::fs::create_dir_all(data.join("run")).unwrap();
    std::fs::write(data.join("run/local.cookie"), "s3cret").unwrap();
    let mut login = rpc_result(json!({"sessionId": "sid", "expiresAtMs": u64::MAX / 2}));
    login.extra_headers.push("set-cookie: session=old".into());
    let (url, seen) = fake_server(vec![
        login,
        rpc_error(json!({
            "code": 34,
            "message": "your session has expired or was logged out; log in again",
            "data": {"kind": "unauthorized", "retryable": false, "reason": "expired"}
        })),
        rpc_result(json!("done")),
    ]);
    let out = hearth(
        home.path(),
        &["--url", &url, "auth", "login", "--password-stdin"],
        "pw",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    seen.recv().unwrap();

    let data_arg = data.to_str().unwrap();
    let out = hearth(
        home.path(),
        &["--url", &url, "--data-dir", data_arg, "db", "dump"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "done\n");
    assert_eq!(seen.recv().unwrap().header("cookie"), Some("session=old"));
    let retry = seen.recv().unwrap();
    assert_eq!(retry.header("cookie"), None);
    assert_eq!(retry.header("x-hearth-local-auth"), Some("s3cret"));
    let saved = std::fs::read_to_string(home.path().join("config/hearth/sessions.json")).unwrap();
    assert!(!saved.contains(&url), "{saved}");
}

#[test]
fn unauthorized_without_credentials_says_how_to_log_in() {
    let home = tempfile::tempdir().unwrap();
    let (url, _seen) = fake_server(vec![rpc_error(json!({
        "code": 34,
        "message": "this method requires authentication",
        "data": {"kind": "unauthorized", "retryable": false, "reason": "missing"}
    }))]);
    let out = hearth(home.path(), &["--url", &url, "server", "info"], "");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("(code 34)"), "{err}");
    assert!(
        err.contains(&format!("hearth --url {url} auth login")),
        "{err}"
    );
}
