//! Errors of this crate: one for parsing text, one for building values from parts.

use std::fmt;

/// Longest input (in bytes) kept verbatim inside a [`ParseError`]; longer inputs are
/// cut at a character boundary and marked with `…` so that errors about hostile input
/// stay small.
const MAX_ECHOED_INPUT: usize = 96;

/// The kind of value a parse was attempting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseTarget {
    /// A plain [`Version`](crate::Version) such as `1.2.3-rc.1`.
    Version,
    /// An [`ExtendedVersion`](crate::ExtendedVersion) such as `#bitcoin:21.0:1`.
    ExtendedVersion,
    /// A [`VersionRange`](crate::VersionRange) such as `>=1.0.0:0 <2.0.0:0`.
    VersionRange,
    /// A [`Flavor`](crate::Flavor) such as `knots`.
    Flavor,
    /// A legacy emver version such as `1.2.3.4`
    /// ([`ExtendedVersion::from_legacy_emver`](crate::ExtendedVersion::from_legacy_emver)).
    LegacyEmver,
}

impl fmt::Display for ParseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Version => "version",
            Self::ExtendedVersion => "extended version",
            Self::VersionRange => "version range",
            Self::Flavor => "flavor",
            Self::LegacyEmver => "legacy emver version",
        })
    }
}

/// Why a parse failed, at the position carried by the enclosing [`ParseError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The input ended where more was required.
    #[error("unexpected end of input, expected {expected}")]
    UnexpectedEnd {
        /// What the parser was looking for.
        expected: &'static str,
    },
    /// A character that the grammar does not allow at this point.
    #[error("unexpected character {found:?}, expected {expected}")]
    UnexpectedChar {
        /// The offending character.
        found: char,
        /// What the parser was looking for.
        expected: &'static str,
    },
    /// A numeric segment such as `01` (only `0` itself may start with a zero).
    #[error("numeric segment has a leading zero")]
    LeadingZero,
    /// A numeric segment larger than `u64::MAX`.
    #[error("numeric segment does not fit in 64 bits")]
    NumberOverflow,
    /// A standalone extended version without its `:downstream` part (e.g. `1.2.3`
    /// instead of `1.2.3:0`).
    #[error("missing downstream version (write e.g. `1.2.3:0`)")]
    MissingDownstream,
    /// A `(` without its matching `)`.
    #[error("parenthesis opened at byte {open} is never closed")]
    UnclosedParenthesis {
        /// Byte offset of the `(`.
        open: usize,
    },
    /// A legacy emver version that is not `major.minor.patch[.revision]`.
    #[error("legacy emver needs 3 or 4 numeric segments and no prerelease")]
    NotEmver,
    /// A range nested (or chained) deeper than the parser accepts.
    #[error("range nests deeper than {max} levels")]
    TooDeep {
        /// The limit, [`MAX_RANGE_DEPTH`](crate::MAX_RANGE_DEPTH).
        max: usize,
    },
}

/// Failure to parse a version, extended version, range or flavor from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse {target} {input:?} at byte {position}: {kind}")]
pub struct ParseError {
    target: ParseTarget,
    input: String,
    position: usize,
    kind: ParseErrorKind,
}

impl ParseError {
    pub(crate) fn new(
        target: ParseTarget,
        input: &str,
        position: usize,
        kind: ParseErrorKind,
    ) -> Self {
        Self {
            target,
            input: echo(input),
            position,
            kind,
        }
    }

    /// What was being parsed.
    pub fn target(&self) -> ParseTarget {
        self.target
    }

    /// The input, cut to at most ~96 bytes (followed by `…`) when it was longer.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// Byte offset in the original input where the problem was detected.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Why the parse failed.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }
}

fn echo(input: &str) -> String {
    if input.len() <= MAX_ECHOED_INPUT {
        return input.to_owned();
    }
    let mut end = MAX_ECHOED_INPUT;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = input[..end].to_owned();
    out.push('…');
    out
}

/// Failure to build a [`Version`](crate::Version) from parts
/// ([`Version::from_parts`](crate::Version::from_parts)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildVersionError {
    /// The release part needs at least one numeric segment.
    #[error("cannot build version: no numeric segment")]
    EmptyRelease,
    /// A prerelease string segment that is empty, all digits, or contains characters
    /// outside `[0-9A-Za-z-]`.
    #[error("cannot build version: invalid prerelease segment {segment:?}")]
    InvalidPrereleaseSegment {
        /// The rejected segment.
        segment: String,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;

    #[test]
    fn long_inputs_are_cut_at_a_char_boundary() {
        let input = "é".repeat(200);
        let err = ParseError::new(ParseTarget::Version, &input, 0, ParseErrorKind::LeadingZero);
        assert!(err.input().len() <= MAX_ECHOED_INPUT + '…'.len_utf8());
        assert!(err.input().ends_with('…'));
        assert!(err.to_string().contains("cannot parse version"));
    }
}
