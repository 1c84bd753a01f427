//! hearth-tls: Hearth's own root CA and the certificates `hearthd` serves.
//!
//! On first start [`RootCa::load_or_create`] makes an ECDSA P-256 root (the curve
//! every browser accepts), stores its key 0600 through a [`CaStore`] (atomically,
//! never logged, never in the public state) and its certificate beside it; later
//! starts reuse both, so a CA a user trusted stays trusted. [`Leaf::issue`] signs
//! short-lived (90 days) leaves for a set of [`Names`] (`<hostname>.local`,
//! `localhost`, LAN addresses as IP SANs, or a service's names);
//! [`Leaf::needs_renewal`] says when names changed or the end is near.
//! [`SniResolver`] is the rustls `ResolvesServerCert` that picks a leaf by SNI and
//! answers unknown names with the host's own leaf only.
//!
//! One TLS stack: rustls 0.23 with ring, as already used by the workspace.

mod ca;
mod leaf;
mod resolver;
mod store;
#[cfg(test)]
mod tests;

pub use ca::{CERT_FILE, KEY_FILE, RootCa};
pub use leaf::{LEAF_VALIDITY, Leaf, Names, RENEW_BEFORE};
pub use resolver::SniResolver;
pub use store::{CaStore, DirStore, StoreError};

/// Errors of the CA and certificate operations.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing the CA store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored CA file cannot be parsed; it is left untouched.
    #[error("the CA file {0} is corrupt (left untouched; move it away to create a new CA)")]
    Corrupt(&'static str),
    /// A name is not a valid DNS name.
    #[error("{0:?} is not a valid DNS name for a certificate")]
    BadName(String),
    /// rcgen refused to generate or sign.
    #[error("generating a certificate: {0}")]
    Rcgen(rcgen::Error),
    /// rustls refused the key.
    #[error("loading a key into rustls: {0}")]
    Rustls(rustls::Error),
}
