//! Secrets: random tokens, their SHA-256 hashes, argon2id password hashes.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64ct::{Base64UrlUnpadded, Encoding};
use sha2::{Digest, Sha256};

use crate::ApiError;

/// Bytes of randomness in session tokens, API tokens and the local cookie (256 bits).
const TOKEN_BYTES: usize = 32;

/// A fresh random token, URL-safe base64 without padding (43 characters).
pub(crate) fn random_token() -> Result<String, ApiError> {
    let mut buf = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut buf).map_err(|e| ApiError::Random(e.to_string()))?;
    Ok(Base64UrlUnpadded::encode_string(&buf))
}

/// A short random id (16 hex characters).
pub(crate) fn random_id() -> Result<String, ApiError> {
    let mut buf = [0u8; 8];
    getrandom::fill(&mut buf).map_err(|e| ApiError::Random(e.to_string()))?;
    Ok(hex(&buf))
}

/// Lowercase hex SHA-256 of `secret`: what the server stores instead of a token.
pub(crate) fn sha256_hex(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Equality that takes the same time wherever the first difference is.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// argon2id cost: RFC 9106's "memory-constrained" profile (64 MiB, 3 passes, 4 lanes),
/// the same as StartOS. Besides its strength, 64 MiB is above glibc's 32 MiB cap for the
/// dynamic mmap threshold, so the working memory is always its own mapping and goes
/// back to the OS after each hash: a login does not leave ~20 MB in a malloc arena
/// (measured with 19 MiB: idle RSS 8 MB after setup, 27 MB after one login).
const M_COST_KIB: u32 = 64 * 1024;
const T_COST: u32 = 3;
const P_COST: u32 = 4;

fn hasher() -> Result<Argon2<'static>, ApiError> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .map_err(|e| ApiError::PasswordHash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// argon2id PHC string of `password` with a random salt (blocking, ~0.1–0.3 s).
pub(crate) fn hash_password(password: &str) -> Result<String, ApiError> {
    hasher()?
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| ApiError::PasswordHash(e.to_string()))
}

/// Whether `password` matches the PHC string `hash` (blocking). A malformed hash is an
/// error, not a mismatch.
pub(crate) fn verify_password(password: &str, hash: &str) -> Result<bool, ApiError> {
    // The PHC string carries its own parameters; the hasher's are not used.
    match hasher()?.verify_password(password.as_bytes(), hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(ApiError::PasswordHash(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn password_round_trip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"), "{h}");
        assert!(verify_password("correct horse", &h).unwrap());
        assert!(!verify_password("wrong horse", &h).unwrap());
        assert!(verify_password("x", "not a phc string").is_err());
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
