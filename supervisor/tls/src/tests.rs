#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use time::{Duration, OffsetDateTime};

use crate::*;

fn host_names() -> Names {
    Names::new(
        &["box.local", "localhost"],
        &[IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20))],
    )
    .unwrap()
}

fn verify(ca: &RootCa, leaf: &Leaf, name: &str) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let v = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    let sn = ServerName::try_from(name.to_owned()).unwrap();
    v.verify_server_cert(&leaf.certified.cert[0], &[], &sn, &[], UnixTime::now())
        .map(|_| ())
}

#[test]
fn leaf_chains_to_the_ca_for_each_name_and_not_others() {
    let dir = tempfile::tempdir().unwrap();
    let ca = RootCa::load_or_create(&DirStore::open(dir.path()).unwrap()).unwrap();
    let leaf = Leaf::issue(&ca, &host_names(), OffsetDateTime::now_utc()).unwrap();
    for n in ["box.local", "localhost", "192.168.1.20"] {
        verify(&ca, &leaf, n).unwrap_or_else(|e| panic!("{n}: {e}"));
    }
    assert!(verify(&ca, &leaf, "other.local").is_err());
    assert!(verify(&ca, &leaf, "192.168.1.21").is_err());
    // Another CA does not vouch for it.
    let other = tempfile::tempdir().unwrap();
    let ca2 = RootCa::load_or_create(&DirStore::open(other.path()).unwrap()).unwrap();
    assert!(verify(&ca2, &leaf, "box.local").is_err());
}

#[test]
fn key_is_0600_and_the_ca_is_reused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first = RootCa::load_or_create(&DirStore::open(dir.path()).unwrap()).unwrap();
    let mode = std::fs::metadata(dir.path().join(KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dmode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
    assert_eq!(dmode & 0o777, 0o700);
    let again = RootCa::load_or_create(&DirStore::open(dir.path()).unwrap()).unwrap();
    assert_eq!(first.cert_pem(), again.cert_pem());
    // A leaf signed after the restart chains to the certificate users downloaded before.
    let leaf = Leaf::issue(&again, &host_names(), OffsetDateTime::now_utc()).unwrap();
    verify(&first, &leaf, "box.local").unwrap();
    assert!(!format!("{again:?}").contains("PRIVATE"));
    assert!(first.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
}

#[test]
fn corrupt_key_is_a_clear_error_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(KEY_FILE), b"not a key").unwrap();
    let err = RootCa::load_or_create(&DirStore::open(dir.path()).unwrap()).unwrap_err();
    assert!(err.to_string().contains(KEY_FILE), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join(KEY_FILE)).unwrap(),
        b"not a key"
    );
}

#[test]
fn unknown_sni_gets_the_host_leaf_never_a_service_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let ca = RootCa::load_or_create(&DirStore::open(dir.path()).unwrap()).unwrap();
    let now = OffsetDateTime::now_utc();
    let host = Leaf::issue(&ca, &host_names(), now).unwrap();
    let nginx = Leaf::issue(&ca, &Names::new(&["nginx.box.local"], &[]).unwrap(), now).unwrap();
    let r = SniResolver::new(&host);
    r.set_service(&nginx);
    let is = |a: Option<Arc<rustls::sign::CertifiedKey>>, b: &Leaf| {
        Arc::ptr_eq(&a.unwrap(), &b.certified)
    };
    assert!(is(r.pick_for_test(Some("NGINX.box.local")), &nginx));
    assert!(is(r.pick_for_test(Some("box.local")), &host));
    assert!(is(r.pick_for_test(Some("evil.example")), &host));
    assert!(is(r.pick_for_test(Some("x.nginx.box.local")), &host));
    assert!(is(r.pick_for_test(None), &host));
}

#[test]
fn bad_names_are_refused_and_renewal_follows_names_and_time() {
    for bad in ["", "a..b", "-a.local", "a_b.local", "é.local"] {
        assert!(
            matches!(Names::new(&[bad], &[]), Err(TlsError::BadName(_))),
            "{bad}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = RootCa::load_or_create(&DirStore::open(dir.path()).unwrap()).unwrap();
    let now = OffsetDateTime::now_utc();
    let leaf = Leaf::issue(&ca, &host_names(), now).unwrap();
    assert!(!leaf.needs_renewal(&host_names(), now));
    assert!(leaf.needs_renewal(&Names::new(&["new.local"], &[]).unwrap(), now));
    assert!(leaf.needs_renewal(
        &host_names(),
        now + LEAF_VALIDITY - RENEW_BEFORE + Duration::hours(1)
    ));
}
