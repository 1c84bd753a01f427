//! Kernel module loading from `modules.dep` (the initramfs carries a trimmed copy).
//!
//! # Design
//! [`load_order`] is pure: given the text of `modules.dep` and the wanted module names, it
//! returns module files in an order where every dependency comes before its user (the
//! dependency lists in `modules.dep` are loaded last-to-first, as `modprobe` does). Loading
//! goes through [`ModuleLoader`] so the orchestration is testable; the real loader calls
//! `finit_module(2)`. A module that is already loaded (`EEXIST`) counts as loaded.
//!
//! # Limitations
//! No `modules.softdep`, no aliases (`modules.alias`): the wanted list names modules
//! directly, which is enough for the fixed set an image's initramfs needs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module could not be resolved or loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ModuleError {
    /// The wanted module is not in `modules.dep`.
    #[error("module {0} is not listed in modules.dep")]
    Unknown(String),
    /// `finit_module` failed.
    #[error("loading module {path}: {source}")]
    Load {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    /// The module file could not be opened.
    #[error("opening module {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Module name of a `modules.dep` path: `kernel/fs/ext4/ext4.ko.xz` → `ext4`; dashes are
/// underscores, as the kernel normalises them.
pub(crate) fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split(".ko").next().unwrap_or(base);
    stem.replace('-', "_")
}

/// Resolves `wanted` into module paths (relative to the modules directory), dependencies
/// first, each once.
pub(crate) fn load_order(modules_dep: &str, wanted: &[&str]) -> Result<Vec<String>, ModuleError> {
    let mut deps: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for line in modules_dep.lines() {
        let Some((path, rest)) = line.split_once(':') else {
            continue;
        };
        let path = path.trim();
        let list = rest.split_whitespace().map(str::to_owned).collect();
        deps.insert(module_name(path), (path.to_owned(), list));
    }
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for name in wanted {
        let name = name.replace('-', "_");
        let (path, list) = deps
            .get(&name)
            .ok_or_else(|| ModuleError::Unknown(name.clone()))?;
        // modules.dep already holds the transitive closure; load it last-to-first.
        for dep in list.iter().rev().chain(std::iter::once(path)) {
            if seen.insert(dep.clone()) {
                order.push(dep.clone());
            }
        }
    }
    Ok(order)
}

/// Something that loads one module file.
pub(crate) trait ModuleLoader {
    /// Loads the module at `path`; `Ok(false)` if it was already loaded.
    fn load(&mut self, path: &Path) -> Result<bool, ModuleError>;
}

/// `finit_module(2)`.
pub(crate) struct KernelLoader;

impl ModuleLoader for KernelLoader {
    fn load(&mut self, path: &Path) -> Result<bool, ModuleError> {
        let file = std::fs::File::open(path).map_err(|source| ModuleError::Open {
            path: path.to_owned(),
            source,
        })?;
        match nix::kmod::finit_module(&file, c"", nix::kmod::ModuleInitFlags::empty()) {
            Ok(()) => Ok(true),
            Err(nix::Error::EEXIST) => Ok(false),
            Err(source) => Err(ModuleError::Load {
                path: path.to_owned(),
                source,
            }),
        }
    }
}

/// Loads every module in order. A failing module is reported and skipped: a driver for
/// absent hardware must not stop the boot; a missing storage driver shows up later as "root
/// partition not found", with these errors above it on the console.
pub(crate) fn load_all(
    dir: &Path,
    order: &[String],
    loader: &mut dyn ModuleLoader,
) -> Vec<ModuleError> {
    let mut errors = Vec::new();
    for rel in order {
        if let Err(e) = loader.load(&dir.join(rel)) {
            errors.push(e);
        }
    }
    errors
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/squashfs/squashfs.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/crypto/crc32c-generic.ko.xz:
";

    #[test]
    fn dependencies_first_each_once() {
        let order = load_order(DEP, &["virtio_pci", "virtio_blk", "squashfs"]).unwrap();
        assert_eq!(
            order,
            [
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
                "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
                "kernel/drivers/virtio/virtio_pci.ko",
                "kernel/drivers/block/virtio_blk.ko",
                "kernel/fs/squashfs/squashfs.ko",
            ]
        );
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(
            module_name("kernel/crypto/crc32c-generic.ko.xz"),
            "crc32c_generic"
        );
        assert_eq!(
            load_order(DEP, &["crc32c-generic"]).unwrap(),
            ["kernel/crypto/crc32c-generic.ko.xz"]
        );
    }

    #[test]
    fn unknown_module_is_an_error() {
        assert!(matches!(
            load_order(DEP, &["nope"]),
            Err(ModuleError::Unknown(n)) if n == "nope"
        ));
    }

    struct Fake(Vec<PathBuf>);
    impl ModuleLoader for Fake {
        fn load(&mut self, path: &Path) -> Result<bool, ModuleError> {
            self.0.push(path.to_owned());
            if path.ends_with("bad.ko") {
                return Err(ModuleError::Unknown("bad".into()));
            }
            Ok(true)
        }
    }

    #[test]
    fn a_failing_module_does_not_stop_the_rest() {
        let mut fake = Fake(Vec::new());
        let errors = load_all(
            Path::new("/m"),
            &["bad.ko".into(), "good.ko".into()],
            &mut fake,
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(fake.0, [PathBuf::from("/m/bad.ko"), "/m/good.ko".into()]);
    }
}
