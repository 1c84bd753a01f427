//! `hearth package install` against a real `hearthd` binary.
//!
//! Needs `hearthd` built into the same target directory as this test's `hearth`
//! (`cargo build -p hearthd`; `make test` builds every binary before the tests), or its
//! path in `HEARTHD`. Without it the test fails and says so: it is not skipped.
//!
//! Covers: upload of a signed package (streamed: the CLI's peak memory stays far below
//! the package size), human and `--json` output, `--path` (a file on the server), an
//! `http://` SOURCE (hearthd downloads it), and
//! the errors a person meets: a missing file, a file that is not a package, an
//! untrusted signer (fingerprint and the commands that fix it, which then work), an
//! already installed package; refusals leave nothing installed and no upload behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use hearth_s9pk::{ArchiveBuilder, SigningKey};
use serde_json::{Value, json};

/// `hearthd` next to this test's `hearth`, or `$HEARTHD`.
fn hearthd_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("HEARTHD") {
        return PathBuf::from(p);
    }
    let path = Path::new(env!("CARGO_BIN_EXE_hearth")).with_file_name("hearthd");
    assert!(
        path.is_file(),
        "{} missing: build it first (`cargo build -p hearthd`; `make test` builds every \
         binary before the tests) or set HEARTHD",
        path.display()
    );
    path
}

/// A running `hearthd` on a free loopback port, killed on drop.
struct Daemon {
    child: Child,
    url: String,
    data: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_hearthd(data: &Path) -> Daemon {
    let mut child = Command::new(hearthd_binary())
        .args(["--data-dir", data.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--log", "warn"])
        // The test's package server is on loopback, refused unless allowed.
        .args(["--allow-package-source", "127.0.0.1/32"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("hearthd listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    std::thread::spawn(move || for _ in out.lines() {});
    Daemon {
        child,
        url,
        data: data.to_owned(),
    }
}

/// The isolated environment of one test: a home for the CLI's config and a hearthd.
struct World {
    home: tempfile::TempDir,
    hearthd: Daemon,
}

impl World {
    fn new() -> World {
        let home = tempfile::tempdir().unwrap();
        let hearthd = start_hearthd(&home.path().join("data"));
        let w = World { home, hearthd };
        // The setup code, read from its file as a person with access to the machine would.
        let code = std::fs::read_to_string(w.home.path().join("data/setup-code")).unwrap();
        let params = format!(
            r#"{{"password": "correct horse battery", "hostname": "box", "setupCode": "{}"}}"#,
            code.trim()
        );
        let out = w.hearth(&["rpc", "setup.complete", &params]);
        assert!(out.status.success(), "{}", stderr(&out));
        w
    }

    /// `hearth ARGS` as root on the box (the local auth cookie).
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
        cmd.args(["--url", &self.hearthd.url])
            .args(args)
            .env_remove("HEARTH_URL")
            .env_remove("HEARTH_TOKEN")
            .env("HEARTH_DATA_DIR", &self.hearthd.data)
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("HOME", self.home.path())
            .stdin(Stdio::null());
        cmd
    }

    fn hearth(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn installed_ids(&self) -> Vec<String> {
        let out = self.hearth(&["package", "list", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn uploads_left(&self) -> usize {
        std::fs::read_dir(self.hearthd.data.join(hearth_layout::PACKAGE_UPLOAD_DIR))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn key(seed: &str) -> SigningKey {
    SigningKey::from_bytes(blake3::hash(seed.as_bytes()).as_bytes())
}

/// Writes a signed package `id` for this machine with an image of `image_len` bytes.
fn write_package(path: &Path, id: &str, key: &SigningKey, image_len: usize) {
    let arch = std::env::consts::ARCH;
    let manifest = json!({
        "id": id, "title": format!("The {id}"), "version": "1.0.0:0", "license": "MIT",
        "packageRepo": "https://example.com/p", "upstreamRepo": "https://example.com/u",
        "description": {"short": "A test service", "long": "A test service for installs."},
        "images": {"main": {"arch": [arch]}}, "volumes": ["main"],
    });
    let spec = json!({"daemons": [{"id": "web", "image": "main", "command": ["httpd"]}]});
    // Not all one byte value, so nothing can compress it away on the way.
    let image: Vec<u8> = (0..image_len)
        .map(|i| u8::try_from(i * 7 % 251).unwrap())
        .collect();
    let mut b = ArchiveBuilder::new();
    b.add_file_bytes("manifest.json", manifest.to_string())
        .unwrap();
    b.add_file_bytes("hearth.json", spec.to_string()).unwrap();
    b.add_file_bytes(&format!("images/{arch}/main.squashfs"), image)
        .unwrap();
    b.write_file(key, path).unwrap();
}

/// Runs `cmd` and returns its output and its peak resident memory (VmHWM, bytes) as
/// last seen while it ran (polled, so a lower bound; the whole upload takes long
/// enough that holding the file in memory would be seen).
fn run_measuring_peak(mut cmd: Command) -> (Output, u64) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let mut samples = 0;
    while child.try_wait().unwrap().is_none() {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb * 1024);
            samples += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(samples > 0, "the upload ended before it could be observed");
    (child.wait_with_output().unwrap(), peak)
}

#[test]
fn upload_trust_and_install_with_clear_errors() {
    let w = World::new();
    let publisher = key("publisher");
    let fingerprint = blake3::hash(publisher.verifying_key().as_bytes())
        .to_hex()
        .to_string();
    let pkg = w.path("hello.s9pk");
    // 64 MiB: far more than the CLI needs to stream it.
    write_package(&pkg, "hello", &publisher, 64 << 20);
    let pkg_arg = pkg.to_str().unwrap();

    // A missing file: named, nothing sent.
    let out = w.hearth(&["package", "install", w.path("nope.s9pk").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("nope.s9pk") && err.contains("No such file"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // Not a package: refused here, before any upload.
    let junk = w.path("notes.s9pk");
    std::fs::write(&junk, "these are my notes, not a package\n").unwrap();
    let out = w.hearth(&["package", "install", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("notes.s9pk is not a valid .s9pk package"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // An untrusted signer: the fingerprint and the commands that fix it.
    let out = w.hearth(&["package", "install", pkg_arg]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&fingerprint), "{err}");
    assert!(
        err.contains("hearth package trust add --public-key=\"$(hearth s9pk inspect --signer "),
        "{err}"
    );
    assert!(err.contains("--allow-untrusted"), "{err}");
    assert!(err.contains("does not trust"), "{err}");
    assert!(err.contains("hello.s9pk"), "{err}");
    assert!(w.installed_ids().is_empty());
    assert_eq!(w.uploads_left(), 0, "a refused upload is deleted");

    // The suggested commands work: trust the key from the package, then install.
    let out = w.hearth(&["s9pk", "inspect", "--signer", pkg_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pem = stdout(&out);
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    // As the hint spells it: `--public-key=…` (a PEM starts with dashes).
    let out = w.hearth(&["package", "trust", "add", &format!("--public-key={pem}")]);
    assert!(out.status.success(), "{}", stderr(&out));

    let (out, peak) = run_measuring_peak(w.command(&["package", "install", pkg_arg]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["id:", "hello"]),
        "{text}"
    );
    assert!(text.contains(&fingerprint), "{text}");
    assert!(
        peak < 32 << 20,
        "hearth peaked at {peak} bytes for a 64 MiB upload"
    );
    // stderr is not a terminal here: no progress line.
    assert_eq!(stderr(&out), "");
    assert_eq!(w.installed_ids(), ["hello"]);
    assert_eq!(w.uploads_left(), 0);
    let archive = w.hearthd.data.join("packages/archive/hello");
    assert_eq!(std::fs::read_dir(&archive).unwrap().count(), 1);

    // Installing it again is refused, on one line, with the reason.
    let out = w.hearth(&["package", "install", pkg_arg]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("already installed"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // --allow-untrusted with --json: installed, recorded as untrusted.
    let other = w.path("other.s9pk");
    write_package(&other, "other", &key("stranger"), 4096);
    let out = w.hearth(&[
        "package",
        "install",
        other.to_str().unwrap(),
        "--allow-untrusted",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["id"], "other");
    assert_eq!(result["version"], "1.0.0:0");
    assert_eq!(result["signerTrusted"], false);

    // --path: a file already in the server's import directory (here the same
    // machine); anywhere else is refused.
    let third = w.path("third.s9pk");
    write_package(&third, "third", &publisher, 4096);
    let out = w.hearth(&["package", "install", "--path", third.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("not a package file in the import directory"),
        "{err}"
    );
    let import = w.hearthd.data.join(hearth_layout::PACKAGE_IMPORT_DIR);
    std::fs::copy(&third, import.join("third.s9pk")).unwrap();
    let out = w.hearth(&["package", "install", "--path", "third.s9pk", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["id"], "third");
    assert_eq!(result["signerTrusted"], true);
    // A server path that does not exist: the same refusal, named.
    let out = w.hearth(&["package", "install", "--path", "/nonexistent/x.s9pk"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("package.install") && err.contains("not a package file in the import"),
        "{err}"
    );

    // An http:// SOURCE: hearthd downloads it (package.install {url}).
    let fourth = w.path("fourth.s9pk");
    write_package(&fourth, "fourth", &publisher, 4096);
    let url = serve_once(std::fs::read(&fourth).unwrap());
    let out = w.hearth(&["package", "install", &url, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["id"], "fourth");

    let mut ids = w.installed_ids();
    ids.sort();
    assert_eq!(ids, ["fourth", "hello", "other", "third"]);
}

/// Serves `body` to the first GET on a loopback port; returns its URL.
fn serve_once(body: Vec<u8>) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/fourth.s9pk", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
                break;
            }
        }
        let mut stream = reader.into_inner();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
    });
    url
}

#[test]
fn without_credentials_nothing_is_uploaded_and_the_hint_says_how_to_log_in() {
    let w = World::new();
    let pkg = w.path("hello.s9pk");
    write_package(&pkg, "hello", &key("publisher"), 4096);
    let out = w
        .command(&["package", "install", pkg.to_str().unwrap()])
        .env("HEARTH_DATA_DIR", w.path("no-data-dir"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("code 34") && err.contains("auth login"),
        "{err}"
    );
    assert_eq!(w.uploads_left(), 0);
    assert!(w.installed_ids().is_empty());
}
