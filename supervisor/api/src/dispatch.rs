//! [`Dispatcher`]: binds each method of the catalogue to one typed handler and calls it.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hearth_rpc::{Auth, ErrorCode, Method, RpcError, catalogue};
use serde_json::Value;

use crate::auth::Principal;

/// The caller of one method: who, and from where.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who is calling.
    pub principal: Principal,
    /// Client address (rate limiting, logs); `None` for in-process callers.
    pub peer: Option<IpAddr>,
    /// `User-Agent`, recorded with new sessions.
    pub user_agent: Option<String>,
    /// The `device` cookie as sent (a known-device proof for `auth.login`, verified
    /// there); `None` for transports without cookies.
    pub device: Option<String>,
}

impl Caller {
    /// A caller with no address or user agent (in-process use, tests).
    pub fn new(principal: Principal) -> Caller {
        Caller {
            principal,
            peer: None,
            user_agent: None,
            device: None,
        }
    }
}

/// What a transport must do with the session cookie after a call.
#[derive(Clone, PartialEq, Eq)]
pub enum SessionCookie {
    /// Set `session=<token>` for `max_age` (and `device=<device>`, a known-device
    /// proof, for a year).
    Set {
        /// The secret session token.
        token: String,
        /// Cookie lifetime.
        max_age: Duration,
        /// A new known-device cookie value, if any.
        device: Option<String>,
    },
    /// Clear the cookie.
    Clear,
}

impl std::fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionCookie::Set { max_age, .. } => f
                .debug_struct("Set")
                .field("token", &"<redacted>")
                .field("max_age", max_age)
                .field("device", &"<redacted>")
                .finish(),
            SessionCookie::Clear => f.write_str("Clear"),
        }
    }
}

/// The successful outcome of a call.
#[derive(Clone, Debug)]
pub struct CallOutput {
    /// The method's result as JSON.
    pub value: Value,
    /// The state revision a mutating call produced (or found, if nothing changed).
    pub revision: Option<u64>,
    /// Cookie instruction for HTTP transports (login/logout); others ignore it.
    pub session: Option<SessionCookie>,
}

/// What a typed handler returns: its result plus transport-level effects.
#[derive(Debug)]
pub(crate) struct Reply<T> {
    pub(crate) value: T,
    pub(crate) revision: Option<u64>,
    pub(crate) session: Option<SessionCookie>,
}

impl<T> Reply<T> {
    pub(crate) fn new(value: T) -> Reply<T> {
        Reply {
            value,
            revision: None,
            session: None,
        }
    }

    pub(crate) fn at(value: T, revision: u64) -> Reply<T> {
        Reply {
            value,
            revision: Some(revision),
            session: None,
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Erased = dyn Fn(Caller, Value) -> BoxFuture<Result<CallOutput, RpcError>> + Send + Sync;

struct Entry {
    auth: Auth,
    /// Open to `read`-scoped API tokens.
    read_scope: bool,
    handler: Box<Erased>,
}

/// Collects handlers; [`Dispatcher::new`] checks it against the catalogue.
#[derive(Default)]
pub(crate) struct Registry {
    entries: HashMap<&'static str, Entry>,
    duplicates: Vec<&'static str>,
}

impl Registry {
    /// Binds method `M` to `handler`.
    pub(crate) fn register<M, F, Fut>(&mut self, handler: F)
    where
        M: Method,
        F: Fn(Caller, M::Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Reply<M::Result>, RpcError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased = move |caller: Caller, params: Value| -> BoxFuture<_> {
            let handler = Arc::clone(&handler);
            Box::pin(async move {
                let params: M::Params = decode_params(params)?;
                let reply = handler(caller, params).await?;
                let value = serde_json::to_value(&reply.value).map_err(|e| {
                    tracing::error!(method = M::NAME, error = %e, "result does not serialize");
                    RpcError::internal()
                })?;
                Ok(CallOutput {
                    value,
                    revision: reply.revision,
                    session: reply.session,
                })
            })
        };
        let entry = Entry {
            auth: M::AUTH,
            read_scope: hearth_rpc::read_scope(M::MUTATES, M::READS_SECRETS),
            handler: Box::new(erased),
        };
        if self.entries.insert(M::NAME, entry).is_some() {
            self.duplicates.push(M::NAME);
        }
    }

    /// Methods in the catalogue without a handler, handlers for unknown methods, and
    /// methods registered twice: all must be empty.
    pub(crate) fn coverage(&self) -> (Vec<&'static str>, Vec<&'static str>, Vec<&'static str>) {
        let cat = catalogue();
        let missing = cat
            .iter()
            .filter(|m| !self.entries.contains_key(m.name))
            .map(|m| m.name)
            .collect();
        let unknown = self
            .entries
            .keys()
            .filter(|k| !cat.iter().any(|m| m.name == **k))
            .copied()
            .collect();
        (missing, unknown, self.duplicates.clone())
    }
}

fn decode_params<P: serde::de::DeserializeOwned>(params: Value) -> Result<P, RpcError> {
    let params = match params {
        Value::Null => Value::Object(serde_json::Map::new()),
        obj @ Value::Object(_) => obj,
        _ => {
            return Err(RpcError::invalid_params(
                "",
                "params must be a JSON object with named fields",
            ));
        }
    };
    serde_path_to_error::deserialize(params).map_err(|e| {
        let path = e.path().to_string();
        // The root is printed as "."; report it as "" (the params object itself).
        let path = if path == "." { String::new() } else { path };
        RpcError::invalid_params(&path, e.inner())
    })
}

/// Calls methods of the table for a [`Caller`]. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    entries: Arc<HashMap<&'static str, Entry>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("methods", &self.entries.len())
            .finish()
    }
}

impl Dispatcher {
    /// A dispatcher over `registry`; fails unless every catalogue method has exactly one
    /// handler.
    /// Whether `method` exists and `principal` may call it (authentication and
    /// scope), without calling it. MCP lists only the tools a caller may use.
    pub fn allows(&self, principal: &Principal, method: &str) -> bool {
        self.entries.get(method).is_some_and(|e| {
            (e.auth == Auth::Public || principal.is_authenticated())
                && principal.may_call(e.read_scope)
        })
    }

    pub(crate) fn new(registry: Registry) -> Result<Dispatcher, crate::ApiError> {
        let (missing, unknown, dup) = registry.coverage();
        if !missing.is_empty() || !unknown.is_empty() || !dup.is_empty() {
            return Err(crate::ApiError::Registry(format!(
                "missing {missing:?}, unknown {unknown:?}, duplicate {dup:?}"
            )));
        }
        Ok(Dispatcher {
            entries: Arc::new(registry.entries),
        })
    }

    /// Calls `method` with `params` (a JSON object, or `null` for none) as `caller`.
    ///
    /// Unknown methods give `-32601`, anonymous callers of non-public methods `34`
    /// (`data.reason` `missing`/`expired`), `read`-scoped tokens calling a method that
    /// mutates or reveals secrets `34` (`scope`), and params that do not match the
    /// schema `-32602` naming the field.
    pub async fn call(
        &self,
        caller: &Caller,
        method: &str,
        params: Value,
    ) -> Result<CallOutput, RpcError> {
        let Some(entry) = self.entries.get(method) else {
            return Err(RpcError::new(
                ErrorCode::MethodNotFound,
                format!("unknown method {method:?}; rpc.discover lists the methods"),
            )
            .with("method", method));
        };
        if entry.auth == Auth::Authenticated && !caller.principal.is_authenticated() {
            return Err(caller.principal.refusal());
        }
        if !caller.principal.may_call(entry.read_scope) {
            return Err(Principal::scope_refusal(method));
        }
        (entry.handler)(caller.clone(), params).await
    }
}
