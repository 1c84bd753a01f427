//! The package project folder: `hearth.toml` plus icon, licence and instructions.
//!
//! # `hearth.toml`
//! ```toml
//! [manifest]            # manifest.json fields, same camelCase names (not `images`)
//! id = "hello"
//! version = "1.0.0:0"
//! # …
//! [images.main]         # one table per image; exactly one source:
//! rootfs = "rootfs"     #   a directory in the project,
//! # oci = "image"       #   an OCI layout directory or archive,
//! # debian = { suite = "bookworm", packages = ["nginx-light"] }
//! overlay = "files"     # optional: a directory laid over the image root
//! arch = ["x86_64"]     # optional: default the build machine's
//! [service]             # the service spec (hearth.json), see hearth_s9pk::spec
//! ```
//!
//! # Design
//! Everything is loaded and validated here, before any image is built, and each
//! error names the file and the field. Unknown keys are refused everywhere: the
//! `[manifest]` table is read into the lenient StartOS [`Manifest`] through
//! `serde_ignored`, which reports the keys that type would silently drop.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use hearth_s9pk::manifest::{ImageConfig, ImageSource, KNOWN_ARCHES, Manifest, ManifestError};
use hearth_s9pk::spec::{ServiceSpec, SpecError};
use serde::Deserialize;

/// Name of the project file.
pub(crate) const PROJECT_FILE: &str = "hearth.toml";
/// Icon extensions accepted (their MIME type is `image/*`).
const ICON_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "gif", "svg", "webp", "avif"];

/// The project folder is incomplete or `hearth.toml` is invalid.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProjectError {
    /// A required file is missing.
    #[error("{path}: missing ({what})")]
    Missing {
        /// The missing file.
        path: PathBuf,
        /// What it is for.
        what: &'static str,
    },
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// `hearth.toml` is not valid TOML or a field has the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The project file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// `hearth.toml` has a key no field takes.
    #[error("{path}: unknown field `{field}`")]
    UnknownField {
        /// The project file.
        path: PathBuf,
        /// Dotted path of the key.
        field: String,
    },
    /// The `[manifest]` table fails validation.
    #[error("{path}: [manifest] {source}")]
    Manifest {
        /// The project file.
        path: PathBuf,
        /// The validation error (names the field).
        source: ManifestError,
    },
    /// The `[service]` table fails validation.
    #[error("{path}: [service] {source}")]
    Spec {
        /// The project file.
        path: PathBuf,
        /// The validation error (names the field).
        source: SpecError,
    },
    /// An `[images.<id>]` table is invalid.
    #[error("{path}: [images.{image}] {reason}")]
    Image {
        /// The project file.
        path: PathBuf,
        /// The image id.
        image: String,
        /// What is wrong.
        reason: String,
    },
    /// The icon is ambiguous.
    #[error("{dir}: more than one icon ({found}); keep exactly one icon.*")]
    Icons {
        /// The project folder.
        dir: PathBuf,
        /// The icon files found.
        found: String,
    },
}

/// `hearth.toml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    /// `manifest.json` fields (except `images`, which come from `[images]`).
    manifest: Manifest,
    /// The service spec, stored as `hearth.json`.
    service: ServiceSpec,
    /// Images by id.
    #[serde(default)]
    images: BTreeMap<String, ImageProject>,
}

/// One `[images.<id>]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ImageProject {
    /// Source: a root filesystem directory in the project.
    #[serde(default)]
    pub(crate) rootfs: Option<PathBuf>,
    /// Source: an OCI image layout directory or archive.
    #[serde(default)]
    pub(crate) oci: Option<PathBuf>,
    /// Source: Debian packages installed with mmdebstrap.
    #[serde(default)]
    pub(crate) debian: Option<DebianSource>,
    /// A directory laid over the image root after the source (files become root-owned).
    #[serde(default)]
    pub(crate) overlay: Option<PathBuf>,
    /// Architectures to build (default: this machine's).
    #[serde(default)]
    pub(crate) arch: Option<BTreeSet<String>>,
    /// Manifest `emulateMissingAs`.
    #[serde(default)]
    pub(crate) emulate_missing_as: Option<String>,
    /// Manifest `nvidiaContainer`.
    #[serde(default)]
    pub(crate) nvidia_container: bool,
    /// Working directory recorded for the image (overrides the OCI config).
    #[serde(default)]
    pub(crate) workdir: Option<String>,
    /// User recorded for the image (overrides the OCI config).
    #[serde(default)]
    pub(crate) user: Option<String>,
    /// Environment added to the image's `.env` (overrides the OCI config).
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
}

/// A Debian root filesystem built by mmdebstrap.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct DebianSource {
    /// Suite or codename, e.g. `bookworm`.
    pub(crate) suite: String,
    /// Packages to install on top of the variant.
    #[serde(default)]
    pub(crate) packages: Vec<String>,
    /// Mirror URL; a snapshot.debian.org URL pins package versions.
    #[serde(default = "default_mirror")]
    pub(crate) mirror: String,
    /// mmdebstrap `--variant` (default `essential`).
    #[serde(default = "default_variant")]
    pub(crate) variant: String,
    /// dpkg `path-exclude` globs (absolute, e.g. `/usr/share/doc/*`): files dpkg does
    /// not unpack, for a smaller image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) path_exclude: Vec<String>,
    /// dpkg `path-include` globs: exceptions to `pathExclude` (e.g. keep
    /// `/usr/share/doc/*/copyright`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) path_include: Vec<String>,
}

fn default_mirror() -> String {
    "http://deb.debian.org/debian".to_owned()
}
fn default_variant() -> String {
    "essential".to_owned()
}

const VARIANTS: [&str; 10] = [
    "extract",
    "custom",
    "essential",
    "apt",
    "required",
    "minbase",
    "buildd",
    "important",
    "debootstrap",
    "standard",
];

/// Where an image comes from, resolved against the project folder.
#[derive(Debug, Clone)]
pub(crate) enum SourceKind {
    /// Copy this directory.
    Rootfs(PathBuf),
    /// Read this OCI layout or archive.
    Oci(PathBuf),
    /// Build with mmdebstrap.
    Debian(DebianSource),
}

/// An image to build, fully resolved.
#[derive(Debug, Clone)]
pub(crate) struct ImagePlan {
    /// Where the root filesystem comes from.
    pub(crate) source: SourceKind,
    /// Overlay directory (absolute).
    pub(crate) overlay: Option<PathBuf>,
    /// Architectures to build.
    pub(crate) arch: BTreeSet<String>,
    /// The project table (workdir, user, env overrides).
    pub(crate) config: ImageProject,
}

/// A loaded and validated project.
#[derive(Debug)]
pub(crate) struct Project {
    /// The manifest, images filled in with `source = "packed"`.
    pub(crate) manifest: Manifest,
    /// The service spec.
    pub(crate) spec: ServiceSpec,
    /// Images to build, by id.
    pub(crate) images: BTreeMap<String, ImagePlan>,
    /// The icon file.
    pub(crate) icon: PathBuf,
    /// `LICENSE.md`.
    pub(crate) license: PathBuf,
    /// `instructions.md`.
    pub(crate) instructions: PathBuf,
}

/// The architecture of the machine running `pack`.
pub(crate) fn host_arch() -> &'static str {
    std::env::consts::ARCH
}

/// Loads and validates the project in `dir`; `only_arch` (from `--arch`)
/// restricts which architectures are built.
pub(crate) fn load(dir: &Path, only_arch: &[String]) -> Result<Project, ProjectError> {
    let path = dir.join(PROJECT_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ProjectError::Missing {
                path,
                what: "the project file with [manifest], [images.*] and [service]",
            });
        }
        Err(source) => return Err(ProjectError::Read { path, source }),
    };
    let parse_err = |e: toml::de::Error| ProjectError::Parse {
        path: path.clone(),
        message: e.to_string().trim_end().to_owned(),
    };
    let deserializer = toml::Deserializer::parse(&text).map_err(parse_err)?;
    let mut unknown = Vec::new();
    let file: ProjectFile =
        serde_ignored::deserialize(deserializer, |p| unknown.push(p.to_string()))
            .map_err(parse_err)?;
    if let Some(field) = unknown.into_iter().next() {
        return Err(ProjectError::UnknownField { path, field });
    }
    let ProjectFile {
        mut manifest,
        service,
        images,
    } = file;

    if !manifest.images.is_empty() {
        return Err(ProjectError::UnknownField {
            path,
            field: "manifest.images (declare images as [images.<id>] tables)".into(),
        });
    }
    for arch in only_arch {
        if !KNOWN_ARCHES.contains(&arch.as_str()) {
            return Err(ProjectError::Parse {
                path,
                message: format!("--arch {arch:?} is not one of x86_64, aarch64, riscv64"),
            });
        }
    }
    let mut plans = BTreeMap::new();
    for (id, image) in images {
        let plan = plan_image(dir, &path, &id, image, only_arch)?;
        manifest.images.insert(
            id.clone(),
            ImageConfig {
                source: ImageSource::Packed,
                arch: plan.arch.clone(),
                emulate_missing_as: plan.config.emulate_missing_as.clone(),
                nvidia_container: plan.config.nvidia_container,
            },
        );
        plans.insert(id, plan);
    }
    if !only_arch.is_empty()
        && let Some(arches) = &mut manifest.hardware_requirements.arch
    {
        arches.retain(|a| only_arch.contains(a));
    }
    manifest
        .validate()
        .map_err(|source| ProjectError::Manifest {
            path: path.clone(),
            source,
        })?;
    service
        .validate(&manifest)
        .map_err(|source| ProjectError::Spec {
            path: path.clone(),
            source,
        })?;

    let icon = find_icon(dir)?;
    let license = required_file(dir, "LICENSE.md", "the licence of the package")?;
    let instructions = required_file(dir, "instructions.md", "instructions shown to the user")?;
    Ok(Project {
        manifest,
        spec: service,
        images: plans,
        icon,
        license,
        instructions,
    })
}

fn plan_image(
    dir: &Path,
    path: &Path,
    id: &str,
    image: ImageProject,
    only_arch: &[String],
) -> Result<ImagePlan, ProjectError> {
    let err = |reason: String| ProjectError::Image {
        path: path.to_path_buf(),
        image: id.to_owned(),
        reason,
    };
    let mut sources = Vec::new();
    if let Some(rootfs) = &image.rootfs {
        sources.push(SourceKind::Rootfs(dir.join(rootfs)));
    }
    if let Some(oci) = &image.oci {
        sources.push(SourceKind::Oci(dir.join(oci)));
    }
    if let Some(debian) = &image.debian {
        sources.push(SourceKind::Debian(debian.clone()));
    }
    let source = match (sources.pop(), sources.is_empty()) {
        (None, _) => return Err(err("no image source: set one of rootfs, oci, debian".into())),
        (Some(_), false) => {
            return Err(err(
                "more than one image source: set exactly one of rootfs, oci, debian".into(),
            ));
        }
        (Some(source), true) => source,
    };
    match &source {
        SourceKind::Rootfs(p) if !p.is_dir() => {
            return Err(err(format!("rootfs: {} is not a directory", p.display())));
        }
        SourceKind::Oci(p) if !p.exists() => {
            return Err(err(format!("oci: {} does not exist", p.display())));
        }
        SourceKind::Debian(debian) => check_debian(debian).map_err(err)?,
        _ => {}
    }
    let overlay = image.overlay.as_ref().map(|o| dir.join(o));
    if let Some(o) = &overlay
        && !o.is_dir()
    {
        return Err(err(format!("overlay: {} is not a directory", o.display())));
    }
    for key in image.env.keys() {
        let ok = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(err(format!("env: {key:?} is not a valid variable name")));
        }
    }
    let mut arch = image
        .arch
        .clone()
        .unwrap_or_else(|| BTreeSet::from([host_arch().to_owned()]));
    if !only_arch.is_empty() {
        arch.retain(|a| only_arch.contains(a));
        if arch.is_empty() {
            return Err(err(format!(
                "none of the image's architectures is among --arch {}",
                only_arch.join(",")
            )));
        }
    }
    Ok(ImagePlan {
        source,
        overlay,
        arch,
        config: image,
    })
}

fn check_debian(debian: &DebianSource) -> Result<(), String> {
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.:~_=".contains(&b))
    };
    if !word(&debian.suite) {
        return Err(format!(
            "debian.suite: {:?} is not a suite name",
            debian.suite
        ));
    }
    if let Some(bad) = debian.packages.iter().find(|p| !word(p)) {
        return Err(format!("debian.packages: {bad:?} is not a package name"));
    }
    if !(debian.mirror.starts_with("http://") || debian.mirror.starts_with("https://"))
        || debian.mirror.contains(char::is_whitespace)
    {
        return Err(format!(
            "debian.mirror: {:?} is not an http(s) URL",
            debian.mirror
        ));
    }
    if !VARIANTS.contains(&debian.variant.as_str()) {
        return Err(format!(
            "debian.variant: {:?} is not an mmdebstrap variant ({})",
            debian.variant,
            VARIANTS.join(", ")
        ));
    }
    for (field, globs) in [
        ("pathExclude", &debian.path_exclude),
        ("pathInclude", &debian.path_include),
    ] {
        if let Some(bad) = globs.iter().find(|g| !path_glob(g)) {
            return Err(format!(
                "debian.{field}: {bad:?} is not an absolute path glob (it must start with `/`, \
                 without `..`, whitespace or control characters)"
            ));
        }
    }
    Ok(())
}

/// A dpkg path glob: absolute, no `..` component, no whitespace or control characters
/// (it becomes one `--dpkgopt` argument and one line of a dpkg config file).
fn path_glob(g: &str) -> bool {
    g.starts_with('/')
        && g.len() > 1
        && !g.chars().any(|c| c.is_whitespace() || c.is_control())
        && !g.split('/').any(|part| part == "..")
}

fn required_file(dir: &Path, name: &str, what: &'static str) -> Result<PathBuf, ProjectError> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ProjectError::Missing { path, what })
    }
}

fn find_icon(dir: &Path) -> Result<PathBuf, ProjectError> {
    let entries = fs::read_dir(dir).map_err(|source| ProjectError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut icons = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ProjectError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_icon = name
            .strip_prefix("icon.")
            .is_some_and(|ext| ICON_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()));
        if is_icon && entry.path().is_file() {
            icons.push(entry.path());
        }
    }
    icons.sort();
    match icons.len() {
        0 => Err(ProjectError::Missing {
            path: dir.join("icon.png"),
            what: "an icon: icon.png, icon.svg, icon.jpg, icon.webp, …",
        }),
        1 => Ok(icons.remove(0)),
        _ => Err(ProjectError::Icons {
            dir: dir.to_path_buf(),
            found: icons
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}
