//! Fuzzes the service spec (`hearth.json`): parse, validate against a fixed manifest,
//! compute the start order. Must never panic; a spec that parses must survive its own
//! serialisation unchanged.
#![no_main]

use std::sync::OnceLock;

use hearth_s9pk::manifest::Manifest;
use hearth_s9pk::spec::ServiceSpec;
use libfuzzer_sys::fuzz_target;

const MANIFEST: &str = r#"{
        "id": "notes", "title": "Notes", "version": "2.1.0:0", "license": "MIT",
        "packageRepo": "https://example.com/notes-pkg", "upstreamRepo": "https://example.com/notes",
        "description": {"short": "Notes", "long": "Notes with a database."},
        "images": {"main": {"arch": ["x86_64"]}, "db": {"arch": ["x86_64"]}},
        "volumes": ["main", "db"],
        "dependencies": {"bitcoind": {"optional": true}}
    }"#;

fn manifest() -> Option<&'static Manifest> {
    static M: OnceLock<Option<Manifest>> = OnceLock::new();
    M.get_or_init(|| Manifest::from_json(MANIFEST.as_bytes()).ok())
        .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = ServiceSpec::from_json(data) else {
        return;
    };
    if let Some(m) = manifest() {
        let _ = spec.validate(m);
    }
    let _ = spec.start_order().map(|o| o.len());
    let again = ServiceSpec::from_json(&spec.to_json()).expect("own output parses");
    assert_eq!(again, spec, "round trip changed the spec");
});
