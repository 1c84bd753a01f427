//! Synchronous JSON-RPC 2.0 over HTTP: one `POST {url}/rpc/v1` per call, and package
//! uploads streamed to `POST {url}/rest/package/upload` (answered like a call).
//!
//! # Design
//! * `ureq` (blocking, rustls): the CLI makes one call per invocation, so an async
//!   runtime would only add weight.
//! * HTTP 4xx/5xx are not transport errors here: `hearthd` answers JSON-RPC errors in
//!   the body, so the body is read whatever the status, and only a body that is not a
//!   JSON-RPC response becomes [`CallError::NotJsonRpc`].
//! * Redirects are not followed: a `POST` turned into a `GET` by a redirect would fail
//!   in a confusing way; the error names the `Location` instead.
//! * No proxy for loopback URLs, whatever `HTTP_PROXY` says: the local cookie must never
//!   travel through a proxy.
//! * HTTPS trusts the Mozilla roots by default; `--ca-cert FILE` replaces them with the
//!   PEM certificates in FILE, for a server whose certificate comes from its own CA.
//!
//! # Rejected alternatives
//! * `reqwest`: pulls in tokio and hyper for a single blocking request.
//! * ureq's cookie jar: the CLI needs one cookie, read from `Set-Cookie` once at login;
//!   a jar would add a `cookie_store` and `url` dependency for that.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_rpc::RpcError;
use serde_json::{Value, json};

/// Largest response body accepted (a `db.dump` of a big state fits comfortably).
const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// Overall time limit of one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Time limit for establishing the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a package upload may make no progress writing.
const UPLOAD_STALL: Duration = Duration::from_secs(60);
/// Longest the server may take to verify and install an uploaded package.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Errors of one RPC call.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The URL given with `--url` cannot be used.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The `--ca-cert` file could not be read.
    #[error("reading CA certificates from {path}: {source}")]
    ReadCaCert {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The `--ca-cert` file holds no usable certificate.
    #[error("reading CA certificates from {path}: {reason}")]
    ParseCaCert {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The request could not be sent or the response not received.
    #[error("calling {method} at {endpoint}: {source}")]
    Transport {
        /// Method called.
        method: String,
        /// Full endpoint URL.
        endpoint: String,
        /// The transport failure.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The server answered something that is not a JSON-RPC response.
    #[error("calling {method} at {endpoint}: HTTP {status}, not a JSON-RPC response{detail}")]
    NotJsonRpc {
        /// Method called.
        method: String,
        /// Full endpoint URL.
        endpoint: String,
        /// HTTP status code.
        status: u16,
        /// A redirect target or the start of the body, prefixed with `: `.
        detail: String,
    },
    /// The server answered with a JSON-RPC error.
    #[error("{method}: {}", one_line(&error.to_string()))]
    Rpc {
        /// Method called.
        method: String,
        /// The error object.
        error: RpcError,
    },
}

impl CallError {
    /// The JSON-RPC error, if the server sent one.
    pub(crate) fn rpc_error(&self) -> Option<&RpcError> {
        match self {
            CallError::Rpc { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Messages are printed on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How a request proves who sends it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    /// No credential (public methods, login).
    None,
    /// A browser-style session token, sent as the `session` cookie.
    Session(String),
    /// The local auth secret read from the data directory.
    Local(String),
    /// An API token, sent as `Authorization: Bearer`.
    Token(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::None => "Credential::None",
            Credential::Session(_) => "Credential::Session(<redacted>)",
            Credential::Local(_) => "Credential::Local(<redacted>)",
            Credential::Token(_) => "Credential::Token(<redacted>)",
        })
    }
}

/// A successful call.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The `result` member.
    pub(crate) result: Value,
    /// Values of the `session` cookie set by the response, if any.
    pub(crate) session_cookie: Option<String>,
}

/// A client for one server URL.
pub(crate) struct RpcClient {
    agent: ureq::Agent,
    /// For package uploads: no overall deadline (see [`RpcClient::upload_package`]).
    upload_agent: ureq::Agent,
    /// The normalized base URL.
    base: String,
    endpoint: String,
    next_id: u64,
}

impl RpcClient {
    /// A client for the server at `base_url` (`http://host:port`, optionally with a path
    /// prefix); requests go to `{base_url}/rpc/v1`. With `ca_cert`, HTTPS trusts only the
    /// certificates in that PEM file.
    pub(crate) fn new(base_url: &str, ca_cert: Option<&Path>) -> Result<RpcClient, CallError> {
        let base = normalize_url(base_url)?;
        let roots = ca_cert.map(read_ca_certs).transpose()?;
        let agent = |upload: bool| {
            let mut config = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_connect(Some(CONNECT_TIMEOUT))
                .user_agent(format!("hearth-cli/{}", env!("CARGO_PKG_VERSION")));
            config = if upload {
                config
                    .timeout_per_write(Some(UPLOAD_STALL))
                    .timeout_recv_response(Some(INSTALL_TIMEOUT))
                    .timeout_recv_body(Some(CALL_TIMEOUT))
            } else {
                config.timeout_global(Some(CALL_TIMEOUT))
            };
            if is_loopback_url(&base) {
                config = config.proxy(None);
            }
            if let Some(roots) = &roots {
                config = config.tls_config(
                    ureq::tls::TlsConfig::builder()
                        .root_certs(ureq::tls::RootCerts::new_with_certs(roots))
                        .build(),
                );
            }
            ureq::Agent::from(config.build())
        };
        Ok(RpcClient {
            agent: agent(false),
            upload_agent: agent(true),
            endpoint: format!("{base}{}", hearth_layout::RPC_PATH),
            base,
            next_id: 1,
        })
    }

    /// Calls `method` with `params` (a JSON object) and returns its result.
    pub(crate) fn call(
        &mut self,
        method: &str,
        params: &Value,
        credential: &Credential,
    ) -> Result<Reply, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({
            "jsonrpc": hearth_rpc::JSONRPC_VERSION,
            "id": id,
            "method": method,
            "params": params,
        });
        let request = self
            .agent
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .header("accept", "application/json");
        let response = with_credential(request, credential)
            .send(body.to_string())
            .map_err(|source| CallError::Transport {
                method: method.to_owned(),
                endpoint: self.endpoint.clone(),
                source: Box::new(source),
            })?;
        decode_reply(method, &self.endpoint, response)
    }

    /// Streams `body` (`len` bytes) to `POST {url}/rest/package/upload`, which installs
    /// it like `package.install`; the reply is read as that method's.
    ///
    /// Uses its own agent: no overall time limit (a big package on a slow link takes
    /// as long as it takes), but each write must progress within [`UPLOAD_STALL`] and
    /// the answer (verification and unpacking on the server) come within
    /// [`INSTALL_TIMEOUT`].
    pub(crate) fn upload_package(
        &self,
        body: &mut dyn Read,
        len: u64,
        allow_untrusted: bool,
        credential: &Credential,
    ) -> Result<Reply, CallError> {
        let mut endpoint = format!("{}{}", self.base, hearth_layout::PACKAGE_UPLOAD_PATH);
        if allow_untrusted {
            endpoint.push_str("?allowUntrusted=true");
        }
        let request = self
            .upload_agent
            .post(&endpoint)
            .header("content-type", "application/octet-stream")
            .header("content-length", len.to_string())
            .header("accept", "application/json");
        let response = with_credential(request, credential)
            .send(ureq::SendBody::from_reader(body))
            .map_err(|source| CallError::Transport {
                method: UPLOAD_METHOD.to_owned(),
                endpoint: endpoint.clone(),
                source: Box::new(source),
            })?;
        decode_reply(UPLOAD_METHOD, &endpoint, response)
    }
}

/// The method an upload performs (what errors name).
const UPLOAD_METHOD: &str = "package.install";

/// Adds `credential`'s header to `request`.
fn with_credential(
    request: ureq::RequestBuilder<ureq::typestate::WithBody>,
    credential: &Credential,
) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
    match credential {
        Credential::None => request,
        Credential::Session(token) => request.header(
            "cookie",
            format!("{}={token}", hearth_layout::SESSION_COOKIE),
        ),
        Credential::Local(secret) => {
            request.header(hearth_layout::LOCAL_AUTH_HEADER, secret.as_str())
        }
        Credential::Token(token) => request.header("authorization", format!("Bearer {token}")),
    }
}

/// Reads a JSON-RPC response whatever the HTTP status (see the module docs).
fn decode_reply(
    method: &str,
    endpoint: &str,
    mut response: ureq::http::Response<ureq::Body>,
) -> Result<Reply, CallError> {
    let status = response.status().as_u16();
    let session_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session_from_set_cookie);
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY_BYTES)
        .read_to_vec()
        .map_err(|source| CallError::Transport {
            method: method.to_owned(),
            endpoint: endpoint.to_owned(),
            source: Box::new(source),
        })?;
    let not_json_rpc = |detail: String| CallError::NotJsonRpc {
        method: method.to_owned(),
        endpoint: endpoint.to_owned(),
        status,
        detail,
    };
    let parsed: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => {
            let detail = match location {
                Some(to) => format!(": redirected to {to}; use that as --url"),
                None => body_snippet(&bytes),
            };
            return Err(not_json_rpc(detail));
        }
    };
    match decode_response(parsed) {
        Some(Ok(result)) => Ok(Reply {
            result,
            session_cookie,
        }),
        Some(Err(error)) => Err(CallError::Rpc {
            method: method.to_owned(),
            error,
        }),
        None => Err(not_json_rpc(body_snippet(&bytes))),
    }
}

/// The certificates of a PEM file (private keys in it are ignored).
fn read_ca_certs(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, CallError> {
    let pem = std::fs::read(path).map_err(|source| CallError::ReadCaCert {
        path: path.to_owned(),
        source,
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => {
                return Err(CallError::ParseCaCert {
                    path: path.to_owned(),
                    reason: e.to_string(),
                });
            }
        }
    }
    if certs.is_empty() {
        return Err(CallError::ParseCaCert {
            path: path.to_owned(),
            reason: "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into(),
        });
    }
    Ok(certs)
}

/// `result` or `error` of a JSON-RPC response object; `None` if it is neither.
fn decode_response(mut response: Value) -> Option<Result<Value, RpcError>> {
    let obj = response.as_object_mut()?;
    if let Some(error) = obj.remove("error") {
        return Some(Err(serde_json::from_value(error).ok()?));
    }
    obj.remove("result").map(Ok)
}

/// `: <first line of the body>` for error messages, or nothing for an empty body.
fn body_snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = one_line(&text);
    if line.is_empty() {
        return String::new();
    }
    let short: String = line.chars().take(200).collect();
    format!(": {short}")
}

/// The token of a `Set-Cookie: session=<token>; …` header, unless it clears the cookie.
fn session_from_set_cookie(header: &str) -> Option<String> {
    let first = header.split(';').next()?.trim();
    let (name, value) = first.split_once('=')?;
    let value = value.trim().trim_matches('"');
    (name.trim() == hearth_layout::SESSION_COOKIE && !value.is_empty()).then(|| value.to_owned())
}

/// Checks a base URL and drops trailing slashes, so equal servers get equal keys.
pub(crate) fn normalize_url(url: &str) -> Result<String, CallError> {
    let invalid = |reason: &str| CallError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = url.trim().trim_end_matches('/');
    let uri: ureq::http::Uri = trimmed.parse().map_err(|_| invalid("not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid("must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    if uri.query().is_some() {
        return Err(invalid("must not have a query"));
    }
    Ok(trimmed.to_owned())
}

/// Whether the URL's host is this machine (`localhost`, `127.0.0.0/8`, `::1`).
pub(crate) fn is_loopback_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<ureq::http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookie_is_read_from_set_cookie() {
        assert_eq!(
            session_from_set_cookie("session=abc123; Path=/; HttpOnly; SameSite=Strict"),
            Some("abc123".to_owned())
        );
        assert_eq!(session_from_set_cookie("other=x; Path=/"), None);
        // A logout clears the cookie with an empty value: that is not a session.
        assert_eq!(session_from_set_cookie("session=; Max-Age=0; Path=/"), None);
    }

    #[test]
    fn urls_are_normalized_and_checked() {
        assert_eq!(
            normalize_url("http://127.0.0.1:8080/").ok(),
            Some("http://127.0.0.1:8080".to_owned())
        );
        assert_eq!(
            normalize_url("https://box.local/hearth//").ok(),
            Some("https://box.local/hearth".to_owned())
        );
        for bad in ["127.0.0.1:8080", "ftp://x", "http://", "http://h/?a=1", ""] {
            assert!(normalize_url(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn ca_cert_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            RpcClient::new("https://h", Some(&missing)),
            Err(CallError::ReadCaCert { .. })
        ));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = RpcClient::new("https://h", Some(&empty)).err().unwrap();
        assert!(matches!(err, CallError::ParseCaCert { .. }), "{err}");
        assert!(err.to_string().contains("empty.pem"), "{err}");
    }

    #[test]
    fn loopback_detection() {
        for url in [
            "http://127.0.0.1:8080",
            "http://127.3.2.1",
            "http://localhost:80",
            "http://[::1]:8080",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in ["http://192.168.1.2", "https://box.local", "http://[::2]"] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }

    #[test]
    fn responses_decode_to_result_or_error() {
        assert_eq!(
            decode_response(json!({"jsonrpc": "2.0", "id": 1, "result": null})),
            Some(Ok(Value::Null))
        );
        let err = decode_response(json!({
            "jsonrpc": "2.0", "id": 1,
            "error": {"code": 7, "message": "wrong password", "data": {"kind": "incorrectPassword"}}
        }));
        assert!(matches!(err, Some(Err(e)) if e.code == 7 && e.message == "wrong password"));
        assert_eq!(decode_response(json!({"hello": 1})), None);
        assert_eq!(decode_response(json!([1, 2])), None);
    }

    #[test]
    fn rpc_errors_print_on_one_line_with_code() {
        let e = CallError::Rpc {
            method: "server.echo".into(),
            error: RpcError::invalid_params("message", "missing\nfield"),
        };
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.starts_with("server.echo: "), "{text}");
        assert!(text.contains("(code -32602)"), "{text}");
    }
}
