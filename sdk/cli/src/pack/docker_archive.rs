//! Images from `docker save` archives in the format Docker wrote before version 25
//! (still what Debian's `docker.io` writes): `manifest.json` listing, per image,
//! a config file named by its SHA-256 and layer tarballs whose SHA-256 (of the
//! uncompressed tar) are the config's `rootfs.diff_ids`.
//!
//! Both are checked before use, like OCI blobs: the config must hash to its file
//! name, every layer to its diff id. Paths in `manifest.json` must be relative and
//! free of `..`, and must not lead through symlinks.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use serde::Deserialize;

use super::fsops;
use super::oci::{MAX_JSON_BLOB, OciError, OciImage, oci_arch, parse, sha256_file};

/// One image of `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    /// Path of the config JSON, `<sha256>.json` (or `blobs/sha256/<sha256>`).
    config: String,
    /// Layer tarballs, bottom first.
    layers: Vec<String>,
}

/// A path from `manifest.json`, checked to stay inside the archive directory.
fn member(dir: &Path, name: &str) -> Result<PathBuf, OciError> {
    let not_a_layout = |reason: String| OciError::NotALayout {
        path: dir.to_path_buf(),
        reason,
    };
    let rel = fsops::safe_relative(Path::new(name))
        .map_err(|e| not_a_layout(format!("manifest.json: {e}")))?;
    let full = fsops::existing_parents(dir, &rel)
        .map_err(|e| not_a_layout(format!("manifest.json: {e}")))?
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()));
    full.ok_or_else(|| OciError::BlobMissing {
        layout: dir.to_path_buf(),
        digest: name.to_owned(),
        path: dir.join(&rel),
    })
}

/// Expects `actual` (hex SHA-256 of `what`) to equal `expected`.
fn check_digest(dir: &Path, what: &str, expected: &str, actual: String) -> Result<(), OciError> {
    if expected == actual {
        Ok(())
    } else {
        Err(OciError::DigestMismatch {
            layout: dir.to_path_buf(),
            digest: format!("{what} (sha256:{expected})"),
            actual: format!("sha256:{actual}"),
        })
    }
}

/// Finds the linux image for `arch` in an unpacked legacy `docker save` archive.
pub(crate) fn load_image(dir: &Path, arch: &str) -> Result<OciImage, OciError> {
    let manifest_path = dir.join("manifest.json");
    let mut bytes = Vec::new();
    File::open(&manifest_path)
        .and_then(|f| f.take(MAX_JSON_BLOB).read_to_end(&mut bytes))
        .map_err(|source| OciError::Read {
            path: manifest_path.clone(),
            source,
        })?;
    let entries: Vec<Entry> = parse(&manifest_path, "docker manifest", &bytes)?;
    let want = oci_arch(arch);
    let mut found = Vec::new();
    for entry in entries {
        let config_path = member(dir, &entry.config)?;
        let stem = Path::new(&entry.config)
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.trim_end_matches(".json"))
            .unwrap_or_default();
        if stem.len() != 64 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(OciError::NotALayout {
                path: dir.to_path_buf(),
                reason: format!("config {:?} is not named by its SHA-256", entry.config),
            });
        }
        check_digest(dir, &entry.config, stem, sha256_file(&config_path, false)?)?;
        let config_bytes = fs::read(&config_path).map_err(|source| OciError::Read {
            path: config_path.clone(),
            source,
        })?;
        let config: ImageConfiguration = parse(&config_path, "config", &config_bytes)?;
        let (os, config_arch) = (config.os().to_string(), config.architecture().to_string());
        if os != "linux" || config_arch != want {
            found.push(format!("{os}/{config_arch}"));
            continue;
        }
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != entry.layers.len() {
            return Err(OciError::NotALayout {
                path: dir.to_path_buf(),
                reason: format!(
                    "{} layers listed but the config has {} diff ids",
                    entry.layers.len(),
                    diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::new();
        for (name, diff_id) in entry.layers.iter().zip(diff_ids) {
            let path = member(dir, name)?;
            let expected = diff_id.strip_prefix("sha256:").unwrap_or(diff_id);
            check_digest(dir, name, expected, sha256_file(&path, true)?)?;
            layers.push(path);
        }
        return Ok(OciImage {
            layers,
            config: config.config().clone(),
        });
    }
    Err(OciError::NoImageForArch {
        layout: dir.to_path_buf(),
        oci_arch: want.to_owned(),
        found: if found.is_empty() {
            "no images".to_owned()
        } else {
            found.join(", ")
        },
    })
}
