//! [`ExtendedVersion`] (`[#flavor:]upstream:downstream`) and [`Flavor`].
//!
//! Package versions are extended versions: the upstream project's version, the
//! packager's downstream revision, and an optional flavor naming a variant of the
//! upstream software (`#knots:27.1:0` vs `27.1:0`). Versions of different flavors are
//! incomparable, so the order is partial ([`PartialOrd`] only).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::cursor::{Cursor, Downstream};
use crate::error::{ParseError, ParseErrorKind, ParseTarget};
use crate::version::Version;

/// A flavor name: one or more lowercase ASCII letters (`bitcoin`, `knots`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Flavor(String);

impl Flavor {
    /// Caller guarantees `[a-z]+`.
    pub(crate) fn from_validated(name: String) -> Self {
        Self(name)
    }

    /// The flavor name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Flavor {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut cursor = Cursor::new(s, ParseTarget::Flavor);
        let flavor = cursor.flavor()?;
        cursor.expect_end()?;
        Ok(flavor)
    }
}

/// `[#flavor:]upstream:downstream`, e.g. `1.2.3:0`, `1.0.0-rc.1:0`, `#bitcoin:21.0:1`.
///
/// Equality and hashing are semantic like [`Version`]'s (`1.2:0 == 1.2.0:0.0`) and
/// include the flavor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ExtendedVersion {
    flavor: Option<Flavor>,
    upstream: Version,
    downstream: Version,
}

impl ExtendedVersion {
    /// An unflavored extended version.
    pub fn new(upstream: Version, downstream: Version) -> Self {
        Self {
            flavor: None,
            upstream,
            downstream,
        }
    }

    /// The same version with the given flavor (`None` removes it).
    #[must_use]
    pub fn with_flavor(mut self, flavor: Option<Flavor>) -> Self {
        self.flavor = flavor;
        self
    }

    /// The flavor, if any.
    pub fn flavor(&self) -> Option<&Flavor> {
        self.flavor.as_ref()
    }

    /// The upstream project's version.
    pub fn upstream(&self) -> &Version {
        &self.upstream
    }

    /// The packager's revision.
    pub fn downstream(&self) -> &Version {
        &self.downstream
    }

    /// Converts a legacy (StartOS 0.3) emver version `major.minor.patch[.revision]` to
    /// `major.minor.patch:revision` (revision `0` when absent): `1.2.3.4` → `1.2.3:4`.
    ///
    /// # Errors
    /// [`ParseErrorKind::NotEmver`] when the text is a version with another number of
    /// segments or a prerelease, and the usual version errors otherwise.
    pub fn from_legacy_emver(s: &str) -> Result<Self, ParseError> {
        let mut cursor = Cursor::new(s, ParseTarget::LegacyEmver);
        let version = cursor.version()?;
        cursor.expect_end()?;
        match (version.number(), version.is_prerelease()) {
            ([major, minor, patch], false) => Ok(Self::new(
                Version::release([*major, *minor, *patch]),
                Version::default(),
            )),
            ([major, minor, patch, revision], false) => Ok(Self::new(
                Version::release([*major, *minor, *patch]),
                Version::release([*revision]),
            )),
            _ => Err(cursor.error_at(0, ParseErrorKind::NotEmver)),
        }
    }

    /// Compares upstream then downstream, ignoring flavors (the total order used by
    /// range anchors once flavors are known to match).
    pub(crate) fn cmp_ignoring_flavor(&self, other: &Self) -> Ordering {
        self.upstream
            .cmp(&other.upstream)
            .then_with(|| self.downstream.cmp(&other.downstream))
    }
}

impl PartialOrd for ExtendedVersion {
    /// `None` when the flavors differ; otherwise upstream, then downstream.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (self.flavor == other.flavor).then(|| self.cmp_ignoring_flavor(other))
    }
}

impl fmt::Display for ExtendedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(flavor) = &self.flavor {
            write!(f, "#{flavor}:")?;
        }
        write!(f, "{}:{}", self.upstream, self.downstream)
    }
}

impl FromStr for ExtendedVersion {
    type Err = ParseError;

    /// Parses `[#flavor:]upstream:downstream`; the downstream part is mandatory.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut cursor = Cursor::new(s, ParseTarget::ExtendedVersion);
        let version = cursor.extended_version(Downstream::Required)?;
        cursor.expect_end()?;
        Ok(version)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;

    #[test]
    fn flavor_accepts_only_lowercase_letters() {
        assert_eq!("knots".parse::<Flavor>().unwrap().as_str(), "knots");
        for bad in ["", "Knots", "kn0ts", "kn-ots", "knots "] {
            assert!(bad.parse::<Flavor>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn missing_downstream_is_named() {
        let err = "1.2.3".parse::<ExtendedVersion>().unwrap_err();
        assert_eq!(err.kind(), &ParseErrorKind::MissingDownstream);
        assert_eq!(err.position(), 5);
    }

    #[test]
    fn legacy_emver_converts_revision_to_downstream() {
        let convert = |s| ExtendedVersion::from_legacy_emver(s).map(|v| v.to_string());
        assert_eq!(convert("1.2.3.4").unwrap(), "1.2.3:4");
        assert_eq!(convert("0.3.5").unwrap(), "0.3.5:0");
        for bad in ["1.2", "1.2.3.4.5", "1.2.3-rc", "1.2.3:0"] {
            assert!(convert(bad).is_err(), "{bad}");
        }
        let err = ExtendedVersion::from_legacy_emver("1.2").unwrap_err();
        assert_eq!(err.kind(), &ParseErrorKind::NotEmver);
        assert_eq!(err.target(), ParseTarget::LegacyEmver);
    }

    #[test]
    fn flavor_requires_colon_and_version() {
        assert!("#bitcoin".parse::<ExtendedVersion>().is_err());
        assert!("#bitcoin:21.0".parse::<ExtendedVersion>().is_err());
        assert!("#:21.0:1".parse::<ExtendedVersion>().is_err());
        assert!("#Bitcoin:21.0:1".parse::<ExtendedVersion>().is_err());
    }
}
