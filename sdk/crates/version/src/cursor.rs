//! Hand-written recursive-descent primitives shared by every parser of the crate.
//!
//! The grammar only uses ASCII, so the cursor walks bytes; a non-ASCII character is
//! reported as an unexpected `char` (decoded from the input for the message). Positions
//! are byte offsets. No function here panics: every index is checked with `get`.

use crate::error::{ParseError, ParseErrorKind, ParseTarget};
use crate::extended::{ExtendedVersion, Flavor};
use crate::version::{PreReleaseSegment, Version};

/// Whether a downstream version is required after the upstream one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Downstream {
    /// Standalone extended versions: `1.2.3` alone is an error.
    Required,
    /// Range anchors: `>=1.2.3` means `>=1.2.3:0`.
    Optional,
}

pub(crate) struct Cursor<'a> {
    input: &'a str,
    pos: usize,
    target: ParseTarget,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(input: &'a str, target: ParseTarget) -> Self {
        Self {
            input,
            pos: 0,
            target,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.input.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.input.as_bytes().get(self.pos + ahead).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    pub(crate) fn bump(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.input.len());
    }

    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn eat_str(&mut self, s: &str) -> bool {
        let rest = self.input.as_bytes().get(self.pos..).unwrap_or_default();
        if rest.starts_with(s.as_bytes()) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    pub(crate) fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    pub(crate) fn error_at(&self, position: usize, kind: ParseErrorKind) -> ParseError {
        ParseError::new(self.target, self.input, position, kind)
    }

    /// "Unexpected character" at the cursor, or "unexpected end" when at the end.
    pub(crate) fn unexpected(&self, expected: &'static str) -> ParseError {
        let kind = match self.input.get(self.pos..).and_then(|s| s.chars().next()) {
            Some(found) => ParseErrorKind::UnexpectedChar { found, expected },
            None => ParseErrorKind::UnexpectedEnd { expected },
        };
        self.error_at(self.pos, kind)
    }

    /// Fails unless the whole input was consumed.
    pub(crate) fn expect_end(&self) -> Result<(), ParseError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.unexpected("end of input"))
        }
    }

    /// Consumes a maximal run of bytes matching `pred` and returns it.
    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
        // Only ASCII bytes were consumed, so both ends are char boundaries.
        self.input.get(start..self.pos).unwrap_or("")
    }

    /// `0 | [1-9][0-9]*` as a `u64`.
    fn number(&mut self) -> Result<u64, ParseError> {
        let start = self.pos;
        let digits = self.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() {
            return Err(self.unexpected("a digit"));
        }
        digits_to_u64(digits).map_err(|kind| self.error_at(start, kind))
    }

    /// `N(.N)*[-pre(.pre)*]`.
    pub(crate) fn version(&mut self) -> Result<Version, ParseError> {
        let mut number = vec![self.number()?];
        while self.eat(b'.') {
            number.push(self.number()?);
        }
        let mut prerelease = Vec::new();
        if self.eat(b'-') {
            loop {
                prerelease.push(self.prerelease_segment()?);
                if !self.eat(b'.') {
                    break;
                }
            }
        }
        Ok(Version::from_validated(number, prerelease))
    }

    fn prerelease_segment(&mut self) -> Result<PreReleaseSegment, ParseError> {
        let start = self.pos;
        let text = self.take_while(is_prerelease_byte);
        if text.is_empty() {
            return Err(self.unexpected("a prerelease segment ([0-9A-Za-z-]+)"));
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            let n = digits_to_u64(text).map_err(|kind| self.error_at(start, kind))?;
            Ok(PreReleaseSegment::Numeric(n))
        } else {
            Ok(PreReleaseSegment::Alphanumeric(text.to_owned()))
        }
    }

    /// `[a-z]+`.
    pub(crate) fn flavor(&mut self) -> Result<Flavor, ParseError> {
        let text = self.take_while(|b| b.is_ascii_lowercase());
        if text.is_empty() {
            return Err(self.unexpected("a lowercase ASCII letter"));
        }
        Ok(Flavor::from_validated(text.to_owned()))
    }

    /// `[#flavor:]upstream[:downstream]`, the downstream being mandatory or not.
    pub(crate) fn extended_version(
        &mut self,
        downstream: Downstream,
    ) -> Result<ExtendedVersion, ParseError> {
        let flavor = if self.eat(b'#') {
            let flavor = self.flavor()?;
            if !self.eat(b':') {
                return Err(self.unexpected("`:` after the flavor"));
            }
            Some(flavor)
        } else {
            None
        };
        self.extended_version_after_flavor(flavor, downstream)
    }

    /// The rest of an extended version once `#flavor:` (if any) has been consumed.
    pub(crate) fn extended_version_after_flavor(
        &mut self,
        flavor: Option<Flavor>,
        downstream: Downstream,
    ) -> Result<ExtendedVersion, ParseError> {
        let upstream = self.version()?;
        let down = if self.eat(b':') {
            self.version()?
        } else if downstream == Downstream::Required {
            return Err(if self.at_end() {
                self.error_at(self.pos, ParseErrorKind::MissingDownstream)
            } else {
                self.unexpected("`:` and the downstream version")
            });
        } else {
            Version::default()
        };
        Ok(ExtendedVersion::new(upstream, down).with_flavor(flavor))
    }
}

pub(crate) fn is_prerelease_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// Parses a non-empty run of ASCII digits, rejecting leading zeros and overflow.
fn digits_to_u64(digits: &str) -> Result<u64, ParseErrorKind> {
    if digits.len() > 1 && digits.starts_with('0') {
        return Err(ParseErrorKind::LeadingZero);
    }
    digits.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)
            .and_then(|acc| acc.checked_add(u64::from(b - b'0')))
            .ok_or(ParseErrorKind::NumberOverflow)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;

    #[test]
    fn digits_reject_leading_zero_and_overflow() {
        assert_eq!(digits_to_u64("0"), Ok(0));
        assert_eq!(digits_to_u64("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            digits_to_u64("18446744073709551616"),
            Err(ParseErrorKind::NumberOverflow)
        );
        assert_eq!(digits_to_u64("007"), Err(ParseErrorKind::LeadingZero));
    }
}
