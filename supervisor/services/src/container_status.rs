//! The status monitor: what a running container's init (`hearth-container`) reports
//! over `service.sock`, written into `/public/packageData/<id>/statusInfo`.
//!
//! # Design
//! [`monitor`] connects through a [`Connector`] (the real one: [`SocketConnector`],
//! a fake in the tests) and follows the `status.changed` notifications, the first of
//! which the container pushes on connect with the current status. Each report is
//! mapped by [`report`] (pure) to these keys of `statusInfo`, which it owns alone (the
//! reconciler keeps them as they are; what turned bad is notified, `notify.rs`):
//!
//! ```text
//! daemons.<daemonId> = { state, ready, pid, startedAt, restarts, lastExit, lastError,
//!                        crashLoop, retryInMs, health: { <checkId>: HealthInfo } }
//! health.<checkId>   = { daemon, name, result: starting|success|failure|waiting|disabled,
//!                        message? }                       (StartOS's shape)
//! crashLoop          = whether any daemon gave up restarting
//! allReady           = whether every daemon runs and passed its readiness probe
//! reportedAt         = when the last report arrived (ms since the epoch)
//! ```
//!
//! Nothing else in the entry is written, and nothing is written for a package whose
//! entry is gone. When the container closes the connection (it stopped or was
//! restarted), the monitor connects again, waiting (bounded) for the new socket;
//! when that fails it ends and the supervisor starts a new one on its next step. The
//! supervisor stops the monitor, and [`clear`]s these keys, once the package is no
//! longer running, and [`clear_all`] when hearthd starts; the reconciler drops them
//! whenever it records a state other than `running` (`status::forget_reports`).
//! Stored reports therefore always belong to the current run of the container.
//!
//! # Bounds
//! The container is not trusted to be brief or slow. A report line longer than
//! [`MAX_REPORT_BYTES`] ends the connection; a report is refused whole with more than
//! [`MAX_DAEMONS`] daemons, [`MAX_CHECKS`] checks per daemon or an id longer than
//! [`MAX_ID`], and its free texts (state, name, messages) are cut to [`MAX_TEXT`]
//! characters. Reports are written to the store at most once per [`WRITE_EVERY`] per
//! package: one arriving sooner is held, replaced by any newer one, and written when
//! the interval has passed (or the connection ends), so the stored state is always the
//! latest report, at most [`WRITE_EVERY`] late (a crash-looping package once wrote
//! ~560 revisions in 30 s).
//!
//! # Invariants
//! Only pushed notifications are reports: they leave the container in the order its
//! status changed. The answer to a `status` request does not (the container's reader
//! thread sends it, and a change pushed by the runtime loop meanwhile overtakes it);
//! taking it as a report once overwrote a passed health check with the `starting` it
//! had been answered from, and nothing changed afterwards to correct it
//! (`ci/systest/packages.sh`, 1 run in 7).
//!
//! # Rejected alternatives
//! Polling `status` on the reconcile tick: health changes would show up to 5 s late
//! and every tick would cost a connection per package.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::container_client::{self, ClientError, Incoming, ServiceConn};
use crate::doc::{self, PACKAGE_DATA};
use crate::error::PackageError;

/// The keys of `statusInfo` this module writes, and `resources` (`usage.rs`), which
/// belongs to the current run in the same way.
pub(crate) const REPORTED_KEYS: [&str; 6] = [
    "daemons",
    "health",
    "crashLoop",
    "allReady",
    "reportedAt",
    crate::usage::KEY,
];
/// Longest status line accepted from a container (a report of [`MAX_DAEMONS`] daemons
/// with short texts is a few KiB).
pub(crate) const MAX_REPORT_BYTES: u64 = 64 * 1024;
/// Most daemons one report may list.
pub(crate) const MAX_DAEMONS: usize = 64;
/// Most health checks one daemon may list.
pub(crate) const MAX_CHECKS: usize = 32;
/// Longest daemon or check id (characters).
pub(crate) const MAX_ID: usize = 128;
/// Longest free text kept (state, check name, exit and error messages; characters).
pub(crate) const MAX_TEXT: usize = 1024;
/// Least time between two store writes of one package's reports.
pub(crate) const WRITE_EVERY: Duration = Duration::from_millis(500);
/// How long a (re)connection waits for the container's socket.
pub(crate) const CONNECT_WAIT: Duration = Duration::from_secs(30);

/// A source of status reports from one container.
pub(crate) trait StatusFeed: Send {
    /// The next report; `Ok(None)` when the container closed the connection. Must be
    /// cancel-safe (the monitor races it against its write timer).
    fn next_status(&mut self) -> impl Future<Output = Result<Option<Value>, ClientError>> + Send;
}

/// Opens [`StatusFeed`]s; the seam between the monitor and the socket.
pub(crate) trait Connector: Send + Sync + 'static {
    /// The feed type.
    type Feed: StatusFeed;
    /// Connects to the container whose RPC dir is `rpc_dir`.
    fn connect(
        &self,
        rpc_dir: &Path,
    ) -> impl Future<Output = Result<Self::Feed, ClientError>> + Send;
}

/// The real connector: `<rpc dir>/service.sock`, waiting up to `wait` for it.
#[derive(Debug, Clone)]
pub(crate) struct SocketConnector {
    pub(crate) wait: Duration,
}

/// A connection that has asked for `status` and follows notifications.
#[derive(Debug)]
pub(crate) struct SocketFeed {
    conn: ServiceConn,
}

impl Connector for SocketConnector {
    type Feed = SocketFeed;

    async fn connect(&self, rpc_dir: &Path) -> Result<SocketFeed, ClientError> {
        let path = container_client::socket_path(rpc_dir);
        // No `status` request: the container pushes the current status as the first
        // message of every connection, in order with the changes after it. The answer
        // to a request is not: it leaves the container through another thread, and a
        // change pushed meanwhile would arrive before it and be overwritten by it (a
        // health check stuck at `starting` once it had passed; see the module docs).
        let mut conn = container_client::connect_retry(&path, self.wait).await?;
        conn.limit_line(MAX_REPORT_BYTES);
        Ok(SocketFeed { conn })
    }
}

impl StatusFeed for SocketFeed {
    async fn next_status(&mut self) -> Result<Option<Value>, ClientError> {
        loop {
            match self.conn.next_message().await? {
                None => return Ok(None),
                Some(Incoming::Status(s)) => return Ok(Some(s)),
                // Nothing is asked on this connection; an answer is never a report
                // (it may be older than the last push).
                Some(Incoming::Response { id, .. }) => {
                    tracing::debug!(id, "unexpected response on the status connection; ignored");
                }
            }
        }
    }
}

/// One health check as shown in `statusInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HealthInfo {
    /// The daemon the check belongs to.
    #[serde(default)]
    pub(crate) daemon: String,
    /// Name shown to the user.
    #[serde(default)]
    pub(crate) name: String,
    /// `starting`, `success`, `failure`, `waiting` or `disabled`.
    pub(crate) result: String,
    /// Why it failed (`failure` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
}

/// One daemon as shown in `statusInfo.daemons`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DaemonInfo {
    state: String,
    ready: bool,
    pid: Option<i64>,
    started_at: Option<u64>,
    restarts: u64,
    last_exit: Option<String>,
    last_error: Option<String>,
    crash_loop: bool,
    retry_in_ms: Option<u64>,
    health: Map<String, Value>,
}

/// The container's report, as `hearth-container` serializes it (lenient: unknown
/// fields are ignored, missing ones take defaults).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireStatus {
    #[serde(default)]
    all_ready: bool,
    #[serde(default)]
    daemons: Vec<WireDaemon>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDaemon {
    id: String,
    state: String,
    #[serde(default)]
    pid: Option<i64>,
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    started_at: Option<u64>,
    #[serde(default)]
    restarts: u64,
    #[serde(default)]
    last_exit: Option<String>,
    #[serde(default)]
    last_error: Option<String>,
    #[serde(default)]
    retry_in_ms: Option<u64>,
    #[serde(default)]
    health: Vec<WireHealth>,
}

#[derive(Debug, Deserialize)]
struct WireHealth {
    id: String,
    #[serde(flatten)]
    info: HealthInfo,
}

/// The `statusInfo` keys for one report (see the module docs), or why the report
/// could not be read.
pub(crate) fn report(status: &Value, now_ms: u64) -> Result<Map<String, Value>, String> {
    let wire: WireStatus =
        serde_json::from_value(status.clone()).map_err(|e| format!("bad status report: {e}"))?;
    if wire.daemons.len() > MAX_DAEMONS {
        return Err(format!(
            "bad status report: {} daemons (at most {MAX_DAEMONS})",
            wire.daemons.len()
        ));
    }
    for d in &wire.daemons {
        if d.health.len() > MAX_CHECKS {
            return Err(format!(
                "bad status report: {} health checks for one daemon (at most {MAX_CHECKS})",
                d.health.len()
            ));
        }
        let long = std::iter::once(&d.id)
            .chain(d.health.iter().map(|h| &h.id))
            .find(|id| id.chars().count() > MAX_ID);
        if let Some(id) = long {
            return Err(format!(
                "bad status report: an id of {} characters (at most {MAX_ID})",
                id.chars().count()
            ));
        }
    }
    let mut daemons = Map::new();
    let mut health = Map::new();
    let mut crash_loop = false;
    for mut d in wire.daemons {
        let mut checks = Map::new();
        for h in d.health {
            let mut info = h.info;
            info.daemon.clone_from(&d.id);
            if info.result != "failure" {
                info.message = None;
            }
            clip(&mut info.name);
            clip(&mut info.result);
            if let Some(m) = &mut info.message {
                clip(m);
            }
            let value = serde_json::to_value(&info).map_err(|e| e.to_string())?;
            checks.insert(h.id.clone(), value.clone());
            health.insert(h.id, value);
        }
        let looping = d.state == "crashLoop";
        crash_loop |= looping;
        clip(&mut d.state);
        for text in [&mut d.last_exit, &mut d.last_error].into_iter().flatten() {
            clip(text);
        }
        let info = DaemonInfo {
            state: d.state,
            ready: d.ready,
            pid: d.pid,
            started_at: d.started_at,
            restarts: d.restarts,
            last_exit: d.last_exit,
            last_error: d.last_error,
            crash_loop: looping,
            retry_in_ms: d.retry_in_ms,
            health: checks,
        };
        daemons.insert(d.id, serde_json::to_value(info).map_err(|e| e.to_string())?);
    }
    let mut out = Map::new();
    out.insert("daemons".into(), Value::Object(daemons));
    out.insert("health".into(), Value::Object(health));
    out.insert("crashLoop".into(), Value::Bool(crash_loop));
    out.insert("allReady".into(), Value::Bool(wire.all_ready));
    out.insert("reportedAt".into(), Value::from(now_ms));
    Ok(out)
}

/// Cuts `text` to [`MAX_TEXT`] characters (marking the cut with `…`).
fn clip(text: &mut String) {
    if let Some((at, _)) = text.char_indices().nth(MAX_TEXT) {
        text.truncate(at);
        text.push('…');
    }
}

fn status_pointer(id: &str) -> String {
    format!("{PACKAGE_DATA}/{id}/statusInfo")
}

/// Writes `keys` into the `statusInfo` of `id` (replacing only those keys); nothing
/// happens if the package is gone or nothing but `reportedAt` would change.
pub(crate) fn write(store: &Store, id: &str, keys: Map<String, Value>) -> Result<(), PackageError> {
    let pointer = status_pointer(id);
    if let Ok(Value::Object(current)) = store.get(&pointer) {
        let same = keys
            .iter()
            .all(|(k, v)| k == "reportedAt" || current.get(k) == Some(v));
        if same {
            return Ok(());
        }
    }
    store
        .mutate(|d| {
            if d.pointer(&pointer).is_none() {
                return Ok(());
            }
            crate::notify::on_report(d, id, &keys)?;
            let info = doc::object_mut(d, &pointer)?;
            for (k, v) in keys {
                info.insert(k, v);
            }
            Ok(())
        })
        .map(|_| ())
        .map_err(|e| doc::mutate_error("record container status", e))
}

/// Removes the reported keys from the `statusInfo` of `id` (the package stopped).
pub(crate) fn clear(store: &Store, id: &str) -> Result<(), PackageError> {
    let pointer = status_pointer(id);
    let present = |v: &Value| REPORTED_KEYS.iter().any(|k| v.get(k).is_some());
    if !store.get(&pointer).is_ok_and(|v| present(&v)) {
        return Ok(());
    }
    store
        .mutate(|d| {
            if let Some(Value::Object(info)) = d.pointer_mut(&pointer) {
                for k in REPORTED_KEYS {
                    info.remove(k);
                }
            }
            Ok::<_, PackageError>(())
        })
        .map(|_| ())
        .map_err(|e| doc::mutate_error("clear container status", e))
}

/// Removes the reported keys of every package (hearthd starts: whatever is stored was
/// reported before, perhaps by a container that is gone; running ones report again as
/// soon as their monitor connects).
pub(crate) fn clear_all(store: &Store) -> Result<(), PackageError> {
    let stale = |v: &Value| {
        v.as_object().is_some_and(|m| {
            m.values().any(|e| {
                e.get("statusInfo")
                    .is_some_and(|i| REPORTED_KEYS.iter().any(|k| i.get(k).is_some()))
            })
        })
    };
    if !store.get(PACKAGE_DATA).is_ok_and(|v| stale(&v)) {
        return Ok(());
    }
    store
        .mutate(|d| {
            if let Some(Value::Object(map)) = d.pointer_mut(PACKAGE_DATA) {
                for entry in map.values_mut() {
                    if let Some(Value::Object(info)) = entry.get_mut("statusInfo") {
                        for k in REPORTED_KEYS {
                            info.remove(k);
                        }
                    }
                }
            }
            Ok::<_, PackageError>(())
        })
        .map(|_| ())
        .map_err(|e| doc::mutate_error("clear stale container status", e))
}

/// Maps one report and writes it; a failure is logged, not fatal.
fn record(store: &Store, id: &str, status: &Value) {
    let written = report(status, doc::now_ms())
        .map_err(|reason| PackageError::Document {
            pointer: "service.sock status".into(),
            reason,
        })
        .and_then(|keys| write(store, id, keys));
    if let Err(error) = written {
        tracing::warn!(package = %id, %error, "cannot record the container's status");
    }
}

/// Follows the container of `id` (RPC dir `rpc_dir`) until `cancel` or until a
/// connection cannot be made; see the module docs.
pub(crate) async fn monitor<C: Connector>(
    connector: &C,
    store: &Store,
    id: &str,
    rpc_dir: PathBuf,
    cancel: &CancellationToken,
) {
    // Across reconnections too: a crash-looping container reconnects often.
    let mut next_write = tokio::time::Instant::now();
    loop {
        let connected = tokio::select! {
            () = cancel.cancelled() => return,
            c = connector.connect(&rpc_dir) => c,
        };
        let mut feed = match connected {
            Ok(f) => f,
            Err(error) => {
                tracing::warn!(package = %id, %error, "cannot follow the container's status");
                return;
            }
        };
        tracing::debug!(package = %id, "following the container's status");
        // A report that came within WRITE_EVERY of the last write waits here (only
        // the latest is kept) until `next_write`.
        let mut held: Option<Value> = None;
        loop {
            let flush = async {
                if held.is_some() {
                    tokio::time::sleep_until(next_write).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            let next = tokio::select! {
                () = cancel.cancelled() => return,
                () = flush => {
                    if let Some(status) = held.take() {
                        record(store, id, &status);
                        next_write = tokio::time::Instant::now() + WRITE_EVERY;
                    }
                    continue;
                }
                n = feed.next_status() => n,
            };
            match next {
                Ok(Some(status)) => {
                    if held.is_none() && tokio::time::Instant::now() >= next_write {
                        record(store, id, &status);
                        next_write = tokio::time::Instant::now() + WRITE_EVERY;
                    } else {
                        held = Some(status);
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(package = %id, %error, "container status connection failed");
                    break;
                }
            }
        }
        // The connection ended: what it last said is still the latest report.
        if let Some(status) = held.take() {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep_until(next_write) => {}
            }
            record(store, id, &status);
            next_write = tokio::time::Instant::now() + WRITE_EVERY;
        }
        tracing::debug!(package = %id, "container closed its socket; reconnecting");
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

#[cfg(test)]
#[path = "container_status_tests.rs"]
mod tests;
