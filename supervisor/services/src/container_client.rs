//! Async client of a container's control socket: newline-delimited JSON-RPC 2.0 on
//! `<rpc dir>/service.sock`, served by `hearth-container` (PID 1 of the container).
//!
//! # Design
//! One [`ServiceConn`] per connection. Requests carry increasing numeric ids; the
//! container answers them in any order (actions run on their own threads) and pushes
//! `status.changed` notifications at any time, the first one right after connecting.
//! [`ServiceConn::next_message`] yields both; [`ServiceConn::call`] sends one request
//! and reads until its answer, setting notifications aside. The container renames the
//! socket into place only once it listens, so a missing file or a refused connection
//! (a stale socket of a dead container) just means "not yet": [`connect_retry`] tries
//! again until a deadline.
//!
//! # Invariants
//! A line longer than [`MAX_LINE`] ends the connection with an error; nothing the
//! container sends can make hearthd buffer without bound.
//!
//! # Rejected alternatives
//! A blocking `std` client on `spawn_blocking`: the status monitor holds a connection
//! open for as long as the container runs, which would pin a blocking thread per
//! package.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_rpc::{Response, ResponsePayload, RpcError};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// Socket file name inside the RPC directory (as `hearth-container` names it).
pub(crate) const SOCKET_NAME: &str = "service.sock";
/// Longest line accepted from the container (a `logs` page of 1000 long lines fits).
pub(crate) const MAX_LINE: u64 = 16 * 1024 * 1024;
/// Pause between two connection attempts.
const RETRY_EVERY: Duration = Duration::from_millis(200);

/// Errors talking to a container's `service.sock`.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket did not accept a connection before the deadline.
    #[error("connect to {path}: no container listening after {waited:?}: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// How long it was tried.
        waited: Duration,
        /// The last failure.
        #[source]
        source: io::Error,
    },
    /// Reading or writing failed.
    #[error("{op} on {path}: {source}")]
    Io {
        /// `send request` or `read reply`.
        op: &'static str,
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The container closed the connection.
    #[error("{path}: the container closed the connection")]
    Closed {
        /// The socket.
        path: PathBuf,
    },
    /// The container sent something that is not a JSON-RPC message.
    #[error("{path}: bad message from the container: {reason}")]
    Protocol {
        /// The socket.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The container answered with an error.
    #[error("{method}: {}", error.message)]
    Remote {
        /// The method called.
        method: String,
        /// The container's error, as it sent it.
        error: RpcError,
    },
}

/// One message from the container.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Incoming {
    /// A `status.changed` notification (its params: the whole service status).
    Status(Value),
    /// The answer to request `id`.
    Response {
        /// The request id.
        id: u64,
        /// Result or error.
        result: Result<Value, RpcError>,
    },
}

/// The socket of a package's container, given its RPC dir on the host.
pub(crate) fn socket_path(rpc_dir: &Path) -> PathBuf {
    rpc_dir.join(SOCKET_NAME)
}

/// The RPC dir of package `id` on the host (bind-mounted into its container).
pub(crate) fn rpc_dir(data_dir: &Path, id: &str) -> PathBuf {
    data_dir
        .join(hearth_layout::PACKAGE_DATA_DIR)
        .join(id)
        .join("rpc")
}

/// An open connection to one container.
#[derive(Debug)]
pub(crate) struct ServiceConn {
    path: PathBuf,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    /// Notifications read while waiting for a response in [`ServiceConn::call`].
    pending: VecDeque<Value>,
}

/// Connects to `path`, trying again every 200 ms while the socket is missing or
/// refuses (the container is still starting), for at most `wait`.
pub(crate) async fn connect_retry(path: &Path, wait: Duration) -> Result<ServiceConn, ClientError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match UnixStream::connect(path).await {
            Ok(stream) => {
                let (r, w) = stream.into_split();
                return Ok(ServiceConn {
                    path: path.to_owned(),
                    reader: BufReader::with_capacity(64 * 1024, r),
                    writer: w,
                    next_id: 1,
                    pending: VecDeque::new(),
                });
            }
            Err(source) => {
                let transient = matches!(
                    source.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                );
                if !transient || tokio::time::Instant::now() + RETRY_EVERY > deadline {
                    return Err(ClientError::Connect {
                        path: path.to_owned(),
                        waited: wait,
                        source,
                    });
                }
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    }
}

impl ServiceConn {
    /// Sends a request and returns its id (the answer comes through
    /// [`ServiceConn::next_message`]).
    pub(crate) async fn send(&mut self, method: &str, params: Value) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
            .to_string()
            .into_bytes();
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .await
            .map_err(|source| ClientError::Io {
                op: "send request",
                path: self.path.clone(),
                source,
            })?;
        Ok(id)
    }

    /// The next notification or response; `Ok(None)` when the container closed the
    /// connection (it stopped or restarted).
    pub(crate) async fn next_message(&mut self) -> Result<Option<Incoming>, ClientError> {
        if let Some(status) = self.pending.pop_front() {
            return Ok(Some(Incoming::Status(status)));
        }
        self.read_one().await
    }

    /// Reads the next message from the socket.
    async fn read_one(&mut self) -> Result<Option<Incoming>, ClientError> {
        loop {
            let mut line = Vec::new();
            let n = (&mut self.reader)
                .take(MAX_LINE + 1)
                .read_until(b'\n', &mut line)
                .await
                .map_err(|source| ClientError::Io {
                    op: "read reply",
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            if line.last() != Some(&b'\n') {
                return Err(self.protocol(if n as u64 > MAX_LINE {
                    format!("line longer than {MAX_LINE} bytes")
                } else {
                    "connection closed inside a line".to_owned()
                }));
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return parse(&line).map(Some).map_err(|r| self.protocol(r));
        }
    }

    /// Calls `method` and waits for its answer; notifications that arrive meanwhile
    /// are kept for [`ServiceConn::next_message`].
    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.send(method, params).await?;
        loop {
            match self.read_one().await? {
                None => {
                    return Err(ClientError::Closed {
                        path: self.path.clone(),
                    });
                }
                Some(Incoming::Status(s)) => self.pending.push_back(s),
                Some(Incoming::Response { id: got, result }) if got == id => {
                    return result.map_err(|error| ClientError::Remote {
                        method: method.to_owned(),
                        error,
                    });
                }
                Some(Incoming::Response { id: got, .. }) => {
                    tracing::debug!(path = %self.path.display(), id = got, "unexpected response; ignored");
                }
            }
        }
    }

    fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol {
            path: self.path.clone(),
            reason,
        }
    }
}

/// Parses one line from the container.
pub(crate) fn parse(line: &[u8]) -> Result<Incoming, String> {
    let value: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    if let Some(method) = value.get("method").and_then(Value::as_str) {
        return if method == "status.changed" {
            Ok(Incoming::Status(
                value.get("params").cloned().unwrap_or(Value::Null),
            ))
        } else {
            Err(format!("unknown notification {method:?}"))
        };
    }
    let response: Response =
        serde_json::from_value(value).map_err(|e| format!("not a JSON-RPC response: {e}"))?;
    let id = response
        .id
        .as_u64()
        .ok_or_else(|| format!("response id {} is not one of ours", response.id))?;
    let result = match response.payload {
        ResponsePayload::Result(v) => Ok(v),
        ResponsePayload::Error(e) => Err(e),
    };
    Ok(Incoming::Response { id, result })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    #[test]
    fn lines_parse_into_notifications_and_responses() {
        let s =
            parse(br#"{"jsonrpc":"2.0","method":"status.changed","params":{"desired":"running"}}"#);
        assert_eq!(s, Ok(Incoming::Status(json!({"desired": "running"}))));
        let r = parse(br#"{"jsonrpc":"2.0","id":3,"result":{"x":1}}"#);
        assert_eq!(
            r,
            Ok(Incoming::Response {
                id: 3,
                result: Ok(json!({"x": 1}))
            })
        );
        let e = parse(br#"{"jsonrpc":"2.0","id":4,"error":{"code":6,"message":"no action"}}"#);
        assert!(matches!(e, Ok(Incoming::Response { id: 4, result: Err(ref e) }) if e.code == 6));
        assert!(parse(b"{").is_err());
        assert!(parse(br#"{"method":"other"}"#).is_err());
        assert!(parse(br#"{"jsonrpc":"2.0","id":"a","result":1}"#).is_err());
    }

    #[tokio::test]
    async fn call_sets_notifications_aside_and_retry_waits_for_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(dir.path());
        let server_path = path.clone();
        let server = tokio::spawn(async move {
            // The socket appears only after a while.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let listener = UnixListener::bind(&server_path).unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            w.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"status.changed\",\"params\":1}\n")
                .await
                .unwrap();
            let req: Value =
                serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
            assert_eq!(req["method"], "logs");
            w.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"status.changed\",\"params\":2}\n")
                .await
                .unwrap();
            let answer = json!({"jsonrpc": "2.0", "id": req["id"], "result": {"entries": []}});
            w.write_all(format!("{answer}\n").as_bytes()).await.unwrap();
        });
        let mut conn = connect_retry(&path, Duration::from_secs(5)).await.unwrap();
        let logs = conn.call("logs", json!({"limit": 1})).await.unwrap();
        assert_eq!(logs, json!({"entries": []}));
        assert_eq!(
            conn.next_message().await.unwrap(),
            Some(Incoming::Status(json!(1)))
        );
        assert_eq!(
            conn.next_message().await.unwrap(),
            Some(Incoming::Status(json!(2)))
        );
        server.await.unwrap();
        assert_eq!(conn.next_message().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_missing_socket_fails_after_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let err = connect_retry(&socket_path(dir.path()), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    }
}
