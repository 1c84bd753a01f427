//! Who is calling: [`Principal`], and [`Authenticator`], which derives it from headers.
//!
//! Order of checks (first match wins):
//! 1. `Authorization: Bearer <token>` — an API token; a wrong token is refused outright.
//!    Bearer tokens are not ambient credentials, so `Origin` does not matter for them.
//! 2. A foreign `Origin` (its host differs from `Host`) refuses the request: browsers
//!    attach cookies to cross-site requests, and no Hearth client needs cross-origin
//!    calls.
//! 3. The local secret (header `x-hearth-local-auth` only) — the CLI on the same
//!    machine, which can read `DATA/run/local.cookie` (mode 0600). A `local` *cookie* is
//!    ignored: a cookie can be planted in a browser by another site or a compromised
//!    service on a sibling name, and judging it before the session cookie let a planted
//!    one lock browser users out.
//! 4. The `session` cookie — a browser session; unknown or expired sessions make the
//!    caller anonymous (so `auth.login` still works) and authenticated methods then say
//!    "expired".
//!
//! API tokens carry a scope (`read` or `admin`, [`Principal::may_call`]). Logins are
//! rate limited before any hashing (`ratelimit.rs`); a successful login also sets a
//! `device` cookie (`device.rs`) that later logins from that browser present to be
//! limited per device rather than per address or by the global budget.

pub(crate) mod device;
mod logthrottle;
mod ratelimit;
pub(crate) mod secret;
pub(crate) mod sessions;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use hearth_layout::{LOCAL_AUTH_HEADER, SESSION_COOKIE};
use hearth_rpc::RpcError;
use hearth_rpc::methods::auth::TokenScope;
use hearth_store::Store;
use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use tokio::sync::Semaphore;

use crate::{ApiError, doc};
use device::DeviceKey;
use logthrottle::LogThrottle;
pub(crate) use ratelimit::{Client, LoginLimiter};

/// Name of the known-device cookie (see `device.rs`).
pub(crate) const DEVICE_COOKIE: &str = "device";
/// argon2 computations at once for unknown devices (each needs 64 MiB and a core for
/// ~0.3 s); known devices have a slot of their own, so on a two-core box the owner's
/// login always finds a core.
const HASH_SLOTS: usize = 1;
/// Password checks from unknown devices that may wait for a slot; more are refused
/// at once with "busy, retry after".
const HASH_QUEUE: usize = 4;

/// Who is making a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No (valid) credentials. `expired` is true when a session cookie was sent but
    /// names no live session.
    Anonymous {
        /// A stale session cookie was presented.
        expired: bool,
    },
    /// A browser session (id = SHA-256 of its token, hex).
    Session {
        /// Session id.
        id: String,
    },
    /// An API token.
    Token {
        /// Token id.
        id: String,
        /// What it may do.
        scope: TokenScope,
    },
    /// The CLI on the same machine (local cookie file).
    Local,
}

impl Principal {
    /// Whether the caller may use methods that require authentication.
    pub fn is_authenticated(&self) -> bool {
        !matches!(self, Principal::Anonymous { .. })
    }

    /// A short label for logs (`session:ab12…`, `token:…`, `local`, `anonymous`).
    pub fn label(&self) -> String {
        match self {
            Principal::Anonymous { .. } => "anonymous".into(),
            Principal::Session { id } => format!("session:{}", id.get(..8).unwrap_or(id)),
            Principal::Token { id, .. } => format!("token:{id}"),
            Principal::Local => "local".into(),
        }
    }

    /// Whether the caller holds every privilege (all but `read`-scoped API tokens).
    pub fn is_admin(&self) -> bool {
        match self {
            Principal::Anonymous { .. } => false,
            Principal::Token { scope, .. } => *scope == TokenScope::Admin,
            Principal::Session { .. } | Principal::Local => true,
        }
    }

    /// Whether the caller may call a method open (`read_scope`) or not open to
    /// `read`-scoped tokens. Authentication itself is checked separately.
    pub fn may_call(&self, read_scope: bool) -> bool {
        read_scope
            || !matches!(
                self,
                Principal::Token {
                    scope: TokenScope::Read,
                    ..
                }
            )
    }

    /// The error for a `read`-scoped token calling `what`.
    pub(crate) fn scope_refusal(what: &str) -> RpcError {
        RpcError::unauthorized(
            "scope",
            format!(
                "this API token has scope `read`: {what} changes state or reveals secrets; \
                 use an `admin` token (auth.token.create with scope admin)"
            ),
        )
    }

    /// The error for an anonymous caller of an authenticated method.
    pub(crate) fn refusal(&self) -> RpcError {
        match self {
            Principal::Anonymous { expired: true } => RpcError::unauthorized(
                "expired",
                "your session has expired or was logged out; log in again",
            ),
            _ => RpcError::unauthorized(
                "missing",
                "this method requires authentication: log in (auth.login), send an API \
                 token (Authorization: Bearer) or the local auth cookie",
            ),
        }
    }
}

/// Turns request headers into a [`Principal`]; owns sessions, tokens and passwords.
#[derive(Debug)]
pub struct Authenticator {
    store: Store,
    local_secret_hash: String,
    local_cookie_path: PathBuf,
    session_idle: Duration,
    session_max_age: Duration,
    pub(crate) limiter: LoginLimiter,
    /// Failed logins are client-triggered: their warnings are rate limited.
    failure_log: LogThrottle,
    /// Signs known-device cookies.
    device_key: DeviceKey,
    /// Admission to the hashing queue (slots + queue) for unknown devices.
    admission: Arc<Semaphore>,
    /// At most [`HASH_SLOTS`] argon2 computations at once.
    hashing: Arc<Semaphore>,
    /// A slot of its own for known devices: the owner does not queue behind strangers.
    device_hashing: Arc<Semaphore>,
    /// Password hash verifications started (a metric; tests count guesses with it).
    password_checks: Arc<AtomicU64>,
}

impl Authenticator {
    /// An authenticator over `store`; writes a fresh local secret to `local_cookie_path`
    /// (mode 0600, parent created with mode 0700). `login_budget`: failed logins from
    /// unknown devices allowed per minute, all addresses together.
    pub fn new(
        store: Store,
        local_cookie_path: &Path,
        session_idle: Duration,
        session_max_age: Duration,
        login_budget: u32,
    ) -> Result<Arc<Authenticator>, ApiError> {
        let secret = secret::random_token()?;
        write_private_file(local_cookie_path, secret.as_bytes())?;
        let device_key = load_device_key(&store)?;
        Ok(Arc::new(Authenticator {
            store,
            local_secret_hash: secret::sha256_hex(&secret),
            local_cookie_path: local_cookie_path.to_path_buf(),
            session_idle,
            session_max_age,
            limiter: LoginLimiter::new(login_budget),
            failure_log: LogThrottle::new(10, Duration::from_secs(10)),
            device_key,
            admission: Arc::new(Semaphore::new(HASH_SLOTS + HASH_QUEUE)),
            hashing: Arc::new(Semaphore::new(HASH_SLOTS)),
            device_hashing: Arc::new(Semaphore::new(1)),
            password_checks: Arc::default(),
        }))
    }

    /// How many password hash verifications have started since the server started.
    pub fn password_checks(&self) -> u64 {
        self.password_checks
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The id of the known device behind a `device` cookie value, if it is genuine.
    pub(crate) fn known_device(&self, cookie: Option<&str>) -> Option<String> {
        self.device_key.verify(cookie?, doc::now_ms())
    }

    /// A new known-device cookie value.
    pub(crate) fn issue_device(&self) -> Result<String, RpcError> {
        self.device_key.issue(doc::now_ms()).map_err(|e| e.to_rpc())
    }

    /// Where the local secret was written.
    pub fn local_cookie_path(&self) -> &Path {
        &self.local_cookie_path
    }

    /// The caller behind `headers`; `Err` when the request must be refused outright
    /// (wrong API token or local secret, foreign `Origin`).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, RpcError> {
        if let Some(token) = bearer(headers) {
            return match self.verify_api_token(token).await? {
                Some((id, scope)) => Ok(Principal::Token { id, scope }),
                None => Err(RpcError::unauthorized(
                    "invalidToken",
                    "the API token is unknown or revoked",
                )),
            };
        }
        if !same_origin(headers) {
            return Err(RpcError::unauthorized(
                "foreignOrigin",
                "requests from a foreign Origin are refused (Origin must match Host)",
            ));
        }
        if let Some(local) = header_str(headers, LOCAL_AUTH_HEADER) {
            let hash = secret::sha256_hex(local);
            if secret::constant_time_eq(hash.as_bytes(), self.local_secret_hash.as_bytes()) {
                return Ok(Principal::Local);
            }
            return Err(RpcError::unauthorized(
                "invalidToken",
                "the local auth secret is stale; hearthd writes a new one at every start",
            ));
        }
        if let Some(token) = cookie(headers, SESSION_COOKIE) {
            let id = secret::sha256_hex(token);
            return Ok(if self.check_session(&id).await? {
                Principal::Session { id }
            } else {
                Principal::Anonymous { expired: true }
            });
        }
        Ok(Principal::Anonymous { expired: false })
    }

    /// Whether `principal` is still valid (sessions can expire or be killed, tokens
    /// revoked). Long-lived connections call this periodically.
    pub async fn still_valid(&self, principal: &Principal) -> bool {
        match principal {
            Principal::Anonymous { .. } => false,
            Principal::Local => true,
            Principal::Session { id } => self.check_session(id).await.unwrap_or(false),
            Principal::Token { id, .. } => self.token_exists(id),
        }
    }

    /// Whether setup is complete (a password is set).
    pub fn setup_complete(&self) -> bool {
        matches!(
            self.store.get(crate::doc::PASSWORD_HASH),
            Ok(serde_json::Value::String(_))
        )
    }

    /// A hashing slot: for a known device its own, otherwise a place in the bounded
    /// queue (`Err(busy)` at once when it is full) and then one of the shared slots.
    /// The permits travel into the blocking task, so an abandoned request still holds
    /// its slot until its hash is done.
    async fn hash_slot(&self, known_device: bool) -> Result<HashSlot, RpcError> {
        let closed = |_| RpcError::internal();
        if known_device {
            let p = Arc::clone(&self.device_hashing)
                .acquire_owned()
                .await
                .map_err(closed)?;
            return Ok(HashSlot(vec![p]));
        }
        let queued = Arc::clone(&self.admission)
            .try_acquire_owned()
            .map_err(|_| busy())?;
        let running = Arc::clone(&self.hashing)
            .acquire_owned()
            .await
            .map_err(closed)?;
        Ok(HashSlot(vec![queued, running]))
    }
}

/// Permits held while one password is hashed.
pub(crate) struct HashSlot(#[allow(dead_code)] Vec<tokio::sync::OwnedSemaphorePermit>);

/// The error when the hashing queue is full.
pub(crate) fn busy() -> RpcError {
    RpcError::new(
        hearth_rpc::ErrorCode::RateLimited,
        "the server is busy checking other passwords; retry after 1 s",
    )
    .with("retryAfter", 1)
}

/// The device-cookie key from the private state, created on first start.
fn load_device_key(store: &Store) -> Result<DeviceKey, ApiError> {
    if let Ok(serde_json::Value::String(text)) = store.get(doc::DEVICE_KEY)
        && let Some(key) = DeviceKey::from_stored(&text)
    {
        return Ok(key);
    }
    let (key, text) = DeviceKey::generate()?;
    store
        .mutate(|d| doc::set(d, doc::DEVICE_KEY, serde_json::Value::String(text)))
        .map_err(|e| match e {
            hearth_store::MutateError::Store(source) => ApiError::Store {
                op: "store device key",
                source,
            },
            hearth_store::MutateError::Rejected(e) => ApiError::Document {
                pointer: doc::DEVICE_KEY.into(),
                reason: e.message,
            },
        })?;
    Ok(key)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = header_str(headers, AUTHORIZATION.as_str())?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The value of cookie `name`, if sent.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// True when there is no `Origin` or its host:port equals the `Host` header.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(host)) = (origin.to_str(), header_str(headers, HOST.as_str())) else {
        return false;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .map(|rest| rest.split('/').next().unwrap_or(rest));
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

fn write_private_file(path: &Path, content: &[u8]) -> Result<(), ApiError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |op| {
        move |source| ApiError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("create directory for"))?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("create"))?;
    f.write_all(content).map_err(io("write"))?;
    f.sync_all().map_err(io("sync"))?;
    std::fs::rename(&tmp, path).map_err(io("rename into place"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_must_match_host() {
        assert!(same_origin(&headers(&[("host", "a:1")])));
        assert!(same_origin(&headers(&[
            ("host", "a:1"),
            ("origin", "http://a:1")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "A:1"),
            ("origin", "https://a:1")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "a:1"),
            ("origin", "http://evil:1")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "a:1"),
            ("origin", "http://a:2")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "a:1"),
            ("origin", "null")
        ])));
        assert!(!same_origin(&headers(&[("origin", "http://a:1")])));
    }

    #[test]
    fn cookies_and_bearer_are_parsed() {
        let h = headers(&[("cookie", "a=1; session=tok; local=x"), ("cookie", "b=2")]);
        assert_eq!(cookie(&h, "session"), Some("tok"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "sess"), None);
        let h = headers(&[("authorization", "Bearer hth_abc")]);
        assert_eq!(bearer(&h), Some("hth_abc"));
        let h = headers(&[("authorization", "Basic abc")]);
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn local_cookie_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run/local.cookie");
        write_private_file(&p, b"secret").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"secret");
        write_private_file(&p, b"again").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"again");
    }
}
