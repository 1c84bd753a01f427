//! A fake `McpBackend`, a temporary store and a tiny MCP-over-HTTP client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hearth_mcp::{McpBackend, McpBody, McpConfig, McpService};
use hearth_rpc::{ErrorCode, RpcError};
use hearth_store::Store;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

pub(crate) const TOKEN: &str = "good-token";
/// A second principal (another admin token).
pub(crate) const OTHER_TOKEN: &str = "other-token";
/// A read-only token: may call only methods that do not mutate.
pub(crate) const READ_TOKEN: &str = "read-token";

/// Authenticates `Bearer good-token`; implements a few methods; records calls.
pub(crate) struct FakeApi {
    pub(crate) store: Store,
    pub(crate) calls: Mutex<Vec<(String, String, Value)>>,
    /// Simulates `auth.token.revoke`.
    pub(crate) revoked: AtomicBool,
}

impl McpBackend for FakeApi {
    type Principal = String;

    async fn authenticate(&self, request: &http::request::Parts) -> Result<String, RpcError> {
        if request.headers.get(http::header::ORIGIN).is_some() {
            return Err(RpcError::unauthorized("foreignOrigin", "foreign Origin"));
        }
        match request.headers.get(http::header::AUTHORIZATION) {
            Some(v)
                if v.as_bytes() == format!("Bearer {TOKEN}").as_bytes()
                    && !self.revoked.load(Ordering::SeqCst) =>
            {
                Ok("token:test".to_owned())
            }
            Some(v) if v.as_bytes() == format!("Bearer {OTHER_TOKEN}").as_bytes() => {
                Ok("token:other".to_owned())
            }
            Some(v) if v.as_bytes() == format!("Bearer {READ_TOKEN}").as_bytes() => {
                Ok("token:read".to_owned())
            }
            Some(_) => Err(RpcError::unauthorized("invalidToken", "unknown token")),
            None => Err(RpcError::unauthorized("missing", "log in first")),
        }
    }

    fn same_principal(&self, a: &String, b: &String) -> bool {
        a == b
    }

    fn may_call(&self, principal: &String, method: &str) -> bool {
        principal != "token:read" || hearth_rpc::method_info(method).is_some_and(|m| m.read_scope())
    }

    async fn still_valid(&self, _principal: &String) -> bool {
        !self.revoked.load(Ordering::SeqCst)
    }

    async fn call(
        &self,
        principal: &String,
        method: &str,
        params: Value,
    ) -> Result<Value, RpcError> {
        self.calls
            .lock()
            .unwrap()
            .push((principal.clone(), method.to_owned(), params.clone()));
        match method {
            "server.info" => Ok(json!({"hostname": "testbox", "version": "0.1.0"})),
            "server.echo" => match params.get("message") {
                Some(Value::String(m)) => Ok(Value::String(m.clone())),
                _ => Err(RpcError::invalid_params("message", "expected a string")),
            },
            "db.put.ui" => {
                let pointer = params["pointer"].as_str().unwrap_or_default().to_owned();
                let value = params["value"].clone();
                self.store
                    .mutate(|doc| {
                        let ui = &mut doc["public"]["ui"];
                        match ui.pointer_mut(&pointer) {
                            Some(slot) => *slot = value,
                            None => {
                                let key = pointer.trim_start_matches('/').to_owned();
                                ui[key] = value;
                            }
                        }
                        Ok::<_, std::convert::Infallible>(())
                    })
                    .map_err(|_| RpcError::internal())?;
                Ok(Value::Null)
            }
            "db.put.private" => {
                self.store
                    .mutate(|doc| {
                        doc["private"]["x"] = params["value"].clone();
                        Ok::<_, std::convert::Infallible>(())
                    })
                    .map_err(|_| RpcError::internal())?;
                Ok(Value::Null)
            }
            _ => Err(RpcError::new(
                ErrorCode::NotFound,
                format!("no handler for {method}"),
            )),
        }
    }
}

pub(crate) struct Harness {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) api: Arc<FakeApi>,
    pub(crate) mcp: McpService<FakeApi>,
    /// Negotiated protocol version per session id.
    versions: Mutex<HashMap<String, String>>,
    /// The bearer token sent with every request ([`TOKEN`] unless changed).
    pub(crate) bearer: Mutex<String>,
}

impl Harness {
    pub(crate) fn new(debounce: Duration) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let seed = json!({
            "public": {"serverInfo": {"hostname": "testbox"}, "ui": {"theme": "light"}},
            "private": {"password": "hash"}
        });
        let store = Store::open(&dir.path().join("db.redb"), seed).unwrap();
        let api = Arc::new(FakeApi {
            store: store.clone(),
            calls: Mutex::default(),
            revoked: AtomicBool::new(false),
        });
        let mut config = McpConfig::default();
        config.debounce = debounce;
        config.revalidate_every = Duration::from_millis(200);
        let mcp = McpService::new(Arc::clone(&api), store, config);
        Harness {
            _dir: dir,
            api,
            mcp,
            versions: Mutex::default(),
            bearer: Mutex::new(TOKEN.to_owned()),
        }
    }

    pub(crate) fn request(
        &self,
        method: http::Method,
        session: Option<&str>,
        body: Option<Value>,
    ) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(method)
            .uri("http://127.0.0.1/mcp")
            .header(
                "authorization",
                format!("Bearer {}", self.bearer.lock().unwrap()),
            )
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json");
        if let Some(s) = session {
            b = b.header("mcp-session-id", s);
            // 2025-06-18 clients send the negotiated version; 2025-03-26 had no header.
            match self.versions.lock().unwrap().get(s).map(String::as_str) {
                Some("2025-03-26") | None => {}
                Some(v) => b = b.header("mcp-protocol-version", v),
            }
        }
        let bytes = body.map(|v| Bytes::from(v.to_string())).unwrap_or_default();
        b.body(Full::new(bytes)).unwrap()
    }

    /// POSTs one JSON-RPC message and returns the status, headers and every JSON-RPC
    /// message of the response (JSON or SSE).
    pub(crate) async fn post(&self, session: Option<&str>, msg: Value) -> Posted {
        let resp = self
            .mcp
            .handle(self.request(http::Method::POST, session, Some(msg)))
            .await;
        read_all(resp).await
    }

    /// `initialize` + `notifications/initialized`; returns the session id and the result.
    pub(crate) async fn initialize(&self, version: &str) -> (String, Value) {
        let init = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": version,
                "capabilities": {},
                "clientInfo": {"name": "hearth-test", "version": "0"}
            }
        });
        let posted = self.post(None, init).await;
        assert_eq!(posted.status, StatusCode::OK, "{:?}", posted.messages);
        let session = posted
            .headers
            .get("mcp-session-id")
            .expect("initialize must return Mcp-Session-Id")
            .to_str()
            .unwrap()
            .to_owned();
        let result = posted.result(0);
        let agreed = result["protocolVersion"].as_str().unwrap().to_owned();
        self.versions
            .lock()
            .unwrap()
            .insert(session.clone(), agreed);
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let ack = self.post(Some(&session), note).await;
        assert_eq!(ack.status, StatusCode::ACCEPTED);
        (session, result)
    }

    /// A request in an initialized session; returns its `result` (panics on error).
    pub(crate) async fn call(&self, session: &str, id: u64, method: &str, params: Value) -> Value {
        let posted = self.rpc(session, id, method, params).await;
        posted.result(id)
    }

    pub(crate) async fn rpc(&self, session: &str, id: u64, method: &str, params: Value) -> Posted {
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.post(Some(session), msg).await
    }

    /// Opens the session's GET SSE stream.
    pub(crate) async fn open_stream(&self, session: &str) -> SseReader {
        let resp = self
            .mcp
            .handle(self.request(http::Method::GET, Some(session), None))
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        SseReader {
            body: resp.into_body(),
            buf: String::new(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Posted {
    pub(crate) status: StatusCode,
    pub(crate) headers: http::HeaderMap,
    pub(crate) messages: Vec<Value>,
}

impl Posted {
    pub(crate) fn response(&self, id: u64) -> &Value {
        self.messages
            .iter()
            .find(|m| m["id"] == json!(id))
            .unwrap_or_else(|| panic!("no response with id {id} in {:?}", self.messages))
    }

    pub(crate) fn result(&self, id: u64) -> Value {
        let r = self.response(id);
        assert!(r.get("error").is_none(), "error response: {r}");
        r["result"].clone()
    }
}

async fn read_all(resp: Response<McpBody>) -> Posted {
    let status = resp.status();
    let headers = resp.headers().clone();
    let is_sse = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("response body did not end")
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let messages = if is_sse {
        sse_data(&text)
    } else {
        // Error statuses may carry plain text.
        serde_json::from_str(&text)
            .map(|v| vec![v])
            .unwrap_or_default()
    };
    Posted {
        status,
        headers,
        messages,
    }
}

/// The JSON payloads of the `data:` lines of complete SSE events.
fn sse_data(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .flat_map(|event| event.lines())
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

pub(crate) struct SseReader {
    body: McpBody,
    buf: String,
}

impl SseReader {
    /// Every JSON-RPC message that arrives within `window`.
    pub(crate) async fn collect_for(&mut self, window: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + window;
        let mut out = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) | Ok(None) => break,
                Ok(Some(frame)) => {
                    if let Ok(data) = frame.unwrap().into_data() {
                        self.buf.push_str(&String::from_utf8_lossy(&data));
                        while let Some(end) = self.buf.find("\n\n") {
                            let event: String = self.buf.drain(..end + 2).collect();
                            out.extend(sse_data(&event));
                        }
                    }
                }
            }
        }
        out
    }

    /// Waits up to `limit` for the first message matching `pred`.
    pub(crate) async fn wait_for(
        &mut self,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return None;
            }
            let msgs = self
                .collect_for(Duration::from_millis(50).min(deadline - now))
                .await;
            if let Some(m) = msgs.into_iter().find(|m| pred(m)) {
                return Some(m);
            }
        }
    }
}

pub(crate) fn updated(m: &Value) -> Option<&str> {
    (m["method"] == "notifications/resources/updated").then(|| m["params"]["uri"].as_str())?
}
