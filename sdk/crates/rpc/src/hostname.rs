//! [`Hostname`]: this server's name, one DNS label, validated at the edge.
//!
//! # Invariants
//! A `Hostname` is 1–63 bytes of `a-z`, `0-9` and `-`, neither starting nor ending with a
//! dash (RFC 1123 label, lowercase). Parsing lowercases ASCII letters first (`MyBox` is
//! `mybox`: DNS names are case-insensitive), and refuses everything else with a
//! [`HostnameError`] saying why. It is what the kernel gets (`sethostname`) and what mDNS
//! announces as `<hostname>.local`, so the same rules hold for both.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest DNS label, in bytes.
pub const MAX_LABEL: usize = 63;

/// Why a hostname is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostnameError {
    /// The refused input (truncated to 80 characters).
    pub input: String,
    /// The rule it breaks.
    pub reason: &'static str,
}

impl fmt::Display for HostnameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hostname {:?} refused: {}; it must be 1-63 letters, digits or dashes, \
             not starting or ending with a dash",
            self.input, self.reason
        )
    }
}

impl std::error::Error for HostnameError {}

/// A validated hostname (one lowercase DNS label).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hostname(String);

impl Hostname {
    /// Parses `s` (ASCII letters are lowercased).
    pub fn parse(s: &str) -> Result<Hostname, HostnameError> {
        let refuse = |reason| HostnameError {
            input: s.chars().take(80).collect(),
            reason,
        };
        if s.is_empty() {
            return Err(refuse("it is empty"));
        }
        if s.len() > MAX_LABEL {
            return Err(refuse("it is longer than 63 bytes"));
        }
        let lower = s.to_ascii_lowercase();
        if !lower
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(refuse(
                "it contains a character other than a letter, a digit or a dash (one label, no dots)",
            ));
        }
        if lower.starts_with('-') || lower.ends_with('-') {
            return Err(refuse("it starts or ends with a dash"));
        }
        Ok(Hostname(lower))
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<label>-<n>`: the name mDNS falls back to when the LAN already has this one,
    /// shortened so the result is still a valid label.
    pub fn with_suffix(&self, n: u32) -> Hostname {
        let suffix = format!("-{n}");
        let keep = MAX_LABEL.saturating_sub(suffix.len()).min(self.0.len());
        let base = self.0[..keep].trim_end_matches('-');
        Hostname(format!("{base}{suffix}"))
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Hostname {
    type Err = HostnameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hostname::parse(s)
    }
}

impl TryFrom<String> for Hostname {
    type Error = HostnameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Hostname::parse(&s)
    }
}

impl From<Hostname> for String {
    fn from(h: Hostname) -> String {
        h.0
    }
}

impl JsonSchema for Hostname {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Hostname".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_LABEL,
            "pattern": "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
            "description": "One DNS label: 1-63 letters, digits or dashes, not starting or \
                ending with a dash; stored lowercased."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_labels_and_lowercases() {
        assert_eq!(Hostname::parse("hearth").unwrap().as_str(), "hearth");
        assert_eq!(Hostname::parse("My-Box-2").unwrap().as_str(), "my-box-2");
        assert_eq!(Hostname::parse("0").unwrap().as_str(), "0");
        assert!(Hostname::parse(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn refuses_with_the_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("-a", "dash"),
            ("a-", "dash"),
            ("a.b", "character"),
            ("a b", "character"),
            ("héarth", "character"),
            ("a_b", "character"),
        ] {
            let e = Hostname::parse(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
        }
        assert!(
            Hostname::parse(&"a".repeat(64))
                .unwrap_err()
                .reason
                .contains("63")
        );
    }

    #[test]
    fn serde_validates() {
        let h: Hostname = serde_json::from_str("\"Box\"").unwrap();
        assert_eq!(serde_json::to_string(&h).unwrap(), "\"box\"");
        assert!(serde_json::from_str::<Hostname>("\"a.b\"").is_err());
    }

    #[test]
    fn suffix_keeps_a_valid_label() {
        let h = Hostname::parse("hearth").unwrap();
        assert_eq!(h.with_suffix(2).as_str(), "hearth-2");
        let long = Hostname::parse(&"a".repeat(63)).unwrap();
        let s = long.with_suffix(12);
        assert_eq!(s.as_str().len(), 63);
        assert!(s.as_str().ends_with("-12"));
    }

    proptest! {
        #[test]
        fn parse_agrees_with_the_rules(s in "[A-Za-z0-9.\\-_ ]{0,70}") {
            let lower = s.to_ascii_lowercase();
            let valid = (1..=63).contains(&s.len())
                && lower.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !lower.starts_with('-') && !lower.ends_with('-');
            match Hostname::parse(&s) {
                Ok(h) => {
                    prop_assert!(valid);
                    prop_assert_eq!(h.as_str(), lower.as_str());
                    // Idempotent, and every suffix is valid too.
                    prop_assert_eq!(Hostname::parse(h.as_str()).unwrap(), h.clone());
                    prop_assert!(Hostname::parse(h.with_suffix(99).as_str()).is_ok());
                }
                Err(_) => prop_assert!(!valid),
            }
        }
    }
}
