//! `package.logs` and `package.action.*` against a fake container: a real Unix socket
//! in the package's RPC dir answering like `hearth-container`, a real store.

use std::sync::{Arc, Mutex};

use hearth_store::Store;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use super::*;
use crate::install::Host;

struct T {
    _dir: tempfile::TempDir,
    packages: Packages,
    store: Store,
    /// Every request the fake container received.
    seen: Arc<Mutex<Vec<Value>>>,
}

fn setup(state: &str) -> T {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = crate::test_support::store(dir.path());
    let state: crate::status::RunState = serde_json::from_value(json!(state)).unwrap();
    crate::test_support::put(&store, "hello", &crate::test_support::hello(state));
    let spec = json!({
        "daemons": [],
        "actions": [
            {"id": "sign", "name": "Sign", "image": "main", "command": ["/bin/sign"],
             "input": {"type": "object", "properties": {"name": {"type": "string"}},
                       "required": ["name"]}},
            {"id": "wipe", "name": "Wipe", "image": "main", "command": ["/bin/wipe"],
             "allowedStatuses": "only-stopped"},
        ],
    });
    let spec_path = crate::install::spec_path(&data, "hello");
    std::fs::create_dir_all(spec_path.parent().unwrap()).unwrap();
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    std::fs::create_dir_all(container_client::rpc_dir(&data, "hello")).unwrap();
    let packages = Packages::new(store.clone(), data, Host::this_machine());
    T {
        _dir: dir,
        packages,
        store,
        seen: Arc::new(Mutex::new(Vec::new())),
    }
}

/// Serves the package's `service.sock` like `hearth-container` would.
fn serve(t: &T) {
    let path =
        container_client::socket_path(&container_client::rpc_dir(t.packages.data_dir(), "hello"));
    let listener = UnixListener::bind(path).unwrap();
    let seen = Arc::clone(&t.seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let status = json!({"jsonrpc": "2.0", "method": "status.changed", "params": {}});
                w.write_all(format!("{status}\n").as_bytes()).await.unwrap();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let req: Value = serde_json::from_str(&line).unwrap();
                    seen.lock().unwrap().push(req.clone());
                    let result = match req["method"].as_str() {
                        Some("logs") => json!({"entries": [{"seq": 1, "time": 2, "daemon": "httpd",
                            "stream": "hearth", "line": "started process 7"}], "nextCursor": 1}),
                        Some("action.run") => json!({"success": true, "exitCode": 0,
                            "signal": null, "stdout": "signed\n", "result": null, "stderr": ""}),
                        _ => Value::Null,
                    };
                    let answer = json!({"jsonrpc": "2.0", "id": req["id"], "result": result});
                    w.write_all(format!("{answer}\n").as_bytes()).await.unwrap();
                }
            });
        }
    });
}

#[tokio::test]
async fn actions_are_listed_from_the_installed_spec() {
    let t = setup("stopped");
    let list = t.packages.action_list("hello").unwrap();
    let ids: Vec<&str> = list.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["sign", "wipe"]);
    assert_eq!(list[0].input.as_ref().unwrap()["required"], json!(["name"]));
    assert_eq!(list[1].allowed_statuses, "only-stopped");
    assert!(matches!(
        t.packages.action_list("nope"),
        Err(ServiceCallError::Package(PackageError::NotFound { .. }))
    ));
}

#[tokio::test]
async fn bad_input_is_refused_before_the_container_hears_of_it() {
    let t = setup("running");
    serve(&t);
    let err = t
        .packages
        .action_run("hello", "sign", Some(json!({"name": 5})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceCallError::InvalidInput { path, .. } if path == "input.name"),
        "{err}"
    );
    let err = t
        .packages
        .action_run("hello", "sign", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServiceCallError::InvalidInput { .. }),
        "{err}"
    );
    let err = t
        .packages
        .action_run("hello", "wipe", None)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceCallError::NotAllowed { .. }), "{err}");
    let err = t
        .packages
        .action_run("hello", "nope", None)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceCallError::NoAction { .. }), "{err}");
    assert!(t.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn good_input_runs_and_the_last_result_is_stored() {
    let t = setup("running");
    serve(&t);
    let (result, _rev) = t
        .packages
        .action_run("hello", "sign", Some(json!({"name": "Ada"})))
        .await
        .unwrap();
    assert!(result.success);
    assert_eq!(result.stdout.as_deref(), Some("signed\n"));
    let seen = t.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["method"], "action.run");
    assert_eq!(
        seen[0]["params"],
        json!({"id": "sign", "input": {"name": "Ada"}})
    );
    let last = t
        .store
        .get("/public/packageData/hello/actions/sign/lastResult")
        .unwrap();
    assert_eq!(last["success"], true);
    assert!(last["ranAt"].as_u64().unwrap() > 0);
    let logs = t
        .packages
        .logs("hello", Some("httpd".into()), Some(10), None)
        .await
        .unwrap();
    assert_eq!(logs.entries[0].line, "started process 7");
    assert_eq!(
        t.seen.lock().unwrap()[1]["params"],
        json!({"daemon": "httpd", "limit": 10})
    );
}

#[tokio::test]
async fn calls_into_a_stopped_package_fail_at_once() {
    let t = setup("stopped");
    let err = t
        .packages
        .logs("hello", None, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ServiceCallError::NotRunning {
                state: "stopped",
                ..
            }
        ),
        "{err}"
    );
    let err = t
        .packages
        .action_run("hello", "sign", Some(json!({"name": "Ada"})))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceCallError::NotRunning { .. }), "{err}");
}
