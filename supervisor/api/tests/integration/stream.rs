//! `/ws/db`: dump, patches, resume with `since`, slow consumers, auth, shutdown.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

async fn connect(
    s: &TestServer,
    query: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    ws_connect(s, &format!("/ws/db{query}"), headers).await
}

async fn local_ws(s: &TestServer, query: &str) -> Ws {
    local_ws_at(s, &format!("/ws/db{query}")).await
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("stream open")
            .expect("frame ok");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// Applies an RFC 6902 patch (add/remove/replace as the store produces) to `doc`.
fn apply(doc: &mut Value, patch: &Value) {
    let ops: json_patch_ops::Patch = serde_json::from_value(patch.clone()).unwrap();
    json_patch_ops::apply(doc, &ops);
}

mod json_patch_ops {
    //! Re-export of the store's JSON Patch implementation for applying received patches.
    pub use hearth_store::json_patch::Patch;
    pub fn apply(doc: &mut serde_json::Value, p: &Patch) {
        hearth_store::json_patch::patch(doc, p).unwrap();
    }
}

async fn put(s: &TestServer, pointer: &str, value: Value) -> u64 {
    let r = s
        .local_call("db.put.ui", json!({"pointer": pointer, "value": value}))
        .await;
    r["revision"].as_u64().unwrap_or_else(|| panic!("{r}"))
}

#[tokio::test]
async fn dump_then_one_patch_per_revision() {
    let s = TestServer::set_up().await;
    let mut ws = local_ws(&s, "").await;
    let dump = next_json(&mut ws).await;
    let mut doc = dump["value"].clone();
    assert_eq!(doc["serverInfo"]["hostname"], "box");
    assert!(doc.get("private").is_none() && !dump.to_string().contains("argon2"));
    let mut last = dump["rev"].as_u64().unwrap();
    for i in 0..5 {
        let rev = put(&s, "/counter", json!(i)).await;
        let p = next_json(&mut ws).await;
        assert_eq!(
            p["rev"].as_u64().unwrap(),
            rev,
            "the patch carries the RPC's revision"
        );
        assert!(rev > last);
        last = rev;
        apply(&mut doc, &p["patch"]);
        assert_eq!(doc["ui"]["counter"], i);
    }
    // Private-only changes (a login) are not streamed; the next public one is.
    s.login().await;
    let rev = put(&s, "/after", json!(true)).await;
    let p = next_json(&mut ws).await;
    assert_eq!(p["rev"].as_u64().unwrap(), rev);
    apply(&mut doc, &p["patch"]);
    assert_eq!(
        doc,
        s.local_call("db.dump", json!({})).await["result"]["value"]
    );
}

#[tokio::test]
async fn reconnect_with_since_gets_the_missed_patches_or_a_dump() {
    let s = TestServer::set_up().await;
    let mut ws = local_ws(&s, "").await;
    let dump = next_json(&mut ws).await;
    let seen = dump["rev"].as_u64().unwrap();
    let mut doc = dump["value"].clone();
    drop(ws);
    let r1 = put(&s, "/a", json!(1)).await;
    let r2 = put(&s, "/b", json!(2)).await;
    let mut ws = local_ws(&s, &format!("?since={seen}")).await;
    let p1 = next_json(&mut ws).await;
    let p2 = next_json(&mut ws).await;
    assert_eq!(
        (p1["rev"].as_u64(), p2["rev"].as_u64()),
        (Some(r1), Some(r2))
    );
    assert!(p1.get("value").is_none(), "patches, not a dump");
    apply(&mut doc, &p1["patch"]);
    apply(&mut doc, &p2["patch"]);
    // Live updates continue after the catch-up, without duplicates.
    let r3 = put(&s, "/c", json!(3)).await;
    let p3 = next_json(&mut ws).await;
    assert_eq!(p3["rev"].as_u64(), Some(r3));
    apply(&mut doc, &p3["patch"]);
    assert_eq!(doc["ui"], json!({"a": 1, "b": 2, "c": 3}));
    // A revision the server does not know (future, or from before a restart): new dump.
    let mut ws = local_ws(&s, "?since=999999").await;
    let d = next_json(&mut ws).await;
    assert_eq!(d["rev"].as_u64(), Some(r3));
    assert_eq!(d["value"]["ui"], json!({"a": 1, "b": 2, "c": 3}));
    assert!(
        connect(
            &s,
            "?since=abc",
            &[("x-hearth-local-auth", &s.local.clone())]
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn slow_consumers_get_a_fresh_dump_instead_of_unbounded_buffers() {
    let s = TestServer::start_with(Options {
        channel: Some(4),
        ..Options::default()
    })
    .await;
    s.setup().await;
    let mut ws = local_ws(&s, "").await;
    let dump = next_json(&mut ws).await;
    let mut doc = dump["value"].clone();
    // Do not read while ~12 MB of patches are produced: socket buffers fill up, the
    // server's sender blocks, and the 4-slot broadcast channel overflows.
    for i in 0..60 {
        let big = format!("{i}:{}", "z".repeat(200_000));
        s.store
            .mutate(|d| {
                d["public"]["ui"]["big"] = Value::String(big);
                Ok::<_, ()>(())
            })
            .unwrap();
    }
    let final_rev = s.store.revision();
    let mut dumps = 0;
    loop {
        let m = next_json(&mut ws).await;
        if let Some(v) = m.get("value") {
            dumps += 1;
            doc = v.clone();
        } else {
            apply(&mut doc, &m["patch"]);
        }
        if m["rev"].as_u64() == Some(final_rev) {
            break;
        }
    }
    assert!(
        dumps >= 1,
        "a lagging consumer must be resynchronised with a dump"
    );
    assert_eq!(doc, s.store.get("/public").unwrap());
}

#[tokio::test]
async fn stream_requires_auth_and_same_origin() {
    let s = TestServer::set_up().await;
    let err = connect(&s, "", &[]).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let token = s.login().await;
    let c = cookie(&token);
    let err = connect(&s, "", &[("cookie", &c), ("origin", "http://evil.example")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    let origin = format!("http://{}", s.addr);
    let mut ws = connect(&s, "", &[("cookie", &c), ("origin", &origin)])
        .await
        .unwrap();
    assert!(next_json(&mut ws).await.get("value").is_some());
    // Not a WebSocket request at all.
    let r = http(s.addr, "GET", "/ws/db", &[], b"").await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn shutdown_closes_streams_with_going_away() {
    let s = TestServer::set_up().await;
    let mut ws = local_ws(&s, "").await;
    next_json(&mut ws).await;
    let stopping = tokio::spawn(s.stop());
    let frame = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(c))) => return c,
                Some(Ok(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(u16::from(frame.unwrap().code), 1001);
    stopping.await.unwrap();
}
