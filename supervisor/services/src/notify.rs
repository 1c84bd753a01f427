//! Notifications from the service supervisor, added inside a store mutation through
//! the one writer of the layout `notification.*` serves
//! (`hearth_rpc::methods::notification::add_to_document`): an update committed or
//! rolled back (`update.rs`), and what a container's report says went wrong
//! ([`on_report`], called by the status monitor as it records a report):
//!
//! * a daemon that gave up restarting (`crashLoop` turned true): an error;
//! * a health check that starts failing (its result turned `failure`): a warning.
//!
//! Both fire on a *transition* between two reports of one run of the container, so a
//! condition is notified once however many reports repeat it. The first report after
//! a (re)start of hearthd has no predecessor (stored reports are cleared then) and
//! notifies nothing: what it shows began before the restart and was notified then.

use hearth_rpc::methods::notification::{self, NotificationLevel};
use serde_json::{Map, Value};

use crate::doc::{self, PACKAGE_DATA};
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

/// One notification to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    pub(crate) level: NotificationLevel,
    pub(crate) title: String,
    pub(crate) message: String,
}

/// What turned bad between the reported keys `old` (the `statusInfo` before) and
/// `new` (the keys about to be written) of the package titled `title` (pure).
pub(crate) fn report_transitions(title: &str, old: &Value, new: &Map<String, Value>) -> Vec<Note> {
    let mut notes = Vec::new();
    let objects = |v: Option<&Value>| v.and_then(Value::as_object).cloned().unwrap_or_default();
    let old_daemons = objects(old.get("daemons"));
    for (daemon, info) in objects(new.get("daemons")) {
        let looping = |i: &Value| i.get("crashLoop").and_then(Value::as_bool) == Some(true);
        if looping(&info) && old_daemons.get(&daemon).is_some_and(|o| !looping(o)) {
            let last = info.get("lastError").and_then(Value::as_str).unwrap_or("");
            notes.push(Note {
                level: NotificationLevel::Error,
                title: format!("{title}: {daemon} keeps crashing"),
                message: format!(
                    "{daemon} of {title} failed too often and is no longer restarted; \
                     start the service again once the cause is fixed. {last}"
                )
                .trim_end()
                .to_owned(),
            });
        }
    }
    let old_health = objects(old.get("health"));
    for (check, info) in objects(new.get("health")) {
        let result = |i: &Value| i.get("result").and_then(Value::as_str).map(str::to_owned);
        let failing = result(&info).as_deref() == Some("failure");
        let was = old_health.get(&check).and_then(result);
        if failing && was.is_some_and(|w| w != "failure") {
            let name = info.get("name").and_then(Value::as_str).unwrap_or(&check);
            let why = info.get("message").and_then(Value::as_str).unwrap_or("");
            notes.push(Note {
                level: NotificationLevel::Warning,
                title: format!("{title}: health check failing"),
                message: if why.is_empty() {
                    format!("{name} fails")
                } else {
                    format!("{name} fails: {why}")
                },
            });
        }
    }
    notes
}

/// Inside the mutation that records a report for `id`: adds the notifications of
/// [`report_transitions`] between the stored `statusInfo` and `new`.
pub(crate) fn on_report(
    d: &mut Value,
    id: &str,
    new: &Map<String, Value>,
) -> Result<(), PackageError> {
    let entry = format!("{PACKAGE_DATA}/{id}");
    let Some(old) = d.pointer(&format!("{entry}/statusInfo")) else {
        return Ok(());
    };
    let title = d
        .pointer(&format!("{entry}/manifest/title"))
        .and_then(Value::as_str)
        .unwrap_or(id);
    for note in report_transitions(title, old, new) {
        tracing::info!(package = %id, title = %note.title, "notifying");
        add(d, note.level, &note.title, &note.message)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_daemon_entering_a_crash_loop_is_an_error_once() {
        let running = json!({"daemons": {"app": {"crashLoop": false}}});
        let looping = json!({"daemons": {"app": {"crashLoop": true,
            "lastError": "crash loop: 5 failures within 60s, not restarting; last: exited unexpectedly (exit status 3)"}}});
        let notes = report_transitions("Crasher", &running, &keys(looping.clone()));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0].level, NotificationLevel::Error);
        assert_eq!(notes[0].title, "Crasher: app keeps crashing");
        assert!(
            notes[0].message.contains("exit status 3"),
            "{}",
            notes[0].message
        );
        // Still looping, or first seen after a hearthd restart: nothing new.
        assert!(report_transitions("Crasher", &looping, &keys(looping.clone())).is_empty());
        assert!(report_transitions("Crasher", &json!({}), &keys(looping)).is_empty());
    }

    #[test]
    fn a_health_check_that_starts_failing_is_a_warning_once() {
        let check = |result: &str| {
            json!({"health": {"db": {"daemon": "d", "name": "Database reachable",
                "result": result, "message": "connection refused"}}})
        };
        for before in ["starting", "success"] {
            let notes = report_transitions("Client", &check(before), &keys(check("failure")));
            assert_eq!(
                notes,
                [Note {
                    level: NotificationLevel::Warning,
                    title: "Client: health check failing".into(),
                    message: "Database reachable fails: connection refused".into(),
                }],
                "from {before}"
            );
        }
        for (before, after) in [
            ("failure", "failure"),
            ("starting", "success"),
            ("success", "starting"),
        ] {
            let notes = report_transitions("Client", &check(before), &keys(check(after)));
            assert!(notes.is_empty(), "{before} -> {after}: {notes:?}");
        }
        assert!(report_transitions("Client", &json!({}), &keys(check("failure"))).is_empty());
    }

    #[test]
    fn reports_recorded_by_the_monitor_add_notifications_to_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_support::store(dir.path());
        let mut e = crate::test_support::hello(crate::status::RunState::Running);
        e.manifest = json!({"id": "hello", "title": "Hello", "version": "1.0.0:0"});
        crate::test_support::put(&store, "hello", &e);
        let report = |result: &str| {
            keys(json!({"health": {"web": {"daemon": "httpd", "name": "Page", "result": result}}}))
        };
        let count = |store: &hearth_store::Store| {
            store
                .get(notification::NOTIFICATIONS_POINTER)
                .ok()
                .and_then(|v| v.as_object().map(Map::len))
                .unwrap_or(0)
        };
        crate::container_status::write(&store, "hello", report("success")).unwrap();
        assert_eq!(count(&store), 0);
        crate::container_status::write(&store, "hello", report("failure")).unwrap();
        crate::container_status::write(&store, "hello", report("failure")).unwrap();
        assert_eq!(count(&store), 1);
        let all = store.get(notification::NOTIFICATIONS_POINTER).unwrap();
        let note = all.as_object().unwrap().values().next().unwrap();
        assert_eq!(note["title"], "Hello: health check failing");
        assert_eq!(note["level"], "warning");
    }
}
