//! Identifiers and hashes derived from the build inputs (reproducible GUIDs, volume ids).

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `seed` and `name`.
fn derive(seed: &[u8], name: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed);
    h.update([0u8]);
    h.update(name.as_bytes());
    h.finalize().into()
}

/// A version-4-shaped GUID derived from the inputs (`seed`) and its purpose (`name`).
pub(crate) fn guid(seed: &[u8], name: &str) -> String {
    let mut b = derive(seed, name);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
    .to_uppercase()
}

/// A FAT volume id (8 hex digits) derived from the inputs.
pub(crate) fn volume_id(seed: &[u8], name: &str) -> String {
    hex(&derive(seed, name)[..4])
}

/// SHA-256 of a file, streamed.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = guid(b"seed", "disk");
        assert_eq!(a, guid(b"seed", "disk"));
        assert_ne!(a, guid(b"seed", "esp"));
        assert_ne!(a, guid(b"other", "disk"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_eq!(volume_id(b"s", "esp").len(), 8);
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
