//! Payloads of `db.*` methods.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Params of `db.dump`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DumpParams {
    /// RFC 6901 JSON Pointer into the public state; absent or `""` for all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

/// Result of `db.dump`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DumpResult {
    /// Revision the value was read at.
    pub rev: u64,
    /// The value at the pointer.
    pub value: Value,
}

/// Params of `db.put.ui`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutUiParams {
    /// RFC 6901 JSON Pointer relative to `/ui`, e.g. `/theme`; `""` replaces all of `/ui`
    /// (which must then be an object).
    pub pointer: String,
    /// The value to store.
    pub value: Value,
}
