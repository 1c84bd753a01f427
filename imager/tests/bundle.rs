//! `hearth-imager bundle create|verify` through the real binary: a good bundle verifies and
//! is byte-identical when made twice; a tampered manifest, a tampered file, a truncated
//! bundle and the wrong key each fail with an error that says what is wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn imager() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hearth-imager"))
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = hearth_s9pk::key::generate().unwrap();
        let other = hearth_s9pk::key::generate().unwrap();
        let p = dir.path();
        std::fs::write(
            p.join("key.pem"),
            hearth_s9pk::key::signing_key_to_pem(&key).unwrap(),
        )
        .unwrap();
        let public = hearth_s9pk::key::verifying_key_to_pem(&key.verifying_key()).unwrap();
        std::fs::write(p.join("key.pub"), public).unwrap();
        let public = hearth_s9pk::key::verifying_key_to_pem(&other.verifying_key()).unwrap();
        std::fs::write(p.join("other.pub"), public).unwrap();
        for (name, len) in [
            ("vmlinuz", 5000usize),
            ("initrd.img", 700),
            ("root.squashfs", 300_000),
        ] {
            let bytes: Vec<u8> = (0..len)
                .map(|i| u8::try_from(i * 31 % 253).unwrap())
                .collect();
            std::fs::write(p.join(name), bytes).unwrap();
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn create(&self, out: &str) -> PathBuf {
        let out = self.path(out);
        let st = imager()
            .args([
                "bundle",
                "create",
                "--version",
                "0.1.0",
                "--target",
                "x86_64-uefi",
            ])
            .arg("--root")
            .arg(self.path("root.squashfs"))
            .arg("--kernel")
            .arg(self.path("vmlinuz"))
            .arg("--initrd")
            .arg(self.path("initrd.img"))
            .arg("--signing-key")
            .arg(self.path("key.pem"))
            .args(["--source-date-epoch", "1735689600", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        out
    }

    /// Runs `bundle verify`; returns (success, stdout + stderr).
    fn verify(&self, file: &Path, key: &str) -> (bool, String) {
        let out = imager()
            .args(["bundle", "verify", "--key"])
            .arg(self.path(key))
            .arg(file)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn expect_failure(&self, file: &Path, key: &str, want: &[&str]) {
        let (ok, text) = self.verify(file, key);
        assert!(!ok, "verify succeeded on a bad bundle: {text}");
        for w in want {
            assert!(text.contains(w), "expected {w:?} in: {text}");
        }
    }
}

/// Offset of an entry's content in the tar archive.
fn content_offset(bytes: &[u8], name: &str) -> usize {
    let mut off = 0;
    while off + 512 <= bytes.len() {
        let hdr = &bytes[off..off + 512];
        let n = hdr.iter().take(100).position(|&b| b == 0).unwrap_or(100);
        let size = usize::from_str_radix(
            std::str::from_utf8(&hdr[124..135])
                .unwrap()
                .trim_matches(|c| c == '\0' || c == ' '),
            8,
        )
        .unwrap();
        if &hdr[..n] == name.as_bytes() {
            return off + 512;
        }
        off += 512 + size.div_ceil(512) * 512;
    }
    panic!("{name} not in archive");
}

#[test]
fn good_bundle_verifies_and_is_reproducible() {
    let f = Fixture::new();
    let a = f.create("a.ota");
    let b = f.create("b.ota");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let (ok, text) = f.verify(&a, "key.pub");
    assert!(ok, "{text}");
    assert!(text.contains("signature and 3 files ok"), "{text}");
    // The hash sha256sum prints for the root is listed.
    let want = sha256_hex(&std::fs::read(f.path("root.squashfs")).unwrap());
    assert!(text.contains(&want), "{text}");
    // --extract writes exactly the inputs.
    let x = f.path("x");
    let out = imager()
        .args(["bundle", "verify", "--key"])
        .arg(f.path("key.pub"))
        .arg(&a)
        .arg("--extract")
        .arg(&x)
        .output()
        .unwrap();
    assert!(out.status.success());
    for name in ["vmlinuz", "initrd.img", "root.squashfs"] {
        assert_eq!(
            std::fs::read(x.join(name)).unwrap(),
            std::fs::read(f.path(name)).unwrap()
        );
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)[..64].to_owned()
}

#[test]
fn wrong_key_is_refused() {
    let f = Fixture::new();
    let a = f.create("a.ota");
    f.expect_failure(&a, "other.pub", &["signature does not verify", "a.ota"]);
}

#[test]
fn tampered_manifest_is_refused() {
    let f = Fixture::new();
    let a = f.create("a.ota");
    let mut bytes = std::fs::read(&a).unwrap();
    let at = content_offset(&bytes, "manifest.json");
    // Change the version the manifest announces: same length, so the tar stays valid.
    let text = std::str::from_utf8(&bytes[at..at + 200])
        .unwrap_or_default()
        .to_owned();
    let v = text.find("0.1.0").expect("version in manifest");
    bytes[at + v] = b'9';
    std::fs::write(&a, &bytes).unwrap();
    f.expect_failure(&a, "key.pub", &["signature does not verify"]);
}

#[test]
fn tampered_file_is_refused() {
    let f = Fixture::new();
    let a = f.create("a.ota");
    let mut bytes = std::fs::read(&a).unwrap();
    let at = content_offset(&bytes, "root.squashfs") + 1234;
    bytes[at] ^= 0xff;
    std::fs::write(&a, &bytes).unwrap();
    f.expect_failure(
        &a,
        "key.pub",
        &["root.squashfs: sha256 is", "signed manifest says"],
    );
}

#[test]
fn truncated_bundle_is_refused() {
    let f = Fixture::new();
    let a = f.create("a.ota");
    let bytes = std::fs::read(&a).unwrap();
    let at = content_offset(&bytes, "root.squashfs");
    std::fs::write(&a, &bytes[..at + 100_000]).unwrap();
    f.expect_failure(
        &a,
        "key.pub",
        &["root.squashfs is truncated: 100000 of 300000 bytes"],
    );
    // Cut in the middle of the signature: nothing is trusted.
    std::fs::write(
        &a,
        &bytes[..content_offset(&bytes, "manifest.json.sig") + 10],
    )
    .unwrap();
    let (ok, text) = f.verify(&a, "key.pub");
    assert!(!ok && text.contains("manifest.json.sig"), "{text}");
}

#[test]
fn missing_key_file_and_non_bundle_are_clear_errors() {
    let f = Fixture::new();
    let a = f.create("a.ota");
    f.expect_failure(&a, "nope.pub", &["reading key", "nope.pub"]);
    std::fs::write(f.path("junk.ota"), b"not a tar archive at all").unwrap();
    f.expect_failure(&f.path("junk.ota"), "key.pub", &["junk.ota"]);
}

fn create_v2(f: &Fixture, out: &str, release: Option<&str>) -> std::process::Output {
    let mut c = imager();
    c.args([
        "bundle",
        "create",
        "--version",
        "0.2.0",
        "--target",
        "x86_64-uefi",
    ])
    .arg("--root")
    .arg(f.path("root.squashfs"))
    .arg("--kernel")
    .arg(f.path("vmlinuz"))
    .arg("--initrd")
    .arg(f.path("initrd.img"))
    .arg("--signing-key")
    .arg(f.path("key.pem"))
    .args(["--source-date-epoch", "1735689600", "--out"])
    .arg(f.path(&format!("{out}.ota")))
    .arg("--out-v2")
    .arg(f.path(&format!("{out}.ota2")));
    if let Some(r) = release {
        c.args(["--kernel-release", r]);
    }
    c.output().unwrap()
}

/// `bundle create --out-v2` (what zz-repro.sh runs on the reference side) writes the v2
/// bundle reproducibly, and its signed manifest verifies on a device of that target with
/// the public key; without `--kernel-release` it is refused and writes nothing.
#[test]
fn v2_bundle_from_the_cli_is_reproducible_and_verifies() {
    let f = Fixture::new();
    for out in ["a", "b"] {
        let o = create_v2(&f, out, Some("6.12.57+deb12-amd64"));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let a = std::fs::read(f.path("a.ota2")).unwrap();
    assert_eq!(a, std::fs::read(f.path("b.ota2")).unwrap());
    let at = content_offset(&a, "manifest.hota");
    let pem = std::fs::read_to_string(f.path("key.pub")).unwrap();
    let key = hearth_s9pk::key::verifying_key_from_pem(&pem).unwrap();
    let len = u32::from_le_bytes(a[at + 13..at + 17].try_into().unwrap()) as usize;
    let envelope = &a[at..at + 13 + 4 + len + 64];
    let device = hearth_ota::Device {
        target: "x86_64-uefi".into(),
        compatibility: "hearth-x86_64-uefi-ab/1".into(),
        running: "0.1.0".parse().unwrap(),
        updater: hearth_ota::UPDATER_VERSION.parse().unwrap(),
    };
    let (m, _) = hearth_ota::verify(envelope, &[key], &device).unwrap();
    assert_eq!(m.kernel_release, "6.12.57+deb12-amd64");
    assert_eq!(m.images.len(), 3);
    assert_eq!(m.images[2].name, "root.squashfs");
    assert_eq!(m.images[2].size, 300_000);

    let o = create_v2(&f, "c", None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--kernel-release"));
    assert!(!f.path("c.ota").exists() && !f.path("c.ota2").exists());
}
