//! `GET /ws/db`: the live state stream over WebSocket.
//!
//! Protocol (server → client text frames, JSON):
//! 1. `{"rev": N, "value": {…}}` — a dump of the public state at revision N; or, when
//!    the client connected with `?since=REV` and the store still has every public
//!    revision after REV, those revisions instead.
//! 2. `{"rev": M, "patch": [RFC 6902 ops]}` — one per public revision, in order; paths
//!    are relative to the public state. Revision numbers may jump (private-only
//!    revisions are not sent).
//! 3. A client too slow to keep up with the store's broadcast channel gets a fresh dump
//!    (step 1) instead of unbounded buffering.
//!
//! Client → server frames are ignored except Close (pings are answered). The socket is
//! closed with 1008 when the caller's session ends, 1001 at server shutdown.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth_rpc::RpcError;
use hearth_store::{Revision, Store, Subscription};
use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use crate::auth::{Authenticator, Principal};
use crate::http::{Body, RequestContext, auth_status, require_auth, respond, rpc_error};
use crate::server::Shared;

/// How often a stream re-checks that its session is still valid.
const RECHECK: Duration = Duration::from_secs(10);
/// How many further queued revisions a stream writes before flushing the socket.
const BATCH: usize = 64;
/// How many serialized revisions the shared frame cache keeps.
const CACHED_FRAMES: usize = 32;

/// Every subscriber sends the same text for a revision: serialize it once and share the
/// bytes (with 1,000 subscribers this is 1 serialization per revision instead of 1,000).
#[derive(Debug, Default)]
pub(crate) struct FrameCache {
    frames: Mutex<VecDeque<(u64, Utf8Bytes)>>,
}

impl FrameCache {
    fn frame(&self, r: &Revision) -> Option<Utf8Bytes> {
        let mut frames = self.frames.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, text)) = frames.iter().find(|(rev, _)| *rev == r.rev) {
            return Some(text.clone());
        }
        let text = Utf8Bytes::from(serde_json::to_string(r).ok()?);
        if frames.len() >= CACHED_FRAMES {
            frames.pop_front();
        }
        frames.push_back((r.rev, text.clone()));
        Some(text)
    }
}

fn has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn since_param(query: Option<&str>) -> Result<Option<u64>, RpcError> {
    let Some(q) = query else { return Ok(None) };
    for pair in q.split('&') {
        if let Some(v) = pair.strip_prefix("since=") {
            return v
                .parse()
                .map(Some)
                .map_err(|_| RpcError::invalid_params("since", "since must be a revision number"));
        }
    }
    Ok(None)
}

/// The client's key if `headers` ask for a WebSocket (version 13).
pub(crate) fn handshake_key(headers: &HeaderMap) -> Option<HeaderValue> {
    let key = headers.get(SEC_WEBSOCKET_KEY).cloned();
    let is_ws = has_token(headers, UPGRADE, "websocket")
        && has_token(headers, CONNECTION, "upgrade")
        && headers
            .get(SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    key.filter(|_| is_ws)
}

/// The answer to a request on a WebSocket route that is not an upgrade.
pub(crate) fn not_a_websocket() -> http::Response<Body> {
    respond(
        StatusCode::BAD_REQUEST,
        "text/plain",
        "expected a WebSocket upgrade (version 13)\n",
    )
}

/// Authenticates a stream request (a foreign `Origin` is refused by the
/// authenticator); anonymous callers get 401.
pub(crate) async fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
) -> Result<Principal, http::Response<Body>> {
    let principal = match shared.auth.authenticate(headers).await {
        Ok(p) => p,
        Err(e) => return Err(rpc_error(auth_status(&e), e)),
    };
    require_auth(&principal).map_err(|e| rpc_error(StatusCode::UNAUTHORIZED, e))?;
    Ok(principal)
}

/// The 101 answer for a client key.
pub(crate) fn switching_protocols(key: &HeaderValue) -> http::Response<Body> {
    let mut r = respond(StatusCode::SWITCHING_PROTOCOLS, "text/plain", "");
    r.headers_mut().remove(http::header::CONTENT_TYPE);
    let h = r.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// Server side of an upgraded connection, with small buffers: a subscriber costs a few
/// KB, not tungstenite's default 128 KiB read buffer. Clients send nothing but control
/// frames.
pub(crate) async fn server_socket(upgraded: Upgraded) -> WebSocketStream<TokioIo<Upgraded>> {
    let config = WebSocketConfig::default()
        .read_buffer_size(4 << 10)
        .write_buffer_size(0)
        .max_message_size(Some(64 << 10))
        .max_frame_size(Some(64 << 10));
    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await
}

/// Validates and answers the upgrade request; the stream runs in a tracked task.
pub(crate) async fn upgrade(
    shared: &Arc<Shared>,
    ctx: &RequestContext,
    mut req: http::Request<Incoming>,
) -> http::Response<Body> {
    let Some(key) = handshake_key(req.headers()) else {
        return not_a_websocket();
    };
    let principal = match authenticate(shared, req.headers()).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let since = match since_param(req.uri().query()) {
        Ok(s) => s,
        Err(e) => return rpc_error(StatusCode::BAD_REQUEST, e),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (store, auth, cancel, peer) = (
        shared.store.clone(),
        Arc::clone(&shared.auth),
        ctx.shutdown.clone(),
        ctx.peer,
    );
    let frames = Arc::clone(&shared.frames);
    shared.tracker.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(peer = %peer, error = %e, "websocket upgrade failed");
                return;
            }
        };
        let ws = server_socket(upgraded).await;
        tracing::debug!(peer = %peer, caller = %principal.label(), ?since, "state stream opened");
        let end = Stream {
            ws,
            store,
            auth,
            principal,
            cancel,
            frames,
        }
        .run(since)
        .await;
        tracing::debug!(peer = %peer, ?end, "state stream closed");
    });
    switching_protocols(&key)
}

/// Why a stream ended.
#[derive(Debug)]
enum End {
    ClientClosed,
    Shutdown,
    SessionEnded,
    StoreClosed,
    SendFailed,
}

struct Stream {
    ws: WebSocketStream<TokioIo<Upgraded>>,
    store: Store,
    auth: Arc<Authenticator>,
    principal: Principal,
    cancel: CancellationToken,
    frames: Arc<FrameCache>,
}

impl Stream {
    async fn send_json(&mut self, value: &impl serde::Serialize) -> Result<(), End> {
        let text = serde_json::to_string(value).map_err(|_| End::SendFailed)?;
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|_| End::SendFailed)
    }

    /// Queues the frame of revision `r` (call `flush` after).
    async fn feed_revision(&mut self, r: &Revision) -> Result<(), End> {
        let text = self.frames.frame(r).ok_or(End::SendFailed)?;
        self.ws
            .feed(Message::Text(text))
            .await
            .map_err(|_| End::SendFailed)
    }

    async fn flush(&mut self) -> Result<(), End> {
        self.ws.flush().await.map_err(|_| End::SendFailed)
    }

    /// Sends the dump of `sub`; returns the revision the client is now at.
    async fn send_dump(&mut self, sub: &Subscription) -> Result<u64, End> {
        self.send_json(&sub.dump).await?;
        Ok(sub.dump.rev)
    }

    async fn close(&mut self, code: CloseCode, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.ws.close(Some(frame)).await;
    }

    async fn run(mut self, since: Option<u64>) -> End {
        let end = self.stream(since).await.unwrap_or_else(|e| e);
        match end {
            End::Shutdown => self.close(CloseCode::Away, "server shutting down").await,
            End::SessionEnded => self.close(CloseCode::Policy, "session ended").await,
            _ => {}
        }
        end
    }

    async fn stream(&mut self, since: Option<u64>) -> Result<End, End> {
        let mut sub = self.store.subscribe();
        let mut last = match since.and_then(|s| self.store.public_since(s).map(|r| (s, r))) {
            Some((s, missed)) => {
                let mut last = s;
                for r in missed {
                    self.feed_revision(&r).await?;
                    last = r.rev;
                }
                self.flush().await?;
                last
            }
            None => self.send_dump(&sub).await?,
        };
        let mut recheck = tokio::time::interval(RECHECK);
        recheck.tick().await;
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return Ok(End::Shutdown),
                update = sub.updates.recv() => match update {
                    Ok(r) if r.rev <= last => {}
                    Ok(r) => {
                        self.feed_revision(&r).await?;
                        last = r.rev;
                        // Write whatever else is already queued, then flush once.
                        for _ in 0..BATCH {
                            match sub.updates.try_recv() {
                                Ok(r) if r.rev <= last => {}
                                Ok(r) => {
                                    self.feed_revision(&r).await?;
                                    last = r.rev;
                                }
                                // Lagged or closed: handled by the next recv().
                                Err(_) => break,
                            }
                        }
                        self.flush().await?;
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::debug!(skipped = n, "slow state stream consumer; sending a new dump");
                        sub = self.store.subscribe();
                        last = self.send_dump(&sub).await?;
                    }
                    Err(RecvError::Closed) => return Ok(End::StoreClosed),
                },
                incoming = self.ws.next() => match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(End::ClientClosed),
                    Some(Ok(_)) => {}
                },
                _ = recheck.tick() => {
                    if !self.auth.still_valid(&self.principal).await {
                        return Ok(End::SessionEnded);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_parsed() {
        assert_eq!(since_param(None).unwrap(), None);
        assert_eq!(since_param(Some("since=42")).unwrap(), Some(42));
        assert_eq!(since_param(Some("a=1&since=7")).unwrap(), Some(7));
        assert!(since_param(Some("since=x")).is_err());
    }
}
