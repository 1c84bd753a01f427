//! Ed25519 signing keys as text: PEM PKCS#8 private keys and PEM SPKI public
//! keys, the same encodings StartOS uses, so keys move between toolchains.
//!
//! Private keys are written as PKCS#8 v2 (with the public key embedded, which
//! is checked on load); v1 documents without a public key load too.
//!
//! Rejected alternative: raw 32-byte seeds in files. They carry no algorithm
//! identifier and are not what `start-cli` reads.

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
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

/// Encodes a signing key as PEM PKCS#8 with `\n` line endings.
pub fn signing_key_to_pem(key: &SigningKey) -> Result<String, KeyError> {
    key.to_pkcs8_pem(LineEnding::LF)
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
