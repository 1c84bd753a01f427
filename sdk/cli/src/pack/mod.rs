//! `hearth s9pk pack DIR --key KEY.pem -o OUT.s9pk [--arch ARCH]…`: turns a
//! package project folder into a signed S9PK.
//!
//! # Flow
//! 1. Load the key, then load and validate the whole project (`project`):
//!    `hearth.toml` (manifest, images, service spec), icon, `LICENSE.md`,
//!    `instructions.md`. Nothing is built before everything checks out.
//! 2. Assemble a staging directory laid out like the archive: `manifest.json`
//!    (images `source = "packed"`, `arch` filled), `hearth.json` (the spec),
//!    `icon.<ext>`, `LICENSE.md`, `instructions.md`, and per image and
//!    architecture `images/<arch>/<id>.{squashfs,json,env}` (`image`).
//! 3. `hearth_s9pk::write_dir` signs and writes it deterministically.
//!
//! `gitHash` is filled from the project's git checkout unless `hearth.toml` sets
//! it. Packing needs root: image files keep the owners their sources give them.
//!
//! # Invariants
//! Same inputs, same key and same `SOURCE_DATE_EPOCH` give byte-identical
//! packages (tested for rootfs and OCI sources; Debian sources are reproducible
//! per cache entry, see `debian`). External tools run only through `tool`.
//!
//! # Rejected alternatives
//! - Building images from a merged tar stream with `tar2sqfs` (as StartOS does):
//!   it would avoid extracting as root, but one extraction path with explicit
//!   path checks is easier to make safe and test than two.
//! - Running Node or a Dockerfile build: Hearth packages are declarative, and
//!   any OCI builder can produce the layout `pack` consumes.

mod debian;
mod docker_archive;
mod fsops;
mod image;
mod layer;
mod oci;
mod project;
mod tool;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hearth_s9pk::{SigningKey, WriteError};

use self::fsops::FsError;
use self::image::{BuildContext, ImageError};
use self::project::ProjectError;

/// Arguments of `hearth s9pk pack`.
#[derive(clap::Args)]
pub(crate) struct PackArgs {
    /// The package project folder (holds `hearth.toml`).
    dir: PathBuf,
    /// Signing key, an Ed25519 private key as PKCS#8 PEM.
    #[arg(long)]
    key: PathBuf,
    /// Where to write the package.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Build only these architectures (repeatable; default: each image's list).
    #[arg(long = "arch")]
    arch: Vec<String>,
    /// Keep the staging directory here (must not exist yet), for inspection.
    #[arg(long)]
    staging: Option<PathBuf>,
}

/// Errors of `hearth s9pk pack`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PackError {
    /// The signing key could not be loaded.
    #[error("loading signing key {path}: {message}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The project folder is invalid.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// Image files must keep their owners, which needs root.
    #[error("hearth s9pk pack must run as root (image files keep their owners); try `sudo`")]
    NotRoot,
    /// `SOURCE_DATE_EPOCH` is not a number.
    #[error("SOURCE_DATE_EPOCH={value:?} is not a number of seconds")]
    Epoch {
        /// The variable's value.
        value: String,
    },
    /// The staging directory could not be prepared or written.
    #[error("staging: {source}")]
    Staging {
        /// The file-system error.
        source: FsError,
    },
    /// An image could not be built.
    #[error(transparent)]
    Image(Box<ImageError>),
    /// The archive could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// The archive writer's error.
        source: WriteError,
    },
    /// The `--json` summary could not be written.
    #[error("writing to stdout: {0}")]
    Stdout(io::Error),
}

fn staging_err(source: FsError) -> PackError {
    PackError::Staging { source }
}

/// Shows progress and the external commands run on stderr (level from
/// `HEARTH_LOG`, default `info`), unless the binary installed a subscriber already.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _already_set = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .with_target(false)
        .without_time()
        .try_init();
}

/// Runs `hearth s9pk pack`.
pub(crate) fn run(args: PackArgs, json: bool) -> Result<(), PackError> {
    init_logging();
    let key = load_key(&args.key)?;
    let mut project = project::load(&args.dir, &args.arch)?;
    if project.manifest.git_hash.is_none() {
        project.manifest.git_hash = git_hash(&args.dir);
    }
    let epoch = source_date_epoch()?;

    let work = tempfile::Builder::new()
        .prefix("hearth-pack-")
        .tempdir()
        .map_err(|e| staging_err(fsops::io_err("creating", &std::env::temp_dir())(e)))?;
    // Files we create belong to our effective uid: a cheap root check without libc.
    let owner = fs::metadata(work.path())
        .map_err(|e| staging_err(fsops::io_err("inspecting", work.path())(e)))?
        .uid();
    if owner != 0 {
        return Err(PackError::NotRoot);
    }
    // OCI layouts are checked (every blob's size and digest) before anything is built.
    let mut oci_images = BTreeMap::new();
    for (id, plan) in &project.images {
        for arch in &plan.arch {
            if let Some(image) = image::prepare_oci(id, plan, arch, work.path())
                .map_err(|e| PackError::Image(Box::new(e)))?
            {
                oci_images.insert((id.as_str(), arch.as_str()), image);
            }
        }
    }
    let staging = match &args.staging {
        Some(dir) => {
            fs::create_dir(dir)
                .map_err(fsops::io_err("creating staging directory", dir))
                .map_err(staging_err)?;
            dir.clone()
        }
        None => work.path().join("staging"),
    };
    fs::create_dir_all(&staging)
        .map_err(fsops::io_err("creating", &staging))
        .map_err(staging_err)?;
    write_metadata(&project, &staging).map_err(staging_err)?;

    let cache = debian::cache_dir();
    let ctx = BuildContext {
        epoch,
        cache: cache.as_deref(),
        work: work.path(),
    };
    for (id, plan) in &project.images {
        for arch in &plan.arch {
            let out = staging.join("images").join(arch);
            tracing::info!(image = %id, arch = %arch, "building image");
            let prepared = oci_images.get(&(id.as_str(), arch.as_str()));
            image::build(id, plan, arch, &ctx, &out, prepared)
                .map_err(|e| PackError::Image(Box::new(e)))?;
        }
    }
    hearth_s9pk::write_dir(&staging, &key, &args.output).map_err(|source| PackError::Write {
        path: args.output.clone(),
        source,
    })?;
    tracing::info!(
        id = %project.manifest.id,
        version = %project.manifest.version,
        output = %args.output.display(),
        "packed"
    );
    if json {
        let doc = serde_json::json!({
            "id": project.manifest.id,
            "version": project.manifest.version,
            "out": args.output,
        });
        crate::s9pk_cmd::print_json(&doc).map_err(PackError::Stdout)?;
    }
    Ok(())
}

fn load_key(path: &Path) -> Result<SigningKey, PackError> {
    let key_err = |message: String| PackError::Key {
        path: path.to_path_buf(),
        message,
    };
    let pem = fs::read_to_string(path).map_err(|e: io::Error| key_err(e.to_string()))?;
    hearth_s9pk::key::signing_key_from_pem(&pem).map_err(|e| key_err(e.to_string()))
}

/// The commit of the project folder, `-modified` if it has uncommitted changes
/// (as StartOS's pack does); `None` outside a git checkout.
fn git_hash(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        let mut argv = vec![OsStr::new("-C"), dir.as_os_str()];
        argv.extend(args.iter().map(OsStr::new));
        tool::output("git", &argv)
            .map_err(|e| tracing::debug!(error = %e, "no git hash"))
            .ok()
    };
    let head = String::from_utf8(git(&["rev-parse", "--verify", "HEAD"])?).ok()?;
    let dirty = !git(&["status", "--porcelain", "--", "."])?.is_empty();
    let head = head.trim();
    Some(if dirty {
        format!("{head}-modified")
    } else {
        head.to_owned()
    })
}

fn source_date_epoch() -> Result<u64, PackError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.is_empty() => {
            value.trim().parse().map_err(|_| PackError::Epoch { value })
        }
        _ => Ok(0),
    }
}

/// Writes the root files of the package into `staging`.
fn write_metadata(project: &project::Project, staging: &Path) -> Result<(), FsError> {
    let write = |name: &str, bytes: &[u8]| {
        let path = staging.join(name);
        fs::write(&path, bytes).map_err(fsops::io_err("writing", &path))
    };
    let copy = |from: &Path, name: &str| {
        let to = staging.join(name);
        fs::copy(from, &to)
            .map(|_| ())
            .map_err(fsops::io_err("copying", from))
    };
    write("manifest.json", &project.manifest.to_json())?;
    write("hearth.json", &project.spec.to_json())?;
    let ext = project
        .icon
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    copy(&project.icon, &format!("icon.{ext}"))?;
    copy(&project.license, "LICENSE.md")?;
    copy(&project.instructions, "instructions.md")
}
