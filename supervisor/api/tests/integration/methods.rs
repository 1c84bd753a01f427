//! The first methods, batches, the /mcp slot and shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hearth_api::{Body, Endpoint, RequestContext};
use http_body_util::{BodyExt, Full};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn discover_describes_every_method_and_echo_is_public() {
    let s = TestServer::start().await;
    let d = s.call("rpc.discover", json!({}), &[]).await;
    let methods = d["result"]["methods"].as_array().unwrap();
    assert_eq!(methods.len(), hearth_rpc::catalogue().len());
    assert_eq!(d["result"]["openrpc"], "1.3.2");
    assert!(
        methods
            .iter()
            .all(|m| m["description"].as_str().is_some_and(|s| !s.is_empty()))
    );
    let r = s
        .call("server.echo", json!({"message": "héllo"}), &[])
        .await;
    assert_eq!(r["result"], "héllo");
    assert_eq!(r["id"], 1);
}

#[tokio::test]
async fn batches_keep_order_and_ids_and_report_the_highest_revision() {
    let s = TestServer::set_up().await;
    let local = s.local.clone();
    let body = json!([
        {"jsonrpc": "2.0", "id": "a", "method": "server.echo", "params": {"message": "1"}},
        {"method": "db.put.ui", "params": {"pointer": "/x", "value": 1}},
        {"id": 7, "method": "db.put.ui", "params": {"pointer": "/y", "value": 2}},
        {"id": 8, "method": "no.such"},
    ])
    .to_string();
    let r = s.post(&[("x-hearth-local-auth", &local)], &body).await;
    let v = r.json();
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["id"], "a");
    assert_eq!(items[0]["result"], "1");
    // No id (StartOS UI style): answered anyway, with id null.
    assert_eq!(items[1]["id"], serde_json::Value::Null);
    let r1 = items[1]["revision"].as_u64().unwrap();
    let r2 = items[2]["revision"].as_u64().unwrap();
    assert!(r2 > r1);
    assert_eq!(items[3]["error"]["code"], -32601);
    assert_eq!(r.header("x-patch-sequence"), Some(r2.to_string().as_str()));
    let ui = s.local_call("db.dump", json!({"pointer": "/ui"})).await;
    assert_eq!(ui["result"]["value"], json!({"x": 1, "y": 2}));
    assert_eq!(ui["result"]["rev"], r2);
}

#[tokio::test]
async fn server_info_metrics_and_logs() {
    let s = TestServer::set_up().await;
    let info = s.local_call("server.info", json!({})).await["result"].clone();
    assert_eq!(info["hostname"], "box");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["arch"], std::env::consts::ARCH);
    assert!(
        info["dataDirBytes"].as_u64().unwrap() > 0,
        "the store file is in the data dir"
    );
    let m = s.local_call("server.metrics", json!({})).await["result"].clone();
    assert!(m["memory"]["totalBytes"].as_u64().unwrap() > 0);
    assert!(m["cpu"]["cores"].as_u64().unwrap() >= 1);
    assert!(m["disk"]["totalBytes"].as_u64().unwrap() > 0);
    // Logs: the test's LogBuffer is not fed by a subscriber, so the ring is empty but the
    // cursor protocol still answers.
    let l = s
        .local_call("server.logs", json!({"after": 0, "limit": 5}))
        .await;
    assert_eq!(l["result"]["entries"], json!([]));
    assert_eq!(l["result"]["endCursor"], 0);
}

#[tokio::test]
async fn notifications_can_be_marked_seen_and_removed() {
    let s = TestServer::set_up().await;
    let list = s.local_call("notification.list", json!({})).await;
    let id = list["result"][0]["id"].as_u64().unwrap();
    assert_eq!(list["result"][0]["seen"], false);
    let r = s
        .local_call("notification.mark-seen", json!({"ids": [id, 999]}))
        .await;
    assert!(r["revision"].as_u64().is_some());
    let list = s.local_call("notification.list", json!({})).await;
    assert_eq!(list["result"][0]["seen"], true);
    let info = s
        .local_call(
            "db.dump",
            json!({"pointer": "/serverInfo/unreadNotificationCount"}),
        )
        .await;
    assert_eq!(info["result"]["value"], 0);
    s.local_call("notification.remove", json!({"ids": [id]}))
        .await;
    assert_eq!(
        s.local_call("notification.list", json!({})).await["result"],
        json!([])
    );
}

#[tokio::test]
async fn db_dump_reads_only_the_public_half() {
    let s = TestServer::set_up().await;
    let all = s.local_call("db.dump", json!({})).await;
    let keys: Vec<&String> = all["result"]["value"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["notifications", "serverInfo", "ui"]);
    assert!(
        !all.to_string().contains("argon2"),
        "no private data in a dump"
    );
    let r = s
        .local_call("db.dump", json!({"pointer": "/private"}))
        .await;
    assert_eq!(error_code(&r), 6);
}

struct Hello;

impl Endpoint for Hello {
    fn handle(
        &self,
        req: http::Request<hyper::body::Incoming>,
        ctx: RequestContext,
    ) -> Pin<Box<dyn Future<Output = http::Response<Body>> + Send>> {
        let text = format!("mcp {} {}", req.uri().path(), ctx.peer.ip());
        Box::pin(async move {
            http::Response::new(
                Full::new(bytes::Bytes::from(text))
                    .map_err(|n| match n {})
                    .boxed(),
            )
        })
    }
}

#[tokio::test]
async fn mcp_slot_is_empty_until_mounted() {
    let s = TestServer::start().await;
    assert_eq!(http(s.addr, "POST", "/mcp", &[], b"{}").await.status, 404);
    let m = TestServer::start_with(Options {
        mcp: Some(Arc::new(Hello)),
        ..Options::default()
    })
    .await;
    let r = http(m.addr, "POST", "/mcp", &[], b"{}").await;
    assert_eq!(r.status, 200);
    assert_eq!(String::from_utf8_lossy(&r.body), "mcp /mcp 127.0.0.1");
}

#[tokio::test]
async fn routes_outside_the_api_answer_plainly() {
    let s = TestServer::start().await;
    assert_eq!(http(s.addr, "GET", "/rpc/v1", &[], b"").await.status, 405);
    assert_eq!(http(s.addr, "GET", "/nope", &[], b"").await.status, 404);
    assert_eq!(http(s.addr, "GET", "/", &[], b"").await.status, 200);
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_stops_accepting() {
    let s = TestServer::start().await;
    let addr = s.addr;
    // A keep-alive connection that is idle between requests must not block shutdown.
    let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let dir = s.stop().await;
    drop(idle);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
    // The store is closed cleanly: it opens again.
    hearth_store::Store::open(
        &dir.path().join("store.redb"),
        json!({"public": {}, "private": {}}),
    )
    .unwrap();
}
