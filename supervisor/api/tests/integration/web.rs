//! `--web-dir`: the UI's files over the real server (headers users and browsers rely on).

use std::path::Path;

use crate::common::{Options, TestServer, http};

const INDEX: &str = "<!doctype html><title>Hearth</title>";
const JS: &str = "console.log('app')";

/// A web dir like `web/dist`: index.html, a hashed asset with its precompressed
/// siblings, an unhashed file; and a secret next to (outside) it.
fn web_dir(root: &Path) -> std::path::PathBuf {
    let dir = root.join("dist");
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("index.html"), INDEX).unwrap();
    std::fs::write(dir.join("assets/index-BX3k_9aZ.js"), JS).unwrap();
    std::fs::write(dir.join("assets/index-BX3k_9aZ.js.br"), b"BR-BYTES").unwrap();
    std::fs::write(dir.join("assets/index-BX3k_9aZ.js.gz"), b"GZ-BYTES").unwrap();
    std::fs::write(dir.join("favicon.svg"), "<svg/>").unwrap();
    std::fs::write(root.join("secret.txt"), "top secret").unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), dir.join("link.txt")).unwrap();
    dir
}

async fn server() -> (TestServer, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let dir = web_dir(root.path());
    let s = TestServer::start_with(Options {
        config: Some(Box::new(move |c| c.web_dir = Some(dir))),
        ..Options::default()
    })
    .await;
    (s, root)
}

fn body(r: &crate::common::HttpResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[tokio::test]
async fn index_is_no_cache_with_etag_and_strict_csp() {
    let (s, _root) = server().await;
    let r = http(s.addr, "GET", "/", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(body(&r), INDEX);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let csp = r.header("content-security-policy").unwrap();
    for part in [
        "default-src 'self'",
        "script-src 'self';",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let etag = r.header("etag").unwrap().to_owned();
    let again = http(s.addr, "GET", "/", &[("if-none-match", &etag)], b"").await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let changed = http(s.addr, "GET", "/", &[("if-none-match", "\"other\"")], b"").await;
    assert_eq!(changed.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn hashed_assets_are_immutable_and_precompressed() {
    let (s, _root) = server().await;
    let js = "/assets/index-BX3k_9aZ.js";
    let plain = http(s.addr, "GET", js, &[], b"").await;
    assert_eq!(plain.status, 200);
    assert_eq!(body(&plain), JS);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(
        plain.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        plain.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    let br = http(
        s.addr,
        "GET",
        js,
        &[("accept-encoding", "gzip, deflate, br")],
        b"",
    )
    .await;
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(body(&br), "BR-BYTES");
    let gz = http(
        s.addr,
        "GET",
        js,
        &[("accept-encoding", "gzip, br;q=0")],
        b"",
    )
    .await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(body(&gz), "GZ-BYTES");
    // Not hashed: revalidated, not cached forever.
    let icon = http(s.addr, "GET", "/favicon.svg", &[], b"").await;
    assert_eq!(icon.header("cache-control"), Some("no-cache"));
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));
    let head = http(s.addr, "HEAD", js, &[], b"").await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(JS.len().to_string().as_str())
    );
    s.stop().await;
}

#[tokio::test]
async fn unknown_pages_fall_back_to_index_but_not_assets_or_api() {
    let (s, _root) = server().await;
    let page = http(s.addr, "GET", "/services/some-id", &[], b"").await;
    assert_eq!(page.status, 200);
    assert_eq!(body(&page), INDEX);
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let chunk = http(s.addr, "GET", "/assets/gone-AAAAAAAA.js", &[], b"").await;
    assert_eq!(chunk.status, 404);
    // API paths keep their own answers.
    let rpc = http(s.addr, "GET", "/rpc/v1", &[], b"").await;
    assert_eq!(rpc.status, 405);
    let rest = http(s.addr, "GET", "/rest/nothing", &[], b"").await;
    assert_eq!(rest.status, 404);
    assert_ne!(body(&rest), INDEX);
    s.stop().await;
}

#[tokio::test]
async fn path_traversal_is_refused() {
    let (s, _root) = server().await;
    for path in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/assets/..\\..\\secret.txt",
        "/.hidden",
    ] {
        let r = http(s.addr, "GET", path, &[], b"").await;
        assert_eq!(r.status, 400, "{path}: {}", body(&r));
        assert!(!body(&r).contains("top secret"), "{path}");
    }
    // A symlink out of the directory is not followed.
    let link = http(s.addr, "GET", "/link.txt", &[], b"").await;
    assert_eq!(link.status, 400);
    assert!(!body(&link).contains("top secret"));
    s.stop().await;
}

#[tokio::test]
async fn without_web_dir_root_stays_plain_text() {
    let s = TestServer::start().await;
    let r = http(s.addr, "GET", "/", &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(body(&r).contains("hearthd is running"));
    assert_eq!(http(s.addr, "GET", "/services", &[], b"").await.status, 404);
    s.stop().await;
}
