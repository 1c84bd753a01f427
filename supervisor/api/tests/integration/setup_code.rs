//! The first-boot setup code against a real server: network callers must show it, a
//! wrong or missing code is refused naming where the code is, attempts are rate
//! limited, and the code's files are gone once setup is complete.

use std::path::PathBuf;

use serde_json::json;

use crate::common::{Options, PASSWORD, TestServer, error_code};

async fn server_with_code_file() -> (TestServer, PathBuf) {
    let boot = tempfile::tempdir().unwrap().keep();
    let file = boot.join("HEARTH-SETUP.txt");
    let f = file.clone();
    let s = TestServer::start_with(Options {
        config: Some(Box::new(move |c| c.setup_code_file = Some(f))),
        ..Options::default()
    })
    .await;
    (s, file)
}

#[tokio::test]
async fn setup_needs_the_code_and_the_code_is_deleted_afterwards() {
    let (s, file) = server_with_code_file().await;
    let code = s.setup_code();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&code), "{text}");

    let missing = s
        .call(
            "setup.complete",
            json!({"password": PASSWORD, "hostname": "box"}),
            &[],
        )
        .await;
    assert_eq!(error_code(&missing), 34, "{missing}");
    assert_eq!(missing["error"]["data"]["reason"], "setupCode");
    let msg = missing["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("HEARTH-SETUP.txt") && msg.contains("console"),
        "{msg}"
    );
    assert!(!msg.contains(&code), "the code never appears in an error");

    let wrong = s
        .call(
            "setup.complete",
            json!({"password": PASSWORD, "hostname": "box", "setupCode": "AAAA-AAAA-AAAA"}),
            &[],
        )
        .await;
    assert_eq!(wrong["error"]["data"]["reason"], "setupCode", "{wrong}");
    assert!(
        wrong["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("wrong setup code")
    );
    assert_eq!(
        s.call("setup.status", json!({}), &[]).await["result"]["setupComplete"],
        false,
        "a refused setup changes nothing"
    );

    // Case and dashes do not matter.
    let typed = code.to_lowercase().replace('-', " ");
    let ok = s
        .call(
            "setup.complete",
            json!({"password": PASSWORD, "hostname": "box", "setupCode": typed}),
            &[],
        )
        .await;
    assert!(ok.get("error").is_none(), "{ok}");
    assert!(!file.exists(), "the boot partition copy is deleted");
    assert!(
        !s.data_path("setup-code").exists(),
        "the stored code is deleted"
    );

    let again = s
        .call(
            "setup.complete",
            json!({"password": "another password", "hostname": "x", "setupCode": code}),
            &[],
        )
        .await;
    assert_eq!(error_code(&again), 53, "{again}");
    s.login().await;
}

#[tokio::test]
async fn guessing_the_code_is_rate_limited_like_logins() {
    let s = TestServer::start_with(Options {
        config: Some(Box::new(|c| c.login_failure_budget = 3)),
        ..Options::default()
    })
    .await;
    let mut limited = false;
    for i in 0..10 {
        let r = s
            .call(
                "setup.complete",
                json!({"password": PASSWORD, "hostname": "box", "setupCode": format!("AAAA-AAAA-AAA{i}")}),
                &[],
            )
            .await;
        if error_code(&r) == 37 {
            assert!(r["error"]["data"]["retryAfter"].as_u64().is_some(), "{r}");
            limited = true;
            break;
        }
    }
    assert!(limited, "ten wrong codes in a row were never rate limited");
}

#[tokio::test]
async fn the_local_cookie_needs_no_code() {
    let s = TestServer::start().await;
    let code = s.setup_code();
    let r = s
        .local_call(
            "setup.complete",
            json!({"password": PASSWORD, "hostname": "box"}),
        )
        .await;
    assert!(r.get("error").is_none(), "{r}");
    assert!(!s.data_path("setup-code").exists());
    assert_eq!(code.len(), 14);
}
