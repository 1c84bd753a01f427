//! As real PID 1 of a PID namespace. Needs root and `unshare` (util-linux); the test's
//! name starts with `root_` and it fails (not skips) without them. `make test` runs as
//! root.

use std::time::{Duration, Instant};

use serde_json::json;

use super::harness::{Container, T, wait_for};

/// Host pids of the children of `pid` (all threads).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path().join("children");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        out.extend(text.split_whitespace().map(|p| p.parse::<u32>().unwrap()));
    }
    out
}

fn state_and_name(pid: u32) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    (field("State:"), field("Name:"))
}

#[test]
fn root_pid1_in_a_pid_namespace_reaps_orphans_and_stops_on_sigterm() {
    let spec = json!({"daemons": [
        {"id": "parent",
         "command": ["sh", "-c", "sh -c 'sleep 0.3 &'; echo spawned; exec sleep 1000"]}
    ]});
    let wrapper = ["unshare", "--pid", "--mount-proc", "--kill-child"];
    let mut c = Container::start_wrapped(spec, &[], &wrapper);
    let mut conn = c.connect();
    let d = conn.wait_daemon("parent", T, |d| d["state"] == "running");
    // In its own PID namespace hearth-container is 1, so its first child is small.
    assert!(d["pid"].as_i64().unwrap() < 10, "{d}");
    let init = u32::try_from(c.pid()).unwrap();
    assert_eq!(children(c.child.id()), [init]);
    assert_eq!(state_and_name(init).1, "hearth-containe");
    wait_for(T, || {
        conn.log_lines("parent")
            .iter()
            .any(|l| l["line"] == "spawned")
    });
    // The orphaned `sleep 0.3` is adopted by PID 1 and reaped when it exits: in the
    // end PID 1 has exactly one child, the daemon, and no zombie.
    let deadline = Instant::now() + T;
    loop {
        let kids: Vec<(String, String)> = children(init).into_iter().map(state_and_name).collect();
        if kids.len() == 1 && !kids[0].0.starts_with('Z') {
            break;
        }
        assert!(Instant::now() < deadline, "children of PID 1: {kids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGTERM from outside the namespace: orderly stop, exit 0.
    super::harness::kill(i32::try_from(init).unwrap(), "TERM");
    let deadline = Instant::now() + T;
    let status = loop {
        if let Some(s) = c.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "PID 1 did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(c.path().join("logs/parent.log")).unwrap();
    assert!(log.contains(" hearth sent SIGTERM\n"), "{log}");
}

#[test]
fn root_volume_mounts_are_bound_read_write_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("volumes/main")).unwrap();
    std::fs::create_dir_all(dir.path().join("volumes/cfg")).unwrap();
    std::fs::write(dir.path().join("volumes/cfg/hello"), "from-cfg\n").unwrap();
    let spec = json!({"daemons": [
        {"id": "app",
         "mounts": [{"volume": "main", "path": "@DIR@/mnt/data"},
                    {"volume": "cfg", "path": "@DIR@/mnt/cfg", "readOnly": true}],
         "command": ["sh", "-c",
            "cat mnt/cfg/hello; echo x > mnt/data/written && echo wrote; \
             touch mnt/cfg/nope 2>/dev/null || echo ro-refused; exec sleep 1000"]}
    ]});
    // A private mount namespace keeps the binds away from the host.
    let wrapper = [
        "unshare",
        "--mount",
        "--pid",
        "--mount-proc",
        "--kill-child",
    ];
    let c = Container::start_in(dir, spec, &["--volumes-dir", "@DIR@/volumes"], &wrapper);
    let mut conn = c.connect();
    wait_for(T, || {
        let lines = conn.log_lines("app");
        let has = |s: &str| lines.iter().any(|l| l["line"] == s);
        has("from-cfg") && has("wrote") && has("ro-refused")
    });
    // Written through the bind into the volume.
    assert!(c.path().join("volumes/main/written").exists());
    assert!(!c.path().join("volumes/cfg/nope").exists());
}

#[test]
fn conflicting_mounts_stop_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let spec = json!({"daemons": [
        {"id": "a", "command": ["true"], "mounts": [{"volume": "main", "path": "/data"}]},
        {"id": "b", "command": ["true"], "mounts": [{"volume": "other", "path": "/data"}]}
    ]});
    std::fs::write(dir.path().join("spec.json"), {
        let mut s = spec;
        for d in s["daemons"].as_array_mut().unwrap() {
            d["image"] = json!("main");
        }
        serde_json::to_vec(&s).unwrap()
    })
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth-container"))
        .arg("--spec")
        .arg(dir.path().join("spec.json"))
        .arg("--rpc-dir")
        .arg(dir.path().join("rpc"))
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mount path /data: wanted as volume main"),
        "{stderr}"
    );
}
