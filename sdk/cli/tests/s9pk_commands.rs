//! Runs the real `hearth` binary: `hearth key …` and `hearth s9pk
//! inspect|verify|filter|pack-dir`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn hearth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = hearth(args);
    assert!(
        out.status.success(),
        "hearth {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail; returns its stderr, which must be one line.
fn fails(args: &[&str]) -> String {
    let out = hearth(args);
    assert!(!out.status.success(), "hearth {args:?} succeeded");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
    public: String,
    pkg: PathBuf,
}

/// A key and a package packed from a small tree with two arches.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let public = ok(&["key", "generate", "--out", s(&key)]);
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("images/x86_64")).unwrap();
    std::fs::create_dir_all(src.join("images/aarch64")).unwrap();
    std::fs::write(
        src.join("manifest.json"),
        br#"{"id":"hello","title":"Hello"}"#,
    )
    .unwrap();
    std::fs::write(src.join("hearth.json"), br#"{"daemons":{}}"#).unwrap();
    std::fs::write(src.join("images/x86_64/main.squashfs"), vec![1u8; 70_000]).unwrap();
    std::fs::write(src.join("images/aarch64/main.squashfs"), vec![2u8; 50_000]).unwrap();
    let pkg = dir.path().join("hello.s9pk");
    ok(&["s9pk", "pack-dir", s(&src), "--key", s(&key), "-o", s(&pkg)]);
    Fixture { dir, public, pkg }
}

#[test]
fn key_generate_writes_private_pem_0600_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let public = ok(&["key", "generate", "--out", s(&key)]);
    assert!(
        public.starts_with("-----BEGIN PUBLIC KEY-----\n"),
        "{public}"
    );
    let private = std::fs::read_to_string(&key).unwrap();
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let err = fails(&["key", "generate", "--out", s(&key)]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), private);
    assert_eq!(ok(&["key", "public", s(&key)]), public);
}

#[test]
fn key_public_rejects_a_non_key() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.pem");
    std::fs::write(&bogus, "hello").unwrap();
    let err = fails(&["key", "public", s(&bogus)]);
    assert!(err.contains("bogus.pem"), "{err}");
}

#[test]
fn inspect_prints_manifest_spec_signer_commitment_and_tree() {
    let f = fixture();
    let out = ok(&["s9pk", "inspect", s(&f.pkg)]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["manifest"]["id"], "hello");
    assert_eq!(doc["serviceSpec"]["daemons"], serde_json::json!({}));
    assert_eq!(doc["signer"].as_str().unwrap(), f.public);
    let sighash = doc["rootSighash"].as_str().unwrap();
    assert_eq!(sighash.len(), 43, "32 bytes unpadded base64: {sighash}");
    assert!(!sighash.contains('='));
    assert!(doc["rootMaxsize"].as_u64().unwrap() > 0);
    let files = doc["files"].as_array().unwrap();
    let x86 = files
        .iter()
        .find(|e| e["path"] == "images/x86_64/main.squashfs")
        .unwrap();
    assert_eq!(x86["type"], "file");
    assert_eq!(x86["size"], 70_000);
    assert_eq!(
        x86["hash"].as_str().unwrap(),
        blake3::hash(&[1u8; 70_000]).to_hex().as_str()
    );
    let images = files.iter().find(|e| e["path"] == "images").unwrap();
    assert_eq!(images["type"], "directory");
}

#[test]
fn verify_accepts_valid_and_trusted_packages() {
    let f = fixture();
    let out = ok(&["s9pk", "verify", s(&f.pkg)]);
    assert!(out.starts_with("ok: 4 files (120044 bytes)"), "{out}");
    let public = f.dir.path().join("pub.pem");
    std::fs::write(&public, &f.public).unwrap();
    ok(&["s9pk", "verify", s(&f.pkg), "--trust", s(&public)]);
}

#[test]
fn verify_rejects_an_untrusted_signer() {
    let f = fixture();
    let other = f.dir.path().join("other.pem");
    let other_public = f.dir.path().join("other.pub.pem");
    std::fs::write(&other_public, ok(&["key", "generate", "--out", s(&other)])).unwrap();
    let err = fails(&["s9pk", "verify", s(&f.pkg), "--trust", s(&other_public)]);
    assert!(err.contains("not a trusted key"), "{err}");
}

#[test]
fn verify_names_the_corrupted_file_and_offset() {
    let f = fixture();
    let mut bytes = std::fs::read(&f.pkg).unwrap();
    // The last body is the last file in breadth-first order; flip its last byte.
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&f.pkg, &bytes).unwrap();
    let err = fails(&["s9pk", "verify", s(&f.pkg)]);
    assert!(err.contains("main.squashfs"), "{err}");
    assert!(err.contains("at offset"), "{err}");
    assert!(err.contains("hashes to"), "{err}");
}

#[test]
fn verify_reports_truncation_and_garbage() {
    let f = fixture();
    let bytes = std::fs::read(&f.pkg).unwrap();
    std::fs::write(&f.pkg, &bytes[..bytes.len() - 10]).unwrap();
    let err = fails(&["s9pk", "verify", s(&f.pkg)]);
    assert!(err.contains("past the end"), "{err}");
    std::fs::write(&f.pkg, b"PK\x03\x04 not a package").unwrap();
    let err = fails(&["s9pk", "verify", s(&f.pkg)]);
    assert!(err.contains("not an S9PK file"), "{err}");
    let err = fails(&["s9pk", "verify", s(&f.dir.path().join("absent.s9pk"))]);
    assert!(err.contains("absent.s9pk"), "{err}");
}

#[test]
fn filter_keeps_one_arch_and_the_signature() {
    let f = fixture();
    let out = f.dir.path().join("x86.s9pk");
    let printed = ok(&[
        "s9pk",
        "filter",
        s(&f.pkg),
        "--arch",
        "x86_64",
        "-o",
        s(&out),
    ]);
    assert_eq!(printed.trim(), "stripped images/aarch64");
    let verified = ok(&["s9pk", "verify", s(&out)]);
    assert!(
        verified.starts_with("ok: 3 files (70044 bytes)"),
        "{verified}"
    );
    assert!(verified.contains("1 missing"), "{verified}");
    let before: serde_json::Value =
        serde_json::from_str(&ok(&["s9pk", "inspect", s(&f.pkg)])).unwrap();
    let after: serde_json::Value =
        serde_json::from_str(&ok(&["s9pk", "inspect", s(&out)])).unwrap();
    assert_eq!(before["rootSighash"], after["rootSighash"]);
    assert_eq!(before["signer"], after["signer"]);
    let arm = after["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "images/aarch64")
        .unwrap();
    assert_eq!(arm["type"], "missing");
    assert!(std::fs::metadata(&out).unwrap().len() < std::fs::metadata(&f.pkg).unwrap().len());
    let orig = std::fs::read(&f.pkg).unwrap();
    let filtered = std::fs::read(&out).unwrap();
    assert_eq!(
        orig[..139],
        filtered[..139],
        "signer, signature, sighash, maxsize kept"
    );
}

#[test]
fn inspect_without_spec_gives_null_and_bad_manifest_json_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    ok(&["key", "generate", "--out", s(&key)]);
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("manifest.json"), br#"{"id":"plain"}"#).unwrap();
    let pkg = dir.path().join("plain.s9pk");
    ok(&["s9pk", "pack-dir", s(&src), "--key", s(&key), "-o", s(&pkg)]);
    let doc: serde_json::Value = serde_json::from_str(&ok(&["s9pk", "inspect", s(&pkg)])).unwrap();
    assert_eq!(doc["manifest"]["id"], "plain");
    assert!(doc["serviceSpec"].is_null());
    assert_eq!(doc["files"].as_array().unwrap().len(), 1);

    std::fs::write(src.join("manifest.json"), b"{not json").unwrap();
    ok(&["s9pk", "pack-dir", s(&src), "--key", s(&key), "-o", s(&pkg)]);
    let err = fails(&["s9pk", "inspect", s(&pkg)]);
    assert!(err.contains("/manifest.json is not valid JSON"), "{err}");
}

fn json_of(args: &[&str]) -> serde_json::Value {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("hearth {args:?}: {e}: {out:?}"))
}

#[test]
fn every_verb_prints_one_json_document_with_json() {
    let f = fixture();
    let pkg = s(&f.pkg);
    let public = f.dir.path().join("pub.pem");
    std::fs::write(&public, &f.public).unwrap();

    let doc = json_of(&["s9pk", "inspect", pkg, "--json"]);
    assert_eq!(doc["manifest"]["id"], "hello");
    let doc = json_of(&["s9pk", "inspect", "--signer", pkg, "--json"]);
    assert_eq!(doc["signer"].as_str().unwrap(), f.public);

    let doc = json_of(&["--json", "s9pk", "verify", pkg]);
    assert_eq!(doc["ok"], true);
    assert_eq!(
        (doc["files"].as_u64(), doc["bytes"].as_u64()),
        (Some(4), Some(120_044))
    );
    assert_eq!(doc["missing"], 0);
    assert_eq!(doc["signer"].as_str().unwrap(), f.public);
    assert_eq!(doc["signerTrusted"], false);
    let doc = json_of(&["s9pk", "verify", pkg, "--trust", s(&public), "--json"]);
    assert_eq!(doc["signerTrusted"], true);

    let out = f.dir.path().join("x86.s9pk");
    let doc = json_of(&[
        "s9pk",
        "filter",
        pkg,
        "--arch",
        "x86_64",
        "-o",
        s(&out),
        "--json",
    ]);
    assert_eq!(doc["stripped"], serde_json::json!(["images/aarch64"]));
    assert_eq!(
        (doc["arch"].as_str(), doc["out"].as_str()),
        (Some("x86_64"), Some(s(&out)))
    );

    let key = f.dir.path().join("k2.pem");
    let doc = json_of(&["key", "generate", "--out", s(&key), "--json"]);
    let generated = doc["publicKey"].as_str().unwrap().to_owned();
    assert!(generated.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let doc = json_of(&["key", "public", s(&key), "--json"]);
    assert_eq!(doc["publicKey"].as_str().unwrap(), generated);

    let src = f.dir.path().join("src");
    let again = f.dir.path().join("again.s9pk");
    let doc = json_of(&[
        "s9pk",
        "pack-dir",
        s(&src),
        "--key",
        s(&key),
        "-o",
        s(&again),
        "--json",
    ]);
    assert_eq!(doc["out"].as_str(), Some(s(&again)));
    // Without --json the human forms stay.
    assert!(ok(&["s9pk", "verify", pkg]).starts_with("ok: 4 files"));
    assert_eq!(
        ok(&[
            "s9pk",
            "pack-dir",
            s(&src),
            "--key",
            s(&key),
            "-o",
            s(&again)
        ]),
        ""
    );
}

#[test]
fn inspect_says_what_it_verified_and_verify_checks_every_body() {
    let f = fixture();
    let doc = json_of(&["s9pk", "inspect", s(&f.pkg)]);
    let v = &doc["verified"];
    assert_eq!(v["signature"], true);
    assert_eq!(v["tablesOfContents"], true);
    assert_eq!(v["allBodies"], false);
    assert_eq!(
        v["bodies"],
        serde_json::json!(["manifest.json", "hearth.json"])
    );
    let full = json_of(&["s9pk", "inspect", "--verify", s(&f.pkg)]);
    let v = &full["verified"];
    assert_eq!(v["allBodies"], true);
    assert_eq!(v["bodies"].as_array().unwrap().len(), 4);
    assert_eq!(v["bodyBytes"], 120_044);
    assert_eq!(full["files"], doc["files"]);

    // A corrupted image body: the tree still reads (its hash is in the signed TOC,
    // not checked without reading the body), `--verify` names the file.
    let mut bytes = std::fs::read(&f.pkg).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&f.pkg, &bytes).unwrap();
    let doc = json_of(&["s9pk", "inspect", s(&f.pkg)]);
    assert_eq!(doc["verified"]["allBodies"], false);
    let err = fails(&["s9pk", "inspect", "--verify", s(&f.pkg)]);
    assert!(
        err.contains("main.squashfs") && err.contains("hashes to"),
        "{err}"
    );
}

/// Runs `hearth args` with its stdout a pipe whose reading end is already closed
/// (what `| head -1` leaves once head has exited): the first write fails with EPIPE.
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    let f = fixture();
    let pkg = s(&f.pkg);
    let key = f.dir.path().join("key.pem");
    let out = f.dir.path().join("x86.s9pk");
    let runs: [&[&str]; 7] = [
        &["s9pk", "inspect", pkg],
        &["s9pk", "inspect", "--signer", pkg],
        &["s9pk", "verify", pkg],
        &["s9pk", "verify", pkg, "--json"],
        &["s9pk", "filter", pkg, "--arch", "x86_64", "-o", s(&out)],
        &["key", "public", s(&key)],
        &["key", "public", s(&key), "--json"],
    ];
    for args in runs {
        let o = with_closed_stdout(args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success(),
            "hearth {args:?}: {:?} {stderr}",
            o.status
        );
        assert!(stderr.is_empty(), "hearth {args:?}: {stderr}");
    }
}

#[test]
fn inspect_piped_into_head_exits_cleanly() {
    // Enough files that inspect's output is larger than a pipe's buffer: hearth is
    // still writing when head exits.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    ok(&["key", "generate", "--out", s(&key)]);
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("many")).unwrap();
    std::fs::write(src.join("manifest.json"), br#"{"id":"many"}"#).unwrap();
    for i in 0..2000 {
        std::fs::write(src.join(format!("many/file-{i:04}")), i.to_string()).unwrap();
    }
    let pkg = dir.path().join("many.s9pk");
    ok(&["s9pk", "pack-dir", s(&src), "--key", s(&key), "-o", s(&pkg)]);
    assert!(ok(&["s9pk", "inspect", s(&pkg)]).len() > 128 * 1024);
    let o = Command::new("bash")
        .args([
            "-c",
            "set -o pipefail; \"$0\" s9pk inspect \"$1\" | head -1",
        ])
        .args([env!("CARGO_BIN_EXE_hearth"), s(&pkg)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{:?} {stderr}", o.status);
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "{\n");
}

#[test]
fn filter_refuses_unknown_architectures_and_ones_the_package_lacks() {
    let f = fixture();
    let out = f.dir.path().join("out.s9pk");
    let o = hearth(&["s9pk", "filter", s(&f.pkg), "--arch", "mips", "-o", s(&out)]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("invalid value 'mips'"), "{err}");
    assert!(err.contains("x86_64, aarch64, riscv64"), "{err}");
    let err = fails(&[
        "s9pk",
        "filter",
        s(&f.pkg),
        "--arch",
        "riscv64",
        "-o",
        s(&out),
    ]);
    assert!(
        err.contains("has no images for riscv64 (it has: aarch64, x86_64)"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
}
