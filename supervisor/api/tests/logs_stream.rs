//! `GET /ws/logs/<id>` against a real server and a fake container: a real Unix socket at
//! the package's `service.sock` answering `logs` like `hearth-container` (a ring of
//! numbered lines), and the package's status written into the store as the supervisor
//! would. Checks the tail, following new lines, a restarted container (numbering starts
//! again), a stopped service, uninstall (close 1000) and the refusals before the upgrade.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[path = "integration/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestServer, Ws, local_ws_at as local_ws, ws_connect as connect};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The fake container's lines: (seq, daemon, line).
#[derive(Default)]
struct Ring {
    lines: Vec<(u64, String, String)>,
    next: u64,
}

impl Ring {
    fn push(&mut self, daemon: &str, line: &str) {
        self.next += 1;
        self.lines.push((self.next, daemon.into(), line.into()));
    }

    /// Like `hearth-container`'s `logs`: after the cursor, else the last `limit`.
    fn read(&self, params: &Value) -> Value {
        let limit = usize::try_from(params["limit"].as_u64().unwrap_or(100)).unwrap();
        let daemon = params["daemon"].as_str();
        let matching = self
            .lines
            .iter()
            .filter(|(_, d, _)| daemon.is_none_or(|x| x == d));
        let picked: Vec<&(u64, String, String)> = match params["cursor"].as_u64() {
            Some(c) => matching.filter(|(s, _, _)| *s > c).take(limit).collect(),
            None => {
                let all: Vec<_> = matching.collect();
                all[all.len().saturating_sub(limit)..].to_vec()
            }
        };
        let next = picked
            .last()
            .map(|(s, _, _)| *s)
            .or(params["cursor"].as_u64())
            .unwrap_or(self.next);
        let entries: Vec<Value> = picked
            .iter()
            .map(|(s, d, l)| json!({"seq": s, "time": 1, "daemon": d, "stream": "stdout", "line": l}))
            .collect();
        json!({"entries": entries, "nextCursor": next})
    }
}

/// Serves `service.sock` of package `id` under the server's data dir.
fn fake_container(s: &TestServer, id: &str, ring: Arc<Mutex<Ring>>) {
    let dir = s.data_path(&format!("{}/{id}/rpc", hearth_layout::PACKAGE_DATA_DIR));
    std::fs::create_dir_all(&dir).unwrap();
    let listener = UnixListener::bind(dir.join("service.sock")).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let ring = Arc::clone(&ring);
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let req: Value = serde_json::from_str(&line).unwrap();
                    assert_eq!(req["method"], "logs", "{req}");
                    let result = ring.lock().unwrap().read(&req["params"]);
                    let resp = json!({"jsonrpc": "2.0", "id": req["id"], "result": result});
                    w.write_all(format!("{resp}\n").as_bytes()).await.unwrap();
                }
            });
        }
    });
}

/// Installs package `id` (as `package.install` does) and records it running.
async fn install_running(s: &TestServer, id: &str) {
    let spec = json!({"daemons": [
        {"id": "web", "image": "main", "command": ["httpd"]},
        {"id": "worker", "image": "main", "command": ["work"]},
    ]});
    common::install_package(s, id, &spec).await;
    set_status(s, id, "running", 100);
}

fn set_status(s: &TestServer, id: &str, state: &str, started_at: u64) {
    let (id, state) = (id.to_owned(), state.to_owned());
    s.store
        .mutate(move |d| {
            let st = &mut d["public"]["packageData"][&id]["statusInfo"];
            st["state"] = state.into();
            st["desired"] = "running".into();
            st["startedAt"] = started_at.into();
            Ok::<_, ()>(())
        })
        .unwrap();
}

/// The next text frame as JSON, or `Err(close code)`.
async fn next(ws: &mut Ws) -> Result<Value, Option<CloseCode>> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s");
        match msg {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Close(c))) => return Err(c.map(|c| c.code)),
            None | Some(Err(_)) => return Err(None),
            Some(Ok(_)) => {}
        }
    }
}

async fn next_lines(ws: &mut Ws, n: usize) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let v = next(ws).await.unwrap();
        if v.get("event").is_none() {
            out.push((
                v["seq"].as_u64().unwrap(),
                v["line"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

fn status_of(r: &Result<Ws, tokio_tungstenite::tungstenite::Error>) -> u16 {
    match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => 101,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_then_new_lines_then_a_new_container_then_stop_and_uninstall() {
    let s = TestServer::set_up().await;
    install_running(&s, "chatty").await;
    let ring = Arc::new(Mutex::new(Ring::default()));
    for i in 1..=3 {
        ring.lock().unwrap().push("web", &format!("old {i}"));
    }
    fake_container(&s, "chatty", Arc::clone(&ring));

    let mut ws = local_ws(&s, "/ws/logs/chatty?tail=2").await;
    assert_eq!(
        next(&mut ws).await.unwrap(),
        json!({"event": "state", "state": "running"})
    );
    assert_eq!(
        next_lines(&mut ws, 2).await,
        [(2, "old 2".into()), (3, "old 3".into())]
    );

    // New lines arrive in order, each once, across pages of the poll.
    for i in 0..1500 {
        ring.lock().unwrap().push("web", &format!("new {i}"));
    }
    let got = next_lines(&mut ws, 1500).await;
    assert_eq!(got.first().unwrap(), &(4, "new 0".into()));
    assert_eq!(got.last().unwrap(), &(1503, "new 1499".into()));
    assert!(
        got.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "gap or repeat"
    );

    // The container is restarted: its numbering starts again at 1; the stream follows
    // the new one from its first line.
    *ring.lock().unwrap() = Ring::default();
    ring.lock().unwrap().push("web", "fresh start");
    set_status(&s, "chatty", "running", 200);
    assert_eq!(next_lines(&mut ws, 1).await, [(1, "fresh start".into())]);

    set_status(&s, "chatty", "stopped", 200);
    assert_eq!(
        next(&mut ws).await.unwrap(),
        json!({"event": "state", "state": "stopped"})
    );

    s.store
        .mutate(|d| {
            d["public"]["packageData"]
                .as_object_mut()
                .unwrap()
                .remove("chatty");
            Ok::<_, ()>(())
        })
        .unwrap();
    assert_eq!(next(&mut ws).await, Err(Some(CloseCode::Normal)));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_daemon_only_new_lines_and_shutdown_closes_with_1001() {
    let s = TestServer::set_up().await;
    install_running(&s, "chatty").await;
    let ring = Arc::new(Mutex::new(Ring::default()));
    ring.lock().unwrap().push("web", "before");
    fake_container(&s, "chatty", Arc::clone(&ring));

    let mut ws = local_ws(&s, "/ws/logs/chatty?daemon=worker&tail=0").await;
    assert_eq!(next(&mut ws).await.unwrap()["state"], "running");
    ring.lock().unwrap().push("web", "not for us");
    ring.lock().unwrap().push("worker", "for us");
    let v = next(&mut ws).await.unwrap();
    assert_eq!(
        (v["daemon"].as_str(), v["line"].as_str()),
        (Some("worker"), Some("for us"))
    );

    s.cancel.cancel();
    assert_eq!(next(&mut ws).await, Err(Some(CloseCode::Away)));
}

#[tokio::test]
async fn refusals_happen_before_the_upgrade() {
    let s = TestServer::set_up().await;
    install_running(&s, "chatty").await;
    let local = s.local.clone();

    // Anonymous.
    assert_eq!(status_of(&connect(&s, "/ws/logs/chatty", &[]).await), 401);
    // A session cookie from a foreign page.
    let token = s.login().await;
    let foreign = connect(
        &s,
        "/ws/logs/chatty",
        &[
            ("cookie", &common::cookie(&token)),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(status_of(&foreign), 403);
    // The same session from no foreign page works.
    let own = connect(
        &s,
        "/ws/logs/chatty",
        &[("cookie", &common::cookie(&token))],
    )
    .await;
    assert_eq!(status_of(&own), 101);
    // Unknown package, bad ids, bad query.
    let auth = [("x-hearth-local-auth", local.as_str())];
    assert_eq!(status_of(&connect(&s, "/ws/logs/nope", &auth).await), 404);
    assert_eq!(status_of(&connect(&s, "/ws/logs/", &auth).await), 404);
    assert_eq!(status_of(&connect(&s, "/ws/logs/a%2Fb", &auth).await), 404);
    assert_eq!(
        status_of(&connect(&s, "/ws/logs/chatty?tail=5000", &auth).await),
        400
    );
    // Not a WebSocket request.
    let plain = common::http(s.addr, "GET", "/ws/logs/chatty", &auth, b"").await;
    assert_eq!(plain.status, 400);
}

#[tokio::test]
async fn a_stopped_service_is_announced_and_the_stream_waits() {
    let s = TestServer::set_up().await;
    install_running(&s, "chatty").await;
    set_status(&s, "chatty", "stopped", 100);
    let mut ws = local_ws(&s, "/ws/logs/chatty").await;
    assert_eq!(
        next(&mut ws).await.unwrap(),
        json!({"event": "state", "state": "stopped"})
    );
    // It runs again, but its container cannot be reached: said once, not per poll.
    set_status(&s, "chatty", "running", 300);
    let v = next(&mut ws).await.unwrap();
    assert_eq!(v["event"], "error", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("service.sock"),
        "{v}"
    );
    let ring = Arc::new(Mutex::new(Ring::default()));
    ring.lock().unwrap().push("web", "up at last");
    fake_container(&s, "chatty", ring);
    let v = next(&mut ws).await.unwrap();
    assert_eq!(v, json!({"event": "state", "state": "running"}));
    assert_eq!(next_lines(&mut ws, 1).await, [(1, "up at last".into())]);
}
