//! Parser for [`VersionRange`], compatible with StartOS's range grammar.
//!
//! The grammar is documented on [`VersionRange`].
//!
//! Depth is bounded by [`MAX_RANGE_DEPTH`] (parentheses, `!` and the left-folded chain
//! all count), so hostile input cannot overflow the stack in the parser, in `Drop`, in
//! `Display` or in `satisfies`.

use std::str::FromStr;

use crate::cursor::{Cursor, Downstream};
use crate::error::{ParseError, ParseErrorKind, ParseTarget};
use crate::range::{AnchorOp, VersionRange};

/// Deepest range tree the parser accepts; a chain `a b c …` of `n` atoms is `n` deep.
pub const MAX_RANGE_DEPTH: usize = 128;

#[derive(Clone, Copy)]
enum Combinator {
    And,
    Or,
}

impl FromStr for VersionRange {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parser = Parser {
            cursor: Cursor::new(s, ParseTarget::VersionRange),
        };
        let (range, _) = parser.range(0)?;
        parser.cursor.skip_whitespace();
        if parser.cursor.peek() == Some(b')') {
            return Err(parser.cursor.unexpected("end of input (unbalanced `)`)"));
        }
        parser.cursor.expect_end()?;
        Ok(range)
    }
}

struct Parser<'a> {
    cursor: Cursor<'a>,
}

/// A parsed subtree and its depth.
type Node = (VersionRange, usize);

impl Parser<'_> {
    fn check_depth(&self, depth: usize, at: usize) -> Result<(), ParseError> {
        if depth > MAX_RANGE_DEPTH {
            Err(self.cursor.error_at(
                at,
                ParseErrorKind::TooDeep {
                    max: MAX_RANGE_DEPTH,
                },
            ))
        } else {
            Ok(())
        }
    }

    /// `atom (sep atom)*`, stopping before `)` or the end of input.
    fn range(&mut self, level: usize) -> Result<Node, ParseError> {
        self.check_depth(level + 1, self.cursor.pos())?;
        self.cursor.skip_whitespace();
        let (mut acc, mut depth) = self.atom(level)?;
        let mut last_explicit: Option<Combinator> = None;
        loop {
            self.cursor.skip_whitespace();
            if self.cursor.at_end() || self.cursor.peek() == Some(b')') {
                return Ok((acc, depth));
            }
            let at = self.cursor.pos();
            let combinator = if self.cursor.eat_str("||") {
                last_explicit = Some(Combinator::Or);
                Combinator::Or
            } else if self.cursor.eat_str("&&") {
                last_explicit = Some(Combinator::And);
                Combinator::And
            } else {
                last_explicit.unwrap_or(Combinator::And)
            };
            self.cursor.skip_whitespace();
            let (rhs, rhs_depth) = self.atom(level)?;
            depth = depth.max(rhs_depth) + 1;
            self.check_depth(level + depth, at)?;
            let (a, b) = (Box::new(acc), Box::new(rhs));
            acc = match combinator {
                Combinator::And => VersionRange::And(a, b),
                Combinator::Or => VersionRange::Or(a, b),
            };
        }
    }

    fn atom(&mut self, level: usize) -> Result<Node, ParseError> {
        let start = self.cursor.pos();
        match self.cursor.peek() {
            Some(b'(') => {
                self.cursor.bump(1);
                let inner = self.range(level + 1)?;
                self.cursor.skip_whitespace();
                if self.cursor.eat(b')') {
                    Ok(inner)
                } else {
                    Err(self.cursor.error_at(
                        self.cursor.pos(),
                        ParseErrorKind::UnclosedParenthesis { open: start },
                    ))
                }
            }
            Some(b'*') => {
                self.cursor.bump(1);
                Ok((VersionRange::Any, 1))
            }
            Some(b'!') if self.cursor.peek_at(1) != Some(b'=') => {
                self.cursor.bump(1);
                self.cursor.skip_whitespace();
                if self.cursor.peek().is_some_and(starts_atom) {
                    self.check_depth(level + 2, start)?;
                    let (inner, depth) = self.atom(level + 1)?;
                    Ok((VersionRange::Not(Box::new(inner)), depth + 1))
                } else {
                    Ok((VersionRange::None, 1))
                }
            }
            Some(b'#') => self.flavor_or_flavored_spec(),
            Some(_) => {
                let op = self.op().unwrap_or(AnchorOp::Caret);
                self.cursor.skip_whitespace();
                if !self
                    .cursor
                    .peek()
                    .is_some_and(|b| b.is_ascii_digit() || b == b'#')
                {
                    return Err(self.cursor.unexpected(if start == self.cursor.pos() {
                        "a range (`*`, `!`, `#flavor`, `(`, or [op]version)"
                    } else {
                        "a version after the operator"
                    }));
                }
                let version = self.cursor.extended_version(Downstream::Optional)?;
                Ok((VersionRange::Anchor(op, version), 1))
            }
            None => Err(self
                .cursor
                .unexpected("a range (`*`, `!`, `#flavor`, `(`, or [op]version)")),
        }
    }

    /// `#flavor` alone, `#` alone, or `#flavor:version[:version]` (implicit `^`).
    fn flavor_or_flavored_spec(&mut self) -> Result<Node, ParseError> {
        self.cursor.bump(1);
        if !self.cursor.peek().is_some_and(|b| b.is_ascii_lowercase()) {
            if self.cursor.peek() == Some(b':') {
                return Err(self.cursor.unexpected("a flavor (lowercase ASCII letters)"));
            }
            return Ok((VersionRange::Flavor(None), 1));
        }
        let flavor = self.cursor.flavor()?;
        if self.cursor.eat(b':') {
            let version = self
                .cursor
                .extended_version_after_flavor(Some(flavor), Downstream::Optional)?;
            Ok((VersionRange::Anchor(AnchorOp::Caret, version), 1))
        } else {
            Ok((VersionRange::Flavor(Some(flavor)), 1))
        }
    }

    fn op(&mut self) -> Option<AnchorOp> {
        // Two-character operators first.
        let ops = [
            (">=", AnchorOp::Gte),
            ("<=", AnchorOp::Lte),
            ("!=", AnchorOp::Neq),
            ("=", AnchorOp::Eq),
            (">", AnchorOp::Gt),
            ("<", AnchorOp::Lt),
            ("^", AnchorOp::Caret),
            ("~", AnchorOp::Tilde),
        ];
        ops.into_iter()
            .find(|(text, _)| self.cursor.eat_str(text))
            .map(|(_, op)| op)
    }
}

fn starts_atom(b: u8) -> bool {
    matches!(
        b,
        b'(' | b'*' | b'!' | b'#' | b'=' | b'>' | b'<' | b'^' | b'~'
    ) || b.is_ascii_digit()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;

    fn parse(s: &str) -> VersionRange {
        s.parse().unwrap()
    }

    #[test]
    fn folds_left_to_right_without_precedence() {
        assert_eq!(parse("1:0 || 2:0 && 3:0"), parse("(1:0 || 2:0) && 3:0"));
        assert_eq!(parse("1:0 && 2:0 || 3:0"), parse("(1:0 && 2:0) || 3:0"));
    }

    #[test]
    fn juxtaposition_reuses_last_explicit_operator() {
        assert_eq!(parse(">=1 <2"), parse(">=1 && <2"));
        assert_eq!(parse("1 || 2 3"), parse("1 || 2 || 3"));
        assert_eq!(parse("1 2 || 3"), parse("1 && 2 || 3"));
        assert_eq!(parse("1 || 2 && 3 4"), parse("1 || 2 && 3 && 4"));
    }

    #[test]
    fn bang_forms() {
        assert_eq!(parse("!"), VersionRange::None);
        assert_eq!(parse("!=1:0"), parse("!= 1:0"));
        assert!(matches!(parse("!(=1.0:0)"), VersionRange::Not(_)));
        assert!(matches!(parse("! #knots"), VersionRange::Not(_)));
        assert!(matches!(parse("! && *"), VersionRange::And(..)));
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!("{}*{}", "(".repeat(10_000), ")".repeat(10_000));
        let err = deep.parse::<VersionRange>().unwrap_err();
        assert!(matches!(err.kind(), ParseErrorKind::TooDeep { .. }));
        let long = "* ".repeat(10_000);
        assert!(long.parse::<VersionRange>().is_err());
        let bangs = "!".repeat(10_000);
        assert!(bangs.parse::<VersionRange>().is_err());
        let ok = "* ".repeat(MAX_RANGE_DEPTH - 1);
        assert!(ok.parse::<VersionRange>().is_ok());
    }

    #[test]
    fn errors_point_at_the_problem() {
        let cases: [(&str, usize); 7] = [
            ("", 0),
            (">=", 2),
            ("(>=1", 4),
            (">=1)", 3),
            ("1 |", 2),
            ("#:1", 1),
            (">=1:0:0", 5),
        ];
        for (input, position) in cases {
            let err = input.parse::<VersionRange>().unwrap_err();
            assert_eq!(err.position(), position, "{input:?}: {err}");
            assert_eq!(err.target(), ParseTarget::VersionRange);
        }
    }
}
