//! Debian root filesystems built with `mmdebstrap`, cached as tarballs.
//!
//! # Design
//! mmdebstrap writes a tarball (`--format=tar`), which is then applied like an
//! image layer. Tarballs are cached under `$HEARTH_CACHE_DIR/debian/` (default
//! `$XDG_CACHE_HOME/hearth` or `~/.cache/hearth`), keyed by a hash of suite,
//! mirror, variant, architecture and the sorted package list; a cache entry is
//! written to a temporary name and renamed, so an interrupted build leaves none.
//!
//! # Reproducibility
//! Packing twice from one cache entry gives identical bytes. A fresh build is as
//! reproducible as the mirror: `SOURCE_DATE_EPOCH` is passed to mmdebstrap, and
//! files that record build time or host state are removed from the image
//! ([`VOLATILE_FILES`]), but `deb.debian.org` moves on with point releases and
//! security updates. Pin a date with a snapshot mirror, e.g.
//! `mirror = "http://snapshot.debian.org/archive/debian/20250601T000000Z"`.
//! Delete the cache directory to pick up new package versions.
//!
//! # Limitations
//! A foreign architecture (`arch = ["aarch64"]` on an x86_64 machine) needs what
//! mmdebstrap needs for it: `qemu-user-static` with binfmt_misc registered.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::fsops::{self, FsError};
use super::project::DebianSource;
use super::tool::{self, ToolError};

/// Paths (relative to the root) that record build time or host state.
pub(crate) const VOLATILE_FILES: [&str; 9] = [
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/apt/history.log",
    "var/log/apt/term.log",
    "var/log/apt/eipp.log.xz",
    "var/cache/ldconfig/aux-cache",
    "var/lib/dpkg/status-old",
    "var/lib/dpkg/diversions-old",
    "var/cache/debconf/templates.dat-old",
];

/// A Debian root filesystem could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DebianError {
    /// The cache directory could not be prepared.
    #[error("preparing the cache directory: {source}")]
    Cache {
        /// The file-system error.
        source: FsError,
    },
    /// mmdebstrap failed.
    #[error("building the Debian root filesystem: {source}")]
    Mmdebstrap {
        /// The tool error with command and stderr.
        source: ToolError,
    },
}

/// Debian architecture name for a StartOS one.
fn debian_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The cache directory: `$HEARTH_CACHE_DIR`, else `$XDG_CACHE_HOME/hearth`,
/// else `~/.cache/hearth`, else `None` (no caching).
pub(crate) fn cache_dir() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("HEARTH_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("hearth")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/hearth")))
}

/// The cache key of a source for one architecture.
fn cache_key(src: &DebianSource, arch: &str) -> String {
    let mut packages = src.packages.clone();
    packages.sort();
    packages.dedup();
    let mut text = format!(
        "hearth-debian-v1\n{}\n{}\n{}\n{}\n{}",
        src.suite,
        src.mirror,
        src.variant,
        debian_arch(arch),
        packages.join(",")
    );
    // Appended only when set, so the keys of sources without them stay as they were.
    if !src.path_exclude.is_empty() || !src.path_include.is_empty() {
        text.push_str(&format!(
            "\nexclude={}\ninclude={}",
            src.path_exclude.join("\0"),
            src.path_include.join("\0")
        ));
    }
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Returns a tarball of the root filesystem, from the cache or freshly built.
/// `work` holds the tarball when there is no cache directory.
pub(crate) fn rootfs_tarball(
    src: &DebianSource,
    arch: &str,
    epoch: u64,
    cache: Option<&Path>,
    work: &Path,
) -> Result<PathBuf, DebianError> {
    let key = cache_key(src, arch);
    let dir = match cache {
        Some(cache) => cache.join("debian"),
        None => work.to_path_buf(),
    };
    let tarball = dir.join(format!("{}-{}-{key}.tar", src.suite, debian_arch(arch)));
    if tarball.is_file() {
        tracing::info!(path = %tarball.display(), "using cached Debian root filesystem");
        return Ok(tarball);
    }
    fs::create_dir_all(&dir)
        .map_err(fsops::io_err("creating directory", &dir))
        .map_err(|source| DebianError::Cache { source })?;
    let partial = dir.join(format!(".{key}.{}.partial", std::process::id()));
    let variant = format!("--variant={}", src.variant);
    let architectures = format!("--architectures={}", debian_arch(arch));
    let include = format!("--include={}", src.packages.join(","));
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("--quiet"),
        OsStr::new(&variant),
        OsStr::new(&architectures),
        OsStr::new("--format=tar"),
    ];
    if !src.packages.is_empty() {
        args.push(OsStr::new(&include));
    }
    // dpkg reads these for every package it unpacks, the essential set included.
    let filters: Vec<String> = src
        .path_exclude
        .iter()
        .map(|g| format!("--dpkgopt=path-exclude={g}"))
        .chain(
            src.path_include
                .iter()
                .map(|g| format!("--dpkgopt=path-include={g}")),
        )
        .collect();
    args.extend(filters.iter().map(OsStr::new));
    args.extend([
        OsStr::new(&src.suite),
        partial.as_os_str(),
        OsStr::new(&src.mirror),
    ]);
    let epoch = epoch.to_string();
    let result = tool::run("mmdebstrap", &args, &[("SOURCE_DATE_EPOCH", &epoch)]);
    if let Err(source) = result {
        let _ = fs::remove_file(&partial);
        return Err(DebianError::Mmdebstrap { source });
    }
    fs::rename(&partial, &tarball)
        .map_err(fsops::io_err("storing in the cache", &tarball))
        .map_err(|source| DebianError::Cache { source })?;
    Ok(tarball)
}

/// Removes [`VOLATILE_FILES`] from a root built from a Debian tarball.
pub(crate) fn remove_volatile(root: &Path) -> Result<(), FsError> {
    for rel in VOLATILE_FILES {
        if let Some(full) = fsops::existing_parents(root, Path::new(rel))? {
            fsops::remove_any(&full)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn source(packages: &[&str]) -> DebianSource {
        DebianSource {
            suite: "bookworm".into(),
            packages: packages.iter().map(|p| p.to_string()).collect(),
            mirror: "http://deb.debian.org/debian".into(),
            variant: "essential".into(),
            path_exclude: Vec::new(),
            path_include: Vec::new(),
        }
    }

    #[test]
    fn cache_key_ignores_package_order_but_not_content() {
        let a = cache_key(&source(&["nginx", "curl"]), "x86_64");
        assert_eq!(a, cache_key(&source(&["curl", "nginx"]), "x86_64"));
        assert_ne!(a, cache_key(&source(&["curl"]), "x86_64"));
        assert_ne!(a, cache_key(&source(&["nginx", "curl"]), "aarch64"));
        let mut other_mirror = source(&["nginx", "curl"]);
        other_mirror.mirror = "http://snapshot.debian.org/archive/debian/20250101T000000Z".into();
        assert_ne!(a, cache_key(&other_mirror, "x86_64"));
        let mut slim = source(&["nginx", "curl"]);
        slim.path_exclude = vec!["/usr/share/doc/*".into()];
        let slim_key = cache_key(&slim, "x86_64");
        assert_ne!(a, slim_key, "excluded paths change the root");
        slim.path_include = vec!["/usr/share/doc/*/copyright".into()];
        assert_ne!(slim_key, cache_key(&slim, "x86_64"));
    }
}
