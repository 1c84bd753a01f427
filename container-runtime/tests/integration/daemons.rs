//! Daemon lifecycle against real processes.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::harness::{Container, T, alive, exists, wait_for};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn health<'a>(d: &'a Value, id: &str) -> &'a Value {
    d["health"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == id)
        .unwrap()
}

#[test]
fn requires_order_readiness_and_http_health_checks() {
    let port = free_port();
    let spec = json!({"daemons": [
        {"id": "web", "requires": ["db"],
         "command": ["python3", "-m", "http.server", port.to_string(), "--bind", "127.0.0.1"],
         "ready": {"probe": {"tcp": {"port": port}}, "interval": "50ms", "gracePeriod": "20s"},
         "healthChecks": [
            {"id": "root", "name": "Root", "probe": {"http": {"port": port}},
             "interval": "100ms", "gracePeriod": "0ms"},
            {"id": "missing", "name": "Missing", "probe": {"http": {"port": port, "path": "/missing"}},
             "interval": "100ms", "gracePeriod": "0ms"},
            {"id": "exec", "name": "Exec", "probe": {"exec": {"command": ["sh", "-c", "test -f db.ready"]}},
             "interval": "100ms", "gracePeriod": "0ms"}
         ]},
        {"id": "db", "command": ["sh", "-c", "sleep 0.6; touch db.ready; echo db up; exec sleep 1000"],
         "ready": {"probe": {"exec": {"command": ["test", "-f", "db.ready"]}}, "interval": "50ms"}}
    ]});
    let c = Container::start(spec, &[]);
    let mut conn = c.connect();
    // db is probed until its file exists; web waits for it.
    let web = conn.wait_daemon("web", T, |d| {
        d["state"] == "running"
            && health(d, "root")["result"] == "success"
            && health(d, "missing")["result"] == "failure"
            && health(d, "exec")["result"] == "success"
    });
    let db = conn.daemon("db");
    let db_started = db["startedAt"].as_u64().unwrap();
    let web_started = web["startedAt"].as_u64().unwrap();
    assert!(
        web_started >= db_started + 600,
        "web started {}ms after db, before db was ready",
        web_started as i64 - db_started as i64
    );
    let message = health(&web, "missing")["message"].as_str().unwrap();
    assert!(message.contains("returned 404, expected 200"), "{message}");
    assert_eq!(health(&web, "root")["name"], "Root");
    // Output and lifecycle lines are in the logs, in order.
    let lines = conn.log_lines("db");
    assert!(
        lines
            .iter()
            .any(|l| l["stream"] == "stdout" && l["line"] == "db up")
    );
    let file = std::fs::read_to_string(c.path().join("logs/db.log")).unwrap();
    assert!(file.contains(" stdout db up\n"), "{file}");
}

#[test]
fn crash_loop_and_missing_command_are_reported() {
    let spec = json!({"daemons": [
        {"id": "crash", "command": ["sh", "-c", "echo boom >&2; exit 1"]},
        {"id": "ghost", "command": ["/nonexistent/hearth-test-binary"]},
        {"id": "fine", "command": ["sleep", "1000"]}
    ]});
    let c = Container::start(spec, &["--crash-limit", "3"]);
    let mut conn = c.connect();
    let crash = conn.wait_daemon("crash", T, |d| d["state"] == "crashLoop");
    let err = crash["lastError"].as_str().unwrap();
    assert!(err.starts_with("crash loop: 3 failures"), "{err}");
    assert!(err.contains("exit status 1"), "{err}");
    assert_eq!(crash["restarts"], 2);
    assert_eq!(crash["health"], json!([]));
    let ghost = conn.wait_daemon("ghost", T, |d| d["state"] == "crashLoop");
    let err = ghost["lastError"].as_str().unwrap();
    assert!(err.contains("/nonexistent/hearth-test-binary"), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
    assert!(
        conn.log_lines("crash")
            .iter()
            .any(|l| l["stream"] == "stderr" && l["line"] == "boom")
    );
    // The others are unaffected.
    assert_eq!(conn.daemon("fine")["state"], "running");
    // An explicit start forgets the crash loop and tries again.
    conn.ok("start", json!({}));
    let again = conn.wait_daemon("crash", T, |d| d["state"] != "crashLoop");
    assert!(again["restarts"].as_u64().unwrap() <= 2, "{again}");
}

#[test]
fn stop_sends_the_stop_signal_then_sigkill_after_the_timeout() {
    let spec = json!({"daemons": [
        {"id": "stubborn", "stopTimeout": "700ms",
         "command": ["sh", "-c", "trap '' TERM; echo trapped; while true; do sleep 0.05; done"]},
        {"id": "polite", "command": ["sleep", "1000"], "stopSignal": "SIGINT"}
    ]});
    let c = Container::start(spec, &[]);
    let mut conn = c.connect();
    wait_for(T, || {
        conn.log_lines("stubborn")
            .iter()
            .any(|l| l["line"] == "trapped")
    });
    let pid = conn.daemon("stubborn")["pid"].as_i64().unwrap();
    let polite = conn.daemon("polite")["pid"].as_i64().unwrap();
    let start = Instant::now();
    conn.ok("stop", json!({}));
    let polite_status = conn.wait_daemon("polite", T, |d| d["state"] == "stopped");
    assert_eq!(polite_status["lastExit"], "killed by signal 2");
    let stopped = conn.wait_daemon("stubborn", T, |d| d["state"] == "stopped");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(650),
        "killed too early: {took:?}"
    );
    assert_eq!(stopped["lastExit"], "killed by signal 9");
    assert!(!alive(pid) && !alive(polite));
    let notes: Vec<String> = conn
        .log_lines("stubborn")
        .iter()
        .filter(|l| l["stream"] == "hearth")
        .map(|l| l["line"].as_str().unwrap().to_owned())
        .collect();
    assert!(notes.iter().any(|n| n == "sent SIGTERM"), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("SIGKILL")), "{notes:?}");
}

#[test]
fn orphaned_grandchildren_are_adopted_and_reaped() {
    let spec = json!({"daemons": [
        {"id": "parent",
         "command": ["sh", "-c", "sh -c 'sleep 0.5 & echo $! > grand.pid'; exec sleep 1000"]}
    ]});
    let c = Container::start(spec, &[]);
    let pid_file = c.path().join("grand.pid");
    wait_for(T, || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    });
    let grand: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // While it runs, its parent (the inner sh) is gone and we adopted it.
    let stat = std::fs::read_to_string(format!("/proc/{grand}/stat")).unwrap();
    let ppid: i64 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ppid, i64::from(c.pid()));
    // When it exits it does not stay a zombie.
    wait_for(T, || !exists(grand));
}

#[test]
fn sigterm_stops_daemons_in_reverse_order_and_exits() {
    let spec = json!({"daemons": [
        {"id": "b", "requires": ["a"], "command": ["sh", "-c", "trap 'echo b-term; exit 0' TERM; while true; do sleep 0.05; done"]},
        {"id": "a", "command": ["sh", "-c", "trap 'echo a-term; exit 0' TERM; while true; do sleep 0.05; done"]}
    ]});
    let mut c = Container::start(spec, &[]);
    let mut conn = c.connect();
    conn.wait_daemon("b", T, |d| d["state"] == "running");
    let a = conn.daemon("a")["pid"].as_i64().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let status = c.terminate();
    assert!(status.success(), "{status}");
    assert!(!alive(a));
    let logs = std::fs::read_to_string(c.path().join("logs/a.log")).unwrap()
        + &std::fs::read_to_string(c.path().join("logs/b.log")).unwrap();
    let time_of = |word: &str| -> u64 {
        logs.lines()
            .find(|l| l.ends_with(word))
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(time_of("b-term") <= time_of("a-term"), "{logs}");
    assert!(!c.socket.exists());
}

#[test]
fn restart_replaces_the_processes() {
    let spec = json!({"daemons": [{"id": "s", "command": ["sleep", "1000"]}]});
    let c = Container::start(spec, &[]);
    let mut conn = c.connect();
    let before = conn.wait_daemon("s", T, |d| d["state"] == "running")["pid"]
        .as_i64()
        .unwrap();
    conn.ok("restart", json!({}));
    let after = conn.wait_daemon("s", T, |d| {
        d["state"] == "running" && d["pid"].as_i64() != Some(before)
    });
    assert_eq!(after["restarts"], 0);
    assert!(!alive(before));
    // The connection got the status on connect, then the restart's changes pushed.
    let states: Vec<String> = conn
        .notifications
        .iter()
        .filter(|n| n["method"] == "status.changed")
        .map(|n| {
            n["params"]["daemons"][0]["state"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        states.first().map(String::as_str),
        Some("running"),
        "{states:?}"
    );
    assert!(states.iter().any(|s| s == "stopping"), "{states:?}");
}

#[test]
fn leftovers_of_an_exited_daemon_are_killed_with_its_process_group() {
    let spec = json!({"daemons": [
        {"id": "wrapper",
         "command": ["sh", "-c", "sleep 1000 & echo $! > straggler.pid; sleep 0.3; exit 1"]}
    ]});
    let c = Container::start(spec, &["--restart-delay", "60s"]);
    let mut conn = c.connect();
    let pid_file = c.path().join("straggler.pid");
    wait_for(T, || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    });
    let straggler: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(straggler));
    conn.wait_daemon("wrapper", T, |d| d["state"] == "backingOff");
    wait_for(T, || !exists(straggler));
}

#[test]
fn image_defaults_supply_command_workdir_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(dir.path().join("images")).unwrap();
    let meta = json!({"workdir": work, "user": "root", "entrypoint": ["sh", "-c"],
                      "cmd": ["echo \"$GREETING from $(pwd)\"; exec sleep 1000"]});
    std::fs::write(dir.path().join("images/main.json"), meta.to_string()).unwrap();
    std::fs::write(
        dir.path().join("images/main.env"),
        "PATH=/usr/local/bin:/usr/bin:/bin\nGREETING=hello\n",
    )
    .unwrap();
    let spec = json!({"daemons": [
        {"id": "imaged"},
        {"id": "override", "env": {"GREETING": "spec wins"},
         "command": ["sh", "-c", "echo \"$GREETING\"; exec sleep 1000"]}
    ]});
    let c = Container::start_in(dir, spec, &["--images-dir", "@DIR@/images"], &[]);
    let mut conn = c.connect();
    let expected = format!("hello from {}", work.display());
    wait_for(T, || {
        conn.log_lines("imaged")
            .iter()
            .any(|l| l["line"] == expected.as_str())
    });
    wait_for(T, || {
        conn.log_lines("override")
            .iter()
            .any(|l| l["line"] == "spec wins")
    });
}

#[test]
fn a_daemon_without_command_or_image_defaults_is_an_error() {
    let spec = json!({"daemons": [{"id": "bare"}]});
    let c = Container::start(spec, &["--crash-limit", "1"]);
    let mut conn = c.connect();
    let d = conn.wait_daemon("bare", T, |d| d["state"] == "crashLoop");
    let err = d["lastError"].as_str().unwrap();
    assert!(err.contains("daemon bare has no command"), "{err}");
}

#[test]
fn a_second_stop_signal_kills_at_once_and_sigpwr_stops_too() {
    let spec = json!({"daemons": [
        {"id": "stubborn", "stopTimeout": "60s",
         "command": ["sh", "-c", "trap '' TERM PWR; echo trapped; while true; do sleep 0.05; done"]}
    ]});
    let mut c = Container::start(spec, &[]);
    let mut conn = c.connect();
    wait_for(T, || {
        conn.log_lines("stubborn")
            .iter()
            .any(|l| l["line"] == "trapped")
    });
    // LXC's default halt signal starts the orderly stop …
    super::harness::kill(c.pid(), "PWR");
    conn.wait_daemon("stubborn", T, |d| d["state"] == "stopping");
    // … which would wait 60 s for this daemon; a second request does not.
    let start = Instant::now();
    let status = c.terminate();
    assert!(status.success(), "{status}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let log = std::fs::read_to_string(c.path().join("logs/stubborn.log")).unwrap();
    assert!(log.contains("shutdown hurried: sent SIGKILL"), "{log}");
}
