//! Resources: the public half of the state document, addressed as
//! `hearth:///public` + an RFC 6901 pointer (percent-encoded as a URI path).

use hearth_store::json_patch::{Patch, PatchOperation};
use rmcp::model::{Resource, ResourceTemplate};
use serde_json::Value;

/// The URI of the whole public state.
pub(crate) const ROOT_URI: &str = "hearth:///public";

/// Why a URI does not name a Hearth resource.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadUri(pub(crate) String);

/// `hearth:///public/a/b%20c` → `/a/b c` (the pointer relative to `/public`).
pub(crate) fn pointer_of(uri: &str) -> Result<String, BadUri> {
    let rest = uri.strip_prefix(ROOT_URI).ok_or_else(|| {
        BadUri(format!(
            "{uri:?} is not a Hearth resource: URIs start with {ROOT_URI}"
        ))
    })?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err(BadUri(format!("{uri:?}: expected '/' after {ROOT_URI}")));
    }
    if rest.contains(['?', '#']) {
        return Err(BadUri(format!(
            "{uri:?}: query and fragment are not supported"
        )));
    }
    percent_decode(rest).ok_or_else(|| BadUri(format!("{uri:?}: bad percent-encoding")))
}

/// The URI of a pointer relative to `/public` (inverse of [`pointer_of`]).
pub(crate) fn uri_of(pointer: &str) -> String {
    let mut uri = String::from(ROOT_URI);
    for b in pointer.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether a change at `changed` (a pointer) can change the value at `watched`: one is
/// a prefix of the other, token-wise.
pub(crate) fn overlaps(changed: &str, watched: &str) -> bool {
    fn under(inner: &str, outer: &str) -> bool {
        inner == outer
            || outer.is_empty()
            || (inner.starts_with(outer) && inner.as_bytes().get(outer.len()) == Some(&b'/'))
    }
    under(changed, watched) || under(watched, changed)
}

/// Whether any operation of a public patch touches `watched`.
pub(crate) fn patch_touches(patch: &Patch, watched: &str) -> bool {
    patch.0.iter().any(|op| {
        let path = match op {
            PatchOperation::Add(o) => o.path.as_str(),
            PatchOperation::Remove(o) => o.path.as_str(),
            PatchOperation::Replace(o) => o.path.as_str(),
            PatchOperation::Move(o) => {
                if overlaps(o.from.as_str(), watched) {
                    return true;
                }
                o.path.as_str()
            }
            PatchOperation::Copy(o) => o.path.as_str(),
            PatchOperation::Test(_) => return false,
        };
        overlaps(path, watched)
    })
}

/// `resources/list`: the whole public state and each of its top-level members.
pub(crate) fn list(public: &Value) -> Vec<Resource> {
    let mut out = vec![
        Resource::new(ROOT_URI, "public")
            .with_title("Hearth public state")
            .with_description(
                "Everything the Hearth UI shows: server info, packages, UI preferences. \
                 Append an RFC 6901 JSON Pointer to read or subscribe to a part, e.g. \
                 hearth:///public/serverInfo.",
            )
            .with_mime_type("application/json"),
    ];
    if let Some(map) = public.as_object() {
        for key in map.keys() {
            let pointer = format!("/{}", key.replace('~', "~0").replace('/', "~1"));
            out.push(
                Resource::new(uri_of(&pointer), key.clone())
                    .with_description(format!("The public state at {pointer}."))
                    .with_mime_type("application/json"),
            );
        }
    }
    out
}

/// `resources/templates/list`: any part of the public state by pointer.
pub(crate) fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(format!("{ROOT_URI}{{+pointer}}"), "public-pointer")
            .with_title("Part of the Hearth public state")
            .with_description(
                "The public state at an RFC 6901 JSON Pointer (percent-encoded), e.g. \
                 hearth:///public/serverInfo/hostname. Readable and subscribable.",
            )
            .with_mime_type("application/json"),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uris_map_to_pointers_and_back() {
        assert_eq!(pointer_of("hearth:///public").unwrap(), "");
        assert_eq!(
            pointer_of("hearth:///public/serverInfo").unwrap(),
            "/serverInfo"
        );
        assert_eq!(
            pointer_of("hearth:///public/a%20b/c~1d").unwrap(),
            "/a b/c~1d"
        );
        for p in ["", "/ui", "/a b/ü/~0x", "/%"] {
            assert_eq!(pointer_of(&uri_of(p)).unwrap(), p);
        }
        for bad in [
            "hearth:///private",
            "hearth:///publicx",
            "startos:///public",
            "hearth:///public/a?b",
            "hearth:///public/%zz",
            "hearth:///public/%ff",
        ] {
            assert!(pointer_of(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_pointer_round_trips_through_its_uri(p in "(/[^/]{0,8}){0,4}") {
            proptest::prop_assert_eq!(pointer_of(&uri_of(&p)).unwrap(), p);
        }

        #[test]
        fn any_uri_parses_or_is_refused_without_panicking(uri in "hearth:///public.{0,40}") {
            if let Ok(p) = pointer_of(&uri) {
                proptest::prop_assert!(p.is_empty() || p.starts_with('/'));
            }
        }
    }

    #[test]
    fn overlap_is_token_wise_in_both_directions() {
        assert!(overlaps("/ui/theme", ""));
        assert!(overlaps("/ui/theme", "/ui"));
        assert!(overlaps("/ui", "/ui/theme"));
        assert!(overlaps("/ui", "/ui"));
        assert!(!overlaps("/uiX", "/ui"));
        assert!(!overlaps("/serverInfo", "/ui"));
    }

    #[test]
    fn patches_touch_the_watched_subtree_only() {
        let patch: Patch =
            serde_json::from_value(json!([{"op": "add", "path": "/ui/theme", "value": 1}]))
                .unwrap();
        assert!(patch_touches(&patch, ""));
        assert!(patch_touches(&patch, "/ui"));
        assert!(!patch_touches(&patch, "/serverInfo"));
    }

    #[test]
    fn list_names_the_root_and_each_member() {
        let uris: Vec<String> = list(&json!({"serverInfo": {}, "ui": {}}))
            .into_iter()
            .map(|r| r.uri)
            .collect();
        assert_eq!(
            uris,
            [
                "hearth:///public",
                "hearth:///public/serverInfo",
                "hearth:///public/ui"
            ]
        );
    }
}
