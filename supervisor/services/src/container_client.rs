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
//! A line longer than [`MAX_LINE`] (or the connection's own smaller limit,
//! [`ServiceConn::limit_line`]) ends the connection with an error; nothing the
//! container sends can make hearthd buffer without bound.
//!
//! The socket dir is the container's (its root writes it): [`connect_retry`] never
//! connects by path. It opens the socket with `hearth_safefs` (`O_PATH | O_NOFOLLOW`
//! below the socket dir, no symlink in any component), checks that it is a socket with
//! one link, and connects through the checked descriptor (`/proc/self/fd/<n>`). A
//! symlink (to another package's socket, to a host socket), a FIFO, a regular file or a
//! hard link there is refused at once with [`ClientError::Refused`], never followed and
//! never waited on.
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
    /// The socket's path is not a socket hearthd may connect to (a link, a FIFO, …).
    #[error("refusing to connect to {path}: {source}")]
    Refused {
        /// The socket.
        path: PathBuf,
        /// What was found there.
        #[source]
        source: hearth_safefs::SafeFsError,
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
    /// Longest line accepted on this connection.
    max_line: u64,
    /// The part of a line read before a read was cancelled.
    partial: Vec<u8>,
}

/// Connects to the socket at `path` (`<socket dir>/service.sock`), trying again every
/// 200 ms while it is missing or refuses (the container is still starting), for at
/// most `wait`. What is at `path` is checked first without following links (see the
/// module docs); anything but a socket is refused at once.
pub(crate) async fn connect_retry(path: &Path, wait: Duration) -> Result<ServiceConn, ClientError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let source = match connect_checked(path).await {
            Ok(stream) => {
                let (r, w) = stream.into_split();
                return Ok(ServiceConn {
                    path: path.to_owned(),
                    reader: BufReader::with_capacity(64 * 1024, r),
                    writer: w,
                    next_id: 1,
                    pending: VecDeque::new(),
                    max_line: MAX_LINE,
                    partial: Vec::new(),
                });
            }
            Err(Checked::Refused(source)) => {
                tracing::warn!(path = %path.display(), error = %source, "refusing the container's socket");
                return Err(ClientError::Refused {
                    path: path.to_owned(),
                    source,
                });
            }
            Err(Checked::Io(source)) => source,
        };
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

/// Why [`connect_checked`] did not connect.
enum Checked {
    /// What is there must not be connected to.
    Refused(hearth_safefs::SafeFsError),
    /// Missing, refused, or another failure (maybe transient).
    Io(io::Error),
}

/// Opens the socket dir (the parent of `path`, hearthd's own path), checks the socket in
/// it without following links, and connects through the checked descriptor.
async fn connect_checked(path: &Path) -> Result<UnixStream, Checked> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(Checked::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a socket path",
        )));
    };
    let not_found = |e: hearth_safefs::SafeFsError| {
        if e.is_not_found() {
            Checked::Io(io::Error::new(io::ErrorKind::NotFound, e))
        } else {
            Checked::Refused(e)
        }
    };
    let socket = hearth_safefs::Dir::open_trusted(dir)
        .and_then(|d| d.open_socket(name))
        .map_err(not_found)?;
    // `socket` (the O_PATH descriptor) stays open until the connection is made.
    let stream = UnixStream::connect(socket.connect_path())
        .await
        .map_err(Checked::Io)?;
    drop(socket);
    Ok(stream)
}

impl ServiceConn {
    /// Lowers the longest line accepted on this connection to `max` bytes (the status
    /// feed takes far smaller messages than `logs`).
    pub(crate) fn limit_line(&mut self, max: u64) {
        self.max_line = max.min(MAX_LINE);
    }

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

    /// Reads the next message from the socket. Cancel-safe: a line read in part when
    /// the future is dropped stays in `partial` and the next call goes on with it.
    async fn read_one(&mut self) -> Result<Option<Incoming>, ClientError> {
        loop {
            let max = self.max_line;
            let room = (max + 1).saturating_sub(self.partial.len() as u64);
            let n = (&mut self.reader)
                .take(room)
                .read_until(b'\n', &mut self.partial)
                .await
                .map_err(|source| ClientError::Io {
                    op: "read reply",
                    path: self.path.clone(),
                    source,
                })?;
            let line = std::mem::take(&mut self.partial);
            if n == 0 && line.is_empty() {
                return Ok(None);
            }
            if line.last() != Some(&b'\n') {
                return Err(self.protocol(if line.len() as u64 > max {
                    format!("line longer than {max} bytes")
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
    async fn a_link_or_fifo_at_the_socket_path_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.sock");
        let listener = UnixListener::bind(&other).unwrap();
        let rpc = dir.path().join("rpc");
        std::fs::create_dir(&rpc).unwrap();
        let path = socket_path(&rpc);
        std::os::unix::fs::symlink(&other, &path).unwrap();
        let start = std::time::Instant::now();
        let err = connect_retry(&path, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Refused { .. }), "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(1), "waited on a link");
        // Nothing connected to the other socket.
        let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(accepted.is_err(), "connected through the link");
        std::fs::remove_file(&path).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let err = connect_retry(&path, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(1), "waited on a FIFO");
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
