//! The control socket: newline-delimited JSON-RPC 2.0 on `<rpc-dir>/service.sock`.
//!
//! # Design
//! `hearthd` connects (the container listens, as StartOS's runtime does on
//! `service.sock`). One accept thread; one reader thread per connection. Requests
//! that change or read the supervisor (`status`, `start`, `stop`, `restart`,
//! `shutdown`) are sent to the runtime loop as [`Control`] and answered when it
//! replies; `logs` reads the shared log ring directly; `action.run` runs on its own
//! thread so a long action does not block the connection. Every connection also
//! receives `status.changed` notifications (pushed by the runtime loop). Output goes
//! through a bounded queue and a writer thread per connection: a peer that stops
//! reading is disconnected once the queue is full, and never blocks the loop.
//!
//! Wire types and error codes are `hearth-rpc`'s ([`Request`], [`Response`],
//! [`RpcError`]), so hearthd speaks one JSON-RPC dialect everywhere.
//!
//! # Invariants
//! A malformed, oversized or unknown request is answered with a JSON-RPC error and
//! the connection stays usable; nothing a client sends can end the process except
//! `shutdown`.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender, SyncSender, TrySendError};
use std::time::Duration;

use hearth_rpc::{ErrorCode, Request, Response, RpcError};
use hearth_s9pk::spec::{ActionSpec, AllowedStatuses};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::action::run_action;
use crate::image::ImageConfig;
use crate::logs::{Logs, read_line_capped};
use crate::process::Reaper;
use crate::runtime::Event;

/// Socket file name inside the RPC directory.
pub(crate) const SOCKET_NAME: &str = hearth_layout::SERVICE_SOCKET;
/// Longest request line accepted.
pub(crate) const MAX_REQUEST: usize = 1024 * 1024;
/// Most actions running at once.
pub(crate) const MAX_RUNNING_ACTIONS: usize = 4;
/// Most log lines returned by one `logs` call.
const MAX_LOG_LIMIT: usize = 1000;

/// A request for the runtime loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Report status.
    Status,
    /// Start all daemons.
    Start,
    /// Stop all daemons.
    Stop,
    /// Stop then start all daemons.
    Restart,
    /// Stop all daemons and exit.
    Shutdown,
}

/// Reply channel of a [`Control`] request.
pub(crate) type Reply = Sender<Result<Value, RpcError>>;

/// Lines queued for one client before it counts as stuck and is disconnected.
const CLIENT_QUEUE: usize = 256;

/// One connected client. Lines are queued to a writer thread so that neither the
/// runtime loop (notifications) nor a reader ever blocks on a slow peer.
pub(crate) struct Client {
    queue: SyncSender<Vec<u8>>,
    stream: UnixStream,
}

impl Client {
    /// Starts the writer thread for `stream`.
    pub(crate) fn new(stream: UnixStream) -> io::Result<Arc<Client>> {
        let mut writer = stream.try_clone()?;
        let (queue, lines) = mpsc::sync_channel::<Vec<u8>>(CLIENT_QUEUE);
        std::thread::Builder::new()
            .name("rpc-writer".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                for line in lines {
                    if writer.write_all(&line).is_err() {
                        let _ = writer.shutdown(Shutdown::Both);
                        return;
                    }
                }
            })?;
        Ok(Arc::new(Client { queue, stream }))
    }

    /// Queues one JSON value as a line; a client whose queue is full is disconnected.
    pub(crate) fn send(&self, value: &impl serde::Serialize) -> io::Result<()> {
        let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
        line.push(b'\n');
        match self.queue.try_send(line) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                let _ = self.stream.shutdown(Shutdown::Both);
                Err(io::Error::other("client does not read; disconnected"))
            }
            Err(TrySendError::Disconnected(_)) => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
}

/// Errors setting up the socket.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SocketError {
    /// The directory could not be created.
    #[error("create RPC directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Binding failed.
    #[error("listen on {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The accept thread could not start.
    #[error("spawn RPC accept thread: {0}")]
    Thread(io::Error),
}

/// What request handlers need.
pub(crate) struct Context {
    /// Channel to the runtime loop.
    pub(crate) events: Sender<Event>,
    /// Shared log store.
    pub(crate) logs: Logs,
    /// The spec's actions.
    pub(crate) actions: Vec<ActionSpec>,
    /// Image defaults by image id.
    pub(crate) images: BTreeMap<String, ImageConfig>,
    /// Actions running now.
    pub(crate) running_actions: AtomicUsize,
    /// For running action commands.
    pub(crate) reaper: Arc<Reaper>,
}

/// Binds `<dir>/service.sock` (replacing a stale socket) and serves it on threads.
pub(crate) fn serve(dir: &Path, ctx: Arc<Context>) -> Result<PathBuf, SocketError> {
    std::fs::create_dir_all(dir).map_err(|source| SocketError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    // Bound under a temporary name and renamed: the socket file appears only once it
    // accepts connections (bind and listen are two steps), so a client may simply
    // wait for the file.
    let path = dir.join(SOCKET_NAME);
    let tmp = dir.join(format!(".{SOCKET_NAME}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let bind_err = |source| SocketError::Bind {
        path: path.clone(),
        source,
    };
    let listener = UnixListener::bind(&tmp).map_err(bind_err)?;
    std::fs::rename(&tmp, &path).map_err(bind_err)?;
    std::thread::Builder::new()
        .name("rpc-accept".into())
        .stack_size(128 * 1024)
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        let ctx = Arc::clone(&ctx);
                        let spawned = std::thread::Builder::new()
                            .name("rpc-client".into())
                            .stack_size(256 * 1024)
                            .spawn(move || handle_client(stream, &ctx));
                        if let Err(error) = spawned {
                            tracing::warn!(%error, "spawn RPC client thread");
                        }
                    }
                    Err(error) => tracing::warn!(%error, "accept RPC connection"),
                }
            }
        })
        .map_err(SocketError::Thread)?;
    Ok(path)
}

fn handle_client(stream: UnixStream, ctx: &Arc<Context>) {
    let client = match stream.try_clone().and_then(Client::new) {
        Ok(c) => c,
        Err(error) => {
            tracing::warn!(%error, "set up RPC client");
            return;
        }
    };
    let _ = ctx.events.send(Event::Client(Arc::clone(&client)));
    let mut reader = BufReader::with_capacity(8 * 1024, stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        let consumed = match read_line_capped(&mut reader, &mut line, MAX_REQUEST) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let response = if consumed > line.len() + 1 {
            Some(Response::error(
                Value::Null,
                RpcError::new(
                    ErrorCode::InvalidRequest,
                    format!("request line longer than {MAX_REQUEST} bytes"),
                ),
            ))
        } else if line.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            handle_line(&line, ctx, &client)
        };
        if let Some(response) = response
            && client.send(&response).is_err()
        {
            return;
        }
    }
}

/// Handles one request line; `None` when the answer is sent later (actions) or not
/// needed.
fn handle_line(line: &[u8], ctx: &Arc<Context>, client: &Arc<Client>) -> Option<Response> {
    let value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            let err = RpcError::new(ErrorCode::ParseError, format!("not JSON: {e}"));
            return Some(Response::error(Value::Null, err));
        }
    };
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    let request: Request = match serde_json::from_value(value) {
        Ok(r) => r,
        Err(e) => {
            let err = RpcError::new(
                ErrorCode::InvalidRequest,
                format!("not a JSON-RPC request: {e}"),
            );
            return Some(Response::error(id, err));
        }
    };
    let result = match request.method.as_str() {
        "status" => control(ctx, Control::Status, request.params),
        "start" => control(ctx, Control::Start, request.params),
        "stop" => control(ctx, Control::Stop, request.params),
        "restart" => control(ctx, Control::Restart, request.params),
        "shutdown" => control(ctx, Control::Shutdown, request.params),
        "logs" => logs(ctx, request.params),
        "action.run" => return start_action(ctx, client, id, request.params),
        other => Err(RpcError::new(
            ErrorCode::MethodNotFound,
            format!(
                "no method {other:?}; methods: status, start, stop, restart, shutdown, logs, action.run"
            ),
        )),
    };
    Some(match result {
        Ok(v) => Response::result(id, v, None),
        Err(e) => Response::error(id, e),
    })
}

/// Runs `action.run` on its own thread (at most [`MAX_RUNNING_ACTIONS`] at once); the
/// response is sent when it finishes.
fn start_action(
    ctx: &Arc<Context>,
    client: &Arc<Client>,
    id: Value,
    params: Option<Value>,
) -> Option<Response> {
    if ctx.running_actions.fetch_add(1, Ordering::SeqCst) >= MAX_RUNNING_ACTIONS {
        ctx.running_actions.fetch_sub(1, Ordering::SeqCst);
        let err = RpcError::new(
            ErrorCode::RateLimited,
            format!("{MAX_RUNNING_ACTIONS} actions are already running; retry later"),
        )
        .with("retryAfter", 1);
        return Some(Response::error(id, err));
    }
    let (ctx2, client2, id2) = (Arc::clone(ctx), Arc::clone(client), id.clone());
    let spawned = std::thread::Builder::new()
        .name("action".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let response = match action(&ctx2, params) {
                Ok(v) => Response::result(id2, v, None),
                Err(e) => Response::error(id2, e),
            };
            ctx2.running_actions.fetch_sub(1, Ordering::SeqCst);
            let _ = client2.send(&response);
        });
    match spawned {
        Ok(_) => None,
        Err(e) => {
            ctx.running_actions.fetch_sub(1, Ordering::SeqCst);
            let err = RpcError::new(ErrorCode::Internal, format!("spawn action thread: {e}"));
            Some(Response::error(id, err))
        }
    }
}

fn params<T: DeserializeOwned>(params: Option<Value>) -> Result<T, RpcError> {
    let params = match params {
        None | Some(Value::Null) => json!({}),
        Some(p) => p,
    };
    serde_json::from_value(params).map_err(|e| RpcError::invalid_params("params", e))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

fn control(ctx: &Context, request: Control, raw: Option<Value>) -> Result<Value, RpcError> {
    let NoParams {} = params(raw)?;
    ask(ctx, request)
}

fn ask(ctx: &Context, request: Control) -> Result<Value, RpcError> {
    let (tx, rx) = mpsc::channel();
    let gone = || RpcError::new(ErrorCode::Internal, "the supervisor loop is not running");
    ctx.events
        .send(Event::Control(request, tx))
        .map_err(|_| gone())?;
    rx.recv_timeout(Duration::from_secs(30))
        .map_err(|_| gone())?
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsParams {
    daemon: Option<String>,
    limit: Option<usize>,
    cursor: Option<u64>,
}

fn logs(ctx: &Context, raw: Option<Value>) -> Result<Value, RpcError> {
    let p: LogsParams = params(raw)?;
    let limit = p.limit.unwrap_or(100).min(MAX_LOG_LIMIT);
    let logs = ctx.logs.lock().unwrap_or_else(|p| p.into_inner());
    let (entries, next) = logs.read(p.daemon.as_deref(), p.cursor, limit);
    Ok(json!({ "entries": entries, "nextCursor": next }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionRunParams {
    id: String,
    #[serde(default)]
    input: Option<Value>,
}

fn action(ctx: &Context, raw: Option<Value>) -> Result<Value, RpcError> {
    let p: ActionRunParams = params(raw)?;
    let Some(spec) = ctx.actions.iter().find(|a| a.id == p.id) else {
        return Err(
            RpcError::new(ErrorCode::NotFound, format!("no action {:?}", p.id))
                .with("what", "action"),
        );
    };
    if spec.allowed_statuses != AllowedStatuses::Any {
        let status = ask(ctx, Control::Status)?;
        let running = status.get("desired") == Some(&json!("running"));
        let down = status.get("allDown") == Some(&json!(true));
        let (ok, when) = match spec.allowed_statuses {
            AllowedStatuses::OnlyRunning => (running, "running"),
            AllowedStatuses::OnlyStopped => (down && !running, "stopped"),
            AllowedStatuses::Any => (true, ""),
        };
        if !ok {
            return Err(RpcError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "action {} may only run while the service is {when}",
                    spec.id
                ),
            ));
        }
    }
    run_action(spec, p.input, ctx.images.get(&spec.image), &ctx.reaper)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn context() -> (Arc<Context>, Arc<Client>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (events, rx) = mpsc::channel();
        // Answer every control request like an empty supervisor would.
        std::thread::spawn(move || {
            while let Ok(event) = rx.recv() {
                if let Event::Control(_, reply) = event {
                    let _ = reply.send(Ok(json!({"desired": "stopped", "allDown": true})));
                }
            }
        });
        let logs = crate::logs::LogStore::new(dir.path(), 1 << 16, 1 << 16).unwrap();
        let ctx = Arc::new(Context {
            events,
            logs: Arc::new(std::sync::Mutex::new(logs)),
            actions: Vec::new(),
            images: BTreeMap::new(),
            running_actions: AtomicUsize::new(0),
            reaper: Arc::new(Reaper::new(|_, _| {})),
        });
        let (a, b) = UnixStream::pair().unwrap();
        std::mem::forget(b);
        (ctx, Client::new(a).unwrap(), dir)
    }

    fn answer(line: &str) -> Response {
        let (ctx, client, _dir) = context();
        handle_line(line.as_bytes(), &ctx, &client).unwrap()
    }

    fn code(r: &Response) -> Option<i32> {
        match &r.payload {
            hearth_rpc::ResponsePayload::Error(e) => Some(e.code),
            hearth_rpc::ResponsePayload::Result(_) => None,
        }
    }

    #[test]
    fn requests_are_dispatched_and_errors_coded() {
        let ok = answer(r#"{"jsonrpc":"2.0","id":"a","method":"status"}"#);
        assert_eq!((ok.id.clone(), code(&ok)), (json!("a"), None));
        assert_eq!(code(&answer("{")), Some(-32700));
        assert_eq!(code(&answer(r#"{"id":1,"method":5}"#)), Some(-32600));
        assert_eq!(code(&answer(r#"{"id":1,"method":"x.y"}"#)), Some(-32601));
        assert_eq!(
            code(&answer(r#"{"id":1,"method":"stop","params":{"now":true}}"#)),
            Some(-32602)
        );
        assert_eq!(
            code(&answer(r#"{"id":1,"method":"logs","params":{"limit":-1}}"#)),
            Some(-32602)
        );
    }

    #[test]
    fn actions_beyond_the_limit_are_refused_as_rate_limited() {
        let (ctx, client, _dir) = context();
        ctx.running_actions
            .store(MAX_RUNNING_ACTIONS, Ordering::SeqCst);
        let line = br#"{"id":3,"method":"action.run","params":{"id":"x"}}"#;
        let r = handle_line(line, &ctx, &client).unwrap();
        assert_eq!((r.id.clone(), code(&r)), (json!(3), Some(37)));
        assert_eq!(
            ctx.running_actions.load(Ordering::SeqCst),
            MAX_RUNNING_ACTIONS
        );
    }

    #[test]
    fn a_client_that_does_not_read_is_disconnected_without_blocking() {
        let (a, b) = UnixStream::pair().unwrap();
        let client = Client::new(a).unwrap();
        let big = "x".repeat(64 * 1024);
        let start = std::time::Instant::now();
        let sent = (0..10_000)
            .take_while(|_| client.send(&big).is_ok())
            .count();
        assert!(sent < 10_000, "never noticed the stuck client");
        assert!(start.elapsed() < Duration::from_secs(5));
        drop(b);
    }

    proptest! {
        /// Arbitrary bytes never panic and always get an answer with an id.
        #[test]
        fn any_line_gets_an_answer(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let (ctx, client, _dir) = context();
            prop_assert!(handle_line(&line, &ctx, &client).is_some());
        }

        /// Any JSON object with a string method is answered (never left pending).
        #[test]
        fn any_request_object_gets_an_answer(method in "[a-z.]{0,12}", id in any::<u32>()) {
            let (ctx, client, _dir) = context();
            let line = json!({"jsonrpc": "2.0", "id": id, "method": method}).to_string();
            let answer = handle_line(line.as_bytes(), &ctx, &client);
            if method != "action.run" {
                prop_assert_eq!(answer.unwrap().id, json!(id));
            }
        }
    }
}
