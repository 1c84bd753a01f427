//! Fuzzes `manifest.json` parsing and validation, and the version / version-range
//! grammar it embeds (each input is also tried as a version and a range). Must never
//! panic; a manifest that parses must survive its own serialisation unchanged.
#![no_main]

use hearth_s9pk::manifest::{ExtendedVersion, Manifest, Version, VersionRange};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::from_json(data) {
        let _ = manifest.validate();
        let again = Manifest::from_json(&manifest.to_json()).expect("own output parses");
        assert_eq!(again, manifest, "round trip changed the manifest");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(v) = text.parse::<ExtendedVersion>() {
            let again: ExtendedVersion = v.to_string().parse().expect("own output parses");
            assert_eq!(again.to_string(), v.to_string());
            let _ = text.parse::<VersionRange>().map(|r| r.satisfies(&v));
        }
        if let Ok(v) = text.parse::<Version>() {
            let _ = v.to_string();
        }
        if let Ok(r) = text.parse::<VersionRange>() {
            let shown = r.to_string();
            let _ = shown.parse::<VersionRange>().expect("own output parses");
        }
    }
});
