//! `server.hostname.set`: validation at the edge, the state, `server.info`.

use serde_json::json;

use crate::common::{TestServer, error_code};

#[tokio::test]
async fn hostname_set_stores_the_lowercased_label_and_refuses_bad_ones() {
    let s = TestServer::start().await;
    s.setup().await;
    let r = s
        .local_call("server.hostname.set", json!({"hostname": "Living-Room"}))
        .await;
    assert_eq!(r["result"]["hostname"], "living-room", "{r}");
    let info = s.local_call("server.info", json!({})).await;
    assert_eq!(info["result"]["hostname"], "living-room", "{info}");
    // Nothing announces in this test server: no mDNS name is claimed.
    assert_eq!(
        info["result"]["mdnsName"],
        serde_json::Value::Null,
        "{info}"
    );

    for bad in ["a.b", "-x", "x-", "", "snow man", &"a".repeat(64)] {
        let r = s
            .local_call("server.hostname.set", json!({"hostname": bad}))
            .await;
        assert_eq!(error_code(&r), -32602, "{bad:?}: {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("hostname"),
            "{bad:?}: {r}"
        );
    }
    // The refused names lost nothing.
    let info = s.local_call("server.info", json!({})).await;
    assert_eq!(info["result"]["hostname"], "living-room", "{info}");
}

#[tokio::test]
async fn hostname_set_needs_a_login() {
    let s = TestServer::start().await;
    s.setup().await;
    let r = s
        .call("server.hostname.set", json!({"hostname": "evil"}), &[])
        .await;
    assert!(r.get("result").is_none(), "{r}");
    assert!(error_code(&r) != 0);
    let info = s.local_call("server.info", json!({})).await;
    assert_ne!(info["result"]["hostname"], "evil", "{info}");
}
