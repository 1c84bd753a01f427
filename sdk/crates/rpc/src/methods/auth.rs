//! Payloads of `auth.*` methods.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Params of `auth.login`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginParams {
    /// The master password.
    pub password: String,
}

impl std::fmt::Debug for LoginParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginParams { password: <redacted> }")
    }
}

/// Result of `auth.login` (the secret token travels only in the `Set-Cookie` header).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResult {
    /// Id of the new session (a hash of its token), as listed by `auth.session.list`.
    pub session_id: String,
    /// When the session ends at the latest, milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
}

/// Result of `auth.session.list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionList {
    /// The caller's session id, if the caller is a browser session.
    pub current: Option<String>,
    /// Sessions by id.
    pub sessions: BTreeMap<String, SessionInfo>,
}

/// One session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// Login time, ms since the Unix epoch.
    pub logged_in_ms: u64,
    /// Last request, ms since the Unix epoch (updated at most once a minute).
    pub last_active_ms: u64,
    /// Absolute expiry, ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// `User-Agent` at login.
    pub user_agent: Option<String>,
}

/// Params of `auth.session.kill`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionKillParams {
    /// Session ids to log out.
    pub ids: Vec<String>,
}

/// Params of `auth.password.change`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordChangeParams {
    /// The current password.
    pub old_password: String,
    /// The new password (at least 8 characters).
    pub new_password: String,
}

impl std::fmt::Debug for PasswordChangeParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordChangeParams { <redacted> }")
    }
}

/// Params of `auth.token.create`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenCreateParams {
    /// What the token is for (1–64 characters), e.g. `backup-script`.
    pub name: String,
    /// What the token may do: `read` (methods that change nothing and reveal no
    /// secrets, e.g. for a monitoring agent) or `admin` (everything). Required: the
    /// person creating the token chooses its privilege.
    pub scope: TokenScope,
}

/// What an API token may do: `read` = only methods that change nothing and reveal no
/// secrets (no logs; see `MethodInfo::read_scope`), `admin` = every method.
// No doc comments on the variants: the schema stays a plain string `enum`, which the
// CLI turns into `--scope read|admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub enum TokenScope {
    Read,
    Admin,
}

impl TokenScope {
    /// The wire name (`"read"` / `"admin"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Admin => "admin",
        }
    }
}

/// Result of `auth.token.create`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenCreated {
    /// Token id (for `auth.token.revoke`).
    pub id: String,
    /// The name given.
    pub name: String,
    /// What the token may do.
    pub scope: TokenScope,
    /// The secret; send it as `Authorization: Bearer <token>`. Shown only once.
    pub token: String,
}

impl std::fmt::Debug for TokenCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCreated")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// One API token as listed (no secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// Token id.
    pub id: String,
    /// Name given at creation.
    pub name: String,
    /// What the token may do.
    pub scope: TokenScope,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// Last use, ms since the Unix epoch (updated at most once a minute).
    pub last_used_ms: Option<u64>,
}

/// Params of `auth.token.revoke`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRevokeParams {
    /// Id of the token to revoke.
    pub id: String,
}
