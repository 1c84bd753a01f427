//! `package.install {url}`: the package is streamed to disk under `packages/upload/`
//! with a size limit, then installed like a file on the server (every check happens
//! on the complete download, before anything is unpacked), then deleted.
//!
//! # Design
//! * Blocking HTTP with `ureq` (rustls, the workspace's one HTTP client and TLS stack;
//!   the CLI uses it too): the install path is blocking already (it runs in
//!   `spawn_blocking`), and a 1 GiB package flows through a 64 KiB buffer.
//! * Limits: `Content-Length` above the limit is refused before the body is read; the
//!   body is cut off at the limit + 1 byte; a connection that stalls for
//!   [`STALL_TIMEOUT`] fails. Redirects are followed (at most 5), `http` and `https`
//!   only.
//! * Progress: before the package's id is known (it is read from the verified
//!   archive), the download shows in `/public/packageDownloads/<n> {url, progress
//!   {phase: "download", bytesDone, bytesTotal?}}` (at most every 250 ms), removed when
//!   the download ends either way.
//! * The partial file is `<random>.s9pk.part`, removed on any failure.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hearth_layout::PACKAGE_UPLOAD_DIR;
use hearth_store::Store;
use serde_json::{Value, json};

/// Longest wait for the server to connect, answer, or send more of the body.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Default size limit of a downloaded package.
pub const DEFAULT_DOWNLOAD_LIMIT: u64 = 4 << 30;
const DOWNLOADS: &str = "/public/packageDownloads";

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// Not an absolute `http(s)` URL.
    #[error("{url:?} is not an http:// or https:// URL")]
    BadUrl {
        /// The URL given.
        url: String,
    },
    /// The request failed (DNS, connection, TLS, timeout).
    #[error("download {url}: {source}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The server answered with an error status.
    #[error("download {url}: the server answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// The package is larger than the limit.
    #[error("download {url}: larger than the limit of {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// Writing the file failed.
    #[error("download {url} to {path}: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Downloads `url` into `packages/upload/` under `data_dir` (at most `limit` bytes);
/// returns the complete file's path. Progress goes to the store (see module docs).
pub(crate) fn download(
    store: &Store,
    data_dir: &Path,
    url: &str,
    limit: u64,
) -> Result<PathBuf, DownloadError> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(DownloadError::BadUrl {
            url: url.to_owned(),
        });
    }
    let dir = data_dir.join(PACKAGE_UPLOAD_DIR);
    let io = |path: &Path| {
        let (url, path) = (url.to_owned(), path.to_owned());
        move |source| DownloadError::Io { url, path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let token = random_hex();
    let part = dir.join(format!("{token}.s9pk.part"));
    let done = dir.join(format!("{token}.s9pk"));
    let slot = register(store, url);
    let result = fetch(store, slot, url, &part, limit).and_then(|()| {
        std::fs::rename(&part, &done).map_err(io(&part))?;
        Ok(done.clone())
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    unregister(store, slot);
    result
}

fn fetch(
    store: &Store,
    slot: Option<u64>,
    url: &str,
    part: &Path,
    limit: u64,
) -> Result<(), DownloadError> {
    let http = |source: ureq::Error| DownloadError::Http {
        url: url.to_owned(),
        source: Box::new(source),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(5)
        .timeout_connect(Some(STALL_TIMEOUT))
        .timeout_recv_response(Some(STALL_TIMEOUT))
        .timeout_per_read(Some(STALL_TIMEOUT))
        .user_agent(format!("hearthd/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let response = agent.get(url).call().map_err(http)?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(DownloadError::Status {
            url: url.to_owned(),
            status,
        });
    }
    let total = response.body().content_length();
    let too_large = || DownloadError::TooLarge {
        url: url.to_owned(),
        limit,
    };
    if total.is_some_and(|t| t > limit) {
        return Err(too_large());
    }
    let io = |source| DownloadError::Io {
        url: url.to_owned(),
        path: part.to_owned(),
        source,
    };
    let mut out = File::create(part).map_err(io)?;
    let mut body = response.into_body().into_reader();
    let mut buf = vec![0u8; 64 * 1024];
    let mut done: u64 = 0;
    let mut last = Instant::now();
    progress(store, slot, done, total);
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(match e.downcast::<ureq::Error>() {
                    Ok(u) => http(u),
                    Err(e) => io(e),
                });
            }
        };
        done += n as u64;
        if done > limit {
            return Err(too_large());
        }
        out.write_all(&buf[..n]).map_err(io)?;
        if last.elapsed() >= crate::progress::EVERY {
            progress(store, slot, done, total);
            last = Instant::now();
        }
    }
    out.sync_all().map_err(io)?;
    progress(store, slot, done, total);
    tracing::info!(%url, bytes = done, "package downloaded");
    Ok(())
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Unique enough for a file name: time and pid.
        let t = crate::doc::now_ms() ^ u64::from(std::process::id());
        bytes[..8].copy_from_slice(&t.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Adds `/public/packageDownloads/<n>`; `None` if the store refused (the download goes
/// on without progress).
fn register(store: &Store, url: &str) -> Option<u64> {
    let added = store.mutate(|d| {
        let map = crate::doc::object_mut(d, DOWNLOADS)?;
        let n = (1..)
            .find(|n: &u64| !map.contains_key(&n.to_string()))
            .unwrap_or(0);
        map.insert(
            n.to_string(),
            json!({"url": url, "progress": {"phase": "download", "bytesDone": 0}}),
        );
        Ok::<_, crate::error::PackageError>(n)
    });
    match added {
        Ok(m) => Some(m.value),
        Err(error) => {
            tracing::warn!(%error, "cannot record the download");
            None
        }
    }
}

fn progress(store: &Store, slot: Option<u64>, done: u64, total: Option<u64>) {
    let Some(n) = slot else {
        return;
    };
    let pointer = format!("{DOWNLOADS}/{n}/progress");
    let mut p = json!({"phase": "download", "bytesDone": done});
    if let Some(t) = total {
        p["bytesTotal"] = Value::from(t);
    }
    let written = store.mutate(|d| {
        if let Some(slot) = d.pointer_mut(&pointer) {
            *slot = p;
        }
        Ok::<_, crate::error::PackageError>(())
    });
    if let Err(error) = written {
        tracing::warn!(%error, "cannot record download progress");
    }
}

fn unregister(store: &Store, slot: Option<u64>) {
    let Some(n) = slot else {
        return;
    };
    let removed = store.mutate(|d| {
        if let Some(Value::Object(map)) = d.pointer_mut(DOWNLOADS) {
            map.remove(&n.to_string());
        }
        Ok::<_, crate::error::PackageError>(())
    });
    if let Err(error) = removed {
        tracing::warn!(%error, "cannot remove the download record");
    }
}
