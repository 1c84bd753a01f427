//! Human-written durations (`500ms`, `30s`, `5m`, `1h`) for the service spec.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as a whole number and a unit: `ms`, `s`, `m` or `h`.
///
/// Serialises in the largest unit that represents it exactly (`90s` stays `90s`,
/// `120s` becomes `2m`), so written specs are canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationSpec(Duration);

/// A duration text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {text:?}: expected a whole number followed by ms, s, m or h (e.g. `30s`)"
)]
pub struct DurationParseError {
    text: String,
}

const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

impl DurationSpec {
    /// A duration of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// A duration of whole milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self(Duration::from_millis(millis))
    }

    /// The duration.
    pub const fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for DurationSpec {
    type Err = DurationParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || DurationParseError {
            text: text.to_owned(),
        };
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (number, unit) = text.split_at(split);
        if number.is_empty() {
            return Err(err());
        }
        let number: u64 = number.parse().map_err(|_| err())?;
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(err)?;
        let millis = number.checked_mul(scale).ok_or_else(err)?;
        Ok(Self(Duration::from_millis(millis)))
    }
}

impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        for (name, scale) in UNITS {
            let scale = u128::from(scale);
            if millis != 0 && millis.is_multiple_of(scale) {
                return write!(f, "{}{name}", millis / scale);
            }
        }
        write!(f, "{millis}ms")
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for DurationSpec {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(ms|s|m|h)$",
            "description": "A whole number followed by a unit: ms, s, m or h (e.g. `30s`)."
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!("250ms".parse(), Ok(DurationSpec::from_millis(250)));
        assert_eq!("30s".parse(), Ok(DurationSpec::from_secs(30)));
        assert_eq!("5m".parse(), Ok(DurationSpec::from_secs(300)));
        assert_eq!("2h".parse(), Ok(DurationSpec::from_secs(7200)));
    }

    #[test]
    fn refuses_malformed_text() {
        for bad in [
            "",
            "s",
            "30",
            "30 s",
            "1.5s",
            "-1s",
            "30sec",
            "99999999999999999999h",
        ] {
            assert!(bad.parse::<DurationSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn prints_in_the_largest_exact_unit() {
        assert_eq!(DurationSpec::from_secs(120).to_string(), "2m");
        assert_eq!(DurationSpec::from_secs(90).to_string(), "90s");
        assert_eq!(DurationSpec::from_millis(1500).to_string(), "1500ms");
        assert_eq!(DurationSpec::from_millis(0).to_string(), "0ms");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn display_parses_back_to_the_same_duration(millis in 0u64..u64::MAX / 3_600_000) {
            let d = DurationSpec::from_millis(millis);
            prop_assert_eq!(d.to_string().parse::<DurationSpec>().unwrap(), d);
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,24}") {
            let _ = text.parse::<DurationSpec>();
        }
    }
}
