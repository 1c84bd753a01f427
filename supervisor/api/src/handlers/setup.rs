//! `setup.status` and `setup.complete`.

use std::sync::Arc;

use hearth_rpc::methods::notification::NotificationLevel;
use hearth_rpc::methods::setup::{SetupStatus as Status, check_hostname, check_password};
use hearth_rpc::methods::{SetupComplete, SetupStatus};
use hearth_rpc::{ErrorCode, RpcError};
use hearth_store::Store;
use serde_json::Value;

use super::notification::add_notification;
use crate::auth::{Authenticator, Principal};
use crate::dispatch::{Registry, Reply};
use crate::doc::{self, PASSWORD_HASH, SERVER_INFO};
use crate::error::{blocking, mutate_error};
use crate::setup_code::SetupCode;

fn already() -> RpcError {
    RpcError::new(
        ErrorCode::AlreadySetUp,
        "setup is already complete; log in with auth.login",
    )
}

pub(crate) fn register(
    r: &mut Registry,
    store: Store,
    auth: Arc<Authenticator>,
    setup_code: Option<Arc<SetupCode>>,
) {
    let status_auth = Arc::clone(&auth);
    r.register::<SetupStatus, _, _>(move |_, _| {
        let complete = status_auth.setup_complete();
        async move {
            Ok(Reply::new(Status {
                setup_complete: complete,
            }))
        }
    });

    r.register::<SetupComplete, _, _>(move |caller, p| {
        let (store, auth, setup_code) = (store.clone(), Arc::clone(&auth), setup_code.clone());
        async move {
            check_password(&p.password).map_err(|e| RpcError::invalid_params("password", e))?;
            check_hostname(&p.hostname).map_err(|e| RpcError::invalid_params("hostname", e))?;
            if auth.setup_complete() {
                return Err(already());
            }
            // The local cookie (0600 in the data dir, next to the code) proves the same
            // access as the code; everyone else must show it.
            if !matches!(caller.principal, Principal::Local) {
                match &setup_code {
                    Some(code) => code.check(&auth, caller.peer, p.setup_code.as_deref())?,
                    None => return Err(already()),
                }
            }
            let hash = auth.hash_password(p.password).await?;
            let hostname = p.hostname;
            let rev = blocking("complete setup", move || {
                store
                    .mutate(|d| {
                        // Checked again under the writer lock: exactly one caller wins.
                        if d.pointer(PASSWORD_HASH).is_some_and(Value::is_string) {
                            return Err(already());
                        }
                        doc::set(d, PASSWORD_HASH, Value::String(hash))?;
                        let info = doc::object_mut(d, SERVER_INFO)?;
                        info.insert("hostname".into(), Value::String(hostname.clone()));
                        info.insert("setupComplete".into(), Value::Bool(true));
                        add_notification(
                            d,
                            NotificationLevel::Success,
                            "Welcome to Hearth",
                            &format!("Setup is complete; this server is named {hostname}."),
                        )?;
                        Ok(())
                    })
                    .map(|m| m.revision)
                    .map_err(mutate_error("complete setup"))
            })
            .await?;
            if let Some(code) = &setup_code {
                code.remove();
            }
            tracing::info!(rev, "setup complete");
            Ok(Reply::at((), rev))
        }
    });
}
