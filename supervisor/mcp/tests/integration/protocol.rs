//! Handshake, auth, tools and resources.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use super::harness::Harness;

fn harness() -> Harness {
    Harness::new(Duration::from_millis(100))
}

#[tokio::test]
async fn requests_without_valid_credentials_get_401_and_no_session() {
    let h = harness();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}});
    for auth in [None, Some("Bearer wrong")] {
        let mut req = h.request(http::Method::POST, None, Some(init.clone()));
        req.headers_mut().remove("authorization");
        if let Some(a) = auth {
            req.headers_mut()
                .insert("authorization", a.parse().unwrap());
        }
        let resp = h.mcp.handle(req).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().get("mcp-session-id").is_none());
    }
    // A refusal for a foreign Origin is 403, as on /rpc/v1.
    let mut req = h.request(http::Method::POST, None, Some(init.clone()));
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    assert_eq!(h.mcp.handle(req).await.status(), StatusCode::FORBIDDEN);
    // An established session does not let an unauthenticated request through either.
    let (session, _) = h.initialize("2025-06-18").await;
    let mut req = h.request(
        http::Method::POST,
        Some(&session),
        Some(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})),
    );
    req.headers_mut().remove("authorization");
    assert_eq!(h.mcp.handle(req).await.status(), StatusCode::UNAUTHORIZED);
    let mut req = h.request(http::Method::GET, Some(&session), None);
    req.headers_mut().remove("authorization");
    assert_eq!(h.mcp.handle(req).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn initialize_negotiates_both_supported_revisions() {
    let h = harness();
    for (offered, agreed) in [
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-06-18"),
    ] {
        let (session, result) = h.initialize(offered).await;
        assert!(!session.is_empty());
        assert_eq!(result["protocolVersion"], agreed, "offered {offered}");
        assert_eq!(result["serverInfo"]["name"], "hearth");
        assert!(result["capabilities"]["tools"].is_object());
        assert_eq!(result["capabilities"]["resources"]["subscribe"], true);
        // The session works with that revision's headers.
        let tools = h.call(&session, 1, "tools/list", json!({})).await;
        assert!(!tools["tools"].as_array().unwrap().is_empty(), "{agreed}");
    }
}

#[tokio::test]
async fn tools_are_the_method_table_minus_setup_and_login() {
    let h = harness();
    let (s, _) = h.initialize("2025-06-18").await;
    let tools = h.call(&s, 1, "tools/list", json!({})).await;
    let tools = tools["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for m in hearth_rpc::catalogue() {
        let expected = !(m.name.starts_with("setup.") || m.name == "auth.login");
        assert_eq!(names.contains(&m.name), expected, "{}", m.name);
        if let Some(t) = tools.iter().find(|t| t["name"] == m.name) {
            assert_eq!(t["inputSchema"], m.params_schema, "{}", m.name);
            assert_eq!(t["description"], m.description);
            assert_eq!(t["annotations"]["readOnlyHint"], !m.mutates);
        }
    }
    assert!(names.contains(&"server.info"));
}

#[tokio::test]
async fn tool_calls_go_through_the_backend_with_the_caller() {
    let h = harness();
    let (s, _) = h.initialize("2025-06-18").await;
    let r = h
        .call(
            &s,
            1,
            "tools/call",
            json!({"name": "server.info", "arguments": {}}),
        )
        .await;
    assert_eq!(r["isError"], false);
    assert_eq!(r["structuredContent"]["hostname"], "testbox");
    let text: Value = serde_json::from_str(r["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text["hostname"], "testbox");

    let r = h
        .call(
            &s,
            2,
            "tools/call",
            json!({"name": "server.echo", "arguments": {"message": "hi"}}),
        )
        .await;
    assert_eq!(r["content"][0]["text"], "\"hi\"");

    let calls = h.api.calls.lock().unwrap().clone();
    assert_eq!(
        calls[0],
        ("token:test".into(), "server.info".into(), json!({}))
    );
    assert_eq!(calls[1].2, json!({"message": "hi"}));
}

#[tokio::test]
async fn tool_failures_are_is_error_results_and_unknown_tools_protocol_errors() {
    let h = harness();
    let (s, _) = h.initialize("2025-06-18").await;
    let r = h
        .call(
            &s,
            1,
            "tools/call",
            json!({"name": "server.echo", "arguments": {"message": 5}}),
        )
        .await;
    assert_eq!(r["isError"], true);
    let all = r["content"].to_string();
    assert!(all.contains("invalid params at `message`"), "{all}");
    assert!(all.contains("-32602"), "{all}");

    for hidden in ["auth.login", "setup.complete", "no.such"] {
        let posted = h
            .rpc(
                &s,
                2,
                "tools/call",
                json!({"name": hidden, "arguments": {}}),
            )
            .await;
        assert!(posted.response(2)["error"].is_object(), "{hidden}");
    }
    assert!(
        h.api
            .calls
            .lock()
            .unwrap()
            .iter()
            .all(|c| c.1 != "auth.login"),
        "a hidden method reached the backend"
    );
}

#[tokio::test]
async fn resources_expose_the_public_state_only() {
    let h = harness();
    let (s, _) = h.initialize("2025-06-18").await;
    let list = h.call(&s, 1, "resources/list", json!({})).await;
    let uris: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        [
            "hearth:///public",
            "hearth:///public/serverInfo",
            "hearth:///public/ui"
        ]
    );

    let read = h
        .call(&s, 2, "resources/read", json!({"uri": "hearth:///public"}))
        .await;
    let content = &read["contents"][0];
    assert_eq!(content["uri"], "hearth:///public");
    assert_eq!(content["mimeType"], "application/json");
    let value: Value = serde_json::from_str(content["text"].as_str().unwrap()).unwrap();
    assert_eq!(value, h.api.store.get("/public").unwrap());
    assert!(
        !content["text"].as_str().unwrap().contains("hash"),
        "private data leaked"
    );

    let read = h
        .call(
            &s,
            3,
            "resources/read",
            json!({"uri": "hearth:///public/ui/theme"}),
        )
        .await;
    assert_eq!(read["contents"][0]["text"], "\"light\"");

    for (id, uri) in [
        (4, "hearth:///public/nope"),
        (5, "hearth:///private"),
        (6, "file:///etc/passwd"),
    ] {
        let posted = h.rpc(&s, id, "resources/read", json!({"uri": uri})).await;
        assert!(posted.response(id)["error"].is_object(), "{uri}");
    }
}

#[tokio::test]
async fn delete_ends_the_session_and_its_subscriptions() {
    let h = harness();
    let (s, _) = h.initialize("2025-06-18").await;
    h.call(
        &s,
        9,
        "resources/subscribe",
        json!({"uri": "hearth:///public"}),
    )
    .await;
    assert_eq!(
        h.api.store.subscribers(),
        1,
        "subscribing starts one watcher"
    );
    let resp = h
        .mcp
        .handle(h.request(http::Method::DELETE, Some(&s), None))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let posted = h.rpc(&s, 1, "tools/list", json!({})).await;
    assert_eq!(posted.status, StatusCode::NOT_FOUND);
    // The watcher stops with the session (asynchronously).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while h.api.store.subscribers() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watcher outlived its session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_session_is_bound_to_the_principal_that_opened_it() {
    use super::harness::{OTHER_TOKEN, TOKEN};
    let h = harness();
    let (s, _) = h.initialize("2025-06-18").await;
    *h.bearer.lock().unwrap() = OTHER_TOKEN.to_owned();
    // Another (valid) principal cannot use it: no tool call, no stream, no DELETE.
    let posted = h
        .rpc(
            &s,
            1,
            "tools/call",
            json!({"name": "server.info", "arguments": {}}),
        )
        .await;
    assert_eq!(
        posted.status,
        StatusCode::FORBIDDEN,
        "{:?}",
        posted.messages
    );
    assert_eq!(
        posted.messages[0]["error"]["data"]["reason"], "sessionOwner",
        "{:?}",
        posted.messages
    );
    for method in [http::Method::GET, http::Method::DELETE] {
        let resp = h
            .mcp
            .handle(h.request(method.clone(), Some(&s), None))
            .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{method}");
    }
    assert!(h.api.calls.lock().unwrap().is_empty());
    // Its own session works; the owner's still does.
    let (mine, _) = h.initialize("2025-06-18").await;
    h.call(&mine, 2, "tools/list", json!({})).await;
    *h.bearer.lock().unwrap() = TOKEN.to_owned();
    h.call(&s, 3, "tools/list", json!({})).await;
    let posted = h.rpc(&mine, 4, "tools/list", json!({})).await;
    assert_eq!(posted.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_read_only_token_sees_and_calls_only_read_only_tools() {
    use super::harness::READ_TOKEN;
    let h = harness();
    *h.bearer.lock().unwrap() = READ_TOKEN.to_owned();
    let (s, _) = h.initialize("2025-06-18").await;
    let tools = h.call(&s, 1, "tools/list", json!({})).await;
    let tools = tools["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"server.info"), "{names:?}");
    for t in tools {
        assert_eq!(t["annotations"]["readOnlyHint"], true, "{t}");
    }
    for hidden in ["db.put.ui", "package.uninstall", "server.logs"] {
        assert!(!names.contains(&hidden), "{hidden} listed for a read token");
    }
    let r = h
        .call(
            &s,
            2,
            "tools/call",
            json!({"name": "db.put.ui", "arguments": {"pointer": "/x", "value": 1}}),
        )
        .await;
    assert_eq!(r["isError"], true, "{r}");
    assert!(r.to_string().contains("scope"), "{r}");
    assert!(
        h.api.calls.lock().unwrap().is_empty(),
        "the backend was called"
    );
    let r = h
        .call(
            &s,
            3,
            "tools/call",
            json!({"name": "server.info", "arguments": {}}),
        )
        .await;
    assert_eq!(r["isError"], false, "{r}");
}
