//! Credentials and queries in a download URL reach neither the public state, the
//! errors nor the log (a global `tracing` subscriber: its own test binary, so every
//! event of the download is seen). The URL itself is used for the fetch.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "integration/common.rs"]
#[allow(dead_code)]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;

use common::{Pkg, World, key};
use hearth_services::{InstallError, InstallOptions, SourcePolicy};

/// Serves `body` (its second half 500 ms after the first), or `status` with no body.
fn serve(body: Option<Vec<u8>>, status: u16) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = match &body {
                Some(body) => {
                    let (a, b) = body.split_at(body.len() / 2);
                    write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .and_then(|()| conn.write_all(a))
                    .and_then(|()| conn.flush())
                    .map(|()| std::thread::sleep(std::time::Duration::from_millis(500)))
                    .and_then(|()| conn.write_all(b))
                }
                None => write!(
                    conn,
                    "HTTP/1.1 {status} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                ),
            };
        }
    });
    format!("http://{addr}")
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn credentials_and_queries_in_a_url_reach_neither_the_state_the_errors_nor_the_log() {
    let w = World::new();
    let dev = key("dev");
    let path = Pkg::new("hello").write(&dev, w.dir.path());
    let url = serve(Some(std::fs::read(path).unwrap()), 200);
    let with_secrets = url.replace("http://", "http://user:hunter2@") + "/p.s9pk?token=s3cr3t#frag";
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let packages = w
        .packages
        .clone()
        .with_sources(SourcePolicy::from_cidrs(&["127.0.0.1/32"]).unwrap());
    let store = w.store.clone();
    let seen_urls;
    let err = {
        // Watch the public state while the download runs (every revision).
        let (tx, rx) = std::sync::mpsc::channel();
        let watcher = std::thread::spawn(move || {
            let mut urls = Vec::new();
            while rx.try_recv().is_err() {
                if let Ok(v) = store.get("/public/packageDownloads") {
                    urls.push(v.to_string());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            urls
        });
        let err = packages
            .install_url(&with_secrets, InstallOptions::default())
            .unwrap_err();
        tx.send(()).unwrap();
        seen_urls = watcher.join().unwrap();
        err
    };
    // Untrusted signer: the download itself worked.
    assert!(matches!(err, InstallError::UntrustedSigner { .. }), "{err}");
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("package downloaded"), "{text}");
    let everything = format!("{err}\n{text}\n{}", seen_urls.join("\n"));
    for secret in ["hunter2", "s3cr3t", "frag"] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
    assert!(
        seen_urls.iter().any(|u| u.contains("127.0.0.1")),
        "the download was recorded: {seen_urls:?}"
    );
    // An error of the download itself (a status) neither.
    let missing = serve(None, 404);
    let err = packages
        .install_url(
            &(missing.replace("http://", "http://user:hunter2@") + "/p?token=s3cr3t"),
            InstallOptions::default(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    assert!(!err.to_string().contains("hunter2") && !err.to_string().contains("s3cr3t"));
    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(!log.contains("hunter2") && !log.contains("s3cr3t"), "{log}");
}
