//! The image recipe (`imager/recipes/<target>.toml`): wire format and validation.
//!
//! # Design
//! [`Recipe`] is the serde view (`deny_unknown_fields`, every field documented); [`load`]
//! parses and validates it, so the rest of the build only sees a recipe that makes sense.
//!
//! # Limitations
//! Package pinning is `name=version` per package; the mirror is not a dated snapshot, so a
//! rebuild months later resolves dependencies differently.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::arch::{Firmware, Target};

/// One image recipe.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Recipe {
    /// Image target (`x86_64-uefi`, `aarch64-uefi`, `raspberrypi`; see `arch.rs`).
    pub(crate) target: String,
    /// Hearth version written into file names and boot entries.
    pub(crate) version: String,
    /// Timestamp (seconds since the epoch) for every file and filesystem.
    pub(crate) source_date_epoch: u64,
    /// Debian suite (`bookworm`).
    pub(crate) suite: String,
    /// Debian mirror URL.
    pub(crate) mirror: String,
    /// Archive components (`main`, `non-free-firmware`).
    #[serde(default = "default_components")]
    pub(crate) components: Vec<String>,
    /// Further suites of the same mirror (`bookworm-backports`); a package comes from one
    /// only when named as `pkg/suite`.
    #[serde(default)]
    pub(crate) extra_suites: Vec<String>,
    /// Packages installed on top of the essential set (`name` or `name=version`).
    pub(crate) packages: Vec<String>,
    /// dpkg `path-exclude` globs.
    #[serde(default)]
    pub(crate) path_exclude: Vec<String>,
    /// Kernel modules loaded by the initramfs, in order (dependencies are added).
    pub(crate) initramfs_modules: Vec<String>,
    /// Kernel command line shared by both boot entries.
    #[serde(default)]
    pub(crate) cmdline: String,
    /// Size of the EFI system partition in MiB (UEFI targets).
    #[serde(default)]
    pub(crate) esp_mib: u64,
    /// Size of each root slot partition in MiB.
    pub(crate) slot_mib: u64,
    /// Raspberry Pi firmware partitions (target `raspberrypi` only).
    #[serde(default)]
    pub(crate) raspberrypi: Option<crate::rpi::RpiRecipe>,
    /// Trees copied over the root after the packages (`overlays/`), relative to the recipe
    /// file; [`load`] resolves them and checks that they exist.
    #[serde(default)]
    pub(crate) overlays: Vec<PathBuf>,
    /// The Debian packaging of our binaries, relative to the recipe file (resolved by
    /// [`load`]).
    #[serde(default = "default_debian")]
    pub(crate) debian: PathBuf,
}

fn default_debian() -> PathBuf {
    PathBuf::from("../../debian")
}

fn default_components() -> Vec<String> {
    vec!["main".to_owned()]
}

impl Recipe {
    /// The validated target ([`load`] refuses unknown ones).
    pub(crate) fn target(&self) -> Target {
        Target::parse(&self.target).unwrap_or(Target::X86_64Uefi)
    }
}

/// A recipe that cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecipeError {
    /// The file could not be read.
    #[error("reading recipe {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown fields.
    #[error("parsing recipe {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    /// A value is invalid.
    #[error("recipe {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Reads, parses and validates a recipe; also returns its bytes (input of derived ids).
pub(crate) fn load(path: &Path) -> Result<(Recipe, Vec<u8>), RecipeError> {
    let bytes = std::fs::read(path).map_err(|source| RecipeError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let recipe: Recipe = toml::from_str(&text).map_err(|source| RecipeError::Parse {
        path: path.to_owned(),
        source,
    })?;
    let mut recipe = recipe;
    validate(&recipe).map_err(|reason| RecipeError::Invalid {
        path: path.to_owned(),
        reason,
    })?;
    // Paths in the recipe are relative to it; a missing overlay fails here, before any
    // slow step.
    let base = path.parent().unwrap_or(Path::new("."));
    recipe.debian = base.join(&recipe.debian);
    for o in &mut recipe.overlays {
        *o = base.join(&*o);
        crate::overlay::check(o).map_err(|reason| RecipeError::Invalid {
            path: path.to_owned(),
            reason,
        })?;
    }
    Ok((recipe, bytes))
}

fn validate(r: &Recipe) -> Result<(), String> {
    let Some(target) = Target::parse(&r.target) else {
        let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
        return Err(format!(
            "unsupported target {:?} (supported: {})",
            r.target,
            names.join(", ")
        ));
    };
    let name_ok = |s: &str, extra: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._+".contains(c) || extra.contains(c))
    };
    if !name_ok(&r.version, "") || !name_ok(&r.suite, "") {
        return Err("version and suite must be non-empty [A-Za-z0-9._+-]".into());
    }
    for p in &r.packages {
        if !name_ok(p, "=:~/") || p.starts_with('-') {
            return Err(format!("bad package name {p:?}"));
        }
    }
    for c in r.components.iter().chain(&r.extra_suites) {
        if !name_ok(c, "") {
            return Err(format!("bad component or suite name {c:?}"));
        }
    }
    let has = |prefix: &str| r.packages.iter().any(|p| p.starts_with(prefix));
    if !has("linux-image-") {
        return Err("packages must include a kernel (linux-image-…)".into());
    }
    let uefi = matches!(target.firmware(), Firmware::Uefi { .. });
    if uefi && !has("systemd-boot-efi") {
        return Err("packages must include systemd-boot-efi (the boot loader binary)".into());
    }
    if r.initramfs_modules.iter().any(|m| !name_ok(m, "")) {
        return Err("initramfs_modules: bad module name".into());
    }
    if r.cmdline.contains('\n') || r.cmdline.contains("hearth.slot=") {
        return Err("cmdline must be one line and must not set hearth.slot".into());
    }
    if (uefi && !(16..=4096).contains(&r.esp_mib)) || !(64..=65536).contains(&r.slot_mib) {
        return Err("esp_mib must be 16..=4096 and slot_mib 64..=65536".into());
    }
    match (target, &r.raspberrypi) {
        (Target::RaspberryPi, Some(pi)) => {
            if !has("raspi-firmware") {
                return Err(
                    "packages must include raspi-firmware (component non-free-firmware)".into(),
                );
            }
            pi.validate()?;
        }
        (Target::RaspberryPi, None) => {
            return Err("target raspberrypi needs a [raspberrypi] table".into());
        }
        (_, Some(_)) => return Err("[raspberrypi] is only for target raspberrypi".into()),
        (_, None) => {}
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("r.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    const GOOD: &str = r#"
target = "x86_64-uefi"
version = "0.1.0"
source_date_epoch = 1
suite = "bookworm"
mirror = "http://deb.debian.org/debian"
packages = ["linux-image-amd64", "systemd-boot-efi"]
initramfs_modules = ["ext4"]
esp_mib = 64
slot_mib = 512
"#;

    #[test]
    fn shipped_recipes_are_valid() {
        for t in Target::ALL {
            let p = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("recipes")
                .join(format!("{}.toml", t.name()));
            let (r, _) = load(&p).unwrap();
            assert_eq!(r.target(), t);
        }
    }

    #[test]
    fn bad_recipes_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(&write(dir.path(), GOOD)).is_ok());
        let cases = [
            (
                GOOD.replace("x86_64-uefi", "sparc-bios"),
                "unsupported target",
            ),
            (GOOD.replace("\"linux-image-amd64\", ", ""), "kernel"),
            (GOOD.replace("\"ext4\"", "\"e/x\""), "module"),
            (GOOD.replace("slot_mib = 512", "slot_mib = 1"), "slot_mib"),
            (GOOD.replace("esp_mib", "esp_mb"), "unknown field"),
            (
                GOOD.replace("\"systemd-boot-efi\"", "\"systemd-boot-efi\", \"--evil\""),
                "bad package",
            ),
        ];
        let pi_table = "\n[raspberrypi]\nboot_mib = 256\ndevice_trees = []\n";
        let target_pi = GOOD.replace("x86_64-uefi", "raspberrypi");
        let more = [
            (
                format!("{GOOD}components = [\"main\", \"non free\"]\n"),
                "bad component",
            ),
            (format!("{GOOD}{pi_table}"), "only for target raspberrypi"),
            (target_pi.clone(), "needs a [raspberrypi] table"),
            (format!("{target_pi}{pi_table}"), "raspi-firmware"),
        ];
        for (text, want) in cases.into_iter().chain(more) {
            let err = load(&write(dir.path(), &text)).unwrap_err().to_string();
            assert!(err.contains(want), "{want}: {err}");
            assert!(err.contains("r.toml"), "{err}");
        }
        let err = load(&dir.path().join("missing.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("reading recipe"), "{err}");
    }
}
