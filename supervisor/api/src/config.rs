//! [`ApiConfig`]: the validated runtime settings of the API.

use std::path::PathBuf;
use std::time::Duration;

/// Settings of the API server (built by `hearthd` from its flags).
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Data directory (for `server.info` and the local cookie file).
    pub data_dir: PathBuf,
    /// Version reported by `server.info` and `rpc.discover`.
    pub version: String,
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    /// Time allowed to receive the request headers; slower clients are disconnected.
    pub header_timeout: Duration,
    /// Time allowed to receive the request body.
    pub body_timeout: Duration,
    /// A session unused for this long is logged out.
    pub session_idle: Duration,
    /// A session ends this long after login, used or not.
    pub session_max_age: Duration,
    /// Served over TLS (or behind a TLS proxy): cookies get `Secure`.
    pub tls: bool,
    /// How long [`crate::serve`] waits for open connections after cancellation.
    pub shutdown_grace: Duration,
    /// Maximum number of requests in one JSON-RPC batch.
    pub max_batch: usize,
    /// Failed logins from unknown devices allowed per minute, all client addresses
    /// together; beyond it such logins are refused with "retry after" (known devices,
    /// which logged in before, are exempt).
    pub login_failure_budget: u32,
    /// Largest total response body of one JSON-RPC batch, in bytes; the requests after
    /// it is reached are answered with an error instead of being run.
    pub max_batch_response: usize,
    /// Unauthenticated requests handled at once (without a known-device cookie);
    /// further ones get 503 at once, so an anonymous flood cannot starve the owner.
    pub max_anonymous: usize,
    /// Maximum JSON nesting depth of a request body.
    pub max_depth: usize,
    /// Maximum number of simultaneous connections (further ones are closed at once).
    pub max_connections: usize,
    /// Largest package accepted by `POST /rest/package/upload`, in bytes.
    pub upload_limit: u64,
    /// Boot slot state written by `hearth-init` (read by `server.info`; its presence
    /// allows `server.shutdown`/`server.restart`).
    pub boot_state_file: PathBuf,
    /// The web UI's built assets (`web/dist`), served on every non-API path; `None`
    /// keeps the one-line text at `/`.
    pub web_dir: Option<PathBuf>,
    /// Where a person-readable copy of the first-boot setup code is written (on the
    /// image: a file on the boot FAT partition); `None`: only the data dir's copy.
    pub setup_code_file: Option<PathBuf>,
}

impl ApiConfig {
    /// Defaults for a server with data in `data_dir`.
    pub fn new(data_dir: PathBuf) -> ApiConfig {
        ApiConfig {
            data_dir,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            body_limit: 1 << 20,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            session_idle: Duration::from_secs(7 * 24 * 3600),
            session_max_age: Duration::from_secs(30 * 24 * 3600),
            tls: false,
            shutdown_grace: Duration::from_secs(5),
            max_batch: 100,
            max_batch_response: 4 << 20,
            login_failure_budget: 20,
            max_anonymous: 32,
            max_depth: 64,
            max_connections: 8192,
            upload_limit: 8 << 30,
            boot_state_file: PathBuf::from("/run/hearth/boot.json"),
            web_dir: None,
            setup_code_file: None,
        }
    }
}
