//! Trusted package signers (`package.trust.*`), kept in the private half of the store.
//!
//! A key's fingerprint is the hex BLAKE3 of its raw 32 bytes: stable, short to compare,
//! and independent of how the PEM was formatted.

use hearth_rpc::methods::package::TrustedKey;
use hearth_s9pk::VerifyingKey;
use hearth_store::Store;
use serde_json::Value;

use crate::doc::{self, TRUSTED_KEYS};
use crate::error::PackageError;

/// The fingerprint of a signer key.
pub fn fingerprint(key: &VerifyingKey) -> String {
    blake3::hash(key.as_bytes()).to_hex().to_string()
}

/// Adds `pem` to the trusted keys (keeping an existing entry); returns the entry.
pub(crate) fn add(
    store: &Store,
    pem: &str,
    name: Option<String>,
) -> Result<(TrustedKey, u64), PackageError> {
    let key = hearth_s9pk::key::verifying_key_from_pem(pem).map_err(PackageError::Key)?;
    let canonical = hearth_s9pk::key::verifying_key_to_pem(&key).map_err(PackageError::Key)?;
    let fp = fingerprint(&key);
    let entry = TrustedKey {
        fingerprint: fp.clone(),
        public_key: canonical,
        name,
        added_ms: doc::now_ms(),
    };
    store
        .mutate(|d| {
            let map = doc::object_mut(d, TRUSTED_KEYS)?;
            if let Some(existing) = map.get(&fp).and_then(parse) {
                return Ok(existing);
            }
            let v = serde_json::to_value(&entry).map_err(|e| PackageError::Document {
                pointer: TRUSTED_KEYS.into(),
                reason: e.to_string(),
            })?;
            map.insert(fp.clone(), v);
            Ok(entry)
        })
        .map(|m| (m.value, m.revision))
        .map_err(|e| doc::mutate_error("trust key", e))
}

fn parse(v: &Value) -> Option<TrustedKey> {
    serde_json::from_value(v.clone()).ok()
}

/// Every trusted key, by fingerprint.
pub(crate) fn list(store: &Store) -> Result<Vec<TrustedKey>, PackageError> {
    match store.get(TRUSTED_KEYS) {
        Ok(v) => Ok(v
            .as_object()
            .map(|m| m.values().filter_map(parse).collect())
            .unwrap_or_default()),
        Err(hearth_store::StoreError::PointerNotFound { .. }) => Ok(Vec::new()),
        Err(source) => Err(PackageError::Store {
            op: "list trusted keys",
            source,
        }),
    }
}

/// The trusted keys as keys (unparseable entries are skipped).
pub(crate) fn keys(store: &Store) -> Result<Vec<VerifyingKey>, PackageError> {
    Ok(list(store)?
        .iter()
        .filter_map(|k| hearth_s9pk::key::verifying_key_from_pem(&k.public_key).ok())
        .collect())
}

/// Removes the key with fingerprint `fp`.
pub(crate) fn remove(store: &Store, fp: &str) -> Result<u64, PackageError> {
    store
        .mutate(|d| {
            let map = doc::object_mut(d, TRUSTED_KEYS)?;
            map.remove(fp)
                .map(|_| ())
                .ok_or_else(|| PackageError::NotFound {
                    what: "trusted key",
                    id: fp.to_owned(),
                })
        })
        .map(|m| m.revision)
        .map_err(|e| doc::mutate_error("untrust key", e))
}
