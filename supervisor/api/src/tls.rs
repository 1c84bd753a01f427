//! The HTTPS side of [`crate::serve_with_tls`]: accepting on either listener, the TLS
//! handshake (bounded by [`crate::ApiConfig::header_timeout`]) and HTTP/1.1 or HTTP/2
//! by ALPN over it. Requests over TLS get `RequestContext::tls`, so the session
//! cookie is `Secure`. Certificates come from the caller's rustls `ServerConfig`
//! (hearthd uses `hearth_tls::SniResolver`).

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::http::RequestContext;
use crate::server::Shared;

/// A bound HTTPS listener and the TLS settings it serves with.
pub struct TlsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Serves `config` on `listener`; its ALPN list is set to `h2`, `http/1.1`.
    pub fn new(listener: TcpListener, mut config: tokio_rustls::rustls::ServerConfig) -> Self {
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }
}

/// The next connection from either listener, with the acceptor when it is TLS.
pub(crate) async fn accept(
    plain: &TcpListener,
    tls: Option<&TlsListener>,
) -> std::io::Result<(TcpStream, SocketAddr, Option<TlsAcceptor>)> {
    match tls {
        None => plain.accept().await.map(|(s, p)| (s, p, None)),
        Some(t) => tokio::select! {
            r = plain.accept() => r.map(|(s, p)| (s, p, None)),
            r = t.listener.accept() => r.map(|(s, p)| (s, p, Some(t.acceptor.clone()))),
        },
    }
}

pub(crate) async fn connection(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let timeout = shared.config.header_timeout;
    let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %peer, "TLS handshake timed out");
            return;
        }
    };
    let ctx = RequestContext {
        peer,
        tls: true,
        shutdown: cancel.clone(),
    };
    let svc_shared = Arc::clone(&shared);
    let service =
        service_fn(move |req| crate::http::handle(Arc::clone(&svc_shared), ctx.clone(), req));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %peer, error = %e, "TLS connection ended with an error");
    }
}
