//! `server.*` and `rpc.discover`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use hearth_rpc::methods::server::ServerInfo;
use hearth_rpc::methods::{
    RpcDiscover, ServerEcho, ServerInfo as ServerInfoM, ServerLogs, ServerMetrics,
};
use hearth_rpc::{RpcError, openrpc_document};
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
}

pub(crate) fn register(r: &mut Registry, store: Store, logs: LogBuffer, id: Identity) {
    r.register::<ServerEcho, _, _>(|_, p| async move { Ok(Reply::new(p.message)) });

    // The document depends only on the version: build it once.
    let discover = Arc::new(openrpc_document(&id.version));
    r.register::<RpcDiscover, _, _>(move |_, _| {
        let doc = Value::clone(&discover);
        async move { Ok(Reply::new(doc)) }
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
                arch: std::env::consts::ARCH.to_owned(),
                uptime_secs: id.started.elapsed().as_secs(),
                data_dir: data_dir.display().to_string(),
                data_dir_bytes: bytes,
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
