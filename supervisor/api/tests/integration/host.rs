//! DNS-rebinding protection against a real server: a foreign `Host` is refused with 421
//! on every route (RPC, WebSocket upgrade, MCP), the server's own address passes.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hearth_api::{Body, Endpoint, RequestContext};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{HttpResponse, Options, TestServer, parse_response};

struct Mcp;

impl Endpoint for Mcp {
    fn handle(
        &self,
        _req: http::Request<hyper::body::Incoming>,
        _ctx: RequestContext,
    ) -> Pin<Box<dyn Future<Output = http::Response<Body>> + Send>> {
        Box::pin(async {
            http::Response::new(
                Full::new(bytes::Bytes::from("mcp"))
                    .map_err(|n| match n {})
                    .boxed(),
            )
        })
    }
}

/// Sends `req` as is and reads the response head, and the body if the server closes
/// the connection.
async fn raw(addr: SocketAddr, req: &str) -> HttpResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(2), s.read(&mut chunk)).await;
        match read {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => panic!("read: {e}"),
        }
        // A 101 (or a keep-alive answer) keeps the connection open: stop once the head
        // and `content-length` bytes of body are in.
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                break;
            }
        }
    }
    parse_response(&buf)
}

fn rpc(host: &str, local: &str) -> String {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"server.info"}"#;
    format!(
        "POST /rpc/v1 HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-type: application/json\r\n\
         x-hearth-local-auth: {local}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn ws(host: &str, local: &str) -> String {
    format!(
        "GET /ws/db HTTP/1.1\r\nhost: {host}\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         x-hearth-local-auth: {local}\r\n\r\n"
    )
}

fn mcp(host: &str) -> String {
    format!("POST /mcp HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
}

fn assert_refused(r: &HttpResponse, what: &str) {
    assert_eq!(
        r.status,
        421,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(v["error"]["data"]["reason"], "foreignHost", "{what}: {v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("DNS rebinding"), "{what}: {msg}");
}

#[tokio::test]
async fn a_rebinding_host_is_refused_on_every_route_and_the_real_address_passes() {
    let s = TestServer::start_with(Options {
        mcp: Some(Arc::new(Mcp)),
        ..Options::default()
    })
    .await;
    let real = s.addr.to_string();
    let local = s.local.trim().to_owned();
    for evil in [
        "evil.example",
        "evil.example:5959",
        &format!("evil.example:{}", s.addr.port()),
    ] {
        assert_refused(&raw(s.addr, &rpc(evil, &local)).await, "rpc");
        assert_refused(&raw(s.addr, &ws(evil, &local)).await, "ws");
        assert_refused(&raw(s.addr, &mcp(evil)).await, "mcp");
        let upload = format!(
            "POST /rest/package/upload HTTP/1.1\r\nhost: {evil}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        );
        assert_refused(&raw(s.addr, &upload).await, "upload");
    }
    // No Host at all (HTTP/1.0) is refused too.
    let r = raw(s.addr, "GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(r.status, 421);

    for good in [
        real.as_str(),
        "localhost",
        &format!("localhost:{}", s.addr.port()),
        "127.0.0.1",
    ] {
        let r = raw(s.addr, &rpc(good, &local)).await;
        assert_eq!(
            r.status,
            200,
            "{good}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.json()["result"]["version"].is_string(), "{good}");
        assert_eq!(raw(s.addr, &ws(good, &local)).await.status, 101, "{good}");
        let r = raw(s.addr, &mcp(good)).await;
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, b"mcp".as_slice()),
            "{good}"
        );
    }
}

#[tokio::test]
async fn the_hostname_chosen_at_setup_passes_with_dot_local() {
    let s = TestServer::set_up().await; // hostname "box"
    let local = s.local.trim().to_owned();
    for good in ["box.local", "BOX.local:443", "box"] {
        assert_eq!(raw(s.addr, &rpc(good, &local)).await.status, 200, "{good}");
    }
    assert_refused(
        &raw(s.addr, &rpc("box.local.evil.example", &local)).await,
        "suffix",
    );
}
