//! The HTTP side: routing, JSON-RPC over `POST /rpc/v1`, and the `/mcp` slot.
//!
//! Request path of a JSON-RPC call: authenticate the headers ([`Authenticator`]) →
//! refuse oversized bodies (413) → read the body under a deadline (408) → check the
//! nesting depth → parse → dispatch each request of the batch in order → one response
//! with `X-Patch-Sequence` (highest revision produced) and any `Set-Cookie`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hearth_layout::{MCP_PATH, PATCH_SEQUENCE_HEADER, RPC_PATH, SESSION_COOKIE, WS_DB_PATH};
use hearth_rpc::{ErrorCode, JSONRPC_VERSION, Request, Response, RpcError};
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, SET_COOKIE, USER_AGENT};
use http::{HeaderValue, Method, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::auth::{DEVICE_COOKIE, Principal};
use crate::dispatch::{Caller, SessionCookie};
use crate::server::Shared;

/// Response body type of every route (boxed so that endpoints such as MCP can stream).
pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Facts about the connection a request came in on.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// Client address.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// Cancelled when the server shuts down; long-lived responses must end then.
    pub shutdown: CancellationToken,
}

/// A sub-application mounted on a path (the MCP server at `/mcp`).
pub trait Endpoint: Send + Sync + 'static {
    /// Answers one request.
    fn handle(
        &self,
        req: http::Request<Incoming>,
        ctx: RequestContext,
    ) -> Pin<Box<dyn Future<Output = http::Response<Body>> + Send>>;
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> http::Response<Body> {
    let mut r = http::Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A JSON-RPC error response (id `null`) with an HTTP status.
pub(crate) fn rpc_error(status: StatusCode, error: RpcError) -> http::Response<Body> {
    let body = serde_json::to_vec(&Response::error(Value::Null, error)).unwrap_or_default();
    respond(status, "application/json", body)
}

/// HTTP status for a refused authentication.
pub(crate) fn auth_status(e: &RpcError) -> StatusCode {
    if e.data_field("reason") == Some(&Value::from("foreignOrigin")) {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::UNAUTHORIZED
    }
}

/// Routes one request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    ctx: RequestContext,
    req: http::Request<Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    let path = req.uri().path();
    let response = if path == RPC_PATH {
        if req.method() == Method::POST {
            rpc(&shared, &ctx, req).await
        } else {
            let mut r = respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use POST\n");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            r
        }
    } else if path == WS_DB_PATH && req.method() == Method::GET {
        crate::ws::upgrade(&shared, &ctx, req).await
    } else if path.starts_with(crate::logs_stream::WS_LOGS_PREFIX) && req.method() == Method::GET {
        crate::logs_stream::upgrade(&shared, &ctx, req).await
    } else if path == MCP_PATH || path.starts_with("/mcp/") {
        match &shared.mcp {
            Some(endpoint) => endpoint.handle(req, ctx).await,
            None => respond(StatusCode::NOT_FOUND, "text/plain", "MCP is not enabled\n"),
        }
    } else if path == hearth_layout::PACKAGE_UPLOAD_PATH && req.method() == Method::POST {
        crate::upload::upload(&shared, &ctx, req).await
    } else if let Some(dir) = shared.config.web_dir.as_deref()
        && (req.method() == Method::GET || req.method() == Method::HEAD)
        && !is_api_path(path)
    {
        crate::static_files::serve(dir, path, req.headers(), req.method() == Method::HEAD).await
    } else if path == "/" && req.method() == Method::GET {
        respond(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "hearthd is running. JSON-RPC: POST /rpc/v1 (try rpc.discover); \
             live state: GET /ws/db.\n",
        )
    } else {
        respond(StatusCode::NOT_FOUND, "text/plain", "not found\n")
    };
    Ok(response)
}

/// Paths the API owns (never answered with the UI's `index.html`).
fn is_api_path(path: &str) -> bool {
    ["/rpc/", "/ws/", "/rest/", "/mcp/"]
        .iter()
        .any(|p| path.starts_with(p) || path == &p[..p.len() - 1])
}

async fn rpc(
    shared: &Shared,
    ctx: &RequestContext,
    req: http::Request<Incoming>,
) -> http::Response<Body> {
    let principal = match shared.auth.authenticate(req.headers()).await {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(peer = %ctx.peer, error = %e, "request refused");
            return rpc_error(auth_status(&e), e);
        }
    };
    let device = crate::auth::cookie(req.headers(), DEVICE_COOKIE).map(str::to_owned);
    // Unauthenticated requests share a bounded number of places; a known device (the
    // owner's browser logging in again) does not wait for one.
    let _anonymous =
        if principal.is_authenticated() || shared.auth.known_device(device.as_deref()).is_some() {
            None
        } else {
            match Arc::clone(&shared.anonymous).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let e = RpcError::new(
                        ErrorCode::RateLimited,
                        "too many unauthenticated requests at once; retry after 1 s",
                    )
                    .with("retryAfter", 1);
                    let mut r = rpc_error(StatusCode::SERVICE_UNAVAILABLE, e);
                    r.headers_mut()
                        .insert(http::header::RETRY_AFTER, HeaderValue::from(1));
                    return r;
                }
            }
        };
    let caller = Caller {
        principal,
        peer: Some(ctx.peer.ip()),
        user_agent: req
            .headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        device,
    };
    let limit = shared.config.body_limit;
    let too_large = || {
        rpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            RpcError::new(
                ErrorCode::InvalidRequest,
                format!("request body exceeds the limit of {limit} bytes"),
            )
            .with("limit", limit),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let read = Limited::new(req.into_body(), limit).collect();
    let body = match tokio::time::timeout(shared.config.body_timeout, read).await {
        Err(_) => {
            let e = RpcError::new(ErrorCode::Timeout, "request body not received in time");
            let mut r = rpc_error(StatusCode::REQUEST_TIMEOUT, e);
            r.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Ok(Err(e)) => {
            tracing::debug!(peer = %ctx.peer, error = %e, "reading request body failed");
            return rpc_error(
                StatusCode::BAD_REQUEST,
                RpcError::new(ErrorCode::InvalidRequest, "could not read the request body"),
            );
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let (json, revision, cookies) = process(shared, &caller, &body).await;
    let mut response = respond(StatusCode::OK, "application/json", json);
    let headers = response.headers_mut();
    if let Some(rev) = revision {
        headers.insert(PATCH_SEQUENCE_HEADER, HeaderValue::from(rev));
    }
    for c in cookies {
        for text in cookie_headers(&c, ctx.tls) {
            if let Ok(v) = HeaderValue::try_from(text) {
                headers.append(SET_COOKIE, v);
            }
        }
    }
    response
}

/// `Set-Cookie` values for a cookie instruction. The device cookie is only sent to
/// `/rpc/v1` (where `auth.login` is) and outlives sessions (one year).
fn cookie_headers(c: &SessionCookie, tls: bool) -> Vec<String> {
    let secure = if tls { "; Secure" } else { "" };
    match c {
        SessionCookie::Set {
            token,
            max_age,
            device,
        } => {
            let mut out = vec![format!(
                "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                max_age.as_secs()
            )];
            if let Some(d) = device {
                out.push(format!(
                    "{DEVICE_COOKIE}={d}; Path={RPC_PATH}; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                    crate::auth::device::DEVICE_MAX_AGE_MS / 1000
                ));
            }
            out
        }
        SessionCookie::Clear => vec![format!(
            "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
        )],
    }
}

/// Deepest nesting of arrays/objects in `json`, stopping early past `limit`.
pub(crate) fn nesting_exceeds(json: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Parses and runs a request or batch; returns the response body, the highest revision
/// produced and the cookie instructions.
async fn process(
    shared: &Shared,
    caller: &Caller,
    body: &[u8],
) -> (Vec<u8>, Option<u64>, Vec<SessionCookie>) {
    let single_error = |e: RpcError| {
        let bytes = serde_json::to_vec(&Response::error(Value::Null, e)).unwrap_or_default();
        (bytes, None, Vec::new())
    };
    if nesting_exceeds(body, shared.config.max_depth) {
        return single_error(RpcError::new(
            ErrorCode::ParseError,
            format!("JSON nests deeper than {} levels", shared.config.max_depth),
        ));
    }
    // Fast path for the common case, a single well-formed request object: parse it
    // straight into `Request` instead of through a `Value`. Anything unusual takes the
    // general path below, which produces the precise error.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && let Ok(req) = serde_json::from_slice::<Request>(body)
        && let Some(id) = valid_id(req.id.as_ref())
    {
        let (r, c) = run(shared, caller, id, req).await;
        let out = serde_json::to_vec(&r).unwrap_or_default();
        return (out, r.revision, c.into_iter().collect());
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return single_error(RpcError::new(
                ErrorCode::ParseError,
                format!("the body is not valid JSON: {e}"),
            ));
        }
    };
    let mut revision = None;
    let mut cookies = Vec::new();
    let out = match value {
        Value::Array(items) => {
            if items.is_empty() {
                return single_error(RpcError::new(ErrorCode::InvalidRequest, "empty batch"));
            }
            if items.len() > shared.config.max_batch {
                return single_error(RpcError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "batch of {} requests exceeds the limit of {}",
                        items.len(),
                        shared.config.max_batch
                    ),
                ));
            }
            let limit = shared.config.max_batch_response;
            let mut out = Vec::with_capacity(2 + 64 * items.len());
            out.push(b'[');
            let mut discovered = false;
            for (i, item) in items.into_iter().enumerate() {
                let is_discover = item.get("method").and_then(Value::as_str)
                    == Some(<hearth_rpc::methods::RpcDiscover as hearth_rpc::Method>::NAME);
                let (r, c) = if out.len() > limit {
                    // Not run: the response is already as large as allowed.
                    let e = RpcError::new(
                        ErrorCode::InvalidRequest,
                        format!(
                            "the batch's responses exceed {limit} bytes; send the rest \
                             in another request"
                        ),
                    )
                    .with("limit", limit);
                    (Response::error(batch_id(&item), e), None)
                } else if is_discover && discovered {
                    let e = RpcError::new(
                        ErrorCode::InvalidRequest,
                        "a batch may contain rpc.discover only once",
                    );
                    (Response::error(batch_id(&item), e), None)
                } else {
                    discovered |= is_discover;
                    one(shared, caller, item).await
                };
                revision = revision.max(r.revision);
                cookies.extend(c);
                if i > 0 {
                    out.push(b',');
                }
                if serde_json::to_writer(&mut out, &r).is_err() {
                    return single_error(RpcError::internal());
                }
            }
            out.push(b']');
            Ok(out)
        }
        item => {
            let (r, c) = one(shared, caller, item).await;
            revision = r.revision;
            cookies.extend(c);
            serde_json::to_vec(&r)
        }
    };
    (out.unwrap_or_default(), revision, cookies)
}

/// The id to answer a batch item with without running it.
fn batch_id(item: &Value) -> Value {
    valid_id(item.get("id")).unwrap_or(Value::Null)
}

/// The response id for a request id: strings, numbers and null (or absent) are valid.
fn valid_id(id: Option<&Value>) -> Option<Value> {
    match id {
        None | Some(Value::Null) => Some(Value::Null),
        Some(id @ (Value::String(_) | Value::Number(_))) => Some(id.clone()),
        Some(_) => None,
    }
}

async fn one(shared: &Shared, caller: &Caller, item: Value) -> (Response, Option<SessionCookie>) {
    let id = match valid_id(item.get("id")) {
        Some(id) => id,
        None => {
            let e = RpcError::new(
                ErrorCode::InvalidRequest,
                "id must be a string, a number or null",
            );
            return (Response::error(Value::Null, e), None);
        }
    };
    let req: Request = match serde_json::from_value(item) {
        Ok(r) => r,
        Err(e) => {
            let e = RpcError::new(
                ErrorCode::InvalidRequest,
                format!("not a JSON-RPC request object: {e}"),
            );
            return (Response::error(id, e), None);
        }
    };
    run(shared, caller, id, req).await
}

/// Runs one well-formed request object.
async fn run(
    shared: &Shared,
    caller: &Caller,
    id: Value,
    req: Request,
) -> (Response, Option<SessionCookie>) {
    if req.jsonrpc.as_deref().is_some_and(|v| v != JSONRPC_VERSION) {
        let e = RpcError::new(ErrorCode::InvalidRequest, "jsonrpc must be \"2.0\"");
        return (Response::error(id, e), None);
    }
    let started = Instant::now();
    let result = shared
        .dispatcher
        .call(caller, &req.method, req.params.unwrap_or(Value::Null))
        .await;
    let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    match result {
        Ok(out) => {
            tracing::debug!(method = %req.method, caller = %caller.principal.label(), elapsed_us, revision = ?out.revision, "call ok");
            (Response::result(id, out.value, out.revision), out.session)
        }
        Err(e) => {
            tracing::debug!(method = %req.method, caller = %caller.principal.label(), elapsed_us, code = e.code, error = %e.message, "call failed");
            (Response::error(id, e), None)
        }
    }
}

/// Whether the principal may open long-lived streams.
pub(crate) fn require_auth(p: &Principal) -> Result<(), RpcError> {
    if p.is_authenticated() {
        Ok(())
    } else {
        Err(p.refusal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_depth_ignores_brackets_in_strings() {
        assert!(!nesting_exceeds(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(nesting_exceeds(br#"{"a":[1,{"b":2}]}"#, 2));
        assert!(!nesting_exceeds(br#"{"a":"[[[[[[\"[[[["}"#, 1));
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(nesting_exceeds(deep.as_bytes(), 64));
    }

    #[test]
    fn session_cookie_attributes() {
        let set = cookie_headers(
            &SessionCookie::Set {
                token: "t".into(),
                max_age: std::time::Duration::from_secs(60),
                device: Some("d".into()),
            },
            false,
        );
        assert_eq!(
            set,
            [
                "session=t; Path=/; HttpOnly; SameSite=Strict; Max-Age=60",
                "device=d; Path=/rpc/v1; HttpOnly; SameSite=Strict; Max-Age=31536000"
            ]
        );
        let clear = cookie_headers(&SessionCookie::Clear, true);
        assert!(clear[0].contains("Max-Age=0") && clear[0].ends_with("; Secure"));
    }
}
