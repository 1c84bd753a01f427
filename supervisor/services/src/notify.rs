//! Notifications from the service supervisor (update committed or rolled back), added
//! inside a store mutation through the one writer of the layout `notification.*`
//! serves (`hearth_rpc::methods::notification::add_to_document`).

use hearth_rpc::methods::notification::{self, NotificationLevel};
use serde_json::Value;

use crate::doc;
use crate::error::PackageError;

/// Adds a notification to the document `d` (inside a mutation); returns its id.
pub(crate) fn add(
    d: &mut Value,
    level: NotificationLevel,
    title: &str,
    message: &str,
) -> Result<u64, PackageError> {
    notification::add_to_document(d, level, title, message, doc::now_ms()).map_err(|e| {
        PackageError::Document {
            reason: e.to_string(),
            pointer: e.pointer,
        }
    })
}
