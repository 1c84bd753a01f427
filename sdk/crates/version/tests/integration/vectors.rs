//! The examples of the StartOS reference (§2) as parse/print vectors.

use hearth_version::{
    AnchorOp, ExtendedVersion, Flavor, ParseErrorKind, ParseTarget, PreReleaseSegment, Version,
    VersionRange,
};

fn ev(s: &str) -> ExtendedVersion {
    s.parse().unwrap()
}

fn range(s: &str) -> VersionRange {
    s.parse().unwrap()
}

#[test]
fn reference_extended_versions_parse_into_their_parts() {
    let v = ev("1.2.3:0");
    assert_eq!(v.flavor(), None);
    assert_eq!(v.upstream().number(), &[1, 2, 3]);
    assert_eq!(v.downstream().number(), &[0]);

    let rc = ev("1.0.0-rc.1:0");
    assert_eq!(
        rc.upstream().prerelease(),
        &[
            PreReleaseSegment::Alphanumeric("rc".into()),
            PreReleaseSegment::Numeric(1)
        ]
    );

    let btc = ev("#bitcoin:21.0:1");
    assert_eq!(btc.flavor().map(Flavor::as_str), Some("bitcoin"));
    assert_eq!(btc.upstream().number(), &[21, 0]);
    assert_eq!(btc.downstream().number(), &[1]);

    for s in [
        "1.2.3:0",
        "1.0.0-rc.1:0",
        "#bitcoin:21.0:1",
        "0.4.0-beta.10:0",
    ] {
        assert_eq!(ev(s).to_string(), s);
    }
}

#[test]
fn reference_ranges_parse_and_print_canonically() {
    let cases = [
        (">=1.0.0:0 <2.0.0:0", ">=1.0.0:0 && <2.0.0:0"),
        (">=1.0.0 || >=2.0.0", ">=1.0.0:0 || >=2.0.0:0"),
        ("=1.2.3:1", "=1.2.3:1"),
        ("*", "*"),
        ("#knots", "#knots"),
        ("!(=1.0:0)", "!(=1.0:0)"),
        ("1.2", "^1.2:0"),
        ("#knots:27.1", "^#knots:27.1:0"),
        ("~ 1.2.3", "~1.2.3:0"),
        ("(1 || 2) 3", "(^1:0 || ^2:0) && ^3:0"),
        ("1 || (2 3)", "^1:0 || (^2:0 && ^3:0)"),
        ("!!", "!!"),
        ("! && #", "! && #"),
    ];
    for (input, canonical) in cases {
        let parsed = range(input);
        assert_eq!(parsed.to_string(), canonical, "{input:?}");
        assert_eq!(range(canonical), parsed, "{canonical:?}");
    }
}

#[test]
fn reference_ranges_have_the_documented_structure() {
    use VersionRange as R;
    let anchor = |op, s| Box::new(R::Anchor(op, ev(s)));
    assert_eq!(
        range(">=1.0.0:0 <2.0.0:0"),
        R::And(
            anchor(AnchorOp::Gte, "1.0.0:0"),
            anchor(AnchorOp::Lt, "2.0.0:0")
        )
    );
    assert_eq!(
        range(">=1.0.0 || >=2.0.0"),
        R::Or(
            anchor(AnchorOp::Gte, "1.0.0:0"),
            anchor(AnchorOp::Gte, "2.0.0:0")
        )
    );
    assert_eq!(range("=1.2.3:1"), *anchor(AnchorOp::Eq, "1.2.3:1"));
    assert_eq!(range("*"), R::Any);
    assert_eq!(range("#knots"), R::Flavor(Some("knots".parse().unwrap())));
    assert_eq!(range("!(=1.0:0)"), R::Not(anchor(AnchorOp::Eq, "1.0:0")));
    assert_eq!(range("1.2.3"), *anchor(AnchorOp::Caret, "1.2.3:0"));
}

#[test]
fn errors_name_target_input_position_and_reason() {
    let err = "1.2.3".parse::<ExtendedVersion>().unwrap_err();
    assert_eq!(err.target(), ParseTarget::ExtendedVersion);
    assert_eq!(err.input(), "1.2.3");
    assert_eq!(err.kind(), &ParseErrorKind::MissingDownstream);
    let message = err.to_string();
    assert!(message.contains("extended version"), "{message}");
    assert!(message.contains("\"1.2.3\""), "{message}");
    assert!(message.contains("byte 5"), "{message}");

    let err = "1.02.3".parse::<Version>().unwrap_err();
    assert_eq!(
        (err.position(), err.kind()),
        (2, &ParseErrorKind::LeadingZero)
    );

    let err = ">=1.0 (<2".parse::<VersionRange>().unwrap_err();
    assert_eq!(err.kind(), &ParseErrorKind::UnclosedParenthesis { open: 6 });

    let err = ">=1.0 | <2".parse::<VersionRange>().unwrap_err();
    assert_eq!(err.position(), 6);
    assert!(matches!(
        err.kind(),
        ParseErrorKind::UnexpectedChar { found: '|', .. }
    ));

    let err = "1.0:0 ü".parse::<ExtendedVersion>().unwrap_err();
    assert!(matches!(
        err.kind(),
        ParseErrorKind::UnexpectedChar { found: ' ', .. }
    ));
    let err = "1.ü".parse::<Version>().unwrap_err();
    assert!(matches!(
        err.kind(),
        ParseErrorKind::UnexpectedChar { found: 'ü', .. }
    ));
}

#[test]
fn huge_numbers_are_rejected_not_wrapped() {
    assert_eq!(
        "18446744073709551615".parse::<Version>().unwrap().number(),
        &[u64::MAX]
    );
    for input in ["18446744073709551616", "1.0-18446744073709551616"] {
        let err = input.parse::<Version>().unwrap_err();
        assert_eq!(err.kind(), &ParseErrorKind::NumberOverflow, "{input}");
    }
    // `^` with an overflowing bump has no upper bound instead of wrapping to 0.
    let r = range("^18446744073709551615");
    assert!(r.satisfies(&ev("18446744073709551615.7:0")));
}
