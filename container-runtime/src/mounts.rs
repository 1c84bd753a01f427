//! Volume mounts: bind `/media/hearth/volumes/<volume>` onto each spec `mounts` path.
//!
//! # Design
//! The host (hearth-lxc) bind-mounts every volume of the package at
//! `<volumes-dir>/<id>` inside the container; a spec mount `{volume, path, readOnly}`
//! asks for that volume at `path`. Daemons and actions share the container's root
//! filesystem (the service image), so the mounts are made once, at start-up, for the
//! whole container: [`plan`] (pure) gathers them from every daemon and action and
//! refuses contradictions (one path, two volumes or two modes); [`apply`] makes each
//! one through the narrow [`Mounter`] trait (real: `mount(2)` with `MS_BIND`, then a
//! read-only remount; fake in the tests).
//!
//! # Limitations
//! Per-process mount namespaces (different daemons seeing different volumes at the
//! same path) are not supported; [`plan`] rejects such specs.
//!
//! # Rejected alternatives
//! Shelling out to `mount --bind`: util-linux may be absent from a service image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hearth_s9pk::spec::{MountSpec, ServiceSpec};
use nix::errno::Errno;
use nix::mount::{MsFlags, mount};

/// Default volumes directory inside the container (the host bind-mounts volumes there).
pub(crate) const DEFAULT_VOLUMES_DIR: &str = "/media/hearth/volumes";

/// One bind mount to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BindMount {
    /// `<volumes-dir>/<volume>`.
    pub(crate) source: PathBuf,
    /// Where it appears.
    pub(crate) target: PathBuf,
    /// Remount read-only.
    pub(crate) read_only: bool,
}

/// Errors planning or making mounts.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MountError {
    /// Two mounts disagree about one path.
    #[error("mount path {path}: wanted as {first} and as {second}")]
    Conflict {
        /// The path.
        path: String,
        /// One request.
        first: String,
        /// The other.
        second: String,
    },
    /// A mount path is not absolute.
    #[error("mount path {path:?} is not absolute")]
    Relative {
        /// The path.
        path: String,
    },
    /// The mount point could not be created.
    #[error("create mount point {path}: {source}")]
    CreateTarget {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `mount(2)` failed.
    #[error("bind {source_path} on {target}{ro}: {errno}", ro = if *read_only { " read-only" } else { "" })]
    Bind {
        /// The volume directory.
        source_path: PathBuf,
        /// The mount point.
        target: PathBuf,
        /// Whether the read-only remount failed.
        read_only: bool,
        /// The cause.
        errno: Errno,
    },
}

fn describe(m: &MountSpec) -> String {
    format!(
        "volume {} ({})",
        m.volume,
        if m.read_only {
            "read-only"
        } else {
            "read-write"
        }
    )
}

/// Gathers the mounts of every daemon and action, deduplicated, in path order (so a
/// parent directory is mounted before a mount inside it).
pub(crate) fn plan(spec: &ServiceSpec, volumes_dir: &Path) -> Result<Vec<BindMount>, MountError> {
    let all = spec
        .daemons
        .iter()
        .flat_map(|d| &d.mounts)
        .chain(spec.actions.iter().flat_map(|a| &a.mounts));
    let mut by_path: BTreeMap<&str, &MountSpec> = BTreeMap::new();
    for m in all {
        if !m.path.starts_with('/') {
            return Err(MountError::Relative {
                path: m.path.clone(),
            });
        }
        let path = m.path.trim_end_matches('/');
        match by_path.get(path) {
            Some(prev) if prev.volume != m.volume || prev.read_only != m.read_only => {
                return Err(MountError::Conflict {
                    path: m.path.clone(),
                    first: describe(prev),
                    second: describe(m),
                });
            }
            Some(_) => {}
            None => {
                by_path.insert(path, m);
            }
        }
    }
    Ok(by_path
        .into_iter()
        .map(|(path, m)| BindMount {
            source: volumes_dir.join(&m.volume),
            target: PathBuf::from(if path.is_empty() { "/" } else { path }),
            read_only: m.read_only,
        })
        .filter(|b| b.source != b.target || b.read_only)
        .collect())
}

/// Makes mounts.
pub(crate) trait Mounter {
    /// Bind-mounts `m.source` on `m.target` (which exists), read-only if asked.
    fn bind(&mut self, m: &BindMount) -> Result<(), MountError>;
}

/// The real [`Mounter`].
pub(crate) struct SysMounter;

impl Mounter for SysMounter {
    fn bind(&mut self, m: &BindMount) -> Result<(), MountError> {
        let err = |read_only| {
            move |errno| MountError::Bind {
                source_path: m.source.clone(),
                target: m.target.clone(),
                read_only,
                errno,
            }
        };
        mount(
            Some(&m.source),
            &m.target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(err(false))?;
        if m.read_only {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(None::<&str>, &m.target, None::<&str>, flags, None::<&str>).map_err(err(true))?;
        }
        Ok(())
    }
}

/// Creates each mount point and makes each mount, in order.
pub(crate) fn apply(mounts: &[BindMount], mounter: &mut dyn Mounter) -> Result<(), MountError> {
    for m in mounts {
        std::fs::create_dir_all(&m.target).map_err(|source| MountError::CreateTarget {
            path: m.target.clone(),
            source,
        })?;
        mounter.bind(m)?;
        tracing::info!(source = %m.source.display(), target = %m.target.display(), read_only = m.read_only, "mounted volume");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(json: &str) -> ServiceSpec {
        ServiceSpec::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn plan_dedups_orders_by_path_and_skips_identity_mounts() {
        let s = spec(
            r#"{"daemons":[
              {"id":"a","image":"m","command":["x"],"mounts":[
                {"volume":"main","path":"/data/sub"},{"volume":"cfg","path":"/data","readOnly":true},
                {"volume":"main","path":"/media/hearth/volumes/main"}]},
              {"id":"b","image":"m","command":["x"],"mounts":[{"volume":"main","path":"/data/sub/"}]}],
             "actions":[{"id":"x","name":"X","image":"m","command":["x"],
                "mounts":[{"volume":"cache","path":"/cache"}]}]}"#,
        );
        let p = plan(&s, Path::new("/media/hearth/volumes")).unwrap();
        let targets: Vec<_> = p.iter().map(|m| m.target.to_str().unwrap()).collect();
        assert_eq!(targets, ["/cache", "/data", "/data/sub"]);
        assert_eq!(p[1].source, Path::new("/media/hearth/volumes/cfg"));
        assert!(p[1].read_only && !p[2].read_only);
    }

    #[test]
    fn plan_refuses_one_path_for_two_volumes_or_modes() {
        let s = spec(
            r#"{"daemons":[
              {"id":"a","image":"m","command":["x"],"mounts":[{"volume":"main","path":"/data"}]},
              {"id":"b","image":"m","command":["x"],"mounts":[{"volume":"main","path":"/data","readOnly":true}]}]}"#,
        );
        let err = plan(&s, Path::new("/v")).unwrap_err().to_string();
        assert!(err.contains("/data") && err.contains("read-only"), "{err}");
        let s = spec(
            r#"{"daemons":[{"id":"a","image":"m","command":["x"],"mounts":[{"volume":"v","path":"data"}]}]}"#,
        );
        assert!(matches!(
            plan(&s, Path::new("/v")),
            Err(MountError::Relative { .. })
        ));
    }

    struct Fake(Vec<BindMount>);
    impl Mounter for Fake {
        fn bind(&mut self, m: &BindMount) -> Result<(), MountError> {
            self.0.push(m.clone());
            Ok(())
        }
    }

    #[test]
    fn apply_creates_mount_points_then_binds_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mounts = vec![
            BindMount {
                source: dir.path().join("vol"),
                target: dir.path().join("a"),
                read_only: false,
            },
            BindMount {
                source: dir.path().join("vol"),
                target: dir.path().join("a/b/c"),
                read_only: true,
            },
        ];
        let mut fake = Fake(Vec::new());
        apply(&mounts, &mut fake).unwrap();
        assert_eq!(fake.0, mounts);
        assert!(dir.path().join("a/b/c").is_dir());
    }
}
