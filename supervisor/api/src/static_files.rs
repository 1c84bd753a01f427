//! The web UI's built assets (`hearthd --web-dir DIR`, the output of `web/`'s
//! `npm run build`), served for `GET`/`HEAD` on every path the API does not own.
//!
//! # Design
//! * A request path maps to a file below the directory only through plain segments:
//!   anything with `..`, `.`, a leading dot, `%`, `\` or a NUL is refused with 400
//!   before the file system is touched, and the resolved file must still lie below the
//!   canonical directory (a symlink pointing out is refused too).
//! * Precompressed siblings (`x.br`, `x.gz`, written by the build) are sent when the
//!   client's `Accept-Encoding` allows them; `Vary: Accept-Encoding` is always set.
//! * Hashed build outputs (`assets/<name>-<hash>.<ext>`) are
//!   `Cache-Control: public, max-age=31536000, immutable`; everything else (notably
//!   `index.html`) is `no-cache` with a strong `ETag` (SHA-256 of the bytes sent) and
//!   answers `If-None-Match` with 304.
//! * An unknown path outside `assets/` gets `index.html` (the SPA's router picks the
//!   page); an unknown `assets/` file is a 404, so a stale chunk never parses HTML.
//! * Every response carries a strict Content-Security-Policy ([`CSP`]): no inline
//!   script or style, no foreign origin, no framing.

use std::path::{Path, PathBuf};

use http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, VARY,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

use crate::http::{Body, full, respond};

/// The Content-Security-Policy of every UI response.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const INDEX: &str = "index.html";

/// Why a path is not served.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// Not a plain path below the directory (400).
    BadPath,
    /// No such file (404).
    Missing,
}

/// Answers `GET`/`HEAD` `path` from `dir`.
pub(crate) async fn serve(
    dir: &Path,
    path: &str,
    headers: &HeaderMap,
    head: bool,
) -> http::Response<Body> {
    let rel = match relative(path) {
        Ok(rel) => rel,
        Err(_) => return secured(respond(StatusCode::BAD_REQUEST, "text/plain", "bad path\n")),
    };
    let (rel, file) = match resolve(dir, &rel).await {
        Ok(file) => (rel, file),
        Err(Refusal::Missing) if !rel.starts_with("assets/") => match resolve(dir, INDEX).await {
            Ok(file) => (INDEX.to_owned(), file),
            Err(_) => return missing(dir),
        },
        Err(Refusal::Missing) => {
            return secured(respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"));
        }
        Err(Refusal::BadPath) => {
            return secured(respond(StatusCode::BAD_REQUEST, "text/plain", "bad path\n"));
        }
    };
    let accepted = accepted_encodings(headers);
    let mut body = None;
    let mut encoding = None;
    for (enc, ext) in [("br", "br"), ("gzip", "gz")] {
        if accepted.iter().any(|a| a == enc) {
            let mut p = file.clone().into_os_string();
            p.push(".");
            p.push(ext);
            if let Ok(bytes) = tokio::fs::read(PathBuf::from(p)).await {
                body = Some(bytes);
                encoding = Some(enc);
                break;
            }
        }
    }
    let body = match body {
        Some(b) => b,
        None => match tokio::fs::read(&file).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(path = %file.display(), error = %e, "read web asset");
                return secured(respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"));
            }
        },
    };
    let etag = format!("\"{}\"", hex(&Sha256::digest(&body)[..16]));
    let immutable = hashed(&rel);
    let not_modified = !immutable
        && headers
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim() == etag || t.trim() == "*");
    let len = body.len();
    let mut r = if not_modified {
        respond(StatusCode::NOT_MODIFIED, content_type(&rel), Vec::new())
    } else if head {
        respond(StatusCode::OK, content_type(&rel), Vec::new())
    } else {
        let mut r = http::Response::new(full(body));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type(&rel)));
        r
    };
    let h = r.headers_mut();
    if head {
        h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    if let Some(enc) = encoding {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    if immutable {
        h.insert(CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    } else {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if let Ok(v) = HeaderValue::try_from(etag) {
            h.insert(ETAG, v);
        }
    }
    secured(r)
}

/// The UI directory has no `index.html`: say so instead of a bare 404.
fn missing(dir: &Path) -> http::Response<Body> {
    tracing::warn!(dir = %dir.display(), "web dir has no index.html");
    secured(respond(
        StatusCode::NOT_FOUND,
        "text/plain",
        "the web UI is not installed (no index.html in the web directory)\n",
    ))
}

fn secured(mut r: http::Response<Body>) -> http::Response<Body> {
    let h = r.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

/// The request path as a relative path of plain segments (`/` → `index.html`).
fn relative(path: &str) -> Result<String, Refusal> {
    let trimmed = path.trim_start_matches('/');
    if trimmed.is_empty() {
        return Ok(INDEX.to_owned());
    }
    if trimmed.contains(['%', '\\', '\0']) {
        return Err(Refusal::BadPath);
    }
    for seg in trimmed.split('/') {
        if seg.is_empty() || seg.starts_with('.') {
            return Err(Refusal::BadPath);
        }
    }
    Ok(trimmed.to_owned())
}

/// The regular file for `rel` below `dir`, checked to stay below it after symlinks.
async fn resolve(dir: &Path, rel: &str) -> Result<PathBuf, Refusal> {
    let root = tokio::fs::canonicalize(dir)
        .await
        .map_err(|_| Refusal::Missing)?;
    let file = tokio::fs::canonicalize(root.join(rel))
        .await
        .map_err(|_| Refusal::Missing)?;
    if !file.starts_with(&root) {
        return Err(Refusal::BadPath);
    }
    match tokio::fs::metadata(&file).await {
        Ok(m) if m.is_file() => Ok(file),
        _ => Err(Refusal::Missing),
    }
}

/// Whether `rel` is a content-hashed build output (`assets/name-HASH.ext`, HASH ≥ 8
/// characters of `[A-Za-z0-9_-]`, as Vite names them).
fn hashed(rel: &str) -> bool {
    let Some(name) = rel.strip_prefix("assets/") else {
        return false;
    };
    let Some((stem, _ext)) = name.rsplit_once('.') else {
        return false;
    };
    // The hash follows the last '-' … but it may itself contain '-': Vite's hash is 8
    // characters, so look at the last 8 after a separator.
    stem.len() > 9
        && stem.is_char_boundary(stem.len() - 9)
        && stem[stem.len() - 9..].starts_with('-')
        && stem[stem.len() - 8..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn accepted_encodings(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| {
            let mut parts = t.split(';');
            let name = parts.next()?.trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (!refused).then_some(name)
        })
        .collect()
}

fn content_type(rel: &str) -> &'static str {
    match rel.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_dots_or_escapes_are_refused() {
        assert_eq!(relative("/").unwrap(), "index.html");
        assert_eq!(relative("/assets/a-1.js").unwrap(), "assets/a-1.js");
        for bad in [
            "/../etc/passwd",
            "/assets/../../x",
            "/%2e%2e/etc/passwd",
            "/a//b",
            "/.git/config",
            "/a\\..\\b",
            "/./index.html",
        ] {
            assert_eq!(relative(bad), Err(Refusal::BadPath), "{bad}");
        }
    }

    #[test]
    fn only_hashed_assets_are_immutable() {
        assert!(hashed("assets/index-BX3k_9aZ.js"));
        assert!(hashed("assets/Login-a-b_cdef.css"));
        assert!(!hashed("index.html"));
        assert!(!hashed("assets/logo.svg"));
        assert!(!hashed("favicon-BX3k_9aZ.svg"));
    }

    #[test]
    fn refused_encodings_are_not_used() {
        let mut h = HeaderMap::new();
        h.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, br;q=0, deflate"),
        );
        assert_eq!(accepted_encodings(&h), ["gzip", "deflate"]);
    }
}
