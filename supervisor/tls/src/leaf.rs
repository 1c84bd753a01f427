//! Leaf certificates for one set of names, and when to renew them.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use time::{Duration, OffsetDateTime};

use crate::TlsError;
use crate::ca::RootCa;

/// How long a leaf is valid.
pub const LEAF_VALIDITY: Duration = Duration::days(90);
/// A leaf closer than this to its end is renewed.
pub const RENEW_BEFORE: Duration = Duration::days(30);

/// The names one leaf certifies: DNS names (lower case, validated) and IP addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    dns: Vec<String>,
    ips: Vec<IpAddr>,
}

impl Names {
    /// Validates each DNS name (labels of `a-z0-9-`, 1–63 bytes, no leading or
    /// trailing `-`); sorts and deduplicates.
    pub fn new(dns: &[&str], ips: &[IpAddr]) -> Result<Self, TlsError> {
        let mut d = Vec::new();
        for n in dns {
            let n = n.to_ascii_lowercase();
            if !valid_dns_name(&n) {
                return Err(TlsError::BadName(n));
            }
            d.push(n);
        }
        if d.is_empty() {
            return Err(TlsError::BadName(String::new()));
        }
        d.sort();
        d.dedup();
        let mut ips = ips.to_vec();
        ips.sort();
        ips.dedup();
        Ok(Self { dns: d, ips })
    }

    /// The DNS names.
    pub fn dns(&self) -> &[String] {
        &self.dns
    }
}

fn valid_dns_name(n: &str) -> bool {
    n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// A leaf certificate ready for rustls.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// What it certifies.
    pub names: Names,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Chain and signing key for rustls.
    pub certified: Arc<CertifiedKey>,
}

impl Leaf {
    /// Issues a fresh leaf for `names`, valid from a day ago for [`LEAF_VALIDITY`].
    pub fn issue(ca: &RootCa, names: &Names, now: OffsetDateTime) -> Result<Self, TlsError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(TlsError::Rcgen)?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names.dns[0].clone());
        p.distinguished_name = dn;
        for n in &names.dns {
            let ia5 = n
                .clone()
                .try_into()
                .map_err(|_| TlsError::BadName(n.clone()))?;
            p.subject_alt_names.push(SanType::DnsName(ia5));
        }
        p.subject_alt_names
            .extend(names.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        p.not_before = now - Duration::days(1);
        let not_after = now + LEAF_VALIDITY;
        p.not_after = not_after;
        let cert = ca.sign(p, &key)?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = rustls::crypto::ring::sign::any_ecdsa_type(&der).map_err(TlsError::Rustls)?;
        let certified = Arc::new(CertifiedKey::new(vec![cert.der().clone()], signer));
        Ok(Self {
            names: names.clone(),
            not_after,
            certified,
        })
    }

    /// True when the leaf no longer fits: other names, or near its end.
    pub fn needs_renewal(&self, names: &Names, now: OffsetDateTime) -> bool {
        &self.names != names || self.not_after - now < RENEW_BEFORE
    }
}
