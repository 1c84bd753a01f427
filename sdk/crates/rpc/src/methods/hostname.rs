//! Payloads of `server.hostname.set`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Hostname;

/// Params of `server.hostname.set`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostnameSetParams {
    /// The new hostname: one DNS label (1–63 letters, digits or dashes, not starting or
    /// ending with a dash); stored lowercased.
    pub hostname: Hostname,
}

/// Result of `server.hostname.set`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostnameSetResult {
    /// The hostname as stored (lowercased).
    pub hostname: Hostname,
}

/// Where the state keeps the name mDNS announces (`<hostname>.local`, or
/// `<hostname>-<n>.local` after a conflict on the LAN), under `/public/serverInfo`.
pub const MDNS_NAME_KEY: &str = "mdnsName";
