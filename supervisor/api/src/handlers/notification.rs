//! `notification.*`, and [`add_notification`] for other parts of the server.
//!
//! Notifications live in the public state (`/notifications/<id>`) so the UI sees them
//! arrive on the live stream; `serverInfo.unreadNotificationCount` is kept in step in
//! the same mutation. At most 1000 are kept (oldest dropped). The layout has one
//! writer, shared with hearth-services: `hearth_rpc::methods::notification`.

use std::collections::BTreeSet;

use hearth_rpc::RpcError;
use hearth_rpc::methods::notification::{self, Notification, NotificationLevel};
use hearth_rpc::methods::{NotificationList, NotificationMarkSeen, NotificationRemove};
use hearth_store::Store;
use serde_json::{Map, Value};

use crate::ApiError;
use crate::dispatch::{Registry, Reply};
use crate::doc::{self, NOTIFICATIONS, now_ms};
use crate::error::{blocking, mutate_error};

fn parse_all(map: &Map<String, Value>) -> Vec<Notification> {
    map.values()
        .filter_map(|v| serde_json::from_value(v.clone()).ok())
        .collect()
}

fn layout_error(e: notification::LayoutError) -> RpcError {
    ApiError::Document {
        reason: e.to_string(),
        pointer: e.pointer,
    }
    .to_rpc()
}

/// Adds a notification inside a mutation; returns its id.
pub(crate) fn add_notification(
    d: &mut Value,
    level: NotificationLevel,
    title: &str,
    message: &str,
) -> Result<u64, RpcError> {
    notification::add_to_document(d, level, title, message, now_ms()).map_err(layout_error)
}

fn edit(
    store: &Store,
    ids: Vec<u64>,
    op: &'static str,
    f: fn(&mut Map<String, Value>, &str),
) -> Result<u64, RpcError> {
    let ids: BTreeSet<String> = ids.iter().map(u64::to_string).collect();
    store
        .mutate(|d| {
            let map = doc::object_mut(d, NOTIFICATIONS)?;
            for id in &ids {
                f(map, id);
            }
            notification::recount_unread(d).map_err(layout_error)
        })
        .map(|m| m.revision)
        .map_err(mutate_error(op))
}

pub(crate) fn register(r: &mut Registry, store: Store) {
    let s = store.clone();
    r.register::<NotificationList, _, _>(move |_, p| {
        let all = s.get(NOTIFICATIONS);
        async move {
            let all = all.map_err(ApiError::store("list notifications"))?;
            let mut list = all.as_object().map(parse_all).unwrap_or_default();
            list.retain(|n| p.before.is_none_or(|b| n.id < b));
            list.sort_by_key(|n| std::cmp::Reverse(n.id));
            let limit = usize::try_from(p.limit.unwrap_or(50).min(1000)).unwrap_or(50);
            list.truncate(limit);
            Ok(Reply::new(list))
        }
    });

    let s = store.clone();
    r.register::<NotificationMarkSeen, _, _>(move |_, p| {
        let s = s.clone();
        async move {
            let rev = blocking("mark notifications seen", move || {
                edit(&s, p.ids, "mark notifications seen", |map, id| {
                    if let Some(n) = map.get_mut(id) {
                        n["seen"] = Value::Bool(true);
                    }
                })
            })
            .await?;
            Ok(Reply::at((), rev))
        }
    });

    r.register::<NotificationRemove, _, _>(move |_, p| {
        let s = store.clone();
        async move {
            let rev = blocking("remove notifications", move || {
                edit(&s, p.ids, "remove notifications", |map, id| {
                    map.remove(id);
                })
            })
            .await?;
            Ok(Reply::at((), rev))
        }
    });
}
