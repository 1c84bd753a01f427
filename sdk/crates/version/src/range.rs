//! [`VersionRange`]: a boolean expression over anchors, flavors, `*` and `!`.
//!
//! The grammar and the `satisfies` semantics are documented on [`VersionRange`].
//!
//! # Design
//! The tree keeps what was written (`^` stays `^`, nothing is simplified while
//! parsing) so `Display` reproduces the structure; the smart constructors
//! ([`VersionRange::and`], [`VersionRange::or`], `!`, [`VersionRange::any`],
//! [`VersionRange::none`]) simplify identities for ranges built in code. Rejected
//! alternative: expanding `^`/`~` at parse time, which loses round-tripping.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Not;

use crate::extended::{ExtendedVersion, Flavor};
use crate::version::Version;

/// Comparison operator of a range anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnchorOp {
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `^` (also the meaning of an anchor written without operator)
    Caret,
    /// `~`
    Tilde,
}

impl AnchorOp {
    /// The operator as written in a range.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Neq => "!=",
            Self::Gt => ">",
            Self::Gte => ">=",
            Self::Lt => "<",
            Self::Lte => "<=",
            Self::Caret => "^",
            Self::Tilde => "~",
        }
    }
}

impl fmt::Display for AnchorOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of extended versions, parsed from e.g. `>=1.0.0:0 <2.0.0:0`, `#knots`,
/// `!(=1.0:0)`.
///
/// # Grammar (`FromStr`)
///
/// ```text
/// range  := atom (sep atom)*          sep := "||" | "&&" | juxtaposition
/// atom   := "(" range ")" | "*" | "!" | "!" atom | "#" [flavor] | [op] spec
/// op     := "=" | "!=" | ">" | ">=" | "<" | "<=" | "^" | "~"      (none means "^")
/// spec   := ["#" flavor ":"] version [":" version]                (downstream = 0)
/// ```
///
/// Whitespace is allowed between tokens (also between an operator and its version, and
/// between `!` and its operand). There is no precedence: operands are folded strictly
/// left to right (`a || b && c` is `(a || b) && c`). Juxtaposition means `&&` until an
/// explicit operator has been seen; afterwards it repeats the last explicit operator
/// (`a || b c` is `(a || b) || c`), mirroring StartOS. Each parenthesised group
/// starts afresh: `(a || b) c` is `(a || b) && c`.
///
/// `!` followed by something that cannot start an atom is the empty range (`! && *`).
/// A bare `#` is `#` with no flavor, i.e. the unflavored versions (a Hearth extension:
/// StartOS has the value but no text for it).
///
/// Ranges nested (or chained) deeper than [`MAX_RANGE_DEPTH`](crate::MAX_RANGE_DEPTH)
/// are rejected, so hostile input cannot overflow the stack.
///
/// # Semantics of [`satisfies`](VersionRange::satisfies)
/// * `*` matches everything, `!` nothing, `!r` the complement of `r`, `a && b` and
///   `a || b` the intersection and union.
/// * `#flavor` matches exactly the versions of that flavor; [`VersionRange::Flavor`]
///   with `None` (written `#`, a Hearth extension) matches unflavored versions.
/// * An anchor `op v` only compares with versions of `v`'s flavor (upstream first,
///   then downstream). Against a different flavor every anchor is false except `!=`,
///   which is true.
/// * `^v` is `>=v && <u` and `~v` is `>=v && <t` where, with `m` the index of the first
///   non-zero upstream segment after dropping trailing zeros (`m = 0` when every
///   segment is zero), `u` bumps segment `m` and `t` bumps segment `m + 1` (padding with
///   zeros), drops the later segments and the prerelease, and has downstream `0`:
///   `^1.2.3:0` → `<2:0`, `^0.3.1:0` → `<0.4:0`, `^1.0.0` → `<2`, `^0.0.0` → `<1`,
///   `~1.2.3:0` → `<1.3:0`, `~0.3.1` → `<0.3.2`, `~1` → `<1.1`, `~0` → `<0.1`.
///   Defining `m` on the segments without trailing zeros keeps ranges consistent with
///   version equality (`^0.0.0` and `^0` are the same range, as `0.0.0 == 0`). A bump
///   that would overflow `u64` leaves the range without an upper bound. Like every
///   `<` anchor, the upper bound admits its own prereleases (`2.0.0-rc.1:0 < 2:0`).
///
/// # Equality
/// Equality is structural (`a && b` differs from `b && a`), with versions compared
/// semantically.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionRange {
    /// `*`: every version.
    Any,
    /// `!`: no version.
    None,
    /// `#flavor`: versions of exactly this flavor (`None`: unflavored versions).
    Flavor(Option<Flavor>),
    /// `op version`.
    Anchor(AnchorOp, ExtendedVersion),
    /// `!r`: versions not in `r`.
    Not(Box<VersionRange>),
    /// `a && b` (also written as juxtaposition `a b`).
    And(Box<VersionRange>, Box<VersionRange>),
    /// `a || b`.
    Or(Box<VersionRange>, Box<VersionRange>),
}

impl VersionRange {
    /// `*`, the range of every version.
    pub fn any() -> Self {
        Self::Any
    }

    /// `!`, the empty range.
    pub fn none() -> Self {
        Self::None
    }

    /// `=v`.
    pub fn exactly(version: ExtendedVersion) -> Self {
        Self::Anchor(AnchorOp::Eq, version)
    }

    /// `op v`.
    pub fn anchor(op: AnchorOp, version: ExtendedVersion) -> Self {
        Self::Anchor(op, version)
    }

    /// `#flavor` (`None`: unflavored versions).
    pub fn flavor(flavor: Option<Flavor>) -> Self {
        Self::Flavor(flavor)
    }

    /// `self && other`, simplified: `*` is the identity and `!` absorbs.
    #[must_use]
    pub fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Any, r) | (r, Self::Any) => r,
            (Self::None, _) | (_, Self::None) => Self::None,
            (a, b) => Self::And(Box::new(a), Box::new(b)),
        }
    }

    /// `self || other`, simplified: `!` is the identity and `*` absorbs.
    #[must_use]
    pub fn or(self, other: Self) -> Self {
        match (self, other) {
            (Self::None, r) | (r, Self::None) => r,
            (Self::Any, _) | (_, Self::Any) => Self::Any,
            (a, b) => Self::Or(Box::new(a), Box::new(b)),
        }
    }

    /// Whether `version` is in this range.
    pub fn satisfies(&self, version: &ExtendedVersion) -> bool {
        match self {
            Self::Any => true,
            Self::None => false,
            Self::Flavor(flavor) => version.flavor() == flavor.as_ref(),
            Self::Anchor(op, anchor) => anchor_satisfies(*op, anchor, version),
            Self::Not(r) => !r.satisfies(version),
            Self::And(a, b) => a.satisfies(version) && b.satisfies(version),
            Self::Or(a, b) => a.satisfies(version) || b.satisfies(version),
        }
    }

    /// Whether this node prints as one atom (needs no parentheses as an operand).
    fn is_atomic_for_display(&self) -> bool {
        !matches!(self, Self::And(..) | Self::Or(..))
    }
}

impl Not for VersionRange {
    type Output = Self;

    /// `!self`, simplified: `!*` is `!`, `!!` is `*`, `!!r` is `r`, and `!(=v)` /
    /// `!(!=v)` become `!=v` / `=v` (equivalent also across flavors).
    fn not(self) -> Self {
        match self {
            Self::Any => Self::None,
            Self::None => Self::Any,
            Self::Not(r) => *r,
            Self::Anchor(AnchorOp::Eq, v) => Self::Anchor(AnchorOp::Neq, v),
            Self::Anchor(AnchorOp::Neq, v) => Self::Anchor(AnchorOp::Eq, v),
            r => Self::Not(Box::new(r)),
        }
    }
}

fn anchor_satisfies(op: AnchorOp, anchor: &ExtendedVersion, version: &ExtendedVersion) -> bool {
    if anchor.flavor() != version.flavor() {
        return op == AnchorOp::Neq;
    }
    let ord = version.cmp_ignoring_flavor(anchor);
    match op {
        AnchorOp::Eq => ord.is_eq(),
        AnchorOp::Neq => ord.is_ne(),
        AnchorOp::Gt => ord.is_gt(),
        AnchorOp::Gte => ord.is_ge(),
        AnchorOp::Lt => ord.is_lt(),
        AnchorOp::Lte => ord.is_le(),
        AnchorOp::Caret | AnchorOp::Tilde => {
            ord.is_ge()
                && upper_bound(op, anchor.upstream())
                    .is_none_or(|upper| version.cmp_ignoring_flavor(&upper) == Ordering::Less)
        }
    }
}

/// The exclusive upper bound of `^v` / `~v` (downstream `0`, unflavored: only compared
/// with [`ExtendedVersion::cmp_ignoring_flavor`]); `None` when the bump overflows.
pub(crate) fn upper_bound(op: AnchorOp, upstream: &Version) -> Option<ExtendedVersion> {
    let significant = upstream.significant_number();
    let major = significant.iter().position(|&n| n != 0).unwrap_or(0);
    let bumped = if op == AnchorOp::Tilde {
        major + 1
    } else {
        major
    };
    let mut number: Vec<u64> = (0..=bumped)
        .map(|i| significant.get(i).copied().unwrap_or(0))
        .collect();
    let last = number.last_mut()?;
    *last = last.checked_add(1)?;
    Some(ExtendedVersion::new(
        Version::release(number),
        Version::default(),
    ))
}

impl fmt::Display for VersionRange {
    /// Canonical text: explicit operators (`&&`, `||`, never juxtaposition), explicit
    /// downstream versions, and parentheses around every operand that mixes operators,
    /// so the output parses back to an equal range and reads the same to humans.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::None => f.write_str("!"),
            Self::Flavor(Some(flavor)) => write!(f, "#{flavor}"),
            Self::Flavor(None) => f.write_str("#"),
            Self::Anchor(op, v) => write!(f, "{op}{v}"),
            Self::Not(r) => match **r {
                Self::Any | Self::None | Self::Flavor(_) | Self::Not(_) => write!(f, "!{r}"),
                _ => write!(f, "!({r})"),
            },
            Self::And(a, b) => write_binary(f, a, "&&", b),
            Self::Or(a, b) => write_binary(f, a, "||", b),
        }
    }
}

/// The parser folds left-to-right, so a compound right operand needs parentheses.
/// A left operand with the *other* operator gets them too, only for human readers
/// (`(a || b) && c` instead of the equivalent but misleading `a || b && c`).
fn write_binary(
    f: &mut fmt::Formatter<'_>,
    left: &VersionRange,
    op: &str,
    right: &VersionRange,
) -> fmt::Result {
    let same_op = matches!(
        (left, op),
        (VersionRange::And(..), "&&") | (VersionRange::Or(..), "||")
    );
    if left.is_atomic_for_display() || same_op {
        write!(f, "{left} {op} ")?;
    } else {
        write!(f, "({left}) {op} ")?;
    }
    if right.is_atomic_for_display() {
        write!(f, "{right}")
    } else {
        write!(f, "({right})")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;

    fn bound(op: AnchorOp, s: &str) -> Option<String> {
        upper_bound(op, &s.parse().unwrap()).map(|v| v.to_string())
    }

    #[test]
    fn caret_and_tilde_bounds() {
        let caret = [
            ("1.2.3", "2:0"),
            ("0.3.1", "0.4:0"),
            ("1.0.0", "2:0"),
            ("0.0.0", "1:0"),
            ("0", "1:0"),
            ("0.0.5", "0.0.6:0"),
            ("1.2.3-rc.1", "2:0"),
        ];
        for (v, upper) in caret {
            assert_eq!(bound(AnchorOp::Caret, v).as_deref(), Some(upper), "^{v}");
        }
        let tilde = [
            ("1.2.3", "1.3:0"),
            ("0.3.1", "0.3.2:0"),
            ("1", "1.1:0"),
            ("1.0.0", "1.1:0"),
            ("0", "0.1:0"),
        ];
        for (v, upper) in tilde {
            assert_eq!(bound(AnchorOp::Tilde, v).as_deref(), Some(upper), "~{v}");
        }
        assert_eq!(bound(AnchorOp::Caret, "18446744073709551615.1"), None);
    }

    #[test]
    fn smart_constructors_simplify_identities() {
        let r = VersionRange::flavor(None);
        assert_eq!(VersionRange::any().and(r.clone()), r);
        assert_eq!(r.clone().and(VersionRange::none()), VersionRange::None);
        assert_eq!(VersionRange::none().or(r.clone()), r);
        assert_eq!(r.clone().or(VersionRange::any()), VersionRange::Any);
        assert_eq!(!!r.clone(), r);
        assert_eq!(!VersionRange::any(), VersionRange::None);
        let v = ExtendedVersion::default();
        assert_eq!(
            !VersionRange::exactly(v.clone()),
            VersionRange::anchor(AnchorOp::Neq, v)
        );
    }
}
