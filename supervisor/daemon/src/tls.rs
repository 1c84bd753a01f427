//! hearthd's HTTPS and plain-HTTP LAN listeners (`--https-listen`,
//! `--http-redirect-listen`).
//!
//! The HTTPS listener serves the whole API with certificates from Hearth's root CA
//! (`hearth_tls`, kept in `<data>/tls`, key 0600). The leaf names the kernel
//! hostname as `<hostname>.local`, `localhost`, loopback and the HTTPS listen
//! address when it is specific. The plain listener serves only a 308 redirect to
//! HTTPS, `GET /hearth-ca.crt` (the CA as PEM, `application/x-x509-ca-cert`) and
//! `GET /trust` (how to trust it); nothing else, and never the API.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Setting up TLS failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsSetupError {
    #[error("Hearth root CA in {path}: {source}")]
    Ca {
        path: std::path::PathBuf,
        source: hearth_tls::TlsError,
    },
    #[error("TLS settings: {0}")]
    Config(rustls::Error),
}

/// The names of this host's own leaf.
fn host_names(https: SocketAddr) -> Result<hearth_tls::Names, hearth_tls::TlsError> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let local = format!("{}.local", kernel.trim().to_ascii_lowercase());
    let mut ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    if !https.ip().is_unspecified() {
        ips.push(https.ip());
    }
    hearth_tls::Names::new(&[&local, "localhost"], &ips)
        .or_else(|_| hearth_tls::Names::new(&["localhost"], &ips))
}

/// Loads (or creates) the CA, issues the host leaf and builds the HTTPS listener.
/// Returns it with the CA certificate (PEM) for the redirect listener.
pub(crate) fn https(
    data_dir: &Path,
    listener: TcpListener,
    addr: SocketAddr,
) -> Result<(hearth_api::TlsListener, Arc<str>), TlsSetupError> {
    let path = data_dir.join("tls");
    let ca_err = |source| TlsSetupError::Ca {
        path: path.clone(),
        source,
    };
    let store = hearth_tls::DirStore::open(&path).map_err(|e| ca_err(e.into()))?;
    let ca = hearth_tls::RootCa::load_or_create(&store).map_err(ca_err)?;
    let names = host_names(addr).map_err(ca_err)?;
    let leaf =
        hearth_tls::Leaf::issue(&ca, &names, time::OffsetDateTime::now_utc()).map_err(ca_err)?;
    tracing::info!(names = ?names.dns(), "issued the host certificate");
    let resolver = Arc::new(hearth_tls::SniResolver::new(&leaf));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    Ok((
        hearth_api::TlsListener::new(listener, config),
        ca.cert_pem().into(),
    ))
}

const TRUST_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Trust Hearth</title>\
<h1>Trust this Hearth server</h1><p>Hearth serves every page over HTTPS with its own \
certificate authority. Download <a href=/hearth-ca.crt>hearth-ca.crt</a> and add it to \
your system or browser as a trusted root (for example: Firefox, Settings, Certificates, \
Import; macOS Keychain Access, System, Always Trust; Debian <code>cp hearth-ca.crt \
/usr/local/share/ca-certificates/ &amp;&amp; update-ca-certificates</code>). Then open \
this server's address with https://.</p>";

fn respond(
    req: &Request<hyper::body::Incoming>,
    https_port: u16,
    ca: &str,
) -> Response<Full<Bytes>> {
    let build = |status, ctype: &str, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        if let Ok(v) = ctype.parse() {
            r.headers_mut().insert(http::header::CONTENT_TYPE, v);
        }
        r
    };
    let get = req.method() == http::Method::GET || req.method() == http::Method::HEAD;
    match req.uri().path() {
        "/hearth-ca.crt" if get => build(
            StatusCode::OK,
            "application/x-x509-ca-cert",
            Bytes::copy_from_slice(ca.as_bytes()),
        ),
        "/trust" if get => build(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from_static(TRUST_PAGE.as_bytes()),
        ),
        _ => {
            let host = req
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse::<http::uri::Authority>().ok());
            let Some(host) = host else {
                return build(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    Bytes::from_static(b"missing or bad Host header\n"),
                );
            };
            let port = if https_port == 443 {
                String::new()
            } else {
                format!(":{https_port}")
            };
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let mut r = build(
                StatusCode::PERMANENT_REDIRECT,
                "text/plain",
                Bytes::from_static(b"use https\n"),
            );
            if let Ok(v) = format!("https://{}{port}{path}", host.host()).parse() {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            r
        }
    }
}

/// Serves the redirect, the CA download and the trust page on `listener` until
/// `cancel` fires.
pub(crate) fn spawn_redirect(
    listener: TcpListener,
    https_port: u16,
    ca: Arc<str>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                () = cancel.cancelled() => break,
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "redirect listener: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let ca = Arc::clone(&ca);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let r = respond(&req, https_port, &ca);
                    async move { Ok::<_, Infallible>(r) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}
