//! Payloads of `setup.*` methods.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Result of `setup.status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetupStatus {
    /// True once `setup.complete` has succeeded.
    pub setup_complete: bool,
}

/// Params of `setup.complete`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetupCompleteParams {
    /// The master password (at least 8 characters).
    pub password: String,
    /// Hostname: 1–63 lowercase letters, digits or dashes, not starting or ending with a
    /// dash.
    pub hostname: String,
    /// The first-boot setup code (`ABCD-EFGH-JKLM`, case, dashes and spaces ignored):
    /// printed on the server's console and written to a file on its boot partition.
    /// Required unless the caller holds the local cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_code: Option<String>,
}

impl std::fmt::Debug for SetupCompleteParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetupCompleteParams")
            .field("password", &"<redacted>")
            .field("hostname", &self.hostname)
            .field(
                "setup_code",
                &self.setup_code.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Checks a password against the policy; the error says why it is refused.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.len() > 1024 {
        return Err("password must be at most 1024 bytes".into());
    }
    Ok(())
}

/// Checks a hostname (one DNS label); the error says why it is refused.
pub fn check_hostname(hostname: &str) -> Result<(), String> {
    let ok = !hostname.is_empty()
        && hostname.len() <= 63
        && !hostname.starts_with('-')
        && !hostname.ends_with('-')
        && hostname
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(
            "hostname must be 1-63 lowercase letters, digits or dashes, \
             not starting or ending with a dash"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert!(check_hostname("hearth").is_ok());
        assert!(check_hostname("my-box-2").is_ok());
        for bad in ["", "-a", "a-", "Hearth", "a.b", "a b", &"a".repeat(64)] {
            assert!(check_hostname(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords() {
        assert!(check_password("12345678").is_ok());
        assert!(check_password("1234567").is_err());
        assert!(check_password(&"x".repeat(2000)).is_err());
    }

    #[test]
    fn debug_does_not_print_the_password_or_the_setup_code() {
        let p = SetupCompleteParams {
            password: "hunter2hunter2".into(),
            hostname: "h".into(),
            setup_code: Some("ABCD-EFGH-JKLM".into()),
        };
        assert!(!format!("{p:?}").contains("hunter2"));
        assert!(!format!("{p:?}").contains("ABCD"));
    }
}
