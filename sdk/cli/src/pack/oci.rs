//! Reading OCI images: an image layout directory, or an archive of one (as
//! `docker save` from Docker 25 on and `skopeo copy … oci-archive:` write them).
//!
//! # Design
//! The layout is parsed with `oci-spec`. Every blob is checked against its
//! descriptor (size, then SHA-256/SHA-512 digest) before it is parsed or applied,
//! so a damaged or tampered layout is refused, not half-used. The image for an
//! architecture is found by walking the index (nested indexes included), skipping
//! descriptors whose platform says otherwise and checking the config's own
//! `architecture`/`os`. Archives are unpacked with the same safe extractor as
//! layers (no `..`, no absolute paths, nothing through symlinks).
//!
//! The pre-25 `docker save` format (`manifest.json`, no `index.json`) is read by
//! `docker_archive`, with the same checks against its content addresses.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Descriptor, DigestAlgorithm, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
};
use sha2::Digest as _;

use super::layer::{self, LayerError};

/// Largest JSON blob (index, manifest, config) read into memory.
pub(crate) const MAX_JSON_BLOB: u64 = 8 << 20;
/// How deep indexes may nest.
const MAX_INDEX_DEPTH: usize = 4;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// An OCI image could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OciError {
    /// The path is neither a layout directory nor a readable archive of one.
    #[error("{path}: not an OCI image layout: {reason}")]
    NotALayout {
        /// The layout or archive.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// Unpacking the archive failed.
    #[error("unpacking OCI archive: {source}")]
    Archive {
        /// The extraction error (names archive and entry).
        source: LayerError,
    },
    /// A file of the layout could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A JSON document of the layout is malformed.
    #[error("{path}: invalid {what}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Which document (`index`, `manifest`, `config`).
        what: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A referenced blob is not in the layout.
    #[error("{layout}: blob {digest} is missing (expected at {path})")]
    BlobMissing {
        /// The layout directory.
        layout: PathBuf,
        /// The blob digest.
        digest: String,
        /// Where it should be.
        path: PathBuf,
    },
    /// A blob's size differs from its descriptor.
    #[error("{layout}: blob {digest} is {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        /// The layout directory.
        layout: PathBuf,
        /// The blob digest.
        digest: String,
        /// Size from the descriptor.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// A blob's content does not hash to its digest.
    #[error("{layout}: blob {digest} does not match its digest (content hashes to {actual})")]
    DigestMismatch {
        /// The layout directory.
        layout: PathBuf,
        /// The expected digest.
        digest: String,
        /// The digest of what is on disk.
        actual: String,
    },
    /// A digest uses an algorithm other than sha256/sha512.
    #[error("{layout}: unsupported digest algorithm in {digest}")]
    UnsupportedDigest {
        /// The layout directory.
        layout: PathBuf,
        /// The digest.
        digest: String,
    },
    /// No image in the layout is for the requested architecture.
    #[error("{layout}: no linux/{oci_arch} image (found: {found})")]
    NoImageForArch {
        /// The layout directory.
        layout: PathBuf,
        /// OCI architecture name looked for.
        oci_arch: String,
        /// Platforms present.
        found: String,
    },
    /// Applying a layer failed.
    #[error("applying a layer: {source}")]
    Layer {
        /// The layer error.
        source: LayerError,
    },
}

/// An image chosen from a layout: verified layer blobs in order and its config.
pub(crate) struct OciImage {
    /// Layer blob files, bottom first, all verified.
    pub(crate) layers: Vec<PathBuf>,
    /// The image config (`Env`, `WorkingDir`, `User`, `Entrypoint`, `Cmd`).
    pub(crate) config: Option<oci_spec::image::Config>,
}

/// OCI architecture name for a StartOS/`uname -m` one.
pub(crate) fn oci_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Returns the layout directory for `path`: the path itself if it is a
/// directory, else the archive unpacked under `work` (reused if already there).
pub(crate) fn open_layout(path: &Path, work: &Path) -> Result<PathBuf, OciError> {
    let meta = fs::metadata(path).map_err(|source| OciError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let layout = if meta.is_dir() {
        path.to_path_buf()
    } else {
        // Unpacked once per `work` directory, then reused (one image, several arches).
        let dir = work.join("oci-layout");
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(|source| OciError::Read {
                path: dir.clone(),
                source,
            })?;
            layer::apply_layer(&dir, path).map_err(|source| OciError::Archive { source })?;
        }
        dir
    };
    if !layout.join("index.json").is_file() {
        if layout.join("manifest.json").is_file() {
            // A `docker save` archive from before Docker 25 (see `docker_archive`).
            return Ok(layout);
        }
        return Err(OciError::NotALayout {
            path: path.to_path_buf(),
            reason: "no index.json (and no manifest.json of a `docker save` archive)".into(),
        });
    }
    let oci_layout = layout.join("oci-layout");
    if !oci_layout.is_file() {
        return Err(OciError::NotALayout {
            path: path.to_path_buf(),
            reason: "no oci-layout file".into(),
        });
    }
    Ok(layout)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex SHA-256 of a file, streamed; with `decompressed`, of its
/// content after gzip/zstd decompression (a layer's diff id).
pub(crate) fn sha256_file(path: &Path, decompressed: bool) -> Result<String, OciError> {
    let read_err = |source| OciError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file: Box<dyn Read> = if decompressed {
        layer::open_layer(path).map_err(read_err)?
    } else {
        Box::new(File::open(path).map_err(read_err)?)
    };
    let mut hasher = sha2::Sha256::new();
    io::copy(&mut file, &mut HashWriter(&mut hasher)).map_err(read_err)?;
    Ok(hex(&hasher.finalize()))
}

/// Checks a blob against its descriptor and returns its path.
fn verified_blob(layout: &Path, descriptor: &Descriptor) -> Result<PathBuf, OciError> {
    let digest = descriptor.digest();
    let unsupported = || OciError::UnsupportedDigest {
        layout: layout.to_path_buf(),
        digest: digest.to_string(),
    };
    let algorithm = match digest.algorithm() {
        DigestAlgorithm::Sha256 => "sha256",
        DigestAlgorithm::Sha512 => "sha512",
        _ => return Err(unsupported()),
    };
    // oci-spec guarantees lowercase hex of the right length for the SHA family,
    // so the digest cannot form a path outside `blobs/`.
    let path = layout.join("blobs").join(algorithm).join(digest.digest());
    let read_err = |source| OciError::Read {
        path: path.clone(),
        source,
    };
    // A blob must be a regular file: a symlink could point anywhere on the host.
    match fs::symlink_metadata(&path) {
        Ok(meta) if !meta.is_file() => {
            return Err(OciError::NotALayout {
                path: layout.to_path_buf(),
                reason: format!("blob {digest} is not a regular file"),
            });
        }
        _ => {}
    }
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(OciError::BlobMissing {
                layout: layout.to_path_buf(),
                digest: digest.to_string(),
                path,
            });
        }
        Err(e) => return Err(read_err(e)),
    };
    let actual_size = file.metadata().map_err(read_err)?.len();
    if actual_size != descriptor.size() {
        return Err(OciError::SizeMismatch {
            layout: layout.to_path_buf(),
            digest: digest.to_string(),
            expected: descriptor.size(),
            actual: actual_size,
        });
    }
    let actual = if algorithm == "sha256" {
        let mut hasher = sha2::Sha256::new();
        io::copy(&mut file, &mut HashWriter(&mut hasher)).map_err(read_err)?;
        hex(&hasher.finalize())
    } else {
        let mut hasher = sha2::Sha512::new();
        io::copy(&mut file, &mut HashWriter(&mut hasher)).map_err(read_err)?;
        hex(&hasher.finalize())
    };
    if actual != digest.digest() {
        return Err(OciError::DigestMismatch {
            layout: layout.to_path_buf(),
            digest: digest.to_string(),
            actual: format!("{algorithm}:{actual}"),
        });
    }
    Ok(path)
}

/// Adapts a hasher to `io::Write` for streaming.
struct HashWriter<'a, D>(&'a mut D);

impl<D: sha2::Digest> io::Write for HashWriter<'_, D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(crate) fn read_json_blob(
    layout: &Path,
    descriptor: &Descriptor,
) -> Result<(PathBuf, Vec<u8>), OciError> {
    if descriptor.size() > MAX_JSON_BLOB {
        return Err(OciError::Json {
            path: layout.to_path_buf(),
            what: "descriptor",
            message: format!("{} is too large for a JSON document", descriptor.digest()),
        });
    }
    let path = verified_blob(layout, descriptor)?;
    let mut bytes = Vec::new();
    File::open(&path)
        .and_then(|f| f.take(MAX_JSON_BLOB).read_to_end(&mut bytes))
        .map_err(|source| OciError::Read {
            path: path.clone(),
            source,
        })?;
    Ok((path, bytes))
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
    bytes: &[u8],
) -> Result<T, OciError> {
    serde_json::from_slice(bytes).map_err(|e| OciError::Json {
        path: path.to_path_buf(),
        what,
        message: e.to_string(),
    })
}

enum Kind {
    Index,
    Manifest,
    Other,
}

fn kind(media_type: &MediaType) -> Kind {
    match media_type {
        MediaType::ImageIndex => Kind::Index,
        MediaType::ImageManifest => Kind::Manifest,
        MediaType::Other(s) if s == DOCKER_MANIFEST_LIST => Kind::Index,
        MediaType::Other(s) if s == DOCKER_MANIFEST => Kind::Manifest,
        _ => Kind::Other,
    }
}

/// Finds the linux image for `arch` (StartOS name) in the layout.
pub(crate) fn load_image(layout: &Path, arch: &str) -> Result<OciImage, OciError> {
    let index_path = layout.join("index.json");
    if !index_path.is_file() {
        return super::docker_archive::load_image(layout, arch);
    }
    let bytes = fs::read(&index_path).map_err(|source| OciError::Read {
        path: index_path.clone(),
        source,
    })?;
    let index: ImageIndex = parse(&index_path, "index", &bytes)?;
    let want = oci_arch(arch);
    let mut found = Vec::new();
    match find(layout, index.manifests(), want, 0, &mut found)? {
        Some(image) => Ok(image),
        None => Err(OciError::NoImageForArch {
            layout: layout.to_path_buf(),
            oci_arch: want.to_owned(),
            found: if found.is_empty() {
                "no image manifests".to_owned()
            } else {
                found.join(", ")
            },
        }),
    }
}

fn find(
    layout: &Path,
    descriptors: &[Descriptor],
    want: &str,
    depth: usize,
    found: &mut Vec<String>,
) -> Result<Option<OciImage>, OciError> {
    if depth > MAX_INDEX_DEPTH {
        return Err(OciError::NotALayout {
            path: layout.to_path_buf(),
            reason: format!("indexes nest deeper than {MAX_INDEX_DEPTH}"),
        });
    }
    for descriptor in descriptors {
        if let Some(platform) = descriptor.platform() {
            let (os, arch) = (
                platform.os().to_string(),
                platform.architecture().to_string(),
            );
            if os != "linux" || arch != want {
                found.push(format!("{os}/{arch}"));
                continue;
            }
        }
        match kind(descriptor.media_type()) {
            Kind::Index => {
                let (path, bytes) = read_json_blob(layout, descriptor)?;
                let index: ImageIndex = parse(&path, "index", &bytes)?;
                if let Some(image) = find(layout, index.manifests(), want, depth + 1, found)? {
                    return Ok(Some(image));
                }
            }
            Kind::Manifest => {
                let (path, bytes) = read_json_blob(layout, descriptor)?;
                let manifest: ImageManifest = parse(&path, "manifest", &bytes)?;
                let (path, bytes) = read_json_blob(layout, manifest.config())?;
                let config: ImageConfiguration = parse(&path, "config", &bytes)?;
                let (os, arch) = (config.os().to_string(), config.architecture().to_string());
                if os != "linux" || arch != want {
                    found.push(format!("{os}/{arch}"));
                    continue;
                }
                let layers = manifest
                    .layers()
                    .iter()
                    .map(|layer| verified_blob(layout, layer))
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(Some(OciImage {
                    layers,
                    config: config.config().clone(),
                }));
            }
            Kind::Other => {}
        }
    }
    Ok(None)
}

/// Applies the image's layers in order to `root`, all drawing on one `budget`.
pub(crate) fn apply(
    image: &OciImage,
    root: &Path,
    budget: &mut layer::Budget,
) -> Result<(), OciError> {
    for blob in &image.layers {
        layer::apply_layer_within(root, blob, budget)
            .map_err(|source| OciError::Layer { source })?;
    }
    Ok(())
}
