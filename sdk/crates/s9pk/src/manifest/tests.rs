//! Manifest tests with StartOS-style fixtures.

use super::*;

/// A manifest as StartOS's SDK writes it for a typical package, including fields
/// Hearth does not know (`alerts`, `nestedRuntime`) that must be ignored.
const STARTOS_MANIFEST: &str = r##"{
  "id": "bitcoind",
  "title": "Bitcoin Core",
  "version": "#knots:28.1:0",
  "satisfies": ["28.1:0"],
  "releaseNotes": {"en_US": "Update to 28.1", "de_DE": "Aktualisierung auf 28.1"},
  "canMigrateTo": "!",
  "canMigrateFrom": ">=25.0:0",
  "license": "MIT",
  "packageRepo": "https://github.com/example/bitcoind-startos",
  "upstreamRepo": "https://github.com/bitcoin/bitcoin",
  "marketingUrl": "https://bitcoincore.org/",
  "donationUrl": null,
  "description": {
    "short": {"en_US": "A Bitcoin full node", "es_ES": "Un nodo completo de Bitcoin"},
    "long": "Bitcoin Core validates every block and transaction."
  },
  "gitHash": "0123456789abcdef0123456789abcdef01234567",
  "osVersion": "0.4.0-beta.10",
  "sdkVersion": "0.4.0-beta.30",
  "hardwareAcceleration": false,
  "userspaceFilesystems": false,
  "virtualNetworking": true,
  "plugins": [],
  "images": {
    "main": {"source": "packed", "arch": ["x86_64", "aarch64"], "emulateMissingAs": "aarch64", "nvidiaContainer": false},
    "tools": {"source": {"dockerTag": "ghcr.io/example/tools:1"}, "arch": ["x86_64", "aarch64"]}
  },
  "volumes": ["main"],
  "dependencies": {
    "tor": {"description": "Used for onion peers", "optional": true, "metadata": {"title": "Tor"}}
  },
  "hardwareRequirements": {
    "device": [{"description": "A GPU", "class": "display", "product": "NVIDIA.*", "vendor": null}],
    "ram": 4294967296,
    "arch": ["x86_64", "aarch64"]
  },
  "alerts": {"install": "Large download"},
  "nestedRuntime": false
}"##;

/// The smallest manifest: every defaulted field left out.
const MINIMAL: &str = r#"{
  "id": "hello",
  "title": "Hello",
  "version": "1.0.0:0",
  "license": "MIT",
  "packageRepo": "https://example.com/hello-pkg",
  "upstreamRepo": "https://example.com/hello",
  "description": {"short": "Says hello", "long": "Says hello, at length."}
}"#;

fn minimal() -> Manifest {
    Manifest::from_json(MINIMAL.as_bytes()).unwrap()
}

#[test]
fn loads_a_startos_manifest_and_ignores_unknown_fields() {
    let m = Manifest::from_json(STARTOS_MANIFEST.as_bytes()).unwrap();
    assert_eq!(m.id, "bitcoind");
    assert_eq!(m.version.to_string(), "#knots:28.1:0");
    assert_eq!(m.can_migrate_from.to_string(), ">=25.0:0");
    assert_eq!(
        m.description.short.get("es_MX"),
        Some("Un nodo completo de Bitcoin")
    );
    assert_eq!(m.release_notes.get("en_US"), Some("Update to 28.1"));
    assert!(m.virtual_networking);
    assert_eq!(m.images["main"].source, ImageSource::Packed);
    assert_eq!(
        m.images["main"].emulate_missing_as.as_deref(),
        Some("aarch64")
    );
    assert_eq!(
        m.images["tools"].source,
        ImageSource::DockerTag("ghcr.io/example/tools:1".into())
    );
    assert!(m.dependencies["tor"].optional);
    assert_eq!(m.hardware_requirements.ram, Some(4 << 30));
    assert_eq!(m.hardware_requirements.device[0].class, "display");
    m.validate().unwrap();
}

#[test]
fn missing_fields_take_startos_defaults() {
    let m = minimal();
    assert!(m.satisfies.is_empty());
    assert_eq!(m.can_migrate_to.to_string(), "*");
    assert_eq!(m.can_migrate_from.to_string(), "*");
    assert_eq!(m.os_version.to_string(), "0.4.0");
    assert_eq!(m.git_hash, None);
    assert!(m.images.is_empty() && m.volumes.is_empty() && m.dependencies.is_empty());
    assert!(!m.hardware_acceleration && !m.userspace_filesystems && !m.virtual_networking);
    m.validate().unwrap();
}

#[test]
fn image_arch_defaults_to_x86_64_and_aarch64() {
    let json = r#"{"source": "packed"}"#;
    let image: ImageConfig = serde_json::from_str(json).unwrap();
    assert_eq!(image.arch.iter().collect::<Vec<_>>(), ["aarch64", "x86_64"]);
    assert!(!image.nvidia_container);
}

#[test]
fn round_trips_through_json_with_nulls_for_absent_values() {
    let m = Manifest::from_json(STARTOS_MANIFEST.as_bytes()).unwrap();
    let again = Manifest::from_json(&m.to_json()).unwrap();
    assert_eq!(m, again);
    let value: serde_json::Value = serde_json::from_slice(&minimal().to_json()).unwrap();
    assert_eq!(value["gitHash"], serde_json::Value::Null);
    assert_eq!(value["donationUrl"], serde_json::Value::Null);
    assert_eq!(value["images"], serde_json::json!({}));
    assert!(value.get("alerts").is_none());
}

#[test]
fn missing_required_field_is_a_parse_error_naming_it() {
    let err = Manifest::from_json(br#"{"id": "x"}"#).unwrap_err();
    assert!(err.to_string().contains("missing field"), "{err}");
}

#[test]
fn ids_follow_the_startos_pattern() {
    for good in ["a", "hello", "hello-world", "x2-y3", "0"] {
        assert!(is_valid_id(good), "{good}");
    }
    for bad in ["", "Hello", "hello_world", "-a", "a-", "a--b", "a.b", "é"] {
        assert!(!is_valid_id(bad), "{bad}");
    }
    let mut m = minimal();
    m.id = "Hello".into();
    assert!(matches!(m.validate(), Err(ManifestError::InvalidId { field, .. }) if field == "id"));
}

#[test]
fn description_limits_are_enforced_per_locale() {
    let mut m = minimal();
    m.description.short = LocaleString::Translated(
        [
            ("en_US".to_owned(), "x".repeat(160)),
            ("de_DE".to_owned(), "ü".repeat(161)),
        ]
        .into_iter()
        .collect(),
    );
    let err = m.validate().unwrap_err();
    assert!(
        matches!(&err, ManifestError::TooLong { field, len: 161, max: 160 } if field == "description.short.de_DE"),
        "{err}"
    );
    let mut m = minimal();
    m.description.long = LocaleString::Plain("y".repeat(5001));
    assert!(matches!(
        m.validate(),
        Err(ManifestError::TooLong { max: 5000, .. })
    ));
    let mut m = minimal();
    m.description.short = LocaleString::Plain("  ".into());
    assert!(
        matches!(m.validate(), Err(ManifestError::Empty { field }) if field == "description.short")
    );
}

#[test]
fn urls_must_be_http() {
    let mut m = minimal();
    m.package_repo = "github.com/x".into();
    assert!(
        matches!(m.validate(), Err(ManifestError::InvalidUrl { field, .. }) if field == "packageRepo")
    );
    let mut m = minimal();
    m.donation_url = Some("https://".into());
    assert!(
        matches!(m.validate(), Err(ManifestError::InvalidUrl { field, .. }) if field == "donationUrl")
    );
}

#[test]
fn image_entries_are_checked() {
    let mut m = minimal();
    let image: ImageConfig = serde_json::from_str(r#"{"arch": ["x86_64", "sparc"]}"#).unwrap();
    m.images.insert("main".into(), image);
    assert!(
        matches!(m.validate(), Err(ManifestError::UnknownArch { arch, .. }) if arch == "sparc")
    );

    let image: ImageConfig =
        serde_json::from_str(r#"{"arch": ["x86_64"], "emulateMissingAs": "aarch64"}"#).unwrap();
    m.images.insert("main".into(), image);
    let err = m.validate().unwrap_err();
    assert!(
        err.to_string().contains("images.main.emulateMissingAs"),
        "{err}"
    );

    m.images.clear();
    m.images
        .insert("Main".into(), serde_json::from_str("{}").unwrap());
    assert!(
        matches!(m.validate(), Err(ManifestError::InvalidId { field, .. }) if field == "images.Main")
    );
}

#[test]
fn images_must_cover_the_required_arches() {
    let mut m = minimal();
    m.hardware_requirements.arch = Some(["x86_64".to_owned(), "aarch64".to_owned()].into());
    let image: ImageConfig = serde_json::from_str(r#"{"arch": ["x86_64"]}"#).unwrap();
    m.images.insert("main".into(), image);
    let err = m.validate().unwrap_err().to_string();
    assert!(
        err.contains("images.main.arch") && err.contains("aarch64"),
        "{err}"
    );
    let image: ImageConfig =
        serde_json::from_str(r#"{"arch": ["x86_64"], "emulateMissingAs": "x86_64"}"#).unwrap();
    m.images.insert("main".into(), image);
    m.validate().unwrap();
}

#[test]
fn self_dependency_and_bad_device_class_are_refused() {
    let mut m = minimal();
    m.dependencies
        .insert("hello".into(), serde_json::from_str("{}").unwrap());
    assert!(
        m.validate()
            .unwrap_err()
            .to_string()
            .contains("depend on itself")
    );

    let mut m = minimal();
    m.hardware_requirements.device.push(DeviceFilter {
        description: String::new(),
        class: "usb".into(),
        product: None,
        vendor: None,
        capabilities: None,
        driver: None,
    });
    assert!(
        m.validate()
            .unwrap_err()
            .to_string()
            .contains("device[0].class")
    );
}

#[test]
fn invalid_version_is_a_parse_error() {
    let json = MINIMAL.replace("1.0.0:0", "1.0.0");
    let err = Manifest::from_json(json.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("version"), "{err}");
}

mod proptests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn ids_of_the_documented_shape_are_valid(id in "[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,3}") {
            prop_assert!(is_valid_id(&id));
        }

        #[test]
        fn ids_with_other_characters_are_invalid(
            head in "[a-z0-9]{0,4}",
            bad in "[^a-z0-9-]",
            tail in "[a-z0-9]{0,4}",
        ) {
            let id = format!("{head}{bad}{tail}");
            prop_assert!(!is_valid_id(&id));
        }

        #[test]
        fn loading_arbitrary_json_never_panics(text in "\\PC{0,200}") {
            if let Ok(m) = Manifest::from_json(text.as_bytes()) {
                let _ = m.validate();
            }
        }
    }
}
