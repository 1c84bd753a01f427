//! Fixtures: keys, packages, a store and a `Packages` service in a temp dir.

use std::path::{Path, PathBuf};

use hearth_s9pk::{ArchiveBuilder, SigningKey};
use hearth_services::{ContainerPlan, Host, Packages};
use hearth_store::Store;
use serde_json::{Value, json};

pub(crate) const ARCH: &str = "x86_64";

pub(crate) fn key(seed: &str) -> SigningKey {
    SigningKey::from_bytes(blake3::hash(seed.as_bytes()).as_bytes())
}

pub(crate) fn pem(key: &SigningKey) -> String {
    hearth_s9pk::key::verifying_key_to_pem(&key.verifying_key()).unwrap()
}

/// A package description, turned into a signed archive by [`Pkg::write`].
pub(crate) struct Pkg {
    pub(crate) id: String,
    pub(crate) version: String,
    pub(crate) arches: Vec<String>,
    pub(crate) os_version: String,
    /// (id, versionRange, optional)
    pub(crate) deps: Vec<(String, String, bool)>,
    pub(crate) image: Vec<u8>,
}

impl Pkg {
    pub(crate) fn new(id: &str) -> Pkg {
        Pkg {
            id: id.into(),
            version: "1.0.0:0".into(),
            arches: vec![ARCH.into(), "aarch64".into()],
            os_version: "0.4.0".into(),
            deps: Vec::new(),
            image: vec![0x5a; 5000],
        }
    }

    pub(crate) fn manifest(&self) -> Value {
        let deps: serde_json::Map<String, Value> = self
            .deps
            .iter()
            .map(|(id, _, optional)| (id.clone(), json!({"optional": optional})))
            .collect();
        json!({
            "id": self.id, "title": format!("The {}", self.id), "version": self.version,
            "license": "MIT", "osVersion": self.os_version,
            "packageRepo": "https://example.com/pkg", "upstreamRepo": "https://example.com/up",
            "description": {"short": "A test service", "long": "A test service for installs."},
            "images": {"main": {"arch": self.arches}},
            "volumes": ["main"],
            "dependencies": deps,
        })
    }

    pub(crate) fn spec(&self) -> Value {
        let deps: Vec<Value> = self
            .deps
            .iter()
            .map(|(id, range, _)| json!({"id": id, "versionRange": range, "kind": "exists"}))
            .collect();
        json!({
            "daemons": [{"id": "web", "image": "main", "command": ["httpd", "-f"]}],
            "dependencies": deps,
            "resources": {"memory": 268435456, "pids": 64},
        })
    }

    pub(crate) fn builder(&self) -> ArchiveBuilder {
        let mut b = ArchiveBuilder::new();
        b.add_file_bytes(
            "manifest.json",
            serde_json::to_vec(&self.manifest()).unwrap(),
        )
        .unwrap();
        b.add_file_bytes("hearth.json", serde_json::to_vec(&self.spec()).unwrap())
            .unwrap();
        b.add_file_bytes("LICENSE.md", b"MIT\n".to_vec()).unwrap();
        b.add_file_bytes("icon.svg", b"<svg/>".to_vec()).unwrap();
        b.add_file_bytes("instructions.md", b"# Use it\n".to_vec())
            .unwrap();
        for arch in &self.arches {
            b.add_file_bytes(&format!("images/{arch}/main.squashfs"), self.image.clone())
                .unwrap();
            b.add_file_bytes(
                &format!("images/{arch}/main.json"),
                br#"{"workdir":"/srv","user":"root","entrypoint":null,"cmd":null}"#.to_vec(),
            )
            .unwrap();
            b.add_file_bytes(
                &format!("images/{arch}/main.env"),
                b"PATH=/usr/bin:/bin\nGREETING=hi\n".to_vec(),
            )
            .unwrap();
        }
        b
    }

    /// Writes the archive signed by `key` into `dir`; returns its path.
    pub(crate) fn write(&self, key: &SigningKey, dir: &Path) -> PathBuf {
        let path = dir.join(format!(
            "{}-{}.s9pk",
            self.id,
            self.version.replace(':', "_")
        ));
        self.builder().write_file(key, &path).unwrap();
        path
    }
}

/// A store, a data dir and a `Packages` on this (fixed) host.
pub(crate) struct World {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) store: Store,
    pub(crate) packages: Packages,
}

impl World {
    pub(crate) fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open(&dir.path().join("db"), json!({"public": {}, "private": {}})).unwrap();
        let host = Host {
            arch: ARCH.into(),
            os_version: "0.4.0".parse().unwrap(),
        };
        let packages = Packages::new(store.clone(), dir.path().join("data"), host);
        World {
            dir,
            store,
            packages,
        }
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Trusts the key `dev` and installs `pkg` signed by it; returns the key.
    pub(crate) fn install_trusted(&self, pkg: &Pkg) -> SigningKey {
        let dev = key("dev");
        self.packages.trust_add(&pem(&dev), None).unwrap();
        self.packages
            .install(&pkg.write(&dev, self.dir.path()), false)
            .unwrap();
        dev
    }

    /// hearthd's container plan over this data dir (1 s stop timeout).
    pub(crate) fn plan(&self) -> ContainerPlan {
        ContainerPlan {
            data_dir: self.data(),
            init_binary: "/usr/lib/hearth/hearth-container".into(),
            bridge: "hearth0".into(),
            gateway: "10.88.0.1".parse().unwrap(),
            prefix_len: 24,
            stop_timeout: std::time::Duration::from_secs(1),
            log_max_bytes: None,
        }
    }

    /// Waits (10 s at most) until the entry of `id` satisfies `f`; returns it.
    pub(crate) async fn wait_for(&self, id: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let e = self.entry(id);
            if f(&e) {
                return e;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {id} {what}: {e}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub(crate) fn entry(&self, id: &str) -> Value {
        self.store
            .get(&format!("/public/packageData/{id}"))
            .unwrap_or(Value::Null)
    }

    /// Files under `packages/` of the data dir (relative paths), sorted.
    pub(crate) fn package_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let root = self.data().join("packages");
        walk(&root, &root, &mut out);
        out.sort();
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().display().to_string());
        }
    }
}
