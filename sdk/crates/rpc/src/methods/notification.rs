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

/// Where notifications are kept in the state document (public half, one entry per id:
/// `/public/notifications/<id>`).
pub const NOTIFICATIONS_POINTER: &str = "/public/notifications";
/// The id the next notification gets (private half).
pub const NEXT_ID_POINTER: &str = "/private/nextNotificationId";
/// `serverInfo`, whose `unreadNotificationCount` is kept in step with the entries.
pub const SERVER_INFO_POINTER: &str = "/public/serverInfo";
/// How many notifications are kept (the oldest go first).
pub const MAX_KEPT: usize = 1000;

/// The state document is not shaped as the notification layout says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutError {
    /// Where: a pointer into the state document.
    pub pointer: String,
}

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the state document at {} is not an object", self.pointer)
    }
}

impl std::error::Error for LayoutError {}

/// The object at `pointer` (absolute, no escapes), created with its parents if absent.
fn object_mut<'a>(
    doc: &'a mut serde_json::Value,
    pointer: &str,
) -> Result<&'a mut serde_json::Map<String, serde_json::Value>, LayoutError> {
    let err = || LayoutError {
        pointer: pointer.to_owned(),
    };
    let mut cur = doc;
    for seg in pointer.split('/').skip(1) {
        cur = cur
            .as_object_mut()
            .ok_or_else(err)?
            .entry(seg.to_owned())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    }
    if cur.is_null() {
        *cur = serde_json::Value::Object(serde_json::Map::new());
    }
    cur.as_object_mut().ok_or_else(err)
}

/// Adds a notification to the whole state document `doc` (inside a store mutation,
/// so the UI sees it arrive on the live stream): the next id, at most [`MAX_KEPT`]
/// kept (oldest dropped), `serverInfo.unreadNotificationCount` recounted. Returns
/// its id. Every part of hearthd that notifies goes through here, so the layout
/// `notification.*` serves has one writer.
pub fn add_to_document(
    doc: &mut serde_json::Value,
    level: NotificationLevel,
    title: &str,
    message: &str,
    created_ms: u64,
) -> Result<u64, LayoutError> {
    let id = doc
        .pointer(NEXT_ID_POINTER)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(1);
    let (parent, key) = NEXT_ID_POINTER.rsplit_once('/').unwrap_or(("", ""));
    object_mut(doc, parent)?.insert(key.to_owned(), serde_json::Value::from(id + 1));
    let n = Notification {
        id,
        created_ms,
        level,
        title: title.to_owned(),
        message: message.to_owned(),
        seen: false,
    };
    let value = serde_json::to_value(&n).map_err(|_| LayoutError {
        pointer: NOTIFICATIONS_POINTER.to_owned(),
    })?;
    let map = object_mut(doc, NOTIFICATIONS_POINTER)?;
    map.insert(id.to_string(), value);
    while map.len() > MAX_KEPT {
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
    recount_unread(doc)?;
    Ok(id)
}

/// Sets `serverInfo.unreadNotificationCount` to the number of notifications not seen
/// (after entries were added, marked or removed).
pub fn recount_unread(doc: &mut serde_json::Value) -> Result<(), LayoutError> {
    let unread = object_mut(doc, NOTIFICATIONS_POINTER)?
        .values()
        .filter_map(|v| serde_json::from_value::<Notification>(v.clone()).ok())
        .filter(|n| !n.seen)
        .count();
    object_mut(doc, SERVER_INFO_POINTER)?.insert(
        "unreadNotificationCount".into(),
        serde_json::Value::from(unread),
    );
    Ok(())
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
        let id =
            add_to_document(&mut d, NotificationLevel::Error, "Rolled back", "why", 9).unwrap();
        assert_eq!(id, 4);
        assert_eq!(d["private"]["nextNotificationId"], 5);
        let n: Notification =
            serde_json::from_value(d["public"]["notifications"]["4"].clone()).unwrap();
        assert_eq!(
            (n.title.as_str(), n.level, n.created_ms, n.seen),
            ("Rolled back", NotificationLevel::Error, 9, false)
        );
        assert_eq!(d["public"]["serverInfo"]["unreadNotificationCount"], 1);
    }

    #[test]
    fn first_notification_creates_the_layout_and_the_oldest_go_past_the_limit() {
        let mut d = json!({"public": {}, "private": {}});
        for i in 0..(MAX_KEPT as u64 + 2) {
            assert_eq!(
                add_to_document(&mut d, NotificationLevel::Info, "t", "m", i).unwrap(),
                i + 1
            );
        }
        let map = d["public"]["notifications"].as_object().unwrap();
        assert_eq!(map.len(), MAX_KEPT);
        assert!(!map.contains_key("1") && !map.contains_key("2") && map.contains_key("3"));
        assert_eq!(
            d["public"]["serverInfo"]["unreadNotificationCount"],
            MAX_KEPT
        );
    }

    #[test]
    fn a_damaged_document_is_an_error_and_keeps_its_entries() {
        let mut d = json!({"public": {"notifications": [1, 2]}, "private": {}});
        let err = add_to_document(&mut d, NotificationLevel::Info, "t", "m", 1).unwrap_err();
        assert_eq!(err.pointer, NOTIFICATIONS_POINTER);
        assert_eq!(d["public"]["notifications"], json!([1, 2]));
    }
}
