//! The v2 manifest: its JSON wire form and the validated [`Manifest`] parsed from it.
//!
//! Wire form (compact JSON, unknown fields refused):
//! `{"format":"hearth-ota/2","version":"0.2.0","target":"x86_64-uefi",
//!   "compatibility":"hearth-x86_64-uefi-ab/1","source_versions":"<0.2.0:0",
//!   "min_updater":"0.1.0","kernel_release":"6.12.57+deb12-amd64",
//!   "chunking":{"min":4096,"avg":16384,"max":65536},
//!   "images":[{"name":"root.squashfs","size":N,"sha256":"hex","blake3":"hex",
//!              "chunks":{"count":N,"blake3":"hex of the binary index"}}]}`
//!
//! Parsing checks every field (versions and range by `hearth-version`, 64-hex hashes,
//! plain file names, no duplicate image, chunking equal to this crate's, a chunk count
//! possible for the size), so code holding a [`Manifest`] needs no further checks.

use hearth_version::{Version, VersionRange};
use serde::{Deserialize, Serialize};

use crate::chunk::{CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, ImageDigest};

/// The `format` of v2 manifests.
pub const FORMAT: &str = "hearth-ota/2";

/// A manifest field is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Not JSON of the v2 shape.
    #[error("manifest does not parse: {0}")]
    Parse(String),
    /// Another format.
    #[error("manifest format {0:?} is not supported (this reader reads {FORMAT})")]
    Format(String),
    /// A field has a bad value.
    #[error("manifest field {field}: {reason}")]
    Field {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

fn field(field: &'static str, reason: impl Into<String>) -> ManifestError {
    ManifestError::Field {
        field,
        reason: reason.into(),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    format: String,
    version: String,
    target: String,
    compatibility: String,
    source_versions: String,
    min_updater: String,
    kernel_release: String,
    chunking: WireChunking,
    images: Vec<WireImage>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireChunking {
    min: u32,
    avg: u32,
    max: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireImage {
    name: String,
    size: u64,
    sha256: String,
    blake3: String,
    chunks: WireChunks,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireChunks {
    count: u64,
    blake3: String,
}

/// A validated v2 manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The OS version the bundle installs.
    pub version: Version,
    /// Image target (`x86_64-uefi`, `raspberrypi`, …).
    pub target: String,
    /// Disk-layout compatibility string; must equal the device's.
    pub compatibility: String,
    /// Running versions (as `V:0`) the bundle may be applied on.
    pub source_versions: VersionRange,
    /// Oldest updater that understands this bundle.
    pub min_updater: Version,
    /// `uname -r` of the bundle's kernel.
    pub kernel_release: String,
    /// The images, in bundle order.
    pub images: Vec<Image>,
}

/// One image of the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Plain file name (`root.squashfs`, `vmlinuz`, `initrd.img`).
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the image.
    pub sha256: [u8; 32],
    /// BLAKE3 of the image.
    pub blake3: [u8; 32],
    /// Number of chunks in its index.
    pub chunk_count: u64,
    /// BLAKE3 of its binary chunk index.
    pub index_blake3: [u8; 32],
}

impl Image {
    /// The manifest entry of an image named `name` with digest `d`.
    pub fn from_digest(name: &str, d: &ImageDigest) -> Self {
        Self {
            name: name.to_owned(),
            size: d.size,
            sha256: d.sha256,
            blake3: d.blake3,
            chunk_count: d.chunks.len() as u64,
            index_blake3: *blake3::hash(&crate::chunk::encode_index(&d.chunks)).as_bytes(),
        }
    }
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(name: &'static str, s: &str) -> Result<[u8; 32], ManifestError> {
    let bad = || field(name, format!("{s:?} is not 64 lower-case hex digits"));
    if s.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        let pair = s.get(2 * i..2 * i + 2).ok_or_else(bad)?;
        if pair
            .bytes()
            .any(|c| !matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(bad());
        }
        *o = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// A name the bundle may carry: `[A-Za-z0-9._+-]`, 1..=100 bytes, not `.`/`..`.
pub fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._+".contains(c))
}

fn label(name: &'static str, s: &str) -> Result<String, ManifestError> {
    if s.is_empty()
        || s.len() > 128
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._+/:~".contains(c))
    {
        return Err(field(name, format!("{s:?} is not a plain label")));
    }
    Ok(s.to_owned())
}

impl Manifest {
    /// Compact JSON (deterministic: field order is fixed).
    pub fn to_json(&self) -> Vec<u8> {
        let w = Wire {
            format: FORMAT.to_owned(),
            version: self.version.to_string(),
            target: self.target.clone(),
            compatibility: self.compatibility.clone(),
            source_versions: self.source_versions.to_string(),
            min_updater: self.min_updater.to_string(),
            kernel_release: self.kernel_release.clone(),
            chunking: WireChunking {
                min: CHUNK_MIN,
                avg: CHUNK_AVG,
                max: CHUNK_MAX,
            },
            images: self
                .images
                .iter()
                .map(|i| WireImage {
                    name: i.name.clone(),
                    size: i.size,
                    sha256: hex(&i.sha256),
                    blake3: hex(&i.blake3),
                    chunks: WireChunks {
                        count: i.chunk_count,
                        blake3: hex(&i.index_blake3),
                    },
                })
                .collect(),
        };
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_vec(&w).unwrap_or_default()
    }

    /// Parses and validates manifest JSON.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let w: Wire =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Parse(e.to_string()))?;
        if w.format != FORMAT {
            return Err(ManifestError::Format(w.format));
        }
        let c = &w.chunking;
        if (c.min, c.avg, c.max) != (CHUNK_MIN, CHUNK_AVG, CHUNK_MAX) {
            return Err(field(
                "chunking",
                format!(
                    "{}/{}/{} (this reader chunks {CHUNK_MIN}/{CHUNK_AVG}/{CHUNK_MAX})",
                    c.min, c.avg, c.max
                ),
            ));
        }
        let mut images: Vec<Image> = Vec::new();
        for i in &w.images {
            if !plain_name(&i.name) || images.iter().any(|o| o.name == i.name) {
                return Err(field(
                    "images.name",
                    format!("{:?} invalid or repeated", i.name),
                ));
            }
            let lo = i.size.div_ceil(u64::from(CHUNK_MAX));
            if i.chunks.count < lo || i.chunks.count > i.size {
                return Err(field(
                    "images.chunks.count",
                    format!("{} chunks cannot make {} bytes", i.chunks.count, i.size),
                ));
            }
            images.push(Image {
                name: i.name.clone(),
                size: i.size,
                sha256: unhex("images.sha256", &i.sha256)?,
                blake3: unhex("images.blake3", &i.blake3)?,
                chunk_count: i.chunks.count,
                index_blake3: unhex("images.chunks.blake3", &i.chunks.blake3)?,
            });
        }
        if images.is_empty() {
            return Err(field("images", "no image"));
        }
        Ok(Self {
            version: w
                .version
                .parse()
                .map_err(|e| field("version", format!("{e}")))?,
            target: label("target", &w.target)?,
            compatibility: label("compatibility", &w.compatibility)?,
            source_versions: w
                .source_versions
                .parse()
                .map_err(|e| field("source_versions", format!("{e}")))?,
            min_updater: w
                .min_updater
                .parse()
                .map_err(|e| field("min_updater", format!("{e}")))?,
            kernel_release: label("kernel_release", &w.kernel_release)?,
            images,
        })
    }
}
