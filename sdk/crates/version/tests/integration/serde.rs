//! Serde: all values are JSON strings.

use hearth_version::{ExtendedVersion, Flavor, Version, VersionRange};

#[test]
fn values_serialize_as_strings_and_back() {
    let v: ExtendedVersion = "#bitcoin:21.0:1".parse().unwrap();
    assert_eq!(serde_json::to_string(&v).unwrap(), "\"#bitcoin:21.0:1\"");
    assert_eq!(
        serde_json::from_str::<ExtendedVersion>("\"#bitcoin:21.0:1\"").unwrap(),
        v
    );

    let r: VersionRange = ">=1.0.0 <2".parse().unwrap();
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(json, "\">=1.0.0:0 && <2:0\"");
    assert_eq!(serde_json::from_str::<VersionRange>(&json).unwrap(), r);

    let os: Version = serde_json::from_str("\"0.4.0-beta.10\"").unwrap();
    assert_eq!(os.to_string(), "0.4.0-beta.10");
    let flavor: Flavor = serde_json::from_str("\"knots\"").unwrap();
    assert_eq!(serde_json::to_value(&flavor).unwrap(), "knots");
}

#[test]
fn invalid_strings_and_non_strings_are_rejected_with_the_parse_error() {
    let err = serde_json::from_str::<ExtendedVersion>("\"1.2.3\"").unwrap_err();
    assert!(err.to_string().contains("missing downstream"), "{err}");
    assert!(serde_json::from_str::<Version>("123").is_err());
    assert!(serde_json::from_str::<VersionRange>("null").is_err());
}
