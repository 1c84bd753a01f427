//! The signed manifest envelope and its verification against a device.
//!
//! Envelope (`manifest.hota`): [`MAGIC`] (`hearth-ota/2\n`), the manifest length as u32
//! little-endian, the manifest JSON, then the 64-byte Ed25519 signature (RFC 8032, strict
//! verification) of [`SIG_DOMAIN`] + the JSON. The length lets a reader tell a truncated
//! envelope from an altered one; the domain keeps a bundle signature from ever verifying
//! as anything else the key signs (v1 bundles, packages).
//!
//! [`verify`] refuses, in this order and each with its own [`VerifyError`]: a bad or
//! truncated envelope, a signature that no trusted key verifies, a manifest that does not
//! parse, an updater older than the bundle needs, another target, another compatibility
//! string, a running version outside the accepted range. It reads nothing but the
//! envelope, so it runs before a byte is written.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hearth_version::{ExtendedVersion, Version};

use crate::manifest::{Manifest, ManifestError};

/// First bytes of a v2 envelope.
pub const MAGIC: &[u8] = b"hearth-ota/2\n";
/// Prefix of the signed message.
pub const SIG_DOMAIN: &[u8] = b"hearth-ota-manifest/2\n";
/// Largest accepted manifest JSON.
pub const MAX_MANIFEST: u32 = 1 << 20;

/// What the device is, for [`verify`].
#[derive(Debug, Clone)]
pub struct Device {
    /// The running image's target.
    pub target: String,
    /// The running image's compatibility string.
    pub compatibility: String,
    /// The running OS version.
    pub running: Version,
    /// The version of the updater doing the check.
    pub updater: Version,
}

/// A bundle manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The envelope does not start with the v2 magic.
    #[error("not a hearth-ota/2 manifest envelope")]
    NotEnvelope,
    /// The envelope ends early.
    #[error("manifest envelope truncated: {got} of {want} bytes")]
    Truncated {
        /// Bytes present.
        got: u64,
        /// Bytes the header promises.
        want: u64,
    },
    /// Bytes after the signature.
    #[error("manifest envelope has {0} bytes after the signature")]
    Trailing(u64),
    /// The length field is larger than allowed.
    #[error("manifest of {0} bytes (at most {MAX_MANIFEST})")]
    TooLarge(u32),
    /// No trusted key verifies the signature (another key, or an altered manifest).
    #[error("the manifest signature verifies with none of the {keys} trusted key(s)")]
    BadSignature {
        /// How many keys were tried.
        keys: usize,
    },
    /// Signed but invalid.
    #[error("signed manifest: {0}")]
    Manifest(#[from] ManifestError),
    /// The bundle needs a newer updater.
    #[error("bundle needs updater {need} or newer, this is {have}")]
    UpdaterTooOld {
        /// Required.
        need: Version,
        /// Ours.
        have: Version,
    },
    /// Another target.
    #[error("bundle is for target {bundle}, this device is {device}")]
    WrongTarget {
        /// In the bundle.
        bundle: String,
        /// The device's.
        device: String,
    },
    /// Another compatibility string.
    #[error("bundle is for compatibility {bundle:?}, this device is {device:?}")]
    WrongCompatibility {
        /// In the bundle.
        bundle: String,
        /// The device's.
        device: String,
    },
    /// The running version is outside the accepted range (a downgrade, a skipped step).
    #[error("bundle {version} applies to running versions {range}, this device runs {running}")]
    SourceExcluded {
        /// The bundle's version.
        version: Version,
        /// Its accepted range (canonical text).
        range: String,
        /// What runs.
        running: Version,
    },
}

/// The signed envelope of `manifest`.
pub fn sign(manifest: &Manifest, key: &SigningKey) -> Vec<u8> {
    let json = manifest.to_json();
    let mut msg = SIG_DOMAIN.to_vec();
    msg.extend_from_slice(&json);
    let sig = key.sign(&msg).to_bytes();
    let len = u32::try_from(json.len()).unwrap_or(u32::MAX);
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&sig);
    out
}

/// Checks `envelope` against `trusted` keys and `device`; the validated manifest and the
/// index of the key that signed it.
pub fn verify(
    envelope: &[u8],
    trusted: &[VerifyingKey],
    device: &Device,
) -> Result<(Manifest, usize), VerifyError> {
    let rest = envelope.strip_prefix(MAGIC).ok_or(
        if MAGIC.starts_with(envelope) && !envelope.is_empty() {
            VerifyError::Truncated {
                got: envelope.len() as u64,
                want: MAGIC.len() as u64 + 4,
            }
        } else {
            VerifyError::NotEnvelope
        },
    )?;
    let (len, body) = match rest.split_first_chunk::<4>() {
        Some((l, b)) => (u32::from_le_bytes(*l), b),
        None => {
            return Err(VerifyError::Truncated {
                got: envelope.len() as u64,
                want: MAGIC.len() as u64 + 4,
            });
        }
    };
    if len > MAX_MANIFEST {
        return Err(VerifyError::TooLarge(len));
    }
    let want = len as usize + 64;
    if body.len() < want {
        return Err(VerifyError::Truncated {
            got: envelope.len() as u64,
            want: (MAGIC.len() + 4 + want) as u64,
        });
    }
    if body.len() > want {
        return Err(VerifyError::Trailing((body.len() - want) as u64));
    }
    let (json, sig) = body.split_at(len as usize);
    let sig: [u8; 64] = sig.try_into().map_err(|_| VerifyError::NotEnvelope)?;
    let sig = Signature::from_bytes(&sig);
    let mut msg = SIG_DOMAIN.to_vec();
    msg.extend_from_slice(json);
    let key = trusted
        .iter()
        .position(|k| k.verify_strict(&msg, &sig).is_ok())
        .ok_or(VerifyError::BadSignature {
            keys: trusted.len(),
        })?;
    let m = Manifest::parse(json)?;
    if device.updater < m.min_updater {
        return Err(VerifyError::UpdaterTooOld {
            need: m.min_updater,
            have: device.updater.clone(),
        });
    }
    if m.target != device.target {
        return Err(VerifyError::WrongTarget {
            bundle: m.target,
            device: device.target.clone(),
        });
    }
    if m.compatibility != device.compatibility {
        return Err(VerifyError::WrongCompatibility {
            bundle: m.compatibility,
            device: device.compatibility.clone(),
        });
    }
    let running = ExtendedVersion::new(device.running.clone(), Version::release([0]));
    if !m.source_versions.satisfies(&running) {
        return Err(VerifyError::SourceExcluded {
            version: m.version,
            range: m.source_versions.to_string(),
            running: device.running.clone(),
        });
    }
    Ok((m, key))
}
