//! Known-device cookies: proof that this browser (or CLI) logged in successfully before.
//!
//! A successful login sets `device=<id>.<expiresMs>.<mac>` where `mac` is
//! HMAC-SHA256 (RFC 2104) over `<id>.<expiresMs>` with a 256-bit key kept in the private
//! state (`/private/deviceKey`, created on first start). A login presenting a valid
//! one is rate limited per device instead of per address and is exempt from the global
//! failure budget (see `ratelimit.rs`), so a flood of guesses from elsewhere does not
//! lock the owner out. The cookie grants nothing else: the password is still checked.

use base64ct::{Base64UrlUnpadded, Encoding};
use sha2::{Digest, Sha256};

use super::secret;

/// How long a device stays known without logging in again (one year).
pub(crate) const DEVICE_MAX_AGE_MS: u64 = 365 * 24 * 3600 * 1000;

const BLOCK: usize = 64;

/// HMAC-SHA256 of `message` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The server's device-cookie key.
pub(crate) struct DeviceKey([u8; 32]);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(<redacted>)")
    }
}

impl DeviceKey {
    /// The key stored as base64 (URL-safe, unpadded) `text`, if well formed.
    pub(crate) fn from_stored(text: &str) -> Option<DeviceKey> {
        let mut buf = [0u8; 32];
        let bytes = Base64UrlUnpadded::decode(text, &mut buf).ok()?;
        (bytes.len() == 32).then_some(DeviceKey(buf))
    }

    /// A fresh key and its stored form.
    pub(crate) fn generate() -> Result<(DeviceKey, String), crate::ApiError> {
        let text = secret::random_token()?;
        let key = DeviceKey::from_stored(&text)
            .ok_or_else(|| crate::ApiError::Random("bad device key encoding".into()))?;
        Ok((key, text))
    }

    fn mac(&self, payload: &str) -> String {
        Base64UrlUnpadded::encode_string(&hmac_sha256(&self.0, payload.as_bytes()))
    }

    /// A new device cookie value valid until `now_ms + DEVICE_MAX_AGE_MS`.
    pub(crate) fn issue(&self, now_ms: u64) -> Result<String, crate::ApiError> {
        let id = secret::random_id()?;
        let payload = format!("{id}.{}", now_ms.saturating_add(DEVICE_MAX_AGE_MS));
        let mac = self.mac(&payload);
        Ok(format!("{payload}.{mac}"))
    }

    /// The device id in `cookie` if its MAC is right and it has not expired.
    pub(crate) fn verify(&self, cookie: &str, now_ms: u64) -> Option<String> {
        let (payload, mac) = cookie.rsplit_once('.')?;
        let (id, expires) = payload.split_once('.')?;
        let expected = self.mac(payload);
        if !secret::constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return None;
        }
        let expires: u64 = expires.parse().ok()?;
        (now_ms < expires && !id.is_empty()).then(|| id.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn cookies_verify_only_unaltered_and_unexpired() {
        let (key, stored) = DeviceKey::generate().unwrap();
        assert!(DeviceKey::from_stored(&stored).is_some());
        let c = key.issue(1000).unwrap();
        let id = key.verify(&c, 2000).unwrap();
        assert_eq!(id.len(), 16);
        assert!(c.starts_with(&id));
        assert!(key.verify(&c, 1000 + DEVICE_MAX_AGE_MS).is_none());
        // Another key, a changed expiry or id, garbage: refused.
        let (other, _) = DeviceKey::generate().unwrap();
        assert!(other.verify(&c, 2000).is_none());
        let (payload, mac) = c.rsplit_once('.').unwrap();
        let (id, _) = payload.split_once('.').unwrap();
        assert!(
            key.verify(&format!("{id}.{}.{mac}", u64::MAX), 2000)
                .is_none()
        );
        assert!(key.verify(&format!("x{payload}.{mac}"), 2000).is_none());
        assert!(key.verify("", 0).is_none());
        assert!(key.verify("a.b.c", 0).is_none());
    }
}
