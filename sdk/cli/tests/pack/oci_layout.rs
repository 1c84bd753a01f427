//! Writes OCI image layouts for tests: blobs, manifest, config, index.json, oci-layout.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::Digest as _;

/// Compression of a layer blob.
#[derive(Clone, Copy)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One layer: tar entries built with [`LayerBuilder`], then compressed.
pub(crate) struct LayerBuilder(tar::Builder<Vec<u8>>);

impl LayerBuilder {
    pub(crate) fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, size: usize, mode: u32) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(size as u64);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_600_000_000);
        header
    }

    /// Adds an entry with its name written raw (so `../x` and `/x` are possible).
    pub(crate) fn raw(
        mut self,
        kind: tar::EntryType,
        name: &str,
        link: &str,
        data: &[u8],
        mode: u32,
    ) -> Self {
        let mut header = Self::header(kind, data.len(), mode);
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_cksum();
        self.0.append(&header, data).unwrap();
        self
    }

    pub(crate) fn dir(self, name: &str) -> Self {
        self.raw(tar::EntryType::Directory, name, "", b"", 0o755)
    }

    pub(crate) fn file(self, name: &str, data: &[u8], mode: u32) -> Self {
        self.raw(tar::EntryType::Regular, name, "", data, mode)
    }

    pub(crate) fn symlink(self, name: &str, target: &str) -> Self {
        self.raw(tar::EntryType::Symlink, name, target, b"", 0o777)
    }

    /// Adds a host directory tree under `prefix` (sorted, root-owned).
    pub(crate) fn tree(mut self, src: &Path, prefix: &str) -> Self {
        let mut entries: Vec<_> = fs::read_dir(src)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = format!("{prefix}{}", path.file_name().unwrap().to_str().unwrap());
            if path.is_dir() {
                self = self
                    .dir(&format!("{name}/"))
                    .tree(&path, &format!("{name}/"));
            } else {
                use std::os::unix::fs::PermissionsExt;
                let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o755;
                self = self.file(&name, &fs::read(&path).unwrap(), mode);
            }
        }
        self
    }

    /// The uncompressed tar.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn compress(tar: &[u8], compression: Compression) -> (Vec<u8>, &'static str) {
    match compression {
        Compression::None => (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(tar).unwrap();
            (
                gz.finish().unwrap(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Compression::Zstd => (
            ruzstd::encoding::compress_to_vec(tar, ruzstd::encoding::CompressionLevel::Fastest),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    }
}

/// A written layout and the digests of its parts, for tests that damage them.
pub(crate) struct Layout {
    pub(crate) dir: PathBuf,
    pub(crate) layer_digests: Vec<String>,
}

impl Layout {
    pub(crate) fn blob(&self, digest: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest)
    }
}

fn put_blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = sha256(bytes);
    fs::write(dir.join("blobs/sha256").join(&digest), bytes).unwrap();
    (digest, bytes.len())
}

/// OCI architecture name of the machine running the tests.
pub(crate) fn host_oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Writes a layout at `dir` with one linux image for `oci_arch`.
pub(crate) fn write_layout(
    dir: &Path,
    layers: Vec<(Vec<u8>, Compression)>,
    oci_arch: &str,
    config: serde_json::Value,
) -> Layout {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layer_digests = Vec::new();
    for (tar, compression) in layers {
        diff_ids.push(format!("sha256:{}", sha256(&tar)));
        let (blob, media_type) = compress(&tar, compression);
        let (digest, size) = put_blob(dir, &blob);
        descriptors.push(serde_json::json!({
            "mediaType": media_type, "digest": format!("sha256:{digest}"), "size": size
        }));
        layer_digests.push(digest);
    }
    let config = serde_json::json!({
        "architecture": oci_arch,
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (config_digest, config_size) = put_blob(dir, &serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_digest}"), "size": config_size
        },
        "layers": descriptors,
    });
    let (manifest_digest, manifest_size) = put_blob(dir, &serde_json::to_vec(&manifest).unwrap());
    // A second call for another architecture adds to the index (multi-arch layout).
    let mut manifests = match fs::read(dir.join("index.json")) {
        Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["manifests"]
            .as_array()
            .unwrap()
            .clone(),
        Err(_) => Vec::new(),
    };
    manifests.push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{manifest_digest}"), "size": manifest_size,
        "platform": {"architecture": oci_arch, "os": "linux"},
        "annotations": {"org.opencontainers.image.ref.name": "latest"}
    }));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    Layout {
        dir: dir.to_path_buf(),
        layer_digests,
    }
}

/// Moves the top-level index into a blob and points a new `index.json` at it,
/// the way containerd-backed `docker save` nests indexes.
pub(crate) fn nest_index(dir: &Path) {
    let inner = fs::read(dir.join("index.json")).unwrap();
    let (digest, size) = put_blob(dir, &inner);
    let outer = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{digest}"), "size": size
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&outer).unwrap()).unwrap();
}

/// Packs a layout directory into an archive (`oci-archive:` style tar).
pub(crate) fn archive(layout: &Path, out: &Path) {
    let mut builder = tar::Builder::new(fs::File::create(out).unwrap());
    builder.mode(tar::HeaderMode::Deterministic);
    builder.append_dir_all(".", layout).unwrap();
    builder.finish().unwrap();
}

/// Writes the pre-Docker-25 `docker save` format into `dir`: `manifest.json`,
/// `<sha256>.json` config, `<n>/layer.tar`. Returns the layer file paths.
pub(crate) fn write_docker_archive_dir(
    dir: &Path,
    layers: Vec<Vec<u8>>,
    oci_arch: &str,
    config: serde_json::Value,
) -> Vec<PathBuf> {
    fs::create_dir_all(dir).unwrap();
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256(l)))
        .collect();
    let mut names = Vec::new();
    let mut paths = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        fs::create_dir_all(dir.join(format!("layer{i}"))).unwrap();
        let name = format!("layer{i}/layer.tar");
        fs::write(dir.join(&name), layer).unwrap();
        paths.push(dir.join(&name));
        names.push(name);
    }
    let config = serde_json::json!({
        "architecture": oci_arch, "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "docker_version": "20.10.24",
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", sha256(&config_bytes));
    fs::write(dir.join(&config_name), &config_bytes).unwrap();
    let manifest = serde_json::json!([
        {"Config": config_name, "RepoTags": ["hello:latest"], "Layers": names}
    ]);
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    fs::write(dir.join("repositories"), br#"{"hello":{"latest":"x"}}"#).unwrap();
    paths
}
