//! The supervision loop for real: `hearth-init supervise` as a non-PID-1 sub-reaper with a
//! fake `hearthd` (`sh -c …`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn start(script: &str, backoff_ms: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hearth-init"))
        .args(["supervise", "--backoff-ms", &backoff_ms.to_string()])
        .args(["--stop-timeout-ms", "3000", "--", "sh", "-c", script])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for exit (at most `limit`), returns (success, stderr).
fn finish(mut child: Child, limit: Duration) -> (bool, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.success(), err);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("hearth-init did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_lines(file: &Path, n: usize, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dying_service_is_restarted_with_growing_delays() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("starts");
    let child = start(&format!("date +%s%N >> {}; exit 1", log.display()), 100);
    // Starts at about 0, 0.1, 0.3, 0.7, 1.5 s.
    let lines = wait_for_lines(&log, 5, Duration::from_secs(10));
    sigterm(&child);
    let (ok, stderr) = finish(child, Duration::from_secs(5));
    assert!(ok, "{stderr}");
    assert!(lines.len() >= 5, "only {} starts: {stderr}", lines.len());
    let t: Vec<u128> = lines.iter().map(|l| l.trim().parse().unwrap()).collect();
    let gaps_ms: Vec<u128> = t.windows(2).map(|w| (w[1] - w[0]) / 1_000_000).collect();
    for (i, want) in [100u128, 200, 400, 800].iter().enumerate() {
        let gap = gaps_ms[i];
        assert!(
            gap >= *want && gap < want + 400,
            "gap {i} is {gap} ms, want about {want}: {gaps_ms:?}"
        );
    }
    assert!(stderr.contains("restart #4 in 800 ms"), "{stderr}");
}

#[test]
fn sigterm_stops_the_service_and_exits_cleanly_and_orphans_are_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events");
    let script = format!(
        "trap 'echo term >> {log}; exit 0' TERM; (sleep 0.2 &); echo up >> {log}; \
         while :; do sleep 0.05; done",
        log = log.display()
    );
    let child = start(&script, 100);
    assert_eq!(wait_for_lines(&log, 1, Duration::from_secs(5)), ["up"]);
    std::thread::sleep(Duration::from_millis(600)); // the orphaned sleep ends and is reaped
    let began = Instant::now();
    sigterm(&child);
    let (ok, stderr) = finish(child, Duration::from_secs(5));
    assert!(ok, "{stderr}");
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "up\nterm\n");
    assert!(stderr.contains("reaped orphan"), "{stderr}");
    assert!(stderr.contains("service stopped"), "{stderr}");
    assert!(stderr.contains("done (Requested(PowerOff))"), "{stderr}");
}

#[test]
fn a_service_ignoring_sigterm_is_killed_after_the_timeout_with_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events");
    // A helper in the service's process group that ignores SIGTERM too and writes its pid.
    let script = format!(
        "trap '' TERM; sh -c 'trap \"\" TERM; echo $$ >> {log}; exec sleep 1000' & \
         echo up >> {log}; while :; do sleep 0.05; done",
        log = log.display()
    );
    let child = start(&script, 100);
    wait_for_lines(&log, 2, Duration::from_secs(5));
    let began = Instant::now();
    sigterm(&child);
    let (ok, stderr) = finish(child, Duration::from_secs(8));
    let took = began.elapsed();
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("service did not stop within 3 s after SIGTERM; SIGKILL"),
        "{stderr}"
    );
    assert!(stderr.contains("service gone"), "{stderr}");
    assert!(took >= Duration::from_secs(3), "{took:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let helper: i32 = text
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .expect("helper pid");
    // The helper (in the service's group) got SIGKILL too: gone once it is reaped.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Path::new(&format!("/proc/{helper}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let state = std::fs::read_to_string(format!("/proc/{helper}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z "),
        "helper {helper} still running: {state}"
    );
}

#[test]
fn the_shutdown_bound_cuts_a_long_stop_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events");
    let script = format!(
        "trap '' TERM; echo up >> {}; while :; do sleep 0.05; done",
        log.display()
    );
    let child = Command::new(env!("CARGO_BIN_EXE_hearth-init"))
        .args(["supervise", "--stop-timeout-ms", "30000"])
        .args(["--shutdown-bound-ms", "1000", "--", "sh", "-c", &script])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lines(&log, 1, Duration::from_secs(5));
    let began = Instant::now();
    sigterm(&child);
    let (ok, stderr) = finish(child, Duration::from_secs(10));
    let took = began.elapsed();
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("service still running 1.")
            && stderr.contains("after SIGTERM: shutdown bound of 1 s reached; SIGKILL"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth-init"))
        .args(["supervise", "--backoff-ms", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(env!("CARGO_BIN_EXE_hearth-init"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn without_path_the_service_gets_a_default_path_with_sbin() {
    // The kernel starts PID 1 with no PATH; sfdisk and mkfs.ext4 live in sbin.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("path");
    let child = Command::new("/usr/bin/env")
        .args(["-i", env!("CARGO_BIN_EXE_hearth-init"), "supervise", "--"])
        .args([
            "/bin/sh",
            "-c",
            &format!("echo \"$PATH\" > {}; exec sleep 5", out.display()),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = wait_for_lines(&out, 1, Duration::from_secs(5));
    sigterm(&child);
    let (ok, stderr) = finish(child, Duration::from_secs(8));
    assert!(ok, "{stderr}");
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].split(':').any(|p| p == "/usr/sbin"), "{lines:?}");
}

#[test]
fn the_service_starts_with_an_empty_signal_mask() {
    // The loop blocks SIGTERM etc. for its signalfd; a child must not inherit that. No shell
    // in between: shells reset their own mask.
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth-init"))
        .args(["supervise", "--backoff-ms", "1000", "--"])
        .args(["grep", "SigBlk", "/proc/self/status"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    sigterm(&child);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let (ok, stderr) = finish(child, Duration::from_secs(8));
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.lines().next(),
        Some("SigBlk:\t0000000000000000"),
        "{stderr}"
    );
}

/// Starts `hearth-init supervise` with readiness through `socket`.
fn start_watched(socket: &Path, timeout_ms: u64, cmd: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hearth-init"))
        .args([
            "supervise",
            "--backoff-ms",
            "100",
            "--stop-timeout-ms",
            "3000",
        ])
        .args(["--notify-socket", &socket.to_string_lossy()])
        .args(["--ready-timeout-ms", &timeout_ms.to_string(), "--"])
        .args(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Python that sends `READY=1` to `$NOTIFY_SOCKET` as the sd_notify protocol says, then
/// waits `secs`.
fn notify_ready(secs: u32) -> String {
    format!(
        "import os, socket, time\n\
         s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         s.sendto(b'STATUS=starting\\nREADY=1\\n', os.environ['NOTIFY_SOCKET'])\n\
         time.sleep({secs})\n"
    )
}

#[test]
fn ready_notification_from_the_service_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("notify.sock");
    let child = start_watched(&socket, 20_000, &["python3", "-c", &notify_ready(60)]);
    std::thread::sleep(Duration::from_secs(2));
    sigterm(&child);
    let (ok, stderr) = finish(child, Duration::from_secs(8));
    assert!(ok, "{stderr}");
    assert_eq!(
        stderr.matches("supervise: service ready").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("done (Requested(PowerOff))"), "{stderr}");
}

#[test]
fn a_service_that_keeps_dying_is_unhealthy_after_three_deaths() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("notify.sock");
    let began = Instant::now();
    let child = start_watched(&socket, 60_000, &["/bin/false"]);
    let mut child = child;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(began.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("service died 3 times without becoming ready"),
        "{stderr}"
    );
    assert!(!stderr.contains("service ready"), "{stderr}");
}

#[test]
fn ready_from_another_process_does_not_count_and_the_deadline_ends_it() {
    // The service (sh) is alive but READY=1 comes from its child python: ignored, as
    // systemd's NotifyAccess=main would; the 1.5 s deadline passes.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("notify.sock");
    let script = format!(
        "python3 -c \"{}\" >/dev/null 2>&1 & exec sleep 60",
        notify_ready(3)
    );
    let began = Instant::now();
    let child = start_watched(&socket, 1500, &["sh", "-c", &script]);
    let (ok, stderr) = finish(child, Duration::from_secs(10));
    assert!(!ok, "{stderr}");
    assert!(began.elapsed() >= Duration::from_millis(1500));
    assert!(stderr.contains("ignoring READY=1 from pid"), "{stderr}");
    assert!(
        stderr.contains("service not ready 1 s after start"),
        "{stderr}"
    );
    assert!(!stderr.contains("service ready"), "{stderr}");
}
