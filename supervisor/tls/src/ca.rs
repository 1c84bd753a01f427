//! The root CA: created once, then loaded from the store on every later start.
//!
//! Invariants: the key is written 0600 and never logged or exposed (only the
//! certificate is public); the certificate file is the one handed to users, so it is
//! never regenerated while the key exists. Signing reuses the stored key with the
//! same subject, so leaves chain to the stored certificate.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};

use crate::TlsError;
use crate::store::CaStore;

/// File name of the CA key (PKCS#8 PEM, 0600).
pub const KEY_FILE: &str = "ca.key.pem";
/// File name of the CA certificate (PEM, public).
pub const CERT_FILE: &str = "ca.crt.pem";

/// Hearth's root certificate authority.
pub struct RootCa {
    key: KeyPair,
    issuer: Certificate,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
}

impl std::fmt::Debug for RootCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("RootCa")
            .field("subject", &subject(&self.key))
            .finish_non_exhaustive()
    }
}

fn subject(key: &KeyPair) -> String {
    let raw = key.public_key_raw();
    let tag: String = raw
        .iter()
        .skip(1)
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("Hearth root CA {tag}")
}

fn params(key: &KeyPair, now: OffsetDateTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, subject(key));
    dn.push(DnType::OrganizationName, "Hearth");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(20 * 365);
    p
}

impl RootCa {
    /// Loads the CA from `store`, or creates it (key first, then certificate) when
    /// the store holds none.
    pub fn load_or_create(store: &dyn CaStore) -> Result<Self, TlsError> {
        let now = OffsetDateTime::now_utc();
        let key = match store.read(KEY_FILE)? {
            Some(pem) => {
                let pem = String::from_utf8(pem).map_err(|_| TlsError::Corrupt(KEY_FILE))?;
                KeyPair::from_pem(&pem).map_err(|_| TlsError::Corrupt(KEY_FILE))?
            }
            None => {
                let key =
                    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(TlsError::Rcgen)?;
                store.write_private(KEY_FILE, key.serialize_pem().as_bytes())?;
                tracing::info!(subject = %subject(&key), "created Hearth root CA");
                key
            }
        };
        let issuer = params(&key, now)
            .self_signed(&key)
            .map_err(TlsError::Rcgen)?;
        let cert_pem = match store.read(CERT_FILE)? {
            Some(pem) => String::from_utf8(pem).map_err(|_| TlsError::Corrupt(CERT_FILE))?,
            None => {
                let pem = issuer.pem();
                store.write_private(CERT_FILE, pem.as_bytes())?;
                pem
            }
        };
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|_| TlsError::Corrupt(CERT_FILE))?;
        Ok(Self {
            key,
            issuer,
            cert_pem,
            cert_der,
        })
    }

    /// The CA certificate as PEM, the form served at `/hearth-ca.crt`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate as DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    pub(crate) fn sign(
        &self,
        leaf: CertificateParams,
        key: &KeyPair,
    ) -> Result<Certificate, TlsError> {
        leaf.signed_by(key, &self.issuer, &self.key)
            .map_err(TlsError::Rcgen)
    }
}
