//! Setup, login, sessions, tokens, local cookie, Origin.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn setup_runs_once_and_leaves_a_welcome_notification() {
    let s = TestServer::start().await;
    let st = s.call("setup.status", json!({}), &[]).await;
    assert_eq!(st["result"]["setupComplete"], false);
    // No password yet: login explains that setup is required.
    let r = s
        .call("auth.login", json!({"password": PASSWORD}), &[])
        .await;
    assert_eq!(error_code(&r), 40);
    // Weak password and bad hostname are refused, naming the field.
    let r = s
        .call(
            "setup.complete",
            json!({"password": "short", "hostname": "box"}),
            &[],
        )
        .await;
    assert_eq!(error_code(&r), -32602);
    assert_eq!(r["error"]["data"]["path"], "password");
    let r = s
        .call(
            "setup.complete",
            json!({"password": PASSWORD, "hostname": "Bad Name"}),
            &[],
        )
        .await;
    assert_eq!(r["error"]["data"]["path"], "hostname");

    let r = s
        .call(
            "setup.complete",
            json!({"password": PASSWORD, "hostname": "box", "setupCode": s.setup_code()}),
            &[],
        )
        .await;
    assert!(r["revision"].as_u64().is_some(), "{r}");
    assert_eq!(
        s.call("setup.status", json!({}), &[]).await["result"]["setupComplete"],
        true
    );
    let again = s
        .call(
            "setup.complete",
            json!({"password": "another password", "hostname": "x"}),
            &[],
        )
        .await;
    assert_eq!(error_code(&again), 53);
    // The first password still works, the second was not applied.
    s.login().await;
    let n = s.local_call("notification.list", json!({})).await;
    assert_eq!(n["result"][0]["title"], "Welcome to Hearth");
    let info = s
        .local_call("db.dump", json!({"pointer": "/serverInfo"}))
        .await;
    assert_eq!(info["result"]["value"]["hostname"], "box");
    assert_eq!(info["result"]["value"]["unreadNotificationCount"], 1);
}

#[tokio::test]
async fn concurrent_setup_has_exactly_one_winner() {
    let s = TestServer::start().await;
    let code = s.setup_code();
    let calls = (0..4).map(|i| {
        let body = json!({"method": "setup.complete", "params": {"password": format!("password-{i}"), "hostname": "box", "setupCode": code}}).to_string();
        let addr = s.addr;
        async move { http(addr, "POST", "/rpc/v1", &[], body.as_bytes()).await.json() }
    });
    let results = futures_util::future::join_all(calls).await;
    let ok = results.iter().filter(|r| r.get("error").is_none()).count();
    assert_eq!(ok, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|r| r.get("error").is_some())
            .all(|r| error_code(r) == 53)
    );
}

#[tokio::test]
async fn login_sets_a_hardened_cookie_and_stores_only_a_hash() {
    let s = TestServer::set_up().await;
    let body = json!({"method": "auth.login", "params": {"password": PASSWORD}}).to_string();
    let r = s.post(&[("user-agent", "test-agent")], &body).await;
    let set_cookie = r.header("set-cookie").unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set_cookie.contains(attr), "{set_cookie} lacks {attr}");
    }
    assert!(!set_cookie.contains("Secure"), "no TLS here: {set_cookie}");
    let token = session_from(&r).unwrap();
    // >= 128 bits: 43 base64url characters carry 258 bits.
    assert!(token.len() >= 22, "{token}");
    let id = r.json()["result"]["sessionId"].as_str().unwrap().to_owned();
    assert_ne!(id, token);
    assert_eq!(
        r.header("x-patch-sequence").map(str::to_owned),
        Some(r.json()["revision"].to_string())
    );

    let list = s
        .call(
            "auth.session.list",
            json!({}),
            &[("cookie", &cookie(&token))],
        )
        .await;
    assert_eq!(list["result"]["current"], id.as_str());
    assert_eq!(list["result"]["sessions"][&id]["userAgent"], "test-agent");
    let private = s.store.get("/private").unwrap().to_string();
    assert!(private.contains(&id));
    assert!(
        !private.contains(&token),
        "the token itself must not be stored"
    );
    let dir = s.stop().await;
    let file = std::fs::read(dir.path().join("store.redb")).unwrap();
    assert!(
        !file.windows(token.len()).any(|w| w == token.as_bytes()),
        "token found in the database file"
    );
}

#[tokio::test]
async fn logout_and_kill_revoke_sessions_and_replayed_tokens_fail() {
    let s = TestServer::set_up().await;
    let a = s.login().await;
    let b = s.login().await;
    let ca = cookie(&a);
    let cb = cookie(&b);
    assert!(
        s.call("server.info", json!({}), &[("cookie", &ca)])
            .await
            .get("result")
            .is_some()
    );
    let out = s
        .post(
            &[("cookie", &ca)],
            &json!({"method": "auth.logout"}).to_string(),
        )
        .await;
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    // Replaying the logged-out token is refused as expired, without data.
    let r = s.call("server.info", json!({}), &[("cookie", &ca)]).await;
    assert_eq!(error_code(&r), 34);
    assert_eq!(r["error"]["data"]["reason"], "expired");
    assert!(r.get("result").is_none());
    // b is unaffected; kill it from a local call.
    let list = s
        .call("auth.session.list", json!({}), &[("cookie", &cb)])
        .await;
    let ids: Vec<String> = list["result"]["sessions"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(ids.len(), 1);
    s.local_call("auth.session.kill", json!({"ids": ids})).await;
    assert_eq!(
        error_code(&s.call("server.info", json!({}), &[("cookie", &cb)]).await),
        34
    );
}

#[tokio::test]
async fn sessions_expire_when_idle_and_at_their_maximum_age() {
    let idle = TestServer::start_with(Options {
        config: Some(Box::new(|c| c.session_idle = Duration::from_millis(800))),
        ..Options::default()
    })
    .await;
    idle.setup().await;
    let t = cookie(&idle.login().await);
    assert!(
        idle.call("server.info", json!({}), &[("cookie", &t)])
            .await
            .get("result")
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = idle.call("server.info", json!({}), &[("cookie", &t)]).await;
    assert_eq!(r["error"]["data"]["reason"], "expired", "{r}");

    let abs = TestServer::start_with(Options {
        config: Some(Box::new(|c| {
            c.session_max_age = Duration::from_millis(1200)
        })),
        ..Options::default()
    })
    .await;
    abs.setup().await;
    let t = cookie(&abs.login().await);
    // Activity does not extend the absolute limit.
    for _ in 0..3 {
        assert!(
            abs.call("server.info", json!({}), &[("cookie", &t)])
                .await
                .get("result")
                .is_some()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        error_code(&abs.call("server.info", json!({}), &[("cookie", &t)]).await),
        34
    );
}

#[tokio::test]
async fn failed_logins_back_off_per_address_with_retry_after() {
    let s = TestServer::set_up().await;
    let wrong = |s: &TestServer| {
        let body =
            json!({"method": "auth.login", "params": {"password": "wrong password"}}).to_string();
        let addr = s.addr;
        async move {
            http(addr, "POST", "/rpc/v1", &[], body.as_bytes())
                .await
                .json()
        }
    };
    assert_eq!(error_code(&wrong(&s).await), 7);
    assert_eq!(error_code(&wrong(&s).await), 7);
    let third = wrong(&s).await;
    assert_eq!(error_code(&third), 7);
    assert_eq!(third["error"]["data"]["retryAfter"], 1);
    // Even the right password is refused while the back-off lasts.
    let r = s
        .call("auth.login", json!({"password": PASSWORD}), &[])
        .await;
    assert_eq!(error_code(&r), 37);
    assert_eq!(r["error"]["data"]["retryable"], true);
    assert!(r["error"]["data"]["retryAfter"].as_u64().unwrap() >= 1);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retry after")
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.login().await;
}

#[tokio::test]
async fn password_change_requires_the_old_one_and_logs_out_other_sessions() {
    let s = TestServer::set_up().await;
    let mine = cookie(&s.login().await);
    let other = cookie(&s.login().await);
    let r = s
        .call(
            "auth.password.change",
            json!({"oldPassword": "nope nope", "newPassword": "new password 1"}),
            &[("cookie", &mine)],
        )
        .await;
    assert_eq!(error_code(&r), 7);
    let r = s
        .call(
            "auth.password.change",
            json!({"oldPassword": PASSWORD, "newPassword": "short"}),
            &[("cookie", &mine)],
        )
        .await;
    assert_eq!(r["error"]["data"]["path"], "newPassword");
    let r = s
        .call(
            "auth.password.change",
            json!({"oldPassword": PASSWORD, "newPassword": "new password 1"}),
            &[("cookie", &mine)],
        )
        .await;
    assert!(r.get("error").is_none(), "{r}");
    assert!(
        s.call("server.info", json!({}), &[("cookie", &mine)])
            .await
            .get("result")
            .is_some()
    );
    assert_eq!(
        error_code(
            &s.call("server.info", json!({}), &[("cookie", &other)])
                .await
        ),
        34
    );
    assert_eq!(
        error_code(
            &s.call("auth.login", json!({"password": PASSWORD}), &[])
                .await
        ),
        7
    );
    assert!(
        s.call("auth.login", json!({"password": "new password 1"}), &[])
            .await
            .get("result")
            .is_some()
    );
}

#[tokio::test]
async fn api_tokens_authenticate_until_revoked() {
    let s = TestServer::set_up().await;
    let created = s
        .local_call(
            "auth.token.create",
            json!({"name": "backup-script", "scope": "admin"}),
        )
        .await;
    let token = created["result"]["token"].as_str().unwrap().to_owned();
    let id = created["result"]["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("hth_"));
    let bearer = format!("Bearer {token}");
    let r = s
        .call("server.info", json!({}), &[("authorization", &bearer)])
        .await;
    assert_eq!(r["result"]["hostname"], "box");
    let list = s.local_call("auth.token.list", json!({})).await;
    assert_eq!(list["result"][0]["name"], "backup-script");
    assert!(
        !list.to_string().contains(&token),
        "list must not show the secret"
    );
    assert!(!s.store.get("").unwrap().to_string().contains(&token));
    // Bearer tokens are not ambient: a foreign Origin does not matter for them.
    let r = s
        .call(
            "server.info",
            json!({}),
            &[("authorization", &bearer), ("origin", "http://elsewhere")],
        )
        .await;
    assert!(r.get("result").is_some());

    s.local_call("auth.token.revoke", json!({"id": id})).await;
    let body = json!({"method": "server.info"}).to_string();
    let r = s.post(&[("authorization", &bearer)], &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["data"]["reason"], "invalidToken");
    let again = s.local_call("auth.token.revoke", json!({"id": id})).await;
    assert_eq!(error_code(&again), 6);
    let forged = s
        .post(&[("authorization", "Bearer hth_forged")], &body)
        .await;
    assert_eq!(forged.status, 401);
}

#[tokio::test]
async fn local_cookie_file_authenticates_and_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = TestServer::start().await;
    let path = s.data_path(hearth_layout::LOCAL_COOKIE_FILE);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Works before setup (the CLI on the box needs no password), as the header only.
    assert!(
        s.local_call("server.info", json!({}))
            .await
            .get("result")
            .is_some()
    );
    // The same secret as a cookie is not a credential: the caller is anonymous.
    let c = format!("local={}", s.local);
    let r = s.call("server.info", json!({}), &[("cookie", &c)]).await;
    assert_eq!(error_code(&r), 34, "{r}");
    assert_eq!(r["error"]["data"]["reason"], "missing");
    let r = s
        .post(
            &[("x-hearth-local-auth", "wrong")],
            &json!({"method": "server.echo", "params": {"message": "x"}}).to_string(),
        )
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn foreign_origin_is_refused_for_cookie_requests() {
    let s = TestServer::set_up().await;
    let c = cookie(&s.login().await);
    let body = json!({"method": "server.info"}).to_string();
    let r = s
        .post(&[("cookie", &c), ("origin", "http://evil.example")], &body)
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["data"]["reason"], "foreignOrigin");
    assert!(r.json().get("result").is_none());
    // Setup/login from another site are refused too (no login CSRF).
    let r = s
        .post(
            &[("origin", "http://evil.example")],
            &json!({"method": "auth.login", "params": {"password": PASSWORD}}).to_string(),
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.header("set-cookie").is_none());
    // Same origin is fine.
    let same = format!("http://{}", s.addr);
    let r = s.post(&[("cookie", &c), ("origin", &same)], &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"]["hostname"], "box");
}

#[tokio::test]
async fn every_non_public_method_refuses_anonymous_callers() {
    let s = TestServer::set_up().await;
    let mut checked = 0;
    for m in hearth_rpc::catalogue() {
        if m.auth == hearth_rpc::Auth::Public {
            continue;
        }
        let r = s.call(m.name, json!({}), &[]).await;
        assert_eq!(
            error_code(&r),
            34,
            "{} answered an anonymous caller: {r}",
            m.name
        );
        assert_eq!(r.get("result"), None);
        assert_eq!(r["error"]["data"]["reason"], "missing");
        // A bogus session cookie gets the same refusal.
        let r = s
            .call(m.name, json!({}), &[("cookie", "session=bogus")])
            .await;
        assert_eq!(error_code(&r), 34, "{}", m.name);
        checked += 1;
    }
    assert!(checked >= 10);
    let _ = Value::Null;
}

#[tokio::test]
async fn a_planted_local_cookie_does_not_lock_a_browser_out() {
    let s = TestServer::set_up().await;
    let session = s.login().await;
    // Another site (or a service on a sibling host name) planted `local=junk`; the
    // browser sends it alongside its session cookie, first or last.
    for c in [
        format!("local=junk; session={session}"),
        format!("session={session}; local=junk"),
    ] {
        let r = s.call("server.info", json!({}), &[("cookie", &c)]).await;
        assert!(r.get("result").is_some(), "{c}: {r}");
    }
}
