//! The HTTPS listener against real clients (curl, openssl s_client): the chain verifies
//! against Hearth's CA, ALPN negotiates h2, the session cookie is `Secure` over TLS
//! only, and an unknown SNI gets the host's certificate with no service name in it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use hearth_api::{ApiConfig, App, AppParts, LogBuffer, TlsListener};
use hearth_store::Store;
use hearth_tls::{DirStore, Leaf, Names, RootCa, SniResolver};
use tokio_util::sync::CancellationToken;

use crate::common::PASSWORD;

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} (curl/openssl are required): {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn curl(ca: &std::path::Path, port: u16, host: &str, extra: &[&str]) -> (bool, String) {
    let resolve = format!("{host}:{port}:127.0.0.1");
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["--resolve", &resolve]);
    c.args(extra).arg(format!("https://{host}:{port}/rpc/v1"));
    run(&mut c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_listener_serves_the_api_with_h2_secure_cookie_and_host_cert_for_unknown_sni() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ApiConfig::new(dir.path().to_path_buf());
    config.shutdown_grace = Duration::from_secs(2);
    let store = Store::open(
        &dir.path().join("store.redb"),
        App::initial_document("test").unwrap(),
    )
    .unwrap();
    let app = App::new(AppParts {
        store,
        logs: LogBuffer::new(100),
        config,
    })
    .unwrap();

    let ca = RootCa::load_or_create(&DirStore::open(&dir.path().join("tls")).unwrap()).unwrap();
    let ca_file = dir.path().join("hearth-ca.crt");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let host = Leaf::issue(
        &ca,
        &Names::new(&["box.local", "localhost"], &[localhost]).unwrap(),
        now,
    )
    .unwrap();
    let nginx = Leaf::issue(&ca, &Names::new(&["nginx.box.local"], &[]).unwrap(), now).unwrap();
    let resolver = SniResolver::new(&host);
    resolver.set_service(&nginx);
    let tls_config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_cert_resolver(std::sync::Arc::new(resolver));

    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_addr: SocketAddr = plain.local_addr().unwrap();
    let tls = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tls.local_addr().unwrap().port();
    let cancel = CancellationToken::new();
    let join = tokio::spawn(hearth_api::serve_with_tls(
        plain,
        Some(TlsListener::new(tls, tls_config)),
        app,
        cancel.clone(),
    ));

    let caf = ca_file.clone();
    // The first-boot setup code, as a person reads it (a network caller must send it).
    let code = std::fs::read_to_string(dir.path().join("setup-code")).unwrap();
    let code = code.trim().to_owned();
    tokio::task::spawn_blocking(move || {
        let setup = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"setup.complete","params":{{"password":"{PASSWORD}","hostname":"box","setupCode":"{code}"}}}}"#);
        let login = format!(r#"{{"jsonrpc":"2.0","id":2,"method":"auth.login","params":{{"password":"{PASSWORD}"}}}}"#);
        let json = ["-H", "content-type: application/json", "-d"];
        // Setup over HTTPS, verified against the CA, on HTTP/2.
        let (ok, out) = curl(&caf, port, "box.local", &[&json[..], &[&setup, "--http2", "-w", "\n%{http_version}"]].concat());
        assert!(ok, "{out}");
        assert!(!out.contains("\"error\""), "{out}");
        assert!(out.ends_with("\n2"), "h2 not negotiated: {out}");
        // HTTP/1.1 stays available.
        let (ok, out) = curl(&caf, port, "localhost", &[&json[..], &[&login, "--http1.1", "-i"]].concat());
        assert!(ok, "{out}");
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        let cookie = out.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie: session=")).unwrap_or_else(|| panic!("{out}"));
        assert!(cookie.contains("; Secure"), "{cookie}");
        // The plain listener's cookie is not Secure (a browser would drop it over http).
        let mut c = Command::new("curl");
        c.args(["-sS", "-i", "--max-time", "10"]).args(json).arg(&login).arg(format!("http://{plain_addr}/rpc/v1"));
        let (ok, out) = run(&mut c);
        assert!(ok, "{out}");
        let cookie = out.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie: session=")).unwrap_or_else(|| panic!("{out}"));
        assert!(!cookie.contains("Secure"), "{cookie}");
        // By IP address (no SNI): the host leaf, verified by its IP SAN.
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"]).arg(&caf).arg(format!("https://127.0.0.1:{port}/"));
        let (ok, out) = run(&mut c);
        assert!(ok, "{out}");
        // Another CA's client refuses the server.
        let other = tempfile::tempdir().unwrap();
        let ca2 = RootCa::load_or_create(&DirStore::open(other.path()).unwrap()).unwrap();
        let ca2_file = other.path().join("ca.crt");
        std::fs::write(&ca2_file, ca2.cert_pem()).unwrap();
        let (ok, out) = curl(&ca2_file, port, "box.local", &[]);
        assert!(!ok, "verified against a foreign CA: {out}");
        // The service's SNI gets the service leaf; an unknown SNI the host leaf only.
        for (sni, want, never) in [("nginx.box.local", "nginx.box.local", "localhost"), ("evil.example", "box.local", "nginx")] {
            let cmd = format!("openssl s_client -connect 127.0.0.1:{port} -servername {sni} -CAfile {} -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -text", caf.display());
            let (ok, out) = run(Command::new("sh").args(["-c", &cmd]));
            assert!(ok, "{sni}: {out}");
            assert!(out.contains(&format!("DNS:{want}")), "{sni}: {out}");
            assert!(!out.contains(never), "{sni} leaked {never}: {out}");
        }
    })
    .await
    .unwrap();
    cancel.cancel();
    join.await.unwrap().unwrap();
}
