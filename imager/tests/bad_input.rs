//! Bad input to `hearth-imager build` through the real binary: each case fails with an
//! error naming what is wrong and leaves no output behind. All but the unknown package
//! fail before mmdebstrap; that one is caught by the `mmdebstrap --simulate` run the build
//! makes before the real one (about 15 s, needs root and the Debian mirror).
//! The full-disk cases use a real loop-mounted ext4 (root).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The shipped x86_64 recipe with `edit` applied and absolute `debian`/`overlays` paths.
fn recipe(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("imager/recipes/x86_64-uefi.toml")).unwrap();
    let text = text
        .lines()
        .filter(|l| !l.starts_with("overlays") && !l.starts_with("debian"))
        .collect::<Vec<_>>()
        .join("\n");
    let text = format!(
        "debian = {:?}\noverlays = [{:?}]\n{text}\n",
        repo().join("debian"),
        repo().join("overlays/common")
    );
    let p = dir.join("recipe.toml");
    std::fs::write(&p, edit(text)).unwrap();
    p
}

/// Runs `build` with stand-in binaries; returns (success, stdout + stderr).
fn build(dir: &Path, recipe: &Path, out: &Path) -> (bool, String) {
    let bin = dir.join("bin");
    std::fs::write(&bin, b"#!/bin/sh\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_hearth-imager"))
        .arg("build")
        .arg("--recipe")
        .arg(recipe)
        .arg("--out")
        .arg(out)
        .arg("--hearth-init")
        .arg(&bin)
        .arg("--hearthd")
        .arg(&bin)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn missing_overlay_is_refused_before_any_step() {
    let t = tempfile::tempdir().unwrap();
    let r = recipe(t.path(), |s| {
        s.replace("overlays = [", "overlays = [\"overlays/does-not-exist\", ")
    });
    let out = t.path().join("out");
    let (ok, text) = build(t.path(), &r, &out);
    assert!(!ok, "{text}");
    assert!(
        text.contains("overlays/does-not-exist") && text.contains("No such file or directory"),
        "{text}"
    );
    assert!(!text.contains("[2/7]"), "failed after step 1: {text}");
    assert!(!out.exists(), "nothing may be written: {:?}", entries(&out));
}

#[test]
fn unsupported_target_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let r = recipe(t.path(), |s| s.replace("\"x86_64-uefi\"", "\"sparc-bios\""));
    let out = t.path().join("out");
    let (ok, text) = build(t.path(), &r, &out);
    assert!(!ok, "{text}");
    assert!(
        text.contains("unsupported target \"sparc-bios\"") && text.contains("x86_64-uefi"),
        "{text}"
    );
    assert!(!out.exists());
}

#[test]
fn package_dependency_missing_from_recipe_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let r = recipe(t.path(), |s| s.replace("  \"e2fsprogs\",", ""));
    let (ok, text) = build(t.path(), &r, &t.path().join("out"));
    assert!(!ok, "{text}");
    assert!(text.contains("depends on e2fsprogs"), "{text}");
}

#[test]
fn unknown_package_is_named_before_the_long_steps() {
    if !is_root() {
        eprintln!("skipped: mmdebstrap --mode=root needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let r = recipe(t.path(), |s| {
        s.replace(
            "packages = [",
            "packages = [\"hearth-no-such-package\", \"nor-this-one\",",
        )
    });
    let out = t.path().join("out");
    let (ok, text) = build(t.path(), &r, &out);
    assert!(!ok, "{text}");
    assert!(
        text.contains("unknown package(s) hearth-no-such-package, nor-this-one")
            && text.contains("recipe.toml"),
        "{text}"
    );
    assert!(!text.contains("[3/7]"), "{text}");
    assert!(entries(&out).is_empty(), "left behind: {:?}", entries(&out));
}

/// A small ext4 loop-mounted at a temp dir, unmounted on drop.
struct SmallDisk {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(mib: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        let run = |c: &mut Command| {
            let o = c.output().unwrap();
            assert!(
                o.status.success(),
                "{c:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        run(Command::new("truncate").arg(format!("-s{mib}M")).arg(&img));
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mount));
        Self { mount, _dir: dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-d").arg(&self.mount).status();
    }
}

#[test]
fn full_output_disk_is_refused_and_nothing_is_left() {
    if !is_root() {
        eprintln!("skipped: loop mounts need root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let disk = SmallDisk::new(64);
    let out = disk.mount.join("out");
    let r = recipe(t.path(), |s| s);
    let (ok, text) = build(t.path(), &r, &out);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("not enough space in {}", out.display()))
            && text.contains("nothing was written"),
        "{text}"
    );
    assert!(entries(&out).is_empty(), "left behind: {:?}", entries(&out));

    // The bundle writer on a disk that fills up while it writes: a clear error naming the
    // file, and neither the bundle nor its temporary file is left.
    let key = hearth_s9pk::key::generate().unwrap();
    let pem = t.path().join("key.pem");
    std::fs::write(&pem, hearth_s9pk::key::signing_key_to_pem(&key).unwrap()).unwrap();
    let big = t.path().join("root.squashfs");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(80 << 20)
        .unwrap();
    let ota = disk.mount.join("x.ota");
    let o = Command::new(env!("CARGO_BIN_EXE_hearth-imager"))
        .args([
            "bundle",
            "create",
            "--version",
            "1",
            "--target",
            "x86_64-uefi",
        ])
        .arg("--root")
        .arg(&big)
        .arg("--kernel")
        .arg(&pem)
        .arg("--initrd")
        .arg(&pem)
        .arg("--signing-key")
        .arg(&pem)
        .args(["--source-date-epoch", "0", "--out"])
        .arg(&ota)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("x.ota") && err.contains("No space left on device"),
        "{err}"
    );
    let left: Vec<String> = entries(&disk.mount)
        .into_iter()
        .filter(|n| n.contains("ota"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
