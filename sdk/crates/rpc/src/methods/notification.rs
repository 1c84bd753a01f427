//! Payloads of `notification.*` methods.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How important a notification is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NotificationLevel {
    /// For information.
    Info,
    /// Something finished well.
    Success,
    /// Needs attention soon.
    Warning,
    /// Something failed.
    Error,
}

/// One notification (stored in the public state under `/notifications/<id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Id, increasing with creation time.
    pub id: u64,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// Importance.
    pub level: NotificationLevel,
    /// Short title.
    pub title: String,
    /// Body text.
    pub message: String,
    /// Whether the user has seen it.
    pub seen: bool,
}

/// Params of `notification.list`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListParams {
    /// Only notifications with an id smaller than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// At most this many (default 50, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Params of `notification.mark-seen` and `notification.remove`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdsParams {
    /// Notification ids.
    pub ids: Vec<u64>,
}
