//! The fixed 155-byte prefix of an S9PK v2 file and the signature scheme.
//!
//! Layout: magic `3B 3B`, version `02`, signer key (32), Ed25519ph signature
//! (64), root sighash (32), root maxsize (u64 BE), root TOC position and size
//! (u64 BE each). The signature is Ed25519ph with context `s9pk` over
//! SHA-512(root sighash ‖ root maxsize as u64 BE): the [`Commitment`].

use ed25519_dalek::{Digest, Sha512, Signature, SigningKey, VerifyingKey};

use crate::encoding::Hash;

/// The S9PK magic bytes (`;;`).
pub const MAGIC: [u8; 2] = [0x3b, 0x3b];
/// The only supported format version.
pub const VERSION: u8 = 2;
/// Length of the fixed header, and the offset of the root TOC in files that
/// Hearth writes.
pub const HEADER_LEN: u64 = 155;
/// Largest root TOC accepted without a registry commitment (1 MiB).
pub const MAX_UNCOMMITTED_ROOT: u64 = 1024 * 1024;
/// Ed25519ph context string.
pub const SIG_CONTEXT: &[u8] = b"s9pk";

/// What a signature (or a registry) commits to: the root sighash and the
/// signed upper bound of the root TOC's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commitment {
    /// Sighash of the root directory.
    pub root_sighash: Hash,
    /// Signed upper bound of the root TOC length.
    pub root_maxsize: u64,
}

impl Commitment {
    /// The SHA-512 pre-hash that Ed25519ph signs.
    fn prehash(&self) -> Sha512 {
        let mut d = Sha512::new();
        d.update(self.root_sighash.0);
        d.update(self.root_maxsize.to_be_bytes());
        d
    }

    /// Signs the commitment (Ed25519ph, context `s9pk`).
    pub(crate) fn sign(
        &self,
        key: &SigningKey,
    ) -> Result<Signature, ed25519_dalek::SignatureError> {
        key.sign_prehashed(self.prehash(), Some(SIG_CONTEXT))
    }

    /// Checks a signature over the commitment (strict verification).
    pub fn verify(
        &self,
        key: &VerifyingKey,
        sig: &Signature,
    ) -> Result<(), ed25519_dalek::SignatureError> {
        key.verify_prehashed_strict(self.prehash(), Some(SIG_CONTEXT), sig)
    }
}

/// JSON form, as StartOS's `MerkleArchiveCommitment`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CommitmentJson {
    /// Standard base64 (unpadded on output, padding accepted on input).
    root_sighash: String,
    root_maxsize: u64,
}

impl serde::Serialize for Commitment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        CommitmentJson {
            root_sighash: self.root_sighash.to_base64(),
            root_maxsize: self.root_maxsize,
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Commitment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = CommitmentJson::deserialize(d)?;
        let bytes = crate::base64_decode(&j.root_sighash)
            .ok_or_else(|| serde::de::Error::custom("rootSighash is not base64"))?;
        let hash: [u8; 32] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("rootSighash is not 32 bytes"))?;
        Ok(Commitment {
            root_sighash: Hash(hash),
            root_maxsize: j.root_maxsize,
        })
    }
}

/// The decoded fixed header (everything but the magic and version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) pubkey: [u8; 32],
    pub(crate) signature: [u8; 64],
    pub(crate) commitment: Commitment,
    pub(crate) root_pos: u64,
    pub(crate) root_size: u64,
}

impl Header {
    pub(crate) fn encode(&self) -> [u8; 155] {
        let mut out = [0u8; 155];
        out[0..2].copy_from_slice(&MAGIC);
        out[2] = VERSION;
        out[3..35].copy_from_slice(&self.pubkey);
        out[35..99].copy_from_slice(&self.signature);
        out[99..131].copy_from_slice(&self.commitment.root_sighash.0);
        out[131..139].copy_from_slice(&self.commitment.root_maxsize.to_be_bytes());
        out[139..147].copy_from_slice(&self.root_pos.to_be_bytes());
        out[147..155].copy_from_slice(&self.root_size.to_be_bytes());
        out
    }

    /// Decodes bytes 3..155 (after magic and version have been checked).
    pub(crate) fn decode(b: &[u8; 152]) -> Self {
        let mut pubkey = [0u8; 32];
        pubkey.copy_from_slice(&b[0..32]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&b[32..96]);
        let mut sighash = [0u8; 32];
        sighash.copy_from_slice(&b[96..128]);
        let u64_at = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(x)
        };
        Header {
            pubkey,
            signature,
            commitment: Commitment {
                root_sighash: Hash(sighash),
                root_maxsize: u64_at(128),
            },
            root_pos: u64_at(136),
            root_size: u64_at(144),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip() {
        let h = Header {
            pubkey: [1; 32],
            signature: [2; 64],
            commitment: Commitment {
                root_sighash: Hash([3; 32]),
                root_maxsize: 0x0102_0304_0506_0708,
            },
            root_pos: 155,
            root_size: 77,
        };
        let bytes = h.encode();
        assert_eq!(&bytes[0..3], &[0x3b, 0x3b, 0x02]);
        assert_eq!(&bytes[131..139], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut rest = [0u8; 152];
        rest.copy_from_slice(&bytes[3..]);
        assert_eq!(Header::decode(&rest), h);
    }

    #[test]
    fn commitment_json_matches_startos() {
        let c = Commitment {
            root_sighash: Hash([0xfb; 32]),
            root_maxsize: 440,
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"rootSighash":"+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/s","rootMaxsize":440}"#
        );
        assert_eq!(serde_json::from_str::<Commitment>(&text).unwrap(), c);
        let padded = text.replace("/s\"", "/s=\"");
        assert_eq!(serde_json::from_str::<Commitment>(&padded).unwrap(), c);
        assert!(
            serde_json::from_str::<Commitment>(r#"{"rootSighash":"AAAA","rootMaxsize":1}"#)
                .is_err()
        );
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 8032 §7.3 "TEST abc": the primitive really is Ed25519ph (the
    /// variant StartOS signs with), not plain Ed25519 over a digest.
    #[test]
    fn ed25519ph_matches_rfc8032_test_vector() {
        let secret: [u8; 32] =
            unhex("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42")
                .try_into()
                .unwrap();
        let key = SigningKey::from_bytes(&secret);
        assert_eq!(
            key.verifying_key().to_bytes().to_vec(),
            unhex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
        );
        let mut d = Sha512::new();
        d.update(b"abc");
        let sig = key.sign_prehashed(d, None).unwrap();
        assert_eq!(
            sig.to_bytes().to_vec(),
            unhex(
                "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41\
                 31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
            )
        );
    }

    #[test]
    fn signature_binds_sighash_and_maxsize() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let c = Commitment {
            root_sighash: Hash([4; 32]),
            root_maxsize: 100,
        };
        let sig = c.sign(&key).unwrap();
        assert!(c.verify(&key.verifying_key(), &sig).is_ok());
        let bigger = Commitment {
            root_maxsize: 101,
            ..c
        };
        assert!(bigger.verify(&key.verifying_key(), &sig).is_err());
        let other = Commitment {
            root_sighash: Hash([5; 32]),
            ..c
        };
        assert!(other.verify(&key.verifying_key(), &sig).is_err());
    }
}
