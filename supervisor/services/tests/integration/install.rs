//! `Packages::install` and the trust list with real signed archives.

use hearth_s9pk::S9pkReader;
use hearth_services::InstallError;

use super::common::{ARCH, Pkg, World, key, pem};

#[test]
fn trusted_package_installs_stopped_with_filtered_archive_and_image() {
    let w = World::new();
    let dev = key("dev");
    w.packages
        .trust_add(&pem(&dev), Some("Dev".into()))
        .unwrap();
    let pkg = Pkg::new("hello");
    let path = pkg.write(&dev, w.dir.path());

    let (result, _) = w.packages.install(&path, false).unwrap();
    assert_eq!(result.id, "hello");
    assert_eq!(result.version, "1.0.0:0");
    assert!(result.signer_trusted);
    assert_eq!(
        result.signer_fingerprint,
        hearth_services::fingerprint(&dev.verifying_key())
    );

    let e = w.entry("hello");
    assert_eq!(e["stateInfo"]["state"], "installed");
    assert_eq!(e["statusInfo"]["desired"], "stopped");
    assert_eq!(e["statusInfo"]["state"], "stopped");
    assert_eq!(e["manifest"]["title"], "The hello");
    assert_eq!(
        e["signer"]["fingerprint"],
        result.signer_fingerprint.as_str()
    );
    assert_eq!(e["signer"]["trusted"], true);

    // The copy is still correctly signed, keeps only this arch's images, and the
    // extracted image is byte-identical.
    let archive = w.data().join("packages/archive/hello/1.0.0:0.s9pk");
    let mut r = S9pkReader::open(std::fs::File::open(&archive).unwrap(), None).unwrap();
    r.verify_all().unwrap();
    assert_eq!(r.signer(), dev.verifying_key());
    assert!(
        r.read_file(&format!("images/{ARCH}/main.squashfs"), 1 << 20)
            .is_ok()
    );
    assert!(
        r.read_file("images/aarch64/main.squashfs", 1 << 20)
            .is_err()
    );
    let image = std::fs::read(w.data().join("packages/images/hello/main.squashfs")).unwrap();
    assert_eq!(image, pkg.image);
    // The image defaults (env, workdir, user) are kept for hearth-container.
    let config = w.data().join("packages/images/hello/config");
    assert_eq!(
        std::fs::read_to_string(config.join("main.env")).unwrap(),
        "PATH=/usr/bin:/bin\nGREETING=hi\n"
    );
    assert!(
        std::fs::read_to_string(config.join("main.json"))
            .unwrap()
            .contains(r#""workdir":"/srv""#)
    );
    let spec = std::fs::read(w.data().join("packages/images/hello/hearth.json")).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&spec).unwrap(),
        pkg.spec()
    );

    let list = w.packages.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].state.as_str(), list[0].status.as_str()),
        ("installed", "stopped")
    );
}

#[test]
fn tampered_byte_is_refused_and_nothing_is_written() {
    let w = World::new();
    let dev = key("dev");
    w.packages.trust_add(&pem(&dev), None).unwrap();
    let pkg = Pkg::new("hello");
    let path = pkg.write(&dev, w.dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    // Flip one byte inside the image body (a long run of 0x5a).
    let at = bytes
        .windows(64)
        .position(|w| w.iter().all(|b| *b == 0x5a))
        .unwrap()
        + 10;
    bytes[at] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let err = w.packages.install(&path, false).unwrap_err();
    assert!(matches!(err, InstallError::Verify { .. }), "{err}");
    assert!(err.to_string().contains("hash"), "{err}");
    assert!(w.entry("hello").is_null());
    assert!(w.package_files().is_empty(), "{:?}", w.package_files());
}

#[test]
fn untrusted_signer_is_refused_unless_allowed_and_recorded_either_way() {
    let w = World::new();
    w.packages.trust_add(&pem(&key("dev")), None).unwrap();
    let stranger = key("stranger");
    let path = Pkg::new("hello").write(&stranger, w.dir.path());
    let fp = hearth_services::fingerprint(&stranger.verifying_key());

    let err = w.packages.install(&path, false).unwrap_err();
    match &err {
        InstallError::UntrustedSigner { fingerprint, .. } => assert_eq!(fingerprint, &fp),
        other => panic!("expected untrusted signer, got {other}"),
    }
    assert!(err.to_string().contains("allowUntrusted"));
    assert!(w.entry("hello").is_null());
    assert!(w.package_files().is_empty());

    let (result, _) = w.packages.install(&path, true).unwrap();
    assert!(!result.signer_trusted);
    let e = w.entry("hello");
    assert_eq!(e["signer"]["fingerprint"], fp.as_str());
    assert_eq!(e["signer"]["trusted"], false);
}

#[test]
fn removed_key_is_no_longer_trusted() {
    let w = World::new();
    let dev = key("dev");
    let (k, _) = w.packages.trust_add(&pem(&dev), None).unwrap();
    assert_eq!(w.packages.trust_list().unwrap().len(), 1);
    // Adding the same key again keeps one entry.
    w.packages
        .trust_add(&pem(&dev), Some("again".into()))
        .unwrap();
    assert_eq!(w.packages.trust_list().unwrap().len(), 1);
    w.packages.trust_remove(&k.fingerprint).unwrap();
    assert!(w.packages.trust_list().unwrap().is_empty());
    assert!(w.packages.trust_remove(&k.fingerprint).is_err());
    let path = Pkg::new("hello").write(&dev, w.dir.path());
    assert!(matches!(
        w.packages.install(&path, false),
        Err(InstallError::UntrustedSigner { .. })
    ));
    assert!(w.packages.trust_add("not a key", None).is_err());
}

#[test]
fn missing_and_out_of_range_dependencies_are_all_listed() {
    let w = World::new();
    let dev = key("dev");
    w.packages.trust_add(&pem(&dev), None).unwrap();
    let mut old_db = Pkg::new("db");
    old_db.version = "1.0.0:0".into();
    w.packages
        .install(&old_db.write(&dev, w.dir.path()), false)
        .unwrap();

    let mut app = Pkg::new("app");
    app.deps = vec![
        ("db".into(), ">=2.0.0:0".into(), false),
        ("cache".into(), ">=1.0.0:0".into(), false),
        ("metrics".into(), ">=1.0.0:0".into(), true),
    ];
    let path = app.write(&dev, w.dir.path());
    let err = w.packages.install(&path, false).unwrap_err();
    let InstallError::Dependencies { missing, .. } = &err else {
        panic!("expected dependencies error, got {err}");
    };
    assert_eq!(missing.len(), 2, "{missing:?}");
    assert!(
        missing
            .iter()
            .any(|m| m.starts_with("cache") && m.contains("not installed"))
    );
    assert!(
        missing
            .iter()
            .any(|m| m.starts_with("db") && m.contains("installed: 1.0.0:0"))
    );
    assert!(w.entry("app").is_null());

    // With the dependencies satisfied it installs.
    let mut cache = Pkg::new("cache");
    cache.version = "1.2.0:0".into();
    w.packages
        .install(&cache.write(&dev, w.dir.path()), false)
        .unwrap();
    w.packages.uninstall("db", false).unwrap();
    w.store
        .mutate(|d| {
            d["public"]["packageData"]
                .as_object_mut()
                .unwrap()
                .remove("db");
            Ok::<_, ()>(())
        })
        .unwrap();
    let mut new_db = Pkg::new("db");
    new_db.version = "2.1.0:0".into();
    w.packages
        .install(&new_db.write(&dev, w.dir.path()), false)
        .unwrap();
    w.packages.install(&path, false).unwrap();
}

#[test]
fn wrong_arch_new_os_and_reinstall_are_refused_before_writing() {
    let w = World::new();
    let dev = key("dev");
    w.packages.trust_add(&pem(&dev), None).unwrap();

    let mut arm = Pkg::new("arm-only");
    arm.arches = vec!["aarch64".into()];
    let err = w
        .packages
        .install(&arm.write(&dev, w.dir.path()), false)
        .unwrap_err();
    assert!(matches!(err, InstallError::Arch { .. }), "{err}");
    assert!(err.to_string().contains("aarch64"), "{err}");

    let mut future = Pkg::new("future");
    future.os_version = "9.0.0".into();
    let err = w
        .packages
        .install(&future.write(&dev, w.dir.path()), false)
        .unwrap_err();
    assert!(matches!(err, InstallError::OsVersion { .. }), "{err}");
    assert!(w.package_files().is_empty());

    let path = Pkg::new("hello").write(&dev, w.dir.path());
    w.packages.install(&path, false).unwrap();
    let before = w.package_files();
    let err = w.packages.install(&path, false).unwrap_err();
    assert!(
        matches!(err, InstallError::AlreadyInstalled { .. }),
        "{err}"
    );
    assert_eq!(w.package_files(), before);
    assert_eq!(w.entry("hello")["stateInfo"]["state"], "installed");
}

#[test]
fn newer_version_is_staged_as_an_update_and_older_ones_need_allow_downgrade() {
    let w = World::new();
    let dev = key("dev");
    w.packages.trust_add(&pem(&dev), None).unwrap();
    let mut v2 = Pkg::new("hello");
    v2.version = "2.0.0:0".into();
    w.packages
        .install(&v2.write(&dev, w.dir.path()), false)
        .unwrap();
    let before = w.package_files();

    let v1 = Pkg::new("hello").write(&dev, w.dir.path());
    let err = w.packages.install(&v1, false).unwrap_err();
    assert!(matches!(err, InstallError::Downgrade { .. }), "{err}");
    assert!(err.to_string().contains("allowDowngrade"), "{err}");
    assert_eq!(
        w.package_files(),
        before,
        "a refused downgrade writes nothing"
    );

    let mut v3 = Pkg::new("hello");
    v3.version = "3.0.0:0".into();
    v3.image = vec![0x33; 4000];
    let (res, _) = w
        .packages
        .install(&v3.write(&dev, w.dir.path()), false)
        .unwrap();
    assert_eq!(res.version, "3.0.0:0");
    let e = w.entry("hello");
    assert_eq!(e["stateInfo"]["state"], "updating");
    assert_eq!(e["stateInfo"]["phase"], "stopping");
    assert_eq!(e["stateInfo"]["update"]["from"], "2.0.0:0");
    assert_eq!(e["stateInfo"]["update"]["to"], "3.0.0:0");
    // Until the reconciler swaps, the entry is still the installed version.
    assert_eq!(e["manifest"]["version"], "2.0.0:0");
    let staged = w.data().join("packages/update/hello/next/main.squashfs");
    assert_eq!(std::fs::read(staged).unwrap(), vec![0x33; 4000]);
    // The new version's image defaults are staged with it (moved in at the swap).
    assert!(
        w.data()
            .join("packages/update/hello/next/config/main.env")
            .is_file()
    );
    assert!(
        w.data()
            .join("packages/archive/hello/3.0.0:0.s9pk")
            .is_file()
    );
    assert!(
        w.data()
            .join("packages/archive/hello/2.0.0:0.s9pk")
            .is_file()
    );

    // One update at a time.
    let mut v4 = Pkg::new("hello");
    v4.version = "4.0.0:0".into();
    let err = w
        .packages
        .install(&v4.write(&dev, w.dir.path()), false)
        .unwrap_err();
    assert!(matches!(err, InstallError::Busy { .. }), "{err}");
}

#[test]
fn downgrade_with_allow_downgrade_is_staged() {
    let w = World::new();
    let dev = key("dev");
    w.packages.trust_add(&pem(&dev), None).unwrap();
    let mut v2 = Pkg::new("hello");
    v2.version = "2.0.0:0".into();
    w.packages
        .install(&v2.write(&dev, w.dir.path()), false)
        .unwrap();
    let opts = hearth_services::InstallOptions {
        allow_untrusted: false,
        allow_downgrade: true,
    };
    let v1 = Pkg::new("hello").write(&dev, w.dir.path());
    w.packages.install_with(&v1, opts).unwrap();
    assert_eq!(w.entry("hello")["stateInfo"]["update"]["to"], "1.0.0:0");
}

#[test]
fn invalid_service_spec_is_refused() {
    let w = World::new();
    let dev = key("dev");
    let pkg = Pkg::new("hello");
    let mut b = hearth_s9pk::ArchiveBuilder::new();
    b.add_file_bytes(
        "manifest.json",
        serde_json::to_vec(&pkg.manifest()).unwrap(),
    )
    .unwrap();
    b.add_file_bytes(
        "hearth.json",
        br#"{"daemons": [{"id": "web", "image": "nope"}]}"#.to_vec(),
    )
    .unwrap();
    b.add_file_bytes(&format!("images/{ARCH}/main.squashfs"), vec![1; 10])
        .unwrap();
    let path = w.dir.path().join("bad.s9pk");
    b.write_file(&dev, &path).unwrap();
    let err = w.packages.install(&path, true).unwrap_err();
    assert!(matches!(err, InstallError::Spec { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(w.entry("hello").is_null());
}

#[test]
fn update_out_of_a_dependents_range_is_refused_with_the_dependents() {
    let w = World::new();
    let dev = key("dev");
    w.packages.trust_add(&pem(&dev), None).unwrap();
    w.packages
        .install(&Pkg::new("db").write(&dev, w.dir.path()), false)
        .unwrap();
    let mut app = Pkg::new("app");
    app.deps = vec![("db".into(), ">=1.0.0:0 <2.0.0:0".into(), false)];
    w.packages
        .install(&app.write(&dev, w.dir.path()), false)
        .unwrap();
    let before = w.package_files();
    let mut db2 = Pkg::new("db");
    db2.version = "2.0.0:0".into();
    let err = w
        .packages
        .install(&db2.write(&dev, w.dir.path()), false)
        .unwrap_err();
    match &err {
        InstallError::BreaksDependents { dependents, .. } => {
            assert_eq!(dependents.len(), 1);
            assert!(dependents[0].starts_with("app needs db"), "{dependents:?}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(w.package_files(), before, "a refused update writes nothing");
    assert_eq!(w.entry("db")["stateInfo"]["state"], "installed");
    let mut db15 = Pkg::new("db");
    db15.version = "1.5.0:0".into();
    w.packages
        .install(&db15.write(&dev, w.dir.path()), false)
        .unwrap();
    assert_eq!(w.entry("db")["stateInfo"]["state"], "updating");
}

/// Every `stateInfo.progress` of `id` the store's public revisions after `rev` showed,
/// in order (`None` when removed).
fn progress_seen(w: &World, id: &str, rev: u64) -> Vec<Option<serde_json::Value>> {
    let base = format!("/packageData/{id}/stateInfo/progress");
    let mut current: Option<serde_json::Value> = None;
    let mut seen = Vec::new();
    for r in w.store.public_since(rev).unwrap() {
        let ops = serde_json::to_value(&r.patch).unwrap();
        let before = current.clone();
        for op in ops.as_array().unwrap() {
            let path = op["path"].as_str().unwrap();
            let value = op.get("value").cloned();
            if path == base || path == format!("/packageData/{id}") {
                current = match op["op"].as_str() {
                    Some("remove") => None,
                    _ if path == base => value,
                    _ => value.and_then(|v| v.pointer("/stateInfo/progress").cloned()),
                };
            } else if let Some(field) = path.strip_prefix(&format!("{base}/")) {
                current.as_mut().unwrap()[field] = value.unwrap();
            }
        }
        if current != before {
            seen.push(current.clone());
        }
    }
    seen
}

#[test]
fn install_shows_copy_and_unpack_progress_then_clears_it() {
    let w = World::new();
    let dev = key("dev");
    w.packages.trust_add(&pem(&dev), None).unwrap();
    let mut pkg = Pkg::new("hello");
    pkg.image = vec![7; 3 << 20];
    let path = pkg.write(&dev, w.dir.path());
    let source_len = std::fs::metadata(&path).unwrap().len();
    let rev = w.store.subscribe().dump.rev;
    w.packages.install(&path, false).unwrap();
    let archive_len = std::fs::metadata(w.data().join("packages/archive/hello/1.0.0:0.s9pk"))
        .unwrap()
        .len();

    let seen = progress_seen(&w, "hello", rev);
    let p = |phase: &str, done: u64, total: u64| {
        Some(serde_json::json!({"phase": phase, "bytesDone": done, "bytesTotal": total}))
    };
    assert_eq!(seen.first(), Some(&p("copy", 0, source_len)), "{seen:?}");
    assert!(
        seen.contains(&p("copy", archive_len, archive_len)),
        "{seen:?}"
    );
    assert!(seen.contains(&p("unpack", 0, 3 << 20)), "{seen:?}");
    assert!(seen.contains(&p("unpack", 3 << 20, 3 << 20)), "{seen:?}");
    assert_eq!(seen.last(), Some(&None), "cleared once installed: {seen:?}");
    for pair in seen.windows(2) {
        if let [Some(a), Some(b)] = pair
            && a["phase"] == b["phase"]
        {
            assert!(
                a["bytesDone"].as_u64() <= b["bytesDone"].as_u64(),
                "{seen:?}"
            );
        }
    }
}
