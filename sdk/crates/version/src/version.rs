//! [`Version`]: `N(.N)*[-pre(.pre)*]`, totally ordered.
//!
//! Invariants: at least one numeric segment; every alphanumeric prerelease segment is
//! non-empty, made of `[0-9A-Za-z-]` and not all digits (an all-digit segment is always
//! [`PreReleaseSegment::Numeric`]), so `Display` output parses back to an equal value
//! with the same text.
//!
//! Equality is *semantic*: `1.2 == 1.2.0` because missing segments count as zero. The
//! text is kept as written (`1.2.0` displays as `1.2.0`), and `Hash` ignores trailing
//! zero segments so that `Eq`, `Hash` and `Ord` agree.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::cursor::{Cursor, is_prerelease_byte};
use crate::error::{BuildVersionError, ParseError, ParseTarget};

/// One dot-separated part of a prerelease (`rc` and `1` in `1.0.0-rc.1`).
///
/// Ordering: every numeric segment sorts before every alphanumeric one; numbers compare
/// numerically, strings byte-wise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PreReleaseSegment {
    /// An all-digit segment without leading zeros.
    Numeric(u64),
    /// A segment of `[0-9A-Za-z-]+` containing at least one non-digit.
    Alphanumeric(String),
}

impl fmt::Display for PreReleaseSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Numeric(n) => write!(f, "{n}"),
            Self::Alphanumeric(s) => f.write_str(s),
        }
    }
}

/// A version `N(.N)*[-pre]` such as `1.2.3`, `0.4.0-beta.10` or `21`.
///
/// Numeric segments are `u64`; larger numbers are rejected by the parser with
/// [`ParseErrorKind::NumberOverflow`](crate::ParseErrorKind::NumberOverflow).
/// The default version is `0`.
#[derive(Debug, Clone)]
pub struct Version {
    number: Vec<u64>,
    prerelease: Vec<PreReleaseSegment>,
}

impl Version {
    /// Builds a version from its numeric segments and prerelease segments.
    ///
    /// # Errors
    /// [`BuildVersionError::EmptyRelease`] when `number` is empty and
    /// [`BuildVersionError::InvalidPrereleaseSegment`] for an alphanumeric segment that
    /// is empty, all digits, or has characters outside `[0-9A-Za-z-]`.
    pub fn from_parts(
        number: Vec<u64>,
        prerelease: Vec<PreReleaseSegment>,
    ) -> Result<Self, BuildVersionError> {
        if number.is_empty() {
            return Err(BuildVersionError::EmptyRelease);
        }
        for segment in &prerelease {
            if let PreReleaseSegment::Alphanumeric(s) = segment {
                let valid = !s.is_empty()
                    && s.bytes().all(is_prerelease_byte)
                    && !s.bytes().all(|b| b.is_ascii_digit());
                if !valid {
                    return Err(BuildVersionError::InvalidPrereleaseSegment { segment: s.clone() });
                }
            }
        }
        Ok(Self { number, prerelease })
    }

    /// A release version (no prerelease) from numeric segments; `[]` gives `0`.
    pub fn release(number: impl IntoIterator<Item = u64>) -> Self {
        let mut number: Vec<u64> = number.into_iter().collect();
        if number.is_empty() {
            number.push(0);
        }
        Self {
            number,
            prerelease: Vec::new(),
        }
    }

    /// Caller guarantees the invariants (used by the parser).
    pub(crate) fn from_validated(number: Vec<u64>, prerelease: Vec<PreReleaseSegment>) -> Self {
        Self { number, prerelease }
    }

    /// The numeric segments as written (never empty).
    pub fn number(&self) -> &[u64] {
        &self.number
    }

    /// The prerelease segments (empty for a release).
    pub fn prerelease(&self) -> &[PreReleaseSegment] {
        &self.prerelease
    }

    /// Whether this version has a prerelease part (`1.0.0-rc.1`).
    pub fn is_prerelease(&self) -> bool {
        !self.prerelease.is_empty()
    }

    /// The numeric segments without trailing zeros (`1.2.0` → `[1, 2]`, `0.0` → `[]`).
    pub(crate) fn significant_number(&self) -> &[u64] {
        let len = self
            .number
            .iter()
            .rposition(|&n| n != 0)
            .map_or(0, |i| i + 1);
        self.number.get(..len).unwrap_or_default()
    }
}

impl Default for Version {
    fn default() -> Self {
        Self::release([0])
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.number.len().max(other.number.len());
        let segment = |v: &Self, i: usize| v.number.get(i).copied().unwrap_or(0);
        (0..len)
            .map(|i| segment(self, i).cmp(&segment(other, i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
            .then_with(|| match (self.is_prerelease(), other.is_prerelease()) {
                (false, false) => Ordering::Equal,
                (false, true) => Ordering::Greater,
                (true, false) => Ordering::Less,
                (true, true) => self.prerelease.cmp(&other.prerelease),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.significant_number().hash(state);
        self.prerelease.hash(state);
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.number.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{n}")?;
        }
        for (i, segment) in self.prerelease.iter().enumerate() {
            f.write_str(if i == 0 { "-" } else { "." })?;
            write!(f, "{segment}")?;
        }
        Ok(())
    }
}

impl FromStr for Version {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut cursor = Cursor::new(s, ParseTarget::Version);
        let version = cursor.version()?;
        cursor.expect_end()?;
        Ok(version)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;
    use crate::ParseErrorKind;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn display_keeps_text_as_written() {
        for s in ["0", "1.2.0", "1.0.0-rc.1", "0.4.0-beta.10", "1-x-y.0.a1"] {
            assert_eq!(v(s).to_string(), s);
        }
    }

    #[test]
    fn trailing_zero_segments_are_equal_and_hash_alike() {
        use std::collections::HashSet;
        assert_eq!(v("1.2"), v("1.2.0"));
        let set: HashSet<Version> = [v("1.2"), v("1.2.0"), v("1.2.0.0")].into();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn rejects_malformed_versions_with_position() {
        let cases = [
            ("", 0),
            ("1.", 2),
            ("01", 0),
            ("1.02", 2),
            ("1.0-", 4),
            ("1.0-rc..1", 7),
            ("1.0-01", 4),
            ("1.0 ", 3),
            ("v1", 0),
        ];
        for (input, position) in cases {
            let err = input.parse::<Version>().unwrap_err();
            assert_eq!(err.position(), position, "{input:?}: {err}");
            assert_eq!(err.target(), ParseTarget::Version);
        }
        let err = "99999999999999999999".parse::<Version>().unwrap_err();
        assert_eq!(err.kind(), &ParseErrorKind::NumberOverflow);
    }

    #[test]
    fn from_parts_validates_prerelease() {
        let alpha = |s: &str| PreReleaseSegment::Alphanumeric(s.to_owned());
        assert!(Version::from_parts(vec![1], vec![alpha("rc")]).is_ok());
        assert_eq!(
            Version::from_parts(vec![], vec![]),
            Err(BuildVersionError::EmptyRelease)
        );
        for bad in ["", "12", "a.b", "é"] {
            assert!(
                Version::from_parts(vec![1], vec![alpha(bad)]).is_err(),
                "{bad:?}"
            );
        }
    }
}
