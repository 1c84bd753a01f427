//! Notifications from the service supervisor (update committed or rolled back), added
//! inside a store mutation in the layout `notification.*` serves
//! (`supervisor/api/src/handlers/notification.rs`): `/public/notifications/<id>` with
//! ids from `/private/nextNotificationId`, `serverInfo.unreadNotificationCount` kept
//! in step, at most [`MAX_NOTIFICATIONS`] (oldest dropped).
//!
//! Rejected alternative: calling hearth-api's helper — hearth-api depends on this
//! crate, not the other way round; the layout is the contract both follow.

use hearth_rpc::methods::notification::{Notification, NotificationLevel};
use serde_json::Value;

use crate::doc;
use crate::error::PackageError;

const NOTIFICATIONS: &str = "/public/notifications";
const NEXT_ID: &str = "/private/nextNotificationId";
const SERVER_INFO: &str = "/public/serverInfo";
const MAX_NOTIFICATIONS: usize = 1000;

fn damaged(reason: impl Into<String>) -> PackageError {
    PackageError::Document {
        pointer: NOTIFICATIONS.into(),
        reason: reason.into(),
    }
}

/// Adds a notification to the document `d` (inside a mutation); returns its id.
pub(crate) fn add(
    d: &mut Value,
    level: NotificationLevel,
    title: &str,
    message: &str,
) -> Result<u64, PackageError> {
    let id = d.pointer(NEXT_ID).and_then(Value::as_u64).unwrap_or(1);
    doc::object_mut(d, "/private")?.insert("nextNotificationId".into(), Value::from(id + 1));
    let n = Notification {
        id,
        created_ms: doc::now_ms(),
        level,
        title: title.to_owned(),
        message: message.to_owned(),
        seen: false,
    };
    let value = serde_json::to_value(&n).map_err(|e| damaged(e.to_string()))?;
    let map = doc::object_mut(d, NOTIFICATIONS)?;
    map.insert(id.to_string(), value);
    while map.len() > MAX_NOTIFICATIONS {
        let oldest = map
            .keys()
            .filter_map(|k| k.parse::<u64>().ok())
            .min()
            .map(|k| k.to_string());
        match oldest {
            Some(k) => map.remove(&k),
            None => break,
        };
    }
    let unread = map
        .values()
        .filter(|v| v.get("seen").and_then(Value::as_bool) == Some(false))
        .count();
    doc::object_mut(d, SERVER_INFO)?.insert("unreadNotificationCount".into(), Value::from(unread));
    Ok(id)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn adds_with_the_next_id_and_counts_unread() {
        let mut d = json!({"public": {"serverInfo": {}, "notifications": {
            "3": {"id": 3, "createdMs": 1, "level": "info", "title": "t", "message": "m", "seen": true}
        }}, "private": {"nextNotificationId": 4}});
        let id = add(
            &mut d,
            NotificationLevel::Error,
            "Update rolled back",
            "why",
        )
        .unwrap();
        assert_eq!(id, 4);
        assert_eq!(d["private"]["nextNotificationId"], 5);
        assert_eq!(
            d["public"]["notifications"]["4"]["title"],
            "Update rolled back"
        );
        assert_eq!(d["public"]["notifications"]["4"]["level"], "error");
        assert_eq!(d["public"]["serverInfo"]["unreadNotificationCount"], 1);
        // A parse with the API's type works.
        let n: Notification =
            serde_json::from_value(d["public"]["notifications"]["4"].clone()).unwrap();
        assert!(!n.seen);
    }
}
