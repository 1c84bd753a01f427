//! The one error type that crosses the wire: [`RpcError`] with a stable [`ErrorCode`].
//!
//! Wire shape (JSON-RPC 2.0 error object):
//! `{"code": 37, "message": "too many login attempts; retry after 8 s",
//!   "data": {"kind": "rateLimited", "retryable": true, "retryAfter": 8}}`.
//! `data.kind` and `data.retryable` are always present; other `data` keys depend on the
//! code and are documented on the variant.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Stable error codes. Append-only: a code never changes meaning.
///
/// Negative codes are JSON-RPC 2.0's own; positive ones follow StartOS's `ErrorKind`
/// numbering where a matching kind exists, so StartOS-style clients keep working.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// -32700: the body is not valid JSON (or nests deeper than the limit).
    ParseError,
    /// -32600: not a JSON-RPC request object, empty batch, or body too large.
    InvalidRequest,
    /// -32601: no method with that name.
    MethodNotFound,
    /// -32602: params do not match the method's schema; `data.path` names the field.
    InvalidParams,
    /// -32603: a bug or an unexpected server-side failure (details are in the server log).
    Internal,
    /// 6: the addressed thing does not exist (`data.what`).
    NotFound,
    /// 7: the password is wrong.
    IncorrectPassword,
    /// 29: the state database failed; retrying may help.
    Database,
    /// 34: not authenticated or not allowed (`data.reason`: `missing`, `expired`,
    /// `invalidToken`, `foreignOrigin`).
    Unauthorized,
    /// 37: too many attempts; `data.retryAfter` is the number of seconds to wait.
    RateLimited,
    /// 40: the server is not set up yet (no password); call `setup.complete` first.
    SetupRequired,
    /// 53: setup was already completed; it can only run once.
    AlreadySetUp,
    /// 71: the operation timed out.
    Timeout,
}

impl ErrorCode {
    /// Every code, for documentation and round-trip tests.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::ParseError,
        ErrorCode::InvalidRequest,
        ErrorCode::MethodNotFound,
        ErrorCode::InvalidParams,
        ErrorCode::Internal,
        ErrorCode::NotFound,
        ErrorCode::IncorrectPassword,
        ErrorCode::Database,
        ErrorCode::Unauthorized,
        ErrorCode::RateLimited,
        ErrorCode::SetupRequired,
        ErrorCode::AlreadySetUp,
        ErrorCode::Timeout,
    ];

    /// The numeric code on the wire.
    pub const fn code(self) -> i32 {
        match self {
            ErrorCode::ParseError => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::Internal => -32603,
            ErrorCode::NotFound => 6,
            ErrorCode::IncorrectPassword => 7,
            ErrorCode::Database => 29,
            ErrorCode::Unauthorized => 34,
            ErrorCode::RateLimited => 37,
            ErrorCode::SetupRequired => 40,
            ErrorCode::AlreadySetUp => 53,
            ErrorCode::Timeout => 71,
        }
    }

    /// A short camelCase name (`data.kind` on the wire).
    pub const fn kind(self) -> &'static str {
        match self {
            ErrorCode::ParseError => "parseError",
            ErrorCode::InvalidRequest => "invalidRequest",
            ErrorCode::MethodNotFound => "methodNotFound",
            ErrorCode::InvalidParams => "invalidParams",
            ErrorCode::Internal => "internal",
            ErrorCode::NotFound => "notFound",
            ErrorCode::IncorrectPassword => "incorrectPassword",
            ErrorCode::Database => "database",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::RateLimited => "rateLimited",
            ErrorCode::SetupRequired => "setupRequired",
            ErrorCode::AlreadySetUp => "alreadySetUp",
            ErrorCode::Timeout => "timeout",
        }
    }

    /// Whether the same call may succeed if simply retried later.
    pub const fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Database | ErrorCode::RateLimited | ErrorCode::Timeout
        )
    }

    /// The code for a wire number, if this version knows it.
    pub fn from_code(code: i32) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.code() == code)
    }
}

/// An error as sent to clients.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    /// Numeric code ([`ErrorCode::code`]); kept raw so newer codes survive a round trip.
    pub code: i32,
    /// Human-readable message saying what went wrong and, where possible, what to do.
    pub message: String,
    /// Structured details: always `kind` and `retryable`, plus code-specific keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with `code` and `message`; `data` gets `kind` and `retryable`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> RpcError {
        let mut data = Map::new();
        data.insert("kind".into(), Value::from(code.kind()));
        data.insert("retryable".into(), Value::from(code.retryable()));
        RpcError {
            code: code.code(),
            message: message.into(),
            data: Some(Value::Object(data)),
        }
    }

    /// Adds one key to `data`.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> RpcError {
        if let Some(Value::Object(map)) = &mut self.data {
            map.insert(key.to_owned(), value.into());
        } else {
            let mut map = Map::new();
            map.insert(key.to_owned(), value.into());
            self.data = Some(Value::Object(map));
        }
        self
    }

    /// The known code, if any.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }

    /// A `data` field, if present.
    pub fn data_field(&self, key: &str) -> Option<&Value> {
        self.data.as_ref().and_then(|d| d.get(key))
    }

    /// `-32602` naming the offending field (`path`, e.g. `"message"` or `"ids[2]"`).
    pub fn invalid_params(path: &str, detail: impl std::fmt::Display) -> RpcError {
        let at = if path.is_empty() || path == "." {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        RpcError::new(
            ErrorCode::InvalidParams,
            format!("invalid params{at}: {detail}"),
        )
        .with("path", path)
    }

    /// `34 unauthorized` with a machine-readable reason.
    pub fn unauthorized(reason: &str, message: impl Into<String>) -> RpcError {
        RpcError::new(ErrorCode::Unauthorized, message).with("reason", reason)
    }

    /// `-32603`; the message must not carry internal details (log them instead).
    pub fn internal() -> RpcError {
        RpcError::new(
            ErrorCode::Internal,
            "internal error; the server log has details",
        )
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn codes_and_kinds_are_unique() {
        let codes: BTreeSet<i32> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
        let kinds: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.kind()).collect();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
        assert_eq!(kinds.len(), ErrorCode::ALL.len());
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(c.code()), Some(*c));
        }
    }

    #[test]
    fn codes_are_stable() {
        // Append-only: these numbers are part of the wire contract.
        assert_eq!(ErrorCode::InvalidParams.code(), -32602);
        assert_eq!(ErrorCode::Unauthorized.code(), 34);
        assert_eq!(ErrorCode::RateLimited.code(), 37);
        assert_eq!(ErrorCode::SetupRequired.code(), 40);
        assert_eq!(ErrorCode::AlreadySetUp.code(), 53);
    }

    #[test]
    fn wire_shape_has_kind_retryable_and_extra_data() {
        let e = RpcError::new(ErrorCode::RateLimited, "slow down").with("retryAfter", 8);
        let v = serde_json::to_value(&e).unwrap_or_default();
        assert_eq!(v["code"], 37);
        assert_eq!(v["data"]["kind"], "rateLimited");
        assert_eq!(v["data"]["retryable"], true);
        assert_eq!(v["data"]["retryAfter"], 8);
        let back: RpcError = serde_json::from_value(v).unwrap_or_else(|_| RpcError::internal());
        assert_eq!(back, e);
    }

    #[test]
    fn invalid_params_names_the_field() {
        let e = RpcError::invalid_params("message", "expected a string");
        assert!(e.message.contains("`message`"), "{}", e.message);
        assert_eq!(e.data_field("path"), Some(&Value::from("message")));
    }
}
