//! Image targets: what differs between `x86_64-uefi`, `aarch64-uefi` and `raspberrypi`.
//!
//! # Design
//! One closed enum, [`Target`], parsed from the recipe's `target` string; every per-target
//! fact (Debian architecture, systemd-boot binary and its removable-media name on the ESP,
//! GPT type of the root slots, how the firmware boots) is a method here, so the build steps
//! never compare target strings themselves.
//!
//! # Invariants
//! [`Target::ALL`] lists every target and [`Target::parse`] accepts exactly their names.

/// How the machine's firmware finds the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Firmware {
    /// UEFI: a GPT disk whose ESP holds systemd-boot (removable-media path) and entries.
    Uefi {
        /// systemd-boot inside the root (`usr/lib/systemd/boot/efi/…`).
        boot_efi_in_root: &'static str,
        /// Its name on the ESP (`EFI/BOOT/BOOTX64.EFI`).
        esp_path: &'static str,
    },
    /// The Raspberry Pi boot ROM/EEPROM: an MBR disk with FAT firmware partitions.
    RaspberryPi,
}

/// An image target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    X86_64Uefi,
    Aarch64Uefi,
    RaspberryPi,
}

impl Target {
    /// Every target, in the order the error message lists them.
    pub(crate) const ALL: [Target; 3] =
        [Target::X86_64Uefi, Target::Aarch64Uefi, Target::RaspberryPi];

    /// The recipe name of the target.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Target::X86_64Uefi => "x86_64-uefi",
            Target::Aarch64Uefi => "aarch64-uefi",
            Target::RaspberryPi => "raspberrypi",
        }
    }

    /// Parses a recipe's `target`.
    pub(crate) fn parse(s: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == s)
    }

    /// Debian architecture of the root filesystem (`mmdebstrap --architectures`).
    pub(crate) fn debian_arch(self) -> &'static str {
        match self {
            Target::X86_64Uefi => "amd64",
            Target::Aarch64Uefi | Target::RaspberryPi => "arm64",
        }
    }

    /// How the firmware boots this target.
    pub(crate) fn firmware(self) -> Firmware {
        match self {
            Target::X86_64Uefi => Firmware::Uefi {
                boot_efi_in_root: "usr/lib/systemd/boot/efi/systemd-bootx64.efi",
                esp_path: "EFI/BOOT/BOOTX64.EFI",
            },
            Target::Aarch64Uefi => Firmware::Uefi {
                boot_efi_in_root: "usr/lib/systemd/boot/efi/systemd-bootaa64.efi",
                esp_path: "EFI/BOOT/BOOTAA64.EFI",
            },
            Target::RaspberryPi => Firmware::RaspberryPi,
        }
    }

    /// GPT type of the root slots (Discoverable Partitions Specification, "Linux root").
    pub(crate) fn root_type_guid(self) -> &'static str {
        match self {
            Target::X86_64Uefi => "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
            Target::Aarch64Uefi | Target::RaspberryPi => "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
        }
    }

    /// Whether the kernel must be a plain (uncompressed) `Image`: systemd-boot starts the
    /// kernel's EFI stub, which a gzip-compressed arm64 `vmlinuz` does not expose.
    pub(crate) fn needs_uncompressed_kernel(self) -> bool {
        self == Target::Aarch64Uefi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_facts_differ_per_target() {
        for t in Target::ALL {
            assert_eq!(Target::parse(t.name()), Some(t));
        }
        assert_eq!(Target::parse("sparc-bios"), None);
        assert_eq!(Target::Aarch64Uefi.debian_arch(), "arm64");
        assert_eq!(Target::X86_64Uefi.debian_arch(), "amd64");
        assert_ne!(
            Target::X86_64Uefi.root_type_guid(),
            Target::Aarch64Uefi.root_type_guid()
        );
        let Firmware::Uefi { esp_path, .. } = Target::Aarch64Uefi.firmware() else {
            panic!("aarch64-uefi is UEFI");
        };
        assert_eq!(esp_path, "EFI/BOOT/BOOTAA64.EFI");
        assert_eq!(Target::RaspberryPi.firmware(), Firmware::RaspberryPi);
    }
}
