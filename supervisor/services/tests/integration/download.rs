//! `Packages::install_url` against a real HTTP server on 127.0.0.1 (a small
//! std::net server in a thread): install, size limits, server errors, bad URLs, the
//! address policy (loopback refused unless allowed, redirects checked per hop) and
//! credentials kept out of the state, the errors and the log.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hearth_services::{DownloadError, InstallError, InstallOptions, Packages, SourcePolicy};

use super::common::{Pkg, World, key, pem};

/// How the server answers.
#[derive(Clone)]
enum Answer {
    /// 200 with the file and its Content-Length.
    File(PathBuf),
    /// 200 with the file, no Content-Length (ends with the connection).
    Unsized(PathBuf),
    /// This status, empty body.
    Status(u16),
    /// 302 to this location.
    Redirect(String),
}

/// `w`'s packages allowed to fetch from 127.0.0.1 (what these tests' servers use).
fn loopback(w: &World) -> Packages {
    w.packages
        .clone()
        .with_sources(SourcePolicy::from_cidrs(&["127.0.0.1/32"]).unwrap())
}

/// Serves `answer` to every request; returns the base URL.
fn serve(answer: Answer) -> String {
    serve_on("127.0.0.1", answer).0
}

/// Serves `answer` on `ip`; returns the base URL and the count of connections.
fn serve_on(ip: &str, answer: Answer) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = match &answer {
                Answer::File(p) => {
                    let body = std::fs::read(p).unwrap();
                    write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .and_then(|()| conn.write_all(&body))
                }
                Answer::Unsized(p) => {
                    let body = std::fs::read(p).unwrap();
                    write!(conn, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                        .and_then(|()| conn.write_all(&body))
                }
                Answer::Status(s) => write!(
                    conn,
                    "HTTP/1.1 {s} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                ),
                Answer::Redirect(to) => write!(
                    conn,
                    "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                ),
            };
        }
    });
    (format!("http://{addr}"), hits)
}

fn uploads_empty(w: &World) -> bool {
    std::fs::read_dir(w.data().join("packages/upload"))
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

#[test]
fn install_from_a_url_downloads_verifies_installs_and_cleans_up() {
    let w = World::new();
    let dev = key("dev");
    w.packages.trust_add(&pem(&dev), None).unwrap();
    let path = Pkg::new("hello").write(&dev, w.dir.path());
    let url = serve(Answer::File(path));
    let (res, _) = loopback(&w)
        .install_url(&format!("{url}/hello.s9pk"), InstallOptions::default())
        .unwrap();
    assert_eq!(res.id, "hello");
    let e = w.entry("hello");
    assert_eq!(e["stateInfo"]["state"], "installed");
    assert!(
        e["stateInfo"].get("progress").is_none(),
        "progress cleared: {e}"
    );
    assert!(uploads_empty(&w), "downloaded file left behind");
    assert_eq!(
        w.store.get("/public/packageDownloads").unwrap(),
        serde_json::json!({}),
        "download record left behind"
    );
}

#[test]
fn unsized_body_is_accepted_and_an_untrusted_download_is_refused_and_removed() {
    let w = World::new();
    let dev = key("dev");
    let path = Pkg::new("hello").write(&dev, w.dir.path());
    let url = serve(Answer::Unsized(path));
    let err = loopback(&w)
        .install_url(&format!("{url}/p.s9pk"), InstallOptions::default())
        .unwrap_err();
    assert!(matches!(err, InstallError::UntrustedSigner { .. }), "{err}");
    assert!(uploads_empty(&w));
    let opts = InstallOptions {
        allow_untrusted: true,
        ..InstallOptions::default()
    };
    loopback(&w)
        .install_url(&format!("{url}/p.s9pk"), opts)
        .unwrap();
    assert_eq!(w.entry("hello")["signer"]["trusted"], false);
}

#[test]
fn packages_over_the_limit_are_refused_declared_or_streamed() {
    let dev = key("dev");
    for unsized_body in [false, true] {
        let w = World::new();
        let path = Pkg::new("hello").write(&dev, w.dir.path());
        let len = std::fs::metadata(&path).unwrap().len();
        let url = serve(if unsized_body {
            Answer::Unsized(path)
        } else {
            Answer::File(path)
        });
        let packages = loopback(&w).with_download_limit(len - 1);
        let err = packages
            .install_url(&format!("{url}/p.s9pk"), InstallOptions::default())
            .unwrap_err();
        assert!(
            matches!(err, InstallError::Download(DownloadError::TooLarge { .. })),
            "{err}"
        );
        assert!(uploads_empty(&w), "partial download left behind");
        assert!(w.entry("hello").is_null());
    }
}

#[test]
fn server_errors_and_bad_urls_are_clear_and_write_nothing() {
    let w = World::new();
    let url = serve(Answer::Status(404));
    let err = loopback(&w)
        .install_url(&format!("{url}/missing.s9pk"), InstallOptions::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            InstallError::Download(DownloadError::Status { status: 404, .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("404"), "{err}");
    for bad in ["file:///etc/passwd", "ftp://x/p.s9pk", "/tmp/p.s9pk"] {
        let err = w
            .packages
            .install_url(bad, InstallOptions::default())
            .unwrap_err();
        assert!(
            matches!(err, InstallError::Download(DownloadError::BadUrl { .. })),
            "{bad}: {err}"
        );
    }
    // Nothing listens there.
    let (closed, _held) = closed_port();
    let err = loopback(&w)
        .install_url(
            &format!("http://{closed}/p.s9pk"),
            InstallOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            InstallError::Download(DownloadError::Unreachable { .. })
        ),
        "{err}"
    );
    assert!(uploads_empty(&w));
    assert_eq!(w.package_files(), Vec::<String>::new());
}

#[test]
fn loopback_is_refused_by_default_before_connecting_and_allowed_by_the_setting() {
    let w = World::new();
    let dev = key("dev");
    w.packages.trust_add(&pem(&dev), None).unwrap();
    let path = Pkg::new("hello").write(&dev, w.dir.path());
    let (url, hits) = serve_on("127.0.0.1", Answer::File(path));
    let (closed, _held) = closed_port();
    let mut messages = Vec::new();
    for target in [
        format!("{url}/hello.s9pk"),
        format!(
            "http://localhost:{}/hello.s9pk",
            &url[url.rfind(':').unwrap() + 1..]
        ),
        format!("http://{closed}/hello.s9pk"),
    ] {
        let err = w
            .packages
            .install_url(&target, InstallOptions::default())
            .unwrap_err();
        assert!(
            matches!(
                err,
                InstallError::Download(DownloadError::Unreachable { .. })
            ),
            "{target}: {err}"
        );
        messages.push(err.to_string().replace(&target, "URL"));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "connected although refused");
    // Refused (open port) and closed port read the same: no port-scan oracle.
    messages.dedup();
    assert_eq!(messages.len(), 1, "{messages:?}");
    // A closed port with loopback allowed: the same error as a refused address.
    let err = loopback(&w)
        .install_url(
            &format!("http://{closed}/p.s9pk"),
            InstallOptions::default(),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string()
            .replace(&format!("http://{closed}/p.s9pk"), "URL"),
        messages[0]
    );
    assert!(uploads_empty(&w));
    let (res, _) = loopback(&w)
        .install_url(&format!("{url}/hello.s9pk"), InstallOptions::default())
        .unwrap();
    assert_eq!(res.id, "hello");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn a_redirect_to_a_refused_address_is_refused_and_an_allowed_one_followed() {
    let w = World::new();
    let dev = key("dev");
    w.packages.trust_add(&pem(&dev), None).unwrap();
    let path = Pkg::new("hello").write(&dev, w.dir.path());
    let (target, target_hits) = serve_on("127.0.0.1", Answer::File(path));
    // The first hop is on 127.0.0.2, the only address the policy allows.
    let (first, _) = serve_on("127.0.0.2", Answer::Redirect(format!("{target}/p.s9pk")));
    let only_first = w
        .packages
        .clone()
        .with_sources(SourcePolicy::from_cidrs(&["127.0.0.2/32"]).unwrap());
    let err = only_first
        .install_url(&format!("{first}/p.s9pk"), InstallOptions::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            InstallError::Download(DownloadError::Unreachable { .. })
        ),
        "{err}"
    );
    assert_eq!(
        target_hits.load(Ordering::SeqCst),
        0,
        "followed the redirect"
    );
    assert!(uploads_empty(&w));
    // Both allowed: the redirect (relative too) is followed.
    let both = w
        .packages
        .clone()
        .with_sources(SourcePolicy::from_cidrs(&["127.0.0.0/8"]).unwrap());
    let (res, _) = both
        .install_url(&format!("{first}/p.s9pk"), InstallOptions::default())
        .unwrap();
    assert_eq!(res.id, "hello");
    assert_eq!(target_hits.load(Ordering::SeqCst), 1);
    // A redirect loop ends.
    let (looping, hits) = serve_on("127.0.0.1", Answer::Redirect("/again".into()));
    let err = both
        .install_url(&format!("{looping}/p.s9pk"), InstallOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, InstallError::Download(DownloadError::Redirect { .. })),
        "{err}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        6,
        "the first request and 5 redirects"
    );
}

/// An address nothing listens on, kept so while the returned sockets live: its port is the
/// local end of a connected pair, so no parallel test can start listening there.
fn closed_port() -> (std::net::SocketAddr, [std::net::TcpStream; 2]) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client.local_addr().unwrap(), [client, server])
}
