//! System tests of `hearth s9pk pack`: the real binary on real project folders,
//! with real `mksquashfs`, `unsquashfs` and (for the nginx example) `mmdebstrap`.
//!
//! Needs root (image files keep their owners), squashfs-tools and, for the
//! examples, `busybox-static` and network access to deb.debian.org; `make deps`
//! installs the tools. The Debian tarball is cached in `HEARTH_CACHE_DIR`
//! (default here: /var/cache/hearth/pack-cache), so only the first run builds it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "pack/oci_layout.rs"]
mod oci_layout;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use oci_layout::{Compression, LayerBuilder, host_oci_arch, write_layout};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");

fn cache_dir() -> PathBuf {
    std::env::var_os("HEARTH_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/hearth/pack-cache"))
}

fn hearth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .env("HEARTH_CACHE_DIR", cache_dir())
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = hearth(args);
    assert!(
        out.status.success(),
        "hearth {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A temp dir with a signing key and its public key.
struct Workspace {
    dir: tempfile::TempDir,
    key: PathBuf,
    public: PathBuf,
}

impl Workspace {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        let public = dir.path().join("key.pub.pem");
        let signing = hearth_s9pk::key::generate().unwrap();
        fs::write(
            &key,
            hearth_s9pk::key::signing_key_to_pem(&signing).unwrap(),
        )
        .unwrap();
        let pem = hearth_s9pk::key::verifying_key_to_pem(&signing.verifying_key()).unwrap();
        fs::write(&public, pem).unwrap();
        Self { dir, key, public }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Packs `project` to `name`, keeping the staging directory next to it.
    fn pack(&self, project: &Path, name: &str) -> Output {
        let out = self.path(name);
        let staging = self.path(&format!("{name}.staging"));
        hearth(&[
            "s9pk",
            "pack",
            s(project),
            "--key",
            s(&self.key),
            "-o",
            s(&out),
            "--staging",
            s(&staging),
        ])
    }

    fn pack_ok(&self, project: &Path, name: &str) -> (PathBuf, PathBuf) {
        let out = self.pack(project, name);
        assert!(
            out.status.success(),
            "pack {} failed:\n{}",
            project.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        (self.path(name), self.path(&format!("{name}.staging")))
    }

    /// Packs and expects failure; returns stderr and checks no package was written.
    fn pack_err(&self, project: &Path) -> String {
        let out = self.pack(project, "bad.s9pk");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "pack unexpectedly succeeded");
        assert!(
            !self.path("bad.s9pk").exists(),
            "a package was written: {err}"
        );
        let _ = fs::remove_dir_all(self.path("bad.s9pk.staging"));
        err
    }

    /// Verifies with `--trust` and returns the manifest from `inspect`.
    fn verify_and_inspect(&self, package: &Path) -> serde_json::Value {
        let verified = ok(&["s9pk", "verify", s(package), "--trust", s(&self.public)]);
        assert!(verified.starts_with("ok"), "{verified}");
        let inspected: serde_json::Value =
            serde_json::from_str(&ok(&["s9pk", "inspect", s(package)])).unwrap();
        inspected
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    let mut entries: Vec<_> = fs::read_dir(from).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// `unsquashfs -lln` of an image: one line per entry with owner and mode.
fn squashfs_listing(image: &Path) -> String {
    let out = Command::new("unsquashfs")
        .args(["-lln", s(image)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn squashfs_cat(image: &Path, path: &str) -> String {
    let out = Command::new("unsquashfs")
        .args(["-cat", s(image), path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn has_entry(listing: &str, path: &str) -> bool {
    listing.lines().any(|l| {
        l.ends_with(&format!("squashfs-root{path}"))
            || l.contains(&format!("squashfs-root{path} -> "))
    })
}

const HOST: &str = std::env::consts::ARCH;

// ---------------------------------------------------------------------------
// A minimal rootfs project, also the base for the bad-input tests.

const MINIMAL_TOML: &str = r#"
[manifest]
id = "tiny"
title = "Tiny"
version = "1.0.0:0"
license = "MIT"
packageRepo = "https://example.com/tiny-pkg"
upstreamRepo = "https://example.com/tiny"
volumes = ["main"]

[manifest.description]
short = "A tiny package"
long = "A tiny package used by tests."

[images.main]
rootfs = "rootfs"

[[service.daemons]]
id = "app"
image = "main"
command = ["/bin/app"]
mounts = [{ volume = "main", path = "/data" }]
"#;

fn minimal_project(root: &Path) -> PathBuf {
    let dir = root.join("tiny");
    fs::create_dir_all(dir.join("rootfs/bin")).unwrap();
    fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
    fs::write(dir.join("rootfs/bin/app"), "#!/bin/sh\necho hi\n").unwrap();
    let exec = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    fs::set_permissions(dir.join("rootfs/bin/app"), exec).unwrap();
    fs::write(dir.join("rootfs/etc/app.conf"), "port=1\n").unwrap();
    std::os::unix::fs::symlink("app", dir.join("rootfs/bin/app-link")).unwrap();
    fs::write(dir.join("hearth.toml"), MINIMAL_TOML).unwrap();
    fs::write(dir.join("icon.png"), b"\x89PNG\r\n\x1a\nfake").unwrap();
    fs::write(dir.join("LICENSE.md"), "MIT\n").unwrap();
    fs::write(dir.join("instructions.md"), "Run it.\n").unwrap();
    dir
}

#[test]
fn rootfs_project_packs_reproducibly_and_verifies() {
    let ws = Workspace::new();
    let project = minimal_project(ws.dir.path());
    let (a, staging) = ws.pack_ok(&project, "a.s9pk");
    // Touch every input: only content matters, not mtimes or the output name.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fs::write(project.join("rootfs/etc/app.conf"), "port=1\n").unwrap();
    let (b, _) = ws.pack_ok(&project, "b.s9pk");
    assert_eq!(
        fs::read(&a).unwrap(),
        fs::read(&b).unwrap(),
        "packing twice differs"
    );

    let mut names: Vec<String> = Vec::new();
    for entry in walk(&staging) {
        names.push(entry.strip_prefix(&staging).unwrap().display().to_string());
    }
    names.sort();
    let image_dir = format!("images/{HOST}");
    let expected = [
        "LICENSE.md".to_owned(),
        "hearth.json".to_owned(),
        "icon.png".to_owned(),
        "images".to_owned(),
        image_dir.clone(),
        format!("{image_dir}/main.env"),
        format!("{image_dir}/main.json"),
        format!("{image_dir}/main.squashfs"),
        "instructions.md".to_owned(),
        "manifest.json".to_owned(),
    ];
    assert_eq!(names, expected);

    let listing = squashfs_listing(&staging.join(format!("{image_dir}/main.squashfs")));
    let app = listing
        .lines()
        .find(|l| l.ends_with("squashfs-root/bin/app"))
        .unwrap();
    assert!(
        app.starts_with("-rwxr-xr-x 0/0"),
        "mode or owner lost: {app}"
    );
    assert!(has_entry(&listing, "/bin/app") && has_entry(&listing, "/bin/app-link"));

    let inspected = ws.verify_and_inspect(&a);
    let manifest = &inspected["manifest"];
    assert_eq!(manifest["id"], "tiny");
    assert_eq!(manifest["images"]["main"]["source"], "packed");
    assert_eq!(
        manifest["images"]["main"]["arch"],
        serde_json::json!([HOST])
    );
    assert_eq!(
        inspected["serviceSpec"]["daemons"][0]["command"],
        serde_json::json!(["/bin/app"])
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn arch_flag_limits_the_images_built() {
    let ws = Workspace::new();
    let project = minimal_project(ws.dir.path());
    let toml = MINIMAL_TOML.replace(
        "rootfs = \"rootfs\"",
        "rootfs = \"rootfs\"\narch = [\"x86_64\", \"aarch64\"]",
    );
    fs::write(project.join("hearth.toml"), toml).unwrap();
    let out = hearth(&[
        "s9pk",
        "pack",
        s(&project),
        "--key",
        s(&ws.key),
        "-o",
        s(&ws.path("one.s9pk")),
        "--arch",
        "aarch64",
        "--staging",
        s(&ws.path("one")),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ws.path("one/images/aarch64/main.squashfs").is_file());
    assert!(!ws.path("one/images/x86_64").exists());
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(ws.path("one/manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["images"]["main"]["arch"],
        serde_json::json!(["aarch64"])
    );
}

#[path = "pack/bad_input.rs"]
mod bad_input;
#[path = "pack/examples.rs"]
mod examples;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-C",
            s(dir),
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn git_hash_records_the_commit_and_a_dirty_tree() {
    let ws = Workspace::new();
    let project = minimal_project(ws.dir.path());
    git(&project, &["init", "-q"]);
    git(&project, &["add", "."]);
    git(&project, &["commit", "-q", "-m", "init"]);
    let head = git(&project, &["rev-parse", "HEAD"]);
    let manifest = |staging: &Path| -> serde_json::Value {
        serde_json::from_slice(&fs::read(staging.join("manifest.json")).unwrap()).unwrap()
    };
    let (_, clean) = ws.pack_ok(&project, "clean.s9pk");
    assert_eq!(manifest(&clean)["gitHash"], head.as_str());
    fs::write(project.join("instructions.md"), "Changed.\n").unwrap();
    let (_, dirty) = ws.pack_ok(&project, "dirty.s9pk");
    assert_eq!(manifest(&dirty)["gitHash"], format!("{head}-modified"));
}

/// The root files `pack` writes are wire formats other tools read (StartOS reads
/// `manifest.json`, `hearth-container` reads `hearth.json`); changes must be deliberate.
/// Regenerate with `HEARTH_UPDATE_GOLDEN=1 cargo test -p hearth-cli --test pack golden`.
#[test]
fn staged_root_files_match_golden_files() {
    let ws = Workspace::new();
    let project = minimal_project(ws.dir.path());
    let toml = MINIMAL_TOML.replace(
        "rootfs = \"rootfs\"",
        "rootfs = \"rootfs\"\narch = [\"x86_64\"]\nenv = { APP_MODE = \"prod\" }",
    );
    fs::write(project.join("hearth.toml"), toml).unwrap();
    let (_, staging) = ws.pack_ok(&project, "golden.s9pk");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pack/golden");
    for (staged, name) in [
        ("manifest.json", "tiny-manifest.json"),
        ("hearth.json", "tiny-hearth.json"),
        ("images/x86_64/main.json", "tiny-image.json"),
        ("images/x86_64/main.env", "tiny-image.env"),
    ] {
        let actual = fs::read_to_string(staging.join(staged)).unwrap();
        if std::env::var_os("HEARTH_UPDATE_GOLDEN").is_some() {
            fs::create_dir_all(&golden).unwrap();
            fs::write(golden.join(name), &actual).unwrap();
        }
        let expected = fs::read_to_string(golden.join(name)).unwrap_or_default();
        assert!(
            actual == expected,
            "{staged} differs from tests/pack/golden/{name}:\n{actual}\n\
             regenerate with HEARTH_UPDATE_GOLDEN=1 cargo test -p hearth-cli --test pack golden"
        );
    }
}

/// A multi-architecture layout behind a nested index (as containerd-backed
/// `docker save` writes it): each architecture gets its own image.
#[test]
fn multi_arch_nested_index_gives_each_arch_its_image() {
    let ws = Workspace::new();
    let project = minimal_project(ws.dir.path());
    let toml = MINIMAL_TOML.replace(
        "rootfs = \"rootfs\"",
        "oci = \"image\"\narch = [\"x86_64\", \"aarch64\"]",
    );
    fs::write(project.join("hearth.toml"), toml).unwrap();
    for (oci_arch, marker) in [("amd64", "amd64\n"), ("arm64", "arm64\n")] {
        let layer = LayerBuilder::new()
            .dir("etc/")
            .file("etc/arch", marker.as_bytes(), 0o644)
            .finish();
        let config = serde_json::json!({"Cmd": [format!("/bin/{oci_arch}")]});
        write_layout(
            &project.join("image"),
            vec![(layer, Compression::Gzip)],
            oci_arch,
            config,
        );
    }
    oci_layout::nest_index(&project.join("image"));
    let (_, staging) = ws.pack_ok(&project, "multi.s9pk");
    for (arch, oci_arch) in [("x86_64", "amd64"), ("aarch64", "arm64")] {
        let images = staging.join("images").join(arch);
        let squashfs = images.join("main.squashfs");
        assert_eq!(squashfs_cat(&squashfs, "etc/arch"), format!("{oci_arch}\n"));
        let metadata: serde_json::Value =
            serde_json::from_slice(&fs::read(images.join("main.json")).unwrap()).unwrap();
        assert_eq!(
            metadata["cmd"],
            serde_json::json!([format!("/bin/{oci_arch}")])
        );
    }
}

/// `docker save` from Docker before 25 (Debian's docker.io): manifest.json format.
#[test]
fn legacy_docker_save_archive_is_read_and_checked() {
    let ws = Workspace::new();
    let project = minimal_project(ws.dir.path());
    let toml = MINIMAL_TOML.replace("rootfs = \"rootfs\"", "oci = \"saved.tar\"");
    fs::write(project.join("hearth.toml"), toml).unwrap();
    let base = LayerBuilder::new()
        .dir("etc/")
        .file("etc/old", b"old\n", 0o644)
        .file("etc/keep", b"keep\n", 0o644)
        .finish();
    let top = LayerBuilder::new().file("etc/.wh.old", b"", 0o644).finish();
    let config = serde_json::json!({"Env": ["A=1"], "WorkingDir": "/etc"});
    let saved = ws.path("saved");
    let layers =
        oci_layout::write_docker_archive_dir(&saved, vec![base, top], host_oci_arch(), config);
    oci_layout::archive(&saved, &project.join("saved.tar"));
    let (_, staging) = ws.pack_ok(&project, "legacy.s9pk");
    let images = staging.join("images").join(HOST);
    let listing = squashfs_listing(&images.join("main.squashfs"));
    assert!(has_entry(&listing, "/etc/keep") && !has_entry(&listing, "/etc/old"));
    let metadata: serde_json::Value =
        serde_json::from_slice(&fs::read(images.join("main.json")).unwrap()).unwrap();
    assert_eq!(metadata["workdir"], "/etc");

    // A tampered layer no longer matches its diff id.
    let mut bytes = fs::read(&layers[0]).unwrap();
    bytes[600] ^= 1;
    fs::write(&layers[0], bytes).unwrap();
    oci_layout::archive(&saved, &project.join("saved.tar"));
    let err = ws.pack_err(&project);
    assert!(
        err.contains("layer0/layer.tar") && err.contains("does not match its digest"),
        "{err}"
    );
}
