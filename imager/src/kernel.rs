//! The kernel file written to the boot partition.
//!
//! UEFI firmware (and systemd-boot, which hands the file to it) can only start a PE image:
//! a plain arm64 `Image` carries the kernel's EFI stub, a gzip-compressed `Image.gz` (what
//! many arm64 kernels are shipped as) hides it. The Raspberry Pi firmware loads either. So
//! for UEFI targets a gzip kernel is decompressed (and checked to be an arm64 `Image`);
//! anything else is copied: x86's bzImage, and Debian bookworm's and bookworm-backports'
//! arm64 `vmlinuz`, which are already plain `Image`s.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Copying or decompressing the kernel failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} kernel {path}: {source}")]
pub(crate) struct KernelError {
    op: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// "ARMd" at offset 56 of an arm64 `Image` header.
const ARM64_MAGIC: &[u8; 4] = b"ARM\x64";

/// Writes `src` to `dest`; a gzip `src` is decompressed when `want_plain`. Returns whether it
/// decompressed.
pub(crate) fn install(src: &Path, dest: &Path, want_plain: bool) -> Result<bool, KernelError> {
    let err = |op: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| KernelError { op, path, source }
    };
    let bytes = std::fs::read(src).map_err(err("reading", src))?;
    if !(want_plain && bytes.starts_with(&GZIP_MAGIC)) {
        std::fs::write(dest, &bytes).map_err(err("writing", dest))?;
        return Ok(false);
    }
    let mut plain = Vec::with_capacity(bytes.len() * 4);
    flate2::read::GzDecoder::new(bytes.as_slice())
        .read_to_end(&mut plain)
        .map_err(err("decompressing", src))?;
    if plain.get(56..60) != Some(ARM64_MAGIC.as_slice()) {
        return Err(KernelError {
            op: "checking",
            path: src.to_owned(),
            source: std::io::Error::other("decompressed kernel has no arm64 Image header"),
        });
    }
    std::fs::write(dest, &plain).map_err(err("writing", dest))?;
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn gzip_arm64_image_is_decompressed_other_files_copied() {
        let dir = tempfile::tempdir().unwrap();
        let mut image = vec![0u8; 64];
        image[56..60].copy_from_slice(ARM64_MAGIC);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&image).unwrap();
        let src = dir.path().join("vmlinuz");
        std::fs::write(&src, gz.finish().unwrap()).unwrap();
        let dest = dir.path().join("out");
        assert!(install(&src, &dest, true).unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), image);
        assert!(!install(&src, &dest, false).unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&src).unwrap());

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"not a kernel").unwrap();
        std::fs::write(&src, gz.finish().unwrap()).unwrap();
        let err = install(&src, &dest, true).unwrap_err().to_string();
        assert!(err.contains("no arm64 Image header"), "{err}");
    }
}
