//! The status mapping and the monitor loop, with a fake connector and a real store.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::json;

use super::*;

/// A status report as `hearth-container` sends it.
fn wire(state: &str, health: Value) -> Value {
    json!({
        "desired": "running",
        "allReady": state == "running",
        "allDown": false,
        "daemons": [{
            "id": "httpd", "state": state, "pid": 12, "ready": state == "running",
            "startedAt": 1_000, "restarts": 2, "lastExit": "exit status 1",
            "lastError": null, "readinessFailure": null, "retryInMs": null,
            "health": health,
        }],
    })
}

type Script = VecDeque<Result<Option<Value>, ClientError>>;

/// Hands out scripted connections; fails to connect once they are used up.
struct FakeConnector {
    connections: Mutex<VecDeque<Script>>,
}

struct FakeFeed(Script);

impl StatusFeed for FakeFeed {
    async fn next_status(&mut self) -> Result<Option<Value>, ClientError> {
        self.0.pop_front().unwrap_or(Ok(None))
    }
}

impl Connector for FakeConnector {
    type Feed = FakeFeed;

    async fn connect(&self, rpc_dir: &Path) -> Result<FakeFeed, ClientError> {
        match self.connections.lock().unwrap().pop_front() {
            Some(script) => Ok(FakeFeed(script)),
            None => Err(ClientError::Closed {
                path: rpc_dir.to_owned(),
            }),
        }
    }
}

fn store_with_package() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::test_support::store(dir.path());
    let mut e = crate::test_support::hello(crate::status::RunState::Running);
    e.status_info.observed.last_error = Some("old".into());
    e.status_info.observed.restart_count = 1;
    crate::test_support::put(&store, "hello", &e);
    (dir, store)
}

fn status_info(store: &Store) -> Value {
    store.get(&status_pointer("hello")).unwrap()
}

#[test]
fn health_results_map_to_statusinfo_with_message_only_on_failure() {
    let health = json!([
        {"id": "http", "name": "Page", "result": "success"},
        {"id": "db", "name": "DB", "result": "failure", "message": "refused"},
        {"id": "w", "name": "W", "result": "waiting"},
    ]);
    let keys = report(&wire("running", health), 77).unwrap();
    assert_eq!(
        keys["health"],
        json!({
            "http": {"daemon": "httpd", "name": "Page", "result": "success"},
            "db": {"daemon": "httpd", "name": "DB", "result": "failure", "message": "refused"},
            "w": {"daemon": "httpd", "name": "W", "result": "waiting"},
        })
    );
    let d = &keys["daemons"]["httpd"];
    assert_eq!(d["state"], "running");
    assert_eq!(d["restarts"], 2);
    assert_eq!(d["startedAt"], 1_000);
    assert_eq!(d["crashLoop"], false);
    assert_eq!(d["health"]["db"]["message"], "refused");
    assert_eq!(keys["crashLoop"], false);
    assert_eq!(keys["allReady"], true);
    assert_eq!(keys["reportedAt"], 77);
}

#[test]
fn a_crash_looping_daemon_sets_the_flag() {
    let health = json!([{"id": "http", "name": "Page", "result": "disabled"}]);
    let keys = report(&wire("crashLoop", health), 1).unwrap();
    assert_eq!(keys["crashLoop"], true);
    assert_eq!(keys["daemons"]["httpd"]["crashLoop"], true);
    assert_eq!(keys["health"]["http"]["result"], "disabled");
    assert!(report(&json!({"daemons": [{"state": 3}]}), 1).is_err());
}

#[tokio::test]
async fn monitor_writes_each_report_reconnects_and_touches_nothing_else() {
    let (_dir, store) = store_with_package();
    let before = status_info(&store);
    let starting = wire(
        "starting",
        json!([{"id": "http", "name": "Page", "result": "starting"}]),
    );
    let ok = wire(
        "running",
        json!([{"id": "http", "name": "Page", "result": "success"}]),
    );
    let connector = FakeConnector {
        connections: Mutex::new(VecDeque::from([
            // First connection: one report, then the container restarts.
            VecDeque::from([Ok(Some(starting))]),
            // Second connection: the new container reports success, then fails.
            VecDeque::from([
                Ok(Some(ok)),
                Err(ClientError::Closed {
                    path: PathBuf::from("x"),
                }),
            ]),
        ])),
    };
    let cancel = CancellationToken::new();
    monitor(&connector, &store, "hello", PathBuf::from("/rpc"), &cancel).await;
    let after = status_info(&store);
    assert_eq!(after["health"]["http"]["result"], "success");
    assert_eq!(after["daemons"]["httpd"]["state"], "running");
    for key in ["desired", "state", "lastError", "restartCount", "startedAt"] {
        assert_eq!(after[key], before[key], "{key} changed");
    }
    // The reconciler's read-modify-write keeps the reported keys.
    doc::update(&store, "hello", "test", |e| {
        e.status_info.observed.restart_count = 9;
        Ok(())
    })
    .unwrap();
    let kept = status_info(&store);
    assert_eq!(kept["health"], after["health"]);
    assert_eq!(kept["restartCount"], 9);
    // Stopped: the reported keys go, the rest stays.
    clear(&store, "hello").unwrap();
    let cleared = status_info(&store);
    assert!(REPORTED_KEYS.iter().all(|k| cleared.get(k).is_none()));
    assert_eq!(cleared["lastError"], "old");
}

#[tokio::test]
async fn reports_for_a_removed_package_are_dropped_and_cancel_ends_the_monitor() {
    let (_dir, store) = store_with_package();
    store
        .mutate(|d| {
            doc::object_mut(d, PACKAGE_DATA)?.remove("hello");
            Ok::<_, PackageError>(())
        })
        .unwrap();
    let keys = report(&wire("running", json!([])), 1).unwrap();
    write(&store, "hello", keys).unwrap();
    assert!(store.get(&doc::entry_pointer("hello")).is_err());

    // A feed that never ends: only the token stops the monitor.
    struct Pending;
    impl StatusFeed for Pending {
        async fn next_status(&mut self) -> Result<Option<Value>, ClientError> {
            std::future::pending().await
        }
    }
    struct Forever;
    impl Connector for Forever {
        type Feed = Pending;
        async fn connect(&self, _: &Path) -> Result<Pending, ClientError> {
            Ok(Pending)
        }
    }
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let task = tokio::spawn(async move {
        monitor(&Forever, &store, "hello", PathBuf::from("/rpc"), &c2).await;
    });
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

/// `n` reports, one every `every`, then the connection closes.
struct Paced {
    reports: VecDeque<Value>,
    every: Duration,
}

impl StatusFeed for Paced {
    async fn next_status(&mut self) -> Result<Option<Value>, ClientError> {
        if self.reports.is_empty() {
            return Ok(None);
        }
        tokio::time::sleep(self.every).await;
        Ok(self.reports.pop_front())
    }
}

struct PacedOnce(Mutex<Option<Paced>>);

impl Connector for PacedOnce {
    type Feed = Paced;
    async fn connect(&self, rpc_dir: &Path) -> Result<Paced, ClientError> {
        self.0.lock().unwrap().take().ok_or(ClientError::Closed {
            path: rpc_dir.to_owned(),
        })
    }
}

fn restarts(n: u64) -> Value {
    let mut w = wire("crashLoop", json!([]));
    w["daemons"][0]["restarts"] = json!(n);
    w
}

#[tokio::test]
async fn rapid_reports_are_coalesced_and_the_last_one_is_stored() {
    let (_dir, store) = store_with_package();
    let n = 120;
    let connector = PacedOnce(Mutex::new(Some(Paced {
        reports: (1..=n).map(restarts).collect(),
        every: Duration::from_millis(5),
    })));
    let before = store.revision();
    let start = std::time::Instant::now();
    monitor(
        &connector,
        &store,
        "hello",
        PathBuf::from("/rpc"),
        &CancellationToken::new(),
    )
    .await;
    let elapsed = start.elapsed();
    let writes = store.revision() - before;
    // At most one write per WRITE_EVERY, plus the first and the final flush.
    let bound = u64::try_from(elapsed.as_millis() / WRITE_EVERY.as_millis()).unwrap() + 2;
    assert!(
        writes <= bound,
        "{writes} writes for {n} reports in {elapsed:?} (bound {bound})"
    );
    assert!(writes >= 2, "the first and the last report are written");
    assert_eq!(status_info(&store)["daemons"]["httpd"]["restarts"], n);
}

#[tokio::test]
async fn a_held_report_is_written_when_the_container_goes_quiet() {
    let (_dir, store) = store_with_package();
    /// Three reports at once, then silence (the connection stays open).
    struct Burst(VecDeque<Value>);
    impl StatusFeed for Burst {
        async fn next_status(&mut self) -> Result<Option<Value>, ClientError> {
            match self.0.pop_front() {
                Some(v) => Ok(Some(v)),
                None => std::future::pending().await,
            }
        }
    }
    struct Once(Mutex<Option<Burst>>);
    impl Connector for Once {
        type Feed = Burst;
        async fn connect(&self, _: &Path) -> Result<Burst, ClientError> {
            Ok(self.0.lock().unwrap().take().unwrap())
        }
    }
    let connector = Once(Mutex::new(Some(Burst((1..=3).map(restarts).collect()))));
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let store2 = store.clone();
    let task = tokio::spawn(async move {
        monitor(&connector, &store2, "hello", PathBuf::from("/rpc"), &c2).await;
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while status_info(&store)["daemons"]["httpd"]["restarts"] != 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "latest report never written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    task.await.unwrap();
}

#[test]
fn oversized_reports_are_refused_and_long_texts_cut() {
    let many: Vec<Value> = (0..=MAX_DAEMONS)
        .map(|i| json!({"id": format!("d{i}"), "state": "running"}))
        .collect();
    let err = report(&json!({"daemons": many}), 1).unwrap_err();
    assert!(err.contains("daemons"), "{err}");
    let checks: Vec<Value> = (0..=MAX_CHECKS)
        .map(|i| json!({"id": format!("c{i}"), "result": "success"}))
        .collect();
    let err = report(&wire("running", json!(checks)), 1).unwrap_err();
    assert!(err.contains("health checks"), "{err}");
    let long_id = "x".repeat(MAX_ID + 1);
    let err = report(
        &json!({"daemons": [{"id": long_id, "state": "running"}]}),
        1,
    )
    .unwrap_err();
    assert!(err.contains("id"), "{err}");
    let long = "é".repeat(MAX_TEXT * 3);
    let mut w = wire(
        "running",
        json!([{"id": "db", "name": long, "result": "failure", "message": long}]),
    );
    w["daemons"][0]["lastError"] = json!(long);
    let keys = report(&w, 1).unwrap();
    let cut = |v: &Value| v.as_str().unwrap().chars().count();
    assert_eq!(cut(&keys["health"]["db"]["message"]), MAX_TEXT + 1);
    assert_eq!(cut(&keys["health"]["db"]["name"]), MAX_TEXT + 1);
    assert_eq!(cut(&keys["daemons"]["httpd"]["lastError"]), MAX_TEXT + 1);
}

#[tokio::test]
async fn a_status_line_over_the_cap_ends_the_connection() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let listener =
        tokio::net::UnixListener::bind(container_client::socket_path(dir.path())).unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let big = "x".repeat(usize::try_from(MAX_REPORT_BYTES).unwrap());
        let line = format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"status.changed\",\"params\":{{\"pad\":\"{big}\"}}}}\n"
        );
        let _ = stream.write_all(line.as_bytes()).await;
        stream
    });
    let connector = SocketConnector {
        wait: Duration::from_secs(5),
    };
    let mut feed = connector.connect(dir.path()).await.unwrap();
    let err = feed.next_status().await.unwrap_err();
    assert!(err.to_string().contains("line longer than 65536"), "{err}");
    drop(server.await.unwrap());
}

/// The real connector against a socket that behaves as `hearth-container` does when a
/// change happens while it answers a `status` request: it pushes the status on
/// connect, pushes the change, and only then sends the answer, computed before the
/// change (the answer leaves through the reader thread, the push through the runtime
/// loop). The last pushed report must stay: it is the container's current status.
#[tokio::test]
async fn a_stale_status_answer_does_not_overwrite_a_newer_push() {
    use tokio::io::AsyncWriteExt;

    let (dir, store) = store_with_package();
    let rpc_dir = dir.path().join("rpc");
    std::fs::create_dir(&rpc_dir).unwrap();
    let socket = container_client::socket_path(&rpc_dir);
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let starting = wire(
        "running",
        json!([{"id": "db", "name": "DB", "result": "starting"}]),
    );
    let passed = wire(
        "running",
        json!([{"id": "db", "name": "DB", "result": "success"}]),
    );
    let container = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (mut r, mut w) = stream.into_split();
        // Whatever the client sends is read, so closing resets nothing.
        let drain = tokio::spawn(async move {
            tokio::io::copy(&mut r, &mut tokio::io::sink()).await.ok();
        });
        let push = |s: &Value| json!({"jsonrpc": "2.0", "method": "status.changed", "params": s});
        let answer = json!({"jsonrpc": "2.0", "id": 1, "result": starting});
        for line in [push(&starting), push(&passed), answer] {
            w.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        }
        // The container goes away: the monitor's reconnection finds no socket.
        std::fs::remove_file(&socket).unwrap();
        drop(listener);
        w.shutdown().await.unwrap();
        drain.await.unwrap();
    });
    let connector = SocketConnector {
        wait: Duration::from_millis(300),
    };
    let cancel = CancellationToken::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        monitor(&connector, &store, "hello", rpc_dir, &cancel),
    )
    .await
    .expect("the monitor ends once the socket is gone");
    container.await.unwrap();
    assert_eq!(status_info(&store)["health"]["db"]["result"], "success");
}
