//! `resources/subscribe` and debounced `notifications/resources/updated` over SSE.

use std::time::Duration;

use serde_json::json;

use super::harness::{Harness, updated};

const DEBOUNCE: Duration = Duration::from_millis(300);

async fn put_ui(h: &Harness, key: &str, value: serde_json::Value) {
    h.api
        .store
        .mutate(|doc| {
            doc["public"]["ui"][key] = value;
            Ok::<_, std::convert::Infallible>(())
        })
        .unwrap();
}

#[tokio::test]
async fn a_mutation_notifies_subscribers_of_overlapping_uris_once_per_window() {
    let window = Duration::from_secs(1);
    let h = Harness::new(window);
    let (s, _) = h.initialize("2025-06-18").await;
    let mut stream = h.open_stream(&s).await;
    for (id, uri) in [
        (1, "hearth:///public"),
        (2, "hearth:///public/ui"),
        (3, "hearth:///public/serverInfo"),
    ] {
        h.call(&s, id, "resources/subscribe", json!({"uri": uri}))
            .await;
    }

    // A burst of changes to /ui, normally well inside one window (each is an fsync).
    let started = std::time::Instant::now();
    for i in 0..5 {
        put_ui(&h, "n", json!(i)).await;
    }
    let burst = started.elapsed();
    let got = stream.collect_for(window * 3).await;
    let count = |uri: &str| got.iter().filter_map(updated).filter(|u| *u == uri).count();
    for uri in ["hearth:///public", "hearth:///public/ui"] {
        if burst < window {
            assert_eq!(count(uri), 1, "{uri}: {got:?}");
        } else {
            // A slow machine spread the burst over several windows: still coalesced.
            assert!((1..5).contains(&count(uri)), "{uri}: {got:?}");
        }
    }
    assert_eq!(count("hearth:///public/serverInfo"), 0, "{got:?}");

    // Private-only changes notify nobody.
    h.api
        .store
        .mutate(|doc| {
            doc["private"]["password"] = json!("other");
            Ok::<_, std::convert::Infallible>(())
        })
        .unwrap();
    let got = stream.collect_for(DEBOUNCE * 3).await;
    assert!(got.iter().filter_map(updated).next().is_none(), "{got:?}");
}

#[tokio::test]
async fn a_tool_call_that_mutates_notifies_and_unsubscribe_stops_it() {
    let h = Harness::new(DEBOUNCE);
    let (s, _) = h.initialize("2025-03-26").await;
    let mut stream = h.open_stream(&s).await;
    h.call(
        &s,
        1,
        "resources/subscribe",
        json!({"uri": "hearth:///public/ui"}),
    )
    .await;
    h.call(
        &s,
        2,
        "tools/call",
        json!({"name": "db.put.ui", "arguments": {"pointer": "/theme", "value": "dark"}}),
    )
    .await;
    let note = stream
        .wait_for(Duration::from_secs(5), |m| updated(m).is_some())
        .await
        .expect("no notifications/resources/updated after db.put.ui");
    assert_eq!(updated(&note), Some("hearth:///public/ui"));
    let read = h
        .call(
            &s,
            3,
            "resources/read",
            json!({"uri": "hearth:///public/ui/theme"}),
        )
        .await;
    assert_eq!(read["contents"][0]["text"], "\"dark\"");

    h.call(
        &s,
        4,
        "resources/unsubscribe",
        json!({"uri": "hearth:///public/ui"}),
    )
    .await;
    put_ui(&h, "theme", json!("light")).await;
    let got = stream.collect_for(DEBOUNCE * 3).await;
    assert!(got.iter().filter_map(updated).next().is_none(), "{got:?}");
}

#[tokio::test]
async fn sessions_only_hear_about_their_own_subscriptions() {
    let h = Harness::new(DEBOUNCE);
    let (a, _) = h.initialize("2025-06-18").await;
    let (b, _) = h.initialize("2025-06-18").await;
    let mut stream_a = h.open_stream(&a).await;
    let mut stream_b = h.open_stream(&b).await;
    h.call(
        &a,
        1,
        "resources/subscribe",
        json!({"uri": "hearth:///public/ui"}),
    )
    .await;
    put_ui(&h, "x", json!(1)).await;
    assert!(
        stream_a
            .wait_for(Duration::from_secs(5), |m| updated(m).is_some())
            .await
            .is_some()
    );
    let got = stream_b.collect_for(DEBOUNCE * 2).await;
    assert!(got.iter().filter_map(updated).next().is_none(), "{got:?}");
}

#[tokio::test]
async fn revoking_the_subscribers_credentials_closes_the_session() {
    let h = Harness::new(DEBOUNCE);
    let (s, _) = h.initialize("2025-06-18").await;
    let mut stream = h.open_stream(&s).await;
    h.call(
        &s,
        1,
        "resources/subscribe",
        json!({"uri": "hearth:///public"}),
    )
    .await;
    h.api
        .revoked
        .store(true, std::sync::atomic::Ordering::SeqCst);
    put_ui(&h, "secret", json!("after logout")).await;
    let got = stream.collect_for(Duration::from_secs(1)).await;
    assert!(got.iter().filter_map(updated).next().is_none(), "{got:?}");
    // The session is gone even for credentials that are valid again.
    h.api
        .revoked
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let posted = h.rpc(&s, 2, "tools/list", json!({})).await;
    assert_eq!(posted.status, http::StatusCode::NOT_FOUND);
    assert_eq!(
        h.api.store.subscribers(),
        0,
        "the watcher must have stopped"
    );
}
