//! A server on 127.0.0.1:0 and a minimal HTTP/1.1 client speaking raw TCP, so tests can
//! also send what well-behaved clients never would.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hearth_api::{ApiConfig, App, AppParts, Endpoint, LogBuffer};
use hearth_store::{Store, StoreOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const PASSWORD: &str = "correct horse battery";

pub type ConfigFn = Box<dyn FnOnce(&mut ApiConfig) + Send>;

pub struct TestServer {
    pub addr: SocketAddr,
    pub store: Store,
    pub dir: tempfile::TempDir,
    pub cancel: CancellationToken,
    pub join: Option<JoinHandle<Result<(), hearth_api::ApiError>>>,
    pub local: String,
    /// The server's dispatcher and authenticator, for in-process calls with any peer.
    pub dispatcher: hearth_api::Dispatcher,
    pub auth: Arc<hearth_api::Authenticator>,
}

#[derive(Default)]
pub struct Options {
    pub config: Option<ConfigFn>,
    pub channel: Option<usize>,
    pub mcp: Option<Arc<dyn Endpoint>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ApiConfig::new(dir.path().to_path_buf());
        config.shutdown_grace = Duration::from_secs(2);
        if let Some(f) = opts.config {
            f(&mut config);
        }
        let mut so = StoreOptions::default();
        if let Some(c) = opts.channel {
            so.channel = c;
        }
        let store = Store::open_with(
            &dir.path().join("store.redb"),
            App::initial_document("test").unwrap(),
            so,
        )
        .unwrap();
        let mut app = App::new(AppParts {
            store: store.clone(),
            logs: LogBuffer::new(100),
            config,
        })
        .unwrap();
        if let Some(m) = opts.mcp {
            app = app.with_mcp(m);
        }
        let (dispatcher, auth) = (app.dispatcher(), app.authenticator());
        let local =
            std::fs::read_to_string(dir.path().join(hearth_layout::LOCAL_COOKIE_FILE)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let join = tokio::spawn(hearth_api::serve(listener, app, cancel.clone()));
        TestServer {
            addr,
            store,
            dir,
            cancel,
            join: Some(join),
            local,
            dispatcher,
            auth,
        }
    }

    pub fn data_path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A server whose setup is complete with [`PASSWORD`].
    pub async fn set_up() -> TestServer {
        let s = TestServer::start().await;
        s.setup().await;
        s
    }

    /// The first-boot setup code (from the data dir, as a person would read the file).
    pub fn setup_code(&self) -> String {
        std::fs::read_to_string(self.data_path("setup-code"))
            .unwrap()
            .trim()
            .to_owned()
    }

    pub async fn setup(&self) {
        let r = self
            .call(
                "setup.complete",
                json!({"password": PASSWORD, "hostname": "box", "setupCode": self.setup_code()}),
                &[],
            )
            .await;
        assert!(r.get("error").is_none(), "{r}");
    }

    pub async fn post(&self, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        let mut h: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        http(
            self.addr,
            "POST",
            hearth_layout::RPC_PATH,
            &h,
            body.as_bytes(),
        )
        .await
    }

    /// One JSON-RPC call; returns the response object.
    pub async fn call(&self, method: &str, params: Value, headers: &[(&str, &str)]) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        self.post(headers, &body.to_string()).await.json()
    }

    /// A call with the local secret (always authenticated).
    pub async fn local_call(&self, method: &str, params: Value) -> Value {
        let local = self.local.clone();
        self.call(method, params, &[("x-hearth-local-auth", &local)])
            .await
    }

    /// Logs in; returns the session token from `Set-Cookie`.
    pub async fn login(&self) -> String {
        let body = json!({"method": "auth.login", "params": {"password": PASSWORD}}).to_string();
        let r = self.post(&[], &body).await;
        assert_eq!(r.status, 200);
        session_from(&r).unwrap_or_else(|| panic!("no session cookie: {r:?}"))
    }

    pub async fn revision(&self) -> u64 {
        self.local_call("db.dump", json!({"pointer": "/serverInfo"}))
            .await["result"]["rev"]
            .as_u64()
            .unwrap()
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        self.cancel.cancel();
        if let Some(j) = self.join.take() {
            tokio::time::timeout(Duration::from_secs(5), j)
                .await
                .expect("server stops within the grace period")
                .unwrap()
                .unwrap();
        }
        self.dir
    }
}

pub fn session_from(r: &HttpResponse) -> Option<String> {
    r.header_all("set-cookie")
        .into_iter()
        .find_map(|c| {
            c.strip_prefix("session=")
                .map(|v| v.split(';').next().unwrap_or("").to_owned())
        })
        .filter(|t| !t.is_empty())
}

pub fn cookie(token: &str) -> String {
    format!("session={token}")
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Sends one request with `Connection: close` and reads the whole response.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    // The server may answer (413) before reading everything; ignore write errors then.
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("response within 10 s")
        .unwrap();
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

pub fn error_code(r: &Value) -> i64 {
    r["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("expected an error: {r}"))
}

/// A WebSocket client connection to the test server.
pub type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Opens a WebSocket to `path_and_query` on the server with extra request `headers`.
pub async fn ws_connect(
    s: &TestServer,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}{path_and_query}", s.addr)
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    tokio_tungstenite::client_async(req, tcp)
        .await
        .map(|(ws, _)| ws)
}

/// [`ws_connect`] with the local-auth header (must succeed).
pub async fn local_ws_at(s: &TestServer, path_and_query: &str) -> Ws {
    let local = s.local.clone();
    ws_connect(s, path_and_query, &[("x-hearth-local-auth", &local)])
        .await
        .unwrap()
}

/// Writes package `id` (title `Title`, one image for this host's arch, the service
/// `spec`) signed by `key` into `dir`; returns its path.
pub fn write_package(
    dir: &std::path::Path,
    key: &hearth_s9pk::SigningKey,
    id: &str,
    spec: &Value,
) -> String {
    let arch = std::env::consts::ARCH;
    let manifest = json!({
        "id": id, "title": id, "version": "1.0.0:0", "license": "MIT",
        "packageRepo": "https://example.com/p", "upstreamRepo": "https://example.com/u",
        "description": {"short": id, "long": "A test service."},
        "images": {"main": {"arch": [arch]}}, "volumes": ["main"],
    });
    let mut b = hearth_s9pk::ArchiveBuilder::new();
    b.add_file_bytes("manifest.json", manifest.to_string())
        .unwrap();
    b.add_file_bytes("hearth.json", spec.to_string()).unwrap();
    b.add_file_bytes(&format!("images/{arch}/main.squashfs"), vec![7u8; 4096])
        .unwrap();
    let path = dir.join(format!("{id}.s9pk"));
    b.write_file(key, &path).unwrap();
    path.display().to_string()
}

impl TestServer {
    /// `<data>/import` (created): where `package.install {path}` may read.
    pub fn import_dir(&self) -> std::path::PathBuf {
        let dir = self.dir.path().join(hearth_layout::PACKAGE_IMPORT_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

/// Installs package `id` with `spec` through `package.install` (an untrusted signer
/// allowed).
pub async fn install_package(s: &TestServer, id: &str, spec: &Value) {
    let key = hearth_s9pk::SigningKey::from_bytes(&[3u8; 32]);
    let path = write_package(&s.import_dir(), &key, id, spec);
    let r = s
        .local_call(
            "package.install",
            json!({"path": path, "allowUntrusted": true}),
        )
        .await;
    assert_eq!(r["result"]["id"], id, "{r}");
}
