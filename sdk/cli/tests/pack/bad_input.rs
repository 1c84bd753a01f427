//! Bad project input: each case fails before anything is written, with an error
//! naming the file and the field.

use super::*;

fn project_with(ws: &Workspace, edit: impl FnOnce(&Path)) -> PathBuf {
    let project = minimal_project(ws.dir.path());
    edit(&project);
    project
}

fn replace_in_toml(project: &Path, from: &str, to: &str) {
    let path = project.join("hearth.toml");
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "fixture lacks {from:?}");
    fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn missing_hearth_toml() {
    let ws = Workspace::new();
    let project = project_with(&ws, |p| fs::remove_file(p.join("hearth.toml")).unwrap());
    let err = ws.pack_err(&project);
    assert!(err.contains("hearth.toml: missing"), "{err}");
}

#[test]
fn unknown_fields_are_refused_in_every_table() {
    let ws = Workspace::new();
    let cases = [
        (
            "license = \"MIT\"",
            "license = \"MIT\"\nlicence = \"MIT\"",
            "unknown field `manifest.licence`",
        ),
        (
            "rootfs = \"rootfs\"",
            "rootfs = \"rootfs\"\nrootf = \"x\"",
            "unknown field `rootf`",
        ),
        (
            "command = [\"/bin/app\"]",
            "command = [\"/bin/app\"]\ncmd = []",
            "unknown field `cmd`",
        ),
        (
            "[manifest]",
            "colour = \"red\"\n[manifest]",
            "unknown field `colour`",
        ),
    ];
    for (from, to, needle) in cases {
        let project = project_with(&ws, |p| replace_in_toml(p, from, to));
        let err = ws.pack_err(&project);
        assert!(
            err.contains("hearth.toml") && err.contains(needle),
            "{needle}: {err}"
        );
        fs::remove_dir_all(project).unwrap();
    }
}

#[test]
fn invalid_id_and_version_are_named() {
    let ws = Workspace::new();
    let project = project_with(&ws, |p| {
        replace_in_toml(p, "id = \"tiny\"", "id = \"Tiny_App\"")
    });
    let err = ws.pack_err(&project);
    assert!(
        err.contains("[manifest] manifest field `id`") && err.contains("Tiny_App"),
        "{err}"
    );
    fs::remove_dir_all(project).unwrap();

    let project = project_with(&ws, |p| replace_in_toml(p, "\"1.0.0:0\"", "\"1.0.0\""));
    let err = ws.pack_err(&project);
    assert!(
        err.contains("hearth.toml") && err.contains("version"),
        "{err}"
    );
}

#[test]
fn invalid_service_spec_is_named() {
    let ws = Workspace::new();
    let project = project_with(&ws, |p| {
        replace_in_toml(p, "image = \"main\"", "image = \"other\"")
    });
    let err = ws.pack_err(&project);
    assert!(
        err.contains("[service] service field `daemons[0].image`"),
        "{err}"
    );
}

#[test]
fn missing_icon_license_or_instructions() {
    let ws = Workspace::new();
    for (file, needle) in [
        ("icon.png", "icon.png: missing"),
        ("LICENSE.md", "LICENSE.md: missing"),
        ("instructions.md", "instructions.md: missing"),
    ] {
        let project = project_with(&ws, |p| fs::remove_file(p.join(file)).unwrap());
        let err = ws.pack_err(&project);
        assert!(err.contains(needle), "{file}: {err}");
        fs::remove_dir_all(project).unwrap();
    }
    let project = project_with(&ws, |p| fs::write(p.join("icon.svg"), "<svg/>").unwrap());
    let err = ws.pack_err(&project);
    assert!(
        err.contains("more than one icon (icon.png, icon.svg)"),
        "{err}"
    );
}

#[test]
fn image_source_missing_or_ambiguous() {
    let ws = Workspace::new();
    let project = project_with(&ws, |p| {
        replace_in_toml(p, "rootfs = \"rootfs\"", "arch = [\"x86_64\"]")
    });
    let err = ws.pack_err(&project);
    assert!(err.contains("[images.main] no image source"), "{err}");
    fs::remove_dir_all(project).unwrap();

    let project = project_with(&ws, |p| {
        replace_in_toml(
            p,
            "rootfs = \"rootfs\"",
            "rootfs = \"rootfs\"\noci = \"rootfs\"",
        )
    });
    let err = ws.pack_err(&project);
    assert!(
        err.contains("[images.main] more than one image source"),
        "{err}"
    );
    fs::remove_dir_all(project).unwrap();

    let project = project_with(&ws, |p| {
        replace_in_toml(p, "rootfs = \"rootfs\"", "rootfs = \"nope\"")
    });
    let err = ws.pack_err(&project);
    assert!(
        err.contains("[images.main] rootfs:") && err.contains("not a directory"),
        "{err}"
    );
}

#[test]
fn a_bad_key_fails_first() {
    let ws = Workspace::new();
    let project = minimal_project(ws.dir.path());
    fs::write(&ws.key, "not a key").unwrap();
    let err = ws.pack_err(&project);
    assert!(err.contains("loading signing key"), "{err}");
}

// ---------------------------------------------------------------------------
// Broken OCI layouts and malicious layers.

fn oci_project(
    ws: &Workspace,
    layers: Vec<(Vec<u8>, Compression)>,
) -> (PathBuf, oci_layout::Layout) {
    let project = project_with(ws, |p| {
        replace_in_toml(p, "rootfs = \"rootfs\"", "oci = \"image\"")
    });
    let layout = write_layout(
        &project.join("image"),
        layers,
        host_oci_arch(),
        serde_json::json!({"Cmd": ["/bin/app"]}),
    );
    (project, layout)
}

fn good_layer() -> Vec<u8> {
    LayerBuilder::new()
        .dir("bin/")
        .file("bin/app", b"#!/bin/sh\n", 0o755)
        .finish()
}

#[test]
fn oci_missing_blob() {
    let ws = Workspace::new();
    let (project, layout) = oci_project(&ws, vec![(good_layer(), Compression::Gzip)]);
    // An image sorted before the broken one: it must not be built first.
    let base = "[images.base]\nrootfs = \"rootfs\"\n\n[images.main]";
    replace_in_toml(&project, "[images.main]", base);
    fs::remove_file(layout.blob(&layout.layer_digests[0])).unwrap();
    let err = ws.pack_err(&project);
    let missing = format!("blob sha256:{} is missing", layout.layer_digests[0]);
    assert!(err.contains(&missing), "{err}");
    assert!(
        !err.contains("mksquashfs"),
        "an image was built before the check: {err}"
    );
}

#[test]
fn oci_digest_mismatch() {
    let ws = Workspace::new();
    let (project, layout) = oci_project(&ws, vec![(good_layer(), Compression::None)]);
    let blob = layout.blob(&layout.layer_digests[0]);
    let mut bytes = fs::read(&blob).unwrap();
    bytes[600] ^= 1; // same size, different content
    fs::write(&blob, bytes).unwrap();
    let err = ws.pack_err(&project);
    assert!(err.contains("does not match its digest"), "{err}");
}

#[test]
fn oci_size_mismatch_and_wrong_arch() {
    let ws = Workspace::new();
    let (project, layout) = oci_project(&ws, vec![(good_layer(), Compression::None)]);
    let blob = layout.blob(&layout.layer_digests[0]);
    let mut bytes = fs::read(&blob).unwrap();
    bytes.push(0);
    fs::write(&blob, bytes).unwrap();
    let err = ws.pack_err(&project);
    assert!(err.contains("its descriptor says"), "{err}");
    fs::remove_dir_all(&project).unwrap();

    let (project, _) = oci_project(&ws, vec![(good_layer(), Compression::None)]);
    fs::remove_dir_all(project.join("image")).unwrap();
    write_layout(
        &project.join("image"),
        vec![(good_layer(), Compression::None)],
        "s390x",
        serde_json::json!({}),
    );
    let err = ws.pack_err(&project);
    assert!(
        err.contains("no linux/") && err.contains("found: linux/s390x"),
        "{err}"
    );
}

#[test]
fn oci_not_a_layout() {
    let ws = Workspace::new();
    let (project, _) = oci_project(&ws, vec![(good_layer(), Compression::None)]);
    fs::remove_file(project.join("image/index.json")).unwrap();
    let err = ws.pack_err(&project);
    assert!(
        err.contains("not an OCI image layout: no index.json"),
        "{err}"
    );
}

#[test]
fn oci_layer_with_parent_traversal_is_refused() {
    let ws = Workspace::new();
    let evil = LayerBuilder::new()
        .file("../../escaped", b"x", 0o644)
        .finish();
    let (project, _) = oci_project(
        &ws,
        vec![(good_layer(), Compression::None), (evil, Compression::Gzip)],
    );
    let err = ws.pack_err(&project);
    assert!(
        err.contains("\"../../escaped\"") && err.contains("contains `..`"),
        "{err}"
    );
}

#[test]
fn oci_layer_with_absolute_path_is_refused() {
    let ws = Workspace::new();
    let target = ws.path("absolute-target");
    let evil = LayerBuilder::new().file(s(&target), b"x", 0o644).finish();
    let (project, _) = oci_project(&ws, vec![(evil, Compression::None)]);
    let err = ws.pack_err(&project);
    assert!(err.contains("is absolute"), "{err}");
    assert!(!target.exists());
}

#[test]
fn oci_layer_with_symlink_escape_is_refused() {
    let ws = Workspace::new();
    let outside = ws.path("outside");
    fs::create_dir(&outside).unwrap();
    let evil = LayerBuilder::new()
        .symlink("etc", s(&outside))
        .file("etc/planted", b"x", 0o644)
        .finish();
    let (project, _) = oci_project(&ws, vec![(evil, Compression::Zstd)]);
    let err = ws.pack_err(&project);
    assert!(err.contains("a parent directory is a symlink"), "{err}");
    assert!(!outside.join("planted").exists());
}

#[test]
fn oci_blob_that_is_a_symlink_is_refused() {
    let ws = Workspace::new();
    let (project, layout) = oci_project(&ws, vec![(good_layer(), Compression::None)]);
    let blob = layout.blob(&layout.layer_digests[0]);
    let elsewhere = ws.path("real-blob");
    fs::rename(&blob, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &blob).unwrap();
    let err = ws.pack_err(&project);
    assert!(err.contains("is not a regular file"), "{err}");
}
