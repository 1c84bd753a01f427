//! Calls that reach into a running container over its `service.sock`:
//! `package.logs`, `package.action.list` and `package.action.run`.
//!
//! # Design
//! Each call opens its own short connection ([`crate::container_client`]); the
//! container serves many at once. The package must be installed and recorded
//! `running`, else the call fails at once with [`ServiceCallError::NotRunning`]
//! instead of waiting for a socket. An action's input is checked against its schema
//! here, before anything is sent ([`hearth_s9pk::spec::check_action_input`]), and its allowed statuses
//! against the recorded status; the container checks both again. The last result of
//! each action is stored at `/public/packageData/<id>/actions/<actionId>/lastResult`.
//!
//! # Limitations
//! Actions run inside the service's container, so nothing runs while it is stopped:
//! `only-stopped` actions are refused until hearthd can start a container without its
//! daemons.

use std::time::Duration;

use hearth_rpc::RpcError;
use hearth_rpc::methods::package::{ActionInfo, ActionRunResult, LogsResult};
use hearth_s9pk::spec::{ActionSpec, AllowedStatuses, ServiceSpec};
use serde_json::{Value, json};

use crate::container_client::{self, ClientError};
use crate::doc::{self, InstallState, PACKAGE_DATA};
use crate::error::PackageError;
use crate::packages::Packages;
use crate::status::{Desired, RunState};

/// How long a call waits for the socket of a container recorded running.
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// Why a call into a container failed or was refused.
#[derive(Debug, thiserror::Error)]
pub enum ServiceCallError {
    /// The package is unknown, not installed, or its record could not be read.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The container is not running.
    #[error("package {id} is not running (it is {state}); start it first")]
    NotRunning {
        /// Package id.
        id: String,
        /// Its recorded run state.
        state: &'static str,
    },
    /// The installed service spec could not be read.
    #[error("read service spec {path}: {reason}")]
    Spec {
        /// The spec file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The package has no action with this id.
    #[error("package {id} has no action {action:?}")]
    NoAction {
        /// Package id.
        id: String,
        /// The action id asked for.
        action: String,
    },
    /// The input does not match the action's schema.
    #[error("input of action {action}: {path}: {reason}")]
    InvalidInput {
        /// Action id.
        action: String,
        /// Where in the input (`input.name`).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The action may not run in the service's current status.
    #[error("action {action} may only run while the service is {needs}")]
    NotAllowed {
        /// Action id.
        action: String,
        /// `running` or `stopped`.
        needs: &'static str,
    },
    /// The container's socket failed, or the container refused.
    #[error("package {id}: {source}")]
    Container {
        /// Package id.
        id: String,
        /// What happened on the socket.
        #[source]
        source: ClientError,
    },
    /// A blocking step (reading the spec, recording the result) could not finish.
    #[error("{op}: {reason}")]
    Task {
        /// The step.
        op: &'static str,
        /// Why (a panic or a runtime shutting down).
        reason: String,
    },
    /// The container's answer was not what it should be.
    #[error("package {id}: unexpected answer to {method}: {reason}")]
    Answer {
        /// Package id.
        id: String,
        /// The container method.
        method: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl ServiceCallError {
    /// The container's own error, when it answered with one (its codes are
    /// `hearth-rpc`'s, so it can be passed on as is).
    pub fn container_error(&self) -> Option<&RpcError> {
        match self {
            ServiceCallError::Container {
                source: ClientError::Remote { error, .. },
                ..
            } => Some(error),
            _ => None,
        }
    }
}

fn to_info(a: &ActionSpec) -> ActionInfo {
    ActionInfo {
        id: a.id.clone(),
        name: a.name.clone(),
        description: a.description.clone(),
        warning: a.warning.clone(),
        input: a.input.clone(),
        allowed_statuses: match a.allowed_statuses {
            AllowedStatuses::Any => "any",
            AllowedStatuses::OnlyRunning => "only-running",
            AllowedStatuses::OnlyStopped => "only-stopped",
        }
        .to_owned(),
    }
}

impl Packages {
    fn installed_entry(&self, id: &str) -> Result<doc::PackageEntry, ServiceCallError> {
        let e = doc::load(self.store(), id)?.ok_or_else(|| PackageError::NotFound {
            what: "package",
            id: id.to_owned(),
        })?;
        if e.state_info.state != InstallState::Installed {
            return Err(PackageError::WrongState {
                id: id.to_owned(),
                state: e.state_info.state.as_str(),
                op: "reach its container",
            }
            .into());
        }
        Ok(e)
    }

    fn running_entry(&self, id: &str) -> Result<doc::PackageEntry, ServiceCallError> {
        let e = self.installed_entry(id)?;
        match e.status_info.observed.state {
            RunState::Running => Ok(e),
            other => Err(ServiceCallError::NotRunning {
                id: id.to_owned(),
                state: other.as_str(),
            }),
        }
    }

    fn spec(&self, id: &str) -> Result<ServiceSpec, ServiceCallError> {
        let path = crate::install::spec_path(self.data_dir(), id);
        let bytes = std::fs::read(&path).map_err(|e| ServiceCallError::Spec {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        ServiceSpec::from_json(&bytes).map_err(|e| ServiceCallError::Spec {
            path,
            reason: e.to_string(),
        })
    }

    /// The actions of an installed package, from its installed spec (blocking).
    pub fn action_list(&self, id: &str) -> Result<Vec<ActionInfo>, ServiceCallError> {
        self.installed_entry(id)?;
        Ok(self.spec(id)?.actions.iter().map(to_info).collect())
    }

    /// Runs `f` on the blocking pool (file reads, store commits).
    async fn off_thread<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Packages) -> Result<T, ServiceCallError> + Send + 'static,
    ) -> Result<T, ServiceCallError> {
        let p = self.clone();
        tokio::task::spawn_blocking(move || f(&p))
            .await
            .map_err(|e| ServiceCallError::Task {
                op,
                reason: e.to_string(),
            })?
    }

    async fn call(
        &self,
        id: &str,
        method: &'static str,
        params: Value,
    ) -> Result<Value, ServiceCallError> {
        let path = container_client::socket_path(&container_client::rpc_dir(self.data_dir(), id));
        let container = |source| ServiceCallError::Container {
            id: id.to_owned(),
            source,
        };
        let mut conn = container_client::connect_retry(&path, CONNECT_WAIT)
            .await
            .map_err(container)?;
        conn.call(method, params).await.map_err(container)
    }

    /// Log lines of a running package's daemons (the container's `logs`).
    pub async fn logs(
        &self,
        id: &str,
        daemon: Option<String>,
        limit: Option<u32>,
        cursor: Option<u64>,
    ) -> Result<LogsResult, ServiceCallError> {
        self.running_entry(id)?;
        let mut params = json!({});
        if let Some(d) = daemon {
            params["daemon"] = json!(d);
        }
        if let Some(l) = limit {
            params["limit"] = json!(l);
        }
        if let Some(c) = cursor {
            params["cursor"] = json!(c);
        }
        let answer = self.call(id, "logs", params).await?;
        serde_json::from_value(answer).map_err(|e| ServiceCallError::Answer {
            id: id.to_owned(),
            method: "logs",
            reason: e.to_string(),
        })
    }

    /// Runs an action of a running package: the input is checked against the action's
    /// schema and its allowed statuses first; the result is also stored as the
    /// action's `lastResult`. Returns the result and the store revision.
    pub async fn action_run(
        &self,
        id: &str,
        action_id: &str,
        input: Option<Value>,
    ) -> Result<(ActionRunResult, u64), ServiceCallError> {
        let owned = id.to_owned();
        let spec = self
            .off_thread("read service spec", move |p| p.spec(&owned))
            .await?;
        let Some(action) = spec.actions.iter().find(|a| a.id == action_id) else {
            self.installed_entry(id)?;
            return Err(ServiceCallError::NoAction {
                id: id.to_owned(),
                action: action_id.to_owned(),
            });
        };
        let input = match (&action.input, input) {
            (Some(schema), input) => {
                let input = input.unwrap_or_else(|| json!({}));
                hearth_s9pk::spec::check_action_input(schema, &input, "input").map_err(
                    |(path, reason)| ServiceCallError::InvalidInput {
                        action: action_id.to_owned(),
                        path,
                        reason,
                    },
                )?;
                Some(input)
            }
            (None, None | Some(Value::Null)) => None,
            (None, Some(_)) => {
                return Err(ServiceCallError::InvalidInput {
                    action: action_id.to_owned(),
                    path: "input".into(),
                    reason: "this action takes no input".into(),
                });
            }
        };
        let entry = self.installed_entry(id)?;
        let running = entry.status_info.observed.state == RunState::Running;
        let wants_running = entry.status_info.desired == Desired::Running;
        match action.allowed_statuses {
            AllowedStatuses::OnlyRunning if !(running && wants_running) => {
                return Err(ServiceCallError::NotAllowed {
                    action: action_id.to_owned(),
                    needs: "running",
                });
            }
            AllowedStatuses::OnlyStopped => {
                return Err(ServiceCallError::NotAllowed {
                    action: action_id.to_owned(),
                    needs: "stopped (not supported yet: actions run in the service's container)",
                });
            }
            _ => {}
        }
        self.running_entry(id)?;
        let mut params = json!({"id": action_id});
        if let Some(input) = input {
            params["input"] = input;
        }
        let answer = self.call(id, "action.run", params).await?;
        let mut result: ActionRunResult =
            serde_json::from_value(answer).map_err(|e| ServiceCallError::Answer {
                id: id.to_owned(),
                method: "action.run",
                reason: e.to_string(),
            })?;
        result.ran_at = doc::now_ms();
        let (owned, action_owned, stored) = (id.to_owned(), action_id.to_owned(), result.clone());
        let rev = self
            .off_thread("record action result", move |p| {
                p.record_action_result(&owned, &action_owned, &stored)
            })
            .await?;
        Ok((result, rev))
    }

    fn record_action_result(
        &self,
        id: &str,
        action_id: &str,
        result: &ActionRunResult,
    ) -> Result<u64, ServiceCallError> {
        let value = serde_json::to_value(result).map_err(|e| ServiceCallError::Answer {
            id: id.to_owned(),
            method: "action.run",
            reason: e.to_string(),
        })?;
        let entry = doc::entry_pointer(id);
        let pointer = format!("{PACKAGE_DATA}/{id}/actions/{action_id}");
        self.store()
            .mutate(|d| {
                if d.pointer(&entry).is_none() {
                    return Ok(());
                }
                doc::object_mut(d, &pointer)?.insert("lastResult".into(), value);
                Ok(())
            })
            .map(|m| m.revision)
            .map_err(|e| doc::mutate_error("record action result", e).into())
    }
}

#[cfg(test)]
#[path = "service_calls_tests.rs"]
mod tests;
