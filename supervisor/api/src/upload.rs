//! `POST /rest/package/upload`: install a package sent as the raw request body.
//!
//! The body is streamed to `DATA/packages/upload/<random>.s9pk` chunk by chunk (never
//! held in memory), refused with 413 past [`crate::ApiConfig::upload_limit`] (declared
//! `Content-Length` first, then the bytes actually received), with an idle deadline per
//! chunk (`body_timeout`), then installed exactly like `package.install` (verification
//! first) and deleted. A full data disk is 507 with `data.reason = "noSpace"`: before
//! anything is written when the declared length exceeds the free space (so an upload
//! does not fill the disk under the running services), else when a write fails (the
//! partial file is removed). The answer is a JSON-RPC response object: `result` is the
//! `package.install` result, or `error` with the same codes and `data.reason`.
//!
//! A refusal sent before the whole body arrived (401, 413, 507, a failed write) does
//! not cut the client off mid-send: the rest of the body is read and discarded for up
//! to [`LINGER`] in a background task ("lingering close", as nginx does), so a client
//! that writes everything before reading (curl without `Expect`, a browser) gets the
//! answer instead of a reset. Past that time the connection is dropped.
//!
//! Rejected: multipart forms (a parser for one file) and a two-step sideload with
//! progress GUIDs as StartOS does it (progress is already visible in the state).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_layout::PACKAGE_UPLOAD_DIR;
use hearth_rpc::{ErrorCode, Response, RpcError};
use http::StatusCode;
use http::header::CONTENT_LENGTH;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::http::{Body, RequestContext, auth_status, require_auth, respond, rpc_error};
use crate::server::Shared;

/// Deletes the upload file when dropped (success, refusal, or a dropped connection).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// How long the rest of a refused upload is still read and discarded.
pub(crate) const LINGER: Duration = Duration::from_secs(15);

/// Answers `response` to a request whose body may not have been read to the end: the
/// remaining body is drained (and discarded) for up to [`LINGER`] in the background, so
/// the peer can finish sending and then read the answer.
pub(crate) fn linger(mut body: Incoming, response: http::Response<Body>) -> http::Response<Body> {
    if hyper::body::Body::is_end_stream(&body) {
        return response;
    }
    tokio::spawn(async move {
        let drained = tokio::time::timeout(LINGER, async {
            let mut bytes = 0u64;
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    bytes += data.len() as u64;
                }
            }
            bytes
        })
        .await;
        tracing::debug!(drained = ?drained.ok(), "refused upload: rest of the body discarded");
    });
    response
}

fn too_large(limit: u64) -> http::Response<Body> {
    rpc_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        RpcError::new(
            ErrorCode::InvalidRequest,
            format!("package exceeds the upload limit of {limit} bytes"),
        )
        .with("limit", limit),
    )
}

fn failed(op: &str, path: &Path, e: &std::io::Error) -> http::Response<Body> {
    tracing::error!(op, path = %path.display(), error = %e, "package upload failed");
    if e.kind() == std::io::ErrorKind::StorageFull {
        let message = format!("{op} {}: {e}", path.display());
        return rpc_error(StatusCode::INSUFFICIENT_STORAGE, no_space(message));
    }
    rpc_error(StatusCode::INTERNAL_SERVER_ERROR, RpcError::internal())
}

/// The error for a full data disk: `-32603` with `data.reason = "noSpace"` and a
/// message naming the file (a full disk is the one internal failure the user can fix).
pub(crate) fn no_space(message: String) -> RpcError {
    RpcError::new(
        ErrorCode::Internal,
        format!("no space left on the data disk: {message}"),
    )
    .with("reason", "noSpace")
}

/// Bytes available to hearthd on the filesystem of `dir` (`None` if it cannot be asked;
/// the write then tells).
fn free_bytes(dir: &Path) -> Option<u64> {
    match rustix::fs::statvfs(dir) {
        Ok(st) => Some(st.f_bavail.saturating_mul(st.f_frsize)),
        Err(error) => {
            tracing::debug!(path = %dir.display(), %error, "statvfs failed");
            None
        }
    }
}

/// Whether `e` or one of its causes is "no space left on device".
pub(crate) fn is_no_space(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

pub(crate) async fn upload(
    shared: &Shared,
    ctx: &RequestContext,
    req: http::Request<Incoming>,
) -> http::Response<Body> {
    let (head, body) = req.into_parts();
    let principal = match shared.auth.authenticate(&head.headers).await {
        Ok(p) => p,
        Err(e) => return linger(body, rpc_error(auth_status(&e), e)),
    };
    if let Err(e) = require_auth(&principal) {
        return linger(body, rpc_error(auth_status(&e), e));
    }
    if !principal.is_admin() {
        let e = crate::auth::Principal::scope_refusal("a package upload");
        return linger(body, rpc_error(StatusCode::FORBIDDEN, e));
    }
    let allow_untrusted = head
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "allowUntrusted=true"));
    let limit = shared.config.upload_limit;
    let declared = head
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return linger(body, too_large(limit));
    }
    let dir = shared.config.data_dir.join(PACKAGE_UPLOAD_DIR);
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        return linger(body, failed("create directory", &dir, &e));
    }
    if let Some(n) = declared
        && let Some(free) = free_bytes(&dir)
        && n > free
    {
        let message = format!(
            "upload of {n} bytes to {}: only {free} bytes free",
            dir.display()
        );
        tracing::warn!(peer = %ctx.peer, bytes = n, free, "package upload refused: no space");
        let e = no_space(message).with("needed", n).with("free", free);
        return linger(body, rpc_error(StatusCode::INSUFFICIENT_STORAGE, e));
    }
    let name = match crate::auth::secret::random_id() {
        Ok(id) => format!("{id}.s9pk"),
        Err(e) => {
            tracing::error!(error = %e, "package upload: no random name");
            let e = RpcError::internal();
            return linger(body, rpc_error(StatusCode::INTERNAL_SERVER_ERROR, e));
        }
    };
    let path = TempFile(dir.join(name));
    let mut file = match tokio::fs::File::create(&path.0).await {
        Ok(f) => f,
        Err(e) => return linger(body, failed("create", &path.0, &e)),
    };
    let mut body = body;
    let mut received = 0u64;
    loop {
        let frame = match tokio::time::timeout(shared.config.body_timeout, body.frame()).await {
            Err(_) => {
                let e = RpcError::new(ErrorCode::Timeout, "upload stalled; no data in time");
                return rpc_error(StatusCode::REQUEST_TIMEOUT, e);
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::debug!(peer = %ctx.peer, error = %e, "upload body failed");
                let e = RpcError::new(ErrorCode::InvalidRequest, "could not read the upload");
                return rpc_error(StatusCode::BAD_REQUEST, e);
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.len() as u64;
        if received > limit {
            return linger(body, too_large(limit));
        }
        if let Err(e) = file.write_all(&data).await {
            return linger(body, failed("write", &path.0, &e));
        }
    }
    if let Err(e) = file.sync_all().await {
        return failed("sync", &path.0, &e);
    }
    drop(file);
    tracing::info!(peer = %ctx.peer, bytes = received, "package uploaded; installing");
    let packages = hearth_services::Packages::new(
        shared.store.clone(),
        shared.config.data_dir.clone(),
        hearth_services::Host::this_machine(),
    );
    let install_path = path.0.clone();
    let result = tokio::task::spawn_blocking(move || {
        let r = packages.install(&install_path, allow_untrusted);
        drop(path);
        r
    })
    .await;
    let response = match result {
        Ok(Ok((installed, rev))) => match serde_json::to_value(installed) {
            Ok(v) => Response::result(Value::Null, v, Some(rev)),
            Err(_) => Response::error(Value::Null, RpcError::internal()),
        },
        Ok(Err(e)) => Response::error(Value::Null, crate::handlers::package::install_error(e)),
        Err(e) => {
            tracing::error!(error = %e, "install task failed");
            Response::error(Value::Null, RpcError::internal())
        }
    };
    respond(
        StatusCode::OK,
        "application/json",
        serde_json::to_vec(&response).unwrap_or_default(),
    )
}
