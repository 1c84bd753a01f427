//! Issue 9 from the attacker's side: parallel password guessing, token scopes,
//! `rpc.discover` amplification, anonymous floods.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use hearth_api::{CallOutput, Caller, Principal, SessionCookie};
use hearth_rpc::RpcError;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;

use crate::common::*;

/// The global budget of failed logins per minute set for these tests (the default is
/// 20; smaller keeps the test short: every checked guess costs an argon2 hash).
const GLOBAL_BUDGET: u64 = 8;
/// Free failures per client before back-off.
const FREE_FAILURES: u64 = 3;

fn anonymous(peer: IpAddr, device: Option<String>) -> Caller {
    let mut c = Caller::new(Principal::Anonymous { expired: false });
    c.peer = Some(peer);
    c.device = device;
    c
}

async fn login(s: &TestServer, caller: &Caller, password: &str) -> Result<CallOutput, RpcError> {
    s.dispatcher
        .call(caller, "auth.login", json!({"password": password}))
        .await
}

/// `n` wrong guesses at once, each from its own address (alternately IPv4 and IPv6,
/// distinct /64s); returns (incorrect, rate limited).
async fn flood(s: &TestServer, wave: u32, n: u32) -> (u64, u64) {
    let mut set = JoinSet::new();
    for i in 0..n {
        let k = wave * 1000 + i;
        let peer: IpAddr = if i % 2 == 0 {
            Ipv4Addr::from(0x0a00_0000 + k).into()
        } else {
            Ipv6Addr::new(0x2001, 0xdb8, 0, u16::try_from(k).unwrap(), 0, 0, 0, 1).into()
        };
        let d = s.dispatcher.clone();
        set.spawn(async move {
            d.call(
                &anonymous(peer, None),
                "auth.login",
                json!({"password": format!("guess {k}")}),
            )
            .await
        });
    }
    let (mut incorrect, mut limited) = (0, 0);
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Err(e) if e.code == 7 => incorrect += 1,
            Err(e) if e.code == 37 => {
                assert!(e.data_field("retryAfter").is_some(), "{e:?}");
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    (incorrect, limited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parallel_brute_force_is_budgeted_while_a_known_device_logs_in() {
    let s = TestServer::start_with(Options {
        config: Some(Box::new(|c| c.login_failure_budget = 8)),
        ..Options::default()
    })
    .await;
    s.setup().await;
    // The owner logged in from this browser before: it holds a device cookie.
    let home: IpAddr = "192.0.2.10".parse().unwrap();
    let out = login(&s, &anonymous(home, None), PASSWORD).await.unwrap();
    let Some(SessionCookie::Set {
        device: Some(device),
        ..
    }) = out.session
    else {
        panic!("no device cookie: {:?}", out.session)
    };
    let before = s.auth.password_checks();

    // 200 concurrent guesses from 200 addresses; the owner logs in meanwhile from an
    // address that takes part in the flood (a shared NAT).
    let shared_addr: IpAddr = Ipv4Addr::from(0x0a00_0000).into();
    let owner = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let started = Instant::now();
        let r = login(&s, &anonymous(shared_addr, Some(device.clone())), PASSWORD).await;
        (r, started.elapsed())
    };
    let ((incorrect, limited), (owner_result, owner_time)) = tokio::join!(flood(&s, 0, 200), owner);
    owner_result.expect("the owner's known device logs in during the flood");
    eprintln!("owner's login during the flood: {owner_time:?}");
    assert!(
        owner_time < Duration::from_secs(2),
        "owner's login took {owner_time:?}"
    );
    assert_eq!(incorrect + limited, 200);

    // More waves until the global budget is spent: never more guesses are checked.
    let mut total_incorrect = incorrect;
    for wave in 1..4 {
        total_incorrect += flood(&s, wave, 50).await.0;
    }
    let checks = s.auth.password_checks() - before;
    assert_eq!(checks, total_incorrect + 1, "guesses + the owner's login");
    assert!(
        total_incorrect <= GLOBAL_BUDGET,
        "{total_incorrect} guesses checked, budget {GLOBAL_BUDGET}"
    );
    // The budget is spent: an unknown device (here even with the right password, from
    // a fresh address) is told to retry later; the known device still gets in.
    let fresh: IpAddr = "198.51.100.7".parse().unwrap();
    let e = login(&s, &anonymous(fresh, None), PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(e.code, 37, "{e:?}");
    assert!(e.message.contains("retry after"), "{}", e.message);
    assert!(e.data_field("retryAfter").and_then(Value::as_u64).unwrap() >= 1);
    login(&s, &anonymous(fresh, Some(device.clone())), PASSWORD)
        .await
        .expect("known device is exempt from the global budget");
    // A forged device cookie is just an unknown device.
    let forged = format!("{}x", device);
    let e = login(&s, &anonymous(fresh, Some(forged)), PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(e.code, 37);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_from_one_address_are_counted_before_hashing() {
    let s = TestServer::set_up().await;
    let before = s.auth.password_checks();
    let peer: IpAddr = "2001:db8:7:7::1".parse().unwrap();
    let mut set = JoinSet::new();
    for i in 0..50u16 {
        let d = s.dispatcher.clone();
        // Addresses of one /64 are one client.
        let IpAddr::V6(v6) = peer else { unreachable!() };
        let s = v6.segments();
        let addr = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, i, 1);
        set.spawn(async move {
            d.call(
                &anonymous(addr.into(), None),
                "auth.login",
                json!({"password": format!("guess {i}")}),
            )
            .await
        });
    }
    let mut limited = 0;
    while let Some(r) = set.join_next().await {
        let e = r.unwrap().unwrap_err();
        limited += u64::from(e.code == 37);
    }
    let checks = s.auth.password_checks() - before;
    assert!(
        checks <= FREE_FAILURES,
        "{checks} parallel guesses were checked"
    );
    assert_eq!(limited + checks, 50);
}

#[tokio::test]
async fn read_scoped_tokens_only_read_and_scopes_are_listed() {
    let s = TestServer::set_up().await;
    let r = s
        .local_call("auth.token.create", json!({"name": "no scope"}))
        .await;
    assert_eq!(error_code(&r), -32602, "{r}");
    assert_eq!(r["error"]["data"]["path"], "", "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("scope"));
    let r = s
        .local_call(
            "auth.token.create",
            json!({"name": "monitor", "scope": "read"}),
        )
        .await;
    assert_eq!(r["result"]["scope"], "read", "{r}");
    let bearer = format!("Bearer {}", r["result"]["token"].as_str().unwrap());
    let h = [("authorization", bearer.as_str())];
    for method in ["server.info", "package.list", "auth.token.list", "db.dump"] {
        let r = s.call(method, json!({}), &h).await;
        assert!(r.get("result").is_some(), "{method}: {r}");
    }
    for (method, params) in [
        ("db.put.ui", json!({"pointer": "/x", "value": 1})),
        ("server.logs", json!({})),
        ("package.logs", json!({"id": "x"})),
        (
            "auth.token.create",
            json!({"name": "more", "scope": "admin"}),
        ),
        ("server.shutdown", json!({})),
    ] {
        let r = s.call(method, params, &h).await;
        assert_eq!(error_code(&r), 34, "{method}: {r}");
        assert_eq!(r["error"]["data"]["reason"], "scope", "{method}: {r}");
    }
    let list = s.local_call("auth.token.list", json!({})).await;
    assert_eq!(list["result"][0]["scope"], "read", "{list}");
    // Nor through the side doors: package upload, a service's log stream.
    let up = http(
        s.addr,
        "POST",
        hearth_layout::PACKAGE_UPLOAD_PATH,
        &[("authorization", &bearer)],
        b"x",
    )
    .await;
    assert_eq!(up.status, 403, "{up:?}");
    assert!(ws_connect(&s, "/ws/logs/x", &h).await.is_err());
    // `/ws/db` (the public state) stays open to it.
    assert!(ws_connect(&s, "/ws/db", &h).await.is_ok());
}

#[tokio::test]
async fn a_password_change_revokes_every_api_token() {
    let s = TestServer::set_up().await;
    let mine = cookie(&s.login().await);
    let mut bearers = Vec::new();
    for scope in ["read", "admin"] {
        let r = s
            .call(
                "auth.token.create",
                json!({"name": scope, "scope": scope}),
                &[("cookie", &mine)],
            )
            .await;
        bearers.push(format!("Bearer {}", r["result"]["token"].as_str().unwrap()));
    }
    let r = s
        .call(
            "auth.password.change",
            json!({"oldPassword": PASSWORD, "newPassword": "another password"}),
            &[("cookie", &mine)],
        )
        .await;
    assert!(r.get("error").is_none(), "{r}");
    for b in &bearers {
        let r = s
            .post(
                &[("authorization", b)],
                &json!({"method": "server.info"}).to_string(),
            )
            .await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"]["data"]["reason"], "invalidToken");
    }
    let list = s
        .call("auth.token.list", json!({}), &[("cookie", &mine)])
        .await;
    assert_eq!(list["result"], json!([]), "{list}");
}

#[tokio::test]
async fn batches_discover_once_and_their_responses_are_capped() {
    let s = TestServer::start_with(Options {
        config: Some(Box::new(|c| c.max_batch_response = 64 * 1024)),
        ..Options::default()
    })
    .await;
    let one = s.post(&[], r#"{"id":1,"method":"rpc.discover"}"#).await;
    let single = one.body.len();
    let batch: Vec<Value> = (0..100)
        .map(|i| json!({"id": i, "method": "rpc.discover"}))
        .collect();
    let r = s.post(&[], &Value::Array(batch).to_string()).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.len() < single + 100 * 200,
        "100 discovers answered with {} bytes (one is {single})",
        r.body.len()
    );
    let items = r.json();
    assert!(items[0].get("result").is_some());
    assert_eq!(items[1]["id"], 1);
    assert_eq!(error_code(&items[1]), -32600);
    assert!(
        items[99]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rpc.discover only once")
    );
    // Any large batch: once the limit is passed, the rest is refused, not run.
    let batch: Vec<Value> = (0..100)
        .map(|i| json!({"id": i, "method": "server.echo", "params": {"message": "x".repeat(4000)}}))
        .collect();
    let r = s.post(&[], &Value::Array(batch).to_string()).await;
    // The limit, plus the one response that crossed it, plus short errors.
    assert!(
        r.body.len() < 64 * 1024 + 4200 + 100 * 250,
        "{} bytes",
        r.body.len()
    );
    let items = r.json();
    assert_eq!(items.as_array().unwrap().len(), 100);
    assert!(items[0].get("result").is_some());
    assert_eq!(error_code(&items[99]), -32600);
    assert_eq!(items[99]["error"]["data"]["limit"], 64 * 1024);
}

#[tokio::test]
async fn anonymous_requests_have_bounded_concurrency() {
    let s = TestServer::start_with(Options {
        config: Some(Box::new(|c| c.max_anonymous = 2)),
        ..Options::default()
    })
    .await;
    s.setup().await;
    // A known device (logged in before) is not counted as anonymous.
    let body = json!({"method": "auth.login", "params": {"password": PASSWORD}}).to_string();
    let first = s.post(&[], &body).await;
    let device = first
        .header_all("set-cookie")
        .into_iter()
        .find_map(|c| c.strip_prefix("device="))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .expect("device cookie");
    // Two anonymous requests that never finish sending their body hold both places.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let head = format!(
            "POST /rpc/v1 HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{",
            s.addr
        );
        c.write_all(head.as_bytes()).await.unwrap();
        held.push(c);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let r = s
        .post(&[], r#"{"method":"server.echo","params":{"message":"x"}}"#)
        .await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(error_code(&r.json()), 37);
    // Authenticated callers and known devices are not affected.
    assert!(
        s.local_call("server.info", json!({}))
            .await
            .get("result")
            .is_some()
    );
    let c = format!("device={device}");
    let r = s.post(&[("cookie", &c)], &body).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json().get("result").is_some());
    // Places come back when those requests end.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let r = s
            .post(&[], r#"{"method":"server.echo","params":{"message":"x"}}"#)
            .await;
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "places never freed: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
