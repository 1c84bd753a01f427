//! Builds one image for one architecture: a root directory from the image's
//! source (plus overlay), then `images/<arch>/<id>.squashfs`, `.json` and `.env`.
//!
//! # Reproducibility
//! `mksquashfs` runs with `-noappend -comp gzip -no-xattrs`, every timestamp set to
//! one epoch (`-all-time`, `-mkfs-time`; `SOURCE_DATE_EPOCH` or 0), on a root
//! whose owners and modes come from the source only (mksquashfs sorts directory
//! entries itself, and squashfs-tools ≥ 4.4 is reproducible across thread counts).
//! `.json` and `.env` are written in a fixed order.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::debian::{self, DebianError};
use super::fsops::{self, FsError};
use super::layer::{self, LayerError};
use super::oci::{self, OciError, OciImage};
use super::project::{ImagePlan, SourceKind};
use super::tool::{self, ToolError};

/// `PATH` for images without an OCI config.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An image could not be built.
#[derive(Debug, thiserror::Error)]
#[error("image {image} ({arch}): {source}")]
pub(crate) struct ImageError {
    /// Image id.
    image: String,
    /// Architecture.
    arch: String,
    /// What failed (boxed: the variants are large).
    source: Box<ImageFailure>,
}

/// The step of an image build that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImageFailure {
    /// A file-system step.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// Reading the OCI source.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// Building the Debian source.
    #[error(transparent)]
    Debian(#[from] DebianError),
    /// Applying the Debian tarball.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// Running mksquashfs.
    #[error(transparent)]
    Squashfs(#[from] ToolError),
}

/// `images/<arch>/<id>.json`, as StartOS's `ImageMetadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageMetadata {
    /// Working directory (default `/`).
    pub(crate) workdir: String,
    /// User (default `root`).
    pub(crate) user: String,
    /// OCI `Entrypoint`.
    pub(crate) entrypoint: Option<Vec<String>>,
    /// OCI `Cmd`.
    pub(crate) cmd: Option<Vec<String>>,
}

/// What every image build needs besides its plan.
pub(crate) struct BuildContext<'a> {
    /// Timestamp for every file and the filesystem (`SOURCE_DATE_EPOCH`).
    pub(crate) epoch: u64,
    /// Cache directory for Debian tarballs.
    pub(crate) cache: Option<&'a Path>,
    /// Scratch directory (deleted after packing).
    pub(crate) work: &'a Path,
}

/// For an OCI source: opens the layout, picks the image for `arch` and verifies
/// every blob it uses, so a broken layout is refused before anything is built.
/// `None` for other sources.
pub(crate) fn prepare_oci(
    id: &str,
    plan: &ImagePlan,
    arch: &str,
    work: &Path,
) -> Result<Option<OciImage>, ImageError> {
    let SourceKind::Oci(path) = &plan.source else {
        return Ok(None);
    };
    load_oci(id, path, arch, work)
        .map(Some)
        .map_err(|failure| ImageError {
            image: id.to_owned(),
            arch: arch.to_owned(),
            source: Box::new(failure),
        })
}

fn load_oci(id: &str, path: &Path, arch: &str, work: &Path) -> Result<OciImage, ImageFailure> {
    let layout = oci::open_layout(path, &work.join(format!("oci-{id}")))?;
    Ok(oci::load_image(&layout, arch)?)
}

/// Builds image `id` for `arch` into `out` (the `images/<arch>` staging folder),
/// using the image [`prepare_oci`] found, if given.
pub(crate) fn build(
    id: &str,
    plan: &ImagePlan,
    arch: &str,
    ctx: &BuildContext<'_>,
    out: &Path,
    prepared: Option<&OciImage>,
) -> Result<(), ImageError> {
    build_inner(id, plan, arch, ctx, out, prepared).map_err(|failure| ImageError {
        image: id.to_owned(),
        arch: arch.to_owned(),
        source: Box::new(failure),
    })
}

fn build_inner(
    id: &str,
    plan: &ImagePlan,
    arch: &str,
    ctx: &BuildContext<'_>,
    out: &Path,
    prepared: Option<&OciImage>,
) -> Result<(), ImageFailure> {
    let scratch = ctx.work.join(format!("image-{id}-{arch}"));
    let root = scratch.join("rootfs");
    fs::create_dir_all(&root).map_err(fsops::io_err("creating directory", &root))?;
    fsops::set_owner_mode(&root, 0, 0, Some(0o755))?;

    let mut metadata = ImageMetadata {
        workdir: "/".into(),
        user: "root".into(),
        entrypoint: None,
        cmd: None,
    };
    let mut env: Vec<(String, String)> = vec![("PATH".into(), DEFAULT_PATH.into())];
    // One extraction budget for the image, across its layers.
    let mut budget = layer::Budget::from_env();
    match &plan.source {
        SourceKind::Rootfs(dir) => fsops::copy_tree(dir, &root)?,
        SourceKind::Oci(path) => {
            let loaded;
            let image = match prepared {
                Some(image) => image,
                None => {
                    loaded = load_oci(id, path, arch, ctx.work)?;
                    &loaded
                }
            };
            oci::apply(image, &root, &mut budget)?;
            if let Some(config) = &image.config {
                apply_oci_config(config, &mut metadata, &mut env);
            }
        }
        SourceKind::Debian(src) => {
            let tarball = debian::rootfs_tarball(src, arch, ctx.epoch, ctx.cache, &scratch)?;
            layer::apply_layer_within(&root, &tarball, &mut budget)?;
            debian::remove_volatile(&root)?;
        }
    }
    if let Some(overlay) = &plan.overlay {
        fsops::copy_tree(overlay, &root)?;
    }
    if let Some(workdir) = &plan.config.workdir {
        metadata.workdir.clone_from(workdir);
    }
    if let Some(user) = &plan.config.user {
        metadata.user.clone_from(user);
    }
    merge_env(&mut env, &plan.config.env);

    fs::create_dir_all(out).map_err(fsops::io_err("creating directory", out))?;
    let squashfs = out.join(format!("{id}.squashfs"));
    mksquashfs(&root, &squashfs, ctx.epoch)?;
    write_file(&out.join(format!("{id}.json")), &metadata_json(&metadata))?;
    write_file(&out.join(format!("{id}.env")), env_file(&env).as_bytes())?;
    fsops::remove_any(&scratch)?;
    Ok(())
}

fn apply_oci_config(
    config: &oci_spec::image::Config,
    metadata: &mut ImageMetadata,
    env: &mut Vec<(String, String)>,
) {
    if let Some(workdir) = config.working_dir().as_ref().filter(|w| !w.is_empty()) {
        metadata.workdir.clone_from(workdir);
    }
    if let Some(user) = config.user().as_ref().filter(|u| !u.is_empty()) {
        metadata.user.clone_from(user);
    }
    metadata.entrypoint.clone_from(config.entrypoint());
    metadata.cmd.clone_from(config.cmd());
    if let Some(vars) = config.env() {
        env.clear();
        for var in vars {
            let (key, value) = var.split_once('=').unwrap_or((var.as_str(), ""));
            env.retain(|(k, _)| k != key);
            env.push((key.to_owned(), value.to_owned()));
        }
    }
}

/// Overrides replace existing variables in place; new ones are appended in name order.
fn merge_env(env: &mut Vec<(String, String)>, overrides: &BTreeMap<String, String>) {
    for (key, value) in overrides {
        match env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1.clone_from(value),
            None => env.push((key.clone(), value.clone())),
        }
    }
}

fn env_file(env: &[(String, String)]) -> String {
    env.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

fn metadata_json(metadata: &ImageMetadata) -> Vec<u8> {
    // A struct of strings serialises infallibly.
    let mut out = serde_json::to_vec_pretty(metadata).unwrap_or_default();
    out.push(b'\n');
    out
}

fn write_file(path: &PathBuf, bytes: &[u8]) -> Result<(), FsError> {
    fs::write(path, bytes).map_err(fsops::io_err("writing", path))
}

/// Runs mksquashfs with reproducible settings.
pub(crate) fn mksquashfs(root: &Path, out: &Path, epoch: u64) -> Result<(), ToolError> {
    let epoch = epoch.to_string();
    let args: [&OsStr; 13] = [
        root.as_os_str(),
        out.as_os_str(),
        OsStr::new("-noappend"),
        OsStr::new("-comp"),
        OsStr::new("gzip"),
        OsStr::new("-no-xattrs"),
        OsStr::new("-all-time"),
        OsStr::new(&epoch),
        OsStr::new("-mkfs-time"),
        OsStr::new(&epoch),
        OsStr::new("-reproducible"),
        OsStr::new("-quiet"),
        OsStr::new("-no-progress"),
    ];
    tool::run("mksquashfs", &args, &[])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn oci_config_fills_metadata_and_env() {
        let config: oci_spec::image::Config = serde_json::from_str(
            r#"{"Env": ["PATH=/bin", "HOME=/root", "PATH=/usr/bin:/bin"], "WorkingDir": "/app",
                "User": "1000:1000", "Entrypoint": ["/init"], "Cmd": ["serve"]}"#,
        )
        .unwrap();
        let mut metadata = ImageMetadata {
            workdir: "/".into(),
            user: "root".into(),
            entrypoint: None,
            cmd: None,
        };
        let mut env = vec![("PATH".into(), DEFAULT_PATH.into())];
        apply_oci_config(&config, &mut metadata, &mut env);
        assert_eq!(metadata.workdir, "/app");
        assert_eq!(metadata.user, "1000:1000");
        assert_eq!(metadata.entrypoint, Some(vec!["/init".to_owned()]));
        merge_env(
            &mut env,
            &BTreeMap::from([("A".into(), "1".into()), ("HOME".into(), "/srv".into())]),
        );
        assert_eq!(env_file(&env), "HOME=/srv\nPATH=/usr/bin:/bin\nA=1\n");
        let json: serde_json::Value = serde_json::from_slice(&metadata_json(&metadata)).unwrap();
        assert_eq!(json["cmd"], serde_json::json!(["serve"]));
    }

    #[test]
    fn squashfs_of_the_same_tree_is_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/hello"), "hi").unwrap();
        mksquashfs(&root, &dir.path().join("a.sqfs"), 0).unwrap();
        // Touch the tree: mtimes must not matter.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        fs::write(root.join("etc/hello"), "hi").unwrap();
        mksquashfs(&root, &dir.path().join("b.sqfs"), 0).unwrap();
        let a = fs::read(dir.path().join("a.sqfs")).unwrap();
        assert_eq!(a, fs::read(dir.path().join("b.sqfs")).unwrap());
        mksquashfs(&root, &dir.path().join("c.sqfs"), 1_700_000_000).unwrap();
        assert_ne!(a, fs::read(dir.path().join("c.sqfs")).unwrap());
    }
}
