//! Ed25519 signing keys as text: PEM PKCS#8 private keys and PEM SPKI public
//! keys, the same encodings StartOS uses, so keys move between toolchains.
//!
//! Private keys are written as PKCS#8 v1 (RFC 8410 §7: version 0, the 32-byte
//! seed, no embedded public key), which OpenSSL 3.0 and StartOS both read;
//! v2 documents with an embedded public key load too (the public key is
//! checked against the seed).
//!
//! Rejected alternative: raw 32-byte seeds in files. They carry no algorithm
//! identifier and are not what `start-cli` reads.

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::{SigningKey, VerifyingKey};

/// Errors of key generation and PEM conversion.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system's random source failed.
    #[error("generating a key: the system random source failed: {0}")]
    Random(getrandom::Error),
    /// A private key PEM could not be decoded.
    #[error("decoding a PKCS#8 PEM private key: {0}")]
    DecodePrivate(ed25519_dalek::pkcs8::Error),
    /// A private key could not be encoded.
    #[error("encoding a PKCS#8 PEM private key: {0}")]
    EncodePrivate(ed25519_dalek::pkcs8::Error),
    /// A public key PEM could not be decoded.
    #[error("decoding an SPKI PEM public key: {0}")]
    DecodePublic(ed25519_dalek::pkcs8::spki::Error),
    /// A public key could not be encoded.
    #[error("encoding an SPKI PEM public key: {0}")]
    EncodePublic(ed25519_dalek::pkcs8::spki::Error),
}

/// Generates a new Ed25519 signing key from the operating system's CSPRNG.
pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(KeyError::Random)?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

/// Parses a PEM PKCS#8 (`-----BEGIN PRIVATE KEY-----`) Ed25519 key.
pub fn signing_key_from_pem(pem: &str) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(pem.trim()).map_err(KeyError::DecodePrivate)
}

/// Encodes a signing key as PEM PKCS#8 v1 with `\n` line endings.
pub fn signing_key_to_pem(key: &SigningKey) -> Result<String, KeyError> {
    let doc = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    doc.to_pkcs8_pem(LineEnding::LF)
        .map(|z| z.as_str().to_owned())
        .map_err(KeyError::EncodePrivate)
}

/// Encodes a public key as PEM SPKI (`-----BEGIN PUBLIC KEY-----`).
pub fn verifying_key_to_pem(key: &VerifyingKey) -> Result<String, KeyError> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(KeyError::EncodePublic)
}

/// Parses a PEM SPKI Ed25519 public key.
pub fn verifying_key_from_pem(pem: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(KeyError::DecodePublic)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pem_roundtrip() {
        let key = generate().unwrap();
        let pem = signing_key_to_pem(&key).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let back = signing_key_from_pem(&pem).unwrap();
        assert_eq!(back.to_bytes(), key.to_bytes());
        let public = verifying_key_to_pem(&key.verifying_key()).unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(
            verifying_key_from_pem(&public).unwrap(),
            key.verifying_key()
        );
    }

    #[test]
    fn private_pem_is_rfc8410_pkcs8_v1() {
        let key = SigningKey::from_bytes(&[0x42; 32]);
        let pem = signing_key_to_pem(&key).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = crate::base64_decode(&body).unwrap();
        // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING {
        // OCTET STRING seed } }, exactly as `openssl genpkey -algorithm ed25519`.
        let mut expected = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        expected.extend_from_slice(&[0x42; 32]);
        assert_eq!(der, expected);
        // A v2 document (public key embedded) loads too, and a wrong embedded
        // public key is refused.
        let v2 = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert_eq!(signing_key_from_pem(&v2).unwrap().to_bytes(), [0x42; 32]);
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(
            generate().unwrap().to_bytes(),
            generate().unwrap().to_bytes()
        );
    }

    #[test]
    fn known_openssl_key_loads() {
        // `openssl genpkey -algorithm ed25519` output (PKCS#8 v1, no public key),
        // RFC 8410 §10.3 example.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
                   -----END PRIVATE KEY-----\n";
        let key = signing_key_from_pem(pem).unwrap();
        assert_eq!(key.to_bytes()[0], 0xd4);
        assert!(matches!(
            signing_key_from_pem("-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n"),
            Err(KeyError::DecodePrivate(_))
        ));
    }
}
