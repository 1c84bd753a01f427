//! Property tests: round trips, partial-order laws, `satisfies` consistency, and
//! parsers never panicking on arbitrary input.

use std::cmp::Ordering;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use hearth_version::{AnchorOp, ExtendedVersion, Flavor, PreReleaseSegment, Version, VersionRange};
use proptest::prelude::*;

/// Mostly tiny numbers so that equal and adjacent values are common.
fn segment() -> impl Strategy<Value = u64> {
    prop_oneof![6 => 0u64..3, 1 => any::<u64>()]
}

fn prerelease_segment() -> impl Strategy<Value = PreReleaseSegment> {
    prop_oneof![
        segment().prop_map(PreReleaseSegment::Numeric),
        "[a-c]{1,2}".prop_map(PreReleaseSegment::Alphanumeric),
        "[0-9A-Za-z-]{0,3}[A-Za-z-][0-9A-Za-z-]{0,3}".prop_map(PreReleaseSegment::Alphanumeric),
    ]
}

fn version() -> impl Strategy<Value = Version> {
    (
        prop::collection::vec(segment(), 1..5),
        prop_oneof![
            3 => Just(Vec::new()),
            1 => prop::collection::vec(prerelease_segment(), 1..3)
        ],
    )
        .prop_filter_map("valid parts", |(number, pre)| {
            Version::from_parts(number, pre).ok()
        })
}

fn flavor() -> impl Strategy<Value = Option<Flavor>> {
    prop_oneof![
        3 => Just(None),
        1 => "[ab]{1,2}".prop_filter_map("flavor", |s| s.parse::<Flavor>().ok()).prop_map(Some),
    ]
}

fn extended() -> impl Strategy<Value = ExtendedVersion> {
    (flavor(), version(), version())
        .prop_map(|(f, up, down)| ExtendedVersion::new(up, down).with_flavor(f))
}

fn op() -> impl Strategy<Value = AnchorOp> {
    prop_oneof![
        Just(AnchorOp::Eq),
        Just(AnchorOp::Neq),
        Just(AnchorOp::Gt),
        Just(AnchorOp::Gte),
        Just(AnchorOp::Lt),
        Just(AnchorOp::Lte),
        Just(AnchorOp::Caret),
        Just(AnchorOp::Tilde),
    ]
}

fn range() -> impl Strategy<Value = VersionRange> {
    let leaf = prop_oneof![
        Just(VersionRange::Any),
        Just(VersionRange::None),
        flavor().prop_map(VersionRange::Flavor),
        (op(), extended()).prop_map(|(op, v)| VersionRange::Anchor(op, v)),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|r| VersionRange::Not(Box::new(r))),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| VersionRange::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| VersionRange::Or(Box::new(a), Box::new(b))),
        ]
    })
}

/// The same version with `extra` zero segments appended (semantically equal).
fn pad(v: &Version, extra: usize) -> Version {
    let mut number = v.number().to_vec();
    number.extend(std::iter::repeat_n(0, extra));
    Version::from_parts(number, v.prerelease().to_vec()).unwrap()
}

fn pad_extended(v: &ExtendedVersion, extra: usize) -> ExtendedVersion {
    ExtendedVersion::new(pad(v.upstream(), extra), pad(v.downstream(), extra))
        .with_flavor(v.flavor().cloned())
}

fn hash_of<T: Hash>(value: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn version_display_parse_round_trips(v in version()) {
        let text = v.to_string();
        let parsed: Version = text.parse().unwrap();
        prop_assert_eq!(&parsed, &v);
        prop_assert_eq!(parsed.number(), v.number());
        prop_assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn extended_display_parse_round_trips(v in extended()) {
        let text = v.to_string();
        let parsed: ExtendedVersion = text.parse().unwrap();
        prop_assert_eq!(&parsed, &v);
        prop_assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn range_display_parse_round_trips(r in range()) {
        let text = r.to_string();
        let parsed: VersionRange = text.parse().unwrap();
        prop_assert_eq!(&parsed, &r, "{}", text);
        prop_assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn serde_round_trips(r in range()) {
        let json = serde_json::to_string(&r).unwrap();
        prop_assert_eq!(serde_json::from_str::<VersionRange>(&json).unwrap(), r);
    }

    #[test]
    fn version_order_is_total_and_consistent(a in version(), b in version(), c in version()) {
        prop_assert_eq!(a.cmp(&a), Ordering::Equal);
        prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        prop_assert_eq!(a == b, a.cmp(&b).is_eq());
        if a == b {
            prop_assert_eq!(hash_of(&a), hash_of(&b));
        }
        if a <= b && b <= c {
            prop_assert!(a <= c, "{} <= {} <= {}", a, b, c);
        }
    }

    #[test]
    fn sorting_versions_is_transitive(mut vs in prop::collection::vec(version(), 0..12)) {
        vs.sort();
        for (i, x) in vs.iter().enumerate() {
            for y in &vs[i..] {
                prop_assert!(x <= y, "{} <= {}", x, y);
            }
        }
    }

    #[test]
    fn trailing_zeros_do_not_matter(v in version(), extra in 1usize..3) {
        let padded = pad(&v, extra);
        prop_assert_eq!(&padded, &v);
        prop_assert_eq!(hash_of(&padded), hash_of(&v));
    }

    #[test]
    fn extended_order_is_a_partial_order(
        a in extended(), b in extended(), c in extended()
    ) {
        prop_assert_eq!(a.partial_cmp(&a), Some(Ordering::Equal));
        prop_assert_eq!(a.partial_cmp(&b), b.partial_cmp(&a).map(Ordering::reverse));
        prop_assert_eq!(a.partial_cmp(&b).is_some(), a.flavor() == b.flavor());
        prop_assert_eq!(a == b, a.partial_cmp(&b) == Some(Ordering::Equal));
        if a == b {
            prop_assert_eq!(hash_of(&a), hash_of(&b));
        }
        if a <= b && b <= c {
            prop_assert!(a <= c, "{} <= {} <= {}", a, b, c);
        }
    }

    #[test]
    fn anchors_agree_with_the_order(v in extended(), w in extended()) {
        let ord = w.partial_cmp(&v);
        let sat = |op| VersionRange::anchor(op, v.clone()).satisfies(&w);
        prop_assert_eq!(sat(AnchorOp::Eq), w == v);
        prop_assert_eq!(sat(AnchorOp::Neq), w != v);
        prop_assert_eq!(sat(AnchorOp::Gte), matches!(ord, Some(Ordering::Greater | Ordering::Equal)));
        prop_assert_eq!(sat(AnchorOp::Gt), ord == Some(Ordering::Greater));
        prop_assert_eq!(sat(AnchorOp::Lte), matches!(ord, Some(Ordering::Less | Ordering::Equal)));
        prop_assert_eq!(sat(AnchorOp::Lt), ord == Some(Ordering::Less));
        // `^v` and `~v` are bounded below by `v`.
        if sat(AnchorOp::Caret) || sat(AnchorOp::Tilde) {
            prop_assert!(sat(AnchorOp::Gte));
        }
        // `v` itself is always in `^v` and `~v` (unless the bound overflows to none,
        // which only widens the range).
        let at = |op| VersionRange::anchor(op, v.clone()).satisfies(&v);
        prop_assert!(at(AnchorOp::Caret) && at(AnchorOp::Tilde));
    }

    #[test]
    fn tilde_is_narrower_than_caret(
        number in prop::collection::vec(0u64..4, 1..4), w in extended()
    ) {
        let v = ExtendedVersion::new(Version::release(number), Version::default());
        let tilde = VersionRange::anchor(AnchorOp::Tilde, v.clone());
        let caret = VersionRange::anchor(AnchorOp::Caret, v);
        if tilde.satisfies(&w) {
            prop_assert!(caret.satisfies(&w));
        }
    }

    #[test]
    fn combinators_are_boolean(a in range(), b in range(), w in extended()) {
        let (sa, sb) = (a.satisfies(&w), b.satisfies(&w));
        let not = VersionRange::Not(Box::new(a.clone()));
        prop_assert_eq!(not.satisfies(&w), !sa);
        prop_assert_eq!((!a.clone()).satisfies(&w), !sa);
        let and = VersionRange::And(Box::new(a.clone()), Box::new(b.clone()));
        prop_assert_eq!(and.satisfies(&w), sa && sb);
        prop_assert_eq!(a.clone().and(b.clone()).satisfies(&w), sa && sb);
        let or = VersionRange::Or(Box::new(a.clone()), Box::new(b.clone()));
        prop_assert_eq!(or.satisfies(&w), sa || sb);
        prop_assert_eq!(a.or(b).satisfies(&w), sa || sb);
    }

    #[test]
    fn satisfies_respects_version_equality(
        r in range(), w in extended(), extra in 1usize..3
    ) {
        prop_assert_eq!(r.satisfies(&w), r.satisfies(&pad_extended(&w, extra)));
    }

    #[test]
    fn equal_anchors_define_equal_ranges(
        op in op(), v in extended(), w in extended(), extra in 1usize..3
    ) {
        let a = VersionRange::anchor(op, v.clone());
        let b = VersionRange::anchor(op, pad_extended(&v, extra));
        prop_assert_eq!(a.satisfies(&w), b.satisfies(&w));
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_strings(s in any::<String>()) {
        let _ = s.parse::<Version>();
        let _ = s.parse::<ExtendedVersion>();
        let _ = s.parse::<VersionRange>();
        let _ = s.parse::<Flavor>();
    }

    #[test]
    fn parsers_never_panic_on_grammar_soup(s in "[0-9a-cA.:#()*!=<>^~|& -]{0,48}") {
        if let Ok(r) = s.parse::<VersionRange>() {
            // Whatever parsed prints canonically and parses back to itself.
            let text = r.to_string();
            prop_assert_eq!(text.parse::<VersionRange>().unwrap(), r);
        }
        if let Ok(v) = s.parse::<ExtendedVersion>() {
            prop_assert_eq!(v.to_string(), s.clone());
        }
        if let Ok(v) = s.parse::<Version>() {
            prop_assert_eq!(v.to_string(), s);
        }
    }
}
