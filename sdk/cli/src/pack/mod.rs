//! `hearth s9pk pack` (work in progress).

use std::path::PathBuf;

/// Arguments of `hearth s9pk pack`.
#[derive(clap::Args)]
pub(crate) struct PackArgs {
    /// The package project folder (holds `hearth.toml`).
    dir: PathBuf,
}

/// Errors of `hearth s9pk pack`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PackError {
    /// Packing is not written yet.
    #[error("packing {0} is not implemented yet")]
    NotImplemented(PathBuf),
}

/// Runs `hearth s9pk pack`.
pub(crate) fn run(args: PackArgs) -> Result<(), PackError> {
    Err(PackError::NotImplemented(args.dir))
}
