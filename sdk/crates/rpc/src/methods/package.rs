//! Payloads of `package.*` methods (install, trust, lifecycle).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Params of `package.trust.add`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrustAddParams {
    /// The developer's Ed25519 public key, PEM (`-----BEGIN PUBLIC KEY-----`, SPKI).
    pub public_key: String,
    /// A name to recognise the key by (e.g. the developer's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One trusted package signer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustedKey {
    /// Hex BLAKE3 of the raw 32-byte key: the key's stable id.
    pub fingerprint: String,
    /// The key, PEM.
    pub public_key: String,
    /// The name given when it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it was added, ms since the Unix epoch.
    pub added_ms: u64,
}

/// Params of `package.trust.remove`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrustRemoveParams {
    /// Fingerprint of the key (from `package.trust.list`).
    pub fingerprint: String,
}

/// Params of `package.install`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstallParams {
    /// Absolute path of an `.s9pk` file on the server.
    pub path: String,
    /// Install even if the signer is not a trusted key (its fingerprint is recorded).
    #[serde(default)]
    pub allow_untrusted: bool,
}

/// Result of `package.install`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallResult {
    /// The installed package's id.
    pub id: String,
    /// Its version (exver).
    pub version: String,
    /// Fingerprint of the key that signed it.
    pub signer_fingerprint: String,
    /// Whether that key is in the trusted list.
    pub signer_trusted: bool,
}

/// Params of `package.start`, `package.stop` and `package.restart`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdParams {
    /// Package id.
    pub id: String,
}

/// Params of `package.uninstall`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UninstallParams {
    /// Package id.
    pub id: String,
    /// Keep the service's data (volumes) for a later reinstall.
    #[serde(default)]
    pub keep_data: bool,
}

/// One entry of `package.list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageSummary {
    /// Package id.
    pub id: String,
    /// Title from the manifest.
    pub title: String,
    /// Installed version.
    pub version: String,
    /// `installing`, `installed` or `removing`.
    pub state: String,
    /// Desired run state: `running` or `stopped` (`restarting` while a restart is pending).
    pub desired: String,
    /// Observed run state: `stopped`, `starting`, `running`, `stopping`, `backingOff`.
    pub status: String,
    /// The last error starting or running it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}
