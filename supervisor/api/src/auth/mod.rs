//! Who is calling: [`Principal`], and [`Authenticator`], which derives it from headers.
//!
//! Order of checks (first match wins):
//! 1. `Authorization: Bearer <token>` — an API token; a wrong token is refused outright.
//!    Bearer tokens are not ambient credentials, so `Origin` does not matter for them.
//! 2. A foreign `Origin` (its host differs from `Host`) refuses the request: browsers
//!    attach cookies to cross-site requests, and no Hearth client needs cross-origin
//!    calls.
//! 3. The local secret (header `x-hearth-local-auth` or cookie `local`) — the CLI on the
//!    same machine, which can read `DATA/run/local.cookie` (mode 0600).
//! 4. The `session` cookie — a browser session; unknown or expired sessions make the
//!    caller anonymous (so `auth.login` still works) and authenticated methods then say
//!    "expired".

mod logthrottle;
mod ratelimit;
pub(crate) mod secret;
pub(crate) mod sessions;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hearth_layout::{LOCAL_AUTH_HEADER, LOCAL_COOKIE, SESSION_COOKIE};
use hearth_rpc::RpcError;
use hearth_store::Store;
use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use tokio::sync::Semaphore;

use crate::ApiError;
use logthrottle::LogThrottle;
pub(crate) use ratelimit::LoginLimiter;

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
            Principal::Token { id } => format!("token:{id}"),
            Principal::Local => "local".into(),
        }
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
    /// At most two argon2 computations at once (each needs ~19 MiB).
    hashing: Semaphore,
}

impl Authenticator {
    /// An authenticator over `store`; writes a fresh local secret to `local_cookie_path`
    /// (mode 0600, parent created with mode 0700).
    pub fn new(
        store: Store,
        local_cookie_path: &Path,
        session_idle: Duration,
        session_max_age: Duration,
    ) -> Result<Arc<Authenticator>, ApiError> {
        let secret = secret::random_token()?;
        write_private_file(local_cookie_path, secret.as_bytes())?;
        Ok(Arc::new(Authenticator {
            store,
            local_secret_hash: secret::sha256_hex(&secret),
            local_cookie_path: local_cookie_path.to_path_buf(),
            session_idle,
            session_max_age,
            limiter: LoginLimiter::default(),
            failure_log: LogThrottle::new(10, Duration::from_secs(10)),
            hashing: Semaphore::new(2),
        }))
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
                Some(id) => Ok(Principal::Token { id }),
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
        let local =
            header_str(headers, LOCAL_AUTH_HEADER).or_else(|| cookie(headers, LOCAL_COOKIE));
        if let Some(local) = local {
            let hash = secret::sha256_hex(local);
            if secret::constant_time_eq(hash.as_bytes(), self.local_secret_hash.as_bytes()) {
                return Ok(Principal::Local);
            }
            return Err(RpcError::unauthorized(
                "invalidToken",
                "the local auth cookie is stale; hearthd writes a new one at every start",
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
            Principal::Token { id } => self.token_exists(id),
        }
    }

    /// Whether setup is complete (a password is set).
    pub fn setup_complete(&self) -> bool {
        matches!(
            self.store.get(crate::doc::PASSWORD_HASH),
            Ok(serde_json::Value::String(_))
        )
    }

    async fn hash_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, RpcError> {
        self.hashing
            .acquire()
            .await
            .map_err(|_| RpcError::internal())
    }
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
