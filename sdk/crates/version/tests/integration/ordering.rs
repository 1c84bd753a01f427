//! Ordering of versions and extended versions.

use std::cmp::Ordering;
use std::collections::HashSet;

use hearth_version::{ExtendedVersion, Version};

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

fn ev(s: &str) -> ExtendedVersion {
    s.parse().unwrap()
}

#[test]
fn versions_sort_in_exver_order() {
    // Strictly increasing.
    let ascending = [
        "0-0",
        "0",
        "0.0.1",
        "0.1",
        "0.4.0-alpha",
        "0.4.0-beta.2",
        "0.4.0-beta.10",
        "0.4.0-beta.10.0",
        "0.4.0-beta.10.a",
        "0.4.0-beta.a",
        "0.4.0-beta.b",
        "0.4.0-rc",
        "0.4.0",
        "1.0.0-1",
        "1.0.0-A",
        "1.0.0-Z",
        "1.0.0-a",
        "1.0.0",
        "1.2",
        "1.2.0.1",
        "1.10",
        "2",
        "18446744073709551615",
    ];
    for pair in ascending.windows(2) {
        let (a, b) = (v(pair[0]), v(pair[1]));
        assert_eq!(a.cmp(&b), Ordering::Less, "{a} < {b}");
        assert_eq!(b.cmp(&a), Ordering::Greater, "{b} > {a}");
    }
}

#[test]
fn missing_segments_are_zero_for_eq_ord_and_hash() {
    for (a, b) in [
        ("1.2", "1.2.0"),
        ("1", "1.0.0.0"),
        ("0", "0.0"),
        ("1-rc", "1.0-rc"),
    ] {
        assert_eq!(v(a), v(b));
        assert_eq!(v(a).cmp(&v(b)), Ordering::Equal);
    }
    let set: HashSet<Version> = ["1.2", "1.2.0", "1.2.0.0"].map(v).into();
    assert_eq!(set.len(), 1);
    // Prerelease segments are not padded: `rc.1` < `rc.1.0`.
    assert!(v("1-rc.1") < v("1-rc.1.0"));
    assert_eq!(Version::default(), v("0"));
}

#[test]
fn extended_versions_compare_upstream_then_downstream() {
    assert!(ev("1.2.3:0") < ev("1.2.3:1"));
    assert!(ev("1.2.3:9") < ev("1.2.4:0"));
    assert!(ev("1.0.0-rc.1:5") < ev("1.0.0:0"));
    assert_eq!(ev("1.2:0"), ev("1.2.0:0.0"));
    assert_eq!(
        ev("#bitcoin:21.0:1").partial_cmp(&ev("#bitcoin:21:1")),
        Some(Ordering::Equal)
    );
}

#[test]
fn different_flavors_are_incomparable() {
    let pairs = [
        ("#bitcoin:21.0:1", "#knots:21.0:1"),
        ("#bitcoin:21.0:1", "21.0:1"),
        ("#knots:1:0", "#knots:1:0"),
    ];
    for (a, b) in pairs {
        let (a, b) = (ev(a), ev(b));
        let comparable = a.flavor() == b.flavor();
        assert_eq!(a.partial_cmp(&b).is_some(), comparable, "{a} vs {b}");
        assert_eq!(a == b, comparable, "{a} vs {b}");
    }
}
