//! `hearth package install SOURCE | --path SERVER_PATH [--allow-untrusted]`.
//!
//! # Design
//! * A local file is checked here first (it exists, is a regular file, and opens as
//!   an S9PK: magic, signature, root table of contents; bodies are not read), so a
//!   typo or a wrong file fails at once instead of after an upload. `hearthd` still
//!   verifies everything itself.
//! * Credentials are settled with one cheap authenticated call (`package.trust.list`)
//!   before the upload, through the same fallback as every other command (a stale
//!   session is forgotten, the next credential tried), so a refused credential never
//!   costs a whole upload and the upload needs no retry.
//! * The file is streamed from disk in the request body with its `Content-Length`
//!   (`hearthd` refuses an oversized package before reading it); it is never read
//!   whole into memory. On a terminal, stderr shows one progress line, redrawn at most
//!   every [`PROGRESS_EVERY`].
//! * `--path` and an `http(s)://` SOURCE call `package.install` with `path` / `url`
//!   (the latter only when this CLI's catalogue has that param).
//! * A refused signer is reported with its fingerprint and the commands that trust
//!   it or override the refusal.
//!
//! # Rejected alternatives
//! Multipart form upload: `hearthd` takes the raw body, and a form adds a boundary
//! parser on both ends for one file.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hearth_rpc::Auth;
use serde_json::{Map, Value};

use super::commands::InstallSource;
use super::http::{CallError, Reply};
use super::{ClientError, Connection, print, print_json};

/// Shortest time between two redraws of the progress line.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// The method an install performs.
const INSTALL_METHOD: &str = "package.install";
/// Cheap authenticated call that settles which credential works before an upload.
const PROBE_METHOD: &str = "package.trust.list";

/// Errors of `hearth package install` before or after the call itself.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InstallError {
    /// The local file cannot be opened or read.
    #[error("reading package {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The local file is not a regular file.
    #[error("{path} is not a file")]
    NotAFile {
        /// The path given.
        path: PathBuf,
    },
    /// The local file is not a valid S9PK package.
    #[error("{path} is not a valid .s9pk package: {source}")]
    NotAPackage {
        /// The file.
        path: PathBuf,
        /// Why it does not open.
        #[source]
        source: Box<hearth_s9pk::ReadError>,
    },
    /// `hearthd` refused the signer: not in its trusted keys.
    #[error(
        "package.install: {package} is signed by a key this hearth does not trust \
         (fingerprint {fingerprint}); if you trust its publisher, run `hearth package trust \
         add --public-key=\"{key_source}\"` and install again, or install it anyway with \
         --allow-untrusted"
    )]
    UntrustedSigner {
        /// The package as the user named it.
        package: String,
        /// The signer's fingerprint, as the server reported it.
        fingerprint: String,
        /// Where the user gets the PEM key from (a command or a placeholder).
        key_source: String,
    },
}

/// Runs `hearth package install`.
pub(crate) fn run(
    conn: &mut Connection,
    source: InstallSource,
    allow_untrusted: bool,
    json: bool,
) -> Result<(), ClientError> {
    let outcome = match &source {
        InstallSource::Upload(path) => upload(conn, path, allow_untrusted),
        InstallSource::ServerPath(path) => {
            call_install(conn, "path", path.clone(), allow_untrusted)
        }
        InstallSource::Url(url) => call_install(conn, "url", url.clone(), allow_untrusted),
    };
    let result = outcome.map_err(|e| explain_untrusted(e, &source))?;
    if json {
        print_json(&result)
    } else {
        print(&super::format::human(&result))
    }
}

fn call_install(
    conn: &mut Connection,
    key: &str,
    value: String,
    allow_untrusted: bool,
) -> Result<Value, ClientError> {
    let mut params = Map::new();
    params.insert(key.to_owned(), Value::String(value));
    if allow_untrusted {
        params.insert("allowUntrusted".into(), Value::Bool(true));
    }
    conn.call(INSTALL_METHOD, Value::Object(params), Auth::Authenticated)
}

fn upload(conn: &mut Connection, path: &Path, allow_untrusted: bool) -> Result<Value, ClientError> {
    let (file, len) = open_package(path)?;
    let credential = conn.working_credential(PROBE_METHOD)?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut body = Progress::new(file, len, &name, io::stderr().is_terminal());
    let reply: Result<Reply, CallError> =
        conn.client
            .upload_package(&mut body, len, allow_untrusted, &credential);
    body.finish();
    if let Some(e) = body.read_error.take() {
        return Err(InstallError::File {
            path: path.to_owned(),
            source: e,
        }
        .into());
    }
    reply.map(|r| r.result).map_err(|e| conn.explain(e, false))
}

/// Opens `path` and checks that it is a regular file holding an S9PK (signature and
/// root table of contents); returns it rewound, with its length.
fn open_package(path: &Path) -> Result<(File, u64), InstallError> {
    let file_err = |source| InstallError::File {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(file_err)?;
    let meta = file.metadata().map_err(file_err)?;
    if !meta.is_file() {
        return Err(InstallError::NotAFile {
            path: path.to_owned(),
        });
    }
    let reader =
        hearth_s9pk::S9pkReader::open(&file, None).map_err(|source| InstallError::NotAPackage {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
    drop(reader);
    (&file).rewind().map_err(file_err)?;
    Ok((file, meta.len()))
}

/// Adds the fingerprint and the way out to a refused signer.
fn explain_untrusted(e: ClientError, source: &InstallSource) -> ClientError {
    let ClientError::Call(error) = e else {
        return e;
    };
    let fingerprint = error.rpc_error().and_then(|r| {
        (r.data_field("reason").and_then(Value::as_str) == Some("untrustedSigner"))
            .then(|| r.data_field("fingerprint").and_then(Value::as_str))
            .flatten()
            .map(str::to_owned)
    });
    let Some(fingerprint) = fingerprint else {
        return ClientError::Call(error);
    };
    let (package, key_source) = match source {
        InstallSource::Upload(path) => (
            path.display().to_string(),
            format!(
                "$(hearth s9pk inspect --signer {})",
                shell_word(&path.display().to_string())
            ),
        ),
        InstallSource::ServerPath(p) | InstallSource::Url(p) => {
            (p.clone(), "$(cat PUBLISHER-KEY.pem)".to_owned())
        }
    };
    ClientError::Install(InstallError::UntrustedSigner {
        package,
        fingerprint,
        key_source,
    })
}

/// `text` quoted for a POSIX shell inside double quotes, if it needs quoting.
fn shell_word(text: &str) -> String {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c));
    if plain && !text.is_empty() {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The upload body: reads the file, counts bytes, draws the progress line.
struct Progress {
    file: File,
    total: u64,
    sent: u64,
    name: String,
    /// Whether to draw (stderr is a terminal).
    draw: bool,
    last_drawn: Option<Instant>,
    /// Whether the end of the upload has been drawn.
    ended: bool,
    started: Instant,
    /// A read error of the file, kept to report it as such (ureq only sees a failed body).
    read_error: Option<io::Error>,
}

impl Progress {
    fn new(file: File, total: u64, name: &str, draw: bool) -> Progress {
        Progress {
            file,
            total,
            sent: 0,
            name: name.to_owned(),
            draw,
            last_drawn: None,
            ended: false,
            started: Instant::now(),
            read_error: None,
        }
    }

    fn redraw(&mut self, force: bool) {
        if !self.draw {
            return;
        }
        let now = Instant::now();
        if !force && self.last_drawn.is_some_and(|t| now - t < PROGRESS_EVERY) {
            return;
        }
        self.last_drawn = Some(now);
        let line = progress_line(&self.name, self.sent, self.total, now - self.started);
        let mut err = io::stderr().lock();
        // Best effort: a progress line that cannot be drawn is no reason to fail.
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }

    /// Leaves the terminal line clean for the result or the error.
    fn finish(&mut self) {
        if self.draw && self.last_drawn.is_some() {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

impl Read for Progress {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.file.read(buf) {
            Ok(n) => n,
            Err(e) => {
                self.read_error = Some(io::Error::new(e.kind(), e.to_string()));
                return Err(e);
            }
        };
        self.sent += n as u64;
        if self.ended {
            return Ok(n);
        }
        let done = n == 0 || self.sent >= self.total;
        self.redraw(done);
        if done && self.draw {
            self.ended = true;
            let mut err = io::stderr().lock();
            let _ = write!(err, "; installing…");
            let _ = err.flush();
        }
        Ok(n)
    }
}

/// `Uploading NAME: 12.0 MiB of 100.0 MiB (12%), 3.4 MiB/s`.
fn progress_line(name: &str, sent: u64, total: u64, elapsed: Duration) -> String {
    let percent = sent.saturating_mul(100).checked_div(total).unwrap_or(100);
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        format!(", {}/s", size(sent as f64 / secs))
    } else {
        String::new()
    };
    format!(
        "Uploading {name}: {} of {} ({percent}%){rate}",
        size(sent as f64),
        size(total as f64)
    )
}

/// Bytes in binary units with one decimal.
fn size(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_reads_naturally() {
        assert_eq!(
            progress_line("a.s9pk", 0, 0, Duration::ZERO),
            "Uploading a.s9pk: 0 B of 0 B (100%)"
        );
        assert_eq!(
            progress_line("a.s9pk", 512 * 1024, 1024 * 1024, Duration::from_secs(2)),
            "Uploading a.s9pk: 512.0 KiB of 1.0 MiB (50%), 256.0 KiB/s"
        );
        assert_eq!(size(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("dist/hello_1.0.s9pk"), "dist/hello_1.0.s9pk");
        assert_eq!(shell_word("my pkg.s9pk"), "'my pkg.s9pk'");
        assert_eq!(shell_word("it's.s9pk"), r"'it'\''s.s9pk'");
    }

    #[test]
    fn local_file_checks_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.s9pk");
        let e = open_package(&missing).unwrap_err();
        assert!(matches!(e, InstallError::File { .. }), "{e}");
        assert!(e.to_string().contains("missing.s9pk"), "{e}");

        assert!(matches!(
            open_package(dir.path()).unwrap_err(),
            InstallError::NotAFile { .. }
        ));

        let junk = dir.path().join("junk.s9pk");
        std::fs::write(&junk, b"PK\x03\x04 a zip file, not an s9pk").unwrap();
        let e = open_package(&junk).unwrap_err();
        assert!(matches!(e, InstallError::NotAPackage { .. }), "{e}");
        assert!(e.to_string().contains("junk.s9pk"), "{e}");
    }
}
