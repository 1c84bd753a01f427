//! Sessions, API tokens and the password: the stateful half of [`Authenticator`].
//!
//! Stored under `/private` (see `doc.rs`), keyed by hashes: a leaked state file does not
//! reveal a usable token. `lastActiveMs`/`lastUsedMs` are written at most every
//! [`touch_interval`] so that ordinary requests do not each cost a durable write.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hearth_layout::API_TOKEN_PREFIX;
use hearth_rpc::methods::auth::{LoginResult, SessionInfo, TokenCreated, TokenInfo, TokenScope};
use hearth_rpc::{ErrorCode, RpcError};
use hearth_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Authenticator, Client, Principal, secret};
use crate::ApiError;
use crate::doc::{self, API_TOKENS, PASSWORD_HASH, SESSIONS, now_ms};
use crate::error::{blocking, mutate_error};

/// A session as stored at `/private/sessions/<id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredSession {
    logged_in_ms: u64,
    last_active_ms: u64,
    expires_at_ms: u64,
    user_agent: Option<String>,
}

/// An API token as stored at `/private/apiTokens/<id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredToken {
    name: String,
    hash: String,
    /// Tokens created before scopes existed were full admin, and stay so.
    #[serde(default = "admin")]
    scope: TokenScope,
    created_ms: u64,
    last_used_ms: Option<u64>,
}

fn admin() -> TokenScope {
    TokenScope::Admin
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How stale a stored last-use time may get before a request rewrites it.
fn touch_interval(idle: Duration) -> u64 {
    ms((idle / 4).min(Duration::from_secs(60)))
}

impl Authenticator {
    fn read(&self, pointer: &str, op: &'static str) -> Result<Option<Value>, RpcError> {
        match self.store.get(pointer) {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::PointerNotFound { .. }) => Ok(None),
            Err(source) => Err(ApiError::Store { op, source }.to_rpc()),
        }
    }

    /// Whether session `id` is live; refreshes its last-activity time when stale.
    pub(crate) async fn check_session(&self, id: &str) -> Result<bool, RpcError> {
        let pointer = format!("{SESSIONS}/{id}");
        let Some(v) = self.read(&pointer, "read session")? else {
            return Ok(false);
        };
        let Ok(s) = serde_json::from_value::<StoredSession>(v) else {
            tracing::warn!(session = %&id[..8.min(id.len())], "unreadable session record");
            return Ok(false);
        };
        let now = now_ms();
        if now >= s.expires_at_ms || now.saturating_sub(s.last_active_ms) > ms(self.session_idle) {
            return Ok(false);
        }
        if now.saturating_sub(s.last_active_ms) > touch_interval(self.session_idle) {
            let store = self.store.clone();
            blocking("touch session", move || {
                store
                    .mutate(|d| {
                        if let Some(s) = d.pointer_mut(&pointer) {
                            s["lastActiveMs"] = Value::from(now);
                        }
                        Ok::<_, RpcError>(())
                    })
                    .map(|_| ())
                    .map_err(mutate_error("touch session"))
            })
            .await?;
        }
        Ok(true)
    }

    /// Verifies the master password for `client`, rate limited (see `ratelimit.rs`):
    /// the attempt is reserved before hashing, and the hashing queue is bounded.
    pub(crate) async fn verify_password(
        &self,
        password: String,
        client: Client,
    ) -> Result<(), RpcError> {
        let known_device = matches!(client, Client::Device(_));
        let attempt = self
            .limiter
            .reserve(client.clone(), Instant::now())
            .map_err(rate_limited)?;
        let Some(Value::String(hash)) = self.read(PASSWORD_HASH, "read password hash")? else {
            attempt.cancel();
            return Err(RpcError::new(
                ErrorCode::SetupRequired,
                "no password is set yet; finish setup with setup.complete",
            ));
        };
        let slot = match self.hash_slot(known_device).await {
            Ok(slot) => slot,
            Err(e) => {
                attempt.cancel();
                return Err(e);
            }
        };
        let checks = std::sync::Arc::clone(&self.password_checks);
        let ok = blocking("verify password", move || {
            let _slot = slot;
            checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            secret::verify_password(&password, &hash).map_err(RpcError::from)
        })
        .await?;
        if ok {
            attempt.succeeded();
            return Ok(());
        }
        let backoff = attempt.failed();
        if let Some(suppressed) = self.failure_log.allow(Instant::now()) {
            tracing::warn!(client = ?client, suppressed, "wrong password");
        }
        let err = RpcError::new(ErrorCode::IncorrectPassword, "incorrect password");
        Err(match backoff {
            Some(b) => err.with("retryAfter", b.as_secs()),
            None => err,
        })
    }

    /// argon2id hash of a new password (bounded queue, off the async threads).
    pub(crate) async fn hash_password(&self, password: String) -> Result<String, RpcError> {
        let slot = self.hash_slot(false).await?;
        blocking("hash password", move || {
            let _slot = slot;
            secret::hash_password(&password).map_err(RpcError::from)
        })
        .await
    }

    /// Logs in: checks the password and stores a new session. Returns the secret token
    /// (for the cookie) and what the client may see.
    pub(crate) async fn login(
        &self,
        password: String,
        client: Client,
        user_agent: Option<String>,
    ) -> Result<(String, LoginResult, u64), RpcError> {
        self.verify_password(password, client).await?;
        let token = secret::random_token().map_err(RpcError::from)?;
        let id = secret::sha256_hex(&token);
        let now = now_ms();
        let session = StoredSession {
            logged_in_ms: now,
            last_active_ms: now,
            expires_at_ms: now.saturating_add(ms(self.session_max_age)),
            user_agent: user_agent.map(|ua| ua.chars().take(256).collect()),
        };
        let result = LoginResult {
            session_id: id.clone(),
            expires_at_ms: session.expires_at_ms,
        };
        let idle = ms(self.session_idle);
        let store = self.store.clone();
        let value = serde_json::to_value(&session).map_err(|_| RpcError::internal())?;
        let rev = blocking("create session", move || {
            store
                .mutate(|d| {
                    let sessions = doc::object_mut(d, SESSIONS)?;
                    // Forget sessions that can no longer be used.
                    sessions.retain(|_, s| {
                        serde_json::from_value::<StoredSession>(s.clone()).is_ok_and(|s| {
                            now < s.expires_at_ms && now.saturating_sub(s.last_active_ms) <= idle
                        })
                    });
                    sessions.insert(id, value);
                    Ok(())
                })
                .map(|m| m.revision)
                .map_err(mutate_error("create session"))
        })
        .await?;
        Ok((token, result, rev))
    }

    /// Removes sessions by id; with `keep`, removes all others instead.
    pub(crate) async fn remove_sessions(
        &self,
        ids: Vec<String>,
        keep: Option<String>,
    ) -> Result<u64, RpcError> {
        let store = self.store.clone();
        blocking("remove sessions", move || {
            store
                .mutate(|d| {
                    let sessions = doc::object_mut(d, SESSIONS)?;
                    match &keep {
                        Some(k) => sessions.retain(|id, _| id == k),
                        None => {
                            for id in &ids {
                                sessions.remove(id);
                            }
                        }
                    }
                    Ok(())
                })
                .map(|m| m.revision)
                .map_err(mutate_error("remove sessions"))
        })
        .await
    }

    /// Live sessions by id.
    pub(crate) fn list_sessions(&self) -> Result<BTreeMap<String, SessionInfo>, RpcError> {
        let all = self.read(SESSIONS, "list sessions")?.unwrap_or(Value::Null);
        let now = now_ms();
        let idle = ms(self.session_idle);
        let mut out = BTreeMap::new();
        if let Value::Object(map) = all {
            for (id, v) in map {
                let Ok(s) = serde_json::from_value::<StoredSession>(v) else {
                    continue;
                };
                if now < s.expires_at_ms && now.saturating_sub(s.last_active_ms) <= idle {
                    out.insert(
                        id,
                        SessionInfo {
                            logged_in_ms: s.logged_in_ms,
                            last_active_ms: s.last_active_ms,
                            expires_at_ms: s.expires_at_ms,
                            user_agent: s.user_agent,
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    /// Sets a new password hash if the stored one is still `expected` (compare-and-set
    /// against a concurrent change); keeps only the caller's session and revokes every
    /// API token (whoever knew the old password may have made some).
    pub(crate) async fn replace_password(
        &self,
        expected: Option<String>,
        new_hash: String,
        caller: &Principal,
    ) -> Result<u64, RpcError> {
        let keep = match caller {
            Principal::Session { id } => Some(id.clone()),
            _ => None,
        };
        let store = self.store.clone();
        blocking("change password", move || {
            store
                .mutate(|d| {
                    let current = d.pointer(PASSWORD_HASH).and_then(Value::as_str);
                    if current.map(str::to_owned) != expected {
                        return Err(RpcError::new(
                            ErrorCode::Database,
                            "the password changed concurrently; try again",
                        ));
                    }
                    doc::set(d, PASSWORD_HASH, Value::String(new_hash))?;
                    doc::object_mut(d, SESSIONS)?
                        .retain(|id, _| keep.as_deref() == Some(id.as_str()));
                    doc::object_mut(d, API_TOKENS)?.clear();
                    Ok(())
                })
                .map(|m| m.revision)
                .map_err(mutate_error("change password"))
        })
        .await
    }

    /// The stored password hash, if set.
    pub(crate) fn password_hash(&self) -> Result<Option<String>, RpcError> {
        Ok(self
            .read(PASSWORD_HASH, "read password hash")?
            .and_then(|v| v.as_str().map(str::to_owned)))
    }

    /// Creates an API token; the secret is returned once and only its hash stored.
    pub(crate) async fn create_token(
        &self,
        name: String,
        scope: TokenScope,
    ) -> Result<(TokenCreated, u64), RpcError> {
        let token = format!(
            "{API_TOKEN_PREFIX}{}",
            secret::random_token().map_err(RpcError::from)?
        );
        let hash = secret::sha256_hex(&token);
        let id = hash[..16].to_owned();
        let stored = StoredToken {
            name: name.clone(),
            hash,
            scope,
            created_ms: now_ms(),
            last_used_ms: None,
        };
        let value = serde_json::to_value(&stored).map_err(|_| RpcError::internal())?;
        let store = self.store.clone();
        let key = id.clone();
        let rev = blocking("create API token", move || {
            store
                .mutate(|d| {
                    doc::object_mut(d, API_TOKENS)?.insert(key, value);
                    Ok(())
                })
                .map(|m| m.revision)
                .map_err(mutate_error("create API token"))
        })
        .await?;
        Ok((
            TokenCreated {
                id,
                name,
                scope,
                token,
            },
            rev,
        ))
    }

    /// All API tokens (without secrets), oldest first.
    pub(crate) fn list_tokens(&self) -> Result<Vec<TokenInfo>, RpcError> {
        let all = self
            .read(API_TOKENS, "list API tokens")?
            .unwrap_or(Value::Null);
        let mut out: Vec<TokenInfo> = match all {
            Value::Object(map) => map
                .into_iter()
                .filter_map(|(id, v)| {
                    let t = serde_json::from_value::<StoredToken>(v).ok()?;
                    Some(TokenInfo {
                        id,
                        name: t.name,
                        scope: t.scope,
                        created_ms: t.created_ms,
                        last_used_ms: t.last_used_ms,
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        out.sort_by_key(|t| t.created_ms);
        Ok(out)
    }

    /// Revokes a token; `NotFound` if there is none with that id.
    pub(crate) async fn revoke_token(&self, id: String) -> Result<u64, RpcError> {
        let store = self.store.clone();
        blocking("revoke API token", move || {
            store
                .mutate(|d| {
                    doc::object_mut(d, API_TOKENS)?
                        .remove(&id)
                        .map(|_| ())
                        .ok_or_else(|| {
                            RpcError::new(ErrorCode::NotFound, format!("no API token {id:?}"))
                                .with("what", "apiToken")
                        })
                })
                .map(|m| m.revision)
                .map_err(mutate_error("revoke API token"))
        })
        .await
    }

    pub(crate) fn token_exists(&self, id: &str) -> bool {
        matches!(
            self.read(&format!("{API_TOKENS}/{id}"), "read API token"),
            Ok(Some(_))
        )
    }

    /// The id and scope of the token, if valid; refreshes its last-use time when stale.
    pub(crate) async fn verify_api_token(
        &self,
        token: &str,
    ) -> Result<Option<(String, TokenScope)>, RpcError> {
        if !token.starts_with(API_TOKEN_PREFIX) {
            return Ok(None);
        }
        let hash = secret::sha256_hex(token);
        let id = hash[..16].to_owned();
        let pointer = format!("{API_TOKENS}/{id}");
        let Some(v) = self.read(&pointer, "read API token")? else {
            return Ok(None);
        };
        let Ok(t) = serde_json::from_value::<StoredToken>(v) else {
            return Ok(None);
        };
        if !secret::constant_time_eq(t.hash.as_bytes(), hash.as_bytes()) {
            return Ok(None);
        }
        let now = now_ms();
        if now.saturating_sub(t.last_used_ms.unwrap_or(0)) > 60_000 {
            let store = self.store.clone();
            blocking("touch API token", move || {
                store
                    .mutate(|d| {
                        if let Some(t) = d.pointer_mut(&pointer) {
                            t["lastUsedMs"] = Value::from(now);
                        }
                        Ok::<_, RpcError>(())
                    })
                    .map(|_| ())
                    .map_err(mutate_error("touch API token"))
            })
            .await?;
        }
        Ok(Some((id, t.scope)))
    }
}

fn rate_limited(wait: u64) -> RpcError {
    RpcError::new(
        ErrorCode::RateLimited,
        format!("too many failed login attempts; retry after {wait} s"),
    )
    .with("retryAfter", wait)
}
