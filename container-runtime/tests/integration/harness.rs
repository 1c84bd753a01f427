//! Starts the binary and talks JSON-RPC to it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running `hearth-container` in a temp dir.
pub(crate) struct Container {
    pub(crate) child: Child,
    /// Started through a wrapper (`unshare`): the binary is the wrapper's child.
    wrapped: bool,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) socket: PathBuf,
}

impl Container {
    /// Starts with `spec` (daemons get `"image": "main"` added), `--autostart`,
    /// `--subreaper` and fast restart settings; waits for the socket.
    pub(crate) fn start(spec: Value, extra: &[&str]) -> Container {
        Container::start_wrapped(spec, extra, &[])
    }

    /// Like [`Container::start`], but runs the binary through `wrapper` (a command
    /// prefix such as `unshare --pid …`), without `--subreaper` when wrapped.
    pub(crate) fn start_wrapped(spec: Value, extra: &[&str], wrapper: &[&str]) -> Container {
        Container::start_in(tempfile::tempdir().unwrap(), spec, extra, wrapper)
    }

    /// Like [`Container::start_wrapped`] in a prepared `dir`; `@DIR@` in the spec's
    /// strings and in `extra` is replaced by its path.
    pub(crate) fn start_in(
        dir: tempfile::TempDir,
        mut spec: Value,
        extra: &[&str],
        wrapper: &[&str],
    ) -> Container {
        for d in spec["daemons"].as_array_mut().unwrap() {
            d["image"] = json!("main");
        }
        if let Some(actions) = spec.get_mut("actions").and_then(Value::as_array_mut) {
            for a in actions {
                a["image"] = json!("main");
            }
        }
        let dir_text = dir.path().to_str().unwrap().to_owned();
        let spec_text = serde_json::to_string(&spec)
            .unwrap()
            .replace("@DIR@", &dir_text);
        let extra: Vec<String> = extra
            .iter()
            .map(|e| e.replace("@DIR@", &dir_text))
            .collect();
        let spec_path = dir.path().join("spec.json");
        std::fs::write(&spec_path, spec_text).unwrap();
        let socket = dir.path().join("rpc/service.sock");
        let bin = env!("CARGO_BIN_EXE_hearth-container");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(bin);
                cmd
            }
            None => {
                let mut cmd = Command::new(bin);
                cmd.arg("--subreaper");
                cmd
            }
        };
        let child = cmd
            .arg("--spec")
            .arg(&spec_path)
            .arg("--rpc-dir")
            .arg(dir.path().join("rpc"))
            .arg("--log-dir")
            .arg(dir.path().join("logs"))
            .arg("--autostart")
            .args(if extra.iter().any(|e| e == "--restart-delay") {
                &[][..]
            } else {
                &["--restart-delay", "20ms"][..]
            })
            .args(&extra)
            .current_dir(dir.path())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let container = Container {
            child,
            dir,
            socket,
            wrapped: !wrapper.is_empty(),
        };
        wait_for(Duration::from_secs(10), || container.socket.exists());
        container
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Host pid of the `hearth-container` process.
    pub(crate) fn pid(&self) -> i32 {
        let own = self.child.id();
        let pid = if self.wrapped {
            let children = format!("/proc/{own}/task/{own}/children");
            std::fs::read_to_string(children)
                .ok()
                .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()))
                .unwrap_or(own)
        } else {
            own
        };
        i32::try_from(pid).unwrap()
    }

    pub(crate) fn connect(&self) -> Conn {
        let stream = UnixStream::connect(&self.socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Conn {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            next_id: 1,
            notifications: Vec::new(),
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        kill(self.pid(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "hearth-container did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            kill(self.pid(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn kill(pid: i32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// Whether a process exists (and is not a zombie).
pub(crate) fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Whether a process exists at all (zombies included).
pub(crate) fn exists(pid: i64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

pub(crate) fn wait_for(timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One connection.
pub(crate) struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    /// Notifications received while waiting for responses.
    pub(crate) notifications: Vec<Value>,
}

impl Conn {
    /// Sends raw bytes (a newline is not added).
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Reads messages until one that is not a notification.
    pub(crate) fn read_response(&mut self) -> Value {
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(n > 0, "connection closed");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v.get("method").is_some() {
                self.notifications.push(v);
            } else {
                return v;
            }
        }
    }

    /// Calls `method`; returns the whole response object.
    pub(crate) fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_raw(format!("{req}\n").as_bytes());
        let resp = self.read_response();
        assert_eq!(resp["id"], json!(id), "{resp}");
        resp
    }

    /// Calls `method` and returns its result (panics on an error).
    pub(crate) fn ok(&mut self, method: &str, params: Value) -> Value {
        let resp = self.call(method, params);
        assert!(resp.get("error").is_none(), "{method}: {resp}");
        resp["result"].clone()
    }

    /// The status of daemon `id`.
    pub(crate) fn daemon(&mut self, id: &str) -> Value {
        let status = self.ok("status", json!({}));
        status["daemons"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .unwrap()
            .clone()
    }

    /// Polls daemon `id`'s status until `pred` holds.
    pub(crate) fn wait_daemon(
        &mut self,
        id: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let d = self.daemon(id);
            if pred(&d) {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "daemon {id} never matched; last: {d:#}"
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// All log lines (up to 1000) of daemon `id`.
    pub(crate) fn log_lines(&mut self, id: &str) -> Vec<Value> {
        let r = self.ok("logs", json!({"daemon": id, "limit": 1000, "cursor": 0}));
        r["entries"].as_array().unwrap().clone()
    }
}

pub(crate) const T: Duration = Duration::from_secs(15);
