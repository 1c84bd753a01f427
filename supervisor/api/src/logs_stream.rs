//! `GET /ws/logs/<id>`: a service's log lines, followed live over WebSocket.
//!
//! Query: `daemon=<id>` (only that daemon's lines), `tail=N` (how many recent lines to
//! send first, default 100, at most 1000; `0` = only new lines).
//!
//! Protocol (server → client text frames, JSON):
//! * a log line: `{"seq", "time", "daemon", "stream", "line"}` (as in `package.logs`),
//!   oldest first, each line once;
//! * `{"event": "state", "state": S}` when the service is not running (S is its
//!   `statusInfo.state`) and again with `"running"` when it runs; the stream stays open
//!   and follows the next container from its first line;
//! * `{"event": "error", "message": M}` when the container cannot be asked (retried);
//! * the socket is closed with 1000 once the package is uninstalled, 1008 when the
//!   caller's session ends, 1001 at server shutdown.
//!
//! Authenticated and `Origin`-checked like `/ws/db` (a foreign `Origin` gets 403 before
//! the upgrade); an unknown package gets 404 before the upgrade.
//!
//! # Design
//! The lines live in the container (`hearth-container` keeps them in a ring and in
//! size-capped files); this stream asks for the lines after its cursor with the
//! container's `logs` method every [`POLL`], through the same
//! [`hearth_services::Packages::logs`] as `package.logs`, and pages until it has
//! caught up. Sequence numbers start again in a new container, so the cursor is reset
//! when `statusInfo.startedAt` changes.
//!
//! # Rejected alternatives
//! A push subscription inside `hearth-container`: lower latency, but one more kind of
//! long-lived connection per viewer into every container; a poll every 250 ms per open
//! viewer is cheap and needs nothing new in the container.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth_rpc::{ErrorCode, RpcError};
use hearth_services::{Packages, ServiceCallError};
use hearth_store::Store;
use http::StatusCode;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authenticator, Principal};
use crate::http::{Body, RequestContext, rpc_error};
use crate::server::Shared;

/// Path prefix of the route; the package id follows.
pub(crate) const WS_LOGS_PREFIX: &str = "/ws/logs/";
/// How often the container is asked for new lines.
const POLL: Duration = Duration::from_millis(250);
/// How often the caller's session is re-checked.
const RECHECK: Duration = Duration::from_secs(10);
/// Lines asked for per page while catching up.
const PAGE: u32 = 1000;
/// Lines sent first when the query does not say.
const DEFAULT_TAIL: u32 = 100;

#[derive(Debug, PartialEq, Eq)]
struct Query {
    daemon: Option<String>,
    tail: u32,
}

fn parse_query(q: Option<&str>) -> Result<Query, RpcError> {
    let mut out = Query {
        daemon: None,
        tail: DEFAULT_TAIL,
    };
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "daemon" if valid_id(v) => out.daemon = Some(v.to_owned()),
            "daemon" => return Err(RpcError::invalid_params("daemon", "not a daemon id")),
            "tail" => {
                out.tail = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n <= PAGE)
                    .ok_or_else(|| {
                        RpcError::invalid_params("tail", format!("tail must be 0 to {PAGE}"))
                    })?;
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Package and daemon ids: lowercase letters, digits and `-` (nothing to escape in a
/// JSON pointer or a path).
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn entry_pointer(id: &str) -> String {
    format!("/public/packageData/{id}")
}

fn not_found(id: &str) -> http::Response<Body> {
    rpc_error(
        StatusCode::NOT_FOUND,
        RpcError::new(ErrorCode::NotFound, format!("package {id:?} not found"))
            .with("what", "package"),
    )
}

/// Validates and answers the upgrade request; the stream runs in a tracked task.
pub(crate) async fn upgrade(
    shared: &Arc<Shared>,
    ctx: &RequestContext,
    mut req: http::Request<Incoming>,
) -> http::Response<Body> {
    let Some(key) = crate::ws::handshake_key(req.headers()) else {
        return crate::ws::not_a_websocket();
    };
    let principal = match crate::ws::authenticate(shared, req.headers()).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    // Service logs can contain secrets: `package.logs` rules apply.
    if !principal.is_admin() {
        return rpc_error(
            StatusCode::FORBIDDEN,
            Principal::scope_refusal("a service's log stream"),
        );
    }
    let id = req
        .uri()
        .path()
        .strip_prefix(WS_LOGS_PREFIX)
        .unwrap_or("")
        .to_owned();
    if !valid_id(&id)
        || shared
            .store
            .get(&entry_pointer(&id))
            .map_or(true, |v| v.is_null())
    {
        return not_found(&id);
    }
    let query = match parse_query(req.uri().query()) {
        Ok(q) => q,
        Err(e) => return rpc_error(StatusCode::BAD_REQUEST, e),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let packages = Packages::new(
        shared.store.clone(),
        shared.config.data_dir.clone(),
        hearth_services::Host::this_machine(),
    );
    let (store, auth, cancel, peer) = (
        shared.store.clone(),
        Arc::clone(&shared.auth),
        ctx.shutdown.clone(),
        ctx.peer,
    );
    shared.tracker.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(peer = %peer, error = %e, "websocket upgrade failed");
                return;
            }
        };
        let ws = crate::ws::server_socket(upgraded).await;
        tracing::debug!(peer = %peer, caller = %principal.label(), package = %id, "log stream opened");
        let mut stream = LogStream {
            ws,
            packages,
            store,
            auth,
            principal,
            cancel,
            id,
            daemon: query.daemon,
            cursor: None,
            started_at: None,
            reported: None,
            last_error: None,
        };
        let end = stream.run(query.tail).await;
        tracing::debug!(peer = %peer, ?end, "log stream closed");
    });
    crate::ws::switching_protocols(&key)
}

/// Why a stream ended.
#[derive(Debug)]
enum End {
    ClientClosed,
    Shutdown,
    SessionEnded,
    Removed,
    SendFailed,
}

struct LogStream {
    ws: WebSocketStream<TokioIo<Upgraded>>,
    packages: Packages,
    store: Store,
    auth: Arc<Authenticator>,
    principal: Principal,
    cancel: CancellationToken,
    id: String,
    daemon: Option<String>,
    /// The last sequence number sent, in the current container (`None`: nothing asked
    /// yet, send the tail).
    cursor: Option<u64>,
    /// `statusInfo.startedAt` of the container the cursor belongs to.
    started_at: Option<Value>,
    /// The state last announced with an `event` frame.
    reported: Option<String>,
    /// The error last announced (each distinct error once).
    last_error: Option<String>,
}

impl LogStream {
    async fn send(&mut self, value: &impl serde::Serialize) -> Result<(), End> {
        let text = serde_json::to_string(value).map_err(|_| End::SendFailed)?;
        self.ws
            .feed(Message::text(text))
            .await
            .map_err(|_| End::SendFailed)
    }

    async fn flush(&mut self) -> Result<(), End> {
        self.ws.flush().await.map_err(|_| End::SendFailed)
    }

    async fn close(&mut self, code: CloseCode, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.ws.close(Some(frame)).await;
    }

    async fn run(&mut self, tail: u32) -> End {
        let end = self.follow(tail).await.unwrap_or_else(|e| e);
        match end {
            End::Shutdown => self.close(CloseCode::Away, "server shutting down").await,
            End::SessionEnded => self.close(CloseCode::Policy, "session ended").await,
            End::Removed => self.close(CloseCode::Normal, "package removed").await,
            End::ClientClosed | End::SendFailed => {}
        }
        end
    }

    async fn follow(&mut self, tail: u32) -> Result<End, End> {
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recheck = tokio::time::interval(RECHECK);
        recheck.tick().await;
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return Ok(End::Shutdown),
                incoming = self.ws.next() => match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(End::ClientClosed),
                    Some(Ok(_)) => {}
                },
                _ = recheck.tick() => {
                    if !self.auth.still_valid(&self.principal).await {
                        return Ok(End::SessionEnded);
                    }
                }
                _ = poll.tick() => {
                    if let Some(end) = self.poll_once(tail).await? {
                        return Ok(end);
                    }
                }
            }
        }
    }

    async fn announce(&mut self, state: &str) -> Result<(), End> {
        if self.reported.as_deref() != Some(state) {
            self.send(&json!({"event": "state", "state": state}))
                .await?;
            self.flush().await?;
            self.reported = Some(state.to_owned());
        }
        Ok(())
    }

    /// Sends what is new; `Some(end)` when the stream is over.
    async fn poll_once(&mut self, tail: u32) -> Result<Option<End>, End> {
        let entry = match self.store.get(&entry_pointer(&self.id)) {
            Ok(v) if !v.is_null() => v,
            _ => return Ok(Some(End::Removed)),
        };
        let status = &entry["statusInfo"];
        let state = status["state"].as_str().unwrap_or("unknown").to_owned();
        if state != "running" {
            self.announce(&state).await?;
            return Ok(None);
        }
        let started = status["startedAt"].clone();
        if self.started_at.as_ref() != Some(&started) {
            // A new container numbers its lines from 1 again: follow it from the start
            // (the very first one from its tail).
            if self.started_at.is_some() {
                self.cursor = Some(0);
            }
            self.started_at = Some(started);
        }
        loop {
            let limit = if self.cursor.is_none() { tail } else { PAGE };
            let answer = self
                .packages
                .logs(&self.id, self.daemon.clone(), Some(limit), self.cursor)
                .await;
            match answer {
                Ok(r) => {
                    self.announce("running").await?;
                    self.last_error = None;
                    let n = r.entries.len();
                    for e in &r.entries {
                        self.send(e).await?;
                    }
                    self.flush().await?;
                    self.cursor = Some(r.next_cursor);
                    if n < PAGE as usize {
                        return Ok(None);
                    }
                }
                // Stopped between the store read and the call: the next poll says so.
                Err(ServiceCallError::NotRunning { .. }) => return Ok(None),
                Err(e) => {
                    let message = e.to_string();
                    if self.last_error.as_deref() != Some(&message) {
                        tracing::debug!(package = %self.id, error = %message, "log stream: container not reachable");
                        self.send(&json!({"event": "error", "message": message}))
                            .await?;
                        self.flush().await?;
                        self.last_error = Some(message);
                    }
                    return Ok(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_parsed_and_checked() {
        assert_eq!(
            parse_query(None).unwrap(),
            Query {
                daemon: None,
                tail: DEFAULT_TAIL
            }
        );
        assert_eq!(
            parse_query(Some("daemon=web&tail=0")).unwrap(),
            Query {
                daemon: Some("web".into()),
                tail: 0
            }
        );
        assert!(parse_query(Some("tail=1001")).is_err());
        assert!(parse_query(Some("tail=x")).is_err());
        assert!(parse_query(Some("daemon=../x")).is_err());
        assert!(parse_query(Some("daemon=")).is_err());
    }

    #[test]
    fn ids_are_plain() {
        assert!(valid_id("hello-oci"));
        assert!(!valid_id(""));
        assert!(!valid_id("a/b"));
        assert!(!valid_id("A"));
        assert!(!valid_id("x~1"));
    }
}
