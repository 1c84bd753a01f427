//! `VersionRange::satisfies` with StartOS semantics.

use hearth_version::{ExtendedVersion, VersionRange};

fn check(range: &str, matching: &[&str], non_matching: &[&str]) {
    let r: VersionRange = range.parse().unwrap();
    for v in matching {
        let version: ExtendedVersion = v.parse().unwrap();
        assert!(r.satisfies(&version), "{v} should satisfy {range}");
    }
    for v in non_matching {
        let version: ExtendedVersion = v.parse().unwrap();
        assert!(!r.satisfies(&version), "{v} should not satisfy {range}");
    }
}

#[test]
fn comparison_anchors() {
    check(
        "=1.2.3:1",
        &["1.2.3:1", "1.2.3.0:1.0"],
        &["1.2.3:0", "1.2.3:2", "1.2.4:1"],
    );
    check(
        "!=1.2.3:1",
        &["1.2.3:0", "1.2.4:1"],
        &["1.2.3:1", "1.2.3.0:1"],
    );
    check(">1.2.3", &["1.2.3:1", "1.3:0"], &["1.2.3:0", "1.2.3-rc:9"]);
    check(
        ">=1.2.3",
        &["1.2.3:0", "2:0"],
        &["1.2.2:99", "1.2.3-rc.1:0"],
    );
    check(
        "<1.2.3:1",
        &["1.2.3:0", "1.2.3-rc:5", "0:0"],
        &["1.2.3:1", "1.3:0"],
    );
    check("<=1.2.3:1", &["1.2.3:1", "1.2:0"], &["1.2.3:2"]);
}

#[test]
fn reference_ranges() {
    check(
        ">=1.0.0:0 <2.0.0:0",
        &["1.0.0:0", "1.9.9:9", "2.0.0-rc.1:0"],
        &["0.9:0", "2:0", "2.0.0:0"],
    );
    check(">=1.0.0 || >=2.0.0", &["1:0", "3:0"], &["0.9:0"]);
    check("*", &["0:0", "#knots:1:0"], &[]);
    check("!", &[], &["0:0", "#knots:1:0"]);
    check("#knots", &["#knots:27.1:0"], &["27.1:0", "#bitcoin:27.1:0"]);
    check("#", &["27.1:0"], &["#knots:27.1:0"]);
    check("!(=1.0:0)", &["1.0.1:0", "#knots:1.0:0"], &["1:0"]);
}

#[test]
fn caret_bumps_first_nonzero_segment() {
    check(
        "^1.2.3:0",
        &["1.2.3:0", "1.9:0", "1.99.99:99"],
        &["1.2.2:0", "2:0", "0.9:0"],
    );
    check("^0.3.1:0", &["0.3.1:0", "0.3.9:0"], &["0.4:0", "0.3.0:9"]);
    check("1.2.3", &["1.5:0"], &["2:0"]); // no operator means `^`
    // Trailing zeros are ignored when locating the major segment.
    check("^1.0.0", &["1.5:0"], &["2:0"]);
    check("^0.3.0", &["0.3.5:0"], &["0.4:0"]);
    check("^0.0.5", &["0.0.5:3"], &["0.0.6:0", "0.1:0"]);
    // All zero: same as `^0`, i.e. below 1.
    check("^0.0.0", &["0:0", "0.0.1:0", "0.9:0"], &["1:0"]);
    // Prerelease anchors and upper bounds use the plain order.
    check(
        "^1.0.0-rc.1",
        &["1.0.0-rc.2:0", "1.0.0:0", "2.0.0-alpha:0"],
        &["1.0.0-beta:0", "2:0"],
    );
    // Downstream of the anchor is a lower bound, the upper bound has downstream 0.
    check("^1.2.3:5", &["1.2.3:5", "1.2.4:0"], &["1.2.3:4", "2:0"]);
}

#[test]
fn tilde_bumps_segment_after_first_nonzero() {
    check("~1.2.3:0", &["1.2.3:0", "1.2.99:0"], &["1.3:0", "1.2.2:0"]);
    check("~0.3.1", &["0.3.1:0", "0.3.1.5:0"], &["0.3.2:0", "0.4:0"]);
    check("~1", &["1:0", "1.0.9:0"], &["1.1:0"]);
    check("~0.0.0", &["0:0", "0.0.9:0"], &["0.1:0"]);
}

#[test]
fn flavors_only_match_anchors_of_their_flavor() {
    // Different flavor: every anchor is false except `!=`.
    for op in ["=", ">", ">=", "<", "<=", "^", "~"] {
        check(
            &format!("{op}1.0:0"),
            &[],
            &["#knots:1.0:0", "#knots:0:0", "#knots:9:0"],
        );
        check(
            &format!("{op}#knots:1.0:0"),
            &[],
            &["1.0:0", "0:0", "9:0", "#bitcoin:1.0:0"],
        );
    }
    check("!=1.0:0", &["#knots:1.0:0"], &["1.0:0"]);
    check(
        "!=#knots:1.0:0",
        &["1.0:0", "#knots:2:0"],
        &["#knots:1.0:0"],
    );
    check(
        ">=#knots:1.0 <#knots:2",
        &["#knots:1.5:0"],
        &["1.5:0", "#knots:2:0"],
    );
    check("#knots:27", &["#knots:27.1:0"], &["27.1:0", "#knots:28:0"]);
    check(
        "#knots || >=27",
        &["#knots:1:0", "27:0"],
        &["26:0", "#bitcoin:30:0"],
    );
}

#[test]
fn combinators_fold_left_to_right() {
    // `(=1 || =2) && =3`: nothing.
    check("=1 || =2 && =3", &[], &["1:0", "2:0", "3:0"]);
    // `(=1 && =2) || =3`.
    check("=1 && =2 || =3", &["3:0"], &["1:0", "2:0"]);
    // Juxtaposition after `||` is `||`.
    check("=1 || =2 =3", &["1:0", "2:0", "3:0"], &["4:0"]);
    check("!=1 !=2", &["3:0"], &["1:0", "2:0"]);
}

#[test]
fn smart_constructors_keep_meaning() {
    let v: ExtendedVersion = "1.0:0".parse().unwrap();
    let w: ExtendedVersion = "#knots:1.0:0".parse().unwrap();
    let eq = VersionRange::exactly(v.clone());
    let not_eq = !eq.clone();
    assert_eq!(not_eq.to_string(), "!=1.0:0");
    assert!(!not_eq.satisfies(&v));
    assert!(not_eq.satisfies(&w));
    let both = VersionRange::any().and(eq.clone()).or(VersionRange::none());
    assert_eq!(both, eq);
}
