//! The StartOS-compatible package manifest (`manifest.json` at the archive root).
//!
//! # Design
//! [`Manifest`] mirrors StartOS's v2 manifest field for field (camelCase JSON), so a
//! package packed by Hearth installs on StartOS and a StartOS package is read here
//! without loss of the fields Hearth uses. Loading is lenient the way StartOS is:
//! unknown fields are ignored (old packages carry `alerts`, `nestedRuntime`, …) and
//! optional fields take StartOS's defaults. Strictness lives in [`Manifest::validate`],
//! which `hearth s9pk pack` runs before building anything.
//!
//! # Invariants
//! - Serialising a loaded manifest writes every field StartOS expects, with `null`
//!   for absent optional values (StartOS does not skip them either).
//! - Collections whose order carries no meaning (`volumes`, `images`,
//!   `dependencies`, image `arch`) are sorted sets/maps, so output is deterministic.
//!
//! # Limitations
//! Device filter regexes are not compiled; `plugins` are not checked against a list
//! (new StartOS plugins must not make old Hearth refuse a package).
//!
//! # Rejected alternatives
//! `deny_unknown_fields` here would refuse real StartOS packages written by newer
//! SDKs; pack-time strictness is done by the project-file loader instead.

mod locale;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use self::locale::LocaleString;
pub use hearth_version::{ExtendedVersion, Version, VersionRange};

/// Architectures StartOS and Hearth know (`uname -m` names).
pub const KNOWN_ARCHES: [&str; 3] = ["x86_64", "aarch64", "riscv64"];

/// Longest short description, in characters.
pub const SHORT_DESCRIPTION_MAX: usize = 160;
/// Longest long description, in characters.
pub const LONG_DESCRIPTION_MAX: usize = 5000;

/// The OS version assumed when a manifest names none.
pub const DEFAULT_OS_VERSION: [u64; 3] = [0, 4, 0];

/// A manifest field failed validation.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// `manifest.json` is not valid JSON for a manifest.
    #[error("parsing manifest.json: {source}")]
    Parse {
        /// The JSON error, with line and column.
        source: serde_json::Error,
    },
    /// An id does not match `^[a-z0-9]+(-[a-z0-9]+)*$`.
    #[error(
        "manifest field `{field}`: {value:?} is not a valid id (lowercase letters, digits and single dashes, e.g. `my-service`)"
    )]
    InvalidId {
        /// Path of the field, e.g. `images.Main`.
        field: String,
        /// The refused id.
        value: String,
    },
    /// A required text is empty.
    #[error("manifest field `{field}` must not be empty")]
    Empty {
        /// Path of the field.
        field: String,
    },
    /// A text is longer than allowed.
    #[error("manifest field `{field}` is {len} characters long; the limit is {max}")]
    TooLong {
        /// Path of the field.
        field: String,
        /// Its length in characters.
        len: usize,
        /// The limit in characters.
        max: usize,
    },
    /// A URL field is not an absolute http(s) URL.
    #[error("manifest field `{field}`: {value:?} is not an http(s) URL")]
    InvalidUrl {
        /// Path of the field.
        field: String,
        /// The refused value.
        value: String,
    },
    /// An architecture name is not one of [`KNOWN_ARCHES`].
    #[error(
        "manifest field `{field}`: unknown architecture {arch:?} (known: x86_64, aarch64, riscv64)"
    )]
    UnknownArch {
        /// Path of the field.
        field: String,
        /// The refused name.
        arch: String,
    },
    /// Any other inconsistency.
    #[error("manifest field `{field}`: {reason}")]
    Invalid {
        /// Path of the field.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// `manifest.json`: what a package is and what it needs from the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Package id, `^[a-z0-9]+(-[a-z0-9]+)*$`.
    pub id: String,
    /// This build's version, e.g. `1.2.3:0`.
    pub version: ExtendedVersion,
    /// Other versions this build also satisfies.
    #[serde(default)]
    pub satisfies: Vec<ExtendedVersion>,
    /// Versions this build can migrate its data to (downgrades).
    #[serde(default = "any_range")]
    pub can_migrate_to: VersionRange,
    /// Versions this build can migrate data from (upgrades).
    #[serde(default = "any_range")]
    pub can_migrate_from: VersionRange,
    /// Human-readable name.
    pub title: String,
    /// Short and long description.
    pub description: Description,
    /// What changed in this version.
    #[serde(default)]
    pub release_notes: LocaleString,
    /// Commit the package was built from (`-modified` suffix for a dirty tree).
    #[serde(default)]
    pub git_hash: Option<String>,
    /// SPDX licence id of the packaged software.
    pub license: String,
    /// Where the packaging lives.
    pub package_repo: String,
    /// Where the upstream project lives.
    pub upstream_repo: String,
    /// The project's home page.
    #[serde(default)]
    pub marketing_url: Option<String>,
    /// Where to donate to the project.
    #[serde(default)]
    pub donation_url: Option<String>,
    /// Minimum OS version (exver `Version`).
    #[serde(default = "default_os_version")]
    pub os_version: Version,
    /// SDK version the package was built with.
    #[serde(default)]
    pub sdk_version: Option<Version>,
    /// Needs GPUs (`/dev/dri`, `/dev/nvidia*`, `/dev/kfd`).
    #[serde(default)]
    pub hardware_acceleration: bool,
    /// Needs `/dev/fuse`.
    #[serde(default)]
    pub userspace_filesystems: bool,
    /// Needs `/dev/net/tun`.
    #[serde(default)]
    pub virtual_networking: bool,
    /// Host plugins the package implements (StartOS knows `url-v0`).
    #[serde(default)]
    pub plugins: BTreeSet<String>,
    /// Container images by image id.
    #[serde(default)]
    pub images: BTreeMap<String, ImageConfig>,
    /// Persistent volume ids (usually `main`).
    #[serde(default)]
    pub volumes: BTreeSet<String>,
    /// Packages this one may depend on, by package id.
    #[serde(default)]
    pub dependencies: BTreeMap<String, DependencyInfo>,
    /// What the device must provide.
    #[serde(default)]
    pub hardware_requirements: HardwareRequirements,
}

fn any_range() -> VersionRange {
    VersionRange::any()
}

fn default_os_version() -> Version {
    Version::release(DEFAULT_OS_VERSION)
}

/// The two descriptions shown in the marketplace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    /// One line, at most 160 characters per locale.
    pub short: LocaleString,
    /// A few paragraphs, at most 5000 characters per locale.
    pub long: LocaleString,
}

/// One container image of the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageConfig {
    /// Where the image comes from; `packed` in a finished package.
    #[serde(default)]
    pub source: ImageSource,
    /// Architectures the image is built for.
    #[serde(default = "default_arch")]
    pub arch: BTreeSet<String>,
    /// Architecture to run under emulation when the device's is missing.
    #[serde(default)]
    pub emulate_missing_as: Option<String>,
    /// Run with the NVIDIA container toolkit.
    #[serde(default)]
    pub nvidia_container: bool,
}

fn default_arch() -> BTreeSet<String> {
    ["x86_64", "aarch64"]
        .into_iter()
        .map(String::from)
        .collect()
}

/// Where an image comes from. Finished packages always say `packed`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ImageSource {
    /// The image is inside the package under `images/<arch>/<id>.*`.
    #[default]
    Packed,
    /// StartOS build-time form: build a Dockerfile (kept as written).
    DockerBuild(serde_json::Value),
    /// StartOS build-time form: use a local Docker tag.
    DockerTag(String),
}

/// A package this one may depend on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyInfo {
    /// Why the dependency is needed.
    #[serde(default)]
    pub description: Option<LocaleString>,
    /// Whether the package works without it.
    #[serde(default)]
    pub optional: bool,
    /// Build-time only: where to find the dependency's title and icon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// What the device must provide.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HardwareRequirements {
    /// Devices that must be present.
    #[serde(default)]
    pub device: Vec<DeviceFilter>,
    /// Minimum RAM in bytes.
    #[serde(default)]
    pub ram: Option<u64>,
    /// Architectures the package supports (`None` = those of its images).
    #[serde(default)]
    pub arch: Option<BTreeSet<String>>,
}

/// A device the package needs, matched by class and regexes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceFilter {
    /// Shown to the user when the device is missing.
    #[serde(default)]
    pub description: String,
    /// Device class: `processor` or `display`.
    pub class: String,
    /// Regex over the product name.
    #[serde(default)]
    pub product: Option<String>,
    /// Regex over the vendor name.
    #[serde(default)]
    pub vendor: Option<String>,
    /// Required capabilities (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<serde_json::Value>,
    /// Required driver (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<serde_json::Value>,
}

/// Whether `id` matches `^[a-z0-9]+(-[a-z0-9]+)*$` (package, image, volume and
/// other ids).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn check_id(field: String, value: &str) -> Result<(), ManifestError> {
    if is_valid_id(value) {
        Ok(())
    } else {
        Err(ManifestError::InvalidId {
            field,
            value: value.to_owned(),
        })
    }
}

fn check_url(field: &str, value: &str) -> Result<(), ManifestError> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    let ok = rest.is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !value.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if ok {
        Ok(())
    } else {
        Err(ManifestError::InvalidUrl {
            field: field.to_owned(),
            value: value.to_owned(),
        })
    }
}

fn check_arch(field: String, arch: &str) -> Result<(), ManifestError> {
    if KNOWN_ARCHES.contains(&arch) {
        Ok(())
    } else {
        Err(ManifestError::UnknownArch {
            field,
            arch: arch.to_owned(),
        })
    }
}

fn check_locale_text(
    field: &str,
    text: &LocaleString,
    max: usize,
    required: bool,
) -> Result<(), ManifestError> {
    let entries = text.entries();
    if required && entries.iter().all(|(_, t)| t.trim().is_empty()) {
        return Err(ManifestError::Empty {
            field: field.to_owned(),
        });
    }
    for (locale, t) in entries {
        let len = t.chars().count();
        if len > max {
            let field = match locale {
                Some(locale) => format!("{field}.{locale}"),
                None => field.to_owned(),
            };
            return Err(ManifestError::TooLong { field, len, max });
        }
    }
    Ok(())
}

impl Manifest {
    /// Parses `manifest.json` bytes (unknown fields ignored, StartOS defaults applied).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Parse { source })
    }

    /// Serialises as pretty JSON with a trailing newline (deterministic).
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data structs with string map keys cannot fail.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Checks the manifest the way a package author needs it checked: ids,
    /// texts and their lengths, URLs, architectures, image and dependency entries.
    pub fn validate(&self) -> Result<(), ManifestError> {
        check_id("id".into(), &self.id)?;
        if self.title.trim().is_empty() {
            return Err(ManifestError::Empty {
                field: "title".into(),
            });
        }
        check_locale_text(
            "description.short",
            &self.description.short,
            SHORT_DESCRIPTION_MAX,
            true,
        )?;
        check_locale_text(
            "description.long",
            &self.description.long,
            LONG_DESCRIPTION_MAX,
            true,
        )?;
        if self.license.trim().is_empty() {
            return Err(ManifestError::Empty {
                field: "license".into(),
            });
        }
        check_url("packageRepo", &self.package_repo)?;
        check_url("upstreamRepo", &self.upstream_repo)?;
        if let Some(url) = &self.marketing_url {
            check_url("marketingUrl", url)?;
        }
        if let Some(url) = &self.donation_url {
            check_url("donationUrl", url)?;
        }
        for (id, image) in &self.images {
            check_id(format!("images.{id}"), id)?;
            self.validate_image(id, image)?;
        }
        for volume in &self.volumes {
            check_id(format!("volumes.{volume}"), volume)?;
        }
        for id in self.dependencies.keys() {
            check_id(format!("dependencies.{id}"), id)?;
            if *id == self.id {
                return Err(ManifestError::Invalid {
                    field: format!("dependencies.{id}"),
                    reason: "a package cannot depend on itself".into(),
                });
            }
        }
        if let Some(arches) = &self.hardware_requirements.arch {
            for arch in arches {
                check_arch(format!("hardwareRequirements.arch.{arch}"), arch)?;
                // As StartOS checks on install: every image must run on every
                // supported arch, natively or emulated.
                for (id, image) in &self.images {
                    if !image.arch.contains(arch) && image.emulate_missing_as.is_none() {
                        return Err(ManifestError::Invalid {
                            field: format!("images.{id}.arch"),
                            reason: format!(
                                "{arch} is in hardwareRequirements.arch but the image is not \
                                 built for it (add it, or set emulateMissingAs)"
                            ),
                        });
                    }
                }
            }
        }
        for (i, device) in self.hardware_requirements.device.iter().enumerate() {
            if !matches!(device.class.as_str(), "processor" | "display") {
                return Err(ManifestError::Invalid {
                    field: format!("hardwareRequirements.device[{i}].class"),
                    reason: format!("{:?} is not `processor` or `display`", device.class),
                });
            }
        }
        Ok(())
    }

    fn validate_image(&self, id: &str, image: &ImageConfig) -> Result<(), ManifestError> {
        if image.arch.is_empty() {
            return Err(ManifestError::Empty {
                field: format!("images.{id}.arch"),
            });
        }
        for arch in &image.arch {
            check_arch(format!("images.{id}.arch"), arch)?;
        }
        if let Some(emulated) = &image.emulate_missing_as
            && !image.arch.contains(emulated)
        {
            return Err(ManifestError::Invalid {
                field: format!("images.{id}.emulateMissingAs"),
                reason: format!("{emulated:?} is not one of the image's arch list"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
