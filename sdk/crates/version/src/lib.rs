//! Exver, StartOS's extended versioning: [`Version`], [`ExtendedVersion`] and
//! [`VersionRange`], compatible with StartOS package manifests and dependency ranges.
//!
//! # Purpose
//! Package manifests, dependency declarations, registry queries and OS updates all name
//! versions and ranges in exver text. This crate parses, prints, orders and matches
//! them, and nothing else: no I/O, no async, dependencies limited to `serde` and
//! `thiserror`.
//!
//! # Values
//! * [`Version`]: `N(.N)*[-pre]`, e.g. `0.4.0-beta.10`. Totally ordered; missing
//!   segments count as zero (`1.2 == 1.2.0`), a release sorts after its prereleases,
//!   prereleases compare segment by segment (numbers numerically and before strings,
//!   strings byte-wise, a shorter prefix first).
//! * [`ExtendedVersion`]: `[#flavor:]upstream:downstream`, e.g. `#bitcoin:21.0:1`.
//!   Partially ordered: different [`Flavor`]s are incomparable.
//! * [`VersionRange`]: `>=1.0.0:0 <2.0.0:0`, `#knots`, `!(=1.0:0)`… with
//!   [`VersionRange::satisfies`]. The grammar (no precedence, left-to-right folding)
//!   and the matching semantics (flavors, `^`, `~`) are documented on [`VersionRange`].
//!
//! # Example
//! ```
//! use hearth_version::{ExtendedVersion, VersionRange};
//!
//! let range: VersionRange = ">=1.0.0 <2".parse()?;
//! let installed: ExtendedVersion = "1.4.2:3".parse()?;
//! assert!(range.satisfies(&installed));
//! assert!(!range.satisfies(&"#knots:1.4.2:3".parse()?)); // other flavor
//! assert_eq!(range.to_string(), ">=1.0.0:0 && <2:0");
//! # Ok::<(), hearth_version::ParseError>(())
//! ```
//!
//! # Invariants
//! * `s.parse::<T>()?.to_string().parse::<T>()? == s.parse::<T>()?` for every type, and
//!   `Display` of a parsed `Version`/`ExtendedVersion` reproduces the input text.
//!   Ranges print canonically (explicit `&&`/`||`, explicit downstream).
//! * `Eq`, `Hash` and `Ord`/`PartialOrd` agree; equality is semantic (`1.2 == 1.2.0`).
//! * Parsers never panic: numbers are `u64` (larger ones are a
//!   [`ParseErrorKind::NumberOverflow`] error) and range nesting is bounded by
//!   [`MAX_RANGE_DEPTH`]. Errors carry the input, byte position and reason.
//! * Serde uses the same strings.
//!
//! # Limitations
//! * No range normalisation/satisfiability analysis (StartOS's TS has one); the smart
//!   constructors only remove identities and double negations.
//! * No cargo-fuzz target yet: the property tests feed arbitrary strings and grammar
//!   soup to every parser instead.
//!
//! # Rejected alternatives
//! * Arbitrary-precision segments: no real version needs more than 64 bits, and a
//!   typed overflow error is simpler than a bignum dependency.
//! * A parser generator (pest): a ~200-line hand-written parser gives precise error
//!   positions and no dependencies.

#![warn(missing_docs)]

mod cursor;
mod error;
mod extended;
mod range;
mod range_parse;
mod serde_impl;
mod version;

pub use error::{BuildVersionError, ParseError, ParseErrorKind, ParseTarget};
pub use extended::{ExtendedVersion, Flavor};
pub use range::{AnchorOp, VersionRange};
pub use range_parse::MAX_RANGE_DEPTH;
pub use version::{PreReleaseSegment, Version};
