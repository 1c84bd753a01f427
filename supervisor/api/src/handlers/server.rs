//! `server.*` and `rpc.discover`.
//!
//! `server.info`'s `slot` and `server.shutdown`/`server.restart` rely on `hearth-init`
//! (PID 1 of a Hearth image): it writes the boot slot's state to
//! [`crate::ApiConfig::boot_state_file`] (`/run/hearth/boot.json`) with
//! `"init": "hearth-init"`, and understands `SIGTERM` (power off) and `SIGINT` (reboot).
//! Without that file there is no slot and shutdown/restart are refused: signalling some
//! other PID 1 (systemd, a container's init) would do something else.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_rpc::methods::server::{ServerInfo, SlotInfo};
use hearth_rpc::methods::{
    RpcDiscover, ServerEcho, ServerInfo as ServerInfoM, ServerLogs, ServerMetrics, ServerRestart,
    ServerShutdown,
};
use hearth_rpc::{ErrorCode, RpcError, openrpc_document};
use hearth_store::Store;
use serde_json::Value;

use crate::dispatch::{Registry, Reply};
use crate::doc::SERVER_INFO;
use crate::error::blocking;
use crate::metrics::{Sampler, dir_usage};
use crate::{ApiError, LogBuffer};

/// Facts about this process that `server.info` reports.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) version: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) started: Instant,
    /// Where `hearth-init` publishes the boot slot's state.
    pub(crate) boot_state: PathBuf,
}

/// The slot state `hearth-init` published, if any (unreadable or malformed: none, logged).
fn read_slot(path: &Path) -> Option<SlotInfo> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(info) => Some(info),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "malformed boot state file");
            None
        }
    }
}

/// Checks that PID 1 is `hearth-init` (it wrote the boot state file).
fn check_under_init(path: &Path) -> Result<(), RpcError> {
    let marked = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|v| v["init"] == "hearth-init");
    if marked {
        Ok(())
    } else {
        Err(RpcError::new(
            ErrorCode::NotFound,
            format!(
                "not running under hearth-init ({} not found): stop or restart this machine \
                 with its own tools",
                path.display()
            ),
        )
        .with("what", "hearth-init"))
    }
}

/// Asks PID 1 (`hearth-init`) to power off (`SIGTERM`) or reboot (`SIGINT`), shortly after
/// the reply is sent.
fn ask_init(
    path: &Path,
    signal: rustix::process::Signal,
    what: &'static str,
) -> Result<(), RpcError> {
    check_under_init(path)?;
    tracing::info!(what, "asking hearth-init (PID 1)");
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if let Err(e) = rustix::process::kill_process(rustix::process::Pid::INIT, signal) {
            tracing::error!(what, error = %e, "signalling hearth-init (PID 1)");
        }
    });
    Ok(())
}

pub(crate) fn register(r: &mut Registry, store: Store, logs: LogBuffer, id: Identity) {
    r.register::<ServerEcho, _, _>(|_, p| async move { Ok(Reply::new(p.message)) });

    // The document depends only on the version: build it once.
    let discover = Arc::new(openrpc_document(&id.version));
    r.register::<RpcDiscover, _, _>(move |_, _| {
        let doc = Value::clone(&discover);
        async move { Ok(Reply::new(doc)) }
    });

    let boot_state = id.boot_state.clone();
    r.register::<ServerShutdown, _, _>(move |_, _| {
        let result = ask_init(&boot_state, rustix::process::Signal::TERM, "power off");
        async move { result.map(Reply::new) }
    });
    let boot_state = id.boot_state.clone();
    r.register::<ServerRestart, _, _>(move |_, _| {
        let result = ask_init(&boot_state, rustix::process::Signal::INT, "reboot");
        async move { result.map(Reply::new) }
    });

    let info_id = id.clone();
    r.register::<ServerInfoM, _, _>(move |_, _| {
        let (store, id) = (store.clone(), info_id.clone());
        async move {
            let info = store
                .get(SERVER_INFO)
                .map_err(ApiError::store("read server info"))?;
            let dir = id.data_dir.clone();
            let bytes = blocking("measure data dir", move || Ok(dir_usage(&dir))).await?;
            let data_dir = std::fs::canonicalize(&id.data_dir).unwrap_or(id.data_dir);
            Ok(Reply::new(ServerInfo {
                id: info["id"].as_str().unwrap_or_default().to_owned(),
                version: id.version,
                hostname: info["hostname"].as_str().map(str::to_owned),
                mdns_name: info[hearth_rpc::methods::hostname::MDNS_NAME_KEY]
                    .as_str()
                    .map(str::to_owned),
                arch: std::env::consts::ARCH.to_owned(),
                uptime_secs: id.started.elapsed().as_secs(),
                data_dir: data_dir.display().to_string(),
                data_dir_bytes: bytes,
                slot: read_slot(&id.boot_state),
            }))
        }
    });

    let sampler = Arc::new(Sampler::default());
    let dir = id.data_dir;
    r.register::<ServerMetrics, _, _>(move |_, _| {
        let (sampler, dir) = (Arc::clone(&sampler), dir.clone());
        async move { sampler.sample(&dir).await.map(Reply::new) }
    });

    r.register::<ServerLogs, _, _>(move |_, p| {
        let logs = logs.clone();
        async move { Ok::<_, RpcError>(Reply::new(logs.query(p.after, p.limit))) }
    });
}

#[cfg(test)]
mod tests {
    use hearth_rpc::methods::server::SlotState;

    use super::*;

    #[test]
    fn slot_state_comes_from_hearth_inits_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot.json");
        assert_eq!(read_slot(&path), None);
        // The exact bytes hearth-init writes (init/src/slot.rs, `state_json`).
        std::fs::write(
            &path,
            "{\"init\":\"hearth-init\",\"slot\":\"b\",\"state\":\"trying\",\"triesLeft\":2,\"triesDone\":1}\n",
        )
        .unwrap();
        assert_eq!(
            read_slot(&path),
            Some(SlotInfo {
                slot: "b".into(),
                state: SlotState::Trying,
                tries_left: Some(2),
                tries_done: Some(1),
            })
        );
        std::fs::write(
            &path,
            "{\"init\":\"hearth-init\",\"slot\":\"a\",\"state\":\"good\"}\n",
        )
        .unwrap();
        assert_eq!(read_slot(&path).map(|s| s.state), Some(SlotState::Good));
        std::fs::write(&path, "{\"slot\":\"a\",\"state\":\"sideways\"}").unwrap();
        assert_eq!(read_slot(&path), None);
    }

    #[test]
    fn shutdown_and_restart_need_hearth_init() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot.json");
        let err = check_under_init(&path).unwrap_err();
        assert_eq!(err.error_code(), Some(ErrorCode::NotFound));
        assert!(
            err.to_string().contains("not running under hearth-init"),
            "{err}"
        );
        assert_eq!(err.data_field("what"), Some(&Value::from("hearth-init")));
        // A file without the marker (not written by hearth-init) is refused too.
        std::fs::write(&path, "{\"slot\":\"a\",\"state\":\"good\"}").unwrap();
        assert!(check_under_init(&path).is_err());
        std::fs::write(
            &path,
            "{\"init\":\"hearth-init\",\"slot\":\"a\",\"state\":\"good\"}",
        )
        .unwrap();
        assert!(check_under_init(&path).is_ok());
    }
}
