//! `auth.*`: login, logout, sessions, password, API tokens.

use std::sync::Arc;
use std::time::Duration;

use hearth_rpc::RpcError;
use hearth_rpc::methods::auth::SessionList;
use hearth_rpc::methods::setup::check_password;
use hearth_rpc::methods::{
    AuthLogin, AuthLogout, AuthPasswordChange, AuthSessionKill, AuthSessionList, AuthTokenCreate,
    AuthTokenList, AuthTokenRevoke,
};

use crate::auth::{Authenticator, Client, Principal};
use crate::dispatch::{Registry, Reply, SessionCookie};

pub(crate) fn register(r: &mut Registry, auth: Arc<Authenticator>, max_age: Duration) {
    let a = Arc::clone(&auth);
    r.register::<AuthLogin, _, _>(move |caller, p| {
        let a = Arc::clone(&a);
        async move {
            let known = a.known_device(caller.device.as_deref());
            let client = Client::new(caller.peer, known.clone());
            let (token, result, rev) = a.login(p.password, client, caller.user_agent).await?;
            // A new device cookie at every login (a known device's is renewed).
            let device = Some(a.issue_device()?);
            tracing::info!(peer = ?caller.peer, known_device = ?known, rev, "login");
            Ok(Reply {
                value: result,
                revision: Some(rev),
                session: Some(SessionCookie::Set {
                    token,
                    max_age,
                    device,
                }),
            })
        }
    });

    let a = Arc::clone(&auth);
    r.register::<AuthLogout, _, _>(move |caller, _| {
        let a = Arc::clone(&a);
        async move {
            let revision = match caller.principal {
                Principal::Session { id } => Some(a.remove_sessions(vec![id], None).await?),
                _ => None,
            };
            Ok(Reply {
                value: (),
                revision,
                session: Some(SessionCookie::Clear),
            })
        }
    });

    let a = Arc::clone(&auth);
    r.register::<AuthSessionList, _, _>(move |caller, _| {
        let sessions = a.list_sessions();
        async move {
            let current = match caller.principal {
                Principal::Session { id } => Some(id),
                _ => None,
            };
            Ok(Reply::new(SessionList {
                current,
                sessions: sessions?,
            }))
        }
    });

    let a = Arc::clone(&auth);
    r.register::<AuthSessionKill, _, _>(move |_, p| {
        let a = Arc::clone(&a);
        async move { Ok(Reply::at((), a.remove_sessions(p.ids, None).await?)) }
    });

    let a = Arc::clone(&auth);
    r.register::<AuthPasswordChange, _, _>(move |caller, p| {
        let a = Arc::clone(&a);
        async move {
            check_password(&p.new_password)
                .map_err(|e| RpcError::invalid_params("newPassword", e))?;
            let expected = a.password_hash()?;
            let client = Client::new(caller.peer, a.known_device(caller.device.as_deref()));
            a.verify_password(p.old_password, client).await?;
            let hash = a.hash_password(p.new_password).await?;
            let rev = a
                .replace_password(expected, hash, &caller.principal)
                .await?;
            tracing::info!(by = %caller.principal.label(), rev, "password changed; other sessions ended, API tokens revoked");
            Ok(Reply::at((), rev))
        }
    });

    let a = Arc::clone(&auth);
    r.register::<AuthTokenCreate, _, _>(move |caller, p| {
        let a = Arc::clone(&a);
        async move {
            let n = p.name.chars().count();
            if n == 0 || n > 64 || p.name.chars().any(char::is_control) {
                return Err(RpcError::invalid_params(
                    "name",
                    "name must be 1-64 printable characters",
                ));
            }
            let (created, rev) = a.create_token(p.name, p.scope).await?;
            tracing::info!(by = %caller.principal.label(), token = %created.id, scope = created.scope.as_str(), "API token created");
            Ok(Reply::at(created, rev))
        }
    });

    let a = Arc::clone(&auth);
    r.register::<AuthTokenList, _, _>(move |_, _| {
        let tokens = a.list_tokens();
        async move { tokens.map(Reply::new) }
    });

    r.register::<AuthTokenRevoke, _, _>(move |caller, p| {
        let a = Arc::clone(&auth);
        async move {
            let rev = a.revoke_token(p.id.clone()).await?;
            tracing::info!(by = %caller.principal.label(), token = %p.id, "API token revoked");
            Ok(Reply::at((), rev))
        }
    });
}
