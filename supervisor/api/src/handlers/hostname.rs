//! `server.hostname.set`: stores the new hostname in `/public/serverInfo/hostname`.
//!
//! The handler only changes the state. Whoever owns the names on the machine (hearthd's
//! `names` wiring: the kernel hostname and the mDNS announcer) follows that field, so a
//! hostname chosen at setup and one set later take the same path, and a restart applies
//! the stored name again.

use hearth_rpc::methods::ServerHostnameSet;
use hearth_rpc::methods::hostname::HostnameSetResult;
use hearth_store::Store;
use serde_json::Value;

use crate::dispatch::{Registry, Reply};
use crate::doc::{self, SERVER_INFO};
use crate::error::{blocking, mutate_error};

pub(crate) fn register(r: &mut Registry, store: Store) {
    r.register::<ServerHostnameSet, _, _>(move |_, p| {
        let store = store.clone();
        async move {
            // `p.hostname` is a validated `Hostname`: a bad label was refused while
            // decoding the params (invalid params, nothing changed).
            let hostname = p.hostname;
            let name = hostname.as_str().to_owned();
            let rev = blocking("set hostname", move || {
                store
                    .mutate(|d| {
                        let info = doc::object_mut(d, SERVER_INFO)?;
                        info.insert("hostname".into(), Value::String(name));
                        Ok(())
                    })
                    .map(|m| m.revision)
                    .map_err(mutate_error("set hostname"))
            })
            .await?;
            tracing::info!(rev, hostname = %hostname, "hostname set");
            Ok(Reply::at(HostnameSetResult { hostname }, rev))
        }
    });
}
