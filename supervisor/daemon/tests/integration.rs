//! System tests of the real `hearthd` binary: start-up, signals, crash safety.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Daemon {
    child: Child,
    addr: SocketAddr,
    local: String,
    started_in: Duration,
    first_lines: Vec<String>,
}

fn start(data: &Path) -> Daemon {
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearthd"))
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--log",
            "info",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let started_in = t.elapsed();
    let addr = line
        .trim()
        .strip_prefix("hearthd listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    let mut first_lines = vec![line.clone()];
    line.clear();
    out.read_line(&mut line).unwrap();
    first_lines.push(line);
    // Keep draining stdout so the daemon never blocks on a full pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    let local = std::fs::read_to_string(data.join(hearth_layout::LOCAL_COOKIE_FILE)).unwrap();
    Daemon {
        child,
        addr,
        local,
        started_in,
        first_lines,
    }
}

/// One JSON-RPC call over a fresh connection; `None` if the connection failed midway.
fn call(addr: SocketAddr, local: &str, method: &str, params: Value) -> Option<Value> {
    let body = json!({"id": 1, "method": method, "params": params}).to_string();
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "POST /rpc/v1 HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\nx-hearth-local-auth: {local}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    serde_json::from_slice(&raw[split + 4..]).ok()
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(
            t.elapsed() < within,
            "hearthd did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn starts_fast_in_setup_mode_and_stops_cleanly_on_signals() {
    let dir = tempfile::tempdir().unwrap();
    for sig in ["-TERM", "-INT"] {
        let mut d = start(dir.path());
        assert!(
            d.started_in < Duration::from_secs(1),
            "start-up took {:?}",
            d.started_in
        );
        assert!(
            d.first_lines[1].contains("setup mode"),
            "{:?}",
            d.first_lines
        );
        let st = call(d.addr, &d.local, "setup.status", json!({})).unwrap();
        assert_eq!(st["result"]["setupComplete"], false);
        // hearthd's own log lines are readable through server.logs (at the default
        // level, start from the first line, follow with the cursor).
        let logs = call(d.addr, &d.local, "server.logs", json!({"after": 0})).unwrap();
        let entries = logs["result"]["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            entries.iter().any(|e| e["message"]
                .as_str()
                .is_some_and(|m| m.contains("listening"))),
            "{logs}"
        );
        let end = logs["result"]["endCursor"].as_u64().unwrap();
        let next = call(d.addr, &d.local, "server.logs", json!({"after": end})).unwrap();
        assert!(
            next["result"]["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["cursor"].as_u64() > Some(end))
        );
        signal(&d.child, sig);
        let status = wait_exit(&mut d.child, Duration::from_secs(5));
        assert!(status.success(), "{sig}: exit status {status}");
    }
    // After setup, a restart is no longer in setup mode.
    let d = start(dir.path());
    let r = call(
        d.addr,
        &d.local,
        "setup.complete",
        json!({"password": "password123", "hostname": "box"}),
    )
    .unwrap();
    assert!(r.get("error").is_none(), "{r}");
    let mut d = d;
    signal(&d.child, "-TERM");
    wait_exit(&mut d.child, Duration::from_secs(5));
    let mut d = start(dir.path());
    assert!(
        d.first_lines[1].contains("setup is complete"),
        "{:?}",
        d.first_lines
    );
    signal(&d.child, "-TERM");
    assert!(wait_exit(&mut d.child, Duration::from_secs(5)).success());
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn secrets_on_disk_are_private_even_for_an_old_world_readable_install() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    // A fresh data dir.
    let mut d = start(&data);
    let r = call(
        d.addr,
        &d.local,
        "setup.complete",
        json!({"password": "password123", "hostname": "box"}),
    )
    .unwrap();
    assert!(r.get("error").is_none(), "{r}");
    let check = |data: &Path| {
        // Others (containers' unprivileged root) traverse it, nobody else lists it.
        assert_eq!(mode(data), 0o711, "data dir mode {:o}", mode(data));
        assert_eq!(mode(&data.join("db")), 0o700);
        assert_eq!(mode(&data.join(hearth_layout::STORE_FILE)), 0o600);
        assert_eq!(mode(&data.join("run")), 0o700);
        assert_eq!(mode(&data.join(hearth_layout::LOCAL_COOKIE_FILE)), 0o600);
    };
    check(&data);
    signal(&d.child, "-TERM");
    wait_exit(&mut d.child, Duration::from_secs(5));
    // An install from before: everything world-readable. The next start fixes it.
    let open = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    open(&data, 0o755).unwrap();
    open(&data.join("db"), 0o755).unwrap();
    open(&data.join(hearth_layout::STORE_FILE), 0o644).unwrap();
    let mut d = start(&data);
    check(&data);
    signal(&d.child, "-TERM");
    assert!(wait_exit(&mut d.child, Duration::from_secs(5)).success());
}

#[test]
fn refuses_a_second_instance_on_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = start(dir.path());
    let second = Command::new(env!("CARGO_BIN_EXE_hearthd"))
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("open state store"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    signal(&first.child, "-TERM");
    wait_exit(&mut first.child, Duration::from_secs(5));
}

/// kill -9 in the middle of a stream of mutations, 24 times: every acknowledged
/// `db.put.ui` is present after the restart and the store always opens.
#[test]
fn kill_dash_9_loses_no_acknowledged_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected: Vec<(String, u64, u64)> = Vec::new(); // key, value, revision
    let mut total_acked = 0usize;
    for cycle in 0..24u64 {
        let mut d = start(dir.path());
        // Everything acknowledged before is still there.
        verify(&d, &expected);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let writers: Vec<_> = (0..3u64)
            .map(|w| {
                let (addr, local, acked) = (d.addr, d.local.clone(), Arc::clone(&acked));
                std::thread::spawn(move || {
                    for i in 0.. {
                        let key = format!("c{cycle}w{w}i{i}");
                        let value = cycle * 1_000_000 + w * 100_000 + i;
                        let Some(r) = call(
                            addr,
                            &local,
                            "db.put.ui",
                            json!({"pointer": format!("/crash/{key}"), "value": value}),
                        ) else {
                            break;
                        };
                        match r["revision"].as_u64() {
                            Some(rev) => acked.lock().unwrap().push((key, value, rev)),
                            None => break,
                        }
                    }
                })
            })
            .collect();
        // Vary the moment of the kill.
        std::thread::sleep(Duration::from_millis(40 + (cycle * 37) % 260));
        d.child.kill().unwrap(); // SIGKILL
        d.child.wait().unwrap();
        for w in writers {
            w.join().unwrap();
        }
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        total_acked += acked.len();
        expected.extend(acked);
    }
    let mut d = start(dir.path());
    verify(&d, &expected);
    eprintln!("kill -9 cycles: 24, acknowledged mutations checked: {total_acked}");
    assert!(
        total_acked >= 24 * 3,
        "too few mutations to mean anything: {total_acked}"
    );
    signal(&d.child, "-TERM");
    assert!(wait_exit(&mut d.child, Duration::from_secs(5)).success());
}

fn verify(d: &Daemon, expected: &[(String, u64, u64)]) {
    let r = call(d.addr, &d.local, "db.dump", json!({"pointer": "/ui"})).unwrap();
    let rev = r["result"]["rev"].as_u64().unwrap();
    let ui = &r["result"]["value"];
    for (key, value, acked_rev) in expected {
        assert_eq!(
            ui["crash"][key].as_u64(),
            Some(*value),
            "acknowledged mutation {key} (revision {acked_rev}) lost"
        );
        assert!(rev >= *acked_rev);
    }
}
